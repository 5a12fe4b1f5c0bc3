"""The reference SCIM server for bench/scim.py: scim2-server 0.8.3 (in-memory storage) as an
ASGI app, with scim2-models' tolerant policy for Entra's request shapes and a bearer token.

    .venv/bin/pip install -c constraints.txt -e ".[test,bench]"   # scim2-server: benchmark-only
    SCIM_REF_TOKEN=… .venv/bin/uvicorn bench.scim_reference:app --host 127.0.0.1 --port P \\
        --loop uvloop --http httptools --no-access-log

Base URL: http://127.0.0.1:P/v2. `/v2/ServiceProviderConfig` needs no token (RFC 7643 §5).
"""

from __future__ import annotations

import hmac
import os
import secrets

from scim2_models import ScimPolicy, ScimProvider, UnauthorizedException
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

# Entra's shapes, as Keystead accepts them: unknown attributes and schema URNs kept (the
# Microsoft group URN), `Remove members` with a value list removes just those members, and
# `emails[type eq "work"].value` creates the entry when it is missing.
ENTRA_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.keep,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


class TokenProtected(ASGIApplication):  # type: ignore[misc]  # untyped here (bench-only)
    """Every request but the service provider configuration needs `Bearer <token>`."""

    def __init__(self, token: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._expected = token.encode()

    def check_auth(self, request: ScimRequest) -> None:
        scheme, _, presented = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._expected
        ):
            raise UnauthorizedException


def build(token: str) -> TokenProtected:
    config = load_default_service_provider_config()
    config.authentication_schemes = [BEARER_TOKEN_SCHEME]  # 401s carry WWW-Authenticate
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(),
        load_default_resource_types().values(),
        config=config,
        policy=ENTRA_POLICY,
    )
    return TokenProtected(
        token,
        storage=AsyncInMemoryStorage(),
        provider=provider,
        service=ScimService(provider, secret=secrets.token_hex(16)),  # signs its list cursors
    )


_token = os.environ.get("SCIM_REF_TOKEN", "")
if not _token:
    raise SystemExit("set SCIM_REF_TOKEN to the bearer token the reference should accept")
app = build(_token)
