"""The limits' counts on PostgreSQL: the same contract as on SQLite, and several nodes at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from callworker.store import Batch, make_engine, migrate, write_batch
from callworker.store.usage import is_over_limit, placed, read_usage
from tests.component.test_store import call_row, command_row
from tests.component.test_store_usage import ACME, T0, UsageContract, caps

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_engine(pg_url: str) -> Iterator[Engine]:
    migrate(pg_url)
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


class TestUsagePostgres(UsageContract):
    @pytest.fixture
    def engine(self, shared_engine: Engine) -> Engine:
        with shared_engine.begin() as conn:
            conn.execute(text("DELETE FROM policy_usage WHERE tenant = 'acme'"))
        return shared_engine


def test_nodes_placing_calls_at_once_never_pass_the_cap_together(pg_url: str) -> None:
    """Four engines (four nodes' connections) race 40 fresh writes at a cap of 13 live calls."""
    tenant = f"race{uuid.uuid4().hex[:6]}"
    engines = [make_engine(pg_url, pool_size=3) for _ in range(4)]
    outcomes: list[str] = []

    def place(engine: Engine, n: int) -> None:
        call_id = str(uuid.uuid4())
        batch = Batch(
            calls=[call_row(call_id, tenant=tenant, initiated_at=T0, updated_at=T0)],
            commands=[command_row(str(uuid.uuid4()), tenant=tenant, call_id=call_id, created_at=T0, updated_at=T0)],
            usage=[placed((tenant, ""), 1, T0 + timedelta(milliseconds=n), caps(live=13, minute=30))],
        )
        try:
            write_batch(engine, batch, fresh=True)
            outcomes.append("placed")
        except IntegrityError as exc:
            assert is_over_limit(exc)
            outcomes.append("refused")

    try:
        gevent.joinall([gevent.spawn(place, engines[n % 4], n) for n in range(40)], raise_error=True)
        with engines[0].connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM calls WHERE tenant = :t"), {"t": tenant}).scalar_one()
    finally:
        for engine in engines:
            engine.dispose()
    assert outcomes.count("placed") == 13 == stored
    usage = read_usage(make_engine(pg_url), [(tenant, "")])[(tenant, "")]
    assert usage.live == 13 and usage.minute_used == 13


def test_a_cap_refusal_names_its_constraint(shared_engine: Engine) -> None:
    with shared_engine.begin() as conn:
        conn.execute(text("DELETE FROM policy_usage WHERE tenant = 'acme'"))
    write_batch(shared_engine, Batch(usage=[placed(ACME, 1, T0, caps(day=1))]))
    with pytest.raises(IntegrityError) as refused:
        write_batch(shared_engine, Batch(usage=[placed(ACME, 1, T0, caps(day=1))]))
    assert is_over_limit(refused.value)
    assert refused.value.orig.diag.constraint_name == "ck_policy_usage_day"  # type: ignore[union-attr]
