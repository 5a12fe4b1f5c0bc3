"""The interface a provider module fills in (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from scim2_models import ScimPolicy

# What a provider's own checks of the sign-in settings report ("Test configuration"),
# beside the checks every provider gets (document, key set, issuer cross-check).
ISSUER_FORM = "issuer_not_v1"
AUDIENCE_NOT_APP_ID_URI = "audience_not_app_id_uri"
AUDIENCE_NOT_DEFAULT_URI = "audience_not_default_app_id_uri"
DISCOVERY_URL_NOT_TENANT = "discovery_url_not_tenant_specific"


class Findings(Protocol):
    """Where a provider's checks put what they find (the preflight report)."""

    def add(
        self, code: str, message: str, severity: Literal["error", "warning"] = "error"
    ) -> None: ...


@dataclass(frozen=True)
class ScimShapes:
    """How the provider's provisioning service writes SCIM requests."""

    user_model: Any  # the User resource model, with whatever it sends tolerated
    policy: ScimPolicy  # scim2-models' tolerances for its PATCH and value forms
    patch_body: Callable[[dict[str, Any]], dict[str, Any]]  # its PATCH rewritten to RFC form


@dataclass(frozen=True)
class TokenGroups:
    """The groups a token carries: the claim as sent (a list of group references; None when
    absent), and whether the token says it had more than it could list (then the
    directory's memberships apply)."""

    entries: object
    overage: bool


@dataclass(frozen=True)
class SignIn:
    """How the provider's access tokens and sign-in settings look."""

    # the issuer as tokens carry it, or InvalidInput with the fix
    check_issuer: Callable[[str], str]
    tenant_of_issuer: Callable[[str], str | None]  # the tenant an accepted issuer names
    # the claims an admin may choose to name the user, the default first
    username_claims: tuple[str, ...]
    claim_order: Callable[[str], tuple[str, ...]]  # the chosen claim first, then the fallbacks
    token_problem: Callable[[Mapping[str, Any]], str | None]  # not a user's access token: why
    issuer_hint: Callable[[object], str]  # for a token from another issuer: what to change
    tenant: Callable[[Mapping[str, Any]], object]  # the tenant a token names
    object_id: Callable[[Mapping[str, Any]], str | None]  # the user's lasting id in the provider
    is_object_id: Callable[[str], bool]  # whether a value has the form of such an id
    groups: Callable[[Mapping[str, Any]], TokenGroups]
    check_settings: Callable[[Findings, str, str], None]  # the issuer's and audience's forms
    check_discovery_url: Callable[[Findings, str], None]  # a fetchable URL's form
    issuer_mismatch_hint: Callable[[str, str], str]  # configured vs the document's issuer
    discovery_url_example: str  # the form of a discovery URL, for a malformed one
    # What an admin does, in the provider, for a user who signs in but was never
    # provisioned; and to give a user name that now names someone else its new binding.
    not_provisioned_fix: str
    rebind_fix: str


@dataclass(frozen=True)
class Provider:
    sign_in: SignIn
    # Whether its SCIM requests list groups among a group's members (nested groups),
    # which Keystead then accepts and ignores: their users are not provisioned.
    nested_groups_as_members: bool
    # Built on first use: the SCIM models cost half a second to import, which sign-in and
    # the command line never need.
    scim_shapes: Callable[[], ScimShapes]

    @cached_property
    def scim(self) -> ScimShapes:
        return self.scim_shapes()
