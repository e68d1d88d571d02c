"""Per-store privacy handlers: one class per kind of store, one instance per table or store, one registry."""
