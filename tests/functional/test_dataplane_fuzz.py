"""Arbitrary data-plane requests against the live server, signed by hand (client protocol §3):

* a ``Signature`` header built from drawn parts — key id, algorithm, created, the list of
  signed components, the MAC, its formatting — with drawn ``Digest``/``Date`` headers and
  changes after signing: whenever one drawn part is wrong the answer is exactly the one 401,
  and a signature whose parts are all right is never refused as one;
* correctly signed requests (a manual key, and an SSO key with its certificate) to every
  data-plane path with junk queries and bodies: never a 5xx, every error a JSON object with
  a message, and no signing secret in the server log.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keystead.catalog import datasets as catalog
from keystead.runtime import Runtime
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR
from tests.functional.test_dataplane_certificates import SignedIn, join_group, sign_in
from tests.functional.test_dataplane_signatures import NOT_VALID, Prepared, Signer, digest_of
from tests.support.fake_entra import FakeEntra
from tests.support.fuzz import json_strategies, lenient_json
from tests.support.signin import client_key, provision, signin_account

USER = "fuzz.user@contoso.example"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REQUIRED = ("(created)", "(request-target)", "digest", "host")
# What HTTP lets a header value hold (uvicorn refuses anything else before Keystead sees it).
FIELD_CHARACTERS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")


@dataclass
class Plane:
    server: LiveServer
    runtime: Runtime
    manual: Signer  # a manual key granted SSN (structured, keys 0 and 1) and Notes
    sso: SignedIn  # an auto-provisioned key after the SSO exchange, same grants
    edk: str  # an encrypted data key the manual key was issued
    secrets: tuple[str, ...]  # what must never reach the log

    def signer(self, which: str) -> Signer:
        return self.manual if which == "manual" else self.sso.signer


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, "pw")
        yield tenant


@pytest.fixture
def plane(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> Plane:
    entra.clear_overrides()
    account = signin_account(runtime, live_server.url, entra)
    acct = account.account_id
    with runtime.db.write() as s:
        ssn = f.dataset(s, acct, "SSN", runtime.master, template="ssn")
        catalog.rotate_key(s, ssn, master=runtime.master, actor=ACTOR)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        f.dataset_group(s, acct, "Engineering", "SSN", "Notes")
        manual = f.manual_key(s, acct, runtime.master, "batch", dataset_groups=("Engineering",))
    user = provision(runtime, acct, USER)
    join_group(runtime, acct, "Engineering", user)
    sso = sign_in(live_server, account, user, client_key(), entra.token_for(USER))
    signer = Signer(
        live_server.url, manual.secrets.access_key_id, manual.secrets.secret_signing_key
    )
    issued = signer.request("POST", "/api/v0/encryption/key", b'{"uses": 1}')
    assert issued.status_code == 201, issued.text
    return Plane(
        server=live_server,
        runtime=runtime,
        manual=signer,
        sso=sso,
        edk=issued.json()["encrypted_data_key"],
        secrets=(
            manual.secrets.secret_signing_key,
            manual.secrets.secret_crypto_access_key,
            sso.signer.secret,
        ),
    )


def raw_target(server: LiveServer, target: str) -> str:
    """The target as httpx will send it (it escapes a few characters): what gets signed."""
    return httpx.URL(server.url + target).raw_path.decode()


def send(plane: Plane, prepared: Prepared) -> tuple[httpx.Response, str]:
    """Send ``prepared``; the response and the server log lines it caused."""
    start = len(plane.server.log())
    with httpx.Client(timeout=30) as client:
        request = client.build_request(
            prepared.method,
            plane.server.url + prepared.target,
            # (names as httpx itself encodes a str name: ASCII)
            headers={k.encode("ascii"): v.encode("latin-1") for k, v in prepared.headers.items()},
            content=prepared.body if prepared.method != "GET" else None,
        )
        response = client.send(request)
        response.read()
    return response, plane.server.log()[start:]


def check_answer(plane: Plane, response: httpx.Response, log: str) -> None:
    """Never a 5xx or a stack trace; an error is a JSON object with a message; no secret in
    the log."""
    where = f"{response.request.method} {response.request.url.raw_path[:100]!r}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
    assert "Traceback" not in response.text
    assert "unexpected_error" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    for secret in plane.secrets:
        assert secret not in log
        assert secret not in response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), where
        answer = response.json()
        assert isinstance(answer, dict), answer
        assert isinstance(answer.get("message"), str), answer
        assert answer["message"].strip(), answer


# --- values -------------------------------------------------------------------------------

AWKWARD_TEXT = [
    "", " ", "\ud800", "a\udfffb", "\u00b2", "\u0663", "\u212a", "\ufeff", "🔑", "x" * 300,
    "null", "1.0", "SSN", "ssn", " SSN ", "Notes", "-1", "0", "1", "2", "99999999999",
]  # fmt: skip
texts = st.one_of(st.sampled_from(AWKWARD_TEXT), st.text(max_size=12))
_JSON = json_strategies(texts, [0, 1, -1, 2**31, 2**53, 2**63, 10**30, 1_000_000, 1_000_001])
numbers, scalars, json_values = _JSON.numbers, _JSON.scalars, _JSON.values


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- 1. the Signature header, part by part -------------------------------------------------

# Changes that make a signature wrong, and changes that leave it right.
WRONG = [
    "unknown key id", "other key id", "algorithm", "created skewed", "created not a number",
    "component missing", "component twice", "component absent", "mac bytes", "mac not base64",
    "digest", "body changed", "target changed", "signed header changed", "parameter missing",
    "parameter twice", "parameter unknown", "header replaced", "no header",
]  # fmt: skip
NEUTRAL = ["parameters reordered", "no spaces", "created quoted", "more components"]
CREATED_JUNK = ["", "-1", "1e3", "0x10", "\u00b2", "\u00bd", "+1", " 1", "1.5", "\u00b9" * 3]


@dataclass(frozen=True)
class Base:
    method: str
    target: str
    body: bytes


def _bases(plane: Plane, key_id: str) -> list[Base]:
    cert = quote_plus(_b64(plane.sso.cert.encode()))
    return [
        Base("GET", f"/api/v0/ffs?ffs_name=SSN&papi={key_id}", b""),
        Base("GET", f"/api/v0/fpe/key?ffs_name=SSN&papi={key_id}&payload_cert={cert}", b""),
        Base("GET", f"/api/v0/fpe/def_keys?ffs_name=SSN&papi={key_id}", b""),
        Base("POST", "/api/v0/encryption/key", b'{"uses": 1}'),
        Base("POST", "/api/v0/decryption/key", lenient_json({"encrypted_data_key": plane.edk})),
        Base("POST", "/api/v3/tracking/events", b'{"usage": []}'),
        Base("PATCH", "/api/v0/encryption/key/ab/cd", b'{"requested": 1, "actual": 1}'),
    ]


def _signing_string(
    components: list[str], created: str, method: str, target: str, headers: dict[str, str]
) -> bytes:
    lines = []
    by_name = {k.lower(): v for k, v in headers.items()}
    for name in components:
        if name == "(created)":
            value: str | None = created
        elif name == "(request-target)":
            value = f"{method.lower()} {target}"
        else:
            value = by_name.get(name)
        if value is not None:
            lines.append(f"{name}: {value}\n")
    return "".join(lines).encode("latin-1")


@FUZZ
@given(data=st.data())
def test_a_signature_with_any_wrong_part_is_the_one_401(plane: Plane, data: st.DataObject) -> None:
    signer = plane.signer(data.draw(st.sampled_from(["manual", "sso"]), "key"))
    base = data.draw(st.sampled_from(_bases(plane, signer.key_id)), "request")
    wrong = set(data.draw(st.lists(st.sampled_from(WRONG), max_size=2, unique=True), "wrong"))
    neutral = set(data.draw(st.lists(st.sampled_from(NEUTRAL), unique=True), "neutral"))
    if base.method == "GET":
        wrong.discard("body changed")
    field_text = st.text(alphabet=FIELD_CHARACTERS, max_size=30).map(str.strip)

    target = raw_target(plane.server, base.target)
    created = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Date": formatdate(created, usegmt=True),
        "Digest": digest_of(base.body),
        "Host": plane.server.url.split("://", 1)[1],
        "User-Agent": "ubiq-python/2.4.0",
    }
    if base.method != "GET":
        headers["Content-Length"] = str(len(base.body))
    components = list(REQUIRED)
    if "more components" in neutral:
        components += ["content-type", "date", "user-agent"]
    if "component missing" in wrong:
        components.remove(data.draw(st.sampled_from(REQUIRED), "component missing"))
    if "component twice" in wrong:
        components.append(data.draw(st.sampled_from(components), "component twice"))
    if "component absent" in wrong:
        components.append(data.draw(st.sampled_from(["x-absent", "authorization"]), "absent"))
    components = data.draw(st.permutations(components), "component order")
    key_id, algorithm, created_text = signer.key_id, "hmac-sha512", str(created)
    if "unknown key id" in wrong:
        key_id = data.draw(
            st.one_of(st.text(alphabet=FIELD_CHARACTERS, max_size=30), st.just("A" * 24))
            .map(lambda s: s.replace('"', ""))
            .filter(lambda s: s not in (plane.manual.key_id, plane.sso.signer.key_id)),
            "key id",
        )
    if "other key id" in wrong:
        key_id = (plane.sso.signer if signer is plane.manual else plane.manual).key_id
    if "algorithm" in wrong:
        algorithm = data.draw(
            st.sampled_from(["hmac-sha256", "HMAC-SHA512", "rsa-sha256", "", "hs2019"]),
            "algorithm",
        )
    if "created skewed" in wrong:
        # Beyond the server's ±300 s, either way
        shift = data.draw(st.integers(301, 10**12), "skew") * data.draw(st.sampled_from([-1, 1]))
        created_text = str(max(0, created + shift))

    mac = hmac.digest(
        signer.secret.encode(),
        _signing_string(components, created_text, base.method, target, headers),
        "sha512",
    )
    mac_text = _b64(mac)
    if "mac bytes" in wrong:
        mac_text = _b64(data.draw(st.binary(max_size=80).filter(lambda b: b != mac), "mac"))
    if "mac not base64" in wrong:
        mac_text = data.draw(
            st.sampled_from(["!!!", "YWJj", "YW Jj", "===", "\u00e9\u00e9\u00e9\u00e9"]), "mac"
        )
    if "created not a number" in wrong:
        created_text = data.draw(st.sampled_from(CREATED_JUNK) | field_text, "created")
        created_text = created_text.replace('"', "").replace(",", "")
        if created_text.isascii() and created_text.isdigit():
            created_text += "x"
    body, sent_target = base.body, target
    if "digest" in wrong:
        headers["Digest"] = data.draw(
            st.one_of(
                field_text,
                st.sampled_from(
                    ["SHA-512=\u00e9", "sha-512=" + digest_of(body)[8:], "SHA-256=" + "A" * 44]
                ),
                st.binary(min_size=1, max_size=80).map(lambda b: "SHA-512=" + _b64(b)),
            ).filter(lambda d: d != digest_of(body)),
            "digest",
        )
    if "body changed" in wrong:
        # (a NUL in the body is refused before the signature is read, as in every request)
        body = data.draw(
            st.binary(max_size=50).filter(lambda b: b != base.body and b"\x00" not in b), "body"
        )
        headers["Content-Length"] = str(len(body))
    if "target changed" in wrong:
        changes = ["&x=1", "&", "%20", "&ffs_name=SSN"] if "?" in base.target else ["?x=1", "?a"]
        change = data.draw(st.sampled_from(changes), "target change")
        sent_target = raw_target(plane.server, base.target + change)
    if "signed header changed" in wrong:
        if "more components" not in neutral:
            components.append("date")
        headers["Date"] = formatdate(created - 3600, usegmt=True)

    params = [
        ("keyId", f'"{key_id}"'),
        ("algorithm", f'"{algorithm}"'),
        ("created", f'"{created_text}"' if "created quoted" in neutral else created_text),
        ("headers", f'"{" ".join(components)}"'),
        ("signature", f'"{mac_text}"'),
    ]
    if "parameter missing" in wrong:
        params.pop(data.draw(st.integers(0, len(params) - 1), "parameter missing"))
    if "parameter twice" in wrong:
        params.append(data.draw(st.sampled_from(params), "parameter twice"))
    if "parameter unknown" in wrong:
        params.append((data.draw(st.sampled_from(["nonce", "expires", "KeyId", "x"])), '"1"'))
    if "parameters reordered" in neutral:
        params = data.draw(st.permutations(params), "parameter order")
    header = ("," if "no spaces" in neutral else ", ").join(f"{n}={v}" for n, v in params)
    if "header replaced" in wrong:
        header = data.draw(field_text, "header")
    headers["Signature"] = header
    if "no header" in wrong:
        del headers["Signature"]

    response, log = send(plane, Prepared(base.method, sent_target, headers, body))
    check_answer(plane, response, log)
    event(f"{response.status_code} {'wrong' if wrong else 'right'}")
    if wrong:
        assert response.status_code == 401, (sorted(wrong), response.text)
        assert response.json() == NOT_VALID
    else:
        assert not response.content or response.json() != NOT_VALID, response.text


# --- 2. correctly signed junk ----------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v0/ffs"), ("GET", "/api/v0/fpe/key"), ("GET", "/api/v0/fpe/def_keys"),
    ("POST", "/api/v0/encryption/key"), ("POST", "/api/v0/decryption/key"),
    ("POST", "/api/v3/tracking/events"), ("POST", "/api/v3/tracking/events"),
    ("PATCH", "/api/v0/encryption/key/a/b"),
]  # fmt: skip
PARAMETERS = ["ffs_name", "papi", "key_number", "payload_cert", "x", ""]


def _cert_values(plane: Plane) -> st.SearchStrategy[str]:
    pem = plane.sso.cert.encode()
    return st.one_of(
        st.sampled_from(
            [
                _b64(pem),
                _b64(pem + b"junk"),
                _b64(pem[:-40]),
                _b64(pem.replace(b"CERTIFICATE", b"CERTIFICATE REQUEST")),
                _b64(pem) + "=",
                _b64(pem).replace("+", "-"),
                "",
            ]
        ),
        st.binary(max_size=200).map(_b64),
        texts,
    )


@st.composite
def _query(draw: st.DrawFn, plane: Plane, signer: Signer) -> str:
    """The client's query (§6.1), with some of its values, names and order changed."""
    junk = st.one_of(
        texts.map(lambda t: quote(t, safe="", errors="surrogatepass")),
        st.sampled_from(["SSN", "Notes", "ssn", signer.key_id, "0", "1", "2", "%C2%B2", "+"]),
        _cert_values(plane).map(lambda v: quote_plus(v, errors="surrogatepass")),
        st.text(alphabet="abcXYZ019+-_.~!$'()*,;:@/", max_size=10),
    )
    pairs = [("ffs_name", "SSN"), ("papi", signer.key_id)]
    if draw(st.booleans()):
        number = st.sampled_from(["0", "1", "2", "", "-1", "1.0", "%C2%B2", "%D9%A3", "9" * 12])
        pairs.append(("key_number", draw(number)))
    if draw(st.booleans()):
        pairs.append(("payload_cert", quote_plus(_b64(plane.sso.cert.encode()))))
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(pairs) - 1))
        pairs[index] = (pairs[index][0], draw(junk))
    names = st.sampled_from(PARAMETERS) | texts.map(lambda t: quote(t, errors="surrogatepass"))
    pairs += draw(st.lists(st.tuples(names, junk), max_size=2))
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    if draw(st.integers(0, 4)) == 0:
        pairs = pairs[: draw(st.integers(0, len(pairs)))]
    return "&".join(f"{n}={v}" for n, v in pairs)


