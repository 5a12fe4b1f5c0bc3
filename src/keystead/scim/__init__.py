"""Directory sync over SCIM 2.0 (RFC 7643/7644), in the shapes Microsoft Entra sends."""
