"""Cryptographic building blocks: the master key, random secrets, password hashing."""
