"""`POST /{customer_id}/api/v3/scim/sso`: the HTTP side of the SSO exchange.

Answers 200 ``{public_value, signing_value, api_cert}`` or a JSON ``{message, reason}``
with 400 (body or CSR), 401 (token), 403 (account or directory state), 404 (account),
405 (not a POST), 413 (body over the limit) or 503 (the provider's keys cannot be
fetched). Every exchange, granted or refused, goes to the account's provisioning log;
refusals also to the service log with their reason.
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from keystead.errors import BadRequest, KeysteadError
from keystead.logs import get_logger
from keystead.runtime import Runtime
from keystead.scim import log as provisioning_log
from keystead.sso import certificates
from keystead.sso.exchange import Exchange, SignInRefused
from keystead.sso.unverified import UnverifiedRefusals
from keystead.web import jsonbody
from keystead.web.middleware import AccessLog, ClientGone, read_body

PATH = "/{customer_id}/api/v3/scim/sso"
log = get_logger("keystead.sso")


@functools.lru_cache(maxsize=4096)
def _csr_key(pem: str) -> RSAPublicKey:
    """The client sends the same CSR on every renewal for its lifetime: check it once."""
    return certificates.csr_public_key(pem)


def _csr_of(body: bytes | KeysteadError) -> str:
    if isinstance(body, KeysteadError):  # refused as it was read
        raise SignInRefused(body.status, "bad_request", body.message)
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
) -> tuple[int, dict[str, Any]]:
    setup = None
    user_name: str | None = None
    try:
        with runtime.db.autocommit() as connection:
            setup = exchange.setup(connection, customer_id)
        if setup.ca_cert_pem is None:
            with runtime.db.write() as session:
                setup = exchange.ensure_authority(session, setup)
        token = exchange.verify_token(setup, authorization)
        user_name = token.username
        try:
            public_key = _csr_key(_csr_of(body))
        except certificates.CertificateError as exc:
            raise SignInRefused(400, "bad_csr", str(exc), user=user_name) from exc
        now = datetime.now(UTC)
        not_after = exchange.not_after(setup, token, now)
        # Only the directory binding and its log entry hold the write lock; the certificate
        # is signed after the commit.
        with runtime.db.write() as session:
            key = exchange.bind(session, setup, token)
            exchange.apply_group_policy(session, setup, key, token)
            provisioning_log.record(
                session,
                account_id=setup.account_id,
                method="POST",
                operation="sso",
                resource_type="User",
                resource_id=str(key.user_id),
                resource_name=key.user_name,
                status=200,
                detail=f"signed in; certificate valid until {not_after.isoformat()}",
            )
        pem = exchange.certificate(setup, key, public_key, not_after, now)
        # Granted exchanges are in the provisioning log; the service log keeps refusals.
        return 200, {
            "public_value": key.access_key_id,
            "signing_value": exchange.signing_value(key),
            "api_cert": pem,
        }
    except SignInRefused as refused:
        who = refused.user or user_name
        log.info(
            "sso_refused",
            customer_id=customer_id[:64],
            user=who,
            status=refused.status,
            reason=refused.reason,
            detail=refused.message,
        )
        if setup is not None and not refused.signed:
            # Nobody's token (garbage, forged, unknown key): counted, never a log row each.
            unverified.note(setup.account_id)
        elif setup is not None:
            with runtime.db.write() as session:
                provisioning_log.record(
                    session,
                    account_id=setup.account_id,
                    method="POST",
                    operation="sso",
                    resource_type="User",
                    resource_id=None,
                    resource_name=who,
                    status=refused.status,
                    scim_type=refused.reason,
                    detail=refused.message,
                )
        return refused.status, {"message": refused.message, "reason": refused.reason}


class SsoDispatch:
    """ASGI: requests to :data:`PATH` answered here, everything else to ``fallback``.

    The exchange reads its own body (the same size limit and NUL refusal the middleware
    applies to every other request), so that a body refused for either is a refusal like
    any other: ``{message, reason}``, in the provisioning log. The access log line is the
    middleware's own.
    """

    def __init__(self, fallback: ASGIApp, runtime: Runtime, exchange: Exchange) -> None:
        self.fallback, self.runtime, self.exchange = fallback, runtime, exchange
        self.unverified = UnverifiedRefusals(runtime.db)
        self.path = compile_path(PATH)[0]
        self.limit = runtime.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.path.match(scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.fallback(scope, receive, send)
            return
        answer = functools.partial(self._answer, found["customer_id"])
        await AccessLog(answer)(scope, receive, send)

    async def _answer(self, customer_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            refusal = {
                "message": f"method {scope['method']} is not allowed; the exchange is a POST",
                "reason": "method_not_allowed",
            }
            await JSONResponse(refusal, status_code=405, headers={"Allow": "POST"})(
                scope, receive, send
            )
            return
        try:
            body: bytes | KeysteadError = await read_body(scope, receive, self.limit)
        except ClientGone:
            return  # nobody to answer
        except KeysteadError as exc:  # too large, or a NUL character: judged with the CSR
            body = exc
        try:
            status, payload = await run_in_threadpool(
                exchange_once,
                self.runtime,
                self.exchange,
                self.unverified,
                customer_id,
                Headers(scope=scope).get("authorization"),
                body,
            )
        except Exception as exc:  # the client gets a reference, the log the details
            reference = secrets.token_hex(6)
            log.error("unexpected_error", path=scope["path"], reference=reference, exc_info=exc)
            status = 500
            payload = {"message": f"internal error (reference {reference})", "reason": "internal"}
        response = JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)
