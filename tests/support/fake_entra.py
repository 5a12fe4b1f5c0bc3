"""A stand-in Microsoft Entra ID tenant, served over real HTTP on 127.0.0.1.

No real tenant is reachable from a test machine, and a mocked transport would hide the
parts that break in production (URLs, content types, status codes, key lookup by ``kid``
after a real fetch). So this stand-in runs a genuine HTTP server in a background thread
of the test process and speaks the small part of Entra that Keystead and the Ubiq client
touch:

* the v1 discovery document (``/<tid>/.well-known/openid-configuration``), whose issuer
  is ``https://sts.windows.net/<tid>/`` even though it is served from another host, and
  the v2 document (``/<tid>/v2.0/.well-known/openid-configuration``) for mismatch tests;
* the key set (``/common/discovery/keys``) with ``kid``/``x5t``/``x5c`` as Entra
  publishes it, with rotation on demand;
* the token endpoint (``/<tid>/oauth2/v2.0/token``, and the v1 ``/oauth2/token``) for the
  resource-owner password grant, returning v1.0 access tokens and Entra-shaped errors
  with real AADSTS codes;
* a token forge (:meth:`FakeEntra.mint`, :meth:`FakeEntra.mint_hmac`,
  :meth:`FakeEntra.mint_unsigned`) for attack tests.

Counters (``discovery_fetches``, ``jwks_fetches``, ``token_requests``) let tests assert
how often a verifier talks to the provider. ``override()`` replaces one endpoint's answer
with arbitrary bytes, to exercise the configuration pre-flight against broken providers.

Usage::

    with FakeEntra() as entra:
        entra.add_user("alice@contoso.example", "pw", groups=["g1"])
        token = entra.token_for("alice@contoso.example")
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

Endpoint = Literal["discovery", "jwks", "token"]

#: Scopes a client may add to a resource scope; they ask for id/refresh tokens, which the
#: stand-in does not issue, and are otherwise ignored (as Entra ignores them for the API).
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_MAX_BODY = 64 * 1024
_CLAIMS_COMMON: tuple[str, ...] = ("sub", "iss", "cloud_instance_name", "cloud_instance_host_name")
_CLAIMS_COMMON += ("cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time")
_CLAIMS_V1 = ("acr", "amr", "nonce", "email", "given_name", "family_name", "nickname")
_CLAIMS_V2 = ("acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash")


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding of every JOSE field."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class SigningKey:
    """One tenant signing key: an RSA 2048 key pair and the self-issued certificate
    Entra wraps it in. ``kid`` and ``x5t`` are both the certificate's base64url SHA-1
    thumbprint, as in Entra's v1 key set."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=5 * 365))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def kid(self) -> str:
        return self.x5t

    @property
    def x5t(self) -> str:
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # x5t is SHA-1 by definition

    def jwk(self, *, issuer: str | None = None) -> dict[str, Any]:
        """The key-set entry, field for field as Entra publishes it."""
        numbers = self.public_key.public_numbers()
        entry: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [
                base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()
            ],
        }
        if issuer is not None:
            entry["issuer"] = issuer
        return entry

    # The public key in every form an HS256 key-confusion attack might use as the secret.
    def public_pem_spki(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_pem_pkcs1(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def public_jwk_json(self) -> bytes:
        return _json_bytes(self.jwk())


@dataclass
class FakeUser:
    """A directory user who can sign in with the password grant.

    ``upn`` is the spelling stored in the directory: tokens carry it as ``unique_name``
    and ``upn`` whatever case the user typed at sign-in, as Entra does."""

    username: str
    password: str
    oid: str
    upn: str
    groups: list[str] = field(default_factory=list)
    disabled: bool = False
    groups_overage: bool = False

    @property
    def name(self) -> str:
        local = self.upn.split("@", 1)[0]
        return " ".join(part.capitalize() for part in local.replace("_", ".").split("."))


@dataclass
class _Override:
    status: int
    body: bytes
    content_type: str
    delay: float


class EntraError(Exception):
    """An error answer of the token endpoint, shaped like Entra's."""

    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status, self.error, self.code, self.text = status, error, code, text

    def body(self) -> dict[str, Any]:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.text} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


class FakeEntra:
    """One Entra tenant with one app registration (the API Keystead protects, which is
    also the client the Ubiq library signs in through), served on a free loopback port.

    State may be changed from the test thread while the server runs; every access goes
    through one lock, so the server threads always see a consistent tenant."""

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id: str = tenant_id or str(uuid.uuid4())
        self.client_id: str = client_id or str(uuid.uuid4())
        self.client_secret: str = client_secret or secrets.token_urlsafe(30)
        self.token_lifetime: int = token_lifetime
        self.clock: Callable[[], float] = clock
        #: Issuer served in the v1 discovery document; None means the true v1 issuer.
        #: Set it to simulate a provider (or proxy) whose document disagrees with tokens.
        self.discovery_issuer: str | None = None
        self._lock = threading.RLock()
        self._users: dict[str, FakeUser] = {}
        self._keys: list[SigningKey] = [SigningKey.generate()]
        self._overrides: dict[Endpoint, _Override] = {}
        self._counters = {"discovery": 0, "jwks": 0, "token": 0}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeEntra:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server = server
        # A short poll interval makes stop() return in tens of milliseconds.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
            name=f"fake-entra-{server.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeEntra:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeEntra is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audience(self) -> str:
        """The default Application ID URI, which is what the Ubiq client asks for."""
        return f"api://{self.client_id}"

    @property
    def issuer(self) -> str:
        """Entra's v1 issuer, exactly: another host than the endpoints, trailing slash."""
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def v2_issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/.well-known/openid-configuration"

    @property
    def discovery_url_v2(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def token_endpoint_v1(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/common/discovery/keys"

    @property
    def jwks_uri_v2(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/discovery/v2.0/keys"

    # ----------------------------------------------------------------- counters

    @property
    def discovery_fetches(self) -> int:
        with self._lock:
            return self._counters["discovery"]

    @property
    def jwks_fetches(self) -> int:
        with self._lock:
            return self._counters["jwks"]

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._counters["token"]

    def reset_counters(self) -> None:
        with self._lock:
            for name in self._counters:
                self._counters[name] = 0

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    # ----------------------------------------------------------------- directory

    def add_user(
        self,
        username: str,
        password: str,
        *,
        groups: list[str] | None = None,
        oid: str | None = None,
        upn: str | None = None,
    ) -> FakeUser:
        """Register a user for the password grant; sign-in names match case-insensitively."""
        user = FakeUser(
            username=username,
            password=password,
            oid=oid or str(uuid.uuid4()),
            upn=upn or username,
            groups=list(groups or []),
        )
        with self._lock:
            self._users[username.lower()] = user
            if user.upn.lower() != username.lower():
                self._users[user.upn.lower()] = user
        return user

    def user(self, username: str) -> FakeUser:
        with self._lock:
            found = self._users.get(username.lower())
        if found is None:
            raise KeyError(f"no user {username!r} in the stand-in tenant")
        return found

    def disable_user(self, username: str, disabled: bool = True) -> None:
        """Block sign-in (AADSTS50057), as an admin disabling the account would."""
        with self._lock:
            self.user(username).disabled = disabled

    def groups_overage(self, username: str, enabled: bool = True) -> None:
        """Make this user's tokens carry Entra's distributed-claim overage form instead of
        ``groups`` (what happens above 200 groups)."""
        with self._lock:
            self.user(username).groups_overage = enabled

    # ----------------------------------------------------------------- keys

    @property
    def current_key(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    @property
    def published_keys(self) -> list[SigningKey]:
        with self._lock:
            return list(self._keys)

    def rotate_keys(self) -> SigningKey:
        """Sign with a new key from now on; the old ones stay published (rollover)."""
        key = SigningKey.generate()
        with self._lock:
            self._keys.append(key)
        return key

    def retire_old_keys(self) -> None:
        """Publish only the current key, as at the end of a rollover."""
        with self._lock:
            self._keys = self._keys[-1:]

    # ----------------------------------------------------------------- documents

    def discovery_document(self, version: Literal["1.0", "2.0"] = "1.0") -> dict[str, Any]:
        """The discovery document this stand-in serves, for tests that want to serve a
        modified copy through :meth:`override`."""
        base, tid = self.base_url, self.tenant_id
        if version == "2.0":
            return {
                "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": self.jwks_uri_v2,
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": self.v2_issuer,
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
                "claims_supported": [*_CLAIMS_COMMON, *_CLAIMS_V2],
                "kerberos_endpoint": f"{base}/{tid}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        return {
            "token_endpoint": f"{base}/{tid}/oauth2/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": self.jwks_uri,
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": [
                "code",
                "id_token",
                "code id_token",
                "token id_token",
                "token",
            ],
            "scopes_supported": ["openid"],
            "issuer": self.discovery_issuer or self.issuer,
            "microsoft_multi_refresh_token": True,
            "authorization_endpoint": f"{base}/{tid}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/logout",
            "claims_supported": [*_CLAIMS_COMMON, *_CLAIMS_V1],
            "check_session_iframe": f"{base}/{tid}/oauth2/checksession",
            "userinfo_endpoint": f"{base}/{tid}/openid/userinfo",
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks_document(self, version: Literal["1.0", "2.0"] = "1.0") -> dict[str, Any]:
        """The key set: every published key; v2 key sets name the issuer per key."""
        issuer = self.v2_issuer if version == "2.0" else None
        return {"keys": [key.jwk(issuer=issuer) for key in self.published_keys]}

    def override(
        self,
        endpoint: Endpoint,
        *,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        status: int = 200,
        content_type: str = "application/json",
        delay: float = 0.0,
    ) -> None:
        """Answer every request to ``endpoint`` (v1 and v2 forms) with exactly this, after
        ``delay`` seconds, until :meth:`clear_overrides`. A mapping or list is sent as
        JSON; bytes and text as they are, so tests can serve broken documents."""
        if isinstance(body, (Mapping, list)):
            raw = _json_bytes(body)
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body
        with self._lock:
            self._overrides[endpoint] = _Override(status, raw, content_type, delay)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def _override_for(self, endpoint: Endpoint) -> _Override | None:
        with self._lock:
            return self._overrides.get(endpoint)

    # ----------------------------------------------------------------- tokens

    def claims_for(
        self, username: str, *, audience: str | None = None, lifetime: int | None = None
    ) -> dict[str, Any]:
        """The claims of a v1.0 access token Entra would issue this user for the API.

        A registered user gets their stored ``upn``, ``oid`` and groups; an unknown name
        gets made-up but well-formed values (useful for tokens of deprovisioned users)."""
        with self._lock:
            user = self._users.get(username.lower())
            known = user is not None
            if user is None:
                user = FakeUser(
                    username, "", str(uuid.uuid5(uuid.NAMESPACE_URL, username)), username
                )
            now = int(self.clock())
            expires = now + (self.token_lifetime if lifetime is None else lifetime)
            names = user.name.split(" ", 1)
            claims: dict[str, Any] = {
                "aud": audience or self.audience,
                "iss": self.issuer,
                "iat": now,
                "nbf": now,
                "exp": expires,
                "acr": "1",
                "aio": b64url(secrets.token_bytes(48)),
                "amr": ["pwd"],
                "appid": self.client_id,
                "appidacr": "1",
                "family_name": names[-1],
                "given_name": names[0],
                "ipaddr": "127.0.0.1",
                "name": user.name,
                "oid": user.oid,
                "rh": "0.A" + b64url(secrets.token_bytes(36)) + ".",
                "scp": "user_impersonation",
                "sub": b64url(
                    hashlib.sha256(
                        f"{user.oid}|{self.client_id}|{self.tenant_id}".encode()
                    ).digest()
                ),
                "tid": self.tenant_id,
                "unique_name": user.upn,
                "upn": user.upn,
                "uti": b64url(secrets.token_bytes(16)),
                "ver": "1.0",
            }
            if known and user.groups_overage:
                claims["_claim_names"] = {"groups": "src1"}
                claims["_claim_sources"] = {
                    "src1": {
                        "endpoint": (
                            f"https://graph.windows.net/{self.tenant_id}/users/{user.oid}"
                            "/getMemberObjects"
                        )
                    }
                }
            elif known and user.groups:
                claims["groups"] = list(user.groups)
        return claims

    def token_for(self, username: str, *, audience: str | None = None) -> str:
        """A normal access token for a user, as the token endpoint would return it."""
        return self.mint(username, claims={"aud": audience} if audience else None)

    def mint(
        self,
        username_or_claims: str | Mapping[str, Any],
        *,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        key: rsa.RSAPrivateKey | SigningKey | Any | None = None,
        remove: list[str] | None = None,
        remove_header: list[str] | None = None,
        lifetime: int | None = None,
        algorithm: str = "RS256",
    ) -> str:
        """Forge any token: start from a user's normal claims (or the given claim set),
        override and remove claims and header fields, and sign with ``algorithm`` using
        ``key`` (default: the current tenant key; any private key PyJWT's algorithm
        accepts, e.g. a foreign RSA or EC key). The header keeps the current key's
        ``kid``/``x5t`` unless overridden, so "right kid, wrong key" is the default attack
        when ``key`` is foreign. For HS* and ``none`` see :meth:`mint_hmac` and
        :meth:`mint_unsigned`."""
        payload, head = self._forge_parts(
            username_or_claims, claims, header, remove, remove_header, lifetime, algorithm
        )
        signer = key if key is not None else self.current_key
        private = signer.private_key if isinstance(signer, SigningKey) else signer
        jws_algorithm = jwt.algorithms.get_default_algorithms()[algorithm]
        signing_input = f"{b64url(_json_bytes(head))}.{b64url(_json_bytes(payload))}"
        signature = jws_algorithm.sign(signing_input.encode(), private)
        return f"{signing_input}.{b64url(signature)}"

    def mint_hmac(
        self,
        username_or_claims: str | Mapping[str, Any],
        secret: bytes,
        *,
        algorithm: Literal["HS256", "HS384", "HS512"] = "HS256",
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        remove: list[str] | None = None,
        remove_header: list[str] | None = None,
    ) -> str:
        """An HMAC-signed token, built by hand because PyJWT refuses PEM-shaped secrets.
        With ``secret=entra.current_key.public_pem_spki()`` this is the classic key
        confusion attack against verifiers that take ``alg`` from the token."""
        payload, head = self._forge_parts(
            username_or_claims, claims, header, remove, remove_header, None, algorithm
        )
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        signing_input = f"{b64url(_json_bytes(head))}.{b64url(_json_bytes(payload))}"
        mac = hmac.new(secret, signing_input.encode(), digest[algorithm]).digest()
        return f"{signing_input}.{b64url(mac)}"

    def mint_unsigned(
        self,
        username_or_claims: str | Mapping[str, Any],
        *,
        alg: str = "none",
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        remove: list[str] | None = None,
        remove_header: list[str] | None = None,
    ) -> str:
        """An ``alg: none`` token (or any spelling: ``None``, ``NONE``, ``""``) with an
        empty signature segment."""
        payload, head = self._forge_parts(
            username_or_claims, claims, header, remove, remove_header, None, alg
        )
        return f"{b64url(_json_bytes(head))}.{b64url(_json_bytes(payload))}."

    def _forge_parts(
        self,
        username_or_claims: str | Mapping[str, Any],
        claims: Mapping[str, Any] | None,
        header: Mapping[str, Any] | None,
        remove: list[str] | None,
        remove_header: list[str] | None,
        lifetime: int | None,
        algorithm: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(username_or_claims, str):
            payload = self.claims_for(username_or_claims, lifetime=lifetime)
        else:
            payload = dict(username_or_claims)
        payload.update(claims or {})
        for name in remove or []:
            payload.pop(name, None)
        current = self.current_key
        head: dict[str, Any] = {
            "typ": "JWT",
            "alg": algorithm,
            "x5t": current.x5t,
            "kid": current.kid,
        }
        head.update(header or {})
        for name in remove_header or []:
            head.pop(name, None)
        return payload, head

    # ----------------------------------------------------------------- token endpoint

    def _grant(
        self, form: Mapping[str, str], basic: tuple[str, str] | None, v1: bool
    ) -> dict[str, Any]:
        """Run the password grant like Entra: parameters, client, resource, then user."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "password":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id") or (basic[0] if basic else "")
        secret = form.get("client_secret") or (basic[1] if basic else "")
        if not client_id:
            raise _missing("client_id")
        if client_id != self.client_id:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user "
                "in the tenant. You may have sent your authentication request to the wrong "
                "tenant.",
            )
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added "
                f"to app '{self.client_id}'.",
            )
        audience, scope = self._resource(form, v1)
        username, password = form.get("username", ""), form.get("password", "")
        if not username:
            raise _missing("username")
        if not password:
            raise _missing("password")
        with self._lock:
            user = self._users.get(username.lower())
        if user is None:
            raise EntraError(
                400,
                "invalid_grant",
                50034,
                f"The user account {{EUII Hidden}} does not exist in the {self.tenant_id} "
                "directory. To sign into this application, the account must be added to "
                "the directory.",
            )
        if user.disabled:
            raise EntraError(
                400,
                "invalid_grant",
                50057,
                "The user account is disabled. The account has been disabled by an administrator.",
            )
        if not hmac.compare_digest(password.encode(), user.password.encode()):
            raise EntraError(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        lifetime = self.token_lifetime
        token = self.mint(user.username, claims={"aud": audience}, lifetime=lifetime)
        if v1:
            now = int(self.clock())
            # The v1 endpoint answers numbers as strings and names the resource.
            return {
                "token_type": "Bearer",
                "scope": "user_impersonation",
                "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime),
                "expires_on": str(now + lifetime),
                "not_before": str(now),
                "resource": audience,
                "access_token": token,
            }
        return {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _resource(self, form: Mapping[str, str], v1: bool) -> tuple[str, str]:
        """The audience the token will carry, and the granted scope string.

        ``api://<client id>/...`` gives ``aud = api://<client id>``; ``<client id>/...``
        gives the bare GUID, as Entra does for v1 tokens."""
        known = {self.audience, self.client_id}
        if v1:
            resource = form.get("resource", "")
            if not resource:
                raise _missing("resource")
            if resource.rstrip("/") not in known:
                raise _no_resource(resource, self.tenant_id)
            return resource, "user_impersonation"
        scope = form.get("scope", "")
        if not scope.strip():
            raise _missing("scope")
        resources = [s for s in scope.split() if s not in _OIDC_SCOPES]
        if len(resources) != 1 or "/" not in resources[0]:
            raise _bad_scope(scope)
        resource, _, permission = resources[0].rpartition("/")
        if resource not in known:
            raise _no_resource(resource, self.tenant_id)
        if permission not in {".default", "user_impersonation"}:
            raise _bad_scope(scope)
        return resource, f"{resource}/user_impersonation"


def _missing(parameter: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def _bad_scope(scope: str) -> EntraError:
    return EntraError(
        400,
        "invalid_scope",
        70011,
        f"The provided request must include a 'scope' input parameter. The provided value "
        f"for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def _no_resource(resource: str, tenant_id: str) -> EntraError:
    return EntraError(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named "
        f"{tenant_id}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant.",
    )


def _basic_credentials(value: str | None) -> tuple[str, str] | None:
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class _Server(ThreadingHTTPServer):
    """A threading server whose request threads never block shutdown, and which does not
    print tracebacks when a client hangs up early (as a timed-out client does)."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs under parallel load (1 s retries)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(entra: FakeEntra) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one stand-in (http.server wants a class)."""

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so stop() leaves no idle keep-alive
        # threads behind.
        protocol_version = "HTTP/1.0"
        server_version = "FakeEntra/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging; tests read counters instead."""

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store, no-cache")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, _json_bytes(value), "application/json; charset=utf-8")

        def _overridden(self, endpoint: Endpoint) -> bool:
            override = entra._override_for(endpoint)
            if override is None:
                return False
            if override.delay:
                time.sleep(override.delay)
            self._send(override.status, override.body, override.content_type)
            return True

        def _tenant_error(self, tenant: str) -> None:
            error = EntraError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                "tenant ID and are signing into the correct cloud.",
            )
            self._json(error.status, error.body())

        def do_GET(self) -> None:
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            tid = entra.tenant_id
            if parts == ["_admin", "stats"]:
                self._json(
                    200,
                    {
                        "discovery_fetches": entra.discovery_fetches,
                        "jwks_fetches": entra.jwks_fetches,
                        "token_requests": entra.token_requests,
                    },
                )
            elif parts[1:] in (
                [".well-known", "openid-configuration"],
                ["v2.0", ".well-known", "openid-configuration"],
            ):
                entra._count("discovery")
                if self._overridden("discovery"):
                    return
                if parts[0] != tid:
                    self._tenant_error(parts[0])
                    return
                self._json(200, entra.discovery_document("2.0" if len(parts) == 4 else "1.0"))
            elif parts in (
                ["common", "discovery", "keys"],
                [tid, "discovery", "keys"],
                [tid, "discovery", "v2.0", "keys"],
            ):
                entra._count("jwks")
                if self._overridden("jwks"):
                    return
                self._json(200, entra.jwks_document("2.0" if "v2.0" in parts else "1.0"))
            else:
                self._json(404, {"error": "not_found", "path": self.path})

        def do_POST(self) -> None:
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            if len(parts) < 3 or parts[1:] not in (
                ["oauth2", "v2.0", "token"],
                ["oauth2", "token"],
            ):
                self._json(404, {"error": "not_found", "path": self.path})
                return
            entra._count("token")
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._json(413, {"error": "invalid_request"})
                return
            raw = self.rfile.read(length) if length > 0 else b""
            if self._overridden("token"):
                return
            if parts[0] in {"common", "consumers"}:
                error = EntraError(
                    400,
                    "invalid_request",
                    90010,
                    "The grant type is not supported over the /common or /consumers "
                    "endpoints. Please use the /organizations or tenant-specific endpoint.",
                )
                self._json(error.status, error.body())
                return
            if parts[0] != entra.tenant_id:
                self._tenant_error(parts[0])
                return
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            form: dict[str, str] = {}
            if content_type.lower() == "application/x-www-form-urlencoded":
                parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
                form = {name: values[0] for name, values in parsed.items()}
            try:
                answer = entra._grant(
                    form,
                    _basic_credentials(self.headers.get("Authorization")),
                    v1=parts[1:] == ["oauth2", "token"],
                )
            except EntraError as error:
                self._json(error.status, error.body())
                return
            self._json(200, answer)

    return Handler


def serve(**options: Any) -> Iterator[FakeEntra]:
    """For pytest fixtures: ``yield from serve()`` runs a stand-in for the fixture's scope."""
    with FakeEntra(**options) as entra:
        yield entra
