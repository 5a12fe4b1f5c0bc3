"""Work the executor starts on the event loop must never wait: not for SQLite's write lock,
not for an identity provider. Inside :func:`no_waiting` whatever would wait raises
:class:`WouldWait` before doing anything, and the executor runs the work again on a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_NO_WAITING: ContextVar[bool] = ContextVar("keystead_no_waiting", default=False)


class WouldWait(Exception):
    """The work would have waited; nothing was done."""


@contextmanager
def no_waiting() -> Iterator[None]:
    token = _NO_WAITING.set(True)
    try:
        yield
    finally:
        _NO_WAITING.reset(token)


def may_wait() -> bool:
    return not _NO_WAITING.get()
