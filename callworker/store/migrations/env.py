"""Alembic environment for callworker.

Run programmatically by `callworker.store.migrate.migrate` (`callworker migrate`,
`callworker run`), which hands over an open connection in
`config.attributes["connection"]` and leaves logging alone. Developers may also run
`alembic upgrade head` (or `alembic revision`) from the repository root, whose
alembic.ini points here: the URL then comes from `-x url=...`, `sqlalchemy.url` in
alembic.ini, or CALLWORKER_DATABASE_URL, in that order, and alembic.ini configures
logging.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from callworker.store.db import make_engine, normalise_url
from callworker.store.models import metadata

config = context.config

# Serialises concurrent migrations of several workers sharing one PostgreSQL database.
MIGRATION_LOCK_KEY = 0x63616C6C  # "call"

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("CALLWORKER_DATABASE_URL")
    )
    if not url:
        raise SystemExit(
            "no database URL: pass -x url=..., set sqlalchemy.url or CALLWORKER_DATABASE_URL"
        )
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends; the next worker then finds head applied.
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL for the URL's dialect instead of running it."""
    context.configure(
        url=normalise_url(_url()),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
