"""The directory synced from the identity provider: users, groups, memberships, and the
provisioning rules that keep auto-provisioned API keys in step with it."""
