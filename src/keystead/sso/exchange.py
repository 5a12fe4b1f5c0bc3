"""The SSO exchange: an identity provider's access token and a CSR in, the user's API key
credentials and a short-lived certificate out.

Order matters: the account's settings, then the token (only with the configured issuer's
keys), then the CSR, then the directory binding (user active, key enabled), then the
certificate. Every refusal is a :class:`SignInRefused` with a stable ``reason``; the
adapter logs it (never the token) and records it in the provisioning log.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from keystead import names
from keystead.apikeys.service import signing_key_context
from keystead.crypto.masterkey import MasterKey
from keystead.errors import KeysteadError
from keystead.idp import config, verify
from keystead.idp import service as idp
from keystead.idp.jwks import KeysUnavailable
from keystead.idp.keysets import KeySets
from keystead.logs import get_logger
from keystead.sso import certificates
from keystead.storage.models import (
    Account,
    ApiKey,
    DirectoryUser,
    IdpSettings,
    SsoTokenGroup,
)

log = get_logger("keystead.sso")
_GUID = re.compile(config.GUID)
MAX_TOKEN_GROUPS = 1000


class SignInRefused(KeysteadError):
    """A refused exchange; ``reason`` is stable for logs, ``user`` names whom it concerned."""

    def __init__(self, status: int, reason: str, message: str, *, user: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.user = user


@dataclass(frozen=True)
class Credentials:
    """The exchange's answer (the client's papi, sapi and certificate)."""

    public_value: str
    signing_value: str
    api_cert: str
    user_name: str
    user_id: uuid.UUID
    not_after: datetime

    def wire(self) -> dict[str, str]:
        return {
            "public_value": self.public_value,
            "signing_value": self.signing_value,
            "api_cert": self.api_cert,
        }


@dataclass(frozen=True)
class _Setup:
    account_id: uuid.UUID
    policy: verify.TokenPolicy
    discovery_url: str
    cert_ttl: int
    group_policy: str
    ca_cert_pem: str | None
    ca_key_wrapped: bytes | None


class Exchange:
    """Holds the process-wide pieces: signing-key caches and unwrapped CA keys."""

    def __init__(self, master: MasterKey, keysets: KeySets) -> None:
        self.master = master
        self.keysets = keysets
        self._authorities: dict[tuple[uuid.UUID, str], certificates.Authority] = {}
        self._lock = threading.Lock()

    # --- steps -----------------------------------------------------------------------

    def setup(
        self, session: Session, customer_id: str, *, create_authority: bool = False
    ) -> _Setup:
        """The account's sign-in settings; with ``create_authority`` (in a write), the CA of
        an account enabled before certificate authorities existed is made now."""
        try:
            account_id = uuid.UUID(customer_id)
        except ValueError:
            raise SignInRefused(
                404, "unknown_account", f"customer id {customer_id!r} is not a UUID"
            ) from None
        account = session.get(Account, account_id)
        if account is None:
            raise SignInRefused(404, "unknown_account", f"no account has customer id {customer_id}")
        settings = session.get(IdpSettings, account_id)
        if account.plan != "enterprise" or settings is None or not settings.enabled:
            raise SignInRefused(
                403,
                "integration_disabled",
                "IDP integration is not enabled for this account (`keystead idp enable`)",
            )
        if not (settings.discovery_url and settings.issuer and settings.audience):
            raise SignInRefused(
                403,
                "not_configured",
                "sign-in is not configured for this account: set the discovery URL, issuer "
                "and audience (`keystead idp configure`)",
            )
        if create_authority:
            idp.ensure_authority(session, settings, self.master)
        return _Setup(
            account_id=account_id,
            policy=verify.TokenPolicy(
                issuer=settings.issuer,
                audiences=frozenset({settings.audience}),
                leeway_seconds=settings.leeway_seconds,
                username_claims=config.username_claims(settings.username_claim),
            ),
            discovery_url=settings.discovery_url,
            cert_ttl=settings.cert_ttl_seconds,
            group_policy=settings.group_policy,
            ca_cert_pem=settings.ca_cert_pem,
            ca_key_wrapped=settings.ca_key_wrapped,
        )

    def verify_token(self, setup: _Setup, authorization: str | None) -> verify.VerifiedToken:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SignInRefused(
                401,
                "no_token",
                "an access token from the identity provider is required (Authorization: Bearer …)",
            )
        keys = self.keysets.for_account(setup.account_id, setup.discovery_url)
        try:
            return verify.verify(token.strip(), setup.policy, keys)
        except verify.TokenRejected as exc:
            raise SignInRefused(401, exc.reason, f"sign-in token rejected: {exc.message}") from exc
        except KeysUnavailable as exc:
            raise SignInRefused(
                503,
                "keys_unavailable",
                "the identity provider's signing keys cannot be fetched right now; try again "
                "later (an admin can run `keystead idp test`)",
            ) from exc

    def bind(
        self, session: Session, setup: _Setup, token: verify.VerifiedToken
    ) -> tuple[DirectoryUser, ApiKey]:
        """The directory user the token names, active, with its enabled auto key."""
        user = session.scalar(
            select(DirectoryUser).where(
                DirectoryUser.account_id == setup.account_id,
                DirectoryUser.user_name_key == names.name_key(token.username),
            )
        )
        who = token.username
        if user is None:
            raise SignInRefused(
                403,
                "unknown_user",
                f"user {who!r} (token claim {token.username_claim}) has not been provisioned "
                "to Keystead; assign them to the enterprise application in Entra and let "
                "provisioning run",
                user=who,
            )
        external = (user.external_id or "").strip()
        if _GUID.fullmatch(external) and (token.object_id or "").lower() != external.lower():
            raise SignInRefused(
                403,
                "object_id_mismatch",
                f"user {user.user_name!r} is provisioned with object id {external}, but the "
                f"token's oid is {token.object_id!r} (a reused or renamed user name)",
                user=user.user_name,
            )
        if not user.active:
            raise SignInRefused(
                403,
                "user_inactive",
                f"user {user.user_name!r} is inactive in the directory",
                user=user.user_name,
            )
        key = session.scalar(select(ApiKey).where(ApiKey.directory_user_id == user.id))
        if key is None or not key.enabled:
            raise SignInRefused(
                403,
                "key_disabled",
                f"the API key of user {user.user_name!r} is disabled",
                user=user.user_name,
            )
        return user, key

    def apply_group_policy(
        self, session: Session, setup: _Setup, key: ApiKey, token: verify.VerifiedToken
    ) -> None:
        """Under "directory_and_token", remember the token's groups for the access rule."""
        if setup.group_policy != "directory_and_token":
            key.token_groups_enforced = False
            return
        claims = token.claims
        groups = claims.get("groups")
        overage = (
            isinstance(claims.get("_claim_names"), dict) and "groups" in claims["_claim_names"]
        )
        session.execute(delete(SsoTokenGroup).where(SsoTokenGroup.api_key_id == key.id))
        if groups is None and overage:
            log.info(
                "sso_groups_overage",
                account=str(setup.account_id),
                user=token.username,
                notice="token lists too many groups (overage); directory memberships apply",
            )
            key.token_groups_enforced = False
            return
        refs = sorted(
            {g for g in groups if isinstance(g, str) and 0 < len(g) <= 256}
            if isinstance(groups, list)
            else set()
        )[:MAX_TOKEN_GROUPS]
        if not isinstance(groups, list):
            log.warning(
                "sso_groups_missing",
                account=str(setup.account_id),
                user=token.username,
                notice="token has no groups claim; no directory group counts until the app "
                "registration emits groups (groupMembershipClaims)",
            )
        if refs:
            session.execute(
                insert(SsoTokenGroup), [{"api_key_id": key.id, "group_ref": r} for r in refs]
            )
        key.token_groups_enforced = True

    def certificate(
        self,
        setup: _Setup,
        key: ApiKey,
        public_key: Any,
        token: verify.VerifiedToken,
        now: datetime,
    ) -> tuple[str, datetime]:
        # Never outlive the token the tenant issued.
        not_after = min(
            now + timedelta(seconds=setup.cert_ttl),
            datetime.fromtimestamp(token.expires_at, UTC),
        )
        not_after = max(not_after, now + timedelta(seconds=1))
        pem = certificates.issue(
            self._authority(setup),
            public_key,
            access_key_id=key.access_key_id,
            not_after=not_after,
            now=now,
        )
        return pem, not_after

    def _authority(self, setup: _Setup) -> certificates.Authority:
        assert setup.ca_cert_pem is not None
        assert setup.ca_key_wrapped is not None
        cache_key = (setup.account_id, setup.ca_cert_pem)
        found = self._authorities.get(cache_key)
        if found is None:
            with self._lock:
                key_der = self.master.unwrap(
                    setup.ca_key_wrapped, idp.ca_key_context(setup.account_id)
                )
                found = certificates.load_authority(setup.ca_cert_pem, key_der)
                self._authorities[cache_key] = found
        return found

    def signing_value(self, key: ApiKey) -> str:
        return self.master.unwrap(key.wrapped_signing_key, signing_key_context(key.id)).decode()
