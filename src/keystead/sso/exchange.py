"""The SSO exchange: an identity provider's access token and a CSR in, the user's API key
credentials and a short-lived certificate out.

Order matters: the account's settings, then the token (only with the configured issuer's
keys), then the CSR, then the directory binding (user active, key enabled), then the
certificate. Every refusal is a :class:`SignInRefused` with a stable ``reason``; the
adapter logs it (never the token) and records it in the provisioning log.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from sqlalchemy import Connection, Dialect, String, Uuid, bindparam, delete, select, update
from sqlalchemy.orm import Session

from keystead import names
from keystead.apikeys.service import signing_key_context
from keystead.caching import Immutable
from keystead.crypto.masterkey import MasterKey
from keystead.errors import ConfigurationError, KeysteadError
from keystead.idp import config, verify
from keystead.idp import service as idp
from keystead.idp.jwks import KeysUnavailable
from keystead.idp.keysets import KeySets
from keystead.logs import get_logger
from keystead.providers import PROVIDER
from keystead.scim import log as provisioning_log
from keystead.sso import certificates
from keystead.storage.dialect import insert_ignoring_duplicates
from keystead.storage.driver import DriverQuery
from keystead.storage.models import (
    Account,
    ApiKey,
    DirectoryUser,
    IdpSettings,
    SsoTokenGroup,
)
from keystead.storage.session import Database

log = get_logger("keystead.sso")
MAX_TOKEN_GROUPS = 1000


class SignInRefused(KeysteadError):
    """A refused exchange; ``reason`` is stable for logs, ``user`` names whom it concerned.
    ``signed``: the token's signature had verified (else anyone could have sent it)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        user: str | None = None,
        signed: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.user = user
        self.signed = signed


class Bound(NamedTuple):
    """The directory user a token named and its auto-provisioned key."""

    user_id: uuid.UUID
    user_name: str
    key_id: uuid.UUID
    access_key_id: str
    wrapped_signing_key: bytes
    token_groups_enforced: bool
    pin: str | None  # the object id to bind the user to at its first sign-in, else None


def _same_person(user_name: str, pinned: str, token: verify.VerifiedToken) -> None:
    """Refuse a token whose oid is not the one the user's first sign-in bound."""
    if (token.object_id or "").strip().lower() != pinned.lower():
        raise SignInRefused(
            403,
            "object_id_mismatch",
            f"user {user_name!r} signed in before as the identity provider's object {pinned}, "
            f"but this token's is {token.object_id!r}: the user name now belongs to someone "
            f"else. To bind the new person, {PROVIDER.sign_in.rebind_fix}",
            user=user_name,
        )


# Built once: constructing statements costs more than running them.
_SETUP = (
    select(
        Account.plan,
        IdpSettings.enabled,
        IdpSettings.discovery_url,
        IdpSettings.issuer,
        IdpSettings.audience,
        IdpSettings.username_claim,
        IdpSettings.leeway_seconds,
        IdpSettings.cert_ttl_seconds,
        IdpSettings.group_policy,
        IdpSettings.ca_cert_pem,
        IdpSettings.ca_key_wrapped,
    )
    .select_from(Account)
    .outerjoin(IdpSettings, IdpSettings.account_id == Account.id)
    .where(Account.id == bindparam("account_id", type_=Uuid()))
)


class _SetupRow(NamedTuple):
    """An account and its sign-in settings. Without a settings row (never enabled) every
    settings column is None: `enabled` None fails the integration check before any other
    is read, so they are typed as an account with settings has them."""

    plan: str
    enabled: bool
    discovery_url: str | None
    issuer: str | None
    audience: str | None
    username_claim: str
    leeway_seconds: int
    cert_ttl_seconds: int
    group_policy: str
    ca_cert_pem: str | None
    ca_key_wrapped: bytes | None


