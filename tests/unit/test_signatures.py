"""keystead.dataplane.signatures against the client protocol, section 3: the two test vectors
of §3.7, the parser, and every single change that must make verification fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from keystead.dataplane.signatures import (
    MAX_HEADER_LENGTH,
    SignatureError,
    SignedRequest,
    body_digest,
    check_structure,
    parse_signature_header,
    signing_string,
    verify_mac,
)

# --- §3.7 inputs --------------------------------------------------------------------------

PAPI = "AbC+dE/f="
SAPI = "my-signing-secret"
CREATED = 1700000000
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"
EMPTY_DIGEST = (
    "SHA-512="
    "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
)
SKEW = 300

VECTOR_A_BODY = b'{"uses": 1}'
VECTOR_A_DIGEST = (
    "SHA-512="
    "IaNAdsSALBO+zsROZE6h5fM7LcRGmSCAgm7rQUkX0yaNV9RMDXW/c+HyYDdE2tVhpsB+sWSHAObgaivRvdMSIw=="
)
VECTOR_A_SIGNING_STRING = (
    "(created): 1700000000\n"
    "(request-target): post /api/v0/encryption/key\n"
    "content-length: 11\n"
    "content-type: application/json\n"
    "date: Tue, 14 Nov 2023 22:13:20 GMT\n"
    f"digest: {VECTOR_A_DIGEST}\n"
    "host: api.example.com\n"
)
VECTOR_A_SIGNATURE = (
    "75Agg/Pjhtad2Z9hxoXsjdD9RMmfQ3SKK4G+RtX5+82C/UsOWbhma3Q2EK/YLoi6rZMhmrR8idJMS4gN27WhvQ=="
)
VECTOR_A_HEADER = (
    'keyId="AbC+dE/f=", algorithm="hmac-sha512", created=1700000000, '
    'headers="(created) (request-target) content-length content-type date digest host", '
    f'signature="{VECTOR_A_SIGNATURE}"'
)

VECTOR_B_TARGET = "/api/v0/fpe/key?ffs_name=SSN&papi=AbC+dE/f=&key_number=2"
VECTOR_B_SIGNING_STRING = (
    "(created): 1700000000\n"
    f"(request-target): get {VECTOR_B_TARGET}\n"
    "content-type: application/json\n"
    "date: Tue, 14 Nov 2023 22:13:20 GMT\n"
    f"digest: {EMPTY_DIGEST}\n"
    "host: localhost:8443\n"
)
VECTOR_B_SIGNATURE = (
    "WSIWXtnmjgY0fBpi5qrbG2lPHsrMnJ86meN6cWhu22uM2i8bOArWrXKYSwqBQtQupucJ3Plzf+b9xQbktA+o/g=="
)
VECTOR_B_HEADER = (
    'keyId="AbC+dE/f=", algorithm="hmac-sha512", created=1700000000, '
    'headers="(created) (request-target) content-type date digest host", '
    f'signature="{VECTOR_B_SIGNATURE}"'
)


def vector_a() -> SignedRequest:
    return SignedRequest(
        method="POST",
        target="/api/v0/encryption/key",
        headers={
            "content-length": "11",
            "content-type": "application/json",
            "date": DATE,
            "digest": VECTOR_A_DIGEST,
            "host": "api.example.com",
            "signature": VECTOR_A_HEADER,
            "user-agent": "ubiq-python/2.4.0",
        },
        body=VECTOR_A_BODY,
    )


def vector_b() -> SignedRequest:
    return SignedRequest(
        method="GET",
        target=VECTOR_B_TARGET,
        headers={
            "content-type": "application/json",
            "date": DATE,
            "digest": EMPTY_DIGEST,
            "host": "localhost:8443",
            "signature": VECTOR_B_HEADER,
        },
        body=b"",
    )


# --- an independent signer (§3.3 / §3.4) and the full verification -----------------------


def sign(
    request: SignedRequest,
    *,
    components: tuple[str, ...],
    secret: str = SAPI,
    key_id: str = PAPI,
    created: int = CREATED,
    algorithm: str = "hmac-sha512",
) -> SignedRequest:
    """``request`` with a Signature header computed over ``components`` as the client does."""
    lines = []
    for name in components:
        if name == "(created)":
            value = str(created)
        elif name == "(request-target)":
            value = f"{request.method.lower()} {request.target}"
        else:
            value = request.headers[name]
        lines.append(f"{name}: {value}\n")
    mac = hmac.new(secret.encode(), "".join(lines).encode(), hashlib.sha512).digest()
    header = (
        f'keyId="{key_id}", algorithm="{algorithm}", created={created}, '
        f'headers="{" ".join(components)}", signature="{base64.b64encode(mac).decode()}"'
    )
    return with_headers(request, signature=header)


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    """A copy with headers set (or removed, for None); names use '_' for '-'."""
    headers = dict(request.headers)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return request._replace(headers=headers)


def verify(request: SignedRequest, *, secret: str = SAPI, now: int = CREATED) -> None:
    """What the server does: parse, check what needs no key, then the MAC."""
    params = parse_signature_header(request.headers["signature"])
    check_structure(params, request, now=now, skew=SKEW)
    verify_mac(params, request, secret)


POST_COMPONENTS = (
    "(created)",
    "(request-target)",
    "content-length",
    "content-type",
    "date",
    "digest",
    "host",
)


# --- the vectors --------------------------------------------------------------------------


def test_vector_a_signing_string_is_rebuilt_byte_for_byte() -> None:
    """Vector A: the signing string rebuilt from the received POST equals §3.7's."""
    request = vector_a()
    params = parse_signature_header(request.headers["signature"])
    rebuilt = signing_string(
        params, method=request.method, target=request.target, header=request.headers.get
    )
    assert rebuilt == VECTOR_A_SIGNING_STRING.encode()


