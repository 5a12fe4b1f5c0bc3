"""The official Ubiq client (ubiq-security 2.4.0) end to end against the live server:
unstructured one-shot and piecewise encryption, structured encryption and encrypt-for-search,
key rotation, every way access can be missing or withdrawn, and usage events.

Every credentials object gets a configuration file with synchronous event reporting (no
background thread) and key caching off, so that each call reaches the server."""

from __future__ import annotations

import os
import re
import urllib.error
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ubiq_security
from ubiq_security import structured

from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.dataplane import edk, events
from keystead.runtime import Runtime
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR
from tests.support.accounts import FirstAccount
from tests.support.ubiq import assert_http_error, uncached_config

SSN = "123-45-6789"
ALNUM = "AbC-123 xyZ"

# --- helpers ------------------------------------------------------------------------------


@dataclass
class Client:
    """One API key as the application sees it: its id and a ready credentials object."""

    access_key_id: str
    creds: Any  # ubiq_security.credentials


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    return uncached_config(tmp_path)


def new_client(
    runtime: Runtime,
    server: LiveServer,
    config_file: str,
    account_id: uuid.UUID,
    name: str,
    *,
    datasets: tuple[str, ...] = (),
) -> Client:
    with runtime.db.write() as session:
        secrets = f.manual_key(session, account_id, runtime.master, name, datasets=datasets).secrets
    creds = ubiq_security.credentials(
        secrets.access_key_id,
        secrets.secret_signing_key,
        secrets.secret_crypto_access_key,
        host=server.url,
        config_file=config_file,
    )
    return Client(secrets.access_key_id, creds)


def new_account(runtime: Runtime, *datasets: tuple[str, str]) -> uuid.UUID:
    """An account with datasets given as (name, template)."""
    with runtime.db.write() as session:
        acct = f.account(session)
        for name, template in datasets:
            f.dataset(session, acct, name, runtime.master, template=template)
    return acct


def definition_of(runtime: Runtime, account_id: uuid.UUID, name: str) -> dict[str, Any]:
    with runtime.db.read() as session:
        definition = catalog.find_dataset(session, account_id, name).definition
    assert definition is not None
    return dict(definition)


def key_number_of(ciphertext: str, definition: dict[str, Any]) -> int:
    """§6.5: the key number carried by the first ciphertext character."""
    index = definition["output_character_set"].index(ciphertext[0])
    return int(index >> definition["msb_encoding_bits"])


def rotate(runtime: Runtime, account_id: uuid.UUID, name: str) -> int:
    with runtime.db.write() as session:
        dataset = catalog.find_dataset(session, account_id, name)
        return catalog.rotate_key(session, dataset, master=runtime.master, actor=ACTOR)


def set_enabled(runtime: Runtime, account_id: uuid.UUID, key_id: str, enabled: bool) -> None:
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, account_id, key_id)
        apikeys.set_enabled(session, key, enabled, actor=ACTOR)


def revoke(runtime: Runtime, account_id: uuid.UUID, key_id: str, dataset: str) -> None:
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, account_id, key_id)
        apikeys.revoke(session, key, datasets=(dataset,), actor=ACTOR)


def edk_of(ciphertext: bytes) -> bytes:
    """§5.5: the encrypted data key embedded in an unstructured ciphertext's header."""
    assert ciphertext[0] == 0, "version"
    assert ciphertext[1] == 1, "flags: header is AAD"
    iv_length = ciphertext[3]
    edk_length = int.from_bytes(ciphertext[4:6], "big")
    start = 6 + iv_length
    return ciphertext[start : start + edk_length]


def log_records(server: LiveServer, start: int) -> list[dict[str, Any]]:
    """The server's JSON log records from character ``start`` on."""
    return server.records(start)


