"""The store on SQLite files; `StoreContract` is run again on PostgreSQL by the integration tier."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.pool import StaticPool

from callworker.errors import ConfigError
from callworker.store import (
    Batch,
    batch_stored,
    call_events,
    call_id_taken,
    delete_outbox,
    get_call,
    get_cdr,
    get_command,
    list_calls,
    list_cdrs,
    live_calls,
    lookup_command,
    make_engine,
    migrate,
    migrate_engine,
    normalise_url,
    pending_outbox,
    ping,
    write_batch,
)
from callworker.store.models import metadata

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TABLES = {"calls", "call_events", "cdrs", "commands", "outbox"}


def new_id() -> str:
    return str(uuid.uuid4())


def call_row(call_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "call_id": call_id or new_id(),
        "tenant": "acme",
        "node": "fs1",
        "direction": "outbound",
        "status": "initiated",
        "destination_number": "+15551230000",
        "caller_id_number": "+15559870000",
        "caller_id_name": "Acme",
        "on_hold": False,
        "muted": False,
        "initiated_at": T0,
        "answered_at": None,
        "ended_at": None,
        "hangup_cause": None,
        "last_seq": 1,
        "hangup_requested": False,
        "flashcall_order_id": None,
        "updated_at": T0,
    }
    row.update(overrides)
    return row


def event_row(call_id: str, seq: int, **overrides: Any) -> dict[str, Any]:
    event_id = new_id()
    row: dict[str, Any] = {
        "event_id": event_id,
        "call_id": call_id,
        "tenant": "acme",
        "seq": seq,
        "type": "call.initiated",
        "occurred_at": T0 + timedelta(seconds=seq),
        "body": {"v": 1, "event_id": event_id, "seq": seq, "data": {"status": "initiated"}},
    }
    row.update(overrides)
    return row


def cdr_row(call_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "call_id": call_id,
        "tenant": "acme",
        "direction": "outbound",
        "caller_id_name": "Acme",
        "caller_id_number": "+15559870000",
        "destination_number": "+15551230000",
        "start_stamp": T0,
        "answer_stamp": T0 + timedelta(seconds=3),
        "end_stamp": T0 + timedelta(seconds=63),
        "duration": 63,
        "billsec": 60,
        "billmsec": 60012,
        "hangup_cause": "NORMAL_CLEARING",
        "hangup_cause_q850": 16,
        "sip_hangup_disposition": "recv_bye",
        "pdd_ms": 812,
        "rtp_audio_in_mos": 4.5,
        "read_codec": "PCMU",
        "write_codec": "PCMU",
        "missed_call": False,
        "node": "fs1",
        "flashcall_order_id": None,
    }
    row.update(overrides)
    return row


def command_row(command_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant": "acme",
        "command_id": command_id,
        "type": "originate",
        "status": "executing",
        "reply": None,
        "call_id": None,
    }
    row.update(overrides)
    return row


def outbox_row(n: int) -> dict[str, Any]:
    return {
        "node": "n1",
        "exchange": "callworker.events",
        "routing_key": f"acme.call.initiated.{n}",
        "message_id": new_id(),
        "correlation_id": None,
        "headers": {"n": n},
        "body": f'{{"n": {n}}}'.encode(),
    }


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


class StoreContract:
    """Behaviour every supported database must show.

    Subclasses provide `fresh_url` (an empty database per test) and `engine`
    (a migrated, empty database per test).
    """

    def test_migrate_twice_is_harmless_and_matches_the_models(self, fresh_url: str) -> None:
        migrate(fresh_url)
        migrate(fresh_url)
        engine = make_engine(fresh_url)
        try:
            assert TABLES <= set(inspect(engine).get_table_names())
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert versions == [("0006",)]
            assert schema_diff(engine) == []
        finally:
            engine.dispose()

    def test_ping_answers(self, engine: Engine) -> None:
        ping(engine)

    def test_empty_batch_writes_nothing(self, engine: Engine) -> None:
        assert Batch().is_empty()
        assert not Batch(calls=[call_row()]).is_empty()
        assert write_batch(engine, Batch()) == []

    def test_second_write_of_a_call_updates_it(self, engine: Engine) -> None:
        call_id = new_id()
        write_batch(engine, Batch(calls=[call_row(call_id)]))
        answered = T0 + timedelta(seconds=5)
        write_batch(
            engine,
            Batch(calls=[call_row(call_id, status="answered", last_seq=3, answered_at=answered)]),
        )
        call = get_call(engine, "acme", call_id)
        assert call is not None
        assert (call["status"], call["last_seq"], call["answered_at"]) == ("answered", 3, answered)
        _, total = list_calls(engine, "acme", from_=None, to=None, status=None, limit=10, offset=0)
        assert total == 1

    def test_later_row_in_one_batch_wins_and_partial_rows_keep_other_columns(
        self, engine: Engine
    ) -> None:
        call_id = new_id()
        rows = [call_row(call_id), call_row(call_id, status="ringing", last_seq=2)]
        write_batch(engine, Batch(calls=rows))
        partial = {key: rows[0][key] for key in ("call_id", "tenant", "node", "direction")}
        write_batch(engine, Batch(calls=[{**partial, "status": "answered", "last_seq": 3}]))
        call = get_call(engine, "acme", call_id)
        assert call is not None
        assert (call["status"], call["last_seq"]) == ("answered", 3)
        assert call["destination_number"] == "+15551230000"
        assert call["initiated_at"] == T0

    def test_full_and_partial_rows_in_one_batch_each_keep_what_they_leave_out(
        self, engine: Engine
    ) -> None:
        known, other = new_id(), new_id()
        write_batch(engine, Batch(calls=[call_row(known)]))
        partial = {"call_id": known, "tenant": "acme", "node": "fs1", "direction": "outbound",
                   "status": "ringing", "last_seq": 2}
        write_batch(engine, Batch(calls=[call_row(other, status="answered"), partial]))
        call = get_call(engine, "acme", known)
        assert call is not None
        assert (call["status"], call["destination_number"], call["initiated_at"]) == (
            "ringing", "+15551230000", T0)
        assert get_call(engine, "acme", other)["status"] == "answered"  # type: ignore[index]

    def test_a_command_saved_twice_in_one_batch_keeps_the_later_row(self, engine: Engine) -> None:
        command_id = new_id()
        reply = {"v": 1, "command_id": command_id, "ok": True}
        rows = [command_row(command_id, created_at=T0),
                command_row(command_id, status="done", reply=reply, created_at=T0 + timedelta(seconds=1))]
        write_batch(engine, Batch(commands=rows))
        record = get_command(engine, "acme", command_id)
        assert record is not None
        assert (record["status"], record["reply"], record["created_at"]) == ("done", reply, T0)

    def test_events_are_stored_and_read_in_seq_order(self, engine: Engine) -> None:
        call_id = new_id()
        second, first = event_row(call_id, 2, type="call.ringing"), event_row(call_id, 1)
        write_batch(engine, Batch(calls=[call_row(call_id)], events=[second]))
        write_batch(engine, Batch(events=[first]))
        events = call_events(engine, call_id)
        assert [e["seq"] for e in events] == [1, 2]
        assert [e["type"] for e in events] == ["call.initiated", "call.ringing"]
        assert events[1]["body"] == second["body"]
        assert events[0]["occurred_at"] == first["occurred_at"]

    def test_a_failing_batch_leaves_nothing_behind(self, engine: Engine) -> None:
        call_id = new_id()
        write_batch(engine, Batch(events=[event_row(call_id, 1)]))
        batch = Batch(
            calls=[call_row(call_id)],
            events=[event_row(call_id, 1)],  # the same seq again
            outbox=[outbox_row(1)],
        )
        with pytest.raises(IntegrityError):
            write_batch(engine, batch)
        assert get_call(engine, "acme", call_id) is None
        assert pending_outbox(engine, "n1", 0, 10) == []
        assert len(call_events(engine, call_id)) == 1

    def test_a_cdr_written_twice_keeps_the_first_values(self, engine: Engine) -> None:
        call_id = new_id()
        write_batch(engine, Batch(cdrs=[cdr_row(call_id)]))
        write_batch(engine, Batch(cdrs=[cdr_row(call_id, billsec=1, reconstructed=True)]))
        write_batch(engine, Batch(cdrs=[cdr_row(call_id, billsec=2), cdr_row(call_id, billsec=3)]))
        cdr = get_cdr(engine, "acme", call_id)
        assert cdr is not None
        assert (cdr["billsec"], cdr["reconstructed"], cdr["rtp_audio_in_mos"]) == (60, False, 4.5)
        assert cdr["end_stamp"] == T0 + timedelta(seconds=63)
        assert cdr["created_at"].tzinfo is UTC
        assert list_cdrs(engine, "acme", from_=None, to=None, limit=10, offset=0)[1] == 1

    def test_command_record_is_upserted_and_keeps_its_first_sight(self, engine: Engine) -> None:
        command_id = new_id()
        write_batch(engine, Batch(commands=[command_row(command_id)]))
        first = get_command(engine, "acme", command_id)
        assert first is not None and first["status"] == "executing"
        reply = {"v": 1, "command_id": command_id, "ok": True, "result": {"status": "initiated"}}
        call_id = new_id()
        done = command_row(command_id, status="done", reply=reply, call_id=call_id)
        write_batch(engine, Batch(calls=[call_row(call_id)], commands=[done]))
        record = get_command(engine, "acme", command_id)
        assert record is not None
        assert (record["status"], record["reply"], record["call_id"]) == ("done", reply, call_id)
        assert record["created_at"] == first["created_at"]
        assert record["updated_at"] >= first["updated_at"]

    def test_outbox_ids_ascend_in_order_and_rows_can_be_deleted(self, engine: Engine) -> None:
        first_ids = write_batch(engine, Batch(outbox=[outbox_row(n) for n in range(5)]))
        more_ids = write_batch(
            engine, Batch(calls=[call_row()], outbox=[outbox_row(n) for n in range(5, 120)])
        )
        ids = first_ids + more_ids
        assert len(ids) == 120 and ids == sorted(ids) and len(set(ids)) == 120
        pending = pending_outbox(engine, "n1", 0, 1000)
        assert [row["id"] for row in pending] == ids
        assert [row["headers"]["n"] for row in pending] == list(range(120))
        assert pending[7]["body"] == b'{"n": 7}'
        assert pending[7]["routing_key"] == "acme.call.initiated.7"
        assert [r["id"] for r in pending_outbox(engine, "n1", ids[2], 3)] == ids[3:6]
        delete_outbox(engine, ids[:100])
        delete_outbox(engine, [])
        assert [row["id"] for row in pending_outbox(engine, "n1", 0, 1000)] == ids[100:]

    def test_a_batch_is_known_as_stored_by_its_first_event_even_once_published(
        self, engine: Engine
    ) -> None:
        call_id = new_id()
        batch = Batch(
            calls=[call_row(call_id)], events=[event_row(call_id, 1)],
            outbox=[{**outbox_row(1), "created_at": T0}],
        )
        assert not batch_stored(engine, batch)
        ids = write_batch(engine, batch)
        assert batch_stored(engine, batch)
        delete_outbox(engine, ids)  # published and confirmed: the events remain
        assert batch_stored(engine, batch)
        # Another batch of the same instant is not taken for this one.
        same_instant = Batch(events=[event_row(call_id, 2)], outbox=[{**outbox_row(1), "created_at": T0}])
        assert not batch_stored(engine, same_instant)

    def test_a_batch_without_events_is_known_by_its_outbox_row(self, engine: Engine) -> None:
        at = T0 + timedelta(microseconds=1)
        replies = Batch(outbox=[{**outbox_row(1), "created_at": at}])
        assert not batch_stored(engine, replies)
        write_batch(engine, replies)
        assert batch_stored(engine, replies)
        # The same instant on another node, or for another queue, says nothing of it.
        write_batch(engine, Batch(outbox=[{**outbox_row(3), "node": "n2", "created_at": T0}]))
        assert not batch_stored(engine, Batch(outbox=[{**outbox_row(3), "created_at": T0}]))
        assert not batch_stored(engine, Batch(outbox=[{**outbox_row(2), "created_at": at}]))

    def test_a_fresh_batch_is_refused_whole_when_its_call_or_command_is_stored(
        self, engine: Engine
    ) -> None:
        command_id, call_id = new_id(), new_id()
        write_batch(engine, Batch(calls=[call_row(call_id)], commands=[command_row(command_id)]))

        def opening(command: str, call: str) -> Batch:
            return Batch(
                calls=[call_row(call)], commands=[command_row(command, call_id=call)],
                events=[event_row(call, 1)], outbox=[outbox_row(1)],
            )

        again = opening(command_id, new_id())  # a redelivered command, a new call id
        with pytest.raises(IntegrityError):
            write_batch(engine, again, fresh=True)
        taken = opening(new_id(), call_id)  # a new command asking for a call id in use
        with pytest.raises(IntegrityError):
            write_batch(engine, taken, fresh=True)
        twice = opening(new_id(), new_id())
        twice.commands.append(command_row(twice.commands[0]["command_id"]))
        with pytest.raises(IntegrityError):
            write_batch(engine, twice, fresh=True)
        # Nothing of a refused batch is stored: no call, no event, no outbox row.
        for refused in (again, taken, twice):
            assert call_events(engine, refused.calls[0]["call_id"]) == []
        assert get_call(engine, "acme", again.calls[0]["call_id"]) is None
        assert get_call(engine, "acme", twice.calls[0]["call_id"]) is None
        assert pending_outbox(engine, "n1", 0, 10) == []
        assert get_command(engine, "acme", command_id) is not None
        assert get_command(engine, "acme", taken.commands[0]["command_id"]) is None

        first, second = opening(new_id(), new_id()), opening(new_id(), new_id())
        both = Batch(**{name: getattr(first, name) + getattr(second, name)
                        for name in ("calls", "commands", "events", "outbox")})
        assert len(write_batch(engine, both, fresh=True)) == 2
        assert all(get_call(engine, "acme", b.calls[0]["call_id"]) is not None for b in (first, second))

    def test_a_batch_without_outbox_rows_is_never_reported_stored(self, engine: Engine) -> None:
        # Everything else in a batch can be written again without storing anything twice.
        batch = Batch(calls=[call_row()])
        write_batch(engine, batch)
        assert not batch_stored(engine, batch)

    def test_outbox_ids_are_never_reused_after_the_table_empties(self, engine: Engine) -> None:
        # The relay reads "rows after id N": a reused id would be skipped.
        ids = write_batch(engine, Batch(outbox=[outbox_row(n) for n in range(3)]))
        delete_outbox(engine, ids)
        later = write_batch(engine, Batch(outbox=[outbox_row(3)]))
        assert later[0] > max(ids)

    def test_other_nodes_rows_are_not_pending_for_this_node(self, engine: Engine) -> None:
        write_batch(engine, Batch(outbox=[{**outbox_row(1), "node": "n2"}]))
        assert pending_outbox(engine, "n1", 0, 10) == []
        assert len(pending_outbox(engine, "n2", 0, 10)) == 1

    def test_list_calls_sorts_bounds_filters_and_pages(self, engine: Engine) -> None:
        rows = [
            call_row(initiated_at=T0 + timedelta(minutes=i), status=("failed", "answered")[i % 2])
            for i in range(10)
        ]
        write_batch(engine, Batch(calls=rows))
        newest_first = [r["call_id"] for r in reversed(rows)]

        def ids(**kw: Any) -> tuple[list[str], int]:
            args: dict[str, Any] = {"from_": None, "to": None, "status": None, "limit": 50,
                                    "offset": 0}
            args.update(kw)
            found, total = list_calls(engine, "acme", **args)
            return [r["call_id"] for r in found], total

        assert ids() == (newest_first, 10)
        assert ids(limit=3, offset=2) == (newest_first[2:5], 10)
        assert ids(offset=20) == ([], 10)
        bounded = ids(from_=T0 + timedelta(minutes=2), to=T0 + timedelta(minutes=5))
        assert bounded == ([rows[4]["call_id"], rows[3]["call_id"], rows[2]["call_id"]], 3)
        answered = [r["call_id"] for r in reversed(rows) if r["status"] == "answered"]
        assert ids(status="answered", limit=2) == (answered[:2], 5)
        assert ids(status="ringing") == ([], 0)

    def test_calls_initiated_at_the_same_instant_keep_a_stable_order(self, engine: Engine) -> None:
        write_batch(engine, Batch(calls=[call_row() for _ in range(6)]))
        page1, _ = list_calls(engine, "acme", from_=None, to=None, status=None, limit=3, offset=0)
        page2, _ = list_calls(engine, "acme", from_=None, to=None, status=None, limit=3, offset=3)
        seen = [r["call_id"] for r in page1 + page2]
        assert len(set(seen)) == 6 and seen == sorted(seen, reverse=True)

    def test_list_cdrs_sorts_bounds_and_pages(self, engine: Engine) -> None:
        rows = [cdr_row(new_id(), start_stamp=T0 + timedelta(hours=i)) for i in range(7)]
        write_batch(engine, Batch(cdrs=rows))
        newest_first = [r["call_id"] for r in reversed(rows)]

        def ids(**kw: Any) -> tuple[list[str], int]:
            args: dict[str, Any] = {"from_": None, "to": None, "limit": 100, "offset": 0}
            args.update(kw)
            found, total = list_cdrs(engine, "acme", **args)
            return [r["call_id"] for r in found], total

        assert ids() == (newest_first, 7)
        assert ids(limit=2, offset=1) == (newest_first[1:3], 7)
        assert ids(from_=T0 + timedelta(hours=5)) == (newest_first[:2], 2)
        assert ids(to=T0 + timedelta(hours=1)) == ([rows[0]["call_id"]], 1)

    def test_another_tenant_sees_none_of_the_rows(self, engine: Engine) -> None:
        call_id, command_id = new_id(), new_id()
        write_batch(
            engine,
            Batch(
                calls=[call_row(call_id)],
                events=[event_row(call_id, 1)],
                cdrs=[cdr_row(call_id)],
                commands=[command_row(command_id)],
            ),
        )
        assert get_call(engine, "acme", call_id) is not None
        assert get_call(engine, "beta", call_id) is None
        assert get_cdr(engine, "beta", call_id) is None
        assert get_command(engine, "beta", command_id) is None
        assert list_calls(engine, "beta", from_=None, to=None, status=None, limit=50, offset=0) == (
            [],
            0,
        )
        assert list_cdrs(engine, "beta", from_=None, to=None, limit=50, offset=0) == ([], 0)
        # A call id is unique across tenants, so it is taken for everyone.
        assert call_id_taken(engine, call_id)
        assert not call_id_taken(engine, new_id())

    def test_a_command_lookup_reads_the_record_and_whether_the_call_id_is_in_use(
        self, engine: Engine
    ) -> None:
        command_id, call_id = new_id(), new_id()
        reply = {"v": 1, "command_id": command_id, "ok": True}
        nothing = lookup_command(engine, "acme", command_id, call_id)
        assert (nothing.stored, nothing.call_id_taken) == (None, False)
        write_batch(engine, Batch(calls=[call_row(call_id, tenant="beta")],
                                  commands=[command_row(command_id, reply=reply, call_id=call_id)]))
        found = lookup_command(engine, "acme", command_id, call_id)
        assert found.stored is not None and found.call_id_taken  # taken by another tenant too
        assert (found.stored["reply"], found.stored["call_id"]) == (reply, call_id)
        assert found.stored == get_command(engine, "acme", command_id)
        other_tenant = lookup_command(engine, "beta", command_id, new_id())
        assert (other_tenant.stored, other_tenant.call_id_taken) == (None, False)
        unasked = lookup_command(engine, "acme", command_id, None)
        assert unasked.stored == found.stored and not unasked.call_id_taken

    def test_the_same_command_id_in_two_tenants_is_two_commands(self, engine: Engine) -> None:
        command_id = new_id()
        rows = [command_row(command_id), command_row(command_id, tenant="beta", type="hangup")]
        write_batch(engine, Batch(commands=rows))
        acme = get_command(engine, "acme", command_id)
        beta = get_command(engine, "beta", command_id)
        assert acme is not None and beta is not None
        assert (acme["type"], beta["type"]) == ("originate", "hangup")

    def test_live_calls_are_the_nodes_unfinished_calls(self, engine: Engine) -> None:
        live = [call_row(status=s, initiated_at=T0 + timedelta(seconds=i))
                for i, s in enumerate(("initiated", "ringing", "answered", "on_hold"))]
        ended = [call_row(status=s) for s in ("completed", "failed", "cancelled")]
        elsewhere = [call_row(node="fs2", status="answered")]
        write_batch(engine, Batch(calls=live + ended + elsewhere))
        assert [c["call_id"] for c in live_calls(engine, "fs1")] == [c["call_id"] for c in live]
        assert [c["call_id"] for c in live_calls(engine, "fs2")] == [elsewhere[0]["call_id"]]
        assert live_calls(engine, "fs3") == []

    def test_aware_datetimes_round_trip_as_utc(self, engine: Engine) -> None:
        plus_two = timezone(timedelta(hours=2))
        local = datetime(2026, 11, 22, 12, 30, 15, 123456, tzinfo=plus_two)
        call_id = new_id()
        write_batch(engine, Batch(calls=[call_row(call_id, initiated_at=local, ended_at=None)]))
        call = get_call(engine, "acme", call_id)
        assert call is not None
        assert call["initiated_at"] == local
        assert call["initiated_at"].tzinfo is UTC
        assert call["initiated_at"].hour == 10 and call["initiated_at"].microsecond == 123456
        assert call["ended_at"] is None
        # Bounds given in another zone select the same instant.
        found, _ = list_calls(engine, "acme", from_=local, to=local + timedelta(microseconds=1),
                              status=None, limit=5, offset=0)
        assert [r["call_id"] for r in found] == [call_id]

    def test_a_naive_datetime_is_refused(self, engine: Engine) -> None:
        naive = datetime(2026, 11, 22, 10, 0)
        with pytest.raises(StatementError, match="naive datetime"):
            write_batch(engine, Batch(calls=[call_row(initiated_at=naive)]))


class TestStoreSqliteFile(StoreContract):
    @pytest.fixture
    def fresh_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


class TestStoreSqliteInMemory(StoreContract):
    """`sqlite://` as used by fast tests: migrated through its engine, shared by greenlets."""

    @pytest.fixture
    def fresh_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"

    @pytest.fixture
    def engine(self) -> Iterator[Engine]:
        engine = make_engine("sqlite://")
        migrate_engine(engine)
        yield engine
        engine.dispose()


def test_migrating_leaves_the_logging_setup_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    sentinel = logging.NullHandler()
    root.addHandler(sentinel)
    before = (list(root.handlers), root.level, logging.getLogger("callworker").disabled)
    try:
        migrate(f"sqlite:///{tmp_path / 'logging.sqlite3'}")
        after = (list(root.handlers), root.level, logging.getLogger("callworker").disabled)
        assert after == before
    finally:
        root.removeHandler(sentinel)


def test_two_greenlets_writing_one_sqlite_file_never_see_a_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    migrate(url)
    engine = make_engine(url)

    # The two writers take turns batch by batch, so their writes and reads interleave.
    turn = {"fs1": gevent.event.Event(), "fs2": gevent.event.Event()}
    other = {"fs1": "fs2", "fs2": "fs1"}

    def writer(node: str) -> list[int]:
        ids: list[int] = []
        for i in range(40):
            assert turn[node].wait(10), f"{node} never got its turn"
            turn[node].clear()
            call_id = new_id()
            batch = Batch(
                calls=[call_row(call_id, node=node)],
                events=[event_row(call_id, 1)],
                outbox=[outbox_row(i)],
            )
            ids += write_batch(engine, batch)
            assert live_calls(engine, node)
            turn[other[node]].set()
        return ids

    try:
        turn["fs1"].set()
        greenlets = [gevent.spawn(writer, "fs1"), gevent.spawn(writer, "fs2")]
        gevent.joinall(greenlets, timeout=30, raise_error=True)
        assert all(g.successful() for g in greenlets)
        assert len(set(greenlets[0].value) | set(greenlets[1].value)) == 80
        assert len(live_calls(engine, "fs1")) == len(live_calls(engine, "fs2")) == 40
    finally:
        engine.dispose()


def test_in_memory_database_is_one_database_for_every_greenlet() -> None:
    engine = make_engine("sqlite://")
    assert isinstance(engine.pool, StaticPool)
    migrate_engine(engine)
    call_id = new_id()
    gevent.spawn(write_batch, engine, Batch(calls=[call_row(call_id)])).get(timeout=10)
    found = gevent.spawn(get_call, engine, "acme", call_id).get(timeout=10)
    assert found is not None and found["call_id"] == call_id
    engine.dispose()


def test_sqlite_file_runs_in_wal_mode_with_one_connection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/cw", "postgresql+psycopg://u:p@db:5432/cw"),
        ("postgresql://u@db/cw", "postgresql+psycopg://u@db/cw"),
        ("postgresql+psycopg://u@db/cw", "postgresql+psycopg://u@db/cw"),
        ("sqlite:////var/lib/cw.sqlite3", "sqlite:////var/lib/cw.sqlite3"),
    ],
)
def test_postgres_urls_mean_psycopg_3(given: str, expected: str) -> None:
    assert normalise_url(given) == expected
    if expected.startswith("postgresql"):
        assert make_engine(given).dialect.driver == "psycopg"


def test_an_unparseable_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        make_engine("not a url :hunter2@")
    assert "hunter2" not in str(info.value)
