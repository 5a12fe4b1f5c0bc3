"""Correctly signed requests with bad content, against the live server: broken or foreign
encrypted data keys, bad bodies and parameters, datasets that are absent or not granted,
oversized bodies, malformed usage reports, the usage-correction PATCH and the choice of
unstructured dataset.

Every response goes through one check: never a stack trace, and every error body is a JSON
object with a ``message``."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.dataplane import edk
from keystead.runtime import Runtime
from keystead.storage.models import UsageEvent
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR
from tests.functional.test_dataplane_signatures import Prepared, Signer

MIB = 1024 * 1024


class CheckedSigner(Signer):
    """The hand signer of test_dataplane_signatures, checking every response it gets."""

    def send(self, prepared: Prepared) -> httpx.Response:
        response = super().send(prepared)
        where = f"{prepared.method} {prepared.target[:80]} -> {response.status_code}"
        assert "Traceback" not in response.text, f"{where} leaks a stack trace"
        assert response.status_code < 500, f"{where}: {response.text}"
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", "")
            assert content_type.startswith("application/json"), f"{where}: {content_type}"
            body = response.json()
            assert isinstance(body, dict), f"{where}: {body!r}"
            assert isinstance(body.get("message"), str), f"{where}: {body!r}"
            assert body["message"], f"{where}: empty message"
        return response

    def post_json(self, path: str, value: Any) -> httpx.Response:
        return self.request("POST", path, json.dumps(value).encode())

    def get(self, path: str, ffs_name: str, **extra: str) -> httpx.Response:
        # Built by hand, unescaped and in the client's order (§6.1).
        target = f"{path}?ffs_name={ffs_name}&papi={self.key_id}"
        target += "".join(f"&{name}={value}" for name, value in extra.items())
        return self.request("GET", target)


@dataclass
class Setup:
    server: LiveServer
    runtime: Runtime
    account_id: uuid.UUID
    app: CheckedSigner  # granted SSN (structured) and Files (unstructured)

    def signer(self, access_key_id: str, secret: str) -> CheckedSigner:
        return CheckedSigner(self.server.url, access_key_id, secret)

    def new_key(
        self, name: str, *, datasets: tuple[str, ...] = (), account_id: uuid.UUID | None = None
    ) -> CheckedSigner:
        with self.runtime.db.write() as session:
            secrets = f.manual_key(
                session,
                account_id or self.account_id,
                self.runtime.master,
                name,
                datasets=datasets,
            ).secrets
        return self.signer(secrets.access_key_id, secrets.secret_signing_key)

    def fresh_edk(self) -> bytes:
        response = self.app.post_json("/api/v0/encryption/key", {"uses": 1})
        assert response.status_code == 201, response.text
        return base64.b64decode(response.json()["encrypted_data_key"])


@pytest.fixture
def setup(live_server: LiveServer, runtime: Runtime) -> Setup:
    with runtime.db.write() as session:
        acct = f.account(session)
        f.dataset(session, acct, "SSN", runtime.master, template="ssn")
        f.dataset(session, acct, "Cards", runtime.master, template="digits")
        f.dataset(session, acct, "Files", runtime.master, template="text")
        secrets = f.manual_key(
            session, acct, runtime.master, "app", datasets=("SSN", "Files")
        ).secrets
    app = CheckedSigner(live_server.url, secrets.access_key_id, secrets.secret_signing_key)
    return Setup(live_server, runtime, acct, app)


def decrypt_request(signer: CheckedSigner, encrypted_data_key: Any) -> httpx.Response:
    return signer.post_json("/api/v0/decryption/key", {"encrypted_data_key": encrypted_data_key})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def usage_rows(runtime: Runtime, account_id: uuid.UUID) -> int:
    with runtime.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(UsageEvent)
                .where(UsageEvent.account_id == account_id)
            )
            or 0
        )


# --- encrypted data keys ------------------------------------------------------------------


def test_issued_edk_decrypts_for_its_own_key(setup: Setup) -> None:
    """Baseline: the EDK just issued resolves for the key that asked for it."""
    response = decrypt_request(setup.app, b64(setup.fresh_edk()))
    assert response.status_code == 200, response.text
    assert {"wrapped_data_key", "encrypted_private_key", "key_fingerprint"} <= set(response.json())


@pytest.mark.parametrize(
    "value",
    ["@@@ not base64 @@@", "QUJD\x00", "YWJj-_", "YWJjZA"],
    ids=["symbols", "nul byte", "url-safe alphabet", "missing padding"],
)
def test_garbage_base64_edk_is_400(setup: Setup, value: str) -> None:
    """encrypted_data_key that is not standard padded base64 gets 400."""
    assert decrypt_request(setup.app, value).status_code == 400


@pytest.mark.parametrize("value", [None, 12, "", ["x"], {"a": 1}], ids=repr)
def test_edk_of_the_wrong_type_is_400(setup: Setup, value: Any) -> None:
    """encrypted_data_key missing, empty or not a string gets 400."""
    assert decrypt_request(setup.app, value).status_code == 400


@pytest.mark.parametrize("cut", [1, 16, 60], ids=["1 byte", "the tag", "most of it"])
def test_truncated_edk_is_400(setup: Setup, cut: int) -> None:
    """A real EDK with bytes cut off its end gets 400."""
    blob = setup.fresh_edk()
    assert decrypt_request(setup.app, b64(blob[:-cut])).status_code == 400


def test_edk_with_bytes_appended_is_400(setup: Setup) -> None:
    """A real EDK with extra bytes after it gets 400."""
    assert decrypt_request(setup.app, b64(setup.fresh_edk() + b"\x00")).status_code == 400


@pytest.mark.parametrize("offset", [-1, -20, -40], ids=["tag", "sealed key", "nonce"])
def test_tampered_edk_is_400(setup: Setup, offset: int) -> None:
    """A real EDK with one bit flipped in its sealed part gets 400."""
    blob = bytearray(setup.fresh_edk())
    blob[offset] ^= 0x01
    response = decrypt_request(setup.app, b64(bytes(blob)))
    assert response.status_code == 400, response.text


def test_edk_with_unknown_version_is_400(setup: Setup) -> None:
    """An EDK whose version byte is not Keystead's gets 400."""
    blob = bytearray(setup.fresh_edk())
    blob[0] = 0x7F
    assert decrypt_request(setup.app, b64(bytes(blob))).status_code == 400