# --- unstructured -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [b"hello, keystead", os.urandom(5 * 1024 * 1024)],
    ids=["small", "5 MB"],
)
def test_unstructured_one_shot_round_trip(
    runtime: Runtime, live_server: LiveServer, config_file: str, plaintext: bytes
) -> None:
    """ubiq_security.encrypt then decrypt returns the plaintext, small and ~5 MB alike."""
    acct = new_account(runtime, ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Files",))
    ciphertext = ubiq_security.encrypt(app.creds, plaintext)
    assert plaintext not in ciphertext
    assert len(ciphertext) > len(plaintext)
    assert ubiq_security.decrypt(app.creds, ciphertext) == plaintext


def test_unstructured_piecewise_key_serves_three_encryptions(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """encryption(creds, 3): three begin/update/end cycles on one data key, all decrypt."""
    acct = new_account(runtime, ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Files",))
    plaintexts = [b"first message", b"second, a little longer message", os.urandom(70_000)]

    enc = ubiq_security.encryption(app.creds, 3)
    ciphertexts = []
    for plaintext in plaintexts:
        middle = len(plaintext) // 2
        ciphertexts.append(
            enc.begin()
            + enc.update(plaintext[:middle])
            + enc.update(plaintext[middle:])
            + enc.end()
        )
    with pytest.raises(RuntimeError, match="maximum key uses exceeded"):
        enc.begin()
    del enc

    assert len({edk_of(ct) for ct in ciphertexts}) == 1, "one data key for all three"
    dec = ubiq_security.decryption(app.creds)
    for plaintext, ciphertext in zip(plaintexts, ciphertexts, strict=True):
        chunks = [ciphertext[i : i + 1000] for i in range(0, len(ciphertext), 1000)]
        recovered = dec.begin() + b"".join(dec.update(c) for c in chunks) + dec.end()
        assert recovered == plaintext


def test_unstructured_piecewise_key_used_less_than_granted(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """A key used once of 3: the client's usage PATCH gets 204 and the ciphertext decrypts."""
    acct = new_account(runtime, ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Files",))
    log_start = len(live_server.log())
    enc = ubiq_security.encryption(app.creds, 3)
    ciphertext = enc.begin() + enc.update(b"only once") + enc.end()
    del enc  # the finaliser sends PATCH /api/v0/encryption/key/{fp}/{session}
    assert ubiq_security.decrypt(app.creds, ciphertext) == b"only once"

    patches = [
        record
        for record in log_records(live_server, log_start)
        if record.get("event") == "request" and record.get("method") == "PATCH"
    ]
    assert len(patches) == 1, patches
    assert patches[0]["path"].startswith("/api/v0/encryption/key/")
    assert patches[0]["status"] == 204


def test_second_key_with_access_decrypts_first_keys_ciphertext(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """Another key granted the same unstructured dataset decrypts; an ungranted key cannot."""
    acct = new_account(runtime, ("Files", "text"), ("Other", "text"))
    writer = new_client(runtime, live_server, config_file, acct, "writer", datasets=("Files",))
    reader = new_client(runtime, live_server, config_file, acct, "reader", datasets=("Files",))
    outsider = new_client(runtime, live_server, config_file, acct, "outsider", datasets=("Other",))
    ciphertext = ubiq_security.encrypt(writer.creds, b"shared secret")
    assert ubiq_security.decrypt(reader.creds, ciphertext) == b"shared secret"
    with pytest.raises(urllib.error.HTTPError) as caught:
        ubiq_security.decrypt(outsider.creds, ciphertext)
    assert_http_error(caught, 403)
    # The message the client shows comes from the server's JSON body (§4).
    assert outsider.access_key_id in str(caught.value.msg)


def test_unstructured_rotation_keeps_old_ciphertexts_readable(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """After a rotation new data keys are sealed under key 1 and key-0 ciphertexts decrypt."""
    acct = new_account(runtime, ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Files",))
    old = ubiq_security.encrypt(app.creds, b"before rotation")
    assert rotate(runtime, acct, "Files") == 1
    new = ubiq_security.encrypt(app.creds, b"after rotation")
    assert edk.read_header(edk_of(old)).key_number == 0
    assert edk.read_header(edk_of(new)).key_number == 1
    assert ubiq_security.decrypt(app.creds, old) == b"before rotation"
    assert ubiq_security.decrypt(app.creds, new) == b"after rotation"


# --- structured ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "plaintext", "passthrough"),
    [("ssn", SSN, {3: "-", 6: "-"}), ("alnum", ALNUM, {3: "-", 7: " "})],
    ids=["ssn", "alnum with passthrough"],
)
def test_structured_round_trip_keeps_the_format(
    runtime: Runtime,
    live_server: LiveServer,
    config_file: str,
    template: str,
    plaintext: str,
    passthrough: dict[int, str],
) -> None:
    """Encrypt keeps the format, Decrypt restores it, EncryptForSearch equals Encrypt."""
    acct = new_account(runtime, ("Data", template))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Data",))
    definition = definition_of(runtime, acct, "Data")

    ciphertext = structured.Encrypt(app.creds, "Data", plaintext)
    assert ciphertext != plaintext
    assert len(ciphertext) == len(plaintext)
    for position, char in passthrough.items():
        assert ciphertext[position] == char
    core = [c for i, c in enumerate(ciphertext) if i not in passthrough]
    assert all(c in definition["output_character_set"] for c in core)
    assert key_number_of(ciphertext, definition) == 0

    assert structured.Decrypt(app.creds, "Data", ciphertext) == plaintext
    assert structured.EncryptForSearch(app.creds, "Data", plaintext) == [ciphertext]


def test_access_log_names_method_path_status_time_and_key_never_the_query(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """One access line per data-plane call: method, path without the query string, status,
    duration and the calling key's public id; nothing of the query or any secret."""
    acct = new_account(runtime, ("SSN", "ssn"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN",))
    log_start = len(live_server.log())
    assert structured.EncryptForSearch(app.creds, "SSN", SSN)

    lines = [
        record
        for record in log_records(live_server, log_start)
        if record.get("event") == "request" and record.get("path", "").startswith("/api/v0/")
    ]
    assert {line["path"] for line in lines} == {
        "/api/v0/ffs",
        "/api/v0/fpe/key",
        "/api/v0/fpe/def_keys",
    }
    for line in lines:
        assert set(line) == {
            "method",
            "path",
            "status",
            "ms",
            "access_key_id",
            "request_id",
            "event",
            "level",
            "logger",
            "timestamp",
        }
        assert (line["method"], line["status"]) == ("GET", 200)
        assert line["access_key_id"] == app.access_key_id
        assert isinstance(line["ms"], float)
        assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
        assert line["logger"] == "keystead.access"
        assert line["timestamp"].endswith("Z")
    assert "ffs_name" not in live_server.log()[log_start:]


def test_structured_object_api_round_trips_several_values(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """Encryption/Decryption objects reuse one fetched key for several values."""
    acct = new_account(runtime, ("SSN", "ssn"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN",))
    values = ["123-45-6789", "987654321", "000-00-0001"]
    encryption = structured.Encryption(app.creds, "SSN")
    ciphertexts = [encryption.Cipher(v) for v in values]
    decryption = structured.Decryption(app.creds, "SSN")
    assert [decryption.Cipher(c) for c in ciphertexts] == values
    assert len(set(ciphertexts)) == len(values)


def test_structured_rotation_moves_new_ciphertexts_to_the_new_key(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """After rotate_key: new key number, old ciphertexts decrypt, one search result per key."""
    acct = new_account(runtime, ("SSN", "ssn"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN",))
    definition = definition_of(runtime, acct, "SSN")

    old = structured.Encrypt(app.creds, "SSN", SSN)
    assert key_number_of(old, definition) == 0
    assert rotate(runtime, acct, "SSN") == 1
    new = structured.Encrypt(app.creds, "SSN", SSN)
    assert key_number_of(new, definition) == 1
    assert new != old

    assert structured.Decrypt(app.creds, "SSN", old) == SSN
    assert structured.Decrypt(app.creds, "SSN", new) == SSN
    search = structured.EncryptForSearch(app.creds, "SSN", SSN)
    assert search == [old, new]
    assert [key_number_of(c, definition) for c in search] == [0, 1]

    assert rotate(runtime, acct, "SSN") == 2
    search = structured.EncryptForSearch(app.creds, "SSN", SSN)
    assert [key_number_of(c, definition) for c in search] == [0, 1, 2]
    assert search[:2] == [old, new]


def test_alnum_rotation_round_trips_with_passthrough(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """The alphanumeric template carries a rotated key number and keeps passthrough."""
    acct = new_account(runtime, ("Codes", "alnum"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("Codes",))
    definition = definition_of(runtime, acct, "Codes")
    old = structured.Encrypt(app.creds, "Codes", ALNUM)
    rotate(runtime, acct, "Codes")
    new = structured.Encrypt(app.creds, "Codes", ALNUM)
    assert key_number_of(old, definition) == 0
    assert key_number_of(new, definition) == 1
    assert new[3] == "-"
    assert new[7] == " "
    assert structured.Decrypt(app.creds, "Codes", old) == ALNUM
    assert structured.Decrypt(app.creds, "Codes", new) == ALNUM
    assert structured.EncryptForSearch(app.creds, "Codes", ALNUM) == [old, new]


# --- missing or withdrawn access ----------------------------------------------------------


def test_dataset_the_key_may_not_use_makes_the_client_raise(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """A structured dataset of the account that the key was not granted: HTTPError 403."""
    acct = new_account(runtime, ("SSN", "ssn"), ("Cards", "digits"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN",))
    with pytest.raises(urllib.error.HTTPError) as caught:
        structured.Encrypt(app.creds, "Cards", "4111 1111 1111")
    assert_http_error(caught, 403)
    with pytest.raises(urllib.error.HTTPError) as caught:
        structured.Encrypt(app.creds, "NoSuchDataset", SSN)
    assert_http_error(caught, 403)


def test_unstructured_encrypt_without_any_unstructured_dataset_raises(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """A key granted only structured datasets cannot get an unstructured data key."""
    acct = new_account(runtime, ("SSN", "ssn"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN",))
    with pytest.raises(urllib.error.HTTPError) as caught:
        ubiq_security.encrypt(app.creds, b"no dataset for me")
    assert_http_error(caught, 403)


def test_disabled_key_makes_the_client_raise(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """Once its key is disabled every client call raises HTTPError 401."""
    acct = new_account(runtime, ("SSN", "ssn"), ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN", "Files"))
    ciphertext = ubiq_security.encrypt(app.creds, b"written while enabled")
    token = structured.Encrypt(app.creds, "SSN", SSN)

    set_enabled(runtime, acct, app.access_key_id, False)
    calls: list[Callable[[], object]] = [
        lambda: ubiq_security.encrypt(app.creds, b"x"),
        lambda: ubiq_security.decrypt(app.creds, ciphertext),
        lambda: structured.Encrypt(app.creds, "SSN", SSN),
        lambda: structured.Decrypt(app.creds, "SSN", token),
    ]
    for call in calls:
        with pytest.raises(urllib.error.HTTPError) as caught:
            call()
        assert_http_error(caught, 401)

    set_enabled(runtime, acct, app.access_key_id, True)
    assert structured.Decrypt(app.creds, "SSN", token) == SSN


def test_revoked_grant_fails_the_very_next_uncached_call(
    runtime: Runtime, live_server: LiveServer, config_file: str
) -> None:
    """Right after apikeys.service.revoke the next structured and unstructured calls raise."""
    acct = new_account(runtime, ("SSN", "ssn"), ("Files", "text"))
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN", "Files"))
    token = structured.Encrypt(app.creds, "SSN", SSN)
    ciphertext = ubiq_security.encrypt(app.creds, b"before revoke")
    assert structured.Decrypt(app.creds, "SSN", token) == SSN
    assert ubiq_security.decrypt(app.creds, ciphertext) == b"before revoke"

    revoke(runtime, acct, app.access_key_id, "SSN")
    with pytest.raises(urllib.error.HTTPError) as caught:
        structured.Encrypt(app.creds, "SSN", SSN)
    assert_http_error(caught, 403)
    with pytest.raises(urllib.error.HTTPError) as caught:
        structured.Decrypt(app.creds, "SSN", token)
    assert_http_error(caught, 403)
    # The unstructured grant is untouched until it is revoked too.
    assert ubiq_security.decrypt(app.creds, ciphertext) == b"before revoke"

    revoke(runtime, acct, app.access_key_id, "Files")
    with pytest.raises(urllib.error.HTTPError) as caught:
        ubiq_security.decrypt(app.creds, ciphertext)
    assert_http_error(caught, 403)
    with pytest.raises(urllib.error.HTTPError) as caught:
        ubiq_security.encrypt(app.creds, b"after revoke")
    assert_http_error(caught, 403)


# --- usage events -------------------------------------------------------------------------


def test_usage_events_reach_the_admin_usage_summary(
    runtime: Runtime,
    live_server: LiveServer,
    config_file: str,
    first_account: FirstAccount,
    admin_api: httpx.Client,
) -> None:
    """Synchronous events from the client appear in events.summary and GET /usage."""
    acct = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as session:
        f.dataset(session, acct, "SSN", runtime.master, template="ssn")
        f.dataset(session, acct, "Files", runtime.master, template="text")
    app = new_client(runtime, live_server, config_file, acct, "app", datasets=("SSN", "Files"))

    tokens = [structured.Encrypt(app.creds, "SSN", SSN) for _ in range(2)]
    structured.Decrypt(app.creds, "SSN", tokens[0])
    structured.EncryptForSearch(app.creds, "SSN", SSN)  # records no event (§8)
    ciphertext = ubiq_security.encrypt(app.creds, b"counted")
    ubiq_security.decrypt(app.creds, ciphertext)

    def totals(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        for row in rows:
            assert row["api_key"] == app.access_key_id
            key = (row["dataset"], row["dataset_type"], row["action"])
            out[key] = out.get(key, 0) + row["count"]
        return out

    expected = {
        ("SSN", "structured", "encrypt"): 2,
        ("SSN", "structured", "decrypt"): 1,
        ("", "unstructured", "encrypt"): 1,
        ("", "unstructured", "decrypt"): 1,
    }
    with runtime.db.read() as session:
        rows = events.summary(session, account_id=acct, api_key=app.access_key_id)
    assert totals([row.model_dump() for row in rows]) == expected

    response = admin_api.get("/usage", params={"api_key": app.access_key_id})
    assert response.status_code == 200, response.text
    assert totals(response.json()) == expected
