"""Verification of the Ubiq client's HMAC-SHA512 request signatures (no web, no database).

The client signs ``name: value\\n`` lines (every line, the last included, ends with a
newline) for the components listed in the ``headers`` parameter, in that order, with
``(created)`` from the ``created`` parameter and ``(request-target)`` = lower-case method,
a space, and the raw path?query exactly as sent. The key is the signing secret's UTF-8
bytes. See ``docs/`` and the client protocol description, section 3.

Only what was signed is trusted: a signature must cover ``(created)``,
``(request-target)``, ``digest`` and ``host``, so the verified target, body and host are
the ones the handlers read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from keystead.crypto import tokens
from keystead.errors import Unauthenticated

ALGORITHM = "hmac-sha512"
REQUIRED_COMPONENTS = frozenset({"(created)", "(request-target)", "digest", "host"})
MAX_HEADER_LENGTH = 4096
_PARAM = re.compile(r'\s*([A-Za-z]+)=(?:"([^"]*)"|([^",\s]*))\s*(?:,|$)')
_FIELDS = ("keyId", "algorithm", "created", "headers", "signature")  # in SignatureParams' order
_KNOWN_PARAMS = frozenset(_FIELDS)
# The exact shape every Ubiq client writes (§3.4). A header of this shape is read in one
# match with the same values the general parser would find; any other goes to that parser.
_CLIENT_SHAPE = re.compile(
    r'keyId="([^"]*)", algorithm="([^"]*)", created=([0-9]+), headers="([^"]*)", '
    r'signature="([^"]*)"'
)


class SignatureError(Unauthenticated):
    """The request's signature does not verify. ``reason`` is for logs, never for clients:
    every failure answers with the same message so that the response is no key-id oracle."""

    def __init__(self, reason: str) -> None:
        super().__init__("the request signature is not valid")
        self.reason = reason


# Values made on every data-plane request are NamedTuples: as immutable as a frozen
# dataclass, and several times cheaper to make.
class SignatureParams(NamedTuple):
    key_id: str
    algorithm: str
    created: int
    headers: tuple[str, ...]
    signature: bytes


def parse_signature_header(value: str) -> SignatureParams:
    """Parse ``keyId="…", algorithm="…", created=…, headers="…", signature="…"``."""
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError("Signature header too long")
    shape = _CLIENT_SHAPE.fullmatch(value)
    if shape is not None:
        key_id, algorithm, created, headers, signature = shape.groups()
    else:
        params: dict[str, str] = {}
        position = 0
        while position < len(value):
            match = _PARAM.match(value, position)
            if match is None or match.end() == position:
                raise SignatureError("Signature header is malformed")
            name = match.group(1)
            if name in params:
                raise SignatureError(f"Signature parameter {name} repeated")
            params[name] = match.group(2) if match.group(2) is not None else match.group(3)
            position = match.end()
        unknown = set(params) - _KNOWN_PARAMS
        missing = _KNOWN_PARAMS - set(params)
        if unknown or missing:
            raise SignatureError(
                f"Signature parameters unknown {sorted(unknown)} missing {sorted(missing)}"
            )
        key_id, algorithm, created, headers, signature = (params[n] for n in _FIELDS)
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not (created.isascii() and created.isdigit()):
            raise SignatureError("Signature created is not a Unix time")
    return SignatureParams(key_id, algorithm, int(created), tuple(headers.split()), _mac(signature))


def _mac(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise SignatureError("Signature signature is not base64") from exc


def body_digest(body: bytes) -> str:
    if not body:
        return _EMPTY_BODY_DIGEST
    return "SHA-512=" + base64.b64encode(hashlib.sha512(body).digest()).decode()


_EMPTY_BODY_DIGEST = "SHA-512=" + base64.b64encode(hashlib.sha512(b"").digest()).decode()


def signing_string(
    params: SignatureParams, *, method: str, target: str, header: Callable[[str], str | None]
) -> bytes:
    """The exact bytes the client signed, rebuilt from what was received."""
    lines = []
    for name in params.headers:
        if name == "(created)":
            value: str | None = str(params.created)
        elif name == "(request-target)":
            value = f"{method.lower()} {target}"
        else:
            value = header(name)
        if value is None:
            raise SignatureError(f"signed header {name} is absent from the request")
        lines.append(f"{name}: {value}\n")
    return "".join(lines).encode()


class SignedRequest(NamedTuple):
    """What a verifier needs from the HTTP request, raw."""

    method: str
    target: str  # raw path?query, as received
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def check_structure(
    params: SignatureParams, request: SignedRequest, *, now: int, skew: int
) -> None:
    """Everything that can be checked before the key is known."""
    if params.algorithm != ALGORITHM:
        raise SignatureError(f"algorithm {params.algorithm!r} is not {ALGORITHM}")
    missing = REQUIRED_COMPONENTS - set(params.headers)
    if missing:
        raise SignatureError(f"signature does not cover {sorted(missing)}")
    if len(set(params.headers)) != len(params.headers):
        raise SignatureError("signature lists a component twice")
    if abs(now - params.created) > skew:
        raise SignatureError(f"created {params.created} is outside ±{skew}s of {now}")
    digest = request.headers.get("digest")
    # tokens.same compares bytes: hmac.compare_digest raises TypeError on non-ASCII text,
    # and a Digest header may hold any Latin-1 character.
    if digest is None or not tokens.same(digest, body_digest(request.body)):
        raise SignatureError("Digest does not match the body")


def verify_mac(params: SignatureParams, request: SignedRequest, secret: str | bytes) -> None:
    """Recompute the HMAC with ``secret`` (text, or its UTF-8 bytes) and compare in
    constant time."""
    message = signing_string(
        params, method=request.method, target=request.target, header=request.headers.get
    )
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.digest(key, message, "sha512")
    if not hmac.compare_digest(expected, params.signature):
        raise SignatureError("HMAC does not match")
