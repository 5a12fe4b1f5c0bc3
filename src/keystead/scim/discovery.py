"""The SCIM discovery documents: ServiceProviderConfig, ResourceTypes, Schemas."""

from __future__ import annotations

from collections.abc import Iterable
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


def _dumped(documents: Iterable[Any]) -> list[dict[str, Any]]:
    return [dict(doc.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)) for doc in documents]


@cache
def _resource_types() -> list[dict[str, Any]]:
    return _dumped(ResourceType.from_resource(model) for model in (UserResource, Group))


def _located(documents: list[dict[str, Any]], kind: str, path: str) -> list[dict[str, Any]]:
    """The documents, each with its ``meta`` (its kind and where it is served)."""
    return [
        {**doc, "meta": {"resourceType": kind, "location": f"{path}/{doc['id']}"}}
        for doc in documents
    ]


def resource_types(base: str) -> list[dict[str, Any]]:
    return _located(_resource_types(), "ResourceType", f"{base}/ResourceTypes")


@cache
def _schemas() -> list[dict[str, Any]]:
    return _dumped(model.to_schema() for model in (User, EnterpriseUser, Group))


def schemas(base: str) -> list[dict[str, Any]]:
    return _located(_schemas(), "Schema", f"{base}/Schemas")
