"""Sign-in with the identity provider: the SSO exchange and its certificates."""
