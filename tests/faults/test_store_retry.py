"""A batch written again after its commit's outcome was lost stores nothing twice (SQLite, PostgreSQL).

When the connection drops while COMMIT is under way, the database may have
committed what the worker believes failed; the journal then writes the same
batch again. That must succeed, or the operations of the batch fail although
they were stored (an originate would then never be dialled).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from callworker.store import Batch, call_events, get_call, make_engine, migrate, write_batch
from callworker.store.models import OUTBOX


def batch(call_id: str, seq: int = 1, event_id: str | None = None) -> Batch:
    now = datetime.now(UTC)
    event_id = event_id or str(uuid.uuid4())
    return Batch(
        calls=[{"call_id": call_id, "tenant": "acme", "node": "retry", "direction": "outbound",
                "status": "initiated", "initiated_at": now, "last_seq": seq, "updated_at": now}],
        events=[{"event_id": event_id, "call_id": call_id, "tenant": "acme", "seq": seq,
                 "type": "call.initiated", "occurred_at": now, "body": {"event_id": event_id}}],
        cdrs=[{"call_id": call_id, "tenant": "acme", "direction": "outbound", "node": "retry",
               "reconstructed": False, "created_at": now}],
        commands=[{"tenant": "acme", "command_id": str(uuid.uuid5(uuid.NAMESPACE_URL, call_id)),
                   "type": "originate", "status": "executing", "reply": None, "call_id": call_id,
                   "created_at": now, "updated_at": now}],
        outbox=[{"node": "retry", "exchange": "callworker.events", "routing_key": "acme.call.initiated",
                 "message_id": event_id, "correlation_id": None, "headers": None, "body": b"{}",
                 "created_at": now}],
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'retry.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.integration
def test_the_same_batch_twice_stores_each_event_once(url: str) -> None:
    migrate(url)
    engine = make_engine(url)
    try:
        call_id = str(uuid.uuid4())
        again = batch(call_id)
        first_ids = write_batch(engine, again)
        second_ids = write_batch(engine, again)  # the retry after a lost commit acknowledgement
        assert len(call_events(engine, call_id)) == 1
        call = get_call(engine, "acme", call_id)
        assert call is not None and call["last_seq"] == 1
        # The outbox row is there twice: published twice, deduplicated by message_id.
        assert len(first_ids) == len(second_ids) == 1 and first_ids != second_ids
        with engine.connect() as conn:
            rows = conn.execute(OUTBOX.select().where(OUTBOX.c.id.in_(first_ids + second_ids))).all()
        assert {row.message_id for row in rows} == {again.events[0]["event_id"]}
    finally:
        engine.dispose()


@pytest.mark.integration
def test_another_event_with_a_taken_seq_is_still_refused(url: str) -> None:
    migrate(url)
    engine = make_engine(url)
    try:
        call_id = str(uuid.uuid4())
        write_batch(engine, batch(call_id))
        with pytest.raises(IntegrityError):
            write_batch(engine, batch(call_id))  # seq 1 again, a different event_id
        assert len(call_events(engine, call_id)) == 1
    finally:
        engine.dispose()
