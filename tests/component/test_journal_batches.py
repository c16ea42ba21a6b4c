"""How the journal groups operations into commits, writes a batch again after a cut, and opens new calls (SQLite)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest
from pytest_mock import MockerFixture
from sqlalchemy import Engine

from callworker.bus.relay import OutboxItem
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.contract import utcnow
from callworker.errors import AlreadyStored, StoreUnavailable
from callworker.store import Batch, batch_stored, get_call, make_engine, migrate, pending_outbox, write_batch


class Notified:
    """What the journal hands to the relay, one list per commit."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.changed = gevent.event.Event()

    def __call__(self, items: list[OutboxItem]) -> None:
        self.batches.append([item.routing_key for item in items])
        self.changed.set()


@pytest.fixture
def lingering(tmp_path: Path) -> Iterator[tuple[Journal, Notified]]:
    """A journal whose event-only batches wait up to a minute for company."""
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    notified = Notified()
    journal = Journal(engine, node="fs1", notify=notified, linger=60.0)
    journal.start()
    yield journal, notified
    journal.stop()
    engine.dispose()


def publishing(routing_key: str) -> Callable[[Unit], str]:
    def op(unit: Unit) -> str:
        unit.publish("callworker.events", routing_key, b"{}")
        return routing_key
    return op


def test_a_command_ends_the_wait_of_lingering_events_and_shares_their_commit(
        lingering: tuple[Journal, Notified]) -> None:
    journal, notified = lingering
    journal.submit(publishing("event.1"))
    journal.submit(publishing("event.2"))
    assert journal.run(publishing("reply"), timeout=10) == "reply"  # not a minute later
    assert journal.batches == 1
    assert notified.batches == [["event.1", "event.2", "reply"]]


def test_a_batch_already_large_is_written_without_lingering(lingering: tuple[Journal, Notified]) -> None:
    journal, notified = lingering
    for index in range(200):  # all queued before the journal greenlet runs again
        journal.submit(publishing(f"event.{index}"))
    assert notified.changed.wait(10)  # not a minute later
    assert journal.batches == 1 and [len(batch) for batch in notified.batches] == [200]


class Rescans:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def cut_connection(mocker: MockerFixture, *, after_commit: bool) -> list[Batch]:
    """The journal's next write fails once, before or after its commit, as a cut would."""
    attempts: list[Batch] = []

    def write(engine: Engine, batch: Batch, *, fresh: bool = False) -> list[int]:
        attempts.append(batch)
        if len(attempts) == 1 and not after_commit:
            raise StoreUnavailable("connection refused")
        ids = write_batch(engine, batch, fresh=fresh)
        if len(attempts) == 1:
            raise StoreUnavailable("server closed the connection unexpectedly")
        return ids

    mocker.patch("callworker.calls.journal.write_batch", side_effect=write)
    return attempts


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[tuple[Journal, Notified, Rescans, Engine]]:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    notified, rescans = Notified(), Rescans()
    journal = Journal(engine, node="fs1", notify=notified, rescan=rescans)
    journal.start()
    yield journal, notified, rescans, engine
    journal.stop()
    engine.dispose()


@pytest.mark.parametrize(
    ("after_commit", "writes", "rescans_wanted", "notified_wanted"),
    [
        # Stored after all: the relay reads the rows itself, in id order, no second copy.
        (True, 1, 1, []),
        # Never reached the database: written again, and the relay told as usual.
        (False, 2, 0, [["reply"]]),
    ],
    ids=["commit-landed", "commit-never-sent"],
)
def test_a_batch_cut_off_from_its_answer_is_stored_once(
        plain: tuple[Journal, Notified, Rescans, Engine], mocker: MockerFixture, after_commit: bool,
        writes: int, rescans_wanted: int, notified_wanted: list[list[str]]) -> None:
    journal, notified, rescans, engine = plain
    attempts = cut_connection(mocker, after_commit=after_commit)
    assert journal.run(publishing("reply"), timeout=10) == "reply"
    assert len(attempts) == writes
    assert rescans.count == rescans_wanted and notified.batches == notified_wanted
    assert [row["routing_key"] for row in pending_outbox(engine, "fs1", 0, 10)] == ["reply"]


