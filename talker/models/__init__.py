"""Model checkpoints: locating, verifying and loading published weight files."""
