"""The edge in process (``httpx.ASGITransport``): the routing table, the body rules, each
protocol's rendering of every refusal, the 500 with a reference."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import create_engine
from starlette.types import Receive, Scope, Send

from keystead.dataplane.api import UBIQ
from keystead.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    KeysteadError,
    MethodNotAllowed,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from keystead.scim.api import SCIM
from keystead.sso.api import SSO
from keystead.storage.session import Database
from keystead.web.edge import Answer, Edge, Flavour, Incoming, Route, fixed
from keystead.web.executor import Cost, Executor
from keystead.web.middleware import NUL_REFUSED
from tests.support import aio

LIMIT = 1024


async def _fallback(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"served_by": "fallback"}'
    start = {"type": "http.response.start", "status": 404, "headers": []}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _echo(incoming: Incoming) -> Answer:
    document = {
        "params": {k: str(v) for k, v in incoming.params.items()},
        "target": incoming.target,
        "body": incoming.accepted_body().decode(),
    }
    return Answer(200, json.dumps(document).encode(), caller="key-1")


def _raises(error: BaseException) -> Any:
    def handler(incoming: Incoming) -> Answer:
        raise error

    return handler


def _edge(*routes: Route) -> Edge:
    executor = Executor(Database(create_engine("sqlite://")))
    return Edge(_fallback, list(routes), executor, limit=LIMIT)


def _ask(edge: Edge, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=edge)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as c:
            return await c.request(method, path, **kwargs)

    return aio.run(go())


def _route(methods: tuple[str, ...], path: str, handler: Any, flavour: Flavour = UBIQ) -> Route:
    return Route(methods, path, flavour, handler, fixed(Cost.READ))


# --- the table ----------------------------------------------------------------------------


def test_exact_paths_and_patterns_route_with_their_parameters() -> None:
    edge = _edge(
        _route(("GET",), "/api/v0/ffs", _echo),
        _route(("PATCH",), "/api/v0/encryption/key/{fingerprint}/{session}", _echo),
    )
    exact = _ask(edge, "GET", "/api/v0/ffs?ffs_name=SSN&papi=k")
    assert exact.status_code == 200
    assert exact.json()["params"] == {}
    patterned = _ask(edge, "PATCH", "/api/v0/encryption/key/abc/def", content=b"{}")
    assert patterned.json()["params"] == {"fingerprint": "abc", "session": "def"}


def test_a_path_belongs_to_the_first_pattern_that_matches_it() -> None:
    """The SSO exchange's path also matches SCIM's catch-all: listed first, it owns it, so
    a GET there is the exchange's 405, not SCIM's 404."""
    edge = _edge(
        _route(("POST",), "/{customer_id}/api/v3/scim/sso", _echo, SSO),
        _route(
            ("GET", "POST"), "/{customer_id}/api/v3/scim/{rest:path}", _raises(NotFound("no")), SCIM
        ),
    )
    assert _ask(edge, "POST", "/c1/api/v3/scim/sso", content=b"x").json()["params"] == {
        "customer_id": "c1"
    }
    refused = _ask(edge, "GET", "/c1/api/v3/scim/sso")
    assert refused.status_code == 405
    assert refused.json()["reason"] == "method_not_allowed"
    assert refused.headers["allow"] == "POST"
    assert _ask(edge, "GET", "/c1/api/v3/scim/Users").status_code == 404


@pytest.mark.parametrize(
    ("flavour", "shape"),
    [(UBIQ, {"message"}), (SCIM, {"schemas", "status", "detail"}), (SSO, {"message", "reason"})],
)
def test_a_method_the_path_does_not_take_is_405_in_its_flavour(
    flavour: Flavour, shape: set[str]
) -> None:
    edge = _edge(_route(("GET", "POST"), "/things/{id}", _echo, flavour))
    refused = _ask(edge, "DELETE", "/things/1")
    assert refused.status_code == 405
    assert set(refused.json()) >= shape
    assert refused.headers["allow"] == "GET, HEAD, POST"
    assert "DELETE" in refused.text


def test_head_is_answered_by_the_get_route() -> None:
    """The server leaves the body out of a HEAD answer; its headers are GET's."""
    edge = _edge(_route(("GET",), "/api/v0/ffs", _echo), _route(("POST",), "/api/v0/x", _echo))
    head = _ask(edge, "HEAD", "/api/v0/ffs")
    assert head.status_code == 200
    assert (
        head.headers["content-length"] == _ask(edge, "GET", "/api/v0/ffs").headers["content-length"]
    )
    assert _ask(edge, "HEAD", "/api/v0/x").headers["allow"] == "POST"


def test_other_paths_go_to_the_fallback() -> None:
    edge = _edge(_route(("GET",), "/api/v0/ffs", _echo), _route(("GET",), "/{a}/scim/{b}", _echo))
    for path in ("/api/admin/v1/me", "/", "/api/v0/ffs/more", "/x/scimm/y"):
        assert _ask(edge, "GET", path).json() == {"served_by": "fallback"}, path


