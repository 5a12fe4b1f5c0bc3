"""Identity-provider integration settings: directory sync (SCIM token) and sign-in."""