TIMESTAMPS = [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999Z", "2026-02-30T00:00:00Z", "2026-11-28", "yesterday", "",
]  # fmt: skip


def _usage_value(field: str) -> st.SearchStrategy[Any]:
    """A value of the field's own kind, often at its limits, or anything."""
    own: st.SearchStrategy[Any] = texts
    if field in ("count", "key_number"):
        limits = [0, 2**31 - 1, 2**31, 2**53, 2**53 + 1, 2**63]
        own = st.one_of(st.sampled_from(limits), st.sampled_from(limits).map(str))
    elif field.endswith("_timestamp"):
        own = st.one_of(st.sampled_from(TIMESTAMPS), numbers)
    elif field == "user_defined":  # stored as JSON as it came
        own = st.one_of(st.sampled_from([float("nan"), [float("-inf")], 10**40]), json_values)
    elif field in ("dataset_type", "action"):
        own = st.sampled_from(["structured", "unstructured", "encrypt", "decrypt", "Encrypt"])
    return st.one_of(own, own, json_values)


def _usage_entry(key_id: str) -> st.SearchStrategy[dict[str, Any]]:
    valid: dict[str, Any] = {
        "datasets": "SSN",
        "dataset_type": "structured",
        "api_key": key_id,
        "count": 1,
        "key_number": "0",
        "action": "encrypt",
        "product": "ubiq-python",
        "product_version": "2.4.0",
        "first_call_timestamp": "2026-11-28T12:37:48.669707+00:00",
        "last_call_timestamp": "2026-11-28T12:37:48.669717+00:00",
        "user_defined": {},
    }
    # The fields with limits of their own (the columns' range, datetime's) come up more.
    limited = ["count", "key_number", "first_call_timestamp", "last_call_timestamp"]
    change = st.sampled_from([*sorted(valid), *limited, "user_defined"]).flatmap(
        lambda f: st.tuples(st.just(f), _usage_value(f))
    )
    return st.lists(change, max_size=2).map(lambda changes: {**valid, **dict(changes)})