def test_vector_a_mac_equals_the_documented_signature() -> None:
    """Vector A: HMAC-SHA512 of the signing string under the sapi is §3.7's signature."""
    request = vector_a()
    params = parse_signature_header(request.headers["signature"])
    message = signing_string(
        params, method=request.method, target=request.target, header=request.headers.get
    )
    mac = hmac.new(SAPI.encode(), message, hashlib.sha512).digest()
    assert base64.b64encode(mac).decode() == VECTOR_A_SIGNATURE
    assert params.signature == mac


def test_vector_a_verifies() -> None:
    """Vector A passes the whole verification at its own creation time."""
    verify(vector_a())


def test_vector_a_digest_is_the_sha512_of_the_body() -> None:
    """The Digest of Vector A's 11-byte body is the one §3.7 lists."""
    assert body_digest(VECTOR_A_BODY) == VECTOR_A_DIGEST


def test_vector_b_signing_string_is_rebuilt_byte_for_byte() -> None:
    """Vector B: a GET with a raw query ('+', '/', '=' literal) rebuilds §3.7's string."""
    request = vector_b()
    params = parse_signature_header(request.headers["signature"])
    rebuilt = signing_string(
        params, method=request.method, target=request.target, header=request.headers.get
    )
    assert rebuilt == VECTOR_B_SIGNING_STRING.encode()


def test_vector_b_mac_equals_the_documented_signature() -> None:
    """Vector B: the HMAC over the rebuilt string is §3.7's signature."""
    request = vector_b()
    params = parse_signature_header(request.headers["signature"])
    message = signing_string(
        params, method=request.method, target=request.target, header=request.headers.get
    )
    mac = hmac.new(SAPI.encode(), message, hashlib.sha512).digest()
    assert base64.b64encode(mac).decode() == VECTOR_B_SIGNATURE


def test_vector_b_verifies() -> None:
    """Vector B (GET, no content-length, empty-body digest) passes the whole verification."""
    verify(vector_b())


def test_empty_body_digest_is_the_documented_constant() -> None:
    """The digest of an empty body is §3.1's constant."""
    assert body_digest(b"") == EMPTY_DIGEST


def test_independent_signer_reproduces_vector_a() -> None:
    """The signer these tests use produces Vector A's exact Signature header."""
    signed = sign(vector_a(), components=POST_COMPONENTS)
    assert signed.headers["signature"] == VECTOR_A_HEADER


