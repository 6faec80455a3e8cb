"""Case-note classifier (issue 5; not built yet)."""
