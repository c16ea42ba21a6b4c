"""Export and erasure on PostgreSQL: the same contract as on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from callworker.store import make_engine, migrate
from callworker.store.models import metadata
from tests.component.test_store_privacy import PrivacyContract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_engine(pg_url: str) -> Iterator[Engine]:
    """A database of this module's own: its tests empty every table."""
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"callworker_privacy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_url.rsplit('/', 1)[0]}/{name}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestPrivacyPostgres(PrivacyContract):
    @pytest.fixture
    def engine(self, own_engine: Engine) -> Engine:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with own_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return own_engine
