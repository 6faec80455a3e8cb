"""Report export and de-identification (issue 6; not built yet)."""
