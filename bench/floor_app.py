"""The cryptographic floor on the bare stack: a raw ASGI app, served exactly like Keystead
(uvicorn, httptools + uvloop, one worker), that does per request only what the floor counts
(the token's RS256 signature verified, the CSR parsed and its self-signature checked, a
P-256 signature made over a certificate-sized body) and answers JSON with the exchange's
three fields (the signature in place of a certificate). No routing, no database, no log, no
certificate's structure: what the serving stack and the floor's cryptography cost
together, and nothing else.

The identity provider's public key (PEM) is read from the file named by BENCH_FLOOR_KEY.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

_key = serialization.load_pem_public_key(Path(os.environ["BENCH_FLOOR_KEY"]).read_bytes())
if not isinstance(_key, rsa.RSAPublicKey):
    raise SystemExit("BENCH_FLOOR_KEY must hold an RSA public key")
KEY: rsa.RSAPublicKey = _key
ISSUER = ec.generate_private_key(ec.SECP256R1())
TBS = os.urandom(600)  # as in bench.sso.crypto_floor
NOT_FOUND = b'{"message": "not found"}'


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
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
    KEY.verify(_b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    csr = x509.load_pem_x509_csr(json.loads(body)["csr"].encode())
    if not csr.is_signature_valid:
        raise ValueError("the CSR does not verify")
    signed = ISSUER.sign(TBS, ec.ECDSA(hashes.SHA256()))
    cert = base64.b64encode(signed).decode()
    answer = {"public_value": "-", "signing_value": "-", "api_cert": cert}
    await _respond(send, 200, json.dumps(answer).encode())