# --- the parser ---------------------------------------------------------------------------


def test_parser_keeps_plus_slash_and_equals_in_values() -> None:
    """keyId and signature values with '+', '/' and '=' are read whole."""
    params = parse_signature_header(VECTOR_A_HEADER)
    assert params.key_id == "AbC+dE/f="
    assert params.algorithm == "hmac-sha512"
    assert params.created == CREATED
    assert params.headers == POST_COMPONENTS
    assert params.signature == base64.b64decode(VECTOR_A_SIGNATURE)


def test_parser_reads_an_unquoted_created() -> None:
    """created is an unquoted integer in the client's header."""
    assert parse_signature_header(VECTOR_B_HEADER).created == CREATED


@pytest.mark.parametrize(
    "variant",
    [
        VECTOR_A_HEADER.replace(", ", ","),
        VECTOR_A_HEADER.replace(", ", " ,  "),
        " " + VECTOR_A_HEADER + " ",
        VECTOR_A_HEADER.replace("created=1700000000", 'created="1700000000"'),
        VECTOR_A_HEADER.replace('keyId="AbC+dE/f=", ', "") + ', keyId="AbC+dE/f="',  # another order
    ],
)
def test_the_clients_exact_shape_and_any_other_spelling_parse_alike(variant: str) -> None:
    """The client's own header shape is read in one match; other spellings of the same
    parameters go through the general parser and give the same result."""
    assert parse_signature_header(variant) == parse_signature_header(VECTOR_A_HEADER)


def test_get_without_content_type_in_the_headers_list_verifies() -> None:
    """A GET signed without content-type (as other SDKs do) still verifies."""
    request = with_headers(vector_b(), content_type=None)
    signed = sign(request, components=("(created)", "(request-target)", "date", "digest", "host"))
    verify(signed)


def test_public_message_is_the_same_for_every_reason() -> None:
    """Every failure shows clients one message; the reason stays for the log."""
    with pytest.raises(SignatureError) as caught:
        verify(vector_a(), secret="not-the-secret")
    assert caught.value.message == "the request signature is not valid"
    assert caught.value.reason
    assert caught.value.reason != caught.value.message


# --- each single change is rejected -------------------------------------------------------

Mutation = Callable[[SignedRequest], SignedRequest]


def _resign_without(component: str) -> Mutation:
    def mutate(request: SignedRequest) -> SignedRequest:
        return sign(request, components=tuple(c for c in POST_COMPONENTS if c != component))

    return mutate


def _replace_in_signature(old: str, new: str) -> Mutation:
    def mutate(request: SignedRequest) -> SignedRequest:
        header = request.headers["signature"]
        assert old in header
        return with_headers(request, signature=header.replace(old, new, 1))

    return mutate


def _flip_signature_byte(request: SignedRequest) -> SignedRequest:
    mac = bytearray(base64.b64decode(VECTOR_A_SIGNATURE))
    mac[10] ^= 0x01
    changed = base64.b64encode(bytes(mac)).decode()
    return _replace_in_signature(VECTOR_A_SIGNATURE, changed)(request)


