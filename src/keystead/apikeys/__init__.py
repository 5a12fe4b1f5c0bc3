"""API keys: the credentials the Ubiq client signs with, and their manual grants."""
