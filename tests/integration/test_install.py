"""A plain, non-editable install carries its migrations: `callworker migrate` works from it.

The project is installed with pip into a directory of its own (no editable link back
to this checkout), then run from an empty working directory with only that directory
on its path, against a fresh SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect, text

from callworker.store import make_engine
from callworker.store.models import metadata

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed with pip into a directory of its own, from a copy of its sources."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "callworker", source / "callworker",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return target


def _run(installed: Path, tmp_path: Path, database_url: str, *command: str) -> subprocess.CompletedProcess[str]:
    """A command in an empty directory, the installed copy first on the path."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(installed), "CALLWORKER_DATABASE_URL": database_url}
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _assert_migrated(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == "0006"
    finally:
        engine.dispose()


def test_the_installed_copy_holds_its_migrations(installed: Path, tmp_path: Path) -> None:
    probe = "from callworker.store.migrate import MIGRATIONS_DIR; print(MIGRATIONS_DIR)"
    done = _run(installed, tmp_path, "sqlite://", sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    migrations = Path(done.stdout.strip())
    assert migrations.is_relative_to(installed)
    revisions = sorted(p.name for p in (ROOT / "callworker" / "store" / "migrations" / "versions").glob("*.py"))
    assert len(revisions) >= 2
    assert sorted(p.name for p in (migrations / "versions").glob("*.py")) == revisions
    assert (migrations / "env.py").is_file() and (migrations / "script.py.mako").is_file()


def test_console_script_migrates_a_fresh_sqlite_file(installed: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    done = _run(installed, tmp_path, url, str(installed / "bin" / "callworker"), "migrate")
    assert done.returncode == 0, done.stderr
    assert "latest schema" in done.stdout
    _assert_migrated(url)


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards."""
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"callworker_install_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_python_m_callworker_migrates_a_fresh_postgresql_database(
    installed: Path, tmp_path: Path, fresh_pg: str
) -> None:
    done = _run(installed, tmp_path, fresh_pg, sys.executable, "-m", "callworker", "migrate")
    assert done.returncode == 0, done.stderr
    _assert_migrated(fresh_pg)


def test_the_installed_copy_serves_the_dashboards_own_files(installed: Path, tmp_path: Path) -> None:
    probe = ("from importlib import resources; import callworker.dashboard as d; "
             "print(resources.files(d).joinpath('static'))")
    done = _run(installed, tmp_path, "sqlite://", sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    static = Path(done.stdout.strip())
    assert static.is_relative_to(installed)
    assert sorted(p.name for p in static.iterdir()) == ["dashboard.css", "dashboard.html", "dashboard.js"]
