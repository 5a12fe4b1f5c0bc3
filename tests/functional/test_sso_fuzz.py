"""Arbitrary SSO exchanges against the live server and the stand-in Entra tenant: whatever
the body, the Authorization header, the token's header and claims, the CSR or the customer
id, the answer is 200 for a valid exchange or a documented refusal (400/401/403/404) with a
JSON ``{message, reason}``; never a 5xx (not even 503: the stand-in always serves its keys),
and neither the answer nor the server log holds the presented token or the user's signing
secret. Each example fuzzes one part and keeps the others valid, or fuzzes them all."""

from __future__ import annotations

import base64
import functools
import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keystead.runtime import Runtime
from tests.conftest import LiveServer
from tests.support.fake_entra import FakeEntra, b64url
from tests.support.fuzz import json_strategies, lenient_json
from tests.support.signin import Provisioned, SignInAccount, client_key, csr_pem, provision
from tests.support.signin import signin_account as make_signin_account

USER = "fuzz.user@contoso.example"
REFUSALS = {400, 401, 403, 404}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, "correct horse")
        yield tenant


@pytest.fixture
def signin(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> SignInAccount:
    entra.clear_overrides()
    # Under this policy the token's groups are stored too.
    return make_signin_account(runtime, live_server.url, entra, group_policy="directory_and_token")


@pytest.fixture
def user(signin: SignInAccount) -> Provisioned:
    return provision(signin.runtime, signin.account_id, USER)


# --- values -------------------------------------------------------------------------------

# Strings a parser or a database may choke on: a lone surrogate (valid in JSON escapes, not
# in UTF-8), a NUL, a superscript digit (str.isdigit but not int()), huge and empty text.
AWKWARD_TEXT = [
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "x\x00y",
    "\u00b2",
    "\u0663",
    "\u212a",
    "\ufeff",
    "🔑",
    "x" * 300,
    "null",
    "1.0",
    "RS256",
]
texts = st.one_of(st.sampled_from(AWKWARD_TEXT), st.text(max_size=16))
_JSON = json_strategies(texts, [0, -1, 2**31, 2**53, 2**62, 2**63, 2**64, 10**19, 10**30, -(2**63)])
numbers, scalars, json_values = _JSON.numbers, _JSON.scalars, _JSON.values


# --- tokens -------------------------------------------------------------------------------

CLAIMS = [
    "aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "ver", "scp", "idtyp",
    "unique_name", "upn", "preferred_username", "groups", "_claim_names", "name",
]  # fmt: skip
HEADER_FIELDS = ["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "x5c", "x5t", "zip"]


def _claim_value(entra: FakeEntra, claim: str) -> st.SearchStrategy[Any]:
    """Wrong types and extreme values, the right values of other claims, and values of the
    claim's own kind (so that the checks after it are reached too)."""
    own: st.SearchStrategy[Any]
    if claim in ("exp", "nbf", "iat"):
        # Offsets from the stand-in's clock at draw time (a strategy must not depend on it).
        offsets = st.integers(-7200, 7200).map(lambda d: int(entra.clock()) + d)
        own = st.one_of(numbers, offsets, offsets.map(str))
    elif claim == "groups":
        own = st.lists(st.one_of(texts, st.uuids().map(str), scalars), max_size=5)
    else:
        own = texts
    return st.one_of(
        own,
        json_values,
        st.sampled_from(
            [
                entra.issuer,
                entra.issuer.upper(),
                entra.v2_issuer,
                entra.audience,
                [entra.audience],
                entra.tenant_id,
                entra.tenant_id.upper(),
                USER,
                USER.upper(),
                f" {USER} ",
                "1.0",
                "2.0",
                "app",
                str(uuid.uuid4()),
                [str(uuid.uuid4()), "x" * 300, 7, None],
                {"groups": "src1"},
            ]
        ),
    )


def _claims(entra: FakeEntra) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(
        st.sampled_from(CLAIMS).flatmap(lambda c: st.tuples(st.just(c), _claim_value(entra, c))),
        max_size=3,
    ).map(dict)


def _header_value(entra: FakeEntra) -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values,
        st.sampled_from(
            ["RS256", "none", "None", "HS256", "RS512", "PS256", "ES256", entra.current_key.kid]
        ),
        st.sampled_from(["unknown-kid", "k" * 300, "k" * 257, ["exp"], False]),
    )


# What HTTP lets a header value hold (uvicorn refuses a request with anything else before
# Keystead sees it).
FIELD_CHARACTERS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")


@st.composite
def tokens(draw: st.DrawFn, entra: FakeEntra, *, genuine: bool = False) -> str:
    claims = draw(_claims(entra))
    remove = draw(st.lists(st.sampled_from(CLAIMS), max_size=1))
    header = draw(
        st.one_of(
            st.just({}),  # half the tokens keep the header: their claims get checked
            st.dictionaries(st.sampled_from(HEADER_FIELDS), _header_value(entra), max_size=2),
        )
    )
    kind = (
        "genuine"
        if genuine
        else draw(
            st.sampled_from(
                ["genuine", "genuine", "genuine", "hmac", "unsigned", "segments", "text"]
            )
        )
    )
    if kind == "genuine":  # a valid signature by the tenant's key over whatever was drawn
        return entra.mint(USER, claims=claims, remove=remove, header=header)
    if kind == "hmac":
        secret = draw(st.sampled_from([entra.current_key.public_pem_spki(), b"secret", b""]))
        return entra.mint_hmac(USER, secret, claims=claims, remove=remove, header=header)
    if kind == "unsigned":
        alg = draw(st.sampled_from(["none", "None", "", "RS256"]))
        return entra.mint_unsigned(USER, alg=alg, claims=claims, remove=remove, header=header)
    if kind == "segments":  # one to five dot-separated segments of anything
        parts = draw(
            st.lists(
                st.one_of(
                    json_values.map(lambda v: b64url(lenient_json(v))),
                    st.binary(max_size=40).map(b64url),
                    st.text(alphabet="ABCabc019-_=+/.%", max_size=12),
                ),
                min_size=1,
                max_size=5,
            )
        )
        return ".".join(parts)
    return draw(st.text(alphabet=FIELD_CHARACTERS.filter(lambda c: c != " "), max_size=40))


def authorizations(entra: FakeEntra) -> st.SearchStrategy[tuple[str | None, str | None]]:
    """(the Authorization header or None, the token it presents or None)."""
    schemes = st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer:", ""])
    return st.one_of(
        st.tuples(tokens(entra), st.sampled_from(["Bearer ", "bearer ", "Bearer   "])).map(
            lambda t: (t[1] + t[0], t[0])
        ),
        st.tuples(schemes, tokens(entra)).map(lambda t: (f"{t[0]} {t[1]}", t[1])),
        st.text(alphabet=FIELD_CHARACTERS, max_size=40).map(lambda s: (s, None)),
        st.just((None, None)),
        st.builds(lambda: _genuine(entra)),
    )


def _genuine(entra: FakeEntra) -> tuple[str, str]:
    token = entra.token_for(USER)
    return f"Bearer {token}", token


# --- CSRs ---------------------------------------------------------------------------------


@functools.cache
def _other_keys() -> dict[str, Any]:
    """Keys of the wrong kind or size, made once: key generation is slow."""
    return {
        "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "rsa3": rsa.generate_private_key(public_exponent=3, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ec521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "dsa": _dsa_key(),
    }


def _dsa_key() -> dsa.DSAPrivateKey:
    """A DSA key: a CSR a hostile caller may still send, though cryptography 51 deprecates
    making one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.generate_private_key(key_size=2048)


def _request(key: Any, algorithm: Any = None, **kwargs: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
    built = x509.CertificateSigningRequestBuilder().subject_name(name)
    return built.sign(key, algorithm, **kwargs).public_bytes(serialization.Encoding.DER)


@functools.cache
def _csr_ders() -> list[bytes]:
    keys = _other_keys()
    return [
        x509.load_pem_x509_csr(csr_pem().encode()).public_bytes(serialization.Encoding.DER),
        _request(client_key(), hashes.SHA512()),
        _request(client_key(), hashes.SHA384()),
        _request(
            client_key(),
            hashes.SHA256(),
            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        ),
        _request(keys["rsa1024"], hashes.SHA256()),
        _request(keys["rsa3"], hashes.SHA256()),
        _request(keys["ec"], hashes.SHA256()),
        _request(keys["ec521"], hashes.SHA512()),
        _request(keys["ed25519"]),
        _request(keys["dsa"], hashes.SHA256()),
    ]


def _pem(label: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


@functools.cache
def _other_pems(entra: FakeEntra) -> list[str]:
    """Valid PEM that is not a certificate request (no private key: it would be echoed if
    anything were)."""
    return [
        entra.current_key.certificate_pem().decode(),
        entra.current_key.public_pem_spki().decode(),
        entra.current_key.public_pem_pkcs1().decode(),
        _pem("CERTIFICATE REQUEST", entra.current_key.certificate.public_bytes(
            serialization.Encoding.DER
        )),
        _pem("NEW CERTIFICATE REQUEST", _csr_ders()[0]),
        _pem("CERTIFICATE", _csr_ders()[0]),
    ]  # fmt: skip


@st.composite
def _mangled_csr(draw: st.DrawFn) -> str:
    der = bytearray(draw(st.sampled_from(_csr_ders())))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(der) - 1))
        der[position] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(der))))
    return _pem("CERTIFICATE REQUEST", bytes(der[:cut]))


def csrs(entra: FakeEntra) -> st.SearchStrategy[Any]:
    begin, end = "-----BEGIN CERTIFICATE REQUEST-----", "-----END CERTIFICATE REQUEST-----"
    good = csr_pem()
    return st.one_of(
        st.just(good),
        _mangled_csr(),
        st.sampled_from(_other_pems(entra)),
        st.binary(max_size=300).map(lambda b: _pem("CERTIFICATE REQUEST", b)),
        st.text(max_size=60).map(lambda t: f"{begin}\n{t}\n{end}\n"),
        st.sampled_from(AWKWARD_TEXT).map(lambda t: good + t),
        st.sampled_from(AWKWARD_TEXT).map(lambda t: f"{begin}\n{t}\n{end}\n"),
        st.just(good + good),
        st.just(good.replace("\n", "\r\n")),
        st.just(begin + "\n" + "A" * 20_000 + "\n" + end),
        json_values,
    )


def bodies(entra: FakeEntra) -> st.SearchStrategy[bytes]:
    return st.one_of(
        csrs(entra).map(lambda csr: lenient_json({"csr": csr})),
        st.tuples(csrs(entra), st.dictionaries(texts, json_values, max_size=3)).map(
            lambda t: lenient_json({**t[1], "csr": t[0]})
        ),
        json_values.map(lenient_json),
        st.binary(max_size=200),
        st.integers(1, 5000).map(lambda n: b'{"csr":' + b"[" * n + b"]" * n + b"}"),
        st.integers(1, 5000).map(lambda n: b"{" * n),
        st.sampled_from([b"", b"{}", b"null", b'{"csr":"x","csr":1}', b"\xef\xbb\xbf{}"]),
    )


def customer_ids(signin: SignInAccount) -> st.SearchStrategy[str]:
    real = str(signin.account_id)
    return st.one_of(
        st.just(real),
        st.just(real),
        st.just(real),
        st.sampled_from(
            [real.upper(), real.replace("-", ""), f"{{{real}}}", f"urn:uuid:{real}", f" {real}"]
        ),
        st.uuids().map(str),
        # One path segment: a "/" (even as %2F) makes it another path, and a NUL is refused
        # before routing.
        st.one_of(st.sampled_from(AWKWARD_TEXT), st.text(min_size=1, max_size=30))
        .filter(lambda t: t not in ("", ".", "..") and not {"/", "\x00"} & set(t))
        .map(lambda t: quote(t, safe="", errors="surrogatepass")),
    )


# --- the property ---------------------------------------------------------------------------


# Each example fuzzes one part of the request and keeps the others valid (so that the
# later checks are reached), or all parts at once.
PARTS = ["account", "authorization", "token", "token", "token", "body", "body", "all"]


@FUZZ
@given(data=st.data())
def test_no_exchange_is_a_5xx_and_no_refusal_leaks_the_token(
    live_server: LiveServer, signin: SignInAccount, user: Provisioned, data: st.DataObject
) -> None:
    entra = signin.entra
    part = data.draw(st.sampled_from(PARTS), "fuzzed part")
    customer_id = str(signin.account_id)
    authorization: str | None
    token: str | None
    authorization, token = _genuine(entra)
    body = lenient_json({"csr": csr_pem()})
    if part in ("account", "all"):
        customer_id = data.draw(customer_ids(signin), "customer id")
    if part in ("authorization", "all"):
        authorization, token = data.draw(authorizations(entra), "authorization")
    if part == "token":
        token = data.draw(tokens(entra, genuine=True), "token")
        authorization = f"Bearer {token}"
    if part in ("body", "all"):
        body = data.draw(bodies(entra), "body")
    headers: dict[bytes, bytes] = {b"Content-Type": b"application/json"}
    if authorization is not None:
        # HTTP drops a header value's outer blanks; h11 refuses to send them
        headers[b"Authorization"] = authorization.strip(" \t").encode("latin-1")

    log_start = len(live_server.log())
    response = httpx.post(
        f"{live_server.url}/{customer_id}/api/v3/scim/sso",
        content=body,
        headers=headers,
        timeout=30,
    )
    new_log = live_server.log()[log_start:]

    assert "Traceback" not in response.text
    assert "unexpected_error" not in new_log, new_log[-3000:]
    assert "Traceback" not in new_log, new_log[-3000:]
    assert response.status_code in REFUSALS | {200}, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    event(f"{response.status_code} {answer.get('reason', '')}")
    if response.status_code == 200:
        assert set(answer) == {"public_value", "signing_value", "api_cert"}
        assert answer["signing_value"] == user.signing_secret
    else:
        assert set(answer) == {"message", "reason"}, answer
        assert isinstance(answer["message"], str)
        assert answer["message"].strip()
        assert isinstance(answer["reason"], str)
        assert answer["reason"]
        assert user.signing_secret not in response.text
    assert user.signing_secret not in new_log
    if token is not None and len(token) >= 20:
        assert token not in response.text
        assert token not in new_log
        for segment in token.split(".")[1:]:
            if len(segment) >= 20:
                assert segment not in new_log