_BIND = (
    select(
        DirectoryUser.id.label("user_id"),
        DirectoryUser.user_name,
        DirectoryUser.external_id,
        DirectoryUser.active,
        DirectoryUser.pinned_object_id,
        ApiKey.id.label("key_id"),
        ApiKey.access_key_id,
        ApiKey.enabled.label("key_enabled"),
        ApiKey.suspended.label("key_suspended"),
        ApiKey.wrapped_signing_key,
        ApiKey.token_groups_enforced,
    )
    .outerjoin(ApiKey, ApiKey.directory_user_id == DirectoryUser.id)
    .where(
        DirectoryUser.account_id == bindparam("account_id", type_=Uuid()),
        DirectoryUser.user_name_key == bindparam("name_key", type_=String()),
    )
)


class _BindRow(NamedTuple):
    """A directory user and its auto-provisioned key; the key's columns are None when it
    has none (key_id None is checked before any other is read)."""

    user_id: uuid.UUID
    user_name: str
    external_id: str | None
    active: bool
    pinned_object_id: str | None
    key_id: uuid.UUID | None
    access_key_id: str
    key_enabled: bool
    key_suspended: bool
    wrapped_signing_key: bytes
    token_groups_enforced: bool


class _Setup(NamedTuple):
    account_id: uuid.UUID
    policy: verify.TokenPolicy
    discovery_url: str
    cert_ttl: int
    group_policy: str
    ca_cert_pem: str | None
    ca_key_wrapped: bytes | None


def _setup(account_id: uuid.UUID, row: _SetupRow) -> _Setup:
    """The settings a sign-in uses, or the refusal of every sign-in to the account."""
    if not idp.integration_active(row.plan, row.enabled):
        raise SignInRefused(
            403,
            "integration_disabled",
            "IDP integration is not enabled for this account (`keystead idp enable`)",
        )
    if not (row.discovery_url and row.issuer and row.audience):
        raise SignInRefused(
            403,
            "not_configured",
            "sign-in is not configured for this account: set the discovery URL, issuer "
            "and audience (`keystead idp configure`)",
        )
    return _Setup(
        account_id=account_id,
        policy=verify.TokenPolicy(
            issuer=row.issuer,
            audiences=frozenset({row.audience}),
            leeway_seconds=row.leeway_seconds,
            username_claims=config.username_claims(row.username_claim),
        ),
        discovery_url=row.discovery_url,
        cert_ttl=row.cert_ttl_seconds,
        group_policy=row.group_policy,
        ca_cert_pem=row.ca_cert_pem,
        ca_key_wrapped=row.ca_key_wrapped,
    )


