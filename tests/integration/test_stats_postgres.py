"""stats.get's figures on a real PostgreSQL (percentile_cont, date_trunc): the same contract as SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, text

from callworker.store import make_engine, migrate
from callworker.store.models import metadata
from callworker.store.stats import call_stats
from tests.component.test_store_stats import FROM, TO, StatsContract, seed
from tests.integration.test_store_postgres import database_factory  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stats_engine(database_factory: object) -> Iterator[Engine]:  # noqa: F811
    url = database_factory()  # type: ignore[operator]
    migrate(url)
    engine = make_engine(url, pool_size=2)
    yield engine
    engine.dispose()


class TestStatsPostgres(StatsContract):
    @pytest.fixture
    def engine(self, stats_engine: Engine) -> Engine:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with stats_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return stats_engine


def test_hours_and_days_are_utc_whatever_the_sessions_time_zone(stats_engine: Engine) -> None:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with stats_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    seed(stats_engine)
    url = stats_engine.url.render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=2)
    # Fourteen hours ahead of UTC: 10:00 UTC is midnight of the next day there.
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("SET TIME ZONE 'Pacific/Kiritimati'"))
    try:
        hours = call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="hour")
        days = call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="day")
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TIME ZONE")).scalar() == "Pacific/Kiritimati"
    finally:
        engine.dispose()
    assert [g["key"] for g in hours] == ["2026-11-22T10:00:00+00:00", "2026-11-22T11:00:00+00:00"]
    assert [g["key"] for g in days] == ["2026-11-22"]
