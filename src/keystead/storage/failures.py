"""The one map from the database's failures to domain errors.

A concurrent write that breaks a uniqueness rule (two SCIM ``POST /Users`` with the same
``userName`` on PostgreSQL, both past the service's own check) is a :class:`Conflict`, and a
database that cannot be reached, or stayed locked past the wait, is :class:`Unavailable`;
every surface renders those as it renders any domain error (409, 503), so none of them
needs to know the driver's exceptions. Units of work (``storage.session``) apply it; code
that holds a bare connection past one (the data plane's lookups) passes its failures to
:func:`reraise_as_domain`.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keystead.errors import Conflict, KeysteadError, Unavailable
from keystead.logs import get_logger

log = get_logger("keystead.storage")

CONCURRENT_CHANGE = (
    "the change collides with another change made at the same moment (the same name or id); "
    "read the current state and retry"
)
UNREACHABLE = "the database cannot be reached or is busy; nothing was changed, try again shortly"

_INTEGRITY = (IntegrityError, sqlite3.IntegrityError)
_UNREACHABLE = (
    PoolTimeout,  # every pooled connection busy past the pool's wait
    OperationalError,
    InterfaceError,
    sqlite3.OperationalError,
)

# SQLite reports programming errors as OperationalError too; only these are an outage.
_SQLITE_UNREACHABLE = re.compile(r"locked|busy|unable to open|disk|read-?only", re.IGNORECASE)


def _psycopg() -> tuple[tuple[type[Exception], ...], ...]:
    """psycopg's exceptions: its uniqueness violation, the two that end one of two colliding
    transactions (nothing of it applied, trying again succeeds: OperationalErrors, but not
    outages), and its outages. Empty before psycopg is loaded, when none of them can exist:
    a process on SQLite (every CLI command on the embedded default) never imports it."""
    if "psycopg" not in sys.modules:
        return (), (), ()
    import psycopg  # loaded already: a dictionary lookup
    from psycopg import errors

    return (
        (psycopg.IntegrityError,),
        (errors.DeadlockDetected, errors.SerializationFailure),
        (psycopg.OperationalError, psycopg.InterfaceError),
    )


def as_domain(exc: BaseException) -> KeysteadError | None:
    """The domain error a database failure stands for; None for anything else (a bug)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    pg_integrity, pg_collisions, pg_unreachable = _psycopg()
    if isinstance(exc, _INTEGRITY + pg_integrity) or isinstance(orig, pg_collisions):
        return Conflict(CONCURRENT_CHANGE)
    if isinstance(orig, sqlite3.OperationalError) and not _SQLITE_UNREACHABLE.search(str(orig)):
        return None  # "no such table" and the like: a bug, not an outage
    if isinstance(exc, _UNREACHABLE + pg_unreachable) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        # The driver's first line names the cause (refused, timed out, locked), never values.
        log.warning("database_unavailable", error=str(orig).strip().split("\n", 1)[0][:200])
        return Unavailable(UNREACHABLE)
    return None


def reraise_as_domain(exc: Exception) -> NoReturn:
    """Raise the domain error ``exc`` stands for, else ``exc`` itself (not a database failure)."""
    domain = as_domain(exc)
    if domain is None:
        raise exc
    raise domain from exc


class _Translated:
    """Database failures inside the block leave it as domain errors. A class rather than
    a generator-based context manager: it is entered on every database call."""

    def __enter__(self) -> None: ...

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        # Anything else leaves untouched, with its own traceback.
        if isinstance(exc, Exception) and not isinstance(exc, KeysteadError):
            domain = as_domain(exc)
            if domain is not None:
                raise domain from exc


TRANSLATED = _Translated()
