"""Training scripts that produce the weights in models/ from ../shared/data."""
