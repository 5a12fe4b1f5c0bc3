"""HTTP plumbing shared by every adapter: middleware, error rendering, health endpoints."""
