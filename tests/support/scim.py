"""Talking SCIM to the live server in tests: the client, Entra-shaped bodies, error checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select

from keystead import access
from keystead.names import name_key
from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, DirectoryUser
from keystead.storage.types import utcnow

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class Scim:
    client: httpx.Client
    account_id: uuid.UUID
    token: str
    base: str
    runtime: Runtime

    def patch(self, path: str, *ops: dict[str, Any]) -> httpx.Response:
        return self.client.patch(path, json={"schemas": [PATCH], "Operations": list(ops)})

    def key_of(self, user_id: str) -> ApiKey | None:
        with self.runtime.db.read() as s:
            return s.scalar(select(ApiKey).where(ApiKey.directory_user_id == uuid.UUID(user_id)))

    def seed_users(
        self, count: int, *, domain: str, attributes: dict[str, Any] | None = None
    ) -> list[str]:
        """``user{n}@{domain}`` for n < count, written straight to the directory (SCIM would
        take minutes for thousands), created a millisecond apart; their ids in that order."""
        now = utcnow()
        rows = [
            {
                "id": uuid.uuid4(),
                "account_id": self.account_id,
                "user_name": f"user{n}@{domain}",
                "user_name_key": name_key(f"user{n}@{domain}"),
                "attributes": {"schemas": [CORE_USER], **(attributes or {})},
                "created_at": now + timedelta(milliseconds=n),
                "updated_at": now,
            }
            for n in range(count)
        ]
        with self.runtime.db.write() as session:
            session.execute(insert(DirectoryUser), rows)
        return [str(row["id"]) for row in rows]

    def usable(self, user_id: str) -> list[str]:
        key = self.key_of(user_id)
        assert key is not None
        with self.runtime.db.read() as s:
            return [d.name for d in access.usable_datasets(s, key.id)]


def entra_user(user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": user_name.split("@", maxsplit=1)[0],
        "userName": user_name,
        "active": True,
        "displayName": "Dana Reyes",
        "title": "Payments Engineer",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "name": {"formatted": "Dana Reyes", "givenName": "Dana", "familyName": "Reyes"},
        "phoneNumbers": [{"type": "mobile", "value": "+1 206 555 0144"}],
        ENTERPRISE: {"employeeNumber": "40417", "department": "Payments"},
        "meta": {"resourceType": "User"},
        "roles": [],
        **extra,
    }


def create_user(scim: Scim, user_name: str, **extra: Any) -> dict[str, Any]:
    response = scim.client.post("/Users", json=entra_user(user_name, **extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_group(scim: Scim, name: str) -> dict[str, Any]:
    body = {
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": name,
        "members": [],
        "meta": {"resourceType": "Group"},
    }
    response = scim.client.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
