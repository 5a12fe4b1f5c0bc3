"""Signed requests made by hand against the live server (client protocol, section 3): a
correct signature is accepted; each tampered component alone, an unknown key, a wrong
secret, a stale signature, a disabled key and a missing header are refused alike, and every
refusal is logged with a reason while the signing secret never reaches the log.

The signer below follows §3 of the protocol document exactly, independently of
keystead.dataplane.signatures, so that these tests check the server against the contract.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from keystead.apikeys import service as apikeys
from keystead.runtime import Runtime
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR

NOT_VALID = {"message": "the request signature is not valid"}
ALL_COMPONENTS = (
    "(created)",
    "(request-target)",
    "content-length",
    "content-type",
    "date",
    "digest",
    "host",
)


# --- a signer that follows §3 to the letter -------------------------------------------------


def digest_of(body: bytes) -> str:
    """§3.1: SHA-512= and the padded standard base64 of SHA-512 over the exact body bytes."""
    return "SHA-512=" + base64.b64encode(hashlib.sha512(body).digest()).decode()


@dataclass
class Prepared:
    """A request ready to send: what the signer signed, open to tampering before sending."""

    method: str
    target: str  # raw path?query
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Signer:
    """Signs requests for one API key as the Ubiq client 2.4.0 does and sends them raw."""

    base_url: str
    key_id: str
    secret: str = field(repr=False)

    @property
    def host(self) -> str:
        # §3.1: hostname plus :port for a non-default port, here always 127.0.0.1:PORT.
        return urlsplit(self.base_url).netloc

    def prepare(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        created: int | None = None,
        components: tuple[str, ...] | None = None,
        algorithm: str = "hmac-sha512",
        secret: str | None = None,
        key_id: str | None = None,
    ) -> Prepared:
        """Headers of §3.1 and the Signature of §3.4 over ``components`` (default: the
        client's own list for this method, §3.2)."""
        created = int(time.time()) if created is None else created
        headers = {
            "Content-Type": "application/json",
            "Date": formatdate(created, usegmt=True),
            "Digest": digest_of(body),
            "Host": self.host,
            "User-Agent": "ubiq-python/2.4.0",
        }
        if method.upper() != "GET":
            headers["Content-Length"] = str(len(body))
        if components is None:
            present = {name.lower() for name in headers}
            components = tuple(c for c in ALL_COMPONENTS if c.startswith("(") or c in present)
        by_name = {name.lower(): value for name, value in headers.items()}
        lines = []
        for name in components:
            if name == "(created)":
                value = str(created)
            elif name == "(request-target)":
                value = f"{method.lower()} {target}"
            else:
                value = by_name[name]
            lines.append(f"{name}: {value}\n")
        key = (self.secret if secret is None else secret).encode()
        mac = hmac.new(key, "".join(lines).encode(), hashlib.sha512).digest()
        headers["Signature"] = (
            f'keyId="{self.key_id if key_id is None else key_id}", '
            f'algorithm="{algorithm}", created={created}, '
            f'headers="{" ".join(components)}", '
            f'signature="{base64.b64encode(mac).decode()}"'
        )
        return Prepared(method.upper(), target, headers, body)

    def send(self, prepared: Prepared) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            request = client.build_request(
                prepared.method,
                self.base_url + prepared.target,
                # Latin-1 bytes: any header byte a client may send (httpx takes str as ASCII).
                headers={
                    name.encode("ascii"): value.encode("latin-1")
                    for name, value in prepared.headers.items()
                },
                content=prepared.body if prepared.method != "GET" else None,
            )
            # The request line must be exactly what was signed.
            sent = request.url.raw_path.decode()
            assert sent == prepared.target, f"httpx changed the target: {sent!r}"
            response = client.send(request)
            response.read()
            return response

    def request(self, method: str, target: str, body: bytes = b"", **kwargs: Any) -> httpx.Response:
        return self.send(self.prepare(method, target, body, **kwargs))


# --- fixtures -----------------------------------------------------------------------------


@dataclass
class Plane:
    server: LiveServer
    runtime: Runtime
    account_id: uuid.UUID
    app: Signer  # granted SSN
    other: Signer  # another key of the same account, also granted SSN
    app_secrets: tuple[str, str]  # (signing secret, crypto access key), for the log check

    def ffs_target(self, signer: Signer, name: str = "SSN") -> str:
        return f"/api/v0/ffs?ffs_name={name}&papi={signer.key_id}"


@pytest.fixture
def plane(live_server: LiveServer, runtime: Runtime) -> Plane:
    with runtime.db.write() as session:
        acct = f.account(session)
        f.dataset(session, acct, "SSN", runtime.master, template="ssn")
        app = f.manual_key(session, acct, runtime.master, "app", datasets=("SSN",)).secrets
        other = f.manual_key(session, acct, runtime.master, "other", datasets=("SSN",)).secrets
    return Plane(
        server=live_server,
        runtime=runtime,
        account_id=acct,
        app=Signer(live_server.url, app.access_key_id, app.secret_signing_key),
        other=Signer(live_server.url, other.access_key_id, other.secret_signing_key),
        app_secrets=(app.secret_signing_key, app.secret_crypto_access_key),
    )


@pytest.fixture
def log_lines(live_server: LiveServer) -> Callable[[], list[dict[str, object]]]:
    """The server's JSON log records written since this test started."""
    start = len(live_server.log())

    def new_records() -> list[dict[str, object]]:
        return live_server.records(start)

    return new_records


def assert_not_valid(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == NOT_VALID
    assert "Traceback" not in response.text


# --- accepted -----------------------------------------------------------------------------


def test_correct_signature_gets_the_granted_dataset(plane: Plane) -> None:
    """A request signed per §3 gets 200 and the SSN definition from GET /api/v0/ffs."""
    response = plane.app.request("GET", plane.ffs_target(plane.app))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "SSN"
    assert body["encryption_algorithm"] == "FF1"


def test_get_signed_without_content_type_is_accepted(plane: Plane) -> None:
    """A GET whose headers list omits content-type (as ubiq-go signs it) is accepted."""
    components = ("(created)", "(request-target)", "date", "digest", "host")
    response = plane.app.request("GET", plane.ffs_target(plane.app), components=components)
    assert response.status_code == 200, response.text


def test_correctly_signed_post_with_a_body_is_accepted(plane: Plane) -> None:
    """A signed POST covering content-length and the body digest gets past verification."""
    response = plane.app.request("POST", "/api/v3/tracking/events", b'{"usage": []}')
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 0, "ignored": 0}


# --- each tampered component alone -------------------------------------------------------

Tamper = Callable[[Plane], Prepared]


def _signed_ffs(plane: Plane, **kwargs: Any) -> Prepared:
    return plane.app.prepare("GET", plane.ffs_target(plane.app), **kwargs)


def _with(prepared: Prepared, **headers: str | None) -> Prepared:
    changed = dict(prepared.headers)
    for name, value in headers.items():
        real = name.replace("_", "-")
        if value is None:
            changed.pop(real)
        else:
            changed[real] = value
    return dataclasses.replace(prepared, headers=changed)


def _edit_signature(prepared: Prepared, old: str, new: str) -> Prepared:
    header = prepared.headers["Signature"]
    assert old in header, header
    return _with(prepared, Signature=header.replace(old, new, 1))


def _flip_mac(prepared: Prepared) -> Prepared:
    header = prepared.headers["Signature"]
    mac_b64 = header.rsplit('signature="', 1)[1].rstrip('"')
    mac = bytearray(base64.b64decode(mac_b64))
    mac[0] ^= 0x80
    return _edit_signature(prepared, mac_b64, base64.b64encode(bytes(mac)).decode())


def _replace_created(prepared: Prepared, value: str) -> Prepared:
    header = re.sub(r"created=\d+", f"created={value}", prepared.headers["Signature"], count=1)
    return _with(prepared, Signature=header)


def _shift_created(prepared: Prepared) -> Prepared:
    created = re.search(r"created=(\d+)", prepared.headers["Signature"])
    assert created is not None
    return _edit_signature(prepared, created.group(0), f"created={int(created.group(1)) - 1}")


def _signed_for_other_path(plane: Plane) -> Prepared:
    signed = plane.app.prepare("GET", f"/api/v0/fpe/key?ffs_name=SSN&papi={plane.app.key_id}")
    return dataclasses.replace(signed, target=plane.ffs_target(plane.app))


def _signed_for_other_query(plane: Plane) -> Prepared:
    signed = _signed_ffs(plane)
    return dataclasses.replace(signed, target=signed.target + "&key_number=0")


def _signed_as_post(plane: Plane) -> Prepared:
    # Signed as the client would sign a POST of the same target, sent as a GET.
    signed = plane.app.prepare(
        "POST",
        plane.ffs_target(plane.app),
        components=("(created)", "(request-target)", "content-type", "date", "digest", "host"),
    )
    return dataclasses.replace(signed, method="GET")


TAMPERED: dict[str, Tamper] = {
    "request-target path": _signed_for_other_path,
    "request-target query": _signed_for_other_query,
    "request-target method": _signed_as_post,
    "host": lambda p: _with(_signed_ffs(p), Host=f"localhost:{urlsplit(p.server.url).port}"),
    "date": lambda p: _with(_signed_ffs(p), Date=formatdate(time.time() - 5, usegmt=True)),
    "content-type": lambda p: _with(_signed_ffs(p), Content_Type="application/json; x=1"),
    "digest header": lambda p: _with(_signed_ffs(p), Digest=digest_of(b"{}")),
    "created parameter": lambda p: _shift_created(_signed_ffs(p)),
    "signature bytes": lambda p: _flip_mac(_signed_ffs(p)),
    "algorithm": lambda p: _signed_ffs(p, algorithm="hmac-sha256"),
    "headers list without host": lambda p: _signed_ffs(
        p, components=("(created)", "(request-target)", "content-type", "date", "digest")
    ),
    "headers list without digest": lambda p: _signed_ffs(
        p, components=("(created)", "(request-target)", "content-type", "date", "host")
    ),
    "headers list without (request-target)": lambda p: _signed_ffs(
        p, components=("(created)", "content-type", "date", "digest", "host")
    ),
    "headers list without (created)": lambda p: _signed_ffs(
        p, components=("(request-target)", "content-type", "date", "digest", "host")
    ),
    "signed header absent": lambda p: _with(_signed_ffs(p), Date=None),
    "malformed header": lambda p: _with(_signed_ffs(p), Signature='keyId="x" algorithm'),
    "unknown parameter": lambda p: _edit_signature(
        _signed_ffs(p), 'algorithm="hmac-sha512"', 'algorithm="hmac-sha512", nonce="1"'
    ),
    "duplicate parameter": lambda p: _edit_signature(
        _signed_ffs(p), 'algorithm="hmac-sha512"', 'algorithm="hmac-sha512", algorithm="x"'
    ),
    "overlong header": lambda p: _edit_signature(_signed_ffs(p), 'keyId="', 'keyId="' + "A" * 5000),
    # These two were 500s: "²" passes str.isdigit() but not int(), and compare_digest
    # raises on non-ASCII text.
    "created a superscript digit": lambda p: _replace_created(_signed_ffs(p), "\u00b2"),
    "digest with a Latin-1 letter": lambda p: _with(_signed_ffs(p), Digest="SHA-512=\u00e9"),
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_component_alone_is_refused(plane: Plane, tamper: Tamper) -> None:
    """Changing one signed thing after signing gets 401 and only the generic message."""
    assert plane.app.request("GET", plane.ffs_target(plane.app)).status_code == 200
    assert_not_valid(plane.app.send(tamper(plane)))


def test_body_changed_after_signing_is_refused(plane: Plane) -> None:
    """A POST whose body differs from the signed one (same length) gets 401."""
    signed = plane.app.prepare("POST", "/api/v0/encryption/key", b'{"uses": 1}')
    assert_not_valid(plane.app.send(dataclasses.replace(signed, body=b'{"uses": 2}')))


def test_body_and_digest_changed_after_signing_are_refused(plane: Plane) -> None:
    """A new body with a matching new Digest still fails: the Digest was signed."""
    signed = plane.app.prepare("POST", "/api/v0/encryption/key", b'{"uses": 1}')
    tampered = _with(
        dataclasses.replace(signed, body=b'{"uses": 9}'), Digest=digest_of(b'{"uses": 9}')
    )
    assert_not_valid(plane.app.send(tampered))


@pytest.mark.parametrize(
    "query",
    ["papi=x", "ffs_name=SSN&ffs_name=SSN", "ffs_name=SSN&key_number=abc", ""],
    ids=["no ffs_name", "ffs_name twice", "bad key_number", "no query"],
)
@pytest.mark.parametrize("path", ["/api/v0/ffs", "/api/v0/fpe/key"])
def test_bad_signature_is_refused_before_the_query_is_judged(
    plane: Plane, path: str, query: str
) -> None:
    """A bad or missing signature gets 401 whatever the query: no validation before auth."""
    target = f"{path}?{query}" if query else path
    response = plane.app.request("GET", target, secret="not-the-secret")
    assert_not_valid(response)
    unsigned = _with(plane.app.prepare("GET", target), Signature=None)
    assert_not_valid(plane.app.send(unsigned))


# --- keys and time ------------------------------------------------------------------------


def _comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    # Each answer has its own date and request id; nothing else may tell them apart.
    own = ("date", "x-request-id")
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() not in own)
    return response.status_code, response.content, headers


def test_unknown_key_and_wrong_secret_answer_byte_identically(plane: Plane) -> None:
    """An unknown keyId and a known keyId with a wrong secret get the same bytes back."""
    unknown = plane.app.request(
        "GET", plane.ffs_target(plane.app), key_id="NoSuchKey000000000000000"
    )
    wrong_secret = plane.app.request("GET", plane.ffs_target(plane.app), secret=plane.other.secret)
    other_key_id = plane.app.request("GET", plane.ffs_target(plane.app), key_id=plane.other.key_id)
    assert_not_valid(unknown)
    assert _comparable(unknown) == _comparable(wrong_secret) == _comparable(other_key_id)


def test_signature_created_ten_minutes_ago_is_refused(plane: Plane) -> None:
    """A correctly signed request whose created (and Date) is 10 minutes old gets 401."""
    response = plane.app.request("GET", plane.ffs_target(plane.app), created=int(time.time()) - 600)
    assert_not_valid(response)


def test_signature_created_ten_minutes_ahead_is_refused(plane: Plane) -> None:
    """A signature from 10 minutes in the future gets 401 too."""
    response = plane.app.request("GET", plane.ffs_target(plane.app), created=int(time.time()) + 600)
    assert_not_valid(response)


def test_disabled_key_is_refused_with_a_message_saying_so(plane: Plane) -> None:
    """A correctly signed request of a disabled key gets 401 naming the disabled key."""
    with plane.runtime.db.write() as session:
        key = apikeys.find_api_key(session, plane.account_id, plane.app.key_id)
        apikeys.set_enabled(session, key, False, actor=ACTOR)
    response = plane.app.request("GET", plane.ffs_target(plane.app))
    assert response.status_code == 401, response.text
    message = response.json()["message"]
    assert "disabled" in message
    assert plane.app.key_id in message
    # The other key of the account is unaffected.
    assert plane.other.request("GET", plane.ffs_target(plane.other)).status_code == 200


def test_reenabled_key_is_accepted_again(plane: Plane) -> None:
    """Enabling the key again restores access at once."""
    for enabled in (False, True):
        with plane.runtime.db.write() as session:
            key = apikeys.find_api_key(session, plane.account_id, plane.app.key_id)
            apikeys.set_enabled(session, key, enabled, actor=ACTOR)
    assert plane.app.request("GET", plane.ffs_target(plane.app)).status_code == 200


def test_request_without_signature_header_is_refused(plane: Plane) -> None:
    """No Signature header at all gets 401 with the generic message."""
    prepared = _with(_signed_ffs(plane), Signature=None)
    assert_not_valid(plane.app.send(prepared))


def test_plain_unsigned_get_is_refused(live_server: LiveServer) -> None:
    """A bare GET with none of the client's headers gets 401."""
    response = httpx.get(f"{live_server.url}/api/v0/ffs?ffs_name=SSN&papi=x", timeout=30)
    assert_not_valid(response)


# --- the log ------------------------------------------------------------------------------


def test_refusals_are_logged_with_a_reason_and_never_the_secret(
    plane: Plane, log_lines: Callable[[], list[dict[str, object]]]
) -> None:
    """Every refusal leaves a 'denied' record with a reason; no secret reaches the log."""
    target = plane.ffs_target(plane.app)
    refusals = [
        _with(_signed_ffs(plane), Signature=None),
        plane.app.prepare("GET", target, secret="wrong-secret"),
        plane.app.prepare("GET", target, key_id="NoSuchKey000000000000000"),
        plane.app.prepare("GET", target, created=int(time.time()) - 600),
        _flip_mac(_signed_ffs(plane)),
        _with(_signed_ffs(plane), Digest=digest_of(b"{}")),
    ]
    for prepared in refusals:
        assert plane.app.send(prepared).status_code == 401
    with plane.runtime.db.write() as session:
        key = apikeys.find_api_key(session, plane.account_id, plane.app.key_id)
        apikeys.set_enabled(session, key, False, actor=ACTOR)
    assert plane.app.request("GET", target).status_code == 401

    denied = [r for r in log_lines() if r.get("event") == "denied"]
    assert len(denied) == len(refusals) + 1, denied
    for record in denied:
        assert record.get("status") == 401, record
        assert record.get("path") == "/api/v0/ffs", record
        reason = record.get("reason")
        assert isinstance(reason, str), record
        assert reason, record
        assert reason != NOT_VALID["message"], f"the log reason should say why: {record}"
    reasons = " | ".join(str(r["reason"]) for r in denied)
    assert "disabled" in reasons
    assert "NoSuchKey000000000000000" in reasons

    log = plane.server.log()
    for secret in (*plane.app_secrets, plane.other.secret):
        assert secret not in log