class Exchange:
    """Holds the process-wide pieces: signing-key caches and unwrapped CA keys."""

    def __init__(
        self,
        master: MasterKey,
        keysets: KeySets,
        entries: provisioning_log.Batched,
        *,
        dialect: Dialect,
    ) -> None:
        self.master = master
        self.keysets = keysets
        self.entries = entries  # every exchange's provisioning-log entry, written in batches
        self._setup = DriverQuery(_SETUP, dialect, _SetupRow)
        self._bind = DriverQuery(_BIND, dialect, _BindRow)
        # By account and CA certificate: a CA is never changed, only made (keyed by its
        # certificate, a new one is a new entry).
        self._authorities: Immutable[tuple[uuid.UUID, str], certificates.Authority] = Immutable(
            10_000
        )
        # Keyed by the whole settings row, so a changed setting (switched off, another
        # issuer or audience) is another entry, never an old answer; refusals are not kept.
        self._setups: Immutable[tuple[uuid.UUID, _SetupRow], _Setup] = Immutable(
            10_000, name="sso.settings"
        )
        # A key's signing secret never changes (the data plane keeps it the same way).
        self._signing_values: Immutable[uuid.UUID, str] = Immutable(100_000)

    # --- steps -----------------------------------------------------------------------

    def setup(self, db: Database, customer_id: str) -> _Setup:
        """The account's sign-in settings, in one prebuilt query (``Database.first``)."""
        try:
            account_id = uuid.UUID(customer_id)
        except ValueError:
            raise SignInRefused(
                404, "unknown_account", f"customer id {customer_id!r} is not a UUID"
            ) from None
        row = db.first(self._setup, {"account_id": account_id})
        if row is None:
            raise SignInRefused(404, "unknown_account", f"no account has customer id {customer_id}")
        return self._setups.get_or_load((account_id, row), lambda: _setup(account_id, row))

    def ensure_authority(self, session: Session, setup: _Setup) -> _Setup:
        """The CA of an account enabled before certificate authorities existed, made now."""
        settings = session.get(IdpSettings, setup.account_id)
        if settings is None:  # disabled and forgotten since setup() read it
            raise SignInRefused(
                403, "integration_disabled", "IDP integration is not enabled for this account"
            )
        idp.ensure_authority(session, settings, self.master)
        return setup._replace(
            ca_cert_pem=settings.ca_cert_pem, ca_key_wrapped=settings.ca_key_wrapped
        )

    def verify_token(self, setup: _Setup, authorization: str | None) -> verify.VerifiedToken:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SignInRefused(
                401,
                "no_token",
                "an access token from the identity provider is required (Authorization: Bearer …)",
                signed=False,
            )
        keys = self.keysets.for_account(setup.account_id, setup.discovery_url)
        try:
            return verify.verify(token.strip(), setup.policy, keys)
        except verify.TokenRejected as exc:
            raise SignInRefused(
                401, exc.reason, f"sign-in token rejected: {exc.message}", signed=exc.signed
            ) from exc
        except KeysUnavailable as exc:
            raise SignInRefused(
                503,
                "keys_unavailable",
                "the identity provider's signing keys cannot be fetched right now; try again "
                "later (an admin can run `keystead idp test`)",
                signed=False,
            ) from exc

    def bind(self, db: Database, setup: _Setup, token: verify.VerifiedToken) -> Bound:
        """The directory user the token names, active, with its enabled auto key (one
        prebuilt read, outside any transaction: see :meth:`settle` for what it writes)."""
        row = db.first(
            self._bind,
            {"account_id": setup.account_id, "name_key": names.name_key(token.username)},
        )
        who = token.username
        if row is None:
            raise SignInRefused(
                403,
                "unknown_user",
                f"user {who!r} (token claim {token.username_claim}) has not been provisioned "
                f"to Keystead; {PROVIDER.sign_in.not_provisioned_fix}",
                user=who,
            )
        external = (row.external_id or "").strip()
        if (
            PROVIDER.sign_in.is_object_id(external)
            and (token.object_id or "").lower() != external.lower()
        ):
            raise SignInRefused(
                403,
                "object_id_mismatch",
                f"user {row.user_name!r} is provisioned with object id {external}, but the "
                f"token's oid is {token.object_id!r} (a reused or renamed user name)",
                user=row.user_name,
            )
        oid = (token.object_id or "").strip().lower()
        if row.pinned_object_id:
            _same_person(row.user_name, row.pinned_object_id, token)
        if not row.active:
            raise SignInRefused(
                403,
                "user_inactive",
                f"user {row.user_name!r} is inactive in the directory",
                user=row.user_name,
            )
        if row.key_id is not None and row.key_suspended:
            raise SignInRefused(
                403,
                "key_suspended",
                f"the API key of user {row.user_name!r} is suspended by an admin",
                user=row.user_name,
            )
        if row.key_id is None or not row.key_enabled:
            raise SignInRefused(
                403,
                "key_disabled",
                f"the API key of user {row.user_name!r} is disabled",
                user=row.user_name,
            )
        return Bound(
            user_id=row.user_id,
            user_name=row.user_name,
            key_id=row.key_id,
            access_key_id=row.access_key_id,
            wrapped_signing_key=row.wrapped_signing_key,
            token_groups_enforced=row.token_groups_enforced,
            pin=oid if not row.pinned_object_id and PROVIDER.sign_in.is_object_id(oid) else None,
        )

    def settle(self, db: Database, setup: _Setup, key: Bound, token: verify.VerifiedToken) -> None:
        """What a sign-in changes, in one transaction, only when it changes something: the
        user's first sign-in binds it to the token's object id, and under
        "directory_and_token" the token's groups are kept for the access rule."""
        token_groups = setup.group_policy == "directory_and_token"
        if key.pin is None and not token_groups and not key.token_groups_enforced:
            return
        with db.transaction() as connection:
            if key.pin is not None:
                self._pin(connection, key, key.pin, token)
            self.apply_group_policy(connection, setup, key, token)

    @staticmethod
    def _pin(connection: Connection, key: Bound, oid: str, token: verify.VerifiedToken) -> None:
        """The first sign-in of a directory user binds it to the token's object id;
        later tokens must carry the same one. A user name given to someone else (a
        recycled UPN) then signs nobody in as the old user's key until the directory user
        is deleted and provisioned again, which starts a new binding. Of two first
        sign-ins at once, the one that binds second is held to the first one's id."""
        bound = connection.execute(
            update(DirectoryUser)
            .where(DirectoryUser.id == key.user_id, DirectoryUser.pinned_object_id.is_(None))
            .values(pinned_object_id=oid)
        )
        if bound.rowcount == 0:
            pinned = connection.execute(
                select(DirectoryUser.pinned_object_id).where(DirectoryUser.id == key.user_id)
            ).scalar_one_or_none()
            if pinned is None:  # deleted since it was read
                raise SignInRefused(
                    403, "unknown_user", f"user {key.user_name!r} was deleted", user=key.user_name
                )
            _same_person(key.user_name, pinned, token)

    def apply_group_policy(
        self, connection: Connection, setup: _Setup, key: Bound, token: verify.VerifiedToken
    ) -> None:
        """Under "directory_and_token", remember the token's groups for the access rule."""
        if setup.group_policy != "directory_and_token":
            self._enforce_token_groups(connection, key, False)
            return
        carried = PROVIDER.sign_in.groups(token.claims)
        groups, overage = carried.entries, carried.overage
        connection.execute(delete(SsoTokenGroup).where(SsoTokenGroup.api_key_id == key.key_id))
        if groups is None and overage:
            log.info(
                "sso_groups_overage",
                account=str(setup.account_id),
                user=token.username,
                notice="token lists too many groups (overage); directory memberships apply",
            )
            self._enforce_token_groups(connection, key, False)
            return
        # Entries no group reference can be (not text, too long, unstorable) are skipped.
        refs = sorted(
            {g for g in groups if isinstance(g, str) and 0 < len(g) <= 256 and names.storable(g)}
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
        # Ignoring duplicates: two sign-ins of one user at once must not fail each other.
        insert_ignoring_duplicates(
            connection,
            SsoTokenGroup.__table__,  # type: ignore[arg-type]
            [{"api_key_id": key.key_id, "group_ref": r} for r in refs],
        )
        self._enforce_token_groups(connection, key, True)

    @staticmethod
    def _enforce_token_groups(connection: Connection, key: Bound, enforced: bool) -> None:
        if key.token_groups_enforced != enforced:
            connection.execute(
                update(ApiKey).where(ApiKey.id == key.key_id).values(token_groups_enforced=enforced)
            )

    @staticmethod
    def not_after(setup: _Setup, token: verify.VerifiedToken, now: datetime) -> datetime:
        """The certificate's end: the configured lifetime, never past the token's ``exp``."""
        end = now + timedelta(seconds=setup.cert_ttl)
        # Compared as numbers first: a signed exp beyond datetime's range (year 9999) has
        # no datetime, and ends later than any certificate anyway.
        if token.expires_at < end.timestamp():
            end = datetime.fromtimestamp(token.expires_at, UTC)
        return max(end, now + timedelta(seconds=1))

    def certificate(
        self,
        setup: _Setup,
        key: Bound,
        public_key: RSAPublicKey,
        not_after: datetime,
        now: datetime,
    ) -> str:
        return certificates.issue(
            self._authority(setup),
            public_key,
            access_key_id=key.access_key_id,
            not_after=not_after,
            now=now,
        )

    def _authority(self, setup: _Setup) -> certificates.Authority:
        if setup.ca_cert_pem is None or setup.ca_key_wrapped is None:
            raise ConfigurationError(f"account {setup.account_id} has no certificate authority")
        cert_pem, wrapped = setup.ca_cert_pem, setup.ca_key_wrapped
        return self._authorities.get_or_load(
            (setup.account_id, cert_pem),
            lambda: idp.unwrapped_authority(setup.account_id, cert_pem, wrapped, self.master),
        )

    def signing_value(self, key: Bound) -> str:
        return self._signing_values.get_or_load(
            key.key_id,
            lambda: self.master.unwrap(
                key.wrapped_signing_key, signing_key_context(key.key_id)
            ).decode(),
        )
