"""Request ids: every answer carries one in ``X-Request-Id``, its access-log line names it,
and a 500's reference is it, so a caller's report, the log and the reply meet on one value.

A caller's own id (a proxy's, a client's trace id) is kept when it is short and made of
characters that need no escaping anywhere (a header, a JSON string, a log line); anything
else is replaced by a fresh one, never echoed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

HEADER = b"x-request-id"
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def choose(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The caller's ``X-Request-Id`` when it is safe, else a fresh one (32 hex digits)."""
    for name, value in headers:
        if name == HEADER:  # the server gives header names in lower case
            if _SAFE.fullmatch(value):
                return bytes(value)
            break
    return os.urandom(16).hex().encode()
