"""HTTP blueprints: one module per resource."""
