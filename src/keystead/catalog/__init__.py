"""Datasets (with their format-preserving definitions and key versions) and dataset groups."""