def test_edk_relabelled_with_another_key_number_is_400(setup: Setup) -> None:
    """After a rotation, a key-0 EDK whose header is edited to say key 1 fails (header is AAD)."""
    blob = bytearray(setup.fresh_edk())
    with setup.runtime.db.write() as session:
        dataset = catalog.find_dataset(session, setup.account_id, "Files")
        catalog.rotate_key(session, dataset, master=setup.runtime.master, actor=ACTOR)
    assert decrypt_request(setup.app, b64(bytes(blob))).status_code == 200
    assert edk.read_header(bytes(blob)).key_number == 0
    blob[1 + 16 + 3] = 1  # the low byte of the big-endian key number
    assert edk.read_header(bytes(blob)).key_number == 1
    response = decrypt_request(setup.app, b64(bytes(blob)))
    assert response.status_code == 400, response.text


def test_edk_naming_a_key_version_that_does_not_exist_is_400(setup: Setup) -> None:
    """An EDK whose header names key 7 of a dataset at key 0 gets 400."""
    blob = bytearray(setup.fresh_edk())
    blob[1 + 16 + 3] = 7
    response = decrypt_request(setup.app, b64(bytes(blob)))
    assert response.status_code == 400, response.text


def test_edk_of_account_a_presented_by_account_b_is_403_naming_nothing_of_a(
    setup: Setup,
) -> None:
    """Account B's key gets 403 for account A's EDK; the message names no dataset of A."""
    blob = setup.fresh_edk()
    a_dataset_id = edk.read_header(blob).dataset_id
    with setup.runtime.db.write() as session:
        other = f.account(session, "Globex")
        f.dataset(session, other, "Docs", setup.runtime.master, template="text")
        # Same dataset name as A's, to be sure nothing of A leaks through it either.
        f.dataset(session, other, "Files", setup.runtime.master, template="text")
    b_key = setup.new_key("b-app", datasets=("Docs",), account_id=other)

    response = decrypt_request(b_key, b64(blob))
    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert b_key.key_id in message
    assert "Files" not in message
    assert "SSN" not in message
    assert str(a_dataset_id) not in message
    assert a_dataset_id.hex not in message


