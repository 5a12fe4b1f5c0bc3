"""Arbitrary admin API requests against the live server (/api/admin/v1).

Whatever the body, path or query: the answer is never a 5xx; a refusal is JSON
``{"message": …}`` that says what is wrong; a refused write changes nothing (no listing
and no audit event differs afterwards); and no answer echoes the admin token or a
password it was sent.

Strategies mix each schema's real field names and plausible values with random keys,
wrong types, huge numbers, odd Unicode (case folds that grow, lone surrogates, NUL) and
nested junk. Real objects are named through placeholders (``@dataset-id`` …) that are
filled in at send time, so examples stay reproducible while ids change.
"""

from __future__ import annotations

import json
import os
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystead import names
from keystead.accounts import service as accounts
from keystead.runtime import Runtime
from keystead.scim import log as provisioning_log
from tests.support.accounts import ACTOR, FirstAccount

FUZZ = settings(
    max_examples=int(os.environ.get("ADMIN_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Placeholders for the ids of the anchor objects (filled in per example) and for the
# signed-in admin's current password (which a successful change replaces).
DATASET_ID, GROUP_ID, KEY_ID = "@dataset-id", "@group-id", "@key-id"
ADMIN_ID, TOKEN_ID, CURRENT_PASSWORD = "@admin-id", "@token-id", "@current-password"

# Odd strings for any text field. "\ud83d\ude00" is written as two escapes, a valid pair
# (the server reads one emoji); "\ud800" and "a\udc00b" are lone halves.
TRICKY = [
    "", " ", "\t", "x" * 65, "x" * 257, "\u00df" * 130, "\ufdfa" * 20, "\ud800", "a\udc00b",
    "\ud83d\ude00", "\u202e", "\u200b", "\x00", "\x07", "..", ".", "%2F", "a/b", "?x=1",
    "00000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000", "null", "true", "0", "-1", "1e400",
    "\u0130", "\ufb03", "\u212a",
]  # fmt: skip
FIELD_NAMES = [
    "name", "type", "template", "definition", "datasets", "dataset_groups", "email", "role",
    "password", "current_password", "new_password", "expires_in_days", "enabled",
    "default_unstructured_dataset", "discovery_url", "issuer", "audience", "username_claim",
    "leeway_seconds", "cert_ttl_seconds", "group_policy", "plan", "id",
]  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities too: the body is written with allow_nan
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.integers(30, 600).map(_nested),  # deeper than any schema, short of the parser's limit
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)


def either(*good: Any) -> st.SearchStrategy[Any]:
    """Plausible values for a field, odd strings, or anything at all."""
    return st.one_of(st.sampled_from(list(good)), st.sampled_from(TRICKY), values)


def ints(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(low, high),
        st.integers(-(2**70), 2**70),
        st.sampled_from([2**31, 2**63, -(2**63) - 1, 1.5, "7", True]),
        values,
    )


def body(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A schema-shaped object (plus random keys now and then), or anything at all."""
    shaped = st.fixed_dictionaries(required, optional=optional)
    extra = st.dictionaries(st.text(max_size=8), values, max_size=2)
    return st.one_of(
        shaped,
        shaped,
        st.builds(lambda d, e: {**e, **d}, shaped, extra),
        st.fixed_dictionaries({}, optional={**required, **optional}),
        values,
    )


dataset_refs = either("ssn", "SSN", " ssn ", "notes", "NOTES", DATASET_ID, "HR", "app")
group_refs = either("HR", "hr", " HR ", GROUP_ID, "ssn", "Finance")
key_refs = either(KEY_ID, "app", "AKIA")
ref_lists = st.one_of(st.lists(dataset_refs, max_size=4), values)
group_lists = st.one_of(st.lists(group_refs, max_size=3), values)
display_names = either(
    "fuzz", "HR", " hr ", "Finance", "x" * 200, "x" * 201, "x" * 256, "y\u00df" * 100,
    "\u00df" * 200, "\ufdfa" * 15, "\u01c4" * 200, "bell\x07", "\u0130" * 200,
)  # fmt: skip
passwords = st.one_of(
    st.just(CURRENT_PASSWORD),
    st.text(min_size=8, max_size=40).map(lambda t: "pw-" + t),
    st.sampled_from(["short", "pw-long-enough-1", "pw-" + "x" * 1030, "\ud800pw-lone"]),
    values,
)

BASE_DEFINITION: dict[str, Any] = {
    "input_character_set": string.digits,
    "output_character_set": string.digits + "ABCDEF",
    "min_input_length": 6,
    "max_input_length": 12,
}
ALPHABETS = [
    string.digits, string.digits + "ABCDEF", "01", "0", string.digits * 2,
    string.ascii_letters + string.digits, "\u00e9\u00df\u4e2d\U0001f600", "",
]  # fmt: skip
passthrough_rules = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": either("passthrough", "prefix", "suffix", "infix"),
            "value": st.one_of(st.integers(-3, 2**70), st.sampled_from(["-", "5", " ", "2"])),
            "priority": ints(0, 3),
        },
    ),
    max_size=3,
)
DEFINITION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "encryption_algorithm": either("FF1", "FF3-1"),
    "input_character_set": either(*ALPHABETS),
    "output_character_set": either(*ALPHABETS),
    "passthrough": either("", "-", "- ", "5", "A"),
    "passthrough_rules": st.one_of(passthrough_rules, values),
    "min_input_length": ints(0, 300),
    "max_input_length": ints(0, 300),
    "msb_encoding_bits": ints(-1, 20),
    "tweak": either("AAAAAAAAAAAAAAAAAAAAAA==", "AAAA", "not base64!", "\u00e9", "A" * 400),
    "tweak_min_len": ints(0, 300),
    "tweak_max_len": ints(0, 300),
    "tweak_source": either("constant", "generated"),
    "input_pad_character": either("0", "", "ab"),
    "input_encoding": either("base64", "base32", "hex"),
    "data_type": either("string", ""),
    "data_type_config": values,
    "salt": either("c2FsdA==", ""),
    "fpe_definable_type": either("EfpeDefinition", ""),
}
definitions = st.one_of(
    st.fixed_dictionaries({}, optional=DEFINITION_FIELDS).map(lambda d: {**BASE_DEFINITION, **d}),
    st.fixed_dictionaries({}, optional=DEFINITION_FIELDS),
    values,
)

idp_fields: dict[str, st.SearchStrategy[Any]] = {
    "enabled": either(True, False),
    # Only loopback addresses can be stored: POST /idp/test fetches the stored URL, and
    # tests never send traffic anywhere else.
    "discovery_url": either(
        "http://127.0.0.1:9/.well-known/openid-configuration",
        "https://localhost:9/x",
        "http://[::1]:9/x",
        "http://example.invalid/x",
        "ftp://127.0.0.1/x",
        "https://",
        "https://127.0.0.1:99999/x",
        "http://[::1/x",
        "https://127.0.0.1/ x",
        "http://127.0.0.1/" + "x" * 2100,
    ),
    "issuer": either(
        f"https://sts.windows.net/{GUID}/",
        f"https://sts.windows.net/{GUID.upper()}/",
        f"https://login.microsoftonline.com/{GUID}/v2.0",
        "https://sts.windows.net/x/",
    ),
    "audience": either("api://keystead", "", " ", "a b", "x" * 513),
    "username_claim": either("unique_name", "upn", "preferred_username", "email", "sub"),
    "leeway_seconds": ints(-5, 400),
    "cert_ttl_seconds": ints(0, 100_000),
    "group_policy": either("directory", "directory_and_token", "token"),
}

NO_BODY = st.one_of(st.none(), st.none(), values)
WRITES: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("PATCH", "/account", body({"name": display_names}, {})),
    (
        "POST",
        "/me/password",
        body({"current_password": passwords, "new_password": passwords}, {}),
    ),
    (
        "POST",
        "/session",
        body(
            {
                "email": either("admin@keystead.local", " ADMIN@keystead.local ", "no@x.example"),
                "password": passwords,
            },
            {},
        ),
    ),
    ("DELETE", "/session", NO_BODY),
    (
        "POST",
        "/admins",
        body(
            {
                "email": either(
                    "new.admin@example.com",
                    " New.Admin@Example.com ",
                    "admin@keystead.local",
                    "second@keystead.local",
                    "a@b",
                    "a" * 64 + "@" + "b" * 180 + ".com",
                    "\u00e9l\u00e8ve@\u00e9cole.example",
                )
            },
            {"role": either("admin", "viewer", "owner")},
        ),
    ),
    ("DELETE", "/admins/{admin}", NO_BODY),
    (
        "POST",
        "/tokens",
        body(
            {"name": display_names},
            {"expires_in_days": st.one_of(st.none(), ints(-1, 4000))},
        ),
    ),
    ("DELETE", "/tokens/{token}", NO_BODY),
    (
        "POST",
        "/datasets",
        body(
            {
                "name": either("fuzz", "fuzz-1.a_b", "ssn", "SSN", "x" * 64, "-x", "x y"),
                "type": either("structured", "unstructured", "Structured"),
            },
            {
                "template": either("ssn", "digits", "alnum", "alnum-upper", "text", "nope", None),
                "definition": st.one_of(st.none(), definitions),
            },
        ),
    ),
    ("DELETE", "/datasets/{dataset}", NO_BODY),
    ("POST", "/datasets/{dataset}/rotate-key", NO_BODY),
    (
        "POST",
        "/dataset-groups",
        body({"name": display_names}, {"datasets": ref_lists}),
    ),
    ("PATCH", "/dataset-groups/{group}", body({"name": display_names}, {})),
    ("DELETE", "/dataset-groups/{group}", NO_BODY),
    ("POST", "/dataset-groups/{group}/datasets", body({"datasets": ref_lists}, {})),
    ("DELETE", "/dataset-groups/{group}/datasets/{dataset}", NO_BODY),
    ("PATCH", "/idp", body({}, idp_fields)),
    ("POST", "/idp/scim-token", NO_BODY),
    ("POST", "/idp/test", NO_BODY),
    (
        "POST",
        "/api-keys",
        body({"name": display_names}, {"datasets": ref_lists, "dataset_groups": group_lists}),
    ),
    (
        "PATCH",
        "/api-keys/{key}",
        body(
            {},
            {
                "name": display_names,
                "enabled": either(True, False, "true", 0),
                "default_unstructured_dataset": st.one_of(st.just(""), dataset_refs),
            },
        ),
    ),
    ("DELETE", "/api-keys/{key}", NO_BODY),
    (
        "POST",
        "/api-keys/{key}/grants",
        body({}, {"datasets": ref_lists, "dataset_groups": group_lists}),
    ),
    (
        "POST",
        "/api-keys/{key}/revoke",
        body({}, {"datasets": ref_lists, "dataset_groups": group_lists}),
    ),
]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


PATH_REFS: dict[str, st.SearchStrategy[str]] = {
    name: strategy.map(_as_text)
    for name, strategy in {
        "dataset": dataset_refs,
        "group": group_refs,
        "key": key_refs,
        "admin": either(ADMIN_ID, "second@keystead.local", "SECOND@keystead.local"),
        "token": either(TOKEN_ID),
    }.items()
}
RAW_BODIES = [
    b"{", b"\xff\xfe", b'{"name": NaN}', b'{"name": Infinity}', b"[" * 5000, b"{}" * 3,
    b'{"name": "a", "name": "b"}', b'"\\ud800"', b'{"datasets": ["\\udfff"]}',
    b'{"name": "\\ud83d\\ude00"}', b'{"name": "\\\\ud800"}', b"\xef\xbb\xbf{}",
]  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """A body sent as these bytes, not as JSON written from a value."""

    content: bytes


bodies_raw = st.sampled_from(RAW_BODIES).map(Raw)
content_types = st.sampled_from(
    ["application/json", "application/json", "application/json", "text/plain", None]
)


def _write(method: str, template: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    refs = {name: ref for name, ref in PATH_REFS.items() if "{" + name + "}" in template}
    return st.tuples(
        st.just(method),
        st.just(template),
        st.fixed_dictionaries(refs),
        st.one_of(strategy, strategy, strategy, bodies_raw),
        content_types,
    )


writes = st.one_of(*[_write(m, t, s) for m, t, s in WRITES])


# --- the live state -----------------------------------------------------------------------


@dataclass
class Fuzzed:
    """The admin client and what the examples share: the admin's current password (an
    example may change it) and the id of the token the client uses (none may revoke it)."""

    api: httpx.Client
    first: FirstAccount
    password: str
    own_token_id: str
    runtime: Runtime

    def new_token(self) -> None:
        """A password change revokes the admin's tokens, this client's too: take a new
        one, as the admin would (made by the operator's CLI service here)."""
        account_id = uuid.UUID(self.first.customer_id)
        with self.runtime.db.write() as session:
            admin = accounts.get_admin(session, account_id, self.first.admin_email)
            made = accounts.create_token(session, admin, name="fuzz token 2", actor=ACTOR)
        self.api.headers["Authorization"] = f"Bearer {made.secret}"
        self.own_token_id = str(made.token.id)


@pytest.fixture
def fuzzed(admin_api: httpx.Client, first_account: FirstAccount, runtime: Runtime) -> Fuzzed:
    tokens = admin_api.get("/tokens").json()
    assert len(tokens) == 1, tokens
    # A few provisioning events, so that the log's filters have rows to look at.
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as session:
        for status, name in ((201, "ann@fabrikam.example"), (409, "HR")):
            provisioning_log.record(
                session,
                provisioning_log.entry(
                    account_id=account_id,
                    method="POST",
                    operation="create",
                    resource_type="User" if "@" in name else "Group",
                    resource_id=str(uuid.uuid4()),
                    resource_name=name,
                    status=status,
                ),
            )
    return Fuzzed(admin_api, first_account, first_account.admin_password, tokens[0]["id"], runtime)


LISTINGS = (
    "/account",
    "/me",
    "/admins",
    "/tokens",
    "/datasets",
    "/dataset-groups",
    "/api-keys",
    "/idp",
)


def _state(api: httpx.Client) -> dict[str, Any]:
    reads = {path: api.get(path) for path in LISTINGS}
    reads["/audit"] = api.get("/audit", params={"limit": 50})
    assert all(r.status_code == 200 for r in reads.values()), {
        p: r.text for p, r in reads.items() if r.status_code != 200
    }
    state = {path: r.json() for path, r in reads.items()}
    state["/api-keys"] = state["/api-keys"]["items"]
    # A refused sign-in or password check is audited on purpose; every other refusal must
    # leave no event.
    audited = ("admin.sign_in_failed", "admin.password_change_failed")
    state["/audit"] = [e for e in state["/audit"] if e["action"] not in audited][:1]
    return state


def _find(items: list[dict[str, Any]], field: str, value: str) -> dict[str, Any] | None:
    """The item whose field compares equal to value the way the server compares names
    (an example may have renamed group HR to ' hr ', which the server keeps as 'hr')."""
    key = names.name_key(value)
    return next((item for item in items if names.name_key(item[field]) == key), None)


def _anchored(fuzzed: Fuzzed) -> dict[str, Any]:
    """The state with the anchor objects (re)created: datasets ssn and notes, group HR,
    API key app, a viewer admin and a second token. Earlier examples may have deleted or
    renamed any of them."""
    api = fuzzed.api
    state = _state(api)
    made = False
    for name, spec in (
        ("ssn", {"type": "structured", "template": "ssn"}),
        ("notes", {"type": "unstructured"}),
    ):
        if _find(state["/datasets"], "name", name) is None:
            assert api.post("/datasets", json={"name": name, **spec}).status_code == 201
            made = True
    group = _find(state["/dataset-groups"], "name", "HR")
    if group is None:
        response = api.post("/dataset-groups", json={"name": "HR", "datasets": ["ssn"]})
        assert response.status_code == 201, response.text
        made = True
    elif group["name"] != "HR":
        response = api.patch(f"/dataset-groups/{group['id']}", json={"name": "HR"})
        assert response.status_code == 200, response.text
        made = True
    if _find(state["/api-keys"], "name", "app") is None:
        response = api.post(
            "/api-keys", json={"name": "app", "datasets": ["ssn"], "dataset_groups": ["HR"]}
        )
        assert response.status_code == 201, response.text
        made = True
    if _find(state["/admins"], "email", "second@keystead.local") is None:
        response = api.post("/admins", json={"email": "second@keystead.local", "role": "viewer"})
        assert response.status_code == 201, response.text
        made = True
    if _find(state["/tokens"], "name", "fuzz token") is None:
        assert api.post("/tokens", json={"name": "fuzz token"}).status_code == 201
        made = True
    return _state(api) if made else state


def _placeholders(fuzzed: Fuzzed, state: dict[str, Any]) -> dict[str, str]:
    def id_of(listing: str, field: str, value: str, id_field: str = "id") -> str:
        found = _find(state[listing], field, value)
        assert found is not None, (listing, value)
        return str(found[id_field])

    return {
        DATASET_ID: id_of("/datasets", "name", "ssn"),
        GROUP_ID: id_of("/dataset-groups", "name", "HR"),
        KEY_ID: id_of("/api-keys", "name", "app", "access_key_id"),
        ADMIN_ID: id_of("/admins", "email", "second@keystead.local"),
        TOKEN_ID: id_of("/tokens", "name", "fuzz token"),
        CURRENT_PASSWORD: fuzzed.password,
    }


def _fill(value: Any, fill: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fill(value)
    if isinstance(value, list):
        return [_fill(item, fill) for item in value]
    if isinstance(value, dict):
        return {fill(k): _fill(v, fill) for k, v in value.items()}
    return value


def _passwords_sent(payload: Any) -> list[str]:
    """Password values worth looking for in an answer: long enough, and not plain words
    that an error message could contain by chance."""
    if not isinstance(payload, dict):
        return []
    found = []
    for field in ("password", "current_password", "new_password"):
        value = payload.get(field)
        if (
            isinstance(value, str)
            and len(value) >= 8
            and any(c not in string.ascii_lowercase + " " for c in value)
        ):
            found.append(value)
    return found


def _assert_error_shape(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert response.headers.get("content-type", "").startswith("application/json"), where
    error = response.json()
    assert isinstance(error, dict), (where, error)
    assert isinstance(error.get("message"), str), (where, error)
    assert error["message"].strip(), (where, error)


def _assert_no_secret(response: httpx.Response, fuzzed: Fuzzed, sent: list[str]) -> None:
    text = response.text
    assert "Traceback" not in text, text
    assert fuzzed.first.admin_token not in text, "the admin token is echoed"
    for secret in sent:
        escaped = json.dumps(secret)[1:-1]
        assert secret not in text, f"a password is echoed: {text}"
        assert escaped not in text, f"a password is echoed: {text}"


def _cleanup(api: httpx.Client, path: str, response: httpx.Response) -> None:
    """Delete what a successful create made, so the state stays small."""
    created = response.json()
    target = {
        "/admins": ("/admins", "id"),
        "/tokens": ("/tokens", "id"),
        "/datasets": ("/datasets", "id"),
        "/dataset-groups": ("/dataset-groups", "id"),
        "/api-keys": ("/api-keys", "access_key_id"),
    }.get(path)
    if target is not None:
        collection, field = target
        deleted = api.delete(f"{collection}/{created[field]}")
        assert deleted.status_code in (200, 204), deleted.text


def _path(template: str, refs: dict[str, str], fill: Callable[[str], str]) -> str:
    """The path with each reference as one segment (a lone surrogate as the bytes
    surrogatepass gives it: not UTF-8, as a client could send)."""
    return template.format(
        **{k: quote(fill(v), safe="", errors="surrogatepass") for k, v in refs.items()}
    )


def _redirects_to_trimmed(response: httpx.Response) -> bool:
    """Starlette's answer to a path with a trailing slash (an empty last reference):
    a redirect to the same path without it, which the API then answers itself."""
    path = response.request.url.path
    location = httpx.URL(response.headers["location"]).path
    return path.endswith("/") and location == path.rstrip("/")


def _loopback_or_unset(url: str | None) -> bool:
    return url is None or urlsplit(url).hostname in LOOPBACK


@FUZZ
@given(request=writes)
def test_no_write_is_a_5xx_and_a_refused_one_changes_nothing(
    fuzzed: Fuzzed, request: tuple[str, str, dict[str, str], Any, str | None]
) -> None:
    method, template, refs, payload, content_type = request
    api = fuzzed.api
    before = _anchored(fuzzed)
    ids = _placeholders(fuzzed, before)

    def fill(text: str) -> str:
        return ids.get(text, text)

    path = _path(template, refs, fill)
    if path == "/idp/test" and not _loopback_or_unset(before["/idp"]["discovery_url"]):
        return  # never fetch from anywhere but this machine (PATCH /idp cannot store one)
    headers = {"Content-Type": content_type} if content_type else {}
    sent: list[str] = []
    if isinstance(payload, Raw):
        content: bytes | None = payload.content
    elif payload is None:
        content = None
    else:
        payload = _fill(payload, fill)
        sent = _passwords_sent(payload)
        # ensure_ascii writes lone surrogates as \\udXXX escapes; allow_nan writes NaN.
        content = json.dumps(payload, allow_nan=True).encode()
    response = api.request(method, path, content=content, headers=headers)

    assert response.status_code < 500, response.text
    _assert_no_secret(response, fuzzed, sent)
    if response.status_code in (307, 308):  # an empty last reference: the same path
        assert _redirects_to_trimmed(response), response.headers  # without the slash
        assert _state(api) == before
        return
    if response.status_code >= 400:
        _assert_error_shape(response)
        assert _state(api) == before, f"{method} {path} was refused but changed state"
        return
    assert response.status_code in (200, 201, 204), response.text
    if response.status_code == 204:
        assert response.content == b""
        if path == "/me/password":
            assert isinstance(payload, dict)
            fuzzed.password = payload["new_password"]
            assert api.get("/me").status_code == 401  # the change revoked this token
            fuzzed.new_token()
    elif response.status_code == 201:
        _cleanup(api, path, response)
    tokens = [t["id"] for t in api.get("/tokens").json()]
    assert fuzzed.own_token_id in tokens  # the fuzzer's own credentials survive


# --- queries ------------------------------------------------------------------------------

QUERY_VALUES = [
    "0", "1", "-1", "1000", "1001", str(2**31), str(2**63 - 1), str(2**63), str(-(2**63) - 1),
    "99999999999999999999999", "1e3", "1.5", "nan", "inf", "-inf", "0x10", "", " ", "%",
    "_", "\\", "dataset.", "api_key.", "success", "failed", "Success", "ssn", "app", "HR",
    "ann@fabrikam.example", "2026-01-01", "2026-02-30", "0000-00-00", "0001-01-01",
    "9999-12-31", "10000-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00-23:59", "2026-01-01T00:00:00+24:00",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z", "1e20", "-1e20", "99999999999", "-62135596800", "253402300800",
    "now", "yesterday", "\u00df" * 100, "x" * 300, "\U0001f600", "'; DROP TABLE x; --",
]  # fmt: skip
query_values = st.one_of(
    st.sampled_from(QUERY_VALUES),
    st.sampled_from(QUERY_VALUES),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=10).filter(lambda t: "\x00" not in t),
)
QUERY_NAMES = {
    "/audit": ["limit", "before", "action", "since", "until", "actor"],
    "/provisioning/log": [
        "user", "group", "outcome", "kind", "since", "until", "limit", "before",
    ],
    "/usage": ["since", "until", "dataset", "api_key"],
    "/usage.csv": ["since", "until", "dataset", "api_key"],
    "/api-keys": ["q", "kind", "limit", "offset"],
    "/directory/users": ["q", "active", "limit", "offset"],
    "/directory/groups": ["q", "matched", "limit", "offset"],
    "/api-keys/{key}/explain": ["dataset"],
}  # fmt: skip
OTHER_READS = [
    "/datasets", "/dataset-groups", "/api-keys", "/admins", "/tokens", "/dataset-templates",
    "/account", "/me", "/idp", "/datasets/{dataset}", "/dataset-groups/{group}",
    "/api-keys/{key}", "/api-keys/{key}/access", "/idp/status",
]  # fmt: skip


def _read(template: str, keys: list[str]) -> st.SearchStrategy[Any]:
    refs = {name: ref for name, ref in PATH_REFS.items() if "{" + name + "}" in template}
    params = st.lists(
        st.tuples(st.one_of(st.sampled_from(keys), st.text(max_size=5)), query_values),
        max_size=5,
    )
    return st.tuples(st.just(template), st.fixed_dictionaries(refs), params)


reads = st.one_of(
    *[_read(t, n) for t, n in QUERY_NAMES.items() for _ in range(3)],  # the filtered ones
    *[_read(t, ["limit", "since", "name"]) for t in OTHER_READS],
)


@FUZZ
@given(request=reads)
def test_no_query_is_a_5xx(
    fuzzed: Fuzzed, request: tuple[str, dict[str, str], list[tuple[str, str]]]
) -> None:
    template, refs, params = request
    state = _anchored(fuzzed)
    ids = _placeholders(fuzzed, state)
    path = _path(template, refs, lambda text: ids.get(text, text))
    # As a tuple: httpx takes (name, value) pairs as a list or a tuple, and only the tuple's
    # type is covariant (a list[tuple[str, str]] is no list of httpx's wider pairs to mypy).
    response = fuzzed.api.get(path, params=tuple(params))

    if response.status_code in (307, 308):
        assert _redirects_to_trimmed(response), response.headers
        return
    assert response.status_code in (200, 400, 404, 422), response.text
    _assert_no_secret(response, fuzzed, [])
    if response.status_code != 200:
        _assert_error_shape(response)
    elif path.endswith(".csv"):
        assert response.text.startswith('"day","dataset",')
    else:
        assert isinstance(response.json(), (list, dict))
