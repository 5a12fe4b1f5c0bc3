"""Shared set-up for sign-in tests: an enterprise account whose IDP integration trusts a
stand-in Entra tenant, directory users with their auto-provisioned keys, and CSRs."""

from __future__ import annotations

import base64
import functools
import os
import time
import uuid
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from keystead.accounts import service as accounts
from keystead.apikeys.service import signing_key_context
from keystead.directory import service as directory
from keystead.idp import service as idp
from keystead.idp.config import SignInChanges
from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, ProvisioningEvent
from tests import factories as f
from tests.factories import ACTOR
from tests.support.fake_entra import FakeEntra


@functools.cache
def client_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """One key per size for the whole run: generating RSA keys is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def csr_pem(key: rsa.RSAPrivateKey | None = None) -> str:
    """A CSR as the Ubiq client builds it (§7.4 of the protocol notes): random CN, fixed
    subject, SHA-256 with RSA."""
    signer = key or client_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, base64.b64encode(os.urandom(18)).decode()),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "San Diego"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ubiq Security, Inc."),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ubiq Platform"),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(signer, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class SignInAccount:
    account_id: uuid.UUID
    sso_url: str
    entra: FakeEntra
    runtime: Runtime

    def exchange(
        self, token: str | None, csr: str | None = None, *, url: str | None = None
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(
            url or self.sso_url,
            json={"csr": csr if csr is not None else csr_pem()},
            headers=headers,
            timeout=30,
        )


@dataclass(frozen=True)
class Provisioned:
    user_id: uuid.UUID
    user_name: str
    access_key_id: str
    signing_secret: str


def signin_account(
    runtime: Runtime,
    base_url: str,
    entra: FakeEntra,
    *,
    name: str = "Acme",
    cert_ttl: int | None = None,
    group_policy: str | None = None,
    username_claim: str | None = None,
) -> SignInAccount:
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s, name=name))
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
        idp.configure(
            s,
            account,
            SignInChanges(
                discovery_url=entra.discovery_url,
                issuer=entra.issuer,
                audience=entra.audience,
                cert_ttl_seconds=cert_ttl,
                group_policy=group_policy,
                username_claim=username_claim,
            ),
            actor=ACTOR,
            allow_private=True,  # the stand-in tenant is on loopback
        )
        account_id = account.id
    return SignInAccount(account_id, f"{base_url}/{account_id}/api/v3/scim/sso", entra, runtime)


def provision(
    runtime: Runtime,
    account_id: uuid.UUID,
    user_name: str,
    *,
    active: bool = True,
    external_id: str | None = None,
) -> Provisioned:
    """What SCIM's user create does (the rules live in the directory service)."""
    with runtime.db.write() as s:
        user = directory.create_user(
            s,
            account_id=account_id,
            fields=directory.UserFields(user_name, active, external_id, None),
            attributes={},
            master=runtime.master,
        )
        key = s.scalar(select(ApiKey).where(ApiKey.directory_user_id == user.id))
        assert isinstance(key, ApiKey)
        secret = runtime.master.unwrap(key.wrapped_signing_key, signing_key_context(key.id))
        return Provisioned(user.id, user.user_name, key.access_key_id, secret.decode())


def sign_in_entries(
    runtime: Runtime, account_id: uuid.UUID, *, at_least: int = 1
) -> list[ProvisioningEvent]:
    """The account's sign-in entries, once ``at_least`` are there (the server writes them
    in batches, within moments of each exchange; see ``provisioning_log.Batched``)."""
    deadline = time.monotonic() + 5
    while True:
        with runtime.db.read() as s:
            entries = list(
                s.scalars(
                    select(ProvisioningEvent)
                    .where(
                        ProvisioningEvent.account_id == account_id,
                        ProvisioningEvent.operation == "sso",
                    )
                    .order_by(ProvisioningEvent.id)
                )
            )
        if len(entries) >= at_least or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)
