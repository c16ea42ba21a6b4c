"""The worker as a real process (``callworker run``), so a test can SIGKILL it and start it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["WorkerProcess"]

CALLWORKER = Path(sys.executable).with_name("callworker")


class WorkerProcess:
    """One ``callworker run`` at a time, configured by ``env``; its output goes to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.http_port = int(env["CALLWORKER_HTTP_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the worker is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            self.proc = subprocess.Popen(
                [str(CALLWORKER), "--log-level", "INFO", "run"],
                env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no drain, no flush; whatever was in memory is gone."""
        proc = self._running()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: the worker drains and stops; returns its exit code."""
        proc = self._running()
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None and self.proc.poll() is None, "the worker is not running"
        return self.proc

    # ---------------------------------------------------------------- health

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, body) of /healthz, or None when nothing answers."""
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (OSError, ValueError):
            return None

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics, by metric name (samples without labels)."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if line and not line.startswith("#") and "{" not in name:
                found[name] = float(value)
        return found

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        """Poll /healthz until it answers 200; the body."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"the worker exited ({self.proc and self.proc.returncode}); see {self.log_path}")
            last = self.health()
            if last is not None and last[0] == 200:
                return last[1]
            self._watch(0.1)
        raise AssertionError(f"the worker was not healthy within {timeout} s: {last}; see {self.log_path}")

    def wait_health(self, predicate: Any, timeout: float) -> dict[str, Any] | None:
        """Poll /healthz until ``predicate(status, body)`` holds; the body, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.health()
            if answer is not None and predicate(*answer):
                return answer[1]
            self._watch(0.1)
        return None

    def _watch(self, timeout: float) -> None:
        """Between two polls of /healthz, wait on the process itself (an exit ends the wait)."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
