"""Accounts, console admins, admin API tokens and console sessions."""
