"""Request bodies read as JSON by the adapters that parse their own (the SSO exchange, SCIM,
the data plane): the one place that says what such a body must be, so that no body, however
odd, gets past the parse as something a later step cannot handle."""

from __future__ import annotations

import json
import re
from typing import Any

from keystead.errors import BadRequest

# A \uD800-\uDFFF escape. In a pair it is one character beyond the BMP (ensure_ascii
# writers send emoji so); alone it decodes to a string that neither UTF-8 nor a database
# can hold. Only a body with one is checked for lone ones.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity, which JSON (RFC 8259) has not and PostgreSQL's json
    # type refuses.
    raise ValueError(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """The body's JSON value; BadRequest saying what is wrong if it is not UTF-8 JSON text."""
    try:
        # Strict UTF-8 (RFC 8259 §8.1): json.loads(bytes) would also take UTF-16 and let
        # encoded surrogates through. A leading byte order mark is tolerated, as before.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON ({exc})") from exc
    except RecursionError:  # the parser recurses once per level of nesting
        raise BadRequest("request body nests arrays or objects too deeply") from None
    if _SURROGATE_ESCAPE.search(body) is not None:
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise BadRequest(
                "request body holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                "a character"
            ) from None
    return value
