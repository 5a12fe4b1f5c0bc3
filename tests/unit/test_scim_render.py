"""SCIM responses rendered from stored documents equal scim2-models' own rendering."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from scim2_models import Context

from keystead.directory.service import Group
from keystead.scim import wire
from keystead.scim.wire import ENTERPRISE, GroupResource, UserResource, validate
from tests import factories as f

BASE = "https://keystead.example/0b6a7f3e-64a4-4a86-9a43-6b8b1d5e2f10/api/v3/scim"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

USERS: list[dict[str, Any]] = [
    {"schemas": [CORE_USER], "userName": "dana@example.com"},
    {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": "ext-1",
        "userName": "Dana.Ortiz@example.com",
        "active": "True",
        "displayName": "Dana Ortiz",
        "title": "Payments Engineer",
        "password": "not-returned-1!",
        "emails": [{"primary": True, "type": "work", "value": "dana@example.com"}],
        "name": {"formatted": "Dana Ortiz", "givenName": "Dana", "familyName": "Ortiz"},
        "phoneNumbers": [{"type": "mobile", "value": "+1 206 555 0100"}],
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "country": "US"}],
        ENTERPRISE: {
            "employeeNumber": "40000",
            "department": "Payments",
            "manager": {
                "value": "5a3c0d7e-0b8f-4a51-8f0a-4f1f6f7e6e01",
                "$ref": "../Users/5a3c0d7e-0b8f-4a51-8f0a-4f1f6f7e6e01",
            },
        },
        "meta": {"resourceType": "User"},
        "roles": [],
    },
    {
        "schemas": [CORE_USER],
        "UserName": "case@example.com",
        "nickName": "cs",
        "locale": "en-US",
        "timezone": "Europe/Paris",
        "preferredLanguage": "en",
        "userType": "Employee",
        "profileUrl": "https://example.com/cs",
        "ims": [{"type": "xmpp", "value": "cs@example.com"}],
        "photos": [{"type": "photo", "value": "https://example.com/cs.png"}],
        "entitlements": [{"value": "reader"}],
        "roles": [{"value": "admin", "primary": "False"}],
        "x509Certificates": [{"value": "TUlJQ2R6Q0NBZUNnQXdJQkFnSUpB"}],
        "active": False,
    },
]

GROUPS: list[dict[str, Any]] = [
    {"schemas": [CORE_GROUP], "displayName": "HR"},
    {
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.UUID(int=7)),
        "displayName": "Payments",
        "members": [],
        "meta": {"resourceType": "Group"},
    },
]


def _stored(model: type[Any], body: dict[str, Any]) -> dict[str, Any]:
    stored = wire._stored(validate(model, body, Context.RESOURCE_CREATION_REQUEST))
    loaded: dict[str, Any] = json.loads(json.dumps(stored))  # as the JSON column gives it back
    return loaded


def _when(micro: int) -> datetime:
    return datetime(2026, 11, 28, 15, 28, 1, micro, tzinfo=UTC)


@pytest.mark.parametrize("body", USERS)
@pytest.mark.parametrize("micro", [0, 123456])
def test_user_rendering_matches_scim2_models(body: dict[str, Any], micro: int) -> None:
    stored = _stored(UserResource, body)
    user = f.user_record(stored, version=3, created_at=_when(0), updated_at=_when(micro))
    document = wire.user_document(user, BASE)
    fast = wire.render(UserResource, document, None)
    slow = wire.render_validated(UserResource, document, None)
    assert json.dumps(fast) == json.dumps(slow)  # the same keys, in the same order
    assert "password" not in fast


@pytest.mark.parametrize("body", GROUPS)
@pytest.mark.parametrize("excluded", [None, "members", "Members"])
@pytest.mark.parametrize("members", [0, 2])
def test_group_rendering_matches_scim2_models(
    body: dict[str, Any], excluded: str | None, members: int
) -> None:
    stored = _stored(GroupResource, body)
    group = Group(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        display_name=stored["displayName"],
        display_name_key=stored["displayName"].lower(),
        external_id=None,
        attributes=stored,
        version=1,
        created_at=_when(0),
        updated_at=_when(500),
    )
    listed = [(uuid.UUID(int=i + 1), "Dana" if i == 0 else None) for i in range(members)]
    document = wire.group_document(group, BASE, listed)
    shape = wire.shape(None, excluded)
    fast = wire.render(GroupResource, document, shape)
    slow = wire.render_validated(GroupResource, document, shape)
    assert json.dumps(fast) == json.dumps(slow)


def test_manager_stored_by_patch_renders_the_same() -> None:
    """A PATCH stores Entra's bare manager id as {"value": id}, without `$ref`."""
    stored = {
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": "w@example.com",
        ENTERPRISE: {"manager": {"value": str(uuid.UUID(int=9))}},
    }
    user = f.user_record(stored, version=2, created_at=_when(0), updated_at=_when(1))
    document = wire.user_document(user, BASE)
    fast = wire.render(UserResource, document, None)
    assert json.dumps(fast) == json.dumps(wire.render_validated(UserResource, document, None))


def test_unknown_attributes_take_the_full_rendering() -> None:
    """Attributes kept by the tolerant policy are rendered by scim2-models itself."""
    document = {"schemas": [CORE_USER], "userName": "x@example.com", "custom": 1}
    assert wire._render_stored(UserResource, document, None) is None
