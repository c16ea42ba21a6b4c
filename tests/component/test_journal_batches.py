"""How the journal groups operations into commits, and writes a batch again after a cut (SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gevent.event
import pytest
from pytest_mock import MockerFixture
from sqlalchemy import Engine

from callworker.bus.relay import OutboxItem
from callworker.calls.journal import Journal, Unit
from callworker.errors import StoreUnavailable
from callworker.store import Batch, make_engine, migrate, pending_outbox, write_batch


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

    def write(engine: Engine, batch: Batch) -> list[int]:
        attempts.append(batch)
        if len(attempts) == 1 and not after_commit:
            raise StoreUnavailable("connection refused")
        ids = write_batch(engine, batch)
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
