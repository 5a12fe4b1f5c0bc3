"""Keystead: a self-hosted data-key platform with Microsoft Entra ID integration."""

__version__ = "0.1.0"
