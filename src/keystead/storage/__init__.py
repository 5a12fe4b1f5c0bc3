"""Storage: the only package that knows database engines, dialects and migrations."""
