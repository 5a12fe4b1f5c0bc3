"""Verification of the identity provider's access tokens (no web, no database); what is
the provider's own (Entra: v1.0 tokens, ``tid``, ``oid``, app-only tokens) is asked of
:mod:`keystead.providers`.

Checks run in a fixed order, each with its own rejection class, before any claim is
trusted (see the validation checklist the project follows):

1. size and shape (≤ ``max_bytes``, three segments of canonical base64url, a header that
   is a UTF-8 JSON object, no ``crit``);
2. algorithm pinned to RS256 — never taken from the token;
3. key chosen only by ``kid`` from the configured key source; ``jku``, ``x5u``, ``jwk``
   and ``x5c`` headers are ignored;
4. signature, then ``exp``/``nbf``/``iat`` present, integers, within leeway;
5. exact issuer; the tenant the token names consistent with it; audience a single string
   from the accepted set; a user's token of the kind the provider issues (Entra: ``ver``
   1.0, not app-only) with a user name.

Every rejection carries a machine ``reason`` and a message an admin can act on; tokens
themselves are never put in messages or logs.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc import jws
from joserfc.jwk import RSAKey

from keystead import names
from keystead.caching import Immutable
from keystead.idp import config
from keystead.providers import PROVIDER

ALGORITHM = "RS256"
SIGN_IN = PROVIDER.sign_in


# The signature is checked by joserfc's RS256, the one algorithm its registry is given.
# The compact form around it is split here: joserfc's own compact objects cost 9 % of a
# sign-in exchange's server CPU (bench/sso.py), for three segments and two JSON documents.
_RS256 = jws.JWSRegistry(algorithms=[ALGORITHM]).get_alg(ALGORITHM)
# A compact JWS: three base64url segments (unpadded); the signature's may be empty.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenRejected(Exception):
    """Root of every rejection; ``reason`` is stable for logs and metrics.
    ``signed`` says whether the token's signature had verified (the identity provider made
    it) when it was rejected, or whether it may be anybody's garbage."""

    reason = "invalid_token"
    signed = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _AfterSignature(TokenRejected):
    """A rejection of a token whose signature verified: the identity provider made it."""

    signed = True


class MalformedToken(TokenRejected):
    reason = "malformed"  # not a compact JWS of acceptable size and shape


class WrongAlgorithm(TokenRejected):
    reason = "algorithm"  # any algorithm but RS256 (none, HS*, PS*, RS384/512)


class UnknownKey(TokenRejected):
    reason = "unknown_key"  # no kid, or a kid the configured key set does not publish


class BadSignature(TokenRejected):
    reason = "signature"


class Expired(_AfterSignature):
    reason = "expired"  # exp has passed (beyond leeway)


class NotYetValid(_AfterSignature):
    reason = "not_yet_valid"  # nbf or iat lies in the future (beyond leeway)


class MissingClaim(_AfterSignature):
    reason = "missing_claim"  # a required claim is absent or of the wrong type


class WrongIssuer(_AfterSignature):
    reason = "issuer"


class WrongTenant(_AfterSignature):
    reason = "tenant"  # the tenant the token names is not the configured issuer's


class WrongAudience(_AfterSignature):
    reason = "audience"  # aud is not exactly one of the accepted audiences


class WrongTokenKind(_AfterSignature):
    reason = "token_kind"  # a v2.0 or app-only token, or one without a user name


