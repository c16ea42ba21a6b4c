"""Bring the database schema to the newest revision, programmatically.

The revisions live in `callworker/store/migrations/`, inside the package, so an
installed worker (a wheel, a plain `pip install`) carries them. The Alembic
configuration is built here; alembic.ini at the repository root is for developers
and is never read, and logging is left as the caller set it up.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from callworker.store.db import make_engine, unavailable

__all__ = ["migrate", "migrate_engine", "MIGRATIONS_DIR"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# alembic keeps the running migration in module globals, so two at once in one
# process would trample each other. Across processes, env.py takes a database lock.
_ONE_AT_A_TIME = threading.Lock()


def _config() -> Config:
    config = Config()
    # Config options go through configparser interpolation: escape any "%".
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate_engine(engine: Engine) -> None:
    """Upgrade the database behind `engine` to head (the only way for in-memory SQLite)."""
    config = _config()
    try:
        with _ONE_AT_A_TIME, engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (IntegrityError, DataError):
        raise
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None
    log.info("database schema at head (%s)", engine.url.render_as_string(hide_password=True))


def migrate(url: str) -> None:
    """Upgrade the database at `url` to head; harmless when it is already there."""
    engine = make_engine(url)
    try:
        migrate_engine(engine)
    finally:
        engine.dispose()
