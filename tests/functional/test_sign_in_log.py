"""Sign-in exchanges' provisioning-log entries, written in batches (``provisioning_log.Batched``),
and the one write a sign-in still makes itself: the first sign-in's object-id binding."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from keystead.blocking import no_waiting
from keystead.errors import Unavailable
from keystead.idp.keysets import KeySets
from keystead.idp.verify import VerifiedToken
from keystead.runtime import Runtime
from keystead.scim import log as provisioning_log
from keystead.sso.exchange import Exchange, SignInRefused
from keystead.storage.engine import make_engine
from keystead.storage.models import Account, DirectoryUser, ProvisioningEvent
from keystead.storage.session import Database
from tests import factories as f
from tests.support.fake_entra import FakeEntra
from tests.support.signin import provision, signin_account
from tests.support.writers import writer_held


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(account_id: uuid.UUID, name: str = "dana@contoso.example") -> dict[str, Any]:
    return provisioning_log.entry(
        account_id=account_id,
        method="POST",
        operation=provisioning_log.SIGN_IN,
        resource_type="User",
        resource_id=None,
        resource_name=name,
        status=200,
        detail="signed in",
    )


def logged(runtime: Runtime, account_id: uuid.UUID | None = None) -> list[str | None]:
    with runtime.db.read() as s:
        query = select(ProvisioningEvent.resource_name).order_by(ProvisioningEvent.id)
        if account_id is not None:
            query = query.where(ProvisioningEvent.account_id == account_id)
        return list(s.scalars(query))


def new_account(runtime: Runtime) -> uuid.UUID:
    with runtime.db.write() as s:
        return f.account(s)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def batched(runtime: Runtime, clock: Clock) -> Iterator[provisioning_log.Batched]:
    # The writer thread wakes every `every` seconds of real time: an hour keeps it out.
    log = provisioning_log.Batched(runtime.db, every=3600, clock=clock)
    yield log
    log.close()


def test_entries_wait_until_the_oldest_is_due_then_go_in_one_batch(
    runtime: Runtime, batched: provisioning_log.Batched, clock: Clock
) -> None:
    account = new_account(runtime)
    for n in range(3):
        batched.add(entry(account, f"user{n}"))
        clock.now += 1000
    assert logged(runtime) == []
    clock.now = 3600  # the first entry's hour is up: the request that sees it writes all
    batched.add(entry(account, "user3"))
    assert logged(runtime) == ["user0", "user1", "user2", "user3"]
    batched.add(entry(account, "user4"))  # a new batch, due an hour from now
    assert logged(runtime) == ["user0", "user1", "user2", "user3"]


def test_close_writes_what_is_pending(runtime: Runtime, clock: Clock) -> None:
    account = new_account(runtime)
    log = provisioning_log.Batched(runtime.db, every=3600, clock=clock)
    log.add(entry(account))
    log.close()
    assert logged(runtime) == ["dana@contoso.example"]


def test_the_writer_thread_writes_entries_no_request_came_for(runtime: Runtime) -> None:
    account = new_account(runtime)
    log = provisioning_log.Batched(runtime.db, every=0.05)
    try:
        log.add(entry(account))
        for _ in range(250):  # written within moments; up to 5 s on a loaded machine
            if logged(runtime):
                break
            time.sleep(0.02)
        assert logged(runtime) == ["dana@contoso.example"]
    finally:
        log.close()


def test_a_due_batch_on_the_event_loop_waits_for_no_writer(
    runtime: Runtime, batched: provisioning_log.Batched, clock: Clock
) -> None:
    """Where waiting is not allowed (the event loop), a due batch that would wait (SQLite's
    write lock held, or any PostgreSQL statement) stays pending; nothing is lost or raised."""
    account = new_account(runtime)
    batched.add(entry(account, "first"))
    clock.now = 3600
    with writer_held(runtime.db), no_waiting():
        batched.add(entry(account, "second"))
    assert logged(runtime) == []
    batched.flush()
    assert logged(runtime) == ["first", "second"]


def test_entries_of_a_deleted_account_do_not_keep_the_others_out(
    runtime: Runtime, batched: provisioning_log.Batched
) -> None:
    gone, kept = new_account(runtime), new_account(runtime)
    batched.add(entry(gone, "gone"))
    batched.add(entry(kept, "kept"))
    with runtime.db.write() as s:
        s.execute(delete(Account).where(Account.id == gone))
    batched.flush()
    assert logged(runtime) == ["kept"]


def test_entries_wait_while_the_database_cannot_be_reached(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable database (a PostgreSQL port nobody listens on) keeps the entries for
    the next round, at most KEEP of them, dropping the oldest and saying so."""
    unreachable = Database(make_engine("postgresql+psycopg://keystead@127.0.0.1:9/none"))
    log = provisioning_log.Batched(unreachable, every=3600)
    log.KEEP = 2
    try:
        account = uuid.uuid4()
        for name in ("a", "b", "c"):
            log.add(entry(account, name))
        log.flush()
        log.flush()
        assert [e["resource_name"] for e in log._pending] == ["b", "c"]
    finally:
        log._pending.clear()
        log.close()
        unreachable.dispose()


