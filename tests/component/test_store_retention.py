"""Retention: old rows go, a small batch at a time; recent ones, and calls still up, stay.

``RetentionContract`` runs on SQLite here and on PostgreSQL in the integration tier,
with rows backdated in the database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gevent
import pytest
from sqlalchemy import Engine, func, select

from callworker.store import Batch, call_events, get_call, get_cdr, make_engine, migrate, write_batch
from callworker.store.models import CALLS, COMMANDS, ERASURES, FLASHCALL_ORDERS, USAGE
from callworker.store.retention import Retention, Sweeper, sweep
from callworker.store.usage import Delta, placed
from tests.component.test_store import call_row, cdr_row, command_row, event_row
from tests.component.test_store_privacy import order_row
from tests.security.test_secrets import LogWatch

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=30)


def a_call(engine: Engine, at: datetime, *, status: str = "completed") -> str:
    call_id = str(uuid.uuid4())
    write_batch(engine, Batch(
        calls=[call_row(call_id, status=status, initiated_at=at, updated_at=at)],
        events=[event_row(call_id, 1, occurred_at=at), event_row(call_id, 2, occurred_at=at)],
        cdrs=[cdr_row(call_id, start_stamp=at)] if status == "completed" else [],
    ))
    return call_id


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


class RetentionContract:
    def test_calls_past_the_age_go_with_their_events_and_cdrs(self, engine: Engine) -> None:
        old = [a_call(engine, OLD) for _ in range(5)]
        recent = a_call(engine, RECENT)
        up = a_call(engine, OLD, status="answered")  # older than any age, but not ended
        deleted = sweep(engine, Retention(days=365, batch=2, pause_s=0), now=NOW)
        assert deleted["calls"] == 5
        for call_id in old:
            assert get_call(engine, "acme", call_id) is None and get_cdr(engine, "acme", call_id) is None
            assert call_events(engine, call_id) == []
        assert get_call(engine, "acme", recent) is not None and len(call_events(engine, recent)) == 2
        assert get_cdr(engine, "acme", recent) is not None
        assert get_call(engine, "acme", up) is not None and len(call_events(engine, up)) == 2
        assert sweep(engine, Retention(days=365), now=NOW)["calls"] == 0
        # A shorter age takes the month-old call too.
        assert sweep(engine, Retention(days=7), now=NOW)["calls"] == 1

    def test_closed_orders_commands_idle_counts_and_read_erasures_go(self, engine: Engine) -> None:
        old_order, open_order, new_order = (str(uuid.uuid4()) for _ in range(3))
        write_batch(engine, Batch(
            orders=[order_row(old_order, "acme", "+15550001111", created_at=OLD),
                    order_row(open_order, "acme", "+15550002222", created_at=OLD, status="open"),
                    order_row(new_order, "acme", "+15550003333", created_at=RECENT)],
            events=[event_row(old_order, 1, type="flashcall.created")],
        ))
        write_batch(engine, Batch(commands=[
            command_row(str(uuid.uuid4()), created_at=NOW - timedelta(days=8), updated_at=NOW),
            command_row(str(uuid.uuid4()), created_at=NOW - timedelta(days=8), updated_at=NOW),
            command_row(str(uuid.uuid4()), created_at=NOW - timedelta(days=6), updated_at=NOW),
        ]))
        idle = NOW - timedelta(days=3)
        write_batch(engine, Batch(usage=[placed(("acme", "gone"), 1, idle, {}), Delta(("acme", "gone"), ended=1),
                                         placed(("acme", "up"), 1, idle, {}),
                                         placed(("acme", "today"), 1, NOW, {})]))
        with engine.begin() as conn:  # backdated: "gone" and "up" last counted a call three days ago
            conn.execute(USAGE.update().where(USAGE.c.user_id != "today").values(updated_at=idle))
            conn.execute(USAGE.update().where(USAGE.c.user_id == "today").values(updated_at=NOW))
        with engine.begin() as conn:
            conn.execute(ERASURES.insert(), [
                {"tenant": "acme", "token": "erased:old", "created_at": NOW - timedelta(days=2)},
                {"tenant": "acme", "token": "erased:new", "created_at": NOW},
            ])
        deleted = sweep(engine, Retention(days=365, batch=1, pause_s=0), now=NOW)
        assert deleted == {"calls": 0, "flashcall_orders": 1, "commands": 2, "usage": 1, "erasures": 1}
        with engine.connect() as conn:
            orders = set(conn.execute(select(FLASHCALL_ORDERS.c.order_id)).scalars())
            users = set(conn.execute(select(USAGE.c.user_id)).scalars())
            tokens = set(conn.execute(select(ERASURES.c.token)).scalars())
        assert orders == {open_order, new_order}
        assert call_events(engine, old_order) == []
        assert count(engine, COMMANDS) == 1
        assert users == {"up", "today"}  # "up" still has a call up: its count stays
        assert tokens == {"erased:new"}


class TestRetentionSqlite(RetentionContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        url = f"sqlite:///{tmp_path / 'retention.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_a_long_sweep_lets_the_writers_in_between_its_batches(tmp_path: Path) -> None:
    """On SQLite one connection serves every writer: the sweep must hand it back batch by batch."""
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        rows = [call_row(str(uuid.uuid4()), status="completed", initiated_at=OLD, updated_at=OLD) for _ in range(2000)]
        write_batch(engine, Batch(calls=rows))
        seen_by_writer: list[int] = []

        def write() -> None:  # a writer (the journal) that comes while the sweep runs
            for _ in range(10):
                a_call(engine, RECENT)
            seen_by_writer.append(count(engine, CALLS))

        writer = gevent.spawn(write)
        deleted = sweep(engine, Retention(days=365, batch=50, pause_s=0.01), now=NOW)
        writer.get(timeout=10)
        assert deleted["calls"] == 2000
        # The writer ran at the sweep's first pause, not after it: most old rows were still there.
        assert seen_by_writer[0] >= 2000 - 50 + 10
        assert count(engine, CALLS) == 10
    finally:
        engine.dispose()


def test_the_background_sweeper_deletes_and_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweeper.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    watch = LogWatch()
    logger = logging.getLogger("callworker.retention")
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    sweeper = Sweeper(engine, Retention(days=30), interval_s=3600, first_after_s=0)
    try:
        old = a_call(engine, datetime.now(UTC) - timedelta(days=31))
        kept = a_call(engine, datetime.now(UTC) - timedelta(days=29))
        sweeper.start()
        record = watch.wait_for(lambda r: "retention deleted" in r.getMessage())
        assert "1 calls" in record.getMessage()
        assert get_call(engine, "acme", old) is None and get_call(engine, "acme", kept) is not None
    finally:
        sweeper.stop()
        logger.removeHandler(watch)
        engine.dispose()
