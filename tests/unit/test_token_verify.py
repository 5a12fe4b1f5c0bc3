"""Entra token verification: one named test per attack of the validation checklist."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from keystead.idp import verify as v

TENANT = "8f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER_TENANT = "11111111-2222-4333-8444-555555555555"
ISSUER = f"https://sts.windows.net/{TENANT}/"
AUDIENCE = "api://keystead-app"
POLICY = v.TokenPolicy(issuer=ISSUER, audiences=frozenset({AUDIENCE}))
TENANT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NOW = int(time.time())


class Keys:
    def __init__(self, published: dict[str, RSAPublicKey]) -> None:
        self.published = published

    def key_for(self, kid: str) -> RSAPublicKey | None:
        return self.published.get(kid)


KEYS = Keys({"tenant-key": TENANT_KEY.public_key()})


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "ver": "1.0",
        "tid": TENANT,
        "oid": "0b8c5d1e-aaaa-4bbb-8ccc-123456789abc",
        "sub": "pairwise-subject",
        "scp": "user_impersonation",
        "unique_name": "dana@fabrikam.example",
        "upn": "dana@fabrikam.example",
    }
    base.update(changes)
    return {k: val for k, val in base.items() if val is not _DROP}


_DROP = object()


def mint(
    payload: dict[str, Any] | None = None,
    *,
    key: Any = TENANT_KEY,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(
        payload or claims(), key, algorithm=alg, headers={"kid": "tenant-key", **(headers or {})}
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_genuine_v1_token_is_accepted_and_maps_to_unique_name() -> None:
    """The control: a token as Entra issues it verifies and names its user."""
    verified = v.verify(mint(), POLICY, KEYS, now=NOW)
    assert (verified.username, verified.username_claim, verified.tenant_id) == (
        "dana@fabrikam.example",
        "unique_name",
        TENANT,
    )


def test_upn_then_preferred_username_are_fallbacks() -> None:
    """Without unique_name the next configured claim is used."""
    verified = v.verify(mint(claims(unique_name=_DROP)), POLICY, KEYS, now=NOW)
    assert verified.username_claim == "upn"


def test_times_within_leeway_are_accepted() -> None:
    """exp 30 s ago and nbf 30 s ahead pass with the default 60 s leeway."""
    v.verify(mint(claims(exp=NOW - 30, nbf=NOW + 30, iat=NOW + 30)), POLICY, KEYS, now=NOW)


def test_unknown_extra_claims_are_ignored() -> None:
    """Claims Keystead does not know do not matter."""
    v.verify(mint(claims(groups=["g1"], something_new={"x": 1})), POLICY, KEYS, now=NOW)


def unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with(secret: bytes) -> str:
    import hashlib
    import hmac

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "tenant-key"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def rs256_raw(header: bytes, payload: bytes) -> str:
    """A token signed with the tenant's key over any header and payload bytes (what no JWT
    library would encode: a header that is no object, a payload that is no JSON)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = TENANT_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


PUBLIC_PEM = TENANT_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

