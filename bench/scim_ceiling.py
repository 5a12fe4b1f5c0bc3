"""The serving stack's own ceiling for bench/scim.py: a bare Starlette app that answers each of
the workload's requests with a fixed SCIM answer of the usual shape and size, storing nothing.

It checks the bearer token and parses each JSON body (any SCIM server must do both) and
nothing more, under exactly Keystead's serving settings (uvicorn, httptools + uvloop, one
worker). A SCIM server on this stack, driven by the same client, does at least this much
per request, so where three times the reference is more than this answers, that target is
out of reach of any implementation.

    SCIM_CEILING_TOKEN=… .venv/bin/uvicorn bench.scim_ceiling:app --host 127.0.0.1 --port P \\
        --loop uvloop --http httptools --no-access-log

Base URL: http://127.0.0.1:P/v2.
"""

from __future__ import annotations

import hmac
import json
import os
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MEDIA_TYPE = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
EMPTY_LIST = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
).encode()
_TOKEN = os.environ.get("SCIM_CEILING_TOKEN", "").encode()


def _meta(kind: str, resource_id: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": "2026-11-28T12:00:00.000000Z",
        "lastModified": "2026-11-28T12:00:00.000000Z",
        "location": f"http://127.0.0.1/v2/{kind}s/{resource_id}",
        "version": 'W/"1"',
    }


def _user(resource_id: str, body: dict[str, Any] | None = None) -> bytes:
    user = {"schemas": [USER_SCHEMA], **(body or {"userName": "someone@fabrikam.example"})}
    user |= {"id": resource_id, "meta": _meta("User", resource_id)}
    return json.dumps(user).encode()


def _group(resource_id: str, body: dict[str, Any] | None = None) -> bytes:
    group = {"schemas": [GROUP_SCHEMA], **(body or {"displayName": "Some group"})}
    group |= {"id": resource_id, "meta": _meta("Group", resource_id)}
    return json.dumps(group).encode()


def _allowed(request: Request) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), _TOKEN)


def _answer(status: int, content: bytes = b"") -> Response:
    return Response(content, status, media_type=MEDIA_TYPE if content else None)


async def collection(request: Request) -> Response:
    if not _allowed(request):
        return _answer(401)
    kind = request.path_params["kind"]
    if request.method == "GET":  # the workload's lookups find nothing
        return _answer(200, EMPTY_LIST)
    body = json.loads(await request.body())
    render = _user if kind == "Users" else _group
    return _answer(201, render(uuid.uuid4().hex, body))


async def resource(request: Request) -> Response:
    if not _allowed(request):
        return _answer(401)
    kind, resource_id = request.path_params["kind"], request.path_params["id"]
    if request.method == "GET":
        return _answer(200, _user(resource_id) if kind == "Users" else _group(resource_id))
    if request.method == "PATCH":
        json.loads(await request.body())
    return _answer(204)


app = Starlette(
    routes=[
        Route("/v2/{kind:str}", collection, methods=["GET", "POST"]),
        Route("/v2/{kind:str}/{id:str}", resource, methods=["GET", "PATCH", "DELETE"]),
    ]
)
