"""Request ids: every answer carries one in ``X-Request-Id``, its access-log line names it,
and a 500's reference is it, so a caller's report, the log and the reply meet on one value.

A caller's own id (a proxy's, a client's trace id) is kept when it is short and made of
characters that need no escaping anywhere (a header, a JSON string, a log line); anything
else is replaced by a fresh one, never echoed. A fresh id is 32 hex digits: 16 random per
process, then a counter. It has to be unique, not secret (a caller may send any id it
likes), and a random number per request would cost a system call on the hot path.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable

HEADER = b"x-request-id"
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class _Fresh:
    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1 << 63)  # always 16 hex digits

    def __call__(self) -> str:
        return self.prefix + hex(next(self.counter))[2:]


fresh = _Fresh()
os.register_at_fork(after_in_child=fresh.renew)  # a forked worker must not repeat its parent


def choose(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` when it is safe, else a fresh one."""
    for name, value in headers:
        if name == HEADER:  # the server gives header names in lower case
            if _SAFE.fullmatch(value):
                return value.decode("ascii")
            break
    return fresh()
