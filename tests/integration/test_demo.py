"""`callworker demo` runs as a newcomer starts it: no settings but RabbitMQ's address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CALLWORKER = Path(sys.executable).with_name("callworker")


def test_demo_runs_without_a_flashcall_key_of_its_own(tmp_path: Path, amqp_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
    env.update(CALLWORKER_AMQP_URL=amqp_url, CALLWORKER_HTTP_PORT="0", CALLWORKER_SOCKET_PORT="0")
    done = subprocess.run([str(CALLWORKER), "demo", "--hangup-after", "0.2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done:" in done.stdout and "CALLWORKER_FLASHCALL_HMAC_KEY" not in done.stderr
    assert (tmp_path / "callworker.sqlite3").exists()  # the embedded default, in the working directory
