"""The admin REST API (/api/admin/v1) on the live server: datasets, dataset groups, API keys,
bad input, the audit log and the published OpenAPI document.

Every response these tests receive is also checked by a response hook: never a 5xx, never
a stack trace, and every error is JSON with a ``message``.
"""

from __future__ import annotations

import configparser
import json
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, DatasetGrant
from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount

PREFIX = "/api/admin/v1"
TEMPLATES = ("alnum", "alnum-upper", "digits", "ssn")
DEFINITION_FIELDS = {
    "encryption_algorithm",
    "input_character_set",
    "output_character_set",
    "passthrough",
    "passthrough_rules",
    "min_input_length",
    "max_input_length",
    "msb_encoding_bits",
    "tweak",
    "tweak_source",
    "salt",
}


# --- helpers ------------------------------------------------------------------------------


def _check_response(response: httpx.Response) -> None:
    """Every admin response: no 5xx, no stack trace, errors as JSON with a message."""
    response.read()
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert "Traceback" not in response.text, f"{where} leaks a stack trace: {response.text}"
    assert response.status_code < 500, f"{where}: {response.text}"
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), where
        body = response.json()
        assert isinstance(body, dict), f"{where}: {body!r}"
        assert isinstance(body.get("message"), str), f"{where}: {body!r}"
        assert body["message"], f"{where}: empty message"


@pytest.fixture
def api(admin_api: httpx.Client) -> httpx.Client:
    """The first admin's bearer client, with every response checked."""
    admin_api.event_hooks = {"request": [], "response": [_check_response]}
    return admin_api


@pytest.fixture
def root(live_server: LiveServer, first_account: FirstAccount) -> Iterator[httpx.Client]:
    """An authenticated client at the server root (for paths outside /api/admin/v1)."""
    with httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {first_account.admin_token}"},
        timeout=30,
        event_hooks={"response": [_check_response]},
    ) as client:
        yield client


