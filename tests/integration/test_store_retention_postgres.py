"""Retention on PostgreSQL: the same contract as on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from callworker.store.models import metadata
from tests.component.test_store_retention import RetentionContract
from tests.integration.test_store_privacy_postgres import own_engine  # noqa: F401 - the module's database

pytestmark = pytest.mark.integration


class TestRetentionPostgres(RetentionContract):
    @pytest.fixture
    def engine(self, own_engine: Engine) -> Engine:  # noqa: F811
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with own_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return own_engine
