"""Request bodies read as JSON by the adapters that parse their own (the SSO exchange, SCIM,
the data plane): the one place that says what such a body must be, so that no body, however
odd, gets past the parse as something a later step cannot handle."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from keystead.errors import BadRequest

# A \uD800-\uDFFF escape. In a pair it is one character beyond the BMP (ensure_ascii
# writers send emoji so); alone it decodes to a string that neither UTF-8 nor a database
# can hold. Only a body with one is checked for lone ones.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _NotJson(ValueError):
    """Text Python's parser reads that JSON has not."""


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity, which JSON (RFC 8259) has not and PostgreSQL's json
    # type refuses.
    raise _NotJson(f"{name} is not a JSON number")


MAX_DEPTH = 64  # no request Keystead serves nests deeper; stored JSON must re-encode


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays or objects more than ``limit`` levels deep (walked
    without recursion: the point is values too deep for recursive code)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads(body: bytes, *, what: str = "request body") -> Any:
    """The body's JSON value; BadRequest saying what is wrong if it is not UTF-8 JSON text
    nested at most ``MAX_DEPTH`` levels deep (deeper values made 500s later: a library's
    recursion limit when they are rendered or stored)."""
    try:
        # Strict UTF-8 (RFC 8259 §8.1): json.loads(bytes) would also take UTF-16 and let
        # encoded surrogates through. A leading byte order mark is tolerated, as before.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, _NotJson) as exc:
        raise BadRequest(f"{what} is not valid JSON ({exc})") from exc
    except ValueError:
        # The one other refusal: an integer longer than Python converts (a guard against
        # quadratic conversion). Its own message advises raising that limit, which is the
        # operator's business, not the client's.
        raise BadRequest(
            f"{what} holds a number with more than {sys.get_int_max_str_digits()} digits"
        ) from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise BadRequest(f"{what} nests arrays or objects too deeply") from None
    if nesting_exceeds(value, MAX_DEPTH):
        raise BadRequest(f"{what} nests arrays or objects more than {MAX_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(body) is not None:
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise BadRequest(
                f"{what} holds a lone surrogate escape (\\ud800-\\udfff), which is not a character"
            ) from None
    return value
