"""The admin REST API under /api/admin/v1 (and the JSON shapes the CLI prints)."""
