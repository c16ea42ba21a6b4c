"""One benchmark stack: database, vhost, simulator, worker and driver, up and torn down together.

Also the checks every traffic figure shares: waiting until each call has its CDR
event, the zero-loss audit (a reply per command, one terminal event and one
``call.cdr`` per call, gapless ``seq``, the CDR rows in PostgreSQL) and the
latencies read off what the driver stamped.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from bench.common import log
from bench.driver import CallLog, Driver
from bench.infra import (
    LOG_DIR,
    CpuMeter,
    SimulatorProcess,
    WorkerProcess,
    fresh_database,
    fresh_vhost,
    wait_for_quiet,
)

__all__ = [
    "Audit",
    "Stack",
    "audit",
    "describe_cpu",
    "event_delays_ms",
    "reply_rtts_ms",
    "stack",
    "wait_for_cdrs",
]

TERMINAL = ("call.completed", "call.failed", "call.cancelled")


@dataclass
class Stack:
    database_url: str
    amqp_url: str
    simulator: SimulatorProcess
    worker: WorkerProcess
    driver: Driver
    tenant: str
    meter: CpuMeter | None = None

    def mark_cpu(self) -> None:
        self.meter = CpuMeter({"worker": self.worker.pid, "simulator": self.simulator.pid})
        self.meter.start()

    def cpu_share(self) -> dict[str, float]:
        """Cores used since ``mark_cpu``: worker, simulator, driver, rabbitmq, postgres, other."""
        assert self.meter is not None
        return self.meter.shares()

    def cdr_rows(self, call_ids: list[str]) -> int:
        """CDR rows stored in PostgreSQL for these calls."""
        url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM cdrs WHERE call_id = ANY(%s)",
                               (call_ids,)).fetchone()
        return int(row[0]) if row else 0


def policy_file(name: str, tenant: str) -> str:
    """A policy limiting ``tenant`` far above what a run places, and rating its calls.

    Every call is then counted and checked against the tenant's caps (minute, day,
    calls up at once) in the write that stores it, and its CDR is costed; none is
    refused, so the figures stay comparable with a run without a policy.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{name}-policy.yaml"
    path.write_text(
        f"tenants:\n  {tenant}:\n    can_call: true\n    calls_per_minute: 1000000\n"
        f"    calls_per_day: 100000000\n    max_concurrent: 100000\n"
        f"    rates:\n      - {{prefix: \"+1\", cents_per_minute: 1, increment_s: 6, min_s: 30}}\n"
    )
    return str(path)


@contextmanager
def stack(name: str, *, ring_delay: float = 0.1, answer_delay: float = 0.2,
          far_end_hangup_after: float = 1.0, worker_env: dict[str, str] | None = None,
          worker_command: list[str] | None = None, quiet_wait: float = 0.0,
          policy: bool = False) -> Iterator[Stack]:
    if quiet_wait > 0:
        wait_for_quiet(quiet_wait)
    tenant = f"b{uuid.uuid4().hex[:8]}"
    env = dict(worker_env or {})
    if policy:
        env["CALLWORKER_POLICY_FILE"] = policy_file(name, tenant)
    with ExitStack() as exits:
        _freeze_earlier_runs()
        exits.callback(gc.unfreeze)
        database = exits.enter_context(fresh_database())
        amqp = exits.enter_context(fresh_vhost())
        simulator = SimulatorProcess(ring_delay, answer_delay, far_end_hangup_after,
                                     name=f"{name}-simulator").start()
        exits.callback(lambda: _report_simulator(simulator))
        worker = WorkerProcess(database, amqp, simulator.address, name=f"{name}-worker",
                               env=env, command=worker_command).start()
        exits.callback(worker.stop)
        driver = Driver(amqp, tenant).start()
        exits.callback(driver.close)
        yield Stack(database, amqp, simulator, worker, driver, tenant)


def _freeze_earlier_runs() -> None:
    """Keep what earlier runs left in this process out of the driver's garbage collection.

    The driver stamps every reply and event on this process's hub; a full collection
    that walks the hundreds of thousands of objects a CPS figure leaves behind paused it
    for ~350 ms in the latency run after it, and that pause was counted as the worker's.
    """
    gc.collect()
    gc.freeze()


def _report_simulator(simulator: SimulatorProcess) -> None:
    report = simulator.stop()
    if report:
        log(f"simulator: hub lag p99 {report['lag_p99_ms']:.1f} ms, max {report['lag_max_ms']:.0f} ms, "
            f"{report['calls']} calls, {report['events_sent']} events, cpu {report['cpu_s']:.1f} s")