def _dataset(api: httpx.Client, name: str, template: str = "digits") -> dict[str, Any]:
    response = api.post(
        "/datasets", json={"name": name, "type": "structured", "template": template}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _custom(api: httpx.Client, name: str, **definition: Any) -> httpx.Response:
    return api.post(
        "/datasets", json={"name": name, "type": "structured", "definition": definition}
    )


def _listed(group: dict[str, Any]) -> dict[str, Any]:
    """A dataset group as GET /dataset-groups lists it (without the page's extras)."""
    return {
        k: v
        for k, v in group.items()
        if k not in ("matching_directory_groups", "keys_with_access", "pinned_to")
    }


def _group(api: httpx.Client, name: str, datasets: list[str] | None = None) -> dict[str, Any]:
    response = api.post("/dataset-groups", json={"name": name, "datasets": datasets or []})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _key(
    api: httpx.Client,
    name: str,
    datasets: list[str] | None = None,
    dataset_groups: list[str] | None = None,
) -> dict[str, Any]:
    response = api.post(
        "/api-keys",
        json={"name": name, "datasets": datasets or [], "dataset_groups": dataset_groups or []},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def _error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, (status, response.status_code, response.text)
    message: str = response.json()["message"]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _log_events(live_server: LiveServer) -> list[dict[str, Any]]:
    return live_server.records()


def _wait_for_log(
    live_server: LiveServer, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The server's JSON log events, polled until ``predicate`` holds for one of them."""
    deadline = time.monotonic() + timeout
    while True:
        events = _log_events(live_server)
        if any(predicate(e) for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


# --- datasets -------------------------------------------------------------------------------


def test_create_structured_dataset_from_each_template_returns_its_definition(
    api: httpx.Client,
) -> None:
    """POST /datasets with each structured template → 201 with the full FF1 definition."""
    templates = {t["name"]: t for t in api.get("/dataset-templates").json()}
    assert set(TEMPLATES) | {"text"} == set(templates)
    for template in TEMPLATES:
        response = api.post(
            "/datasets",
            json={"name": f"ds-{template}", "type": "structured", "template": template},
        )
        assert response.status_code == 201, (template, response.text)
        body = response.json()
        assert body["name"] == f"ds-{template}"
        assert body["type"] == "structured"
        assert body["template"] == template
        assert body["current_key_number"] == 0
        assert [k["key_number"] for k in body["keys"]] == [0]
        assert body["dataset_groups"] == []
        uuid.UUID(body["id"])
        definition = body["definition"]
        assert set(definition) >= DEFINITION_FIELDS, DEFINITION_FIELDS - set(definition)
        assert definition["encryption_algorithm"] == "FF1"
        assert len(definition["output_character_set"]) >= len(definition["input_character_set"])
        assert isinstance(definition["msb_encoding_bits"], int)
        assert definition["tweak"]
        assert isinstance(body["max_key_number"], int)
        assert body["max_key_number"] >= 1
        assert body["max_key_number"] == templates[template]["max_key_number"]
    assert _names(api.get("/datasets").json()) == [f"ds-{t}" for t in TEMPLATES]


def test_ssn_template_keeps_digits_and_passes_dashes_through(api: httpx.Client) -> None:
    """The ssn template is digits in, digits out, 9 long, with '-' passed through."""
    definition = _dataset(api, "ssn", "ssn")["definition"]
    assert set(definition["input_character_set"]) == set(string.digits)
    assert "-" in definition["passthrough"]
    assert definition["min_input_length"] == definition["max_input_length"] == 9


def test_each_dataset_gets_its_own_tweak(api: httpx.Client) -> None:
    """Two datasets from the same template do not share a tweak or a salt."""
    a = _dataset(api, "a", "digits")["definition"]
    b = _dataset(api, "b", "digits")["definition"]
    assert a["tweak"] != b["tweak"]
    assert a["salt"] != b["salt"]


def test_create_unstructured_dataset_returns_201_without_a_definition(api: httpx.Client) -> None:
    """POST /datasets type unstructured → 201, template "text", no definition or key limit."""
    response = api.post("/datasets", json={"name": "notes", "type": "unstructured"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == "unstructured"
    assert body["template"] == "text"
    assert body["definition"] is None
    assert body["max_key_number"] is None
    assert [k["key_number"] for k in body["keys"]] == [0]
    explicit = api.post(
        "/datasets", json={"name": "notes2", "type": "unstructured", "template": "text"}
    )
    assert explicit.status_code == 201, explicit.text


def test_unstructured_dataset_with_a_structured_template_or_definition_is_422(
    api: httpx.Client,
) -> None:
    """An unstructured dataset takes no structured template and no definition."""
    _error(
        api.post("/datasets", json={"name": "n", "type": "unstructured", "template": "ssn"}),
        422,
        "unstructured",
    )
    _error(
        api.post(
            "/datasets",
            json={"name": "n", "type": "unstructured", "definition": {"min_input_length": 6}},
        ),
        422,
        "unstructured",
    )
    assert api.get("/datasets").json() == []


def test_duplicate_dataset_name_is_409_also_when_only_case_differs(api: httpx.Client) -> None:
    """A second dataset with the same name, in any case, is 409 and the first is untouched."""
    first = _dataset(api, "Cards", "digits")
    for name in ("Cards", "cards", "CARDS"):
        response = api.post("/datasets", json={"name": name, "type": "unstructured"})
        _error(response, 409, "already exists")
    datasets = api.get("/datasets").json()
    assert [(d["id"], d["name"], d["type"]) for d in datasets] == [
        (first["id"], "Cards", "structured")
    ]


def test_invalid_dataset_name_is_422_with_a_message(api: httpx.Client) -> None:
    """Dataset names are 1-64 of [A-Za-z0-9_.-] starting with a letter or digit; else 422."""
    failures = []
    for name in ["b@d", "", "x" * 65, "-leading-dash", "has space", "emoji😀", "a/b", "ä"]:
        response = api.post(
            "/datasets", json={"name": name, "type": "structured", "template": "ssn"}
        )
        if response.status_code != 422 or "name" not in response.json()["message"]:
            failures.append(f"{name[:20]!r} -> {response.status_code} {response.text}")
    assert not failures, "\n".join(failures)
    assert api.get("/datasets").json() == []


def test_longest_valid_dataset_name_is_accepted(api: httpx.Client) -> None:
    """A 64-character name using every allowed kind of character is 201."""
    name = "A9_.-" + "x" * 59
    assert _dataset(api, name)["name"] == name


def test_unknown_template_is_422_naming_the_choices(api: httpx.Client) -> None:
    """An unknown structured template is 422 and the message lists the templates."""
    response = api.post("/datasets", json={"name": "x", "type": "structured", "template": "iban"})
    message = _error(response, 422, "iban")
    for template in TEMPLATES:
        assert template in message


def test_structured_dataset_needs_exactly_one_of_template_or_definition(
    api: httpx.Client,
) -> None:
    """Structured with neither (or both) a template and a definition is 422."""
    _error(api.post("/datasets", json={"name": "x", "type": "structured"}), 422, "template")
    both = api.post(
        "/datasets",
        json={
            "name": "x",
            "type": "structured",
            "template": "digits",
            "definition": {
                "input_character_set": string.digits,
                "output_character_set": string.digits + "AB",
                "min_input_length": 6,
                "max_input_length": 12,
            },
        },
    )
    _error(both, 422, "exactly one")
    assert api.get("/datasets").json() == []


def test_unknown_dataset_type_is_422(api: httpx.Client) -> None:
    """type must be structured or unstructured."""
    _error(api.post("/datasets", json={"name": "x", "type": "semi"}), 422, "type")


def test_custom_definition_is_accepted_with_defaults_filled_in(api: httpx.Client) -> None:
    """A valid custom FF1 definition → 201; tweak, salt and msb_encoding_bits are filled in."""
    response = _custom(
        api,
        "custom",
        input_character_set=string.digits,
        output_character_set=string.digits + string.ascii_uppercase[:10],
        passthrough="-",
        min_input_length=6,
        max_input_length=20,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["template"] is None
    definition = body["definition"]
    assert definition["input_character_set"] == string.digits
    assert definition["passthrough"] == "-"
    assert definition["tweak"]
    assert definition["salt"]
    # 20 output symbols, 6-digit minimum: the first character carries no data bits.
    assert definition["msb_encoding_bits"] == 0
    assert body["max_key_number"] == 19


def test_custom_definition_with_an_explicit_tweak_keeps_it(api: httpx.Client) -> None:
    """A custom definition's own (valid base64) tweak is kept as given."""
    tweak = "AAECAwQFBgcICQoLDA0ODw=="
    response = _custom(
        api,
        "tweaked",
        input_character_set=string.digits,
        output_character_set=string.digits + "ABCDEF",
        min_input_length=6,
        max_input_length=10,
        tweak=tweak,
    )
    assert response.status_code == 201, response.text
    assert response.json()["definition"]["tweak"] == tweak


BASE_DEFINITION: dict[str, Any] = {
    "input_character_set": string.digits,
    "output_character_set": string.digits + "ABCDEF",
    "min_input_length": 6,
    "max_input_length": 12,
}


INVALID_DEFINITIONS: dict[str, tuple[dict[str, Any], str]] = {
    "output alphabet smaller than input": (
        {"input_character_set": string.ascii_letters, "output_character_set": string.digits},
        "at least as large",
    ),
    "passthrough character inside an alphabet": ({"passthrough": "5"}, "passthrough"),
    "passthrough rule character inside an alphabet": (
        {"passthrough_rules": [{"type": "passthrough", "value": "A", "priority": 1}]},
        "passthrough",
    ),
    "min_input_length below the FF1 minimum": ({"min_input_length": 3}, "FF1"),
    "unknown field": ({"bogus_field": 1}, "bogus_field"),
    "repeated character": ({"input_character_set": "00123456789"}, "repeats"),
    "max below min": ({"max_input_length": 5}, "max_input_length"),
    "max too long": ({"max_input_length": 256}, "max_input_length"),
    "too few msb bits": (
        {"msb_encoding_bits": 0, "output_character_set": string.digits},
        "msb_encoding_bits",
    ),
    "tweak not base64": ({"tweak": "not base64!"}, "tweak"),
    "tweak too short": ({"tweak": "AAEC"}, "tweak"),
    "other algorithm": ({"encryption_algorithm": "FF3-1"}, "encryption_algorithm"),
    "one-character alphabet": ({"input_character_set": "0"}, "input_character_set"),
    "prefix rule with a string count": (
        {"passthrough_rules": [{"type": "prefix", "value": "2", "priority": 1}]},
        "non-negative integer",
    ),
    "duplicate rule priorities": (
        {
            "passthrough": "-",
            "passthrough_rules": [
                {"type": "passthrough", "value": "-", "priority": 1},
                {"type": "prefix", "value": 1, "priority": 1},
            ],
        },
        "priorities",
    ),
}


def test_invalid_custom_definition_is_422_with_a_clear_message(api: httpx.Client) -> None:
    """Each kind of invalid custom FF1 definition is 422 naming the problem; none is created."""
    failures = []
    for label, (change, fragment) in INVALID_DEFINITIONS.items():
        response = _custom(api, "bad", **{**BASE_DEFINITION, **change})
        message = response.json().get("message", "")
        if (
            response.status_code != 422
            or "definition is not valid" not in message
            or fragment not in message
        ):
            failures.append(f"{label}: {response.status_code} {message}")
    assert not failures, "\n".join(failures)
    assert api.get("/datasets").json() == []


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_data_type_config_must_be_json_that_can_be_served_back(api: httpx.Client) -> None:
    """data_type_config is stored and served as given: nested 300 deep is 422 (was a 500 on
    both engines, the serializer gives up), NaN or Infinity is 422 (was silently stored as
    null); a plain nested object is kept as it is."""
    response = _custom(api, "deep", **BASE_DEFINITION, data_type_config={"a": _nested(300)})
    _error(response, 422, "data_type_config", "nested more than 32 levels")
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        raw = json.dumps(
            {"name": "nan", "type": "structured", "definition": BASE_DEFINITION}
        ).encode()
        raw = raw[:-2] + b', "data_type_config": {"a": [1, ' + constant + b"]}}}"
        response = api.post("/datasets", content=raw, headers={"Content-Type": "application/json"})
        _error(response, 422, "data_type_config", "NaN or Infinity")
    assert api.get("/datasets").json() == []
    config = {"a": _nested(30), "b": {"c": [1.5, None, True, "x"]}}
    created = _custom(api, "plain", **BASE_DEFINITION, data_type_config=config)
    assert created.status_code == 201, created.text
    assert created.json()["definition"]["data_type_config"] == config
    assert api.get("/datasets/plain").json()["definition"]["data_type_config"] == config


def test_rotate_key_adds_a_version_and_keeps_the_old_ones(api: httpx.Client) -> None:
    """POST /datasets/{ref}/rotate-key bumps current_key_number; earlier versions remain."""
    created = _dataset(api, "cards", "digits")
    first_key = created["keys"][0]
    one = api.post("/datasets/cards/rotate-key")
    assert one.status_code == 200, one.text
    assert one.json()["current_key_number"] == 1
    two = api.post(f"/datasets/{created['id']}/rotate-key")
    assert two.status_code == 200, two.text
    body = two.json()
    assert body["current_key_number"] == 2
    assert [k["key_number"] for k in body["keys"]] == [0, 1, 2]
    assert body["keys"][0] == first_key
    assert body["definition"] == created["definition"]
    assert api.get("/datasets/CARDS").json()["current_key_number"] == 2


def test_unstructured_dataset_rotates_without_a_limit(api: httpx.Client) -> None:
    """Unstructured datasets have no key-number limit; rotation just adds versions."""
    assert api.post("/datasets", json={"name": "notes", "type": "unstructured"}).status_code == 201
    for expected in (1, 2, 3):
        response = api.post("/datasets/notes/rotate-key")
        assert response.status_code == 200, response.text
        assert response.json()["current_key_number"] == expected


@pytest.mark.parametrize("output_size", [12, 13])
def test_rotating_past_max_key_number_is_409_and_changes_nothing(
    api: httpx.Client, output_size: int
) -> None:
    """A definition with little key room rotates up to max_key_number, then 409."""
    output = (string.digits + string.ascii_uppercase)[:output_size]
    response = _custom(
        api,
        "tiny",
        input_character_set=string.digits,
        output_character_set=output,
        min_input_length=6,
        max_input_length=12,
    )
    assert response.status_code == 201, response.text
    limit = response.json()["max_key_number"]
    assert isinstance(limit, int)
    assert 0 <= limit < 5
    for expected in range(1, limit + 1):
        rotated = api.post("/datasets/tiny/rotate-key")
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["current_key_number"] == expected
    refused = api.post("/datasets/tiny/rotate-key")
    _error(refused, 409, "tiny", str(limit))
    after = api.get("/datasets/tiny").json()
    assert after["current_key_number"] == limit
    assert [k["key_number"] for k in after["keys"]] == list(range(limit + 1))


def test_get_dataset_shows_its_keys_and_dataset_groups(api: httpx.Client) -> None:
    """GET /datasets/{name or id} returns key versions and the groups containing it."""
    created = _dataset(api, "ssn", "ssn")
    _group(api, "HR", ["ssn"])
    _group(api, "Audit", ["SSN"])
    _group(api, "Other")
    for ref in ("ssn", "SSN", created["id"]):
        response = api.get(f"/datasets/{ref}")
        assert response.status_code == 200, (ref, response.text)
        body = response.json()
        assert body["id"] == created["id"]
        assert body["dataset_groups"] == ["Audit", "HR"]
        assert [k["key_number"] for k in body["keys"]] == [0]
        assert body["keys"][0]["created_at"]
    _error(api.get("/datasets/nope"), 404, "nope")
    _error(api.get(f"/datasets/{uuid.uuid4()}"), 404)


def test_delete_dataset_reports_and_removes_its_group_memberships_and_grants(
    api: httpx.Client,
) -> None:
    """DELETE /datasets/{ref} returns what it removed; groups and grants follow at once."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn", "cards"])
    _group(api, "Finance", ["ssn"])
    app = _key(api, "app", datasets=["ssn", "cards"], dataset_groups=["HR"])
    other = _key(api, "other", datasets=["ssn"])
    assert [
        d["dataset"] for d in api.get(f"/api-keys/{app['access_key_id']}/access").json()["datasets"]
    ] == ["cards", "ssn"]

    response = api.delete("/datasets/SSN")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "deleted": "ssn",
        "removed_from_dataset_groups": ["Finance", "HR"],
        "removed_grants": 2,
    }
    _error(api.get("/datasets/ssn"), 404)
    assert _names(api.get("/datasets").json()) == ["cards"]
    groups = {g["name"]: g["datasets"] for g in api.get("/dataset-groups").json()}
    assert groups == {"Finance": [], "HR": ["cards"]}
    assert api.get("/dataset-groups/HR").json()["datasets"] == ["cards"]
    app_after = api.get(f"/api-keys/{app['access_key_id']}").json()
    assert app_after["grants"] == {"datasets": ["cards"], "dataset_groups": ["HR"]}
    assert api.get(f"/api-keys/{other['access_key_id']}").json()["grants"] == {
        "datasets": [],
        "dataset_groups": [],
    }
    access = api.get(f"/api-keys/{app['access_key_id']}/access").json()
    assert [d["dataset"] for d in access["datasets"]] == ["cards"]
    assert api.get(f"/api-keys/{other['access_key_id']}/access").json()["datasets"] == []
    _error(api.delete("/datasets/ssn"), 404)


def test_a_deleted_dataset_name_can_be_reused(api: httpx.Client) -> None:
    """After DELETE /datasets/x a new dataset x is created with fresh keys."""
    old = _dataset(api, "x", "digits")
    assert api.post("/datasets/x/rotate-key").status_code == 200
    assert api.delete("/datasets/x").status_code == 200
    new = _dataset(api, "x", "ssn")
    assert new["id"] != old["id"]
    assert new["current_key_number"] == 0
    assert new["template"] == "ssn"


# --- dataset groups -------------------------------------------------------------------------


def test_create_dataset_group_with_datasets(api: httpx.Client) -> None:
    """POST /dataset-groups → 201 with its datasets (by name, any case, or id; deduplicated)."""
    ssn = _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _dataset(api, "unrelated", "digits")
    response = api.post(
        "/dataset-groups", json={"name": "  HR team ", "datasets": ["SSN", ssn["id"], "cards"]}
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert group["name"] == "HR team"
    assert group["datasets"] == ["cards", "ssn"]
    uuid.UUID(group["id"])
    assert api.get(f"/dataset-groups/{group['id']}").json() == group
    assert api.get("/dataset-groups/hr TEAM").json() == group
    assert api.get("/dataset-groups").json() == [_listed(group)]
    empty = _group(api, "Empty")
    assert empty["datasets"] == []


def test_duplicate_dataset_group_name_trimmed_and_case_insensitive_is_409(
    api: httpx.Client,
) -> None:
    """ " hr team " and "HR Team" are the same dataset group name: the second is 409."""
    _group(api, " hr team ")
    _error(api.post("/dataset-groups", json={"name": "HR Team"}), 409, "already exists")
    _error(api.post("/dataset-groups", json={"name": "hr team"}), 409)
    assert _names(api.get("/dataset-groups").json()) == ["hr team"]


def test_dataset_group_name_must_not_be_blank(api: httpx.Client) -> None:
    """A blank or whitespace-only dataset group name is 422."""
    _error(api.post("/dataset-groups", json={"name": "   "}), 422, "empty")
    _error(api.post("/dataset-groups", json={"name": ""}), 422)
    _error(api.post("/dataset-groups", json={"name": "a\u0000b"}), 400, "NUL")
    assert api.get("/dataset-groups").json() == []


def test_dataset_group_name_too_long_once_case_folded_is_422_on_create_and_rename(
    api: httpx.Client,
) -> None:
    """200 'ß' are 200 characters but compare as 400 ('ss' each): 422 saying so on both
    engines (was a 500 on PostgreSQL, whose name_key column holds 256), nothing changes."""
    hr = _group(api, "HR")
    for name in ("\u00df" * 200, "\ufdfa" * 15):
        message = _error(api.post("/dataset-groups", json={"name": name}), 422, "at most 256")
        assert "normalised for comparison" in message
        _error(api.patch(f"/dataset-groups/{hr['id']}", json={"name": name}), 422, "at most 256")
    assert api.get("/dataset-groups").json() == [_listed(hr)]
    fits = _group(api, "\u00df" * 128)  # 256 once folded
    assert fits["name"] == "\u00df" * 128


def test_rename_dataset_group(api: httpx.Client) -> None:
    """PATCH /dataset-groups/{ref} renames it; the contents stay and the old name is gone."""
    _dataset(api, "ssn", "ssn")
    group = _group(api, "HR", ["ssn"])
    response = api.patch("/dataset-groups/hr", json={"name": " People "})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "People"
    assert response.json()["id"] == group["id"]
    assert response.json()["datasets"] == ["ssn"]
    _error(api.get("/dataset-groups/HR"), 404)
    assert api.get("/dataset-groups/people").json()["id"] == group["id"]
    assert api.get("/datasets/ssn").json()["dataset_groups"] == ["People"]
    # A change of case only is a rename onto itself, not a conflict.
    same = api.patch("/dataset-groups/People", json={"name": "PEOPLE"})
    assert same.status_code == 200, same.text
    assert same.json()["name"] == "PEOPLE"


def test_rename_dataset_group_onto_an_existing_name_is_409(api: httpx.Client) -> None:
    """Renaming a group to another group's name (any case) is 409 and changes nothing."""
    _group(api, "HR")
    finance = _group(api, "Finance")
    _error(api.patch("/dataset-groups/Finance", json={"name": " hr "}), 409, "already exists")
    assert api.get(f"/dataset-groups/{finance['id']}").json()["name"] == "Finance"
    assert _names(api.get("/dataset-groups").json()) == ["Finance", "HR"]


def test_add_datasets_to_a_group_is_idempotent(api: httpx.Client) -> None:
    """POST /dataset-groups/{ref}/datasets adds datasets; adding them again changes nothing."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn"])
    for _ in range(2):
        response = api.post("/dataset-groups/HR/datasets", json={"datasets": ["cards", "SSN"]})
        assert response.status_code == 200, response.text
        assert response.json()["datasets"] == ["cards", "ssn"]
    added = api.get("/audit", params={"action": "dataset_group.datasets_added"}).json()
    assert len(added) == 1
    assert added[0]["detail"]["datasets"] == ["cards"]


def test_add_datasets_with_an_unknown_one_is_404_and_adds_nothing(api: httpx.Client) -> None:
    """Adding [known, unknown] to a group is 404 and the known one is not added either."""
    _dataset(api, "ssn", "ssn")
    _group(api, "HR")
    response = api.post("/dataset-groups/HR/datasets", json={"datasets": ["ssn", "nope"]})
    _error(response, 404, "nope")
    assert api.get("/dataset-groups/HR").json()["datasets"] == []
    _error(api.post("/dataset-groups/HR/datasets", json={"datasets": []}), 422)
    _error(api.post("/dataset-groups/nope/datasets", json={"datasets": ["ssn"]}), 404)


def test_remove_a_dataset_from_a_group(api: httpx.Client) -> None:
    """DELETE /dataset-groups/{ref}/datasets/{dataset} removes it from the group only."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn", "cards"])
    key = _key(api, "app", dataset_groups=["HR"])
    response = api.delete("/dataset-groups/hr/datasets/SSN")
    assert response.status_code == 200, response.text
    assert response.json()["datasets"] == ["cards"]
    assert _names(api.get("/datasets").json()) == ["cards", "ssn"]
    assert api.get("/datasets/ssn").json()["dataset_groups"] == []
    access = api.get(f"/api-keys/{key['access_key_id']}/access").json()
    assert [d["dataset"] for d in access["datasets"]] == ["cards"]


def test_removing_a_dataset_that_is_not_in_the_group_is_404(api: httpx.Client) -> None:
    """Removing a dataset not in the group (or unknown, or from an unknown group) is 404."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn"])
    _error(api.delete("/dataset-groups/HR/datasets/cards"), 404, "cards", "HR")
    _error(api.delete("/dataset-groups/HR/datasets/nope"), 404, "nope")
    _error(api.delete("/dataset-groups/nope/datasets/ssn"), 404, "nope")
    assert api.get("/dataset-groups/HR").json()["datasets"] == ["ssn"]


def test_delete_dataset_group_keeps_its_datasets(api: httpx.Client) -> None:
    """DELETE /dataset-groups/{ref} → 204; its datasets remain and grants of it go."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn", "cards"])
    key = _key(api, "app", dataset_groups=["HR"])
    response = api.delete("/dataset-groups/hr")
    assert response.status_code == 204, response.text
    assert api.get("/dataset-groups").json() == []
    _error(api.get("/dataset-groups/HR"), 404)
    assert _names(api.get("/datasets").json()) == ["cards", "ssn"]
    assert api.get("/datasets/ssn").json()["dataset_groups"] == []
    after = api.get(f"/api-keys/{key['access_key_id']}").json()
    assert after["grants"] == {"datasets": [], "dataset_groups": []}
    assert api.get(f"/api-keys/{key['access_key_id']}/access").json()["datasets"] == []
    _error(api.delete("/dataset-groups/hr"), 404)


def test_unknown_dataset_in_group_create_is_404_and_the_group_is_not_created(
    api: httpx.Client,
) -> None:
    """POST /dataset-groups naming an unknown dataset is 404 and nothing is half-applied."""
    _dataset(api, "ssn", "ssn")
    response = api.post("/dataset-groups", json={"name": "HR", "datasets": ["ssn", "nope"]})
    _error(response, 404, "nope")
    assert api.get("/dataset-groups").json() == []
    _error(api.get("/dataset-groups/HR"), 404)
    assert api.get("/datasets/ssn").json()["dataset_groups"] == []
    assert api.get("/audit", params={"action": "dataset_group."}).json() == []
    # The name is still free.
    assert _group(api, "HR", ["ssn"])["datasets"] == ["ssn"]


# --- API keys -------------------------------------------------------------------------------


def test_create_api_key_returns_its_secrets_and_a_credentials_file(
    api: httpx.Client, live_server: LiveServer
) -> None:
    """POST /api-keys → 201 with the three secrets and an INI credentials file."""
    _dataset(api, "ssn", "ssn")
    _group(api, "HR")
    response = api.post(
        "/api-keys", json={"name": "billing app", "datasets": ["SSN"], "dataset_groups": ["hr"]}
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["name"] == "billing app"
    assert key["enabled"] is True
    assert key["auto_provisioned"] is False
    assert key["directory_user_id"] is None
    assert key["grants"] == {"datasets": ["ssn"], "dataset_groups": ["HR"]}
    assert key["access_key_id"]
    assert key["secret_signing_key"]
    assert key["secret_crypto_access_key"]
    assert (
        len({key["access_key_id"], key["secret_signing_key"], key["secret_crypto_access_key"]}) == 3
    )
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(key["credentials_file"])
    assert parser.sections() == ["default"]
    profile = parser["default"]
    assert profile["ACCESS_KEY_ID"] == key["access_key_id"]
    assert profile["SECRET_SIGNING_KEY"] == key["secret_signing_key"]
    assert profile["SECRET_CRYPTO_ACCESS_KEY"] == key["secret_crypto_access_key"]
    assert profile["SERVER"] == live_server.url
    second = _key(api, "billing app")
    assert second["access_key_id"] != key["access_key_id"]
    assert second["secret_signing_key"] != key["secret_signing_key"]


def test_api_key_secrets_never_appear_again(api: httpx.Client) -> None:
    """The secrets are in the create response only: never in lists, reads or the audit log."""
    _dataset(api, "ssn", "ssn")
    key = _key(api, "app", datasets=["ssn"])
    secret_values = [key["secret_signing_key"], key["secret_crypto_access_key"]]
    kid = key["access_key_id"]
    reads = [
        api.get("/api-keys"),
        api.get(f"/api-keys/{kid}"),
        api.get(f"/api-keys/{kid}/access"),
        api.get(f"/api-keys/{kid}/explain", params={"dataset": "ssn"}),
        api.patch(f"/api-keys/{kid}", json={"name": "renamed"}),
        api.post(f"/api-keys/{kid}/revoke", json={"datasets": ["ssn"]}),
        api.post(f"/api-keys/{kid}/grants", json={"datasets": ["ssn"]}),
        api.get("/audit"),
    ]
    for response in reads:
        assert response.status_code == 200, response.text
        for value in secret_values:
            assert value not in response.text, response.request.url.path
    listed = api.get("/api-keys").json()["items"]
    assert len(listed) == 1
    for field in ("secret_signing_key", "secret_crypto_access_key", "credentials_file"):
        assert field not in listed[0]
        assert field not in api.get(f"/api-keys/{kid}").json()


def test_create_api_key_with_an_unknown_dataset_is_404_and_creates_no_key(
    api: httpx.Client,
) -> None:
    """POST /api-keys naming an unknown dataset or group is 404; no key is left behind."""
    _dataset(api, "ssn", "ssn")
    _error(api.post("/api-keys", json={"name": "app", "datasets": ["ssn", "nope"]}), 404, "nope")
    _error(api.post("/api-keys", json={"name": "app", "dataset_groups": ["nope"]}), 404, "nope")
    assert api.get("/api-keys").json()["items"] == []
    assert api.get("/audit", params={"action": "api_key."}).json() == []


def test_api_key_name_must_not_be_blank(api: httpx.Client) -> None:
    """POST /api-keys with a blank name is 422."""
    _error(api.post("/api-keys", json={"name": "  "}), 422, "name")
    assert api.get("/api-keys").json()["items"] == []


def test_patch_api_key_enabled_and_name(api: httpx.Client) -> None:
    """PATCH /api-keys/{id} disables, re-enables and renames a manual key."""
    kid = _key(api, "app")["access_key_id"]
    off = api.patch(f"/api-keys/{kid}", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    assert api.get(f"/api-keys/{kid}").json()["enabled"] is False
    on = api.patch(f"/api-keys/{kid}", json={"enabled": True})
    assert on.json()["enabled"] is True
    renamed = api.patch(f"/api-keys/{kid}", json={"name": " billing "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "billing"
    assert renamed.json()["enabled"] is True
    both = api.patch(f"/api-keys/{kid}", json={"name": "x", "enabled": False})
    assert (both.json()["name"], both.json()["enabled"]) == ("x", False)
    actions = [e["action"] for e in api.get("/audit", params={"action": "api_key."}).json()]
    assert actions == [
        "api_key.disabled",
        "api_key.renamed",
        "api_key.renamed",
        "api_key.enabled",
        "api_key.disabled",
        "api_key.created",
    ]


def test_patch_api_key_with_an_empty_body_is_422(api: httpx.Client) -> None:
    """PATCH /api-keys/{id} with {} (nothing to change) is 422; unknown keys are 404."""
    kid = _key(api, "app")["access_key_id"]
    _error(api.patch(f"/api-keys/{kid}", json={}), 422, "nothing to change")
    _error(api.patch(f"/api-keys/{kid}", json={"name": None, "enabled": None}), 422)
    _error(api.patch("/api-keys/nope", json={"enabled": False}), 404, "nope")


def test_delete_api_key(api: httpx.Client) -> None:
    """DELETE /api-keys/{id} → 204; the key is gone, its datasets remain."""
    _dataset(api, "ssn", "ssn")
    kid = _key(api, "app", datasets=["ssn"])["access_key_id"]
    assert api.delete(f"/api-keys/{kid}").status_code == 204
    _error(api.get(f"/api-keys/{kid}"), 404)
    assert api.get("/api-keys").json()["items"] == []
    assert _names(api.get("/datasets").json()) == ["ssn"]
    _error(api.delete(f"/api-keys/{kid}"), 404)


def test_grant_and_revoke_datasets_and_dataset_groups(api: httpx.Client) -> None:
    """POST /api-keys/{k}/grants adds grants (idempotently); /revoke removes them."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn"])
    kid = _key(api, "app")["access_key_id"]
    granted = api.post(
        f"/api-keys/{kid}/grants", json={"datasets": ["cards", "SSN"], "dataset_groups": ["hr"]}
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["grants"] == {"datasets": ["cards", "ssn"], "dataset_groups": ["HR"]}
    again = api.post(f"/api-keys/{kid}/grants", json={"datasets": ["cards"]})
    assert again.json()["grants"] == granted.json()["grants"]
    revoked = api.post(f"/api-keys/{kid}/revoke", json={"datasets": ["ssn"]})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["grants"] == {"datasets": ["cards"], "dataset_groups": ["HR"]}
    # ssn is still reachable through the HR group.
    access = api.get(f"/api-keys/{kid}/access").json()
    assert [d["dataset"] for d in access["datasets"]] == ["cards", "ssn"]
    gone = api.post(f"/api-keys/{kid}/revoke", json={"dataset_groups": ["HR"]})
    assert gone.json()["grants"] == {"datasets": ["cards"], "dataset_groups": []}
    access = api.get(f"/api-keys/{kid}/access").json()
    assert [d["dataset"] for d in access["datasets"]] == ["cards"]
    _error(api.post(f"/api-keys/{kid}/grants", json={}), 422)
    _error(api.post(f"/api-keys/{kid}/revoke", json={"datasets": []}), 422)


def test_granting_an_unknown_dataset_is_404_and_grants_nothing(api: httpx.Client) -> None:
    """POST /grants with [known, unknown] is 404 and the known one is not granted."""
    _dataset(api, "ssn", "ssn")
    kid = _key(api, "app")["access_key_id"]
    _error(api.post(f"/api-keys/{kid}/grants", json={"datasets": ["ssn", "nope"]}), 404, "nope")
    _error(
        api.post(f"/api-keys/{kid}/grants", json={"datasets": ["ssn"], "dataset_groups": ["x"]}),
        404,
    )
    assert api.get(f"/api-keys/{kid}").json()["grants"] == {"datasets": [], "dataset_groups": []}


def test_revoking_something_not_granted_is_404_and_nothing_changes(api: httpx.Client) -> None:
    """POST /revoke naming a dataset or group that is not granted is 404; grants stay."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["cards"])
    kid = _key(api, "app", datasets=["ssn"])["access_key_id"]
    before = api.get(f"/api-keys/{kid}").json()
    _error(
        api.post(f"/api-keys/{kid}/revoke", json={"datasets": ["ssn", "cards"]}),
        404,
        "cards",
    )
    _error(api.post(f"/api-keys/{kid}/revoke", json={"dataset_groups": ["HR"]}), 404, "HR")
    # A dataset reachable only through a granted group is not a direct grant.
    assert api.post(f"/api-keys/{kid}/grants", json={"dataset_groups": ["HR"]}).status_code == 200
    _error(api.post(f"/api-keys/{kid}/revoke", json={"datasets": ["ssn", "cards"]}), 404)
    after = api.get(f"/api-keys/{kid}").json()
    assert after["grants"] == {"datasets": ["ssn"], "dataset_groups": ["HR"]}
    assert before["grants"]["datasets"] == ["ssn"]
    revokes = api.get("/audit", params={"action": "api_key.revoked"}).json()
    assert revokes == []


def test_access_lists_exactly_the_usable_datasets_with_reasons(api: httpx.Client) -> None:
    """GET /api-keys/{k}/access: each usable dataset once, with every path (direct, group)."""
    for name in ("ssn", "cards", "phone", "unused"):
        _dataset(api, name, "digits")
    _group(api, "HR", ["ssn", "phone"])
    _group(api, "Finance", ["ssn"])
    _group(api, "Ungranted", ["unused"])
    kid = _key(api, "app", datasets=["ssn", "cards"], dataset_groups=["HR", "Finance"])[
        "access_key_id"
    ]
    access = api.get(f"/api-keys/{kid}/access").json()
    assert access["access_key_id"] == kid
    assert access["enabled"] is True
    by_dataset = {entry["dataset"]: entry for entry in access["datasets"]}
    assert [entry["dataset"] for entry in access["datasets"]] == ["cards", "phone", "ssn"]
    assert all(entry["type"] == "structured" for entry in access["datasets"])

    def paths(name: str) -> list[tuple[str, str | None]]:
        return [(r["via"], r["dataset_group"]) for r in by_dataset[name]["reasons"]]

    assert paths("cards") == [("direct", None)]
    assert paths("phone") == [("dataset_group", "HR")]
    assert paths("ssn") == [("direct", None), ("dataset_group", "Finance"), ("dataset_group", "HR")]
    descriptions = [r["description"] for r in by_dataset["ssn"]["reasons"]]
    assert descriptions[0] == "granted directly"
    assert "Finance" in descriptions[1]
    assert all(r["directory_group"] is None for r in by_dataset["ssn"]["reasons"])
    empty = _key(api, "nothing")["access_key_id"]
    assert api.get(f"/api-keys/{empty}/access").json()["datasets"] == []
    _error(api.get("/api-keys/nope/access"), 404)


def test_explain_returns_allowed_reasons_and_summary(api: httpx.Client) -> None:
    """GET /api-keys/{k}/explain?dataset=X says whether and why the key may use X."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    _group(api, "HR", ["ssn"])
    kid = _key(api, "app", datasets=["ssn"], dataset_groups=["HR"])["access_key_id"]
    allowed = api.get(f"/api-keys/{kid}/explain", params={"dataset": "SSN"})
    assert allowed.status_code == 200, allowed.text
    body = allowed.json()
    assert body["access_key_id"] == kid
    assert body["dataset"] == "ssn"
    assert body["allowed"] is True
    assert body["key_enabled"] is True
    assert [r["via"] for r in body["reasons"]] == ["direct", "dataset_group"]
    assert "may use" in body["summary"]
    assert "granted directly" in body["summary"]
    assert "HR" in body["summary"]
    denied = api.get(f"/api-keys/{kid}/explain", params={"dataset": "cards"}).json()
    assert denied["allowed"] is False
    assert denied["reasons"] == []
    assert "no access" in denied["summary"]
    _error(api.get(f"/api-keys/{kid}/explain", params={"dataset": "nope"}), 404, "nope")
    _error(api.get(f"/api-keys/{kid}/explain"), 422, "dataset")
    _error(api.get("/api-keys/nope/explain", params={"dataset": "ssn"}), 404)


def test_explain_for_a_disabled_key_mentions_that_it_is_disabled(api: httpx.Client) -> None:
    """A disabled key's explain keeps its reasons but says every request is refused."""
    _dataset(api, "ssn", "ssn")
    kid = _key(api, "app", datasets=["ssn"])["access_key_id"]
    assert api.patch(f"/api-keys/{kid}", json={"enabled": False}).status_code == 200
    body = api.get(f"/api-keys/{kid}/explain", params={"dataset": "ssn"}).json()
    assert body["key_enabled"] is False
    assert "disabled" in body["summary"]
    assert api.get(f"/api-keys/{kid}/access").json()["enabled"] is False


# --- auto-provisioned keys ------------------------------------------------------------------


def _insert_auto_key(runtime: Runtime, first_account: FirstAccount, dataset_id: str) -> uuid.UUID:
    key_id = uuid.uuid4()
    with runtime.db.write() as session:
        session.add(
            ApiKey(
                id=key_id,
                account_id=uuid.UUID(first_account.customer_id),
                access_key_id="auto" + secrets.token_hex(10),
                name="alice@example.com",
                enabled=True,
                auto_provisioned=True,
                wrapped_signing_key=b"x",
            )
        )
        session.flush()
        session.add(DatasetGrant(api_key_id=key_id, dataset_id=uuid.UUID(dataset_id)))
    return key_id


def _auto_key_state(runtime: Runtime, key_id: uuid.UUID) -> tuple[Any, ...] | None:
    with runtime.db.read() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            return None
        grants = session.scalar(
            select(func.count()).select_from(DatasetGrant).where(DatasetGrant.api_key_id == key_id)
        )
        return (key.name, key.enabled, key.auto_provisioned, key.updated_at, grants)


AUTO_KEY_EDITS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "rename": ("PATCH", "", {"name": "mallory"}),
    "disable": ("PATCH", "", {"enabled": False}),
    "enable": ("PATCH", "", {"enabled": True}),
    "delete": ("DELETE", "", None),
    "grant": ("POST", "/grants", {"datasets": ["cards"]}),
    "revoke": ("POST", "/revoke", {"datasets": ["ssn"]}),
}


def test_auto_provisioned_key_cannot_be_edited_by_hand(
    api: httpx.Client, runtime: Runtime, first_account: FirstAccount
) -> None:
    """Rename, enable/disable, delete, grant, revoke of an auto-provisioned key: 409, no change."""
    ssn = _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    key_id = _insert_auto_key(runtime, first_account, ssn["id"])
    listed = api.get("/api-keys").json()["items"]
    assert [(k["name"], k["auto_provisioned"]) for k in listed] == [("alice@example.com", True)]
    kid = listed[0]["access_key_id"]
    before = _auto_key_state(runtime, key_id)
    failures = []
    for edit, (method, suffix, body) in AUTO_KEY_EDITS.items():
        for ref in (kid, str(key_id)):
            response = api.request(method, f"/api-keys/{ref}{suffix}", json=body)
            message = response.json().get("message", "") if response.content else ""
            if response.status_code != 409 or "follows the directory" not in message:
                failures.append(f"{edit} via {ref}: {response.status_code} {message}")
        if _auto_key_state(runtime, key_id) != before:
            failures.append(f"{edit} changed the key: {_auto_key_state(runtime, key_id)}")
    assert not failures, "\n".join(failures)
    assert api.get(f"/api-keys/{kid}").json() == {
        k: v for k, v in listed[0].items() if k != "datasets_count"
    }
    assert api.get("/audit", params={"action": "api_key."}).json() == []


# --- bad input ------------------------------------------------------------------------------


def test_malformed_json_is_400_with_a_fixed_message(api: httpx.Client) -> None:
    """A body that is not JSON is 400 {"message": "request body is not valid JSON"}."""
    for raw in (b"{not json", b'{"name": "x",', b"\xff\xfe", b"{'name': 'x'}"):
        response = api.post("/datasets", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        assert response.json() == {"message": "request body is not valid JSON"}
    assert api.get("/datasets").json() == []


def test_wrong_types_are_422_naming_the_field(api: httpx.Client) -> None:
    """Values of the wrong JSON type are 422 with the field named in message and errors."""
    cases = [
        ("/datasets", {"name": 5, "type": "structured", "template": "ssn"}, "name"),
        ("/datasets", {"name": "x", "type": "structured", "template": ["ssn"]}, "template"),
        ("/datasets", {"name": "x", "type": "structured", "definition": "FF1"}, "definition"),
        ("/dataset-groups", {"name": "g", "datasets": "ssn"}, "datasets"),
        ("/api-keys", {"name": {"first": "x"}}, "name"),
        ("/tokens", {"name": "t", "expires_in_days": "soon"}, "expires_in_days"),
    ]
    for path, body, field in cases:
        response = api.post(path, json=body)
        message = _error(response, 422, field)
        assert message.startswith("invalid request"), message
        assert field in {e["field"] for e in response.json()["errors"]}
    kid = _key(api, "app")["access_key_id"]
    _error(api.patch(f"/api-keys/{kid}", json={"enabled": "perhaps"}), 422, "enabled")
    for body in ([], "x", 5, None):
        _error(api.post("/datasets", json=body), 422)
    assert api.get("/datasets").json() == []


def test_unknown_fields_are_422(api: httpx.Client) -> None:
    """Request bodies with fields the API does not know are 422 naming the field."""
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("POST", "/datasets", {"name": "x", "type": "unstructured", "colour": "red"}),
        ("POST", "/dataset-groups", {"name": "g", "members": []}),
        ("POST", "/api-keys", {"name": "k", "secret_signing_key": "mine"}),
        ("POST", "/admins", {"email": "a@example.com", "password": "chosen-by-me"}),
        ("PATCH", "/account", {"name": "n", "plan": "enterprise"}),
    ]
    for method, path, body in cases:
        response = api.request(method, path, json=body)
        extra = next(k for k in body if k not in {"name", "type", "email"})
        _error(response, 422, extra)
    assert api.get("/datasets").json() == []
    assert api.get("/dataset-groups").json() == []
    assert api.get("/api-keys").json()["items"] == []


def test_body_over_the_limit_is_413(api: httpx.Client) -> None:
    """A declared body over the default 1 MiB limit is 413 with a JSON message."""
    body = json.dumps({"name": "big", "type": "unstructured", "pad": "x" * (1024 * 1024)})
    response = api.post("/datasets", content=body, headers={"Content-Type": "application/json"})
    _error(response, 413, "1048576")
    assert api.get("/datasets").json() == []


def test_streamed_body_over_the_limit_is_413(api: httpx.Client) -> None:
    """A chunked body (no Content-Length) that grows over 1 MiB is 413 as well."""

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "type": "unstructured", "pad": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = api.post("/datasets", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    _error(response, 413, "1048576")
    assert api.get("/datasets").json() == []


def test_body_just_under_the_limit_is_accepted(api: httpx.Client) -> None:
    """A body a little under 1 MiB is read and validated normally (422 here, not 413)."""
    body = json.dumps({"name": "big", "type": "unstructured", "pad": "x" * 1_000_000})
    response = api.post("/datasets", content=body, headers={"Content-Type": "application/json"})
    _error(response, 422, "pad")


def test_unknown_endpoint_is_404_json(api: httpx.Client, root: httpx.Client) -> None:
    """An unknown path (inside or outside the API) is 404 with a JSON message naming it."""
    for response in (api.get("/nope"), api.post("/datasets/x/y/z"), root.get("/api/admin/v2/x")):
        _error(response, 404, "no such endpoint", response.request.url.path)


def test_wrong_method_is_405_json(api: httpx.Client) -> None:
    """A known path with a method it does not take is 405 with a JSON message."""
    for method, path in (("PUT", "/datasets"), ("PATCH", "/datasets/x"), ("PUT", "/session")):
        response = api.request(method, path)
        _error(response, 405, method, path)


def test_odd_requests_never_get_a_traceback_or_a_non_json_error(
    api: httpx.Client, root: httpx.Client
) -> None:
    """A batch of odd requests: every error is JSON with a message, none a 5xx or traceback."""
    _dataset(api, "ssn", "ssn")
    kid = _key(api, "app")["access_key_id"]
    responses = [
        api.get("/datasets/" + "x" * 5000),
        api.get("/datasets/..%2F..%2Fetc"),
        api.get("/dataset-groups/%F0%9F%98%80"),
        api.get(f"/api-keys/{'A' * 300}"),
        api.get("/audit", params={"limit": "many"}),
        api.get("/audit", params={"limit": 0}),
        api.get("/audit", params={"limit": 5000}),
        api.get("/audit", params={"before": "x"}),
        api.get("/audit", params={"since": "yesterday"}),
        api.get("/audit", params={"action": "x" * 200}),
        api.get(f"/api-keys/{kid}/explain", params={"dataset": ""}),
        api.post("/datasets", content=b"", headers={"Content-Type": "application/json"}),
        api.post("/datasets", content=b'{"name": "x"}', headers={"Content-Type": "text/plain"}),
        api.post("/datasets", json={"name": "x" * 10_000, "type": "structured"}),
        api.post("/datasets", json={"name": "x", "type": "structured", "definition": {}}),
        api.post(
            "/datasets",
            json={
                "name": "x",
                "type": "structured",
                "definition": {**BASE_DEFINITION, "min_input_length": 10**9},
            },
        ),
        api.post(
            "/datasets",
            json={
                "name": "x",
                "type": "structured",
                "definition": {**BASE_DEFINITION, "passthrough_rules": [{"type": "prefix"}]},
            },
        ),
        api.post(
            "/datasets",
            json={
                "name": "x",
                "type": "structured",
                "definition": {
                    **BASE_DEFINITION,
                    "passthrough_rules": [{"type": "prefix", "value": "2", "priority": 1}],
                },
            },
        ),
        api.post("/dataset-groups", json={"name": "g", "datasets": [None]}),
        api.post("/dataset-groups", json={"name": "g" * 300}),
        api.post(f"/api-keys/{kid}/grants", json={"datasets": ["x" * 5000]}),
        api.delete(f"/tokens/{'0' * 100}"),
        api.delete("/admins/nobody@example.com"),
        api.post("/session", json={"email": "x" * 300, "password": "y"}),
        root.get("/api/admin/v1"),
        root.post("/api/admin/v1/datasets?x=%ZZ", json={}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (
            response.request.url.path,
            response.status_code,
            response.text,
        )
    assert _names(api.get("/datasets").json()) == ["ssn"]


def test_nul_characters_in_references_and_names_are_refused_cleanly(
    live_server: LiveServer, first_account: FirstAccount
) -> None:
    """A NUL character in a reference, filter or email is refused (4xx) on both engines."""
    with httpx.Client(
        base_url=f"{live_server.url}{PREFIX}",
        headers={"Authorization": f"Bearer {first_account.admin_token}"},
        timeout=30,
    ) as client:
        client.post("/datasets", json={"name": "ssn", "type": "structured", "template": "ssn"})
        kid = client.post("/api-keys", json={"name": "app"}).json()["access_key_id"]
        requests = [
            ("GET", "/datasets/a%00b", None, None),
            ("POST", "/datasets/a%00b/rotate-key", None, None),
            ("DELETE", "/datasets/a%00b", None, None),
            ("GET", "/dataset-groups/a%00b", None, None),
            ("GET", "/api-keys/a%00b", None, None),
            ("GET", f"/api-keys/{kid}/explain", {"dataset": "a\x00b"}, None),
            ("GET", "/audit", {"action": "a\x00b"}, None),
            ("DELETE", "/admins/a%00b", None, None),
            ("POST", "/dataset-groups", None, {"name": "g", "datasets": ["a\x00b"]}),
            ("POST", "/api-keys", None, {"name": "k", "datasets": ["a\x00b"]}),
            ("POST", f"/api-keys/{kid}/grants", None, {"datasets": ["a\x00b"]}),
            ("POST", "/admins", None, {"email": "a\x00b@example.com"}),
            ("POST", "/session", None, {"email": "a\x00b@example.com", "password": "x"}),
        ]
        failures = []
        for method, path, params, body in requests:
            # A fresh connection each time, so one failure cannot hide the next.
            response = client.request(
                method, path, params=params, json=body, headers={"Connection": "close"}
            )
            if path == "/audit" and response.status_code == 200 and response.json() == []:
                continue  # a filter that matches nothing is a fine answer too
            if not 400 <= response.status_code < 500 or "message" not in response.json():
                failures.append(f"{method} {path} {params or body} -> {response.status_code}")
    assert not failures, "\n".join(failures)


def test_lone_surrogate_escapes_in_a_body_are_400_naming_them(admin_api: httpx.Client) -> None:
    """A \\ud800-\\udfff escape without its other half is no text: 400 whatever the field
    (a dataset reference in a list was a 500 on both engines), and nothing changes."""
    admin_api.post("/datasets", json={"name": "ssn", "type": "structured", "template": "ssn"})
    kid = admin_api.post("/api-keys", json={"name": "app"}).json()["access_key_id"]
    before = [admin_api.get(p).json() for p in ("/dataset-groups", "/api-keys", "/admins")]
    requests = [
        ("POST", "/dataset-groups", b'{"name": "g", "datasets": ["\\ud800"]}'),
        ("POST", "/dataset-groups", b'{"name": "g\\udfff"}'),
        ("POST", "/api-keys", b'{"name": "k", "dataset_groups": ["a\\udc00b"]}'),
        ("POST", f"/api-keys/{kid}/grants", b'{"datasets": ["\\ud83d"]}'),
        ("POST", f"/api-keys/{kid}/revoke", b'{"datasets": ["\\ud83dx"]}'),
        ("POST", "/admins", b'{"email": "\\ud800@example.com"}'),
        ("POST", "/session", b'{"email": "a@example.com", "password": "\\ud800"}'),
    ]
    failures = []
    for method, path, body in requests:
        response = admin_api.request(
            method,
            path,
            content=body,
            headers={"Content-Type": "application/json", "Connection": "close"},
        )
        if response.status_code != 400 or "surrogate" not in response.json()["message"]:
            failures.append(f"{method} {path} {body!r} -> {response.status_code}")
    assert not failures, "\n".join(failures)
    after = [admin_api.get(p).json() for p in ("/dataset-groups", "/api-keys", "/admins")]
    assert after == before
    # A surrogate pair is a character like any other.
    response = admin_api.post(
        "/dataset-groups",
        content=b'{"name": "smile \\ud83d\\ude00"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "smile \U0001f600"


# --- audit ----------------------------------------------------------------------------------


def test_audit_lists_changes_newest_first_with_the_admin_as_actor(
    api: httpx.Client, first_account: FirstAccount
) -> None:
    """GET /audit: dataset, group and key creation, newest first, by the admin's email."""
    _dataset(api, "ssn", "ssn")
    _group(api, "HR", ["ssn"])
    kid = _key(api, "app", datasets=["ssn"])["access_key_id"]
    events = api.get("/audit").json()
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)
    ours = [e for e in events if e["actor_type"] == "admin"]
    assert [e["action"] for e in ours] == [
        "api_key.created",
        "dataset_group.created",
        "dataset.created",
    ]
    assert {e["actor"] for e in ours} == {first_account.admin_email}
    assert [e["at"] for e in ours] == sorted((e["at"] for e in ours), reverse=True)
    key_event, group_event, dataset_event = ours
    assert (key_event["subject_type"], key_event["subject_id"]) == ("api_key", kid)
    assert key_event["subject"] == "app"
    assert key_event["detail"] == {"datasets": ["ssn"], "dataset_groups": []}
    assert group_event["subject"] == "HR"
    assert group_event["detail"] == {"datasets": ["ssn"]}
    assert dataset_event["subject"] == "ssn"
    assert dataset_event["detail"] == {"type": "structured", "template": "ssn"}


def test_audit_action_filter_and_paging(api: httpx.Client) -> None:
    """?action= is a prefix filter ("dataset." excludes dataset_group.*); ?before pages."""
    _dataset(api, "ssn", "ssn")
    _dataset(api, "cards", "digits")
    assert api.post("/datasets/ssn/rotate-key").status_code == 200
    _group(api, "HR", ["ssn"])
    _key(api, "app")
    filtered = api.get("/audit", params={"action": "dataset."}).json()
    assert [e["action"] for e in filtered] == [
        "dataset.key_rotated",
        "dataset.created",
        "dataset.created",
    ]
    assert [e["subject"] for e in filtered] == ["ssn", "cards", "ssn"]
    groups = api.get("/audit", params={"action": "dataset_group"}).json()
    assert [e["action"] for e in groups] == ["dataset_group.created"]
    assert api.get("/audit", params={"action": "dataset_"}).json() == groups
    assert api.get("/audit", params={"action": "nothing."}).json() == []
    first_page = api.get("/audit", params={"action": "dataset.", "limit": 2}).json()
    assert first_page == filtered[:2]
    second_page = api.get(
        "/audit", params={"action": "dataset.", "limit": 2, "before": first_page[-1]["id"]}
    ).json()
    assert second_page == filtered[2:]


def test_audit_action_filter_treats_wildcards_literally(api: httpx.Client) -> None:
    """?action=% or _ matches only actions that start with those characters (none)."""
    _dataset(api, "ssn", "ssn")
    assert api.get("/audit", params={"action": "%"}).json() == []
    assert api.get("/audit", params={"action": "_"}).json() == []
    assert api.get("/audit", params={"action": "dataset%"}).json() == []


@pytest.mark.parametrize("path", ["/audit", "/provisioning/log"])
def test_paging_before_an_id_past_64_bits_is_422_and_the_largest_one_pages(
    api: httpx.Client, path: str
) -> None:
    """?before= past the 64-bit ids is 422 naming the bound (was a 500 on both engines);
    the largest 64-bit id is a valid bound."""
    _dataset(api, "ssn", "ssn")
    for before in (2**63, -(2**63) - 1, 10**30):
        message = _error(api.get(path, params={"before": before}), 422, "before")
        assert "9223372036854775807" in message or "-9223372036854775808" in message
    largest = api.get(path, params={"before": 2**63 - 1})
    assert largest.status_code == 200
    assert largest.json() == api.get(path).json()


@pytest.mark.parametrize("path", ["/audit", "/provisioning/log"])
def test_since_a_moment_outside_the_utc_calendar_is_422_and_its_edges_work(
    api: httpx.Client, path: str
) -> None:
    """?since= that is before year 1 or after 9999 once in UTC is 422 naming it (was a 500
    on both engines); the first and last moments in UTC, and naive times, are fine."""
    _dataset(api, "ssn", "ssn")
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        message = _error(api.get(path, params={"since": since}), 422, "since", since)
        assert "UTC" in message
    everything = api.get(path).json()
    for since in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "0001-01-01T00:00:00-01:00"):
        response = api.get(path, params={"since": since})
        assert response.status_code == 200, response.text
        assert response.json() == everything
    assert api.get(path, params={"since": "9999-12-31T23:59:59Z"}).json() == []


def test_no_secret_reaches_the_audit_log_or_the_server_log(
    api: httpx.Client, live_server: LiveServer, first_account: FirstAccount
) -> None:
    """API key secrets, admin tokens, passwords and session cookies are never logged."""
    _dataset(api, "ssn", "ssn")
    _group(api, "HR", ["ssn"])
    key = _key(api, "app", datasets=["ssn"], dataset_groups=["HR"])
    token = api.post("/tokens", json={"name": "script"}).json()["token"]
    viewer = api.post("/admins", json={"email": "v@example.com", "role": "viewer"}).json()
    login = httpx.post(
        f"{live_server.url}{PREFIX}/session",
        json={"email": first_account.admin_email, "password": first_account.admin_password},
    )
    assert login.status_code == 200, login.text
    secret_values = {
        "secret_signing_key": key["secret_signing_key"],
        "secret_crypto_access_key": key["secret_crypto_access_key"],
        "first admin token": first_account.admin_token,
        "new admin token": token,
        "first admin password": first_account.admin_password,
        "viewer one-time password": viewer["one_time_password"],
        "session cookie": login.cookies["keystead_session"],
        "csrf token": login.json()["csrf_token"],
    }
    # A bad request carrying a secret in its URL and body must not echo it either.
    marker = f"/datasets/probe-{secrets.token_hex(6)}"
    api.post(marker, content=json.dumps({"x": token}), headers={"Content-Type": "text/plain"})
    _wait_for_log(live_server, lambda e: e.get("path") == f"{PREFIX}{marker}")
    audit_text = api.get("/audit", params={"limit": 1000}).text
    log_text = live_server.log()
    for label, value in secret_values.items():
        assert value not in audit_text, f"{label} is in the audit log"
        assert value not in log_text, f"{label} is in the server log"


def test_requests_are_logged_without_their_query_string(
    api: httpx.Client, live_server: LiveServer
) -> None:
    """The access log has method, path and status, never the query string."""
    _dataset(api, "ssn", "ssn")
    kid = _key(api, "app")["access_key_id"]
    probe = f"probe{secrets.token_hex(6)}"
    api.get(f"/api-keys/{kid}/explain", params={"dataset": "ssn", "q": probe})
    path = f"{PREFIX}/api-keys/{kid}/explain"
    events = _wait_for_log(live_server, lambda e: e.get("path") == path)
    matching = [e for e in events if e.get("path") == path and e.get("event") == "request"]
    assert matching, "the request is not in the access log"
    assert matching[-1]["method"] == "GET"
    assert matching[-1]["status"] == 200
    assert probe not in live_server.log()


# --- OpenAPI --------------------------------------------------------------------------------


def test_openapi_lists_the_admin_paths_and_docs_are_served(root: httpx.Client) -> None:
    """GET /openapi.json lists the /api/admin/v1 paths; /docs returns 200."""
    spec = root.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    admin_paths = {p for p in paths if p.startswith(PREFIX)}
    for expected in (
        "/datasets",
        "/datasets/{ref}",
        "/datasets/{ref}/rotate-key",
        "/dataset-groups",
        "/dataset-groups/{ref}/datasets/{dataset}",
        "/api-keys",
        "/api-keys/{ref}/grants",
        "/api-keys/{ref}/revoke",
        "/api-keys/{ref}/access",
        "/api-keys/{ref}/explain",
        "/audit",
        "/session",
        "/tokens",
    ):
        assert f"{PREFIX}{expected}" in admin_paths, expected
    assert set(paths) - admin_paths <= {"/healthz", "/readyz", "/metrics"}
    schemes = spec.json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} >= {"http", "apiKey"}
    docs = root.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
