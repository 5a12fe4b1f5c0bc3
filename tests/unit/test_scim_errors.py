"""A value SCIM refuses is described by the attribute and what it must be, never in the
validating library's own words (its class names, its version, its documentation's URL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from keystead.scim import wire
from keystead.scim.wire import ENTERPRISE, ScimError
from tests import factories as f

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
INTERNALS = ("pydantic", "EntraUser", "EnterpriseUser", "AnyEmail", "http", "validation error")


def _report(error: InitErrorDetails) -> ValidationError:
    return ValidationError.from_exception_data("EntraUser", [error])


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            InitErrorDetails(type="bool_parsing", loc=("active",), input="maybe"),
            "active: must be a boolean (true or false)",
        ),
        (
            InitErrorDetails(type="string_type", loc=("user_name",), input=5),
            "userName: must be a string",
        ),
        (
            InitErrorDetails(type="bool_type", loc=("emails", 0, "primary"), input=[]),
            "emails[0].primary: must be a boolean (true or false)",
        ),
        (
            InitErrorDetails(
                type="model_type", loc=(ENTERPRISE, "manager"), input=5, ctx={"class_name": "M"}
            ),
            f"{ENTERPRISE}:manager: must be an object",
        ),
        (
            InitErrorDetails(
                type="string_type", loc=(ENTERPRISE, "manager", "display_name"), input=5
            ),
            f"{ENTERPRISE}:manager.displayName: must be a string",
        ),
        (
            InitErrorDetails(
                type="string_too_long", loc=("title",), input="t", ctx={"max_length": 256}
            ),
            "title: must be at most 256 characters",
        ),
        (InitErrorDetails(type="missing", loc=("userName",), input={}), "userName: is required"),
        (
            InitErrorDetails(type="extra_forbidden", loc=("x509_certificates", 0, "x"), input=1),
            "x509Certificates[0].x: is not an attribute of the schema",
        ),
        (
            InitErrorDetails(
                type="value_error",
                loc=("profile_url",),
                input="::",
                ctx={"error": ValueError("Invalid URI: ::")},
            ),
            "profileUrl: Invalid URI: ::",
        ),
        (
            InitErrorDetails(type="literal_error", loc=("op",), input="x", ctx={"expected": "'a'"}),
            "op: must be 'a'",
        ),
        (InitErrorDetails(type="list_type", loc=(), input=1), "must be a list (a JSON array)"),
    ],
)
def test_a_pydantic_error_is_the_attribute_and_what_it_must_be(
    error: InitErrorDetails, said: str
) -> None:
    assert wire.first_problem(_report(error)) == said


def _user_document() -> dict[str, Any]:
    now = datetime.now(UTC)
    attributes = {"schemas": [CORE_USER, ENTERPRISE], "userName": "dana@example.com"}
    user = f.user_record(attributes, created_at=now, updated_at=now)
    return wire.user_document(user, "https://keystead.example/scim")


@pytest.mark.parametrize(
    ("operation", "said"),
    [
        (
            {"op": "replace", "path": "active", "value": "maybe"},
            "active: must be a boolean (true or false)",
        ),
        ({"op": "replace", "path": "userName", "value": 5}, "userName: must be a string"),
        (
            {"op": "replace", "path": 'emails[type eq "work"].primary', "value": "x"},
            "primary: must be a boolean (true or false)",
        ),
        (
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": 5},
            "manager: must be an object",
        ),
        ({"op": "replace", "path": "profileUrl", "value": "::"}, "profileUrl: Invalid URI: ::"),
    ],
)
def test_a_patch_that_fails_validation_says_so_in_scims_terms(
    operation: dict[str, Any], said: str
) -> None:
    """scim2-models hands pydantic's whole report on as the detail of its exception."""
    body = json.dumps({"schemas": [PATCH], "Operations": [operation]}).encode()
    with pytest.raises(ScimError) as raised:
        wire.user_patched(_user_document(), body)
    assert (raised.value.status, raised.value.scim_type) == (400, "invalidValue")
    assert raised.value.message == said
    assert not any(internal in raised.value.message for internal in INTERNALS)


def test_a_library_detail_of_its_own_is_kept() -> None:
    """Details scim2-models writes itself are already a client's (only its pass-through of
    pydantic's report is replaced)."""
    body = {"schemas": [PATCH], "Operations": [{"op": "maybe", "path": "active", "value": 1}]}
    with pytest.raises(ScimError, match="is not a PATCH operation: add, remove or replace"):
        wire.user_patched(_user_document(), json.dumps(body).encode())
