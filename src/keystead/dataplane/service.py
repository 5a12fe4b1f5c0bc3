"""The data plane's operations, one per client call. Every call authenticates the signing
key and asks the access rule (keystead.access) before any key material leaves."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cryptography import x509
from sqlalchemy import Connection, Dialect, Integer, String, Uuid, bindparam, select

from keystead import access, names
from keystead.apikeys.service import signing_key_context
from keystead.caching import Immutable
from keystead.catalog.datasets import key_context
from keystead.crypto.masterkey import MasterKey
from keystead.dataplane import edk, signatures, wrapping
from keystead.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from keystead.sso import certificates
from keystead.storage.driver import DriverQuery, Reader
from keystead.storage.models import ApiKey, Dataset, DatasetKey, IdpSettings

MAX_USES = 1_000_000
# Opens (once) the call's connection: reads that caches usually answer take this, not one.
Connect = Callable[[], Connection]
# Verifying against this when the key id is unknown keeps both failures equally slow.
_UNKNOWN_KEY_SECRET = secrets.token_urlsafe(32).encode()


# Values made on every data-plane request are NamedTuples: as immutable as a frozen
# dataclass, and several times cheaper to make.
class DatasetRef(NamedTuple):
    id: uuid.UUID
    name: str
    type: str
    current_key_number: int


def _base64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise BadRequest(f"'{field}' is not valid base64") from exc


def no_access(caller: Caller, dataset_name: str) -> Forbidden:
    return Forbidden(f"API key {caller.access_key_id} has no access to dataset {dataset_name}")


def _private_key_field(to: wrapping.Recipient) -> dict[str, str]:
    """The answer's ``encrypted_private_key``, when the server holds the caller's key pair."""
    return {} if to.private_key_pem is None else {"encrypted_private_key": to.private_key_pem}


# Built once (statement construction costs more than execution): the calling key, and the
# dataset it names with the access rule's verdict, in one round trip. DataPlane compiles it
# once for the engine's dialect and runs it on the bare driver connection.
_LOOKUP = (
    select(
        ApiKey.id.label("key_id"),
        ApiKey.access_key_id,
        ApiKey.account_id,
        ApiKey.name,
        ApiKey.enabled,
        ApiKey.suspended,
        ApiKey.auto_provisioned,
        ApiKey.wrapped_signing_key,
        ApiKey.public_key_pem,
        ApiKey.encrypted_private_key_pem,
        ApiKey.default_unstructured_dataset_id,
        Dataset.id.label("dataset_id"),
        Dataset.name.label("dataset_name"),
        Dataset.type.label("dataset_type"),
        Dataset.current_key_number,
        access.allows(ApiKey.id, Dataset.id).label("allowed"),
    )
    .select_from(ApiKey)
    .outerjoin(
        Dataset,
        (Dataset.account_id == ApiKey.account_id)
        & (Dataset.name_key == bindparam("name_key", type_=String())),
    )
    .where(ApiKey.access_key_id == bindparam("papi", type_=String()))
)


class Caller(NamedTuple):
    """The API key a request was signed with, as the lookup reads it (the caller is the
    lookup's row itself); the dataset columns are None when no dataset has the name asked."""

    key_id: uuid.UUID
    access_key_id: str
    account_id: uuid.UUID
    name: str
    enabled: bool
    suspended: bool
    auto_provisioned: bool
    wrapped_signing_key: bytes
    public_key_pem: str | None
    encrypted_private_key_pem: str | None
    default_unstructured_dataset_id: uuid.UUID | None
    dataset_id: uuid.UUID | None
    dataset_name: str
    dataset_type: str
    current_key_number: int
    allowed: bool


_KEY_VERSION = select(DatasetKey.wrapped_key).where(
    DatasetKey.dataset_id == bindparam("dataset_id", type_=Uuid()),
    DatasetKey.key_number == bindparam("key_number", type_=Integer()),
)
_DEFINITION = select(Dataset.definition).where(Dataset.id == bindparam("dataset_id", type_=Uuid()))
_ACCOUNT_CA = select(IdpSettings.ca_cert_pem).where(
    IdpSettings.account_id == bindparam("account_id", type_=Uuid())
)
_EDK_DATASET = select(Dataset.name, Dataset.current_key_number).where(
    Dataset.id == bindparam("dataset_id", type_=Uuid()),
    Dataset.account_id == bindparam("account_id", type_=Uuid()),
)


class DataPlane:
    """Stateless per request; holds only caches of values that never change."""

    def __init__(self, master: MasterKey, *, skew_seconds: int, dialect: Dialect) -> None:
        self.master, self.skew = master, skew_seconds
        self._lookup = DriverQuery(_LOOKUP, dialect, Caller)
        self._secrets: Immutable[uuid.UUID, bytes] = Immutable(100_000)
        self._keys: Immutable[tuple[uuid.UUID, int], bytes] = Immutable(100_000)
        self._definitions: Immutable[uuid.UUID, dict[str, Any]] = Immutable(10_000)
        # A dataset key version wrapped to a key's public key: both never change, so the
        # RSA-OAEP ciphertext can be handed out again (same plaintext, same recipient).
        self._wrapped: Immutable[tuple[str, uuid.UUID, int], str] = Immutable(200_000)
        # The serialised def_keys answer up to its "retrieved" time, per (recipient, dataset,
        # current key number, name as asked): every part of it is one of the values above.
        self._def_keys: Immutable[tuple[str, uuid.UUID, int, str], bytes] = Immutable(10_000)
        # A CA never changes once made; a certificate's signature check is done once per
        # account (the check holds only for the account whose CA was checked).
        self._authorities: Immutable[uuid.UUID, x509.Certificate] = Immutable(10_000)
        self._certificates: Immutable[tuple[uuid.UUID, bytes], certificates.ClientCertificate] = (
            Immutable(20_000)
        )

    # --- authentication -----------------------------------------------------------------

    def authenticate(
        self, reader: Reader, request: signatures.SignedRequest, dataset_name: str | None = None
    ) -> tuple[Caller, DatasetRef | None]:
        """Verify the signature; with ``dataset_name``, also resolve that dataset and ask the
        access rule, in the same single query, asked of ``reader`` on every call
        (``Database.reader()``: on SQLite it reuses an answer only while the database is
        unchanged, on PostgreSQL for at most 50 ms or until this process commits)."""
        header = request.headers.get("signature")
        if header is None:
            raise signatures.SignatureError("no Signature header")
        params = signatures.parse_signature_header(header)
        signatures.check_structure(params, request, now=int(time.time()), skew=self.skew)
        name_key = names.name_key(dataset_name) if dataset_name else ""
        row = reader.first(self._lookup, {"papi": params.key_id, "name_key": name_key})
        if row is None:
            with contextlib.suppress(signatures.SignatureError):
                signatures.verify_mac(params, request, _UNKNOWN_KEY_SECRET)
            raise signatures.SignatureError(f"unknown key id {params.key_id!r}")
        secret = self._secrets.get_or_load(
            row.key_id,
            lambda: self.master.unwrap(row.wrapped_signing_key, signing_key_context(row.key_id)),
        )
        signatures.verify_mac(params, request, secret)
        if not row.enabled:
            raise Unauthenticated(f"API key {params.key_id} is disabled")
        if row.suspended:
            raise Unauthenticated(f"API key {params.key_id} is suspended by an admin")
        if dataset_name is None:
            return row, None
        if row.dataset_id is None or not row.allowed:
            raise no_access(row, dataset_name)
        return row, DatasetRef(
            row.dataset_id, row.dataset_name, row.dataset_type, row.current_key_number
        )

    # --- shared -------------------------------------------------------------------------

    def _dataset_key(self, db: Connection, dataset_id: uuid.UUID, number: int) -> bytes:
        def load() -> bytes:
            wrapped = db.scalar(_KEY_VERSION, {"dataset_id": dataset_id, "key_number": number})
            if wrapped is None:
                raise NotFound(f"key number {number} does not exist")
            return self.master.unwrap(wrapped, key_context(dataset_id, number))

        return self._keys.get_or_load((dataset_id, number), load)

    def _definition(self, connect: Connect, dataset: DatasetRef) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            return dict(connect().scalar(_DEFINITION, {"dataset_id": dataset.id}) or {})

        return self._definitions.get_or_load(dataset.id, load)

    def _certificate(
        self, connect: Connect, caller: Caller, payload_cert: str
    ) -> certificates.ClientCertificate:
        """The presented certificate, checked against the caller's account CA, its validity
        and the signing key it is bound to."""
        pem = _base64(payload_cert, "payload_cert")
        digest = hashlib.sha256(pem).digest()

        def authority() -> x509.Certificate:
            stored = connect().scalar(_ACCOUNT_CA, {"account_id": caller.account_id})
            if stored is None:  # not cached: the account may get its CA later
                raise certificates.CertificateError(
                    "the certificate (payload_cert) was not issued by this account"
                )
            return certificates.load_ca_certificate(stored)

        def verify() -> certificates.ClientCertificate:
            ca = self._authorities.get_or_load(caller.account_id, authority)
            return certificates.verify_client_certificate(pem, ca)

        try:
            verified = self._certificates.get_or_load((caller.account_id, digest), verify)
            verified.check(access_key_id=caller.access_key_id, now=datetime.now(UTC))
        except certificates.CertificateError as exc:
            raise Unauthenticated(str(exc)) from exc
        return verified

    def _recipient(
        self, connect: Connect, caller: Caller, payload_cert: str | None
    ) -> wrapping.Recipient:
        certificate = None
        if payload_cert is not None:
            certificate = self._certificate(connect, caller, payload_cert)
        return wrapping.recipient(
            key_id=caller.key_id,
            key_name=caller.name,
            public_key_pem=caller.public_key_pem,
            encrypted_private_key_pem=caller.encrypted_private_key_pem,
            certificate=certificate,
        )

    def _wrapped_version(
        self, connect: Connect, to: wrapping.Recipient, dataset_id: uuid.UUID, number: int
    ) -> str:
        """A structured key version wrapped for the caller (RSA work done once per pair)."""
        return self._wrapped.get_or_load(
            (to.cache_id, dataset_id, number),
            lambda: wrapping.wrap(self._dataset_key(connect(), dataset_id, number), to.public_key),
        )

    # --- structured -----------------------------------------------------------------------

    @staticmethod
    def _structured(dataset: DatasetRef | None, name: str) -> DatasetRef:
        if dataset is None:  # authenticate() resolves the name or refuses the call first
            raise Forbidden(f"no access to dataset {name}")
        if dataset.type != "structured":
            raise BadRequest(
                f"dataset {name} is unstructured; structured (format-preserving) calls need "
                "a structured dataset"
            )
        return dataset

    def ffs(self, connect: Connect, dataset: DatasetRef | None, name: str) -> dict[str, Any]:
        """GET /api/v0/ffs: the definition, with ``name`` exactly as requested."""
        dataset = self._structured(dataset, name)
        return {**self._definition(connect, dataset), "name": name}

    def fpe_key(
        self,
        connect: Connect,
        caller: Caller,
        dataset: DatasetRef | None,
        name: str,
        key_number: int | None,
        payload_cert: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/v0/fpe/key: the current key, or exactly key ``key_number``."""
        dataset = self._structured(dataset, name)
        number = dataset.current_key_number if key_number is None else key_number
        if not 0 <= number <= dataset.current_key_number:
            raise NotFound(f"dataset {name} has no key number {number}")
        to = self._recipient(connect, caller, payload_cert)
        return {
            **_private_key_field(to),
            "wrapped_data_key": self._wrapped_version(connect, to, dataset.id, number),
            "key_number": str(number),
        }

    def def_keys(
        self,
        connect: Connect,
        caller: Caller,
        dataset: DatasetRef | None,
        name: str,
        payload_cert: str | None = None,
    ) -> bytes:
        """GET /api/v0/fpe/def_keys: every key of the dataset, index = key number, as the
        JSON body. Only ``retrieved`` differs between two answers to the same key, dataset
        and key versions, so the rest is serialised once (``connect`` is called only then)."""
        dataset = self._structured(dataset, name)
        to = self._recipient(connect, caller, payload_cert)

        def serialise() -> bytes:
            keys = [
                self._wrapped_version(connect, to, dataset.id, n)
                for n in range(dataset.current_key_number + 1)
            ]
            entry = {
                **_private_key_field(to),
                "keys": keys,
                "current_key_number": dataset.current_key_number,
                "ffs": {**self._definition(connect, dataset), "name": name},
            }
            # {"<name>": {…}} without its two closing braces, ready for "retrieved"
            return json.dumps({name: entry})[:-2].encode() + b', "retrieved": '

        head = self._def_keys.get_or_load(
            (to.cache_id, dataset.id, dataset.current_key_number, name), serialise
        )
        return head + repr(time.time()).encode() + b"}}"

    # --- unstructured ---------------------------------------------------------------------

    def _unstructured_for(self, db: Connection, caller: Caller) -> DatasetRef:
        """The dataset a request that names none encrypts under: the key's default if it may use
        it, else its only unstructured dataset; several without a default, or none, is 403."""
        usable = [
            d for d in access.usable_dataset_rows(db, caller.key_id) if d.type == "unstructured"
        ]
        chosen = [d for d in usable if d.id == caller.default_unstructured_dataset_id]
        if len(usable) == 1 or chosen:
            d = (chosen or usable)[0]
            return DatasetRef(d.id, d.name, d.type, d.current_key_number)
        if not usable:
            raise Forbidden(
                f"API key {caller.access_key_id} has no access to any unstructured dataset; "
                "grant it one (directly or through a dataset group)"
            )
        choices = ", ".join(d.name for d in usable)
        fix = (
            "arrange its directory groups' dataset groups so it reaches only one"
            if caller.auto_provisioned
            else f"choose one with `keystead api-key set-default-dataset {caller.access_key_id} "
            "DATASET`"
        )
        raise Forbidden(
            f"API key {caller.access_key_id} may use several unstructured datasets ({choices}) "
            f"and has no default among them; {fix}"
        )

    def new_data_key(
        self, db: Connection, caller: Caller, uses: Any, payload_cert: str | None = None
    ) -> dict[str, Any]:
        """POST /api/v0/encryption/key."""
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= MAX_USES:
            raise BadRequest(f"'uses' must be an integer from 1 to {MAX_USES}")
        to = self._recipient(lambda: db, caller, payload_cert)
        dataset = self._unstructured_for(db, caller)
        data_key = secrets.token_bytes(edk.DATA_KEY_BYTES)
        header = edk.EdkHeader(dataset.id, dataset.current_key_number, caller.key_id)
        blob = edk.seal(data_key, header, self._dataset_key(db, dataset.id, header.key_number))
        return {
            **_private_key_field(to),
            "wrapped_data_key": wrapping.wrap(data_key, to.public_key),
            "encrypted_data_key": base64.b64encode(blob).decode(),
            "key_fingerprint": hashlib.sha256(blob).hexdigest()[:32],
            "encryption_session": secrets.token_hex(16),
            "max_uses": uses,
            "security_model": {"algorithm": edk.ALGORITHM, "enable_data_fragmentation": False},
        }

    def recover_data_key(
        self, db: Connection, caller: Caller, encrypted: Any, payload_cert: str | None = None
    ) -> dict[str, Any]:
        """POST /api/v0/decryption/key: access is checked for the dataset the EDK names."""
        to = self._recipient(lambda: db, caller, payload_cert)
        if not isinstance(encrypted, str) or not encrypted:
            raise BadRequest("'encrypted_data_key' must be a base64 string")
        blob = _base64(encrypted, "encrypted_data_key")
        header = edk.read_header(blob)
        row = db.execute(
            _EDK_DATASET, {"dataset_id": header.dataset_id, "account_id": caller.account_id}
        ).first()
        if row is None or not access.may_use(db, caller.key_id, header.dataset_id):
            name = row.name if row is not None else "named by this encrypted_data_key"
            raise no_access(caller, name)
        if header.key_number > row.current_key_number:
            raise edk.EdkError("encrypted_data_key names a key version that does not exist")
        data_key = edk.open_sealed(
            blob, self._dataset_key(db, header.dataset_id, header.key_number)
        )
        return {
            **_private_key_field(to),
            "wrapped_data_key": wrapping.wrap(data_key, to.public_key),
            "key_fingerprint": hashlib.sha256(blob).hexdigest()[:32],
            "encryption_session": secrets.token_hex(16),
        }
