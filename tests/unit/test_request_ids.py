"""Request ids in process: the caller's kept only when safe, every answer of the edge and of
the application behind it stamped, a 500's reference the request's id."""

from __future__ import annotations

import os
import re

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import create_engine

from keystead.storage.session import Database
from keystead.web import errors, requestids
from keystead.web.edge import Answer, Edge, Incoming, Route, fixed
from keystead.web.executor import Cost, Executor
from keystead.web.metrics import PLAIN
from tests.support import aio

FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "sent", [b"a", b"x" * 128, b"trace-1.2:3_X", b"0af7651916cd43dd8448eb211c80319c"]
)
def test_a_safe_caller_id_is_kept(sent: bytes) -> None:
    assert requestids.choose([(b"accept", b"*/*"), (b"x-request-id", sent)]) == sent.decode()


@pytest.mark.parametrize(
    "sent", [b"", b"x" * 129, b"a b", b'a"b', b"a\\b", b"a/b", b"\xc3\xbc", b"a\nb", b"a;b"]
)
def test_an_unsafe_caller_id_is_replaced(sent: bytes) -> None:
    chosen = requestids.choose([(b"x-request-id", sent)])
    assert FRESH.fullmatch(chosen)


def test_fresh_ids_differ_within_a_process_and_after_a_fork() -> None:
    assert len({requestids.choose([]) for _ in range(1000)}) == 1000
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes its first id and leaves at once
        os.write(writing, requestids.choose([]).encode())
        os._exit(0)
    os.close(writing)
    _, status = os.waitpid(child, 0)
    assert status == 0
    in_child = os.read(reading, 64).decode()
    os.close(reading)
    assert FRESH.fullmatch(in_child)
    # Without a fresh seed in the child, both would draw the same next id.
    assert in_child != requestids.choose([])


def _failing(incoming: Incoming) -> Answer:
    raise ZeroDivisionError("secret detail")


def _edge() -> Edge:
    admin = FastAPI()
    errors.install(admin)

    @admin.get("/admin-fails")
    def fails() -> None:
        raise ZeroDivisionError("secret detail")

    @admin.get("/admin-works")
    def works() -> dict[str, str]:
        return {"ok": "yes"}

    executor = Executor(Database(create_engine("sqlite://")))
    route = Route(("GET",), "/edge-fails", PLAIN, _failing, fixed(Cost.READ))
    return Edge(admin, [route], executor, limit=1024)


def _ask(path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        # The admin application re-raises what it answered 500 for, as Starlette does.
        transport = httpx.ASGITransport(app=_edge(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as c:
            return await c.get(path, headers=headers)

    return aio.run(go())


@pytest.mark.parametrize("path", ["/edge-fails", "/admin-fails"])
def test_a_500s_reference_is_the_request_id(path: str) -> None:
    with structlog.testing.capture_logs() as logged:
        answer = _ask(path)
    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    assert FRESH.fullmatch(request_id)
    assert answer.json()["message"] == f"internal error (reference {request_id})"
    assert "secret detail" not in answer.text
    failures = [e for e in logged if e["event"] == "unexpected_error"]
    assert [e["reference"] for e in failures] == [request_id]


@pytest.mark.parametrize("path", ["/edge-fails", "/admin-fails", "/admin-works", "/nowhere"])
def test_every_answer_echoes_a_safe_caller_id(path: str) -> None:
    assert _ask(path, **{"X-Request-Id": "caller-7"}).headers["x-request-id"] == "caller-7"
