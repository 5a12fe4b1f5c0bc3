"""Structured logging: structlog for Keystead's own events, stdlib records (uvicorn,
SQLAlchemy) rendered the same way. Secrets never reach a log: callers log identifiers
and reasons only, and :func:`redact` masks known secret-bearing keys as a backstop."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import structlog

# The id of the request being answered (set by the edge for every HTTP request): in its
# access-log line, in every other line logged while answering it, and the reference of a 500.
REQUEST_ID: ContextVar[str | None] = ContextVar("keystead_request_id", default=None)

_SECRET_KEYS = frozenset(
    {"authorization", "password", "token", "secret", "signing_value", "cookie", "csrf"}
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[secure]"
    return event


def add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure(level: str = "info", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    _json_access.handler = handler if fmt == "json" else None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Keystead writes its own access log (without query strings); uvicorn's is off.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


# --- the access log -----------------------------------------------------------------------
# One line per request, on every request, so it has its own path: in JSON format the line is
# rendered here, with the same keys and order structlog gives it, and written to the log's
# handler under that handler's lock; in console format it goes through structlog.


class _JsonAccess:
    """The JSON handler (None in console format) and the current second, formatted."""

    def __init__(self) -> None:
        self.handler: logging.StreamHandler[Any] | None = None
        self.second = -1
        self.second_text = ""

    def timestamp(self, now: float) -> str:
        """ISO 8601 UTC with microseconds, as structlog's TimeStamper writes it."""
        second = int(now)
        if second != self.second:
            self.second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return f"{self.second_text}.{int((now - second) * 1_000_000):06d}Z"


_json_access = _JsonAccess()
_access = logging.getLogger("keystead.access")
_access_structured = get_logger("keystead.access")


def access(
    *,
    method: str,
    path: str,
    status: int,
    ms: float,
    access_key_id: str | None = None,
    request_id: str | None = None,
) -> None:
    """Log one request: method, path (never the query string), status, duration, its
    request id and, once its signature verified, the API key's public id. Nothing else, so
    no secret."""
    handler = _json_access.handler
    if handler is None:
        fields = {"access_key_id": access_key_id, "request_id": request_id}
        fields = {k: v for k, v in fields.items() if v is not None}
        _access_structured.info("request", method=method, path=path, status=status, ms=ms, **fields)
        return
    if not _access.isEnabledFor(logging.INFO):
        return
    key = "" if access_key_id is None else f', "access_key_id": {_json_string(access_key_id)}'
    # A request id is made of characters JSON writes as they are (web/requestids.py).
    rid = "" if request_id is None else f', "request_id": "{request_id}"'
    line = (
        f'{{"method": {_json_string(method)}, "path": {_json_string(path)}, '
        f'"status": {status}, "ms": {ms!r}{key}{rid}, "event": "request", "level": "info", '
        f'"logger": "keystead.access", "timestamp": "{_json_access.timestamp(time.time())}"}}\n'
    )
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.stream.flush()
    finally:
        handler.release()
