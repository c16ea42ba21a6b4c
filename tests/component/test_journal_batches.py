"""How the journal groups operations into commits (SQLite, no FreeSWITCH needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gevent.event
import pytest

from callworker.bus.relay import OutboxItem
from callworker.calls.journal import Journal, Unit
from callworker.store import make_engine, migrate


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
