"""`POST /{customer_id}/api/v3/scim/sso`: the HTTP side of the SSO exchange.

Answers 200 ``{public_value, signing_value, api_cert}`` or a JSON ``{message, reason}``
with 400 (body or CSR), 401 (token), 403 (account or directory state), 404 (account),
405 (not a POST), 413 (body over the limit) or 503 (the provider's keys cannot be
fetched). Every exchange that reaches the account's settings goes to its provisioning
log, except a refused token no provider signed (those are counted, `sso/unverified.py`);
every refusal also goes to the service log with its reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from keystead.caching import Immutable
from keystead.errors import BadRequest, KeysteadError, MethodNotAllowed
from keystead.logs import get_logger
from keystead.runtime import Runtime
from keystead.scim import log as provisioning_log
from keystead.sso import certificates
from keystead.sso.exchange import Exchange, SignInRefused
from keystead.sso.unverified import UnverifiedRefusals
from keystead.web import jsonbody
from keystead.web.edge import Answer, Incoming, Route
from keystead.web.executor import Cost

PATH = "/{customer_id}/api/v3/scim/sso"
ORDINARY_REQUEST = 16 * 1024  # bytes of token and body; a CSR is 2 KB, a token 1-4 KB
log = get_logger("keystead.sso")


# The client sends the same body (its CSR) on every renewal for its lifetime: each is
# checked once (a body always yields the same verdict and key; a refused one is not kept).
_CSR_KEYS: Immutable[bytes, RSAPublicKey] = Immutable(4096)


def _csr_key(body: bytes | KeysteadError) -> RSAPublicKey:
    if isinstance(body, KeysteadError):  # refused as it was read
        raise SignInRefused(body.status, "bad_request", body.message)
    return _CSR_KEYS.get_or_load(body, lambda: certificates.csr_public_key(_csr_of(body)))


def _csr_of(body: bytes) -> str:
    try:
        document = jsonbody.loads(body)
    except BadRequest as exc:
        raise SignInRefused(
            400,
            "bad_request",
            f'{exc.message}; the body must be JSON: {{"csr": "-----BEGIN CERTIFICATE '
            'REQUEST-----…"}',
        ) from None
    if not isinstance(document, dict) or "csr" not in document:
        raise SignInRefused(400, "bad_request", "the body must be a JSON object with a 'csr' field")
    csr = document["csr"]
    if not isinstance(csr, str):
        raise SignInRefused(400, "bad_csr", "'csr' must be a PEM string")
    return csr


def exchange_once(
    runtime: Runtime,
    exchange: Exchange,
    unverified: UnverifiedRefusals,
    customer_id: str,
    authorization: str | None,
    body: bytes | KeysteadError,
) -> tuple[int, dict[str, str]]:
    setup = None
    user_name: str | None = None
    try:
        setup = exchange.setup(runtime.db, customer_id)
        if setup.ca_cert_pem is None:
            with runtime.db.write() as session:
                setup = exchange.ensure_authority(session, setup)
        token = exchange.verify_token(setup, authorization)
        user_name = token.username
        try:
            public_key = _csr_key(body)
        except certificates.CertificateError as exc:
            raise SignInRefused(400, "bad_csr", str(exc), user=user_name) from exc
        now = datetime.now(UTC)
        not_after = exchange.not_after(setup, token, now)
        key = exchange.bind(runtime.db, setup, token)
        exchange.settle(runtime.db, setup, key, token)
        pem = exchange.certificate(setup, key, public_key, not_after, now)
        signing_value = exchange.signing_value(key)
        # Added last: a busy writer (WouldWait) above reruns the exchange on a thread.
        exchange.entries.add(
            _entry(
                setup.account_id,
                200,
                key.user_name,
                f"signed in; certificate valid until {not_after.isoformat()}",
                user_id=str(key.user_id),
            )
        )
        # Granted exchanges are in the provisioning log; the service log keeps refusals.
        return 200, {
            "public_value": key.access_key_id,
            "signing_value": signing_value,
            "api_cert": pem,
        }
    except SignInRefused as refused:
        who = refused.user or user_name
        if setup is not None and not refused.signed:
            # Nobody's token (garbage, forged, unknown key): counted, never a log row each.
            unverified.note(setup.account_id)
        elif setup is not None:
            exchange.entries.add(
                _entry(setup.account_id, refused.status, who, refused.message, refused.reason)
            )
        log.info(
            "sso_refused",
            customer_id=customer_id[:64],
            user=who,
            status=refused.status,
            reason=refused.reason,
            detail=refused.message,
        )
        return refused.status, {"message": refused.message, "reason": refused.reason}


def _entry(
    account_id: uuid.UUID,
    status: int,
    user_name: str | None,
    detail: str,
    reason: str | None = None,
    *,
    user_id: str | None = None,
) -> dict[str, Any]:
    return provisioning_log.entry(
        account_id=account_id,
        method="POST",
        operation=provisioning_log.SIGN_IN,
        resource_type="User",
        resource_id=user_id,
        resource_name=user_name,
        status=status,
        scim_type=reason,
        detail=detail,
    )


class Sso:
    """The exchange's error format: ``{message, reason}``, never cached."""

    REASONS: ClassVar[dict[int, str]] = {
        405: "method_not_allowed",
        409: "conflict",
        500: "internal",
        503: "unavailable",
    }

    def refusal(self, exc: KeysteadError) -> Answer:
        reason = self.REASONS.get(exc.status, "refused")
        return _answer(exc.status, {"message": exc.message, "reason": reason}, exc)


SSO = Sso()


def _answer(status: int, payload: dict[str, str], exc: KeysteadError | None = None) -> Answer:
    headers = [(b"cache-control", b"no-store")]
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allowed).encode()))
    # Every value is text: written as json.dumps writes it, by json's own C escaper, without
    # the encoder object json.dumps sets up on each call (which cost more than the escaping).
    body = ", ".join(
        [f"{_json_string(name)}: {_json_string(value)}" for name, value in payload.items()]
    )
    return Answer(status, b"{%s}" % body.encode(), headers=headers)


def routes(runtime: Runtime, exchange: Exchange, unverified: UnverifiedRefusals) -> list[Route]:
    """The exchange as a route of the edge. A body the edge refused (too large, a NUL
    character) is judged with the CSR: a refusal like any other, in the provisioning log."""

    def handle(incoming: Incoming) -> Answer:
        status, payload = exchange_once(
            runtime,
            exchange,
            unverified,
            str(incoming.params["customer_id"]),
            incoming.header("authorization"),
            incoming.refused or incoming.body,
        )
        return _answer(status, payload)

    # Two signature checks, one signature and point reads and writes: constant work, as
    # long as the token is of ordinary size (a token's groups are stored one row each).
    def cost(incoming: Incoming) -> Cost:
        sent = len(incoming.body) + len(incoming.header("authorization") or "")
        return Cost.WRITE if sent <= ORDINARY_REQUEST else Cost.GROWS

    return [Route(("POST",), PATH, SSO, handle, cost)]
