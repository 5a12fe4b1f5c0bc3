"""The cryptographic floor of the SSO exchange, and that floor on the bare stack.

:func:`floor` is the floor's cryptography, once: the token's RS256 signature verified, the
CSR's self-signature checked, a P-256 signature made over a certificate-sized body.
`bench.sso` times it in process; ``app`` is a raw ASGI app, served exactly like Keystead
(uvicorn, httptools + uvloop, one worker), that per request parses the token and the CSR,
does :func:`floor` and answers JSON with the exchange's three fields (the signature in place
of a certificate). No routing, no database, no log, no certificate's structure: what the
serving stack and the floor's cryptography cost together, and nothing else.

The app reads the identity provider's public key (PEM) from the file named by
BENCH_FLOOR_KEY when it starts.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt.utils import base64url_decode

TBS_BYTES = 600  # a client certificate's to-be-signed part is about this long
NOT_FOUND = b'{"message": "not found"}'


def floor(
    key: rsa.RSAPublicKey,
    signing_input: bytes,
    signature: bytes,
    csr: x509.CertificateSigningRequest,
    issuer: ec.EllipticCurvePrivateKey,
    tbs: bytes,
) -> bytes:
    """The floor's cryptography, once; the P-256 signature it made."""
    key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    if not csr.is_signature_valid:
        raise ValueError("the CSR does not verify")
    return issuer.sign(tbs, ec.ECDSA(hashes.SHA256()))


@functools.cache
def _parts() -> tuple[rsa.RSAPublicKey, ec.EllipticCurvePrivateKey, bytes]:
    """The identity provider's key, the app's issuer key and a to-be-signed body."""
    key = serialization.load_pem_public_key(Path(os.environ["BENCH_FLOOR_KEY"]).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise SystemExit("BENCH_FLOOR_KEY must hold an RSA public key")
    return key, ec.generate_private_key(ec.SECP256R1()), os.urandom(TBS_BYTES)


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            _parts()  # before the first request
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "POST":
        await _respond(send, 404, NOT_FOUND)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    authorization = dict(scope["headers"])[b"authorization"].decode()
    head, payload, signature = authorization.split(" ", 1)[1].split(".")
    csr = x509.load_pem_x509_csr(json.loads(body)["csr"].encode())
    key, issuer, tbs = _parts()
    signed = floor(key, f"{head}.{payload}".encode(), base64url_decode(signature), csr, issuer, tbs)
    cert = base64.b64encode(signed).decode()
    answer = {"public_value": "-", "signing_value": "-", "api_cert": cert}
    await _respond(send, 200, json.dumps(answer).encode())
