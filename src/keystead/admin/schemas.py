"""The admin wire format: request bodies and the JSON every admin response (and every
``keystead … --json`` command) is made of. Built from storage rows in one place."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from keystead.access import Reason
from keystead.catalog import datasets as catalog
from keystead.idp.config import DEFAULT_USERNAME_CLAIM, SignInChanges
from keystead.storage.models import Admin, AdminToken, ApiKey, Dataset, DatasetGroup, IdpSettings

if TYPE_CHECKING:
    from keystead.idp.preflight import PreflightReport

Item = TypeVar("Item", bound=BaseModel)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    """A response read from the attributes (of the same names) of the object it shows."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, source: object) -> Self:
        return cls.model_validate(source)


# Ids are UUIDs in storage and text on the wire.
TextId = Annotated[str, BeforeValidator(str)]


def fields_of(source: object, model: type[BaseModel], **given: Any) -> dict[str, Any]:
    """``model``'s fields: those ``given``, the others read from ``source``'s attributes of
    the same names."""
    return {name: getattr(source, name) for name in model.model_fields if name not in given} | given


# --- requests -----------------------------------------------------------------------------


class LoginIn(_In):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    account: str | None = Field(
        default=None,
        max_length=64,
        description="Customer id of the account; needed when the installation holds several",
    )


class PasswordChangeIn(_In):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class AccountUpdateIn(_In):
    name: str = Field(max_length=200)


class AdminCreateIn(_In):
    email: str = Field(max_length=254)
    role: Literal["admin", "viewer"] = "admin"


class AdminUpdateIn(_In):
    role: Literal["admin", "viewer"]


class TokenCreateIn(_In):
    name: str = Field(max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class DatasetCreateIn(_In):
    name: str = Field(max_length=64, examples=["SSN"])
    type: Literal["structured", "unstructured"]
    template: str | None = Field(
        default=None, description="ssn, digits, alnum, alnum-upper (structured) or text"
    )
    definition: dict[str, Any] | None = Field(
        default=None, description="A custom FF1 definition instead of a template"
    )
    dataset_groups: list[str] = Field(
        default_factory=list, max_length=1000, description="Dataset groups to put it in"
    )


class DatasetGroupCreateIn(_In):
    name: str = Field(max_length=256)
    datasets: list[str] = Field(default_factory=list, max_length=1000)


class DatasetGroupUpdateIn(_In):
    name: str = Field(max_length=256)


class DatasetRefsIn(_In):
    datasets: list[str] = Field(min_length=1, max_length=1000)


class ApiKeyCreateIn(_In):
    name: str = Field(max_length=256)
    datasets: list[str] = Field(default_factory=list, max_length=1000)
    dataset_groups: list[str] = Field(default_factory=list, max_length=1000)


class ApiKeyUpdateIn(_In):
    name: str | None = Field(default=None, max_length=256)
    enabled: bool | None = None
    default_unstructured_dataset: str | None = Field(
        default=None,
        max_length=64,
        description="Unstructured dataset used when the key may use several; '' clears it",
    )


class SuspendIn(_In):
    reason: str | None = Field(default=None, max_length=500, description="Why (audited)")


class GrantsIn(_In):
    datasets: list[str] = Field(default_factory=list, max_length=1000)
    dataset_groups: list[str] = Field(default_factory=list, max_length=1000)


# --- responses ----------------------------------------------------------------------------


class AccountOut(_Out):
    customer_id: TextId = Field(validation_alias="id")
    name: str
    plan: str
    created_at: datetime


class AdminOut(_Out):
    id: TextId
    email: str
    role: str
    password_change_required: bool
    created_at: datetime
    last_login_at: datetime | None


class AdminCreatedOut(AdminOut):
    one_time_password: str = Field(description="Shown once; the admin must change it")

    @classmethod
    def created(cls, admin: Admin, password: str) -> AdminCreatedOut:
        return cls(**AdminOut.of(admin).model_dump(), one_time_password=password)


class TokenOut(BaseModel):
    id: str
    name: str
    admin_email: str
    hint: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, token: AdminToken, admin: Admin) -> TokenOut:
        given = {"id": str(token.id), "admin_email": admin.email, "hint": token.hint + "…"}
        return cls(**fields_of(token, TokenOut, **given))