def _bodies(plane: Plane, signer: Signer, path: str) -> st.SearchStrategy[bytes]:
    """Mostly the fields the path reads, each often right (so that the next is reached);
    sometimes anything."""
    edk = base64.b64decode(plane.edk)
    edks = st.one_of(
        st.just(plane.edk),
        st.tuples(st.integers(0, len(edk) - 1), st.integers(0, 255)).map(
            lambda c: _b64(edk[: c[0]] + bytes([c[1]]) + edk[c[0] + 1 :])
        ),
        st.binary(max_size=120).map(_b64),
        json_values,
    )
    certs = st.one_of(st.none(), st.just(_b64(plane.sso.cert.encode())), _cert_values(plane))
    entries = st.one_of(_usage_entry(signer.key_id), _usage_entry(signer.key_id), json_values)
    counts = st.one_of(st.integers(0, 5), numbers, json_values)
    by_path: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "/api/v0/encryption/key": {"uses": st.one_of(st.integers(0, 5), numbers, json_values)},
        "/api/v0/decryption/key": {"encrypted_data_key": edks},
        "/api/v3/tracking/events": {"usage": st.lists(entries, min_size=1, max_size=2)},
    }
    fields = by_path.get(path, {"requested": counts, "actual": counts})
    read = st.fixed_dictionaries(fields, optional={"payload_cert": certs, "x": json_values}).map(
        lambda d: {k: v for k, v in d.items() if v is not None}
    )
    return st.one_of(
        read.map(lenient_json),
        read.map(lenient_json),
        read.map(lenient_json),
        json_values.map(lenient_json),
        st.binary(max_size=100),
        st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 5000).map(lambda n: b'{"uses": 1, "x": ' + b"[" * n + b"]" * n + b"}"),
        st.sampled_from([b"", b"{}", b"\xed\xa0\x80", b'{"uses": 1}', b'{"usage": []}']),
    )


