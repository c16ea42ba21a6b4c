"""`callworker run` refuses to start without a flash-call HMAC key (the demo: test_demo.py).

The worker runs as operators start it, a process of its own; the refusal comes before
anything is touched: the database named in its environment is never created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from callworker.app import Worker
from callworker.config import Settings
from callworker.errors import ConfigError

CALLWORKER = Path(sys.executable).with_name("callworker")
KEY = "CALLWORKER_FLASHCALL_HMAC_KEY"


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    database = tmp_path / "never.sqlite3"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
    done = subprocess.run(
        [str(CALLWORKER), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={**base, "CALLWORKER_DATABASE_URL": f"sqlite:///{database}",
             # Nothing listens there: had it started, the worker would only wait.
             "CALLWORKER_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
             "CALLWORKER_ESL_PORT": "1", "CALLWORKER_HTTP_PORT": "0", "CALLWORKER_SOCKET_PORT": "0",
             **env},
    )
    return done, database


@pytest.mark.parametrize("value", [None, "", "   ", "short-key"], ids=["unset", "empty", "blank", "short"])
def test_run_refuses_to_start_without_a_usable_key(tmp_path: Path, value: str | None) -> None:
    done, database = _run(tmp_path, **({} if value is None else {KEY: value}))
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and KEY in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not database.exists()


def test_a_worker_without_a_key_touches_nothing(tmp_path: Path) -> None:
    database = tmp_path / "never.sqlite3"
    with pytest.raises(ConfigError, match=KEY):
        Worker(Settings(database_url=SecretStr(f"sqlite:///{database}")))
    assert not database.exists()


def test_the_key_is_kept_out_of_the_settings_repr() -> None:
    settings = Settings(flashcall_hmac_key=SecretStr("k" * 40))
    assert settings.flashcall_key() == b"k" * 40
    assert "k" * 40 not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [
    ("CALLWORKER_SOCKET_ALLOW", "freeswitch.example"),
    ("CALLWORKER_ESL_PORT", "eighty"),
    ("CALLWORKER_WRITE_LINGER_MS", "-5"),
])
def test_run_refuses_a_malformed_setting_in_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    done, database = _run(tmp_path, **{KEY: "k" * 32, name: value})
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not database.exists()