def test_the_endpoint_sees_the_raw_target_as_sent() -> None:
    edge = _edge(_route(("GET",), "/api/v0/ffs", _echo))
    target = "/api/v0/ffs?ffs_name=a+b%2Fc&papi=k"
    assert _ask(edge, "GET", target).json()["target"] == target


# --- the body rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"x" * (LIMIT + 1), 413, "larger than the 1024-byte limit"),
        (b'{"a": "\\u0000"}', 400, NUL_REFUSED),
        (b'{"a": "\\ud800"}', 400, "half a surrogate pair"),
    ],
)
def test_a_refused_body_reaches_the_endpoint_as_its_refusal(
    body: bytes, status: int, words: str
) -> None:
    edge = _edge(_route(("POST",), "/api/v0/encryption/key", _echo))
    refused = _ask(edge, "POST", "/api/v0/encryption/key", content=body)
    assert refused.status_code == status
    assert words in refused.json()["message"]


def test_a_streamed_body_over_the_limit_is_refused() -> None:
    async def chunks() -> Any:
        for _ in range(3):
            yield b"x" * 600

    edge = _edge(_route(("POST",), "/api/v0/encryption/key", _echo))
    refused = _ask(edge, "POST", "/api/v0/encryption/key", content=chunks())
    assert refused.status_code == 413


# --- rendering ----------------------------------------------------------------------------


ERRORS: list[KeysteadError] = [
    BadRequest("malformed"),
    Unauthenticated("who are you"),
    Forbidden("not yours"),
    NotFound("nothing here"),
    Conflict("taken"),
    TooManyRequests("slow down", retry_after=7),
    Unavailable("try again shortly"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_each_flavour_renders_every_refusal_in_its_own_format(error: KeysteadError) -> None:
    for flavour in (UBIQ, SCIM, SSO):
        edge = _edge(_route(("GET",), "/x", _raises(error), flavour))
        answer = _ask(edge, "GET", "/x")
        document = answer.json()
        if flavour is SCIM:
            expected = 400 if error.status == 422 else error.status
            assert answer.status_code == expected
            assert answer.headers["content-type"] == "application/scim+json"
            assert document["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert document["detail"] == error.message
            assert document["status"] == str(error.status)
            if isinstance(error, Conflict):
                assert document["scimType"] == "uniqueness"
            if isinstance(error, Unauthenticated):
                assert answer.headers["www-authenticate"] == 'Bearer realm="scim"'
        else:
            assert answer.status_code == error.status
            assert answer.headers["content-type"] == "application/json"
            assert document["message"] == error.message
        if flavour is SSO:
            assert answer.headers["cache-control"] == "no-store"
            assert document["reason"]
        if flavour is UBIQ and isinstance(error, TooManyRequests):
            assert answer.headers["retry-after"] == "7"


def test_an_unexpected_failure_is_a_500_with_a_reference_and_the_details_logged() -> None:
    for flavour in (UBIQ, SCIM, SSO):
        edge = _edge(_route(("GET",), "/x", _raises(ZeroDivisionError("secret detail")), flavour))
        with structlog.testing.capture_logs() as logged:
            answer = _ask(edge, "GET", "/x")
        assert answer.status_code == 500
        assert "secret detail" not in answer.text
        assert "Traceback" not in answer.text
        errors = [e for e in logged if e["event"] == "unexpected_error"]
        assert len(errors) == 1
        assert errors[0]["reference"] in answer.text


def test_an_internal_error_already_logged_keeps_its_reference() -> None:
    edge = _edge(_route(("GET",), "/x", _raises(Internal("abc123")), SCIM))
    with structlog.testing.capture_logs() as logged:
        answer = _ask(edge, "GET", "/x")
    assert answer.status_code == 500
    assert "abc123" in answer.json()["detail"]
    assert not [e for e in logged if e["event"] == "unexpected_error"]


def test_denials_are_logged_with_their_reason() -> None:
    edge = _edge(_route(("GET",), "/x", _raises(Forbidden("key suspended")), UBIQ))
    with structlog.testing.capture_logs() as logged:
        assert _ask(edge, "GET", "/x").status_code == 403
    denied = [e for e in logged if e["event"] == "denied"]
    assert denied == [
        {
            "event": "denied",
            "path": "/x",
            "status": 403,
            "reason": "key suspended",
            "log_level": "info",
        }
    ]


def test_unavailable_is_an_answer_not_a_reference() -> None:
    error = Unavailable("the database cannot be reached or is busy; try again shortly")
    edge = _edge(_route(("GET",), "/x", _raises(error), SSO))
    answer = _ask(edge, "GET", "/x")
    assert answer.status_code == 503
    assert answer.json() == {"message": error.message, "reason": "unavailable"}


def test_method_not_allowed_carries_what_is_allowed() -> None:
    error = MethodNotAllowed("no", allowed=("GET",))
    assert UBIQ.refusal(error).headers == [(b"allow", b"GET")]