def test_edk_of_a_dataset_the_key_may_not_use_is_403_naming_it(setup: Setup) -> None:
    """A key of the same account without access to the EDK's dataset gets 403."""
    blob = setup.fresh_edk()
    stranger = setup.new_key("stranger", datasets=("SSN",))
    response = decrypt_request(stranger, b64(blob))
    assert response.status_code == 403
    assert response.json() == {
        "message": f"API key {stranger.key_id} has no access to dataset Files"
    }


# --- bodies and parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{", b"\xff\xfe", b"", b"[1, 2]", b'"uses"', b"1", b"null"],
    ids=["text", "cut json", "not utf-8", "empty", "list", "string", "number", "null"],
)
@pytest.mark.parametrize("path", ["/api/v0/encryption/key", "/api/v0/decryption/key"])
def test_body_not_a_json_object_is_400(setup: Setup, path: str, body: bytes) -> None:
    """A body that is not JSON, or JSON that is not an object, gets 400."""
    response = setup.app.request("POST", path, body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"uses": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"uses": 1, "x": "\\ud800"}',
        b'{"uses": 1, "x": "\xed\xa0\x80"}',
        b'{"uses": 1, "x": NaN}',
        b'{"uses": 1, "x": ' + b"9" * 5000 + b"}",
    ],
    ids=["nested too deeply", "lone surrogate escape", "encoded surrogate", "NaN", "long number"],
)
@pytest.mark.parametrize(
    "path", ["/api/v0/encryption/key", "/api/v0/decryption/key", "/api/v3/tracking/events"]
)
def test_body_that_is_no_utf8_json_text_is_400_saying_why(
    setup: Setup, path: str, body: bytes
) -> None:
    """Bodies Python's parser overflows on (a 500 on every path), reads into text UTF-8
    cannot hold, or into a number JSON has not (a 500 once stored: PostgreSQL's json type
    refuses NaN); every body Keystead parses itself follows one rule."""
    response = setup.app.request("POST", path, body)
    assert response.status_code == 400, response.text
    assert "request body" in response.json()["message"]
    assert "set_int_max_str_digits" not in response.text


@pytest.mark.parametrize(
    "uses",
    ["1", 1.5, True, 0, -1, None, 10**12, [1]],
    ids=["string", "float", "bool", "zero", "negative", "null", "huge", "list"],
)
def test_uses_not_a_positive_integer_is_400(setup: Setup, uses: Any) -> None:
    """uses that is not an integer of at least 1 (or absurdly large) gets 400."""
    response = setup.app.post_json("/api/v0/encryption/key", {"uses": uses})
    assert response.status_code == 400, response.text


def test_missing_uses_is_400(setup: Setup) -> None:
    """A body without uses gets 400."""
    assert setup.app.post_json("/api/v0/encryption/key", {}).status_code == 400


def test_valid_uses_gets_201_with_max_uses(setup: Setup) -> None:
    """Baseline: uses=3 gets 201 and max_uses 3."""
    response = setup.app.post_json("/api/v0/encryption/key", {"uses": 3})
    assert response.status_code == 201, response.text
    assert response.json()["max_uses"] == 3


