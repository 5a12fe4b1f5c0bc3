"""Request ids: every answer carries one in ``X-Request-Id``, its access-log line names it,
and a 500's reference is it, so a caller's report, the log and the reply meet on one value.

A caller's own id (a proxy's, a client's trace id) is kept when it is short and made of
characters that need no escaping anywhere (a header, a JSON string, a log line); anything
else is replaced by a fresh one, never echoed. A fresh id is 128 random bits (32 hex
digits) from a generator seeded once per process from the system's: unique without a
system call per request, and, unlike a counter, telling a caller nothing of how many
requests the server answered. It is not a secret (a caller may send any id it likes).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable

HEADER = b"x-request-id"
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


_random = random.Random(os.urandom(32))  # noqa: S311 (not a secret)
# A forked worker must not repeat its parent.
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def choose(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` when it is safe, else a fresh one."""
    for name, value in headers:
        if name == HEADER:  # the server gives header names in lower case
            if _SAFE.fullmatch(value):
                return value.decode("ascii")
            break
    return _random.getrandbits(128).to_bytes(16).hex()
