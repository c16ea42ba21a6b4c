"""stats.get's figures on a real PostgreSQL (percentile_cont, date_trunc): the same contract as SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from callworker.store import make_engine, migrate
from callworker.store.models import metadata
from tests.component.test_store_stats import StatsContract
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