@pytest.mark.parametrize("path", ["/api/v0/ffs", "/api/v0/fpe/key", "/api/v0/fpe/def_keys"])
def test_unknown_and_ungranted_datasets_get_the_same_403(setup: Setup, path: str) -> None:
    """A dataset that does not exist and one not granted answer alike: 403, same shape."""
    unknown = setup.app.get(path, ffs_name="NoSuchDataset")
    ungranted = setup.app.get(path, ffs_name="Cards")
    assert unknown.status_code == ungranted.status_code == 403
    key = setup.app.key_id
    assert unknown.json() == {"message": f"API key {key} has no access to dataset NoSuchDataset"}
    assert ungranted.json() == {"message": f"API key {key} has no access to dataset Cards"}


def test_dataset_of_another_account_gets_the_same_403(setup: Setup) -> None:
    """A structured dataset that exists only in another account is 'no access' too."""
    with setup.runtime.db.write() as session:
        other = f.account(session, "Globex")
        f.dataset(session, other, "Secret", setup.runtime.master, template="ssn")
    response = setup.app.get("/api/v0/ffs", ffs_name="Secret")
    assert response.status_code == 403
    assert response.json() == {
        "message": f"API key {setup.app.key_id} has no access to dataset Secret"
    }


@pytest.mark.parametrize("path", ["/api/v0/ffs", "/api/v0/fpe/key", "/api/v0/fpe/def_keys"])
def test_unstructured_dataset_on_structured_endpoint_is_400(setup: Setup, path: str) -> None:
    """An unstructured dataset the key may use, asked on a structured endpoint, gets 400."""
    response = setup.app.get(path, ffs_name="Files")
    assert response.status_code == 400, response.text
    assert "unstructured" in response.json()["message"]


def test_missing_dataset_name_is_400(setup: Setup) -> None:
    """GET /api/v0/ffs without ffs_name gets 400."""
    response = setup.app.request("GET", f"/api/v0/ffs?papi={setup.app.key_id}")
    assert response.status_code == 400, response.text


def test_key_number_beyond_the_current_one_is_404(setup: Setup) -> None:
    """key_number 1 on a dataset whose current key is 0 gets 404; 0 gets 200."""
    assert setup.app.get("/api/v0/fpe/key", ffs_name="SSN", key_number="0").status_code == 200
    response = setup.app.get("/api/v0/fpe/key", ffs_name="SSN", key_number="1")
    assert response.status_code == 404, response.text


def test_rotated_key_number_becomes_available(setup: Setup) -> None:
    """After a rotation key_number 1 is served and is the current key."""
    with setup.runtime.db.write() as session:
        dataset = catalog.find_dataset(session, setup.account_id, "SSN")
        catalog.rotate_key(session, dataset, master=setup.runtime.master, actor=ACTOR)
    exact = setup.app.get("/api/v0/fpe/key", ffs_name="SSN", key_number="1")
    current = setup.app.get("/api/v0/fpe/key", ffs_name="SSN")
    assert exact.status_code == current.status_code == 200
    assert str(exact.json()["key_number"]) == str(current.json()["key_number"]) == "1"
    assert setup.app.get("/api/v0/fpe/key", ffs_name="SSN", key_number="2").status_code == 404


@pytest.mark.parametrize(
    "key_number",
    ["abc", "-1", "1.0", "", "0x1", "99999999999999999999", "%C2%B2"],
    ids=["letters", "negative", "decimal", "empty", "hex", "huge", "superscript two (was a 500)"],
)
def test_key_number_not_a_number_is_400(setup: Setup, key_number: str) -> None:
    """key_number that is not a non-negative decimal integer gets 400."""
    response = setup.app.get("/api/v0/fpe/key", ffs_name="SSN", key_number=key_number)
    assert response.status_code == 400, response.text