def opening(command_id: str, call_id: str | None = None) -> Callable[[Unit], str]:
    """An originate's operation: a new call, its command record, call.initiated and the reply."""
    record = CallRecord(call_id=call_id or str(uuid.uuid4()), tenant="acme", node="fs1",
                        direction="outbound", status=Status.INITIATED, initiated_at=utcnow())

    def op(unit: Unit) -> str:
        unit.open_call(record)
        unit.save_command(tenant="acme", command_id=command_id, command_type="originate", status="done",
                          reply={"ok": True}, call_id=record.call_id)
        unit.emit(record, "call.initiated", unit.now, {"status": "initiated"})
        unit.reply("amq.gen-caller", command_id, {"ok": True})
        return record.call_id
    return op


def test_a_new_call_is_committed_while_the_journals_batch_still_lingers(
        lingering: tuple[Journal, Notified]) -> None:
    journal, notified = lingering
    journal.submit(publishing("event.1"))  # waits up to a minute for company
    call_id = journal.open(opening(str(uuid.uuid4())), timeout=10)
    assert notified.batches == [[f"acme.call.initiated.{call_id}", "amq.gen-caller"]]
    assert journal.knows(call_id)
    assert journal.batches == 1  # the opening's own; the events' batch is still open


def test_an_opening_refused_as_seen_before_leaves_the_rest_of_its_group_committed(
        plain: tuple[Journal, Notified, Rescans, Engine]) -> None:
    journal, notified, _rescans, engine = plain
    seen = str(uuid.uuid4())
    journal.open(opening(seen), timeout=10)
    notified.batches.clear()
    # Queued together, before the journal's opener runs: one group, one statement first.
    openings = [gevent.spawn(journal.open, opening(command_id), timeout=10)
                for command_id in (str(uuid.uuid4()), seen, str(uuid.uuid4()))]
    gevent.joinall(openings, timeout=10)
    first, again, last = openings
    assert isinstance(again.exception, AlreadyStored)
    opened = [first.value, last.value]
    assert all(journal.knows(call_id) and get_call(engine, "acme", call_id) for call_id in opened)
    refused_call = [key for key in journal.calls if key not in opened]
    assert len(refused_call) == 1  # only the first opening of `seen`
    assert sorted(len(batch) for batch in notified.batches) == [2, 2]


def test_an_opening_written_again_after_a_lost_answer_is_not_refused_by_its_own_rows(
        plain: tuple[Journal, Notified, Rescans, Engine], mocker: MockerFixture) -> None:
    journal, notified, rescans, engine = plain
    attempts = cut_connection(mocker, after_commit=True)
    # The first look does not see the commit yet (it was still landing); the refusal proves it.
    looks: list[Batch] = []

    def stored(engine: Engine, batch: Batch) -> bool:
        looks.append(batch)
        return len(looks) > 1 and batch_stored(engine, batch)

    mocker.patch("callworker.calls.journal.batch_stored", side_effect=stored)
    call_id = journal.open(opening(str(uuid.uuid4())), timeout=10)
    assert (len(attempts), len(looks)) == (2, 2)
    assert rescans.count == 1 and notified.batches == []
    assert journal.knows(call_id) and get_call(engine, "acme", call_id) is not None
    assert len(pending_outbox(engine, "fs1", 0, 10)) == 2


def test_a_greenlet_woken_during_a_long_batch_runs_before_the_batch_ends(
        plain: tuple[Journal, Notified, Rescans, Engine]) -> None:
    journal = plain[0]
    ran: list[int] = []
    woken = gevent.event.Event()
    seen_at: list[int] = []

    def busy(index: int) -> Callable[[Unit], None]:
        def op(unit: Unit) -> None:
            woken.set()  # the command delivered meanwhile
            deadline = time.perf_counter() + 0.002  # computing, as a big batch of events does
            while time.perf_counter() < deadline:
                pass
            ran.append(index)
        return op

    def wait_for_the_batch() -> None:
        woken.wait(10)
        seen_at.append(len(ran))

    waiter = gevent.spawn(wait_for_the_batch)
    for index in range(5):
        journal.submit(busy(index))
    journal.run(lambda unit: None, timeout=10)
    waiter.join(timeout=10)
    assert ran == [0, 1, 2, 3, 4]
    assert seen_at and seen_at[0] < 5, "the woken greenlet waited for the whole batch"
