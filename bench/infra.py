"""The machinery around each run: a fresh database and vhost, the worker and simulator processes.

Every run gets its own PostgreSQL database and RabbitMQ vhost, created here and
dropped afterwards, so runs cannot see each other's rows or queues. The worker is
the real ``callworker run`` in a process of its own; the simulator runs in another
(``bench/sim_proc.py``), and the driver (this process) only publishes commands and
collects what comes back, so the three share the machine's cores as they would in
production rather than one interpreter.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.common import log

__all__ = [
    "LOG_DIR",
    "REPO",
    "CpuMeter",
    "SimulatorProcess",
    "WorkerProcess",
    "cpu_seconds",
    "free_port",
    "fresh_database",
    "fresh_vhost",
    "machine_busy",
    "rss_bytes",
    "wait_for_quiet",
]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOG_DIR = REPO / "bench-results" / "logs"
PG_ADMIN = os.environ.get("CALLWORKER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("CALLWORKER_BENCH_AMQP_HOST", "127.0.0.1:5672")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database (SQLAlchemy URL), dropped on exit."""
    name = f"callworker_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        _checkpoint(conn)
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _checkpoint(conn: psycopg.Connection[Any]) -> None:
    """Write out what earlier runs left dirty now, so that its disk writes (and the
    slow commits they cause) do not fall into the run about to start."""
    try:
        conn.execute("CHECKPOINT")
    except psycopg.Error as exc:
        log(f"CHECKPOINT refused ({exc.__class__.__name__}); earlier runs' writes may overlap this one")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A new RabbitMQ vhost (AMQP URL for guest), deleted on exit."""
    vhost = f"callworker-bench-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident set size from /proc/<pid>/status (VmRSS; VmHWM for the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _group_ticks() -> dict[str, int]:
    """CPU ticks so far of RabbitMQ (beam.smp) and PostgreSQL (every postgres process).

    Backends come and go: an ended one's time moves into its parent's (the
    postmaster's) children time once reaped, so that is counted too.
    """
    ticks = {"rabbitmq": 0, "postgres": 0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.find("(") + 1 : text.rfind(")")]
        group = "rabbitmq" if comm == "beam.smp" else "postgres" if comm == "postgres" else None
        if group is not None:
            fields = text.rsplit(")", 1)[1].split()
            ticks[group] += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks


def _busy_ticks() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def machine_busy(seconds: float = 2.0) -> float:
    """Cores in use on the whole machine over the next ``seconds``."""
    start = _busy_ticks()
    time.sleep(seconds)
    return (_busy_ticks() - start) / _CLK_TCK / seconds


def wait_for_quiet(max_wait: float, threshold: float = 0.35) -> float:
    """Wait (up to ``max_wait``) until the machine is nearly idle; returns the last load seen.

    Other programs on the machine (a test suite, a build) take the cores the
    benchmark measures; starting a run in the middle of one skews every figure.
    """
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    if busy > threshold:
        log(f"the machine is busy ({busy:.2f} cores in use); waiting up to {max_wait:g}s for quiet")
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy()
    if busy > threshold:
        log(f"still {busy:.2f} cores busy; running anyway (see 'other' in the CPU notes)")
    return busy


class CpuMeter:
    """Where the machine's CPU went between ``start()`` and ``shares()``, in cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = {**pids, "driver": os.getpid()}
        self._start: dict[str, int] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, int]:
        sample = {name: round(cpu_seconds(pid) * _CLK_TCK) for name, pid in self._pids.items()}
        sample.update(_group_ticks())
        sample["busy"] = _busy_ticks()
        return sample

    def start(self) -> None:
        self._start = self._sample()
        self._t0 = time.monotonic()

    def shares(self) -> dict[str, float]:
        """Cores used per part, ``other`` being everything else on the machine."""
        end = self._sample()
        seconds = max(time.monotonic() - self._t0, 1e-9)
        used = {k: (end[k] - self._start[k]) / _CLK_TCK / seconds for k in end}
        known = sum(v for k, v in used.items() if k != "busy")
        used["other"] = max(0.0, used["busy"] - known)
        return used


def _stop(proc: subprocess.Popen[Any], what: str, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{what} did not stop within {timeout:g}s; killing it")
            proc.kill()
            proc.wait()


@dataclass
class SimulatorProcess:
    """``bench/sim_proc.py``: the simulator with the delays asked for, in its own process."""

    ring_delay: float = 0.1
    answer_delay: float = 0.2
    far_end_hangup_after: float = 1.0
    name: str = "sim"
    address: tuple[str, int] = ("127.0.0.1", 0)
    report: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[str] | None = None

    def start(self) -> SimulatorProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / f"{self.name}.log", "w") as stderr:  # the child keeps its own copy
            self._proc = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "sim_proc.py"),
                 "--ring-delay", str(self.ring_delay), "--answer-delay", str(self.answer_delay),
                 "--far-end-hangup-after", str(self.far_end_hangup_after)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO,
            )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 3 or line[0] != "listening":
            raise RuntimeError(f"the simulator did not start (see {LOG_DIR / self.name}.log)")
        self.address = (line[1], int(line[2]))
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> dict[str, Any]:
        """Stop it and return its own report (event-loop lag, counters)."""
        if self._proc is None:
            return self.report
        _stop(self._proc, "the simulator")
        assert self._proc.stdout is not None
        for line in self._proc.stdout.read().splitlines():
            if line.startswith("{"):
                self.report = json.loads(line)
        self._proc = None
        return self.report


@dataclass
class WorkerProcess:
    """``callworker run`` against a simulator, a database and a vhost."""

    database_url: str
    amqp_url: str
    esl: tuple[str, int]
    name: str = "worker"
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = 0
    # Another way to start the same worker (e.g. under a profiler); default `callworker run`.
    command: list[str] | None = None
    _proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        env = {
            **os.environ,
            "CALLWORKER_DATABASE_URL": self.database_url,
            "CALLWORKER_AMQP_URL": self.amqp_url,
            "CALLWORKER_ESL_HOST": self.esl[0],
            "CALLWORKER_ESL_PORT": str(self.esl[1]),
            "CALLWORKER_NODE_ID": "bench",
            "CALLWORKER_HTTP_HOST": "127.0.0.1",
            "CALLWORKER_HTTP_PORT": str(self.http_port),
            "CALLWORKER_SOCKET_HOST": "127.0.0.1",
            "CALLWORKER_SOCKET_PORT": str(free_port()),
            "CALLWORKER_FLASHCALL_HMAC_KEY": "bench-flashcall-hmac-key",
            **self.env,
        }
        command = self.command or [str(BIN / "callworker"), "--log-level", "WARNING", "run"]
        with open(LOG_DIR / f"{self.name}.log", "w") as stderr:
            self._proc = subprocess.Popen(
                command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"the worker exited (see {LOG_DIR / self.name}.log)")
            try:
                ok, _body = self.health()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the worker did not become healthy in time")

    def health(self) -> tuple[bool, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return True, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return False, json.loads(exc.read() or b"{}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc, "the worker", timeout=30.0)
            self._proc = None
