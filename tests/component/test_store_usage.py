"""The limits' counts in the database: added by the write that stores a call, refused over a cap.

``UsageContract`` runs on SQLite here and on PostgreSQL in the integration tier:
SQLite merges the counts in Python, PostgreSQL in SQL, and both must agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from callworker.store import Batch, get_call, make_engine, migrate, write_batch
from callworker.store.usage import (
    Delta,
    Usage,
    epoch_day,
    epoch_second,
    fold,
    is_over_limit,
    placed,
    read_usage,
)
from tests.component.test_store import call_row

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
ACME = ("acme", "")
BOB = ("acme", "bob")


def caps(minute: int | None = None, day: int | None = None, live: int | None = None) -> dict[str, int | None]:
    return {"minute_cap": minute, "day_cap": day, "live_cap": live}


def placing(*deltas: Delta, at: datetime = T0) -> Batch:
    """A fresh batch storing one new call with these usage deltas."""
    call_id = str(uuid.uuid4())
    return Batch(calls=[call_row(call_id, initiated_at=at, updated_at=at)], usage=list(deltas))


def place(engine: Engine, at: datetime, *keys: tuple[str, str], n: int = 1, **cap: int | None) -> Batch:
    batch = placing(*(placed(key, n, at, caps(**cap)) for key in keys), at=at)
    write_batch(engine, batch, fresh=True)
    return batch


def refused(engine: Engine, at: datetime, *keys: tuple[str, str], **cap: int | None) -> bool:
    batch = placing(*(placed(key, 1, at, caps(**cap)) for key in keys), at=at)
    try:
        write_batch(engine, batch, fresh=True)
    except IntegrityError as exc:
        assert is_over_limit(exc)
        assert get_call(engine, "acme", batch.calls[0]["call_id"]) is None  # nothing of it stored
        return True
    return False


def end(engine: Engine, at: datetime, *keys: tuple[str, str]) -> None:
    write_batch(engine, Batch(usage=[Delta(key, ended=1) for key in keys]))


class UsageContract:
    def test_a_placed_call_counts_for_its_tenant_and_user(self, engine: Engine) -> None:
        place(engine, T0, ACME, BOB)
        place(engine, T0 + timedelta(seconds=1), ACME)
        counts = read_usage(engine, [ACME, BOB, ("acme", "carol")])
        assert set(counts) == {ACME, BOB}
        acme, bob = counts[ACME], counts[BOB]
        assert (acme.live, acme.on_day(epoch_day(T0)), acme.in_window(epoch_second(T0) + 1)) == (2, 2, 2)
        assert (bob.live, bob.on_day(epoch_day(T0)), bob.in_window(epoch_second(T0) + 1)) == (1, 1, 1)
        end(engine, T0 + timedelta(seconds=2), ACME, BOB)
        counts = read_usage(engine, [ACME, BOB])
        assert (counts[ACME].live, counts[BOB].live) == (1, 0)
        assert counts[ACME].on_day(epoch_day(T0)) == 2  # ending gives back the live slot only
        end(engine, T0, BOB)
        assert read_usage(engine, [BOB])[BOB].live == 0  # never below zero

    def test_the_minute_slides_second_by_second(self, engine: Engine) -> None:
        place(engine, T0, ACME, minute=2)
        place(engine, T0 + timedelta(seconds=30), ACME, minute=2)
        assert refused(engine, T0 + timedelta(seconds=59), ACME, minute=2)
        place(engine, T0 + timedelta(seconds=60), ACME, minute=2)  # the first left the window
        assert refused(engine, T0 + timedelta(seconds=89), ACME, minute=2)
        place(engine, T0 + timedelta(seconds=90), ACME, minute=2)
        usage = read_usage(engine, [ACME])[ACME]
        assert usage.in_window(epoch_second(T0) + 90) == 2
        # A window with no calls for longer than the ring: every slot is stale.
        place(engine, T0 + timedelta(minutes=10), ACME, n=2, minute=2)
        assert refused(engine, T0 + timedelta(minutes=10, seconds=1), ACME, minute=2)

    def test_the_day_counts_per_utc_day(self, engine: Engine) -> None:
        late = T0.replace(hour=23, minute=59, second=59)
        place(engine, late, ACME, day=2)
        place(engine, late, ACME, day=2)
        assert refused(engine, late, ACME, day=2)
        place(engine, late + timedelta(seconds=1), ACME, day=2)  # midnight: a new day
        assert read_usage(engine, [ACME])[ACME].on_day(epoch_day(late) + 1) == 1

    def test_calls_not_yet_ended_are_capped_and_an_end_frees_a_slot(self, engine: Engine) -> None:
        place(engine, T0, ACME, BOB, live=2)
        assert refused(engine, T0, ACME, BOB, live=1)  # bob's own cap: one at a time
        place(engine, T0, ACME, live=2)
        assert refused(engine, T0, ACME, live=2)
        end(engine, T0, ACME)
        place(engine, T0, ACME, live=2)

    def test_an_end_is_never_refused_even_over_a_lowered_cap(self, engine: Engine) -> None:
        place(engine, T0, ACME, n=5, live=5)
        place(engine, T0, ("acme", "x"), live=1)  # the caps are per row: acme's stay 5
        end(engine, T0, ACME)  # counted under 5; the cap is now 1 for new calls, 4 are up
        assert refused(engine, T0, ACME, live=1)
        assert read_usage(engine, [ACME])[ACME].live == 4

    def test_a_refusal_for_one_row_stores_nothing_of_the_others(self, engine: Engine) -> None:
        place(engine, T0, BOB, live=1)
        assert refused(engine, T0, ACME, BOB, live=1)
        assert ACME not in read_usage(engine, [ACME])

    def test_a_batch_of_several_calls_is_checked_as_a_whole(self, engine: Engine) -> None:
        batch = placing(placed(ACME, 1, T0, caps(minute=2)), placed(ACME, 1, T0, caps(minute=2)),
                        placed(ACME, 1, T0 + timedelta(seconds=1), caps(minute=2)))
        with pytest.raises(IntegrityError) as refusal:
            write_batch(engine, batch, fresh=True)
        assert is_over_limit(refusal.value)
        place(engine, T0, ACME, n=2, minute=2)

    def test_a_taken_call_id_is_not_a_limit(self, engine: Engine) -> None:
        batch = place(engine, T0, ACME, live=10)
        again = Batch(calls=batch.calls, usage=[placed(ACME, 1, T0, caps(live=10))])
        with pytest.raises(IntegrityError) as refusal:
            write_batch(engine, again, fresh=True)
        assert not is_over_limit(refusal.value)
        assert read_usage(engine, [ACME])[ACME].live == 1

    # One test on two databases (the subclasses): the differing executors are intended.
    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(steps=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3), st.booleans()), min_size=1, max_size=12))
    def test_the_database_adds_as_the_python_rules_do(self, engine: Engine, steps: list[tuple[int, int, bool]]) -> None:
        """PostgreSQL merges in SQL, SQLite in Python: both must end where ``Usage.plus`` does."""
        tenant = f"p{uuid.uuid4().hex[:8]}"
        key = (tenant, "")
        model: Usage | None = None  # the first delta is stored as it is
        for offset, calls, ends in steps:
            at = T0 + timedelta(seconds=offset)
            change = Delta(key, ended=calls) if ends else placed(key, max(calls, 1), at, caps())
            write_batch(engine, Batch(usage=[change]))
            delta = change.usage()
            model = delta if model is None else model.plus(delta)
        stored = read_usage(engine, [key])[key]
        assert model is not None
        assert (stored.live, stored.day, stored.day_used, stored.minute_used) == \
            (model.live, model.day, model.day_used, model.minute_used)
        assert (stored.ring_sec, stored.ring_cnt) == (model.ring_sec, model.ring_cnt)


def test_deltas_of_one_key_fold_into_one_in_key_order() -> None:
    deltas = [placed(BOB, 1, T0, caps(live=3)), placed(ACME, 2, T0, caps(live=9)),
              placed(BOB, 1, T0 + timedelta(seconds=1), caps(live=3)), Delta(BOB, ended=1)]
    folded = fold(deltas, T0)
    assert [(r["tenant"], r["user_id"]) for r in folded] == [ACME, BOB]
    bob = Usage.from_row(folded[1])
    assert (bob.live, bob.day_used, bob.minute_used, bob.caps["live_cap"]) == (1, 2, 2, 3)
    assert bob.in_window(epoch_second(T0) + 1) == 2


def test_the_wait_for_a_free_minute_is_when_enough_calls_leave_the_window() -> None:
    usage = Usage()
    for offset, calls in ((0, 2), (10, 1), (30, 3)):
        usage = usage.plus(placed(ACME, calls, T0 + timedelta(seconds=offset), caps()).usage())
    now = epoch_second(T0) + 40
    assert usage.in_window(now) == 6
    assert usage.seconds_until_window_holds(now, 5) == 20  # the two of second 0 leave at 60
    assert usage.seconds_until_window_holds(now, 3) == 30
    assert usage.seconds_until_window_holds(now, 2) == 50
    assert usage.seconds_until_window_holds(now, 0) == 50
    assert usage.seconds_until_window_holds(now, 6) == 0
    assert usage.seconds_until_window_holds(now, -1) is None


class TestUsageSqlite(UsageContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        url = f"sqlite:///{tmp_path / 'usage.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM policy_usage"))
        yield engine
        engine.dispose()
