"""Image models: model cards, weights, preprocessing, scoring and attribution maps (issue 4; not built yet)."""
