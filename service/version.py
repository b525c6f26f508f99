"""The service's version, reported in the OpenAPI document and the build-info metric."""
VERSION = "1.0.0"