class TokenCreatedOut(TokenOut):
    token: str = Field(description="Shown once; send as `Authorization: Bearer <token>`")


class SessionOut(BaseModel):
    admin: AdminOut
    account: AccountOut
    csrf_token: str = Field(description="Send as X-CSRF-Token on every unsafe request")
    expires_at: datetime


class KeyVersionOut(_Out):
    key_number: int
    created_at: datetime


class DatasetOut(BaseModel):
    id: str
    name: str
    type: str
    template: str | None
    current_key_number: int
    max_key_number: int | None = Field(description="Highest key number the format can carry")
    created_at: datetime
    definition: dict[str, Any] | None = Field(description="The FF1 definition (structured)")

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetOut:
        # The definition is shown whole (validation copies it): `tweak` and `salt` are not
        # secrets (every client receives them) but they are noise in listings; they are part
        # of the data-plane definition all the same.
        given = {"id": str(dataset.id), "max_key_number": catalog.max_key_number(dataset)}
        return cls(**fields_of(dataset, DatasetOut, **given))


class DatasetDetailOut(DatasetOut):
    keys: list[KeyVersionOut]
    dataset_groups: list[str]


class DatasetDeletedOut(BaseModel):
    deleted: str
    removed_from_dataset_groups: list[str]
    removed_grants: int


class DatasetGroupOut(BaseModel):
    id: str
    name: str
    datasets: list[str]
    created_at: datetime
    directory_groups: list[str] = Field(
        default_factory=list,
        description="Synced directory groups that give access through it: named alike "
        "(and, when pinned, the pinned one only)",
    )
    pinned: bool = Field(
        default=False, description="Pinned to one directory group (by its id and externalId)"
    )
    ambiguous: bool = Field(
        default=False,
        description="More than one directory group is named like it: unless pinned, each "
        "gives its members access",
    )

    @classmethod
    def of(
        cls,
        group: DatasetGroup,
        datasets: list[str],
        directory_groups: list[str],
        *,
        ambiguous: bool,
    ) -> DatasetGroupOut:
        given = {"id": str(group.id), "pinned": group.pinned_group_id is not None}
        found = {"datasets": datasets, "directory_groups": directory_groups}
        return cls(**fields_of(group, DatasetGroupOut, ambiguous=ambiguous, **given, **found))


class DirectoryGroupRefOut(BaseModel):
    id: TextId
    display_name: str
    external_id: str | None
    member_count: int
    gives_access: bool = Field(
        default=True,
        description="False when the dataset group is pinned to another directory group",
    )
    pinned: bool = Field(default=False, description="The dataset group is pinned to this one")


class PinOut(BaseModel):
    directory_group_id: str
    external_id: str | None
    present: bool = Field(
        description="False once that group left the directory, was made again, or renamed: "
        "then no group gives access through the dataset group until it is pinned again"
    )


class PinIn(_In):
    directory_group: str = Field(
        max_length=64, description="Id of a directory group named like the dataset group"
    )


class DatasetGroupDetailOut(DatasetGroupOut):
    matching_directory_groups: list[DirectoryGroupRefOut] = Field(
        description="Every directory group named like it, and whether each gives access"
    )
    pinned_to: PinOut | None = None
    keys_with_access: int = Field(
        description="Keys that reach datasets through this group: granted it, or members of a "
        "matching directory group"
    )


class GrantsOut(BaseModel):
    datasets: list[str]
    dataset_groups: list[str]


class ApiKeyOut(BaseModel):
    access_key_id: str
    name: str
    enabled: bool
    auto_provisioned: bool
    directory_user_id: str | None
    directory_user: str | None = Field(
        default=None, description="userName of the directory user an auto-provisioned key follows"
    )
    suspended: bool = Field(default=False, description="An admin's emergency stop")
    suspended_at: datetime | None = None
    suspended_by: str | None = None
    default_unstructured_dataset: str | None
    grants: GrantsOut
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls, key: ApiKey, grants: GrantsOut, default_dataset: str | None, directory_user: str | None
    ) -> ApiKeyOut:
        user_id = str(key.directory_user_id) if key.directory_user_id else None
        given = {"directory_user_id": user_id, "directory_user": directory_user, "grants": grants}
        return cls(
            **fields_of(key, ApiKeyOut, default_unstructured_dataset=default_dataset, **given)
        )


