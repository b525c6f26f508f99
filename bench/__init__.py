"""Performance harness: `make bench`, `make soak`, `make bench-overhead` (see bench/README.md)."""
