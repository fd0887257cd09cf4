"""The low layer: run-time helpers (errors, devices, seeds, provenance), atomic storage, the runs tree
and data feeds. `data/`, `models/` and `methods/` may import it; it imports none of the project."""