@FUZZ
@given(data=st.data())
def test_no_correctly_signed_request_is_a_5xx(plane: Plane, data: st.DataObject) -> None:
    signer = plane.signer(data.draw(st.sampled_from(["manual", "sso"]), "key"))
    method, path = data.draw(
        st.one_of(
            st.sampled_from(ENDPOINTS),
            st.sampled_from(ENDPOINTS),
            st.sampled_from(ENDPOINTS),
            st.tuples(
                st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]),
                st.one_of(
                    st.sampled_from([p for _, p in ENDPOINTS]),
                    st.tuples(texts, texts).map(
                        lambda t: (
                            "/api/v0/encryption/key/"
                            + "/".join(quote(s, safe="", errors="surrogatepass") or "x" for s in t)
                        )
                    ),
                    texts.map(lambda t: "/api/v0/" + quote(t, errors="surrogatepass")),
                ),
            ),
        ),
        "request line",
    )
    query = data.draw(_query(plane, signer), "query") if method == "GET" else ""
    body = b"" if method == "GET" else data.draw(_bodies(plane, signer, path), "body")
    target = raw_target(plane.server, path + (f"?{query}" if query else ""))
    prepared = signer.prepare(method, target, body)

    response, log = send(plane, prepared)
    check_answer(plane, response, log)
    event(f"{method} {path if (method, path) in ENDPOINTS else '…'} {response.status_code}")
    if response.status_code == 401:  # the signature was right: never refused as wrong
        assert response.json() != NOT_VALID, target
