"""Opening an installation: data directory, master key, database, migrations.

``open_runtime`` is what both ``keystead serve`` and every CLI command call first. On the
embedded default it creates whatever is missing (data directory, SQLite file, master
key file); elsewhere it refuses to guess and says which setting is missing.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from keystead.crypto.masterkey import (
    MasterKey,
    UnwrapError,
    key_id_of,
    read_key_file,
    write_key_file,
)
from keystead.errors import ConfigurationError, Conflict
from keystead.masterkey_rotation import CHECK_CONTEXT, CHECK_NAME, CHECK_VALUE
from keystead.scim import log as provisioning_log
from keystead.settings import Settings
from keystead.storage import migrate
from keystead.storage.engine import make_engine
from keystead.storage.models import Meta
from keystead.storage.session import Database

if TYPE_CHECKING:  # httpx, loaded by the first fetch: most CLI commands never make one
    from keystead.idp.outbound import Fetcher


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    master: MasterKey

    @functools.cached_property
    def outbound(self) -> Fetcher:
        """Every fetch made on an account's behalf goes through this (``idp.outbound``)."""
        return outbound_fetcher(self.settings)

    @functools.cached_property
    def sign_in_log(self) -> provisioning_log.Batched:
        """The sign-in exchanges' provisioning-log entries, written in batches."""
        return provisioning_log.Batched(self.db)

    def close(self) -> None:
        if "sign_in_log" in self.__dict__:
            self.sign_in_log.close()  # what is still pending
        self.db.dispose()


def outbound_fetcher(settings: Settings) -> Fetcher:
    """The fetcher the outbound policy ``settings`` describe (``idp.outbound``)."""
    from keystead.idp.outbound import Fetcher, OutboundPolicy

    return Fetcher(
        OutboundPolicy(
            allow_private=settings.idp_allow_private_addresses,
            deadline_seconds=settings.idp_http_timeout_seconds,
        )
    )


def load_master_key(settings: Settings, *, create: bool) -> MasterKey:
    """The configured master key; generates a key file on the embedded default.

    Several keys (a rotation under way) are held when the file or the variable lists
    several; one read from a file follows the file (``MasterKey``), so a rotation's new key
    reaches a running process.
    """
    if settings.master_key is not None:
        secret = settings.master_key.get_secret_value()
        return MasterKey.from_base64(secret, source="KEYSTEAD_MASTER_KEY")
    path = settings.effective_master_key_file
    if path.exists() or settings.master_key_file is not None:
        return read_key_file(path)
    if not (create and settings.is_embedded):
        raise ConfigurationError(
            "no master key: set KEYSTEAD_MASTER_KEY (base64 of 32 random bytes) or "
            f"KEYSTEAD_MASTER_KEY_FILE; looked for {path}"
        )
    write_key_file(path, MasterKey.generate())
    key = read_key_file(path)  # follows the file, as one read at start does
    print(
        "\n"
        "!!! Keystead generated a new master key: " + str(path.resolve()) + "\n"
        "!!! Every stored secret and dataset key is wrapped under it. Back it up apart\n"
        "!!! from the database: without it the data cannot be decrypted.\n",
        file=sys.stderr,
    )
    return key


def _check_master_key(db: Database, master: MasterKey) -> None:
    """Bind the database to one master key, refusing any other with a clear error. During a
    rotation the keyring holds both keys and either may be the bound one."""
    try:
        with db.write() as session:
            stored = stored_check_value(session)
            if stored is None:
                session.add(Meta(name=CHECK_NAME, value=master.wrap(CHECK_VALUE, CHECK_CONTEXT)))
                return
    except Conflict:  # another process initialised it at the same moment
        with db.read() as session:
            stored = session.scalars(select(Meta.value).where(Meta.name == CHECK_NAME)).one()
    check_value_opens(stored, master)


def stored_check_value(session: Session) -> bytes | None:
    """The database's master-key check value (None before the first start recorded one)."""
    return session.scalar(select(Meta.value).where(Meta.name == CHECK_NAME))


def check_value_opens(stored: bytes, master: MasterKey) -> None:
    """Refuse, naming both key ids, unless ``master`` opens the check value ``stored``."""
    try:
        ok = master.unwrap(stored, CHECK_CONTEXT) == CHECK_VALUE
    except UnwrapError:
        ok = False
    if not ok:
        key_id = key_id_of(stored)
        stored_id = key_id.hex() if key_id is not None else "unknown"
        raise ConfigurationError(
            f"the master key (id {master.fingerprint}) does not open this database, which "
            f"was set up with master key id {stored_id}; supply that key "
            "(KEYSTEAD_MASTER_KEY or KEYSTEAD_MASTER_KEY_FILE)"
        )


def open_runtime(settings: Settings, *, create: bool = True) -> Runtime:
    """Open (and on the embedded default, create) the installation ``settings`` describe."""
    if settings.is_embedded and create:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    master = load_master_key(settings, create=create)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate.upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
        raise ConfigurationError(f"cannot open the database: {reason}") from exc
    if settings.is_embedded and engine.url.database:
        # The data directory is private already; the database file is too.
        os.chmod(engine.url.database, 0o600)
    db = Database(engine, keep_seconds=settings.lookup_keep_ms / 1000)
    try:
        _check_master_key(db, master)
    except Exception:
        db.dispose()
        raise
    return Runtime(settings, db, master)