def test_a_flush_returns_once_what_another_flush_is_writing_is_in(
    runtime: Runtime, batched: provisioning_log.Batched, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's listing flushes first: while another thread (the writer, a request) is
    writing the batch it took, that flush waits for it instead of finding nothing pending
    and listing without the entries being written."""
    account = new_account(runtime)
    batched.add(entry(account, "first"))
    entered, go_on = threading.Event(), threading.Event()
    write = batched._write

    def slow(batch: list[dict[str, Any]]) -> None:
        entered.set()
        assert go_on.wait(10)
        write(batch)

    monkeypatch.setattr(batched, "_write", slow)
    writing = threading.Thread(target=batched.flush)
    writing.start()
    assert entered.wait(10)
    seen: list[str | None] = []

    def list_log() -> None:  # as GET /provisioning/log does
        batched.flush()
        seen.extend(logged(runtime))

    admin = threading.Thread(target=list_log)
    admin.start()
    admin.join(0.3)
    go_on.set()
    writing.join()
    admin.join()
    assert seen == ["first"]


def test_a_flush_that_fails_unexpectedly_keeps_the_other_entries_and_raises_nothing(
    runtime: Runtime,
    batched: provisioning_log.Batched,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure that is no outage (a bug, an entry the database refuses) must not turn the
    sign-in that found the batch due into a 500, nor lose the batch, nor end the writer
    thread: the entries go in one by one, the refused one is left out."""
    account = new_account(runtime)
    write = batched._write

    def refusing(batch: list[dict[str, Any]]) -> None:
        if any(e["resource_name"] == "poison" for e in batch):
            raise RuntimeError("refused by the database")
        write(batch)

    monkeypatch.setattr(batched, "_write", refusing)
    batched.add(entry(account, "before"))
    batched.add(entry(account, "poison"))
    clock.now = 3600
    batched.add(entry(account, "after"))  # due: written here, without raising
    assert logged(runtime) == ["before", "after"]


def test_an_outage_while_writing_one_by_one_keeps_the_rest(
    runtime: Runtime, batched: provisioning_log.Batched, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a batch failed on a deleted account's entry, the database going away while
    the rest are written one by one leaves them pending rather than dropping them."""
    gone, kept = new_account(runtime), new_account(runtime)
    batched.add(entry(gone, "gone"))
    batched.add(entry(kept, "kept"))
    with runtime.db.write() as s:
        s.execute(delete(Account).where(Account.id == gone))
    write = batched._write

    def failing(batch: list[dict[str, Any]]) -> None:
        if len(batch) == 1 and batch[0]["resource_name"] == "kept":
            raise Unavailable("the database cannot be reached")
        write(batch)

    monkeypatch.setattr(batched, "_write", failing)
    batched.flush()
    assert [e["resource_name"] for e in batched._pending] == ["kept"]
    monkeypatch.setattr(batched, "_write", write)
    batched.flush()
    assert logged(runtime) == ["kept"]


def test_entries_added_after_close_are_written_at_once(runtime: Runtime, clock: Clock) -> None:
    """A sign-in still finishing on a thread when the server stops: no writer thread is
    left to write its entry later."""
    account = new_account(runtime)
    log = provisioning_log.Batched(runtime.db, every=3600, clock=clock)
    log.close()
    log.add(entry(account, "late"))
    assert logged(runtime) == ["late"]


# --- the first sign-in's binding ----------------------------------------------------------

USER = "dana.reyes@contoso.example"


def token(oid: str) -> VerifiedToken:
    return VerifiedToken(
        username=USER,
        username_claim="upn",
        object_id=oid,
        tenant_id=str(uuid.uuid4()),
        expires_at=2**40,
        claims={},
    )


def test_of_two_first_sign_ins_at_once_the_later_binding_is_refused(runtime: Runtime) -> None:
    """Both read the user unbound; the one that binds second finds the other's object id
    and is refused (it used to overwrite nothing and sign in anyway on PostgreSQL)."""
    with FakeEntra() as entra:
        account = signin_account(runtime, "http://127.0.0.1:9", entra)
        user = provision(runtime, account.account_id, USER)
        exchange = Exchange(
            runtime.master,
            KeySets(runtime.outbound, ttl=60, cooldown=1),
            runtime.sign_in_log,
            dialect=runtime.db.engine.dialect,
        )
        setup = exchange.setup(runtime.db, str(account.account_id))
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        bound_first = exchange.bind(runtime.db, setup, token(first))
        bound_second = exchange.bind(runtime.db, setup, token(second))
        assert bound_first.pin == first
        assert bound_second.pin == second
        exchange.settle(runtime.db, setup, bound_first, token(first))
        with pytest.raises(SignInRefused) as refused:
            exchange.settle(runtime.db, setup, bound_second, token(second))
        assert refused.value.reason == "object_id_mismatch"
        exchange.settle(runtime.db, setup, bound_first, token(first))  # the same person again
        with runtime.db.read() as s:
            pinned = s.scalar(
                select(DirectoryUser.pinned_object_id).where(DirectoryUser.id == user.user_id)
            )
            assert pinned == first
        # A user bound since it was read and then deleted is unknown, not a mismatch.
        with runtime.db.write() as s:
            s.execute(delete(DirectoryUser).where(DirectoryUser.id == user.user_id))
            assert s.scalar(select(func.count()).select_from(DirectoryUser)) == 0
        with pytest.raises(SignInRefused) as gone:
            exchange.settle(runtime.db, setup, bound_second, token(second))
        assert gone.value.reason == "unknown_user"


def test_a_backlog_goes_in_a_chunk_per_flush_on_the_event_loop(
    runtime: Runtime, batched: provisioning_log.Batched, clock: Clock
) -> None:
    """After an outage, a request on the event loop writes at most CHUNK entries, so that
    it does not hold every other request while thousands go in; the rest follow with the
    next requests, and a flush that may wait writes them all."""
    account = new_account(runtime)
    batched.CHUNK = 3
    for n in range(7):
        batched.add(entry(account, f"user{n}"))
    clock.now = 3600
    # On PostgreSQL every statement waits on the network: the loop writes none.
    chunk = 3 if runtime.db.dialect == "sqlite" else 0
    with no_waiting():
        batched.flush()
    assert len(logged(runtime)) == chunk
    with no_waiting():
        batched.add(entry(account, "user7"))  # due at once: the rest are as old
    assert len(logged(runtime)) == 2 * chunk
    batched.flush()
    assert logged(runtime) == [f"user{n}" for n in range(8)]