def wait_for_cdrs(driver: Driver, call_ids: list[str], timeout: float) -> float:
    """Wait until every call has its ``call.cdr`` event; returns when the last one came."""
    deadline = time.monotonic() + timeout
    pending = set(call_ids)
    last = 0.0
    while pending and time.monotonic() < deadline:
        done = set()
        for call_id in pending:
            events = driver.calls[call_id].events
            cdr = next((e for e in events if e.type == "call.cdr"), None)
            if cdr is not None:
                done.add(call_id)
                last = max(last, cdr.received)
        pending -= done
        if pending:
            time.sleep(0.1)
    if pending:
        log(f"{len(pending)} of {len(call_ids)} calls had no call.cdr after {timeout:g}s")
    return last


@dataclass
class Audit:
    calls: int
    problems: dict[str, int]
    cdr_rows: int

    @property
    def clean(self) -> bool:
        return not any(self.problems.values()) and self.cdr_rows == self.calls

    def describe(self) -> str:
        if self.clean:
            return f"zero loss over {self.calls:,} calls"
        found = ", ".join(f"{k}: {v}" for k, v in self.problems.items() if v)
        return f"LOSS over {self.calls:,} calls ({found}; CDR rows {self.cdr_rows:,})"


def audit(st: Stack, call_ids: list[str]) -> Audit:
    problems = {"no reply": 0, "refused": 0, "terminal events != 1": 0, "cdr events != 1": 0,
                "seq not 1..n": 0}
    for call_id in call_ids:
        call: CallLog = st.driver.calls[call_id]
        if call.reply is None:
            problems["no reply"] += 1
        elif not call.reply.ok:
            problems["refused"] += 1
        unique = {e.event_id: e for e in call.events}.values()  # consumers dedupe by event_id
        types = [e.type for e in unique]
        if sum(t in TERMINAL for t in types) != 1:
            problems["terminal events != 1"] += 1
        if types.count("call.cdr") != 1:
            problems["cdr events != 1"] += 1
        if sorted(e.seq for e in unique) != list(range(1, len(types) + 1)):
            problems["seq not 1..n"] += 1
    return Audit(len(call_ids), problems, st.cdr_rows(call_ids))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def event_delays_ms(driver: Driver, call_ids: list[str], types: tuple[str, ...]) -> list[float]:
    """FreeSWITCH event time (``occurred_at``) to receipt at the driver, per event."""
    delays = []
    for call_id in call_ids:
        for event in driver.calls[call_id].events:
            if event.type in types:
                delays.append((event.received - _epoch(event.occurred_at)) * 1000)
    return delays


def reply_rtts_ms(driver: Driver, keys: list[str]) -> list[float]:
    out = []
    for key in keys:
        call: Any = driver.calls[key]
        if call.reply is not None:
            out.append((call.reply.received - call.sent) * 1000)
    return out


def slow_episodes(driver: Driver, keys: list[str], over_ms: float, gap_s: float = 0.1) -> str:
    """How the replies slower than ``over_ms`` fall in time: spread out, or a few pauses.

    Slow replies whose commands were sent within ``gap_s`` of the previous slow one
    form one episode; a handful of episodes holding most of them is a pause of
    something on the path (the disk, a process), not a slow path.
    """
    slow = sorted(
        (call.sent, (call.reply.received - call.sent) * 1000)
        for call in (driver.calls[key] for key in keys)
        if call.reply is not None and (call.reply.received - call.sent) * 1000 > over_ms
    )
    if not slow:
        return f"no reply over {over_ms:g} ms"
    episodes: list[list[tuple[float, float]]] = [[slow[0]]]
    for sent, rtt in slow[1:]:
        if sent - episodes[-1][-1][0] <= gap_s:
            episodes[-1].append((sent, rtt))
        else:
            episodes.append([(sent, rtt)])
    longest = max(episodes, key=len)
    return (f"{len(slow)} replies over {over_ms:g} ms in {len(episodes)} episode(s); the largest: "
            f"{len(longest)} replies sent over {(longest[-1][0] - longest[0][0]) * 1000:.0f} ms, "
            f"the slowest {max(rtt for _, rtt in longest):.0f} ms")


def describe_cpu(cpu: dict[str, float]) -> str:
    parts = ["worker", "simulator", "driver", "rabbitmq", "postgres", "other"]
    return "CPU in cores (of 2): " + ", ".join(f"{p} {cpu.get(p, 0.0):.2f}" for p in parts)