class KeySource(Protocol):
    def key_for(self, kid: str) -> RSAPublicKey | None:
        """The signing key with this ``kid``, or None if the issuer does not publish it."""
        ...


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must look like for one account."""

    issuer: str
    audiences: frozenset[str]
    leeway_seconds: int = 60
    max_bytes: int = 16_384
    username_claims: tuple[str, ...] = config.username_claims(config.DEFAULT_USERNAME_CLAIM)

    @property
    def tenant_id(self) -> str | None:
        return config.tenant_of_issuer(self.issuer)


@dataclass(frozen=True)
class VerifiedToken:
    username: str
    username_claim: str
    object_id: str | None
    tenant_id: str
    expires_at: int
    claims: Mapping[str, Any] = field(repr=False)


def verify(
    token: str, policy: TokenPolicy, keys: KeySource, *, now: float | None = None
) -> VerifiedToken:
    """Verify ``token`` against ``policy`` with keys from ``keys``; raise TokenRejected."""
    parsed = _header(token, policy)
    key = _key(parsed.header, keys)
    claims = _signed_claims(parsed, key)
    moment = int(time.time() if now is None else now)
    _check_times(claims, moment, policy.leeway_seconds)
    _check_issuer_and_tenant(claims, policy)
    _check_audience(claims, policy)
    return _user(claims, policy)


class _Compact(NamedTuple):
    """A compact JWS split: its header read, its payload and signature not yet."""

    header: dict[str, Any]
    signing_input: bytes  # what the signature covers: the first two segments as sent
    payload: str
    signature: str


def _header(token: str, policy: TokenPolicy) -> _Compact:
    """The token split (the payload not read yet) once its header passed."""
    if not isinstance(token, str) or not token:
        raise MalformedToken("no token")
    # surrogatepass: a lone surrogate (no HTTP header holds one) is refused by the shape
    # check below rather than raised from here as UnicodeEncodeError.
    if len(token.encode("utf-8", "surrogatepass")) > policy.max_bytes:
        raise MalformedToken(f"token is larger than {policy.max_bytes} bytes")
    if not _COMPACT.fullmatch(token):
        raise MalformedToken("token is not a signed JWT (three dot-separated base64url parts)")
    head, payload, signature = token.split(".")
    try:
        header = json.loads(_b64(head).decode())  # UTF-8 only (RFC 7515), never sniffed
    except (ValueError, RecursionError) as exc:
        raise MalformedToken("token header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise MalformedToken("token header is not a JSON object")
    if "crit" in header:
        raise MalformedToken("token declares critical header extensions")
    alg = header.get("alg")
    if alg != ALGORITHM:
        # Answered and logged for anybody's token: the header's value is echoed only as
        # short as an algorithm's name (like kid), not as up to 12 KB of anything.
        if isinstance(alg, str) and len(alg) <= 32:
            raise WrongAlgorithm(f"token algorithm {alg!r} is not {ALGORITHM}")
        raise WrongAlgorithm(f"token header names no algorithm ({ALGORITHM} required)")
    return _Compact(header, f"{head}.{payload}".encode(), payload, signature)


def _b64(segment: str) -> bytes:
    """A base64url segment (its alphabet already checked), without its padding; only its
    one canonical spelling."""
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    # Decoding ignores the bits past the last whole byte: unchecked, a genuine token would
    # verify under several spellings of its signature (16 for a 2048-bit key).
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        raise ValueError("not the canonical base64url of its bytes")
    return raw


def _key(header: dict[str, Any], keys: KeySource) -> RSAPublicKey:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise UnknownKey("token has no key id (kid)")
    key = keys.key_for(kid)
    if key is None:
        raise UnknownKey(f"key id {kid!r} is not published by the configured issuer")
    return key


def _signed_claims(parsed: _Compact, key: RSAPublicKey) -> dict[str, Any]:
    # Signature only here: every claim check below is explicit, in a fixed order, and the
    # claims are read only once it verified. The key is the one chosen by kid: no header
    # parameter (jwk, jku, x5c, x5u) is ever used as a key.
    try:
        valid = _RS256.verify(parsed.signing_input, _b64(parsed.signature), _jose_key(key))
    except ValueError:  # a signature segment that is no canonical base64url
        valid = False
    if not valid:
        raise BadSignature("token signature does not verify")
    try:
        claims = json.loads(_b64(parsed.payload).decode())
    except (ValueError, RecursionError) as exc:
        raise MalformedToken(f"token cannot be decoded: {type(exc).__name__}") from exc
    if not isinstance(claims, dict):
        raise MalformedToken("token payload is not a JSON object")
    return claims


# joserfc's key for each provider key, made once (making one exports the key as a JWK).
# By identity: the entry holds its key, so no other key can have that id while it lives.
_JOSE_KEYS: Immutable[int, tuple[RSAPublicKey, RSAKey]] = Immutable(1024)


def _jose_key(key: RSAPublicKey) -> RSAKey:
    return _JOSE_KEYS.get_or_load(id(key), lambda: (key, RSAKey.import_key(key)))[1]


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MissingClaim(f"token claim {name!r} is missing or not an integer")
    return value


def _check_times(claims: Mapping[str, Any], now: int, leeway: int) -> None:
    exp, nbf, iat = (_int_claim(claims, name) for name in ("exp", "nbf", "iat"))
    if now >= exp + leeway:
        raise Expired(f"token expired at {exp} (now {now}, leeway {leeway}s)")
    if nbf > now + leeway:
        raise NotYetValid(f"token is not valid before {nbf} (now {now})")
    if iat > now + leeway:
        raise NotYetValid(f"token was issued in the future ({iat}, now {now})")


def _check_issuer_and_tenant(claims: Mapping[str, Any], policy: TokenPolicy) -> None:
    issuer = claims.get("iss")
    if issuer != policy.issuer:
        hint = SIGN_IN.issuer_hint(issuer)
        raise WrongIssuer(f"issuer {policy.issuer} expected, token has {issuer!r}{hint}")
    tenant = SIGN_IN.tenant(claims)
    if not isinstance(tenant, str) or tenant.lower() != policy.tenant_id:
        raise WrongTenant(f"tenant {policy.tenant_id} expected, token has {tenant!r}")


def _check_audience(claims: Mapping[str, Any], policy: TokenPolicy) -> None:
    audience = claims.get("aud")
    if not isinstance(audience, str) or audience not in policy.audiences:
        expected = ", ".join(sorted(policy.audiences))
        raise WrongAudience(f"audience {expected} expected, token has {json.dumps(audience)}")


def _user(claims: Mapping[str, Any], policy: TokenPolicy) -> VerifiedToken:
    problem = SIGN_IN.token_problem(claims)
    if problem is not None:
        raise WrongTokenKind(problem)
    for name in policy.username_claims:
        if name not in claims:
            continue  # only an absent claim falls back to the next one
        value = claims[name]
        if not isinstance(value, str) or not value.strip():
            # Present but unusable: refusing beats falling back to a claim that may name
            # another user.
            raise MissingClaim(f"token claim {name!r} is present but not a user name")
        if not names.storable(value):  # no directory user can have such a name
            raise MissingClaim(
                f"token claim {name!r} is no user name: it holds a NUL character or a "
                "lone surrogate"
            )
        return VerifiedToken(
            username=value.strip(),
            username_claim=name,
            object_id=SIGN_IN.object_id(claims),
            tenant_id=str(SIGN_IN.tenant(claims)).lower(),
            expires_at=int(claims["exp"]),
            claims=claims,
        )
    raise WrongTokenKind(
        f"token carries no user name (looked for {', '.join(policy.username_claims)})"
    )