class ApiKeyListedOut(ApiKeyOut):
    datasets_count: int = Field(description="How many datasets the key may use, by any path")


class Page(BaseModel, Generic[Item]):
    """One page of a longer listing, in the listing's order."""

    items: list[Item]
    total: int = Field(description="How many match in all")
    limit: int
    offset: int


class ApiKeyCreatedOut(ApiKeyOut):
    secret_signing_key: str = Field(description="Shown once")
    secret_crypto_access_key: str = Field(description="Shown once; Keystead never stores it")
    credentials_file: str = Field(description="The Ubiq client's credentials file, ready to save")


class ReasonOut(BaseModel):
    via: Literal["direct", "dataset_group", "directory"]
    description: str
    dataset_group: str | None
    directory_group: str | None

    @classmethod
    def of(cls, reason: Reason) -> ReasonOut:
        return cls(**fields_of(reason, ReasonOut, description=reason.describe()))


class AccessEntryOut(BaseModel):
    dataset: str
    type: str
    reasons: list[ReasonOut]


class AccessOut(BaseModel):
    access_key_id: str
    enabled: bool
    datasets: list[AccessEntryOut]


class ExplainOut(BaseModel):
    access_key_id: str
    dataset: str
    allowed: bool
    key_enabled: bool
    reasons: list[ReasonOut]
    summary: str


class AuditEventOut(_Out):
    id: int
    at: datetime
    actor_type: str
    actor: str | None = Field(validation_alias="actor_label")
    action: str
    subject_type: str | None
    subject_id: str | None
    subject: str | None = Field(validation_alias="subject_label")
    detail: dict[str, Any]


class UsageRowOut(BaseModel):
    day: date
    dataset: str
    dataset_type: str
    api_key: str = Field(description="Access key id")
    api_key_name: str | None = Field(description="The key's name (null once it is deleted)")
    action: str
    count: int


class UsageRefusedOut(BaseModel):
    day: date
    api_key: str = Field(description="Access key id of the key that reported")
    api_key_name: str | None = Field(description="The key's name (null once it is deleted)")
    reports: int = Field(description="Reports refused (429) that day")
    entries: int = Field(description="Usage entries those reports held, not stored")
    last_at: datetime = Field(description="When the last of them was refused")


class IdpUpdateIn(_In):
    """Fields left out stay as they are."""

    enabled: bool | None = None
    discovery_url: str | None = Field(
        default=None,
        description="OIDC discovery document, e.g. "
        "https://login.microsoftonline.com/TENANT_ID/.well-known/openid-configuration",
    )
    issuer: str | None = Field(
        default=None, description="Token issuer, e.g. https://sts.windows.net/TENANT_ID/"
    )
    audience: str | None = Field(
        default=None, description="Token audience: the API's Application ID URI (api://…)"
    )
    username_claim: str | None = Field(
        default=None, description="unique_name (default), upn, preferred_username or email"
    )
    leeway_seconds: StrictInt | None = Field(default=None, description="Clock leeway (0 to 300 s)")
    cert_ttl_seconds: StrictInt | None = Field(
        default=None, description="SSO certificate lifetime (60 to 86400 s; never past the token)"
    )
    group_policy: str | None = Field(
        default=None, description="directory (default) or directory_and_token"
    )

    def sign_in_changes(self) -> SignInChanges:
        return SignInChanges(**self.model_dump(exclude={"enabled"}))


class IdpOut(BaseModel):
    enabled: bool
    provider: str
    scim_url: str = Field(description="The Tenant URL to paste into Entra's provisioning page")
    scim_token_set: bool
    scim_token_hint: str | None
    scim_token_created_at: datetime | None
    sso_url: str = Field(description="Where the client exchanges its sign-in token")
    discovery_url: str | None
    issuer: str | None
    audience: str | None
    username_claim: str
    leeway_seconds: int
    cert_ttl_seconds: int
    group_policy: str
    sign_in_configured: bool

    @classmethod
    def of(cls, settings: IdpSettings, scim_url: str) -> IdpOut:
        hint = settings.scim_token_hint
        given = {
            "provider": settings.provider or "entra",
            "scim_url": scim_url,
            "scim_token_set": settings.scim_token_hash is not None,
            "scim_token_hint": hint + "…" if hint else None,
            "sso_url": f"{scim_url}/sso",
            "username_claim": settings.username_claim or DEFAULT_USERNAME_CLAIM,
            "leeway_seconds": 60 if settings.leeway_seconds is None else settings.leeway_seconds,
            "cert_ttl_seconds": settings.cert_ttl_seconds or 3600,
            "group_policy": settings.group_policy or "directory",
            "sign_in_configured": bool(
                settings.discovery_url and settings.issuer and settings.audience
            ),
        }
        return cls(**fields_of(settings, IdpOut, **given))


