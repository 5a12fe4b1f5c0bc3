"""Guards between the operator commands: every command that opens the embedded database
holds the service lock (so `keystead restore` cannot replace the file under a rotation or
a prune), and a copy holding secrets under a key the configured ones lack is refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from keystead.cli.context import CliContext
from keystead.crypto.masterkey import MasterKey
from keystead.errors import Conflict
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage import backup as backups
from keystead.storage import service_lock
from tests import factories as f
from tests.support.accounts import FirstAccount

pytestmark = pytest.mark.engines("sqlite")


def test_a_command_holds_the_service_lock_while_it_has_the_database_open(
    tmp_path: Path, master_key: MasterKey
) -> None:
    # An installation of its own: the suite's shared server holds the lock on the shared one.
    own = Settings(data_dir=tmp_path / "data", master_key=master_key.to_base64())
    database = backups.database_file(own, "restore")
    command = CliContext(settings=own, account_ref=None)
    assert command.runtime is not None  # opened, as any command that reads or writes
    with pytest.raises(Conflict, match="uses the database"), service_lock.exclusive(database):
        pass
    command.close()
    with service_lock.exclusive(database):  # free once the command ended
        pass


def test_a_copy_with_secrets_under_an_unknown_key_is_refused(
    settings: Settings, runtime: Runtime, first_account: FirstAccount, tmp_path: Path
) -> None:
    """As a copy taken in the middle of a key rotation would be: the check value opens with
    the configured key, one dataset key only with a key nobody configured."""
    retired = MasterKey.generate()
    with runtime.db.write() as session:
        f.dataset(session, uuid.UUID(first_account.customer_id), "SSN", retired)
    database = backups.database_file(settings, "backup")
    target = tmp_path / "copy.db"
    with pytest.raises(backups.CopyRefused, match=retired.fingerprint):
        backups.back_up(database, target, runtime.master, force=False)
    assert not target.exists()
