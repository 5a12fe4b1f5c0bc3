"""The SCIM discovery documents: ServiceProviderConfig, ResourceTypes, Schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from scim2_models import Context, EnterpriseUser, Group, ResourceType, User

from keystead.scim.wire import MAX_COUNT, UserResource

DOCS = "https://github.com/keystead/keystead/blob/main/docs/SCIM.md"


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_COUNT},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "SCIM secret token",
                "description": "The account's SCIM secret token as a Bearer token",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


@cache
def _resource_types() -> list[dict[str, Any]]:
    out = []
    for model in (UserResource, Group):
        kind: Any = ResourceType.from_resource(model)
        out.append(dict(kind.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)))
    return out


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            **rt,
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base}/ResourceTypes/{rt['id']}",
            },
        }
        for rt in _resource_types()
    ]


@cache
def _schemas() -> list[dict[str, Any]]:
    out = []
    for model in (User, EnterpriseUser, Group):
        schema: Any = model.to_schema()
        out.append(dict(schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)))
    return out


def schemas(base: str) -> list[dict[str, Any]]:
    return [
        {**s, "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{s['id']}"}}
        for s in _schemas()
    ]
