"""Case store (issue 6; not built yet)."""
