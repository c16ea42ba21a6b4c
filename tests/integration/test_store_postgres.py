"""The store on a real PostgreSQL: the same contract as on SQLite, plus outages and concurrency."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import gevent
import psycopg
import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DataError, IntegrityError

from callworker.errors import StoreUnavailable
from callworker.store import (
    Batch,
    get_call,
    get_cdr,
    list_calls,
    make_engine,
    migrate,
    pending_outbox,
    ping,
    write_batch,
)
from callworker.store.models import metadata
from tests.component.test_store import StoreContract, call_row, cdr_row, command_row, schema_diff

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55"
UNREACHABLE = f"postgresql://callworker:{SECRET}@127.0.0.1:1/callworker"


def _admin_url(pg_url: str) -> str:
    """psycopg's spelling of the session database URL (any database serves for CREATE DATABASE)."""
    return pg_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def database_factory(pg_url: str) -> Iterator[object]:
    """Creates empty databases on the session's server and drops them all at the end."""
    created: list[str] = []
    base = pg_url.rsplit("/", 1)[0]

    def create() -> str:
        name = f"callworker_store_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_admin_url(pg_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{base}/{name}"

    yield create
    with psycopg.connect(_admin_url(pg_url), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def shared_engine(database_factory: object) -> Iterator[Engine]:
    """One migrated database for the module; each test starts from empty tables."""
    url = database_factory()  # type: ignore[operator]
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


class TestStorePostgres(StoreContract):
    @pytest.fixture
    def fresh_url(self, database_factory: object) -> str:
        return database_factory()  # type: ignore[operator,no-any-return]

    @pytest.fixture
    def engine(self, shared_engine: Engine) -> Engine:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with shared_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return shared_engine


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(shared_engine: Engine) -> None:
    with shared_engine.begin() as conn:
        conn.execute(text("TRUNCATE calls, outbox RESTART IDENTITY"))
    call_id = str(uuid.uuid4())
    batch = Batch(calls=[call_row(call_id, destination_number="+1" + "5" * 40)],
                  outbox=[{"node": "n1", "exchange": "x", "routing_key": "k", "message_id": None,
                           "correlation_id": None, "headers": None, "body": b"{}"}])
    with pytest.raises(DataError):
        write_batch(shared_engine, batch)
    assert get_call(shared_engine, "acme", call_id) is None
    assert pending_outbox(shared_engine, "n1", 0, 10) == []


def test_every_kind_of_value_arrives_as_it_was_given(shared_engine: Engine) -> None:
    """Bytes, floats JSON cannot hold, quotes, backslashes and non-ASCII text survive the JSON document."""
    with shared_engine.begin() as conn:
        conn.execute(text("TRUNCATE calls, cdrs, outbox RESTART IDENTITY"))
    call_id = str(uuid.uuid4())
    name = 'Zoë "\\x41" \u00e9\n'
    body = bytes(range(256))
    batch = Batch(
        calls=[call_row(call_id, caller_id_name=name[:32])],
        cdrs=[cdr_row(call_id, rtp_audio_in_mos=float("nan"), caller_id_name=name[:32])],
        outbox=[{"node": "n1", "exchange": "x", "routing_key": "k", "message_id": None,
                 "correlation_id": None, "headers": {"quote": '"', "list": [1, None]}, "body": body},
                {"node": "n1", "exchange": "x", "routing_key": "k", "message_id": None,
                 "correlation_id": None, "headers": None, "body": b""}],
    )
    write_batch(shared_engine, batch)
    call = get_call(shared_engine, "acme", call_id)
    assert call is not None and call["caller_id_name"] == name[:32]
    cdr = get_cdr(shared_engine, "acme", call_id)
    assert cdr is not None and math.isnan(cdr["rtp_audio_in_mos"])
    rows = pending_outbox(shared_engine, "n1", 0, 10)
    assert [row["body"] for row in rows] == [body, b""]
    assert [row["headers"] for row in rows] == [{"quote": '"', "list": [1, None]}, None]


def test_two_workers_migrating_at_once_both_succeed(database_factory: object) -> None:
    url = database_factory()  # type: ignore[operator]
    script = "import os; from callworker.store import migrate; migrate(os.environ['DB_URL'])"
    env = {**os.environ, "DB_URL": url}
    workers = [
        subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr.decode()
    # And two at once inside one process.
    greenlets = [gevent.spawn(migrate, url) for _ in range(2)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    engine = make_engine(url)
    try:
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_concurrent_batches_on_postgresql_all_land(shared_engine: Engine) -> None:
    with shared_engine.begin() as conn:
        conn.execute(text("TRUNCATE calls, outbox RESTART IDENTITY"))

    def writer() -> list[int]:
        ids: list[int] = []
        for _ in range(10):
            batch = Batch(calls=[call_row() for _ in range(10)],
                          outbox=[{"node": "n1", "exchange": "x", "routing_key": "k", "message_id": None,
                                   "correlation_id": None, "headers": None, "body": b"{}"}])
            ids += write_batch(shared_engine, batch)
        return ids

    workers = [gevent.spawn(writer) for _ in range(4)]
    gevent.joinall(workers, timeout=30, raise_error=True)
    ids = sorted(i for w in workers for i in w.value)
    assert len(ids) == 40
    assert [row["id"] for row in pending_outbox(shared_engine, "n1", 0, 100)] == ids
    _, total = list_calls(shared_engine, "acme", from_=None, to=None, status=None, limit=1,
                          offset=0)
    assert total == 400


def test_of_two_nodes_opening_the_same_command_at_once_one_is_refused(
    shared_engine: Engine, pg_url: str
) -> None:
    """A fresh write of a command another node is inserting is refused once that one commits."""
    with shared_engine.begin() as conn:
        conn.execute(text("TRUNCATE calls, commands, call_events, outbox RESTART IDENTITY"))
    command_id = str(uuid.uuid4())
    database = shared_engine.url.render_as_string(hide_password=False)
    with psycopg.connect(_admin_url(database)) as other_node:
        other_node.execute(
            "INSERT INTO commands (tenant, command_id, type, status, created_at, updated_at) "
            "VALUES ('acme', %s, 'originate', 'done', now(), now())",
            (command_id,),
        )  # not committed yet: that node is still writing its opening
        call_id = str(uuid.uuid4())
        batch = Batch(calls=[call_row(call_id)], commands=[command_row(command_id, call_id=call_id)])
        writer = gevent.spawn(write_batch, shared_engine, batch, fresh=True)
        gevent.idle()  # until the writer has sent its statement and waits for the answer
        # It cannot finish while the other node's insert is uncommitted.
        assert not writer.ready()
        other_node.commit()
    writer.join(timeout=10)
    assert isinstance(writer.exception, IntegrityError)
    assert get_call(shared_engine, "acme", call_id) is None


def test_migrating_never_logs_the_password(
    database_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    # The server trusts local connections, so the password is carried but not checked.
    plain = make_url(database_factory())  # type: ignore[operator]
    url = plain.set(password=SECRET).render_as_string(hide_password=False)
    with caplog.at_level(logging.DEBUG):
        migrate(url)
    assert "Running upgrade" in caplog.text
    assert SECRET not in caplog.text


def test_unreachable_postgresql_raises_store_unavailable_without_the_password() -> None:
    engine = make_engine(UNREACHABLE)
    try:
        for attempt in (
            lambda: ping(engine),
            lambda: get_call(engine, "acme", str(uuid.uuid4())),
            lambda: write_batch(engine, Batch(calls=[call_row()])),
        ):
            with pytest.raises(StoreUnavailable) as info:
                attempt()
            assert SECRET not in str(info.value)
            assert "127.0.0.1" in str(info.value)
            assert info.value.__suppress_context__
    finally:
        engine.dispose()
    with pytest.raises(StoreUnavailable) as info:
        migrate(UNREACHABLE)
    assert SECRET not in str(info.value)