ATTACKS: dict[str, tuple[Any, type[v.TokenRejected]]] = {
    "alg_none": (
        lambda: unsigned(claims(), {"alg": "none", "kid": "tenant-key"}),
        v.WrongAlgorithm,
    ),
    "alg_none_uppercase": (
        lambda: unsigned(claims(), {"alg": "NONE", "kid": "tenant-key"}),
        v.WrongAlgorithm,
    ),
    "hs256_keyed_with_the_public_key": (lambda: hs256_with(PUBLIC_PEM), v.WrongAlgorithm),
    "rs512_with_the_genuine_key": (lambda: mint(alg="RS512"), v.WrongAlgorithm),
    "ps256_with_the_genuine_key": (lambda: mint(alg="PS256"), v.WrongAlgorithm),
    "unknown_kid": (lambda: mint(headers={"kid": "rotated-away"}), v.UnknownKey),
    "missing_kid": (lambda: jwt.encode(claims(), TENANT_KEY, algorithm="RS256"), v.UnknownKey),
    "attacker_key_under_the_tenant_kid": (lambda: mint(key=ATTACKER_KEY), v.BadSignature),
    "jku_header_injection": (
        lambda: mint(key=ATTACKER_KEY, headers={"jku": "http://127.0.0.1:9/keys"}),
        v.BadSignature,
    ),
    "x5u_header_injection": (
        lambda: mint(key=ATTACKER_KEY, headers={"x5u": "http://127.0.0.1:9/c"}),
        v.BadSignature,
    ),
    "jwk_header_embedded": (
        lambda: mint(
            key=ATTACKER_KEY,
            headers={
                "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key()))
            },
        ),
        v.BadSignature,
    ),
    "x5c_header_embedded": (
        lambda: mint(key=ATTACKER_KEY, headers={"x5c": ["MIIB"]}),
        v.BadSignature,
    ),
    "signature_stripped": (lambda: mint().rsplit(".", 1)[0] + ".", v.BadSignature),
    "signature_corrupted": (
        lambda: mint()[:-6] + ("AAAAAA" if not mint().endswith("AAAAAA") else "BBBBBB"),
        v.BadSignature,
    ),
    "payload_tampered": (
        lambda: ".".join(
            [
                mint().split(".")[0],
                b64(json.dumps(claims(unique_name="admin@x")).encode()),
                mint().split(".")[2],
            ]
        ),
        v.BadSignature,
    ),
    "expired": (lambda: mint(claims(exp=NOW - 120)), v.Expired),
    "future_nbf": (lambda: mint(claims(nbf=NOW + 600)), v.NotYetValid),
    "future_iat": (lambda: mint(claims(iat=NOW + 600)), v.NotYetValid),
    "missing_exp": (lambda: mint(claims(exp=_DROP)), v.MissingClaim),
    "exp_as_string": (lambda: mint(claims(exp=str(NOW + 3600))), v.MissingClaim),
    "missing_nbf": (lambda: mint(claims(nbf=_DROP)), v.MissingClaim),
    "wrong_audience": (lambda: mint(claims(aud="api://someone-else")), v.WrongAudience),
    "audience_as_list": (lambda: mint(claims(aud=[AUDIENCE])), v.WrongAudience),
    "graph_audience": (lambda: mint(claims(aud="https://graph.microsoft.com")), v.WrongAudience),
    "missing_aud": (lambda: mint(claims(aud=_DROP)), v.WrongAudience),
    "issuer_without_trailing_slash": (lambda: mint(claims(iss=ISSUER.rstrip("/"))), v.WrongIssuer),
    "v2_issuer": (
        lambda: mint(claims(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0")),
        v.WrongIssuer,
    ),
    "other_tenants_issuer_and_tid": (
        lambda: mint(claims(iss=f"https://sts.windows.net/{OTHER_TENANT}/", tid=OTHER_TENANT)),
        v.WrongIssuer,
    ),
    "tid_mismatch": (lambda: mint(claims(tid=OTHER_TENANT)), v.WrongTenant),
    "missing_tid": (lambda: mint(claims(tid=_DROP)), v.WrongTenant),
    "ver_2_0": (lambda: mint(claims(ver="2.0")), v.WrongTokenKind),
    "app_only_token": (
        lambda: mint(claims(scp=_DROP, unique_name=_DROP, upn=_DROP, idtyp="app")),
        v.WrongTokenKind,
    ),
    "app_only_token_without_idtyp": (
        lambda: mint(claims(scp=_DROP, sub="same", oid="same")),
        v.WrongTokenKind,
    ),
    "missing_unique_name": (lambda: mint(claims(unique_name=_DROP, upn=_DROP)), v.WrongTokenKind),
    # No directory user can have these names (PostgreSQL refuses NUL, UTF-8 a lone surrogate).
    "unique_name_with_a_nul": (lambda: mint(claims(unique_name="dana\x00@x")), v.MissingClaim),
    "unique_name_with_a_lone_surrogate": (
        lambda: mint(claims(unique_name="dana\ud800@x")),
        v.MissingClaim,
    ),
    # A configured claim that is present but empty or not text must not fall back to the
    # next claim (which could name another user): only an absent claim falls back.
    "empty_unique_name_with_another_upn": (
        lambda: mint(claims(unique_name="", upn="ceo@fabrikam.example")),
        v.MissingClaim,
    ),
    "blank_unique_name": (lambda: mint(claims(unique_name="   ")), v.MissingClaim),
    "unique_name_not_a_string": (
        lambda: mint(claims(unique_name=["ceo@fabrikam.example"], upn="ceo@fabrikam.example")),
        v.MissingClaim,
    ),
    "null_unique_name": (lambda: mint(claims(unique_name=None)), v.MissingClaim),
    "oversized_token": (lambda: mint(claims(pad="x" * 20_000)), v.MalformedToken),
    "two_segments": (lambda: ".".join(mint().split(".")[:2]), v.MalformedToken),
    "five_segments_jwe_shape": (lambda: "a.b.c.d.e", v.MalformedToken),
    "header_not_json": (lambda: "bm90IGpzb24." + mint().split(".", 1)[1], v.MalformedToken),
    "empty_token": (lambda: "", v.MalformedToken),
    "crit_unknown_extension": (lambda: mint(headers={"crit": ["exp"]}), v.MalformedToken),
    "header_a_json_array": (
        lambda: rs256_raw(b'["RS256", "tenant-key"]', json.dumps(claims()).encode()),
        v.MalformedToken,
    ),
    "kid_not_text": (
        lambda: rs256_raw(b'{"alg": "RS256", "kid": 7}', json.dumps(claims()).encode()),
        v.UnknownKey,
    ),
    "signed_payload_not_json": (
        lambda: rs256_raw(b'{"alg": "RS256", "kid": "tenant-key"}', b"not json"),
        v.MalformedToken,
    ),
    "signed_payload_a_json_array": (
        lambda: rs256_raw(b'{"alg": "RS256", "kid": "tenant-key"}', b"[1, 2]"),
        v.MalformedToken,
    ),
    "header_in_utf16": (
        lambda: rs256_raw(
            '{"alg": "RS256", "kid": "tenant-key"}'.encode("utf-16"), json.dumps(claims()).encode()
        ),
        v.MalformedToken,
    ),
    "header_after_a_byte_order_mark": (
        lambda: rs256_raw(
            b'\xef\xbb\xbf{"alg": "RS256", "kid": "tenant-key"}', json.dumps(claims()).encode()
        ),
        v.MalformedToken,
    ),
    "signed_payload_in_utf32": (
        lambda: rs256_raw(
            b'{"alg": "RS256", "kid": "tenant-key"}', json.dumps(claims()).encode("utf-32")
        ),
        v.MalformedToken,
    ),
    "signature_of_no_base64_length": (
        lambda: mint().rsplit(".", 1)[0] + ".AAAAA",
        v.BadSignature,
    ),
    "empty_signature": (lambda: mint().rsplit(".", 1)[0] + ".", v.BadSignature),
    # Not from HTTP (headers arrive as latin-1), but verify's callers get a rejection.
    "lone_surrogate_in_token": (lambda: mint() + "\ud800", v.MalformedToken),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_rejected_with_its_reason(name: str) -> None:
    """Each checklist attack is rejected by the check meant for it, with a readable message."""
    build, rejection = ATTACKS[name]
    token = build()
    with pytest.raises(rejection) as caught:
        v.verify(token, POLICY, KEYS, now=NOW)
    assert caught.value.message
    assert token not in caught.value.message or not token


def test_wrong_audience_message_names_both_audiences() -> None:
    """The admin reads 'audience api://x expected, token has api://y'."""
    with pytest.raises(v.WrongAudience, match='api://keystead-app expected, token has "api://y"'):
        v.verify(mint(claims(aud="api://y")), POLICY, KEYS, now=NOW)


def test_v2_issuer_message_explains_the_manifest_setting() -> None:
    """A v2.0 token points the admin at accessTokenAcceptedVersion."""
    with pytest.raises(v.WrongIssuer, match="accessTokenAcceptedVersion"):
        v.verify(
            mint(claims(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0")),
            POLICY,
            KEYS,
            now=NOW,
        )


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_signature_respelled_in_its_unused_bits_is_refused() -> None:
    """A 2048-bit signature is 256 bytes: its base64url ends in a character whose four low
    bits carry no data. Lenient decoding would accept 16 spellings of one genuine token."""
    token = mint()
    signature = token.rsplit(".", 1)[1]
    assert len(signature) % 4 == 2
    respelled = signature[:-1] + BASE64URL[BASE64URL.index(signature[-1]) | 0b1111]
    assert respelled != signature
    assert base64.urlsafe_b64decode(respelled + "==") == base64.urlsafe_b64decode(signature + "==")
    with pytest.raises(v.BadSignature):
        v.verify(token[: -len(signature)] + respelled, POLICY, KEYS, now=NOW)


@pytest.mark.parametrize(
    "alg",
    ["x" * 10_000, ["RS256"] * 1_000, {"a": ["x" * 500] * 10}, None],
    ids=["long_text", "long_list", "object", "absent"],
)
def test_an_algorithm_of_anybody_is_not_echoed_at_length(alg: Any) -> None:
    """Unsigned rejections are answered and logged for anybody's token: the header's alg
    is shown only as a short name (like kid, which is bounded too)."""
    token = unsigned(claims(), {"alg": alg, "kid": "tenant-key"})
    with pytest.raises(v.WrongAlgorithm) as caught:
        v.verify(token, POLICY, KEYS, now=NOW)
    assert len(caught.value.message) < 100
