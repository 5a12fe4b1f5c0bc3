"""Tables. One schema for SQLite and PostgreSQL; migrations live in ``migrations/``.

Access is never materialised: the facts (grants, dataset-group contents, directory
memberships) are stored and :mod:`keystead.access` derives key→dataset access from them.
``*_key`` columns hold the normalised form of a name (trimmed, case-folded) so that
uniqueness and matching are case-insensitive on both engines through a plain index.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keystead.storage.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def _cascading(target: str, **options: Any) -> Any:
    """A reference to ``target`` whose row goes when that row is deleted."""
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), **options)


def _serial() -> Any:
    """A growing integer key (64-bit; SQLite's rowid is an INTEGER)."""
    return mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class Meta(Base):
    """Installation-wide facts, e.g. the master key check value."""

    __tablename__ = "keystead_meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Admin(Base):
    __tablename__ = "admins"
    # An email is unique within its account only: whether it exists in another account is
    # none of this account's business (and admins of two accounts may be one person).
    __table_args__ = (UniqueConstraint("account_id", "email"), Index(None, "email"))
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_change_required: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminToken(Base):
    """Bearer tokens for scripts; only their SHA-256 is stored."""

    __tablename__ = "admin_tokens"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    admin_id: Mapped[uuid.UUID] = _cascading("admins.id", index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminSession(Base):
    """Console sign-in sessions; only the cookie value's SHA-256 is stored (the CSRF token
    is derived from the cookie, so it is stored nowhere)."""

    __tablename__ = "admin_sessions"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    admin_id: Mapped[uuid.UUID] = _cascading("admins.id", index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class SignInFailure(Base):
    """Failed console sign-ins of one email or client address (``accounts.throttle``)."""

    __tablename__ = "sign_in_failures"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    template: Mapped[str | None] = mapped_column(String(40), default=None)
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    current_key_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetKey(Base):
    """One key version. Rows are only ever added: old ciphertexts name their key number."""

    __tablename__ = "dataset_keys"
    dataset_id: Mapped[uuid.UUID] = _cascading("datasets.id", primary_key=True)
    key_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetGroup(Base):
    __tablename__ = "dataset_groups"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256))
    # Pinned by an admin to the directory group it matched then (id and externalId): no
    # other same-named directory group gives access through it. No foreign key on purpose:
    # when the pinned group is deleted the pin stays, and nothing matches until re-pinned.
    pinned_group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    pinned_group_external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetGroupMember(Base):
    __tablename__ = "dataset_group_datasets"
    __table_args__ = (Index(None, "dataset_id", "group_id"),)
    group_id: Mapped[uuid.UUID] = _cascading("dataset_groups.id", primary_key=True)
    dataset_id: Mapped[uuid.UUID] = _cascading("datasets.id", primary_key=True)


class DirectoryUser(Base):
    """A user synced from the identity provider (filled by SCIM)."""

    __tablename__ = "directory_users"
    __table_args__ = (
        UniqueConstraint("account_id", "user_name_key"),
        Index(None, "account_id", "external_id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    user_name: Mapped[str] = mapped_column(String(256))
    user_name_key: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The Entra object id of the first successful sign-in: later tokens must carry it.
    pinned_object_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DirectoryGroup(Base):
    """A group synced from the identity provider (filled by SCIM)."""

    __tablename__ = "directory_groups"
    # Exact displayName is unique; the normalised key is not, so "HR Team" and " hr team"
    # may both exist and both match dataset group "HR Team" (access holds while either does).
    __table_args__ = (
        UniqueConstraint("account_id", "display_name"),
        Index(None, "account_id", "display_name_key"),
        Index(None, "account_id", "external_id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    display_name: Mapped[str] = mapped_column(String(256))
    display_name_key: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DirectoryMembership(Base):
    __tablename__ = "directory_memberships"
    __table_args__ = (Index(None, "user_id", "group_id"),)
    group_id: Mapped[uuid.UUID] = _cascading("directory_groups.id", primary_key=True)
    user_id: Mapped[uuid.UUID] = _cascading("directory_users.id", primary_key=True)
    display: Mapped[str | None] = mapped_column(String(256), default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "account_id", "name"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    access_key_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_provisioned: Mapped[bool] = mapped_column(Boolean, default=False)
    directory_user_id: Mapped[uuid.UUID | None] = _cascading(
        "directory_users.id", unique=True, default=None
    )
    wrapped_signing_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Which unstructured dataset `POST /api/v0/encryption/key` uses when the key may use
    # several (the client names none). Ignored unless the key may use it.
    default_unstructured_dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), default=None
    )
    public_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    encrypted_private_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    # An admin's emergency stop, the one hand edit an auto-provisioned key allows: every
    # endpoint refuses the key while set, and directory sync never clears it.
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended_at: Mapped[datetime | None] = mapped_column(default=None)
    suspended_by: Mapped[str | None] = mapped_column(String(256), default=None)
    # Set at each SSO exchange under the "directory_and_token" group policy: directory
    # groups then count only if listed in ``sso_token_groups`` (the last token's groups).
    token_groups_enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SsoTokenGroup(Base):
    """One group object id from the groups claim of a key's last sign-in token."""

    __tablename__ = "sso_token_groups"
    api_key_id: Mapped[uuid.UUID] = _cascading("api_keys.id", primary_key=True)
    group_ref: Mapped[str] = mapped_column(String(256), primary_key=True)


class DatasetGrant(Base):
    __tablename__ = "api_key_dataset_grants"
    __table_args__ = (Index(None, "dataset_id"),)
    api_key_id: Mapped[uuid.UUID] = _cascading("api_keys.id", primary_key=True)
    dataset_id: Mapped[uuid.UUID] = _cascading("datasets.id", primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetGroupGrant(Base):
    __tablename__ = "api_key_dataset_group_grants"
    __table_args__ = (Index(None, "dataset_group_id"),)
    api_key_id: Mapped[uuid.UUID] = _cascading("api_keys.id", primary_key=True)
    dataset_group_id: Mapped[uuid.UUID] = _cascading("dataset_groups.id", primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdpSettings(Base):
    """An account's identity-provider integration: directory sync (SCIM) and sign-in."""

    __tablename__ = "idp_settings"
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id", primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    provider: Mapped[str] = mapped_column(String(20), default="entra")
    scim_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    scim_token_hint: Mapped[str | None] = mapped_column(String(16), default=None)
    scim_token_created_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last SCIM request made with the current token (to the minute): Entra's Test
    # Connection is only reads, which the provisioning log does not record.
    scim_last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last SCIM request with a missing or wrong token (to the minute).
    scim_last_refused_at: Mapped[datetime | None] = mapped_column(default=None)
    # Sign-in refusals of tokens whose signature never verified: counted, not logged
    # (``sso.unverified``).
    unverified_refusals: Mapped[int] = mapped_column(BigInteger, default=0)
    unverified_refusal_at: Mapped[datetime | None] = mapped_column(default=None)
    # Sign-in (the SSO exchange): whose tokens are accepted, and how they map to users.
    discovery_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    issuer: Mapped[str | None] = mapped_column(String(512), default=None)
    audience: Mapped[str | None] = mapped_column(String(512), default=None)
    username_claim: Mapped[str] = mapped_column(String(64), default="unique_name")
    leeway_seconds: Mapped[int] = mapped_column(Integer, default=60)
    cert_ttl_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    # "directory": access from SCIM memberships; "directory_and_token": only memberships
    # whose group is also in the sign-in token's groups claim.
    group_policy: Mapped[str] = mapped_column(String(32), default="directory")
    # The account's certificate authority for SSO certificates; its key wrapped under the
    # master key. Created when the integration is first enabled, never replaced.
    ca_cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    ca_key_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # The last "test configuration" run, for the console's setup guide.
    last_test_at: Mapped[datetime | None] = mapped_column(default=None)
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProvisioningEvent(Base):
    """What one SCIM request did (or why it failed): the admin's provisioning log."""

    __tablename__ = "provisioning_events"
    # (account_id, outcome, at): failures in a time range, the console's status strip.
    __table_args__ = (Index(None, "account_id", "id"), Index(None, "account_id", "outcome", "at"))
    id: Mapped[int] = _serial()
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(10))
    operation: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str | None] = mapped_column(String(20), default=None)
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None)
    resource_name: Mapped[str | None] = mapped_column(String(256), default=None)
    outcome: Mapped[str] = mapped_column(String(10))
    status: Mapped[int] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(40), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class UsageEvent(Base):
    """One aggregated usage record as the Ubiq client reports it (POST /api/v3/tracking/events)."""

    __tablename__ = "usage_events"
    __table_args__ = (Index(None, "account_id", "day"),)
    id: Mapped[int] = _serial()
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id")
    reported_by: Mapped[str] = mapped_column(String(64))
    api_key: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(256))
    dataset_type: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(BigInteger)
    key_number: Mapped[int | None] = mapped_column(Integer, default=None)
    product: Mapped[str | None] = mapped_column(String(100), default=None)
    product_version: Mapped[str | None] = mapped_column(String(40), default=None)
    first_call_at: Mapped[datetime | None] = mapped_column(default=None)
    last_call_at: Mapped[datetime | None] = mapped_column(default=None)
    day: Mapped[date] = mapped_column(Date)
    user_defined: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageCounter(Base):
    """How many usage entries a key or an account stored in its current window (a clock
    minute or a UTC day): one row per subject and window length, its bucket moving on."""

    __tablename__ = "usage_counters"
    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    span: Mapped[int] = mapped_column(Integer, primary_key=True)  # seconds: 60 or 86400
    bucket: Mapped[int] = mapped_column(BigInteger)  # epoch seconds // span
    entries: Mapped[int] = mapped_column(BigInteger)


class UsageRefusal(Base):
    """Usage entries a key reported past its limits, per day: refused with 429, not stored,
    counted here so the admin sees that (and how much) a key reported too much."""

    __tablename__ = "usage_refusals"
    account_id: Mapped[uuid.UUID] = _cascading("accounts.id", primary_key=True)
    reported_by: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reports: Mapped[int] = mapped_column(BigInteger, default=0)
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "account_id", "id"),)
    id: Mapped[int] = _serial()
    account_id: Mapped[uuid.UUID | None] = _cascading("accounts.id", default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor_label: Mapped[str | None] = mapped_column(String(256), default=None)
    action: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str | None] = mapped_column(String(40), default=None)
    subject_id: Mapped[str | None] = mapped_column(String(64), default=None)
    subject_label: Mapped[str | None] = mapped_column(String(256), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