REJECTED: dict[str, Mutation] = {
    "wrong algorithm (re-signed)": lambda r: sign(
        r, components=POST_COMPONENTS, algorithm="hmac-sha256"
    ),
    "digest not covered": _resign_without("digest"),
    "host not covered": _resign_without("host"),
    "(created) not covered": _resign_without("(created)"),
    "(request-target) not covered": _resign_without("(request-target)"),
    "created far in the past (re-signed)": lambda r: sign(
        r, components=POST_COMPONENTS, created=CREATED - SKEW - 1
    ),
    "created far in the future (re-signed)": lambda r: sign(
        r, components=POST_COMPONENTS, created=CREATED + SKEW + 1
    ),
    "created parameter changed": _replace_in_signature(
        f"created={CREATED}", f"created={CREATED - 1}"
    ),
    "body changed": lambda r: r._replace(body=b'{"uses": 2}'),
    "body changed and Digest recomputed": lambda r: with_headers(
        r._replace(body=b'{"uses": 2}'), digest=body_digest(b'{"uses": 2}')
    ),
    "Digest header changed": lambda r: with_headers(r, digest=EMPTY_DIGEST),
    "Digest header missing": lambda r: with_headers(r, digest=None),
    "path changed": lambda r: r._replace(target="/api/v0/decryption/key"),
    "query added": lambda r: r._replace(target="/api/v0/encryption/key?x=1"),
    "method changed": lambda r: r._replace(method="PATCH"),
    "host changed": lambda r: with_headers(r, host="api.example.com:8443"),
    "date changed": lambda r: with_headers(r, date="Tue, 14 Nov 2023 22:13:21 GMT"),
    "content-type changed": lambda r: with_headers(r, content_type="text/plain"),
    "content-length changed": lambda r: with_headers(r, content_length="12"),
    "signed header absent": lambda r: with_headers(r, date=None),
    "signature bytes changed": _flip_signature_byte,
    "signature not base64": _replace_in_signature(VECTOR_A_SIGNATURE, "!!!not-base64!!!"),
    "malformed header": lambda r: with_headers(r, signature="keyId=AbC, garbage here"),
    "empty header": lambda r: with_headers(r, signature=""),
    "created not a number": _replace_in_signature(f"created={CREATED}", "created=soon"),
    "duplicate parameter": lambda r: with_headers(
        r, signature=VECTOR_A_HEADER + ', keyId="AbC+dE/f="'
    ),
    "unknown parameter": lambda r: with_headers(r, signature=VECTOR_A_HEADER + ", expires=1"),
    "missing parameter": _replace_in_signature(', algorithm="hmac-sha512"', ""),
    "component listed twice": lambda r: sign(r, components=(*POST_COMPONENTS, "host")),
    "overlong header": lambda r: with_headers(
        r, signature=VECTOR_A_HEADER + ", " + "x" * MAX_HEADER_LENGTH
    ),
}


@pytest.mark.parametrize("mutation", REJECTED.values(), ids=REJECTED.keys())
def test_a_single_change_is_rejected(mutation: Mutation) -> None:
    """Each change on its own, to a request that verifies, raises SignatureError."""
    verify(vector_a())
    with pytest.raises(SignatureError):
        verify(mutation(vector_a()))


def test_wrong_secret_is_rejected() -> None:
    """The right request checked with another key's secret fails."""
    with pytest.raises(SignatureError):
        verify(vector_a(), secret="my-signing-secreT")


def test_secret_is_used_as_text_not_base64_decoded() -> None:
    """The sapi's UTF-8 bytes are the HMAC key; its base64 decoding is not."""
    secret = "c2VjcmV0LWtleQ=="
    signed = sign(vector_a(), components=POST_COMPONENTS, secret=secret)
    verify(signed, secret=secret)
    with pytest.raises(SignatureError):
        verify(signed, secret=base64.b64decode(secret).decode())


def test_created_at_the_edge_of_the_skew_window_verifies() -> None:
    """created exactly `skew` seconds away on either side is still accepted."""
    verify(vector_a(), now=CREATED + SKEW)
    verify(vector_a(), now=CREATED - SKEW)


@pytest.mark.parametrize("offset", [SKEW + 1, -(SKEW + 1)], ids=["stale", "from the future"])
def test_created_outside_the_skew_window_is_rejected(offset: int) -> None:
    """The unchanged Vector A is refused when the server's clock is past the window."""
    with pytest.raises(SignatureError):
        verify(vector_a(), now=CREATED + offset)


def test_header_of_exactly_the_maximum_length_is_parsed() -> None:
    """The length limit refuses only headers longer than MAX_HEADER_LENGTH."""
    padding = MAX_HEADER_LENGTH - len(VECTOR_A_HEADER)
    header = VECTOR_A_HEADER.replace('keyId="', 'keyId="' + "k" * padding, 1)
    assert len(header) == MAX_HEADER_LENGTH
    assert parse_signature_header(header).key_id.startswith("kkk")
    with pytest.raises(SignatureError):
        parse_signature_header(header + " ")
