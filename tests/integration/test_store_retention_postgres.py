"""Retention on PostgreSQL: the same contract as on SQLite."""

from __future__ import annotations

import uuid

import gevent
import pytest
from sqlalchemy import Engine, text

from callworker.store import Batch, make_engine, write_batch
from callworker.store.models import metadata
from callworker.store.retention import Retention, sweep
from tests.component.test_store import call_row
from tests.component.test_store_retention import NOW, OLD, RetentionContract
from tests.integration.test_store_privacy_postgres import own_engine  # noqa: F401 - the module's database

pytestmark = pytest.mark.integration


class TestRetentionPostgres(RetentionContract):
    @pytest.fixture
    def engine(self, own_engine: Engine) -> Engine:  # noqa: F811
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with own_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return own_engine


def test_two_nodes_sweeping_at_once_share_the_work(own_engine: Engine) -> None:  # noqa: F811
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with own_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    for _ in range(3):
        write_batch(own_engine, Batch(calls=[call_row(str(uuid.uuid4()), status="completed", initiated_at=OLD,
                                                      updated_at=OLD) for _ in range(200)]))
    other = make_engine(own_engine.url.render_as_string(hide_password=False), pool_size=2)
    try:
        sweeps = [gevent.spawn(sweep, engine, Retention(days=365, batch=50, pause_s=0), NOW)
                  for engine in (own_engine, other)]
        done = [g.get(timeout=60) for g in sweeps]
    finally:
        other.dispose()
    assert sum(d["calls"] for d in done) == 600
    with own_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar_one() == 0
