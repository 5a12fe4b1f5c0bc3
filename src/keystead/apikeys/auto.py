"""Auto-provisioned keys: made, kept in step and deleted with their directory user.

The provisioning rules (``directory/service.py``) decide when; this is how, like every
other key write, under ``apikeys/``. Each is one Core statement in the caller's
transaction (directory sync writes thousands of them: no unit of work). An
auto-provisioned key has no RSA key pair: it works with certificates from the SSO
exchange.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam

from keystead.apikeys import credentials
from keystead.apikeys.service import signing_key_context
from keystead.crypto.masterkey import MasterKey
from keystead.storage.models import ApiKey

_KEYS = cast(Table, ApiKey.__table__)
_INSERT = _KEYS.insert()
_FOLLOW = _KEYS.update().where(_KEYS.c.directory_user_id == bindparam("user_id"))
_DELETE = (
    _KEYS.delete()
    .where(_KEYS.c.directory_user_id == bindparam("user_id"))
    .returning(_KEYS.c.access_key_id)
)


def create(
    connection: Connection,
    *,
    account_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    enabled: bool,
    master: MasterKey,
    now: datetime,
) -> str:
    """The user's key, named after it and enabled iff it is active; its public id."""
    key_id, access_key_id = uuid.uuid4(), credentials.new_access_key_id()
    secret = credentials.new_signing_key().encode()
    connection.execute(
        _INSERT,
        {
            "id": key_id,
            "account_id": account_id,
            "access_key_id": access_key_id,
            "name": name,
            "enabled": enabled,
            "auto_provisioned": True,
            "directory_user_id": user_id,
            "wrapped_signing_key": master.wrap(secret, signing_key_context(key_id)),
            "created_at": now,
            "updated_at": now,
        },
    )
    return access_key_id


def follow(
    connection: Connection, *, user_id: uuid.UUID, name: str, enabled: bool, now: datetime
) -> None:
    """The key's name and state follow the user's. A suspension is not the directory's to
    lift: it is another column, untouched here."""
    connection.execute(
        _FOLLOW, {"user_id": user_id, "name": name, "enabled": enabled, "updated_at": now}
    )


def delete(connection: Connection, *, user_id: uuid.UUID) -> str | None:
    """The user's key deleted; its public id, if it had one."""
    found: str | None = connection.execute(_DELETE, {"user_id": user_id}).scalar()
    return found