def test_body_over_one_mebibyte_is_413(setup: Setup) -> None:
    """A signed POST whose body is 1 MiB + 1 byte gets 413."""
    body = json.dumps({"uses": 1, "pad": "x" * MIB}).encode()
    assert len(body) > MIB
    response = setup.app.request("POST", "/api/v0/encryption/key", body)
    assert response.status_code == 413, response.text


def test_body_of_almost_one_mebibyte_is_accepted(setup: Setup) -> None:
    """A body just under the limit is read and answered normally."""
    body = json.dumps({"uses": 1, "pad": "x" * (MIB - 100)}).encode()
    assert len(body) <= MIB
    response = setup.app.request("POST", "/api/v0/encryption/key", body)
    assert response.status_code == 201, response.text


def test_wrong_method_is_405_with_a_message(setup: Setup) -> None:
    """A signed GET on the POST-only key endpoint gets 405 as JSON."""
    response = setup.app.request("GET", "/api/v0/encryption/key")
    assert response.status_code == 405, response.text


def test_unknown_data_plane_path_is_404_with_a_message(setup: Setup) -> None:
    """A signed request to a path the data plane does not have gets 404 as JSON."""
    response = setup.app.request("GET", "/api/v0/fpe/nothing")
    assert response.status_code == 404, response.text


# --- usage events -------------------------------------------------------------------------


def _entry(api_key: str, **changes: Any) -> dict[str, Any]:
    entry = {
        "datasets": "SSN",
        "dataset_groups": "",
        "dataset_type": "structured",
        "api_key": api_key,
        "count": 3,
        "key_number": "0",
        "action": "encrypt",
        "product": "ubiq-python",
        "product_version": "2.4.0",
        "user-agent": "ubiq-python/2.4.0",
        "api_version": "V3",
        "last_call_timestamp": "2026-11-28T12:37:48.669717+00:00",
        "first_call_timestamp": "2026-11-28T12:37:48.669707+00:00",
        "user_defined": {},
    }
    entry.update(changes)
    return entry


MALFORMED_REPORTS: dict[str, Any] = {
    "not json": b"usage=1",
    "list": [],
    "no usage": {"events": []},
    "usage not a list": {"usage": "many"},
    "entry not an object": {"usage": ["x"]},
    "entry missing fields": {"usage": [{"datasets": "SSN"}]},
    "unknown action": {"usage": [_entry("KEY", action="rotate")]},
    "negative count": {"usage": [_entry("KEY", count=-1)]},
    "bad key number": {"usage": [_entry("KEY", key_number="one")]},
    "bad timestamp": {"usage": [_entry("KEY", last_call_timestamp="yesterday")]},
    "one good, one bad": {"usage": [_entry("KEY"), _entry("KEY", dataset_type="x")]},
    # These were 500s: past the key_number column's 32 bits (PostgreSQL), and times whose
    # offset moves them out of datetime's range in UTC (both engines).
    "key number past 32 bits": {"usage": [_entry("KEY", key_number=str(2**31))]},
    "before year 1 in UTC": {
        "usage": [_entry("KEY", first_call_timestamp="0001-01-01T00:00:00+01:00")]
    },
    "after year 9999 in UTC": {
        "usage": [_entry("KEY", last_call_timestamp="9999-12-31T23:59:59-01:00")]
    },
}


@pytest.mark.parametrize("report", MALFORMED_REPORTS.values(), ids=MALFORMED_REPORTS.keys())
def test_malformed_usage_report_is_400_and_stores_nothing(setup: Setup, report: Any) -> None:
    """A malformed events body gets 400, stores nothing, and encryption still works."""
    if isinstance(report, bytes):
        body = report
    else:
        body = json.dumps(report).replace('"KEY"', json.dumps(setup.app.key_id)).encode()
    response = setup.app.request("POST", "/api/v3/tracking/events", body)
    assert response.status_code == 400, response.text
    assert usage_rows(setup.runtime, setup.account_id) == 0
    assert setup.app.post_json("/api/v0/encryption/key", {"uses": 1}).status_code == 201
    assert setup.app.get("/api/v0/ffs", ffs_name="SSN").status_code == 200


