"""Engines for SQLite and PostgreSQL, and the one place database errors are translated.

Pools follow what gevent allows: SQLite never yields to other greenlets, so a file
database gets exactly one pooled connection (greenlets queue for it instead of
fighting over SQLite's lock), and an in-memory one a single shared connection
(otherwise each greenlet would see its own empty database). PostgreSQL yields
cooperatively through psycopg 3 and gets an ordinary pool.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Executable, create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from callworker.errors import ConfigError, StoreUnavailable

__all__ = [
    "make_engine",
    "normalise_url",
    "ping",
    "guarded",
    "unavailable",
    "autocommit",
    "fetch_one",
    "fetch_all",
]

P = ParamSpec("P")
R = TypeVar("R")

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


def normalise_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean psycopg 3; everything else is left alone."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _parse(url: str) -> URL:
    try:
        return make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        # The parser's message repeats the whole URL, password included, or the
        # part it took for a port (a password in the wrong place).
        raise ConfigError("the database URL cannot be parsed") from None


def _is_memory(url: URL) -> bool:
    return (url.database or "") in ("", ":memory:") or url.query.get("mode") == "memory"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def make_engine(url: str, *, pool_size: int = 100) -> Engine:
    """An engine for `url` (SQLite file or memory, or PostgreSQL through psycopg 3)."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False}
        if _is_memory(parsed):
            engine = create_engine(parsed, poolclass=StaticPool, connect_args=connect_args)
        else:
            engine = create_engine(parsed, pool_size=1, max_overflow=0, connect_args=connect_args)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    # Every command greenlet may hold a connection at once: a pool smaller than that
    # closes and reopens connections under load (measured: a third of a new
    # PostgreSQL connection per call at 300 calls/s). No pre-ping: it costs a round
    # trip per checkout; a connection broken by an outage fails once, SQLAlchemy
    # invalidates the pool, and every caller retries.
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        connect_args={"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {},
    )


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def autocommit(engine: Engine) -> Engine:
    """The engine whose connections run each statement as its own transaction.

    For a single statement that is all the atomicity needed, and on PostgreSQL it
    saves the round trips of BEGIN and of the ROLLBACK or COMMIT after it. SQLite
    has no round trips to save and keeps its usual transactions.
    """
    if engine.dialect.name != "postgresql":
        return engine
    shared = _AUTOCOMMIT.get(engine)
    if shared is None:
        shared = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return shared


def fetch_one(engine: Engine, stmt: Executable, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The first row of a single read (with values for its bound parameters) as a plain dict, or None."""
    with autocommit(engine).connect() as conn:
        row = conn.execute(stmt, params).mappings().first()
    return dict(row) if row is not None else None


def fetch_all(engine: Engine, stmt: Executable) -> list[dict[str, Any]]:
    """Every row of a single read as plain dicts."""
    with autocommit(engine).connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings()]


def unavailable(engine: Engine, exc: DBAPIError) -> StoreUnavailable:
    """StoreUnavailable naming where we tried to go and the driver's first line, no password."""
    where = engine.url.render_as_string(hide_password=True)
    text_ = str(exc.orig).strip()
    detail = text_.splitlines()[0] if text_ else ""
    password = engine.url.password
    if password:
        detail = detail.replace(str(password), "***")
    return StoreUnavailable(f"database unavailable ({where}): {type(exc.orig).__name__}: {detail}")


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Turn database failures of `func(engine, ...)` into StoreUnavailable.

    Integrity and data errors are about the rows, not the database: retrying will
    not help, so they propagate unchanged for the caller to handle.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (IntegrityError, DataError):
            raise
        except DBAPIError as exc:
            engine = args[0]
            assert isinstance(engine, Engine)
            raise unavailable(engine, exc) from None
        except PoolTimeout:
            raise StoreUnavailable("database unavailable: no pooled connection came free") from None

    return wrapper


@guarded
def ping(engine: Engine) -> None:
    """Raise StoreUnavailable unless the database answers `SELECT 1`."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