class ProblemOut(_Out):
    code: str
    severity: str
    message: str


class CheckLineOut(_Out):
    name: str
    status: Literal["pass", "fail", "warning", "skipped"]
    message: str


class IdpTestOut(BaseModel):
    ok: bool = Field(description="True when no error-level problem was found")
    checks: list[CheckLineOut] = Field(description="One line per check, with the fix")
    problems: list[ProblemOut]
    discovery_url: str
    document_issuer: str | None
    jwks_uri: str | None
    rs256_key_count: int
    key_ids: list[str]

    @classmethod
    def of(cls, report: PreflightReport) -> IdpTestOut:
        # Checks and problems are read from their own attributes (``_Out``).
        from keystead.idp import preflight  # with httpx and joserfc: the CLI loads them here

        return cls(**fields_of(report, IdpTestOut, checks=preflight.lines(report)))


class ScimTokenOut(BaseModel):
    scim_url: str
    token: str = Field(description="Shown once; paste it into Entra as the Secret Token")


class ProvisioningEventOut(_Out):
    id: int
    at: datetime
    method: str
    operation: str
    resource_type: str | None
    resource_id: str | None
    resource_name: str | None
    outcome: str
    status: int
    scim_type: str | None
    detail: str | None


class TemplateOut(BaseModel):
    name: str
    type: str
    description: str
    max_key_number: int | None
    input_character_set: str | None = None
    output_character_set: str | None = None
    passthrough: str | None = None
    min_input_length: int | None = None
    max_input_length: int | None = None


# --- the directory (read-only) -----------------------------------------------------------------


class DirectoryKeyOut(_Out):
    access_key_id: str
    name: str
    enabled: bool


class DirectoryUserOut(_Out):
    id: TextId
    user_name: str
    display_name: str | None
    external_id: str | None
    active: bool
    api_key: DirectoryKeyOut | None
    group_count: int
    signed_in_as: str | None = Field(
        description="Entra object id the first successful sign-in bound this user to"
    )
    created_at: datetime
    updated_at: datetime


class DirectoryGroupOut(_Out):
    id: TextId
    display_name: str
    external_id: str | None
    member_count: int
    dataset_group: str | None = Field(description="The dataset group whose name this matches")
    created_at: datetime
    updated_at: datetime


class DirectoryUserDetailOut(DirectoryUserOut):
    groups: list[DirectoryGroupOut]


class DirectoryGroupDetailOut(DirectoryGroupOut):
    members: Page[DirectoryUserOut]


# --- the IDP integration's observed state ------------------------------------------------------


class LastRequestOut(_Out):
    at: datetime
    operation: str
    outcome: str
    status: int
    resource: str | None
    detail: str | None


class IdpStatusOut(_Out):
    """What Keystead has seen of the identity provider (never what an admin said)."""

    window_start: datetime = Field(description="Counts below are since this time (24 h)")
    last_scim_request: LastRequestOut | None
    users: int
    groups: int
    failed_scim_requests: int
    refused_sign_ins: int
    scim_token_created_at: datetime | None
    connected_at: datetime | None = Field(
        description="When a SCIM request with the current secret token last arrived (to the "
        "minute; Entra's Test Connection is one)"
    )
    refused_token_at: datetime | None = Field(
        description="When a SCIM request with a missing or wrong secret token last arrived (to "
        "the minute): Entra holds an old or mistyped token"
    )
    unverified_refusals: int = Field(
        description="Sign-ins refused before the token's signature verified (garbage, forged, "
        "an unknown key): counted, not logged one by one"
    )
    unverified_refusal_at: datetime | None
    last_test_at: datetime | None
    last_test_ok: bool | None = Field(
        description="Outcome of the last configuration test (null: not tested since the "
        "sign-in settings last changed)"
    )
    last_sign_in_at: datetime | None