def test_valid_usage_report_stores_only_this_accounts_keys(setup: Setup) -> None:
    """Entries naming keys of the account are stored; others are ignored, not an error."""
    report = {
        "usage": [
            _entry(setup.app.key_id),
            _entry(setup.app.key_id, action="decrypt", key_number=0, count=1),
            _entry("SomeoneElsesKey000000000"),
        ]
    }
    response = setup.app.post_json("/api/v3/tracking/events", report)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2, "ignored": 1}
    assert usage_rows(setup.runtime, setup.account_id) == 2


# --- usage correction ---------------------------------------------------------------------


def test_usage_correction_patch_is_204(setup: Setup) -> None:
    """PATCH /api/v0/encryption/key/{fp}/{session} with requested/actual gets 204."""
    issued = setup.app.post_json("/api/v0/encryption/key", {"uses": 1}).json()
    path = f"/api/v0/encryption/key/{issued['key_fingerprint']}/{issued['encryption_session']}"
    response = setup.app.request("PATCH", path, b'{"requested": 1, "actual": 0}')
    assert response.status_code == 204, response.text
    assert response.content == b""


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"requested": "1", "actual": 0}', b'{"requested": 1, "actual": -1}'],
    ids=["list", "string", "negative"],
)
def test_malformed_usage_correction_is_400(setup: Setup, body: bytes) -> None:
    """A usage correction body that is not two non-negative integers gets 400."""
    response = setup.app.request("PATCH", "/api/v0/encryption/key/abc/def", body)
    assert response.status_code == 400, response.text


# --- which unstructured dataset -----------------------------------------------------------


def test_several_unstructured_datasets_without_default_is_403_saying_how_to_fix(
    setup: Setup,
) -> None:
    """Two unstructured datasets, no default: 403 with the fix; after the fix it works."""
    with setup.runtime.db.write() as session:
        f.dataset(session, setup.account_id, "Archive", setup.runtime.master, template="text")
    multi = setup.new_key("multi", datasets=("Files", "Archive"))

    refused = multi.post_json("/api/v0/encryption/key", {"uses": 1})
    assert refused.status_code == 403, refused.text
    message = refused.json()["message"]
    assert "Files" in message
    assert "Archive" in message
    assert f"keystead api-key set-default-dataset {multi.key_id}" in message

    with setup.runtime.db.write() as session:
        key = apikeys.find_api_key(session, setup.account_id, multi.key_id)
        apikeys.set_default_dataset(session, key, "Archive", actor=ACTOR)
        archive_id = catalog.find_dataset(session, setup.account_id, "Archive").id
    issued = multi.post_json("/api/v0/encryption/key", {"uses": 1})
    assert issued.status_code == 201, issued.text
    blob = base64.b64decode(issued.json()["encrypted_data_key"])
    assert edk.read_header(blob).dataset_id == archive_id
    assert decrypt_request(multi, b64(blob)).status_code == 200


def test_single_unstructured_dataset_needs_no_default(setup: Setup) -> None:
    """A key that may use exactly one unstructured dataset encrypts under it."""
    issued = setup.app.post_json("/api/v0/encryption/key", {"uses": 1})
    assert issued.status_code == 201
    with setup.runtime.db.read() as session:
        files_id = catalog.find_dataset(session, setup.account_id, "Files").id
    blob = base64.b64decode(issued.json()["encrypted_data_key"])
    assert edk.read_header(blob).dataset_id == files_id


def test_key_without_unstructured_dataset_is_403(setup: Setup) -> None:
    """A key granted only structured datasets gets 403 on POST /api/v0/encryption/key."""
    structured_only = setup.new_key("structured-only", datasets=("SSN",))
    response = structured_only.post_json("/api/v0/encryption/key", {"uses": 1})
    assert response.status_code == 403, response.text
    assert "unstructured" in response.json()["message"]
