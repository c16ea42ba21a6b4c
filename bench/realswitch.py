"""Figure: calls per second through the worker on a real FreeSWITCH, beside a bare ESL client.

Strategy: one real FreeSWITCH 1.10 (``tests/freeswitch/realswitch.py``: the shipped
``freeswitch-conf/`` with a fake carrier on loopback, real SIP and RTP between two
profiles) takes the same burst of calls twice in one run: first from a bare ESL client
that sends ``bgapi originate`` back to back (what the switch itself can take), then
through the worker (``originate`` commands published to RabbitMQ as fast as the driver
publishes). The calls go to a number the carrier answers and hangs up after 2 s. A
watcher on the switch's event socket stamps every answer of the leg under test, the
same way for both; the rate is answered calls per second from the first originate sent
to the last answer.

The switch gets a core of its own in both runs, and everything else (the worker, the
driver, RabbitMQ, PostgreSQL) the others, as a FreeSWITCH host would have its own
machine: on a shared two-core box the switch's ~16 ms of CPU per call and the pipeline's
~6 ms would otherwise compete, and the comparison would measure the machine, not
whether the worker keeps up with the switch. Through the worker every call must also be clean: a reply, one
terminal event and one CDR event, gapless ``seq``, the CDR row in PostgreSQL.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import gevent.queue

from bench.common import Options, Row, log, median
from bench.driver import Driver
from bench.infra import CpuMeter, WorkerProcess, fresh_database, fresh_vhost, wait_for_quiet
from bench.stack import TERMINAL, wait_for_cdrs
from callworker.esl import builders
from callworker.esl.codec import Event
from tests.freeswitch.realswitch import Ports, RealSwitch, SwitchUnavailable, find_tree

__all__ = ["run"]

_NUMBER = "+15551230200"  # the carrier answers, then hangs up after 2 s
_TARGET_RATIO = 0.9


class _Watcher:
    """Stamps the answer of every leg under test (sofia/external/...)."""

    def __init__(self, switch: RealSwitch) -> None:
        self.answered: dict[str, float] = {}
        self.ended: set[str] = set()
        self.refused: set[str] = set()
        self._client = switch.client(events="CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB")
        self._greenlet = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            event: Event = self._client.events.get()
            if event.name == "BACKGROUND_JOB":
                # Originates are sent with Job-UUID = call_id; -ERR: no channel was made.
                if (event.body or "").startswith("-ERR"):
                    self.refused.add(event.get("Job-UUID") or "")
                continue
            if not (event.get("Channel-Name") or "").startswith("sofia/external/"):
                continue
            uid = event.get("Unique-ID") or ""
            if event.name == "CHANNEL_ANSWER":
                self.answered.setdefault(uid, time.time())
            else:
                self.ended.add(uid)

    def wait(self, call_ids: list[str], timeout: float) -> float:
        """Until every call has ended; the time of the last answer among them."""
        deadline = time.monotonic() + timeout
        while not (self.ended | self.refused).issuperset(call_ids) and time.monotonic() < deadline:
            gevent.sleep(0.1)
        answers = [self.answered[c] for c in call_ids if c in self.answered]
        return max(answers) if answers else float("nan")

    def close(self) -> None:
        self._greenlet.kill()
        self._client.close()


_PARTS = ("freeswitch", "worker", "rabbitmq", "postgres", "driver", "other")


def _cpu_per_call(meter: CpuMeter, seconds: float, calls: int) -> dict[str, float]:
    """Milliseconds of CPU per call, by part, over a phase."""
    shares = meter.shares()
    return {part: 1000 * shares.get(part, 0.0) * seconds / calls for part in _PARTS}


def _bare_client_rate(switch: RealSwitch, watcher: _Watcher, calls: int) -> tuple[float, int, dict[str, float]]:
    """Answered calls per second when a bare ESL client places the burst."""
    ids = [str(uuid.uuid4()) for _ in range(calls)]
    assert switch.proc is not None
    meter = CpuMeter({"freeswitch": switch.proc.pid})
    with switch.client() as client:
        meter.start()
        started = time.time()
        for call_id in ids:
            dial = builders.originate(call_id=call_id, destination_number=_NUMBER, gateway="default",
                                      timeout_s=30, caller_id_number="+15550000000")
            client.bgapi(dial)
        last = watcher.wait(ids, timeout=120)
        cpu = _cpu_per_call(meter, time.time() - started, calls)
    answered = sum(c in watcher.answered for c in ids)
    return answered / max(last - started, 1e-9), answered, cpu


def _worker_rate(
    switch: RealSwitch, watcher: _Watcher, calls: int, name: str,
) -> tuple[float, int, str, dict[str, float]]:
    """Answered calls per second when the burst goes through the worker; and the loss audit."""
    with fresh_database() as database, fresh_vhost() as amqp:
        worker = WorkerProcess(database, amqp, ("127.0.0.1", switch.ports.esl), name=f"{name}-worker", env={
            "CALLWORKER_ESL_PASSWORD": switch.password,
            "CALLWORKER_GATEWAYS": "default",
            "CALLWORKER_DEFAULT_GATEWAY": "default",
            "CALLWORKER_FLASHCALL_HMAC_KEY": uuid.uuid4().hex,
            "CALLWORKER_SOCKET_PORT": str(switch.ports.socket),
        }).start()
        driver = Driver(amqp, f"b{uuid.uuid4().hex[:8]}").start()
        assert switch.proc is not None
        meter = CpuMeter({"freeswitch": switch.proc.pid, "worker": worker.pid})
        try:
            meter.start()
            started = time.time()
            ids = [driver.originate(_NUMBER) for _ in range(calls)]
            last = watcher.wait(ids, timeout=120)
            wait_for_cdrs(driver, ids, timeout=60)
            cpu = _cpu_per_call(meter, time.time() - started, calls)
            answered = sum(c in watcher.answered for c in ids)
            return answered / max(last - started, 1e-9), answered, _loss(driver, ids, database), cpu
        finally:
            driver.close()
            worker.stop()


def _loss(driver: Driver, ids: list[str], database: str) -> str:
    import psycopg

    problems = 0
    for call_id in ids:
        call = driver.calls[call_id]
        unique = {e.event_id: e for e in call.events}.values()
        types = [e.type for e in unique]
        if (call.reply is None or not call.reply.ok or sum(t in TERMINAL for t in types) != 1
                or types.count("call.cdr") != 1 or sorted(e.seq for e in unique) != list(range(1, len(types) + 1))):
            problems += 1
    with psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        row = conn.execute("SELECT count(*) FROM cdrs WHERE call_id = ANY(%s)", (ids,)).fetchone()
    rows = int(row[0]) if row else 0
    if problems == 0 and rows == len(ids):
        return f"zero loss over {len(ids):,} calls"
    return f"LOSS: {problems} calls incomplete, {rows:,} CDR rows of {len(ids):,}"


def run(options: Options) -> list[Row]:
    figure = "calls per second on a real FreeSWITCH: through the worker against a bare ESL client, one run"
    try:
        tree = find_tree()
    except SwitchUnavailable as error:
        return [Row(figure=figure, result=f"**not run**: {error}", met=False)]
    calls = 100 if options.quick else 400
    cores = sorted(os.sched_getaffinity(0))
    switch_cpus = {cores[0]} if len(cores) > 1 else None
    rest = set(cores[1:]) or set(cores)
    runs: list[tuple[float, float, str]] = []
    cpus: list[tuple[dict[str, float], dict[str, float]]] = []
    for index in range(options.runs):
        if options.quiet_wait > 0:
            wait_for_quiet(options.quiet_wait)
        workdir = Path(f"/tmp/callworker-bench-fs-{uuid.uuid4().hex[:8]}")
        switch = RealSwitch(tree, workdir, Ports.pick(rtp_ports=8000))
        with _pinned(rest):
            switch.start(cpus=switch_cpus)
            watcher = _Watcher(switch)
            try:
                bare, bare_answered, bare_cpu = _bare_client_rate(switch, watcher, calls)
                through, answered, loss, worker_cpu = _worker_rate(switch, watcher, calls, f"fs-{index + 1}")
            finally:
                watcher.close()
                switch.stop()
        log(f"real switch run {index + 1}: bare {bare:.0f}/s ({bare_answered}/{calls} answered), "
            f"worker {through:.0f}/s ({answered}/{calls} answered), {loss}")
        runs.append((bare, through, loss))
        cpus.append((bare_cpu, worker_cpu))
    bare_rate = median([r[0] for r in runs])
    worker_rate = median([r[1] for r in runs])
    ratio = worker_rate / max(bare_rate, 1e-9)
    clean = all(r[2].startswith("zero loss") for r in runs)
    return [Row(
        figure=figure + f" ({calls} calls answered, then hung up by the far end after 2 s)",
        result=f"{worker_rate:,.0f} calls/s through the worker ({ratio:.2f}×); "
               + ("zero loss" if clean else "; ".join(r[2] for r in runs)),
        reference=f"bare ESL client {bare_rate:,.0f} calls/s",
        target=f"≥ {_TARGET_RATIO:g}× the bare client, zero loss",
        met=ratio >= _TARGET_RATIO and clean,
        notes=[
            f"FreeSWITCH on core(s) {sorted(switch_cpus or cores)}; worker, driver, RabbitMQ and PostgreSQL "
            f"on {sorted(rest)}",
            "per run (bare, worker): " + "; ".join(f"{b:,.0f}, {w:,.0f}" for b, w, _ in runs),
            "CPU per call, bare client: " + _describe([c[0] for c in cpus]),
            "CPU per call, through the worker: " + _describe([c[1] for c in cpus]),
        ],
    )]


def _describe(cpus: list[dict[str, float]]) -> str:
    return ", ".join(f"{part} {median([c[part] for c in cpus]):.1f} ms" for part in _PARTS)


def _service_threads() -> list[int]:
    """Every thread of RabbitMQ (beam.smp) and PostgreSQL (postgres) running now."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.find("(") + 1: text.rfind(")")] in ("beam.smp", "postgres"):
            found += [int(task.name) for task in (stat.parent / "task").iterdir()]
    return found


@contextmanager
def _pinned(cpus: set[int]) -> Iterator[None]:
    """This process (so the worker it starts), RabbitMQ and PostgreSQL on ``cpus``; restored after.

    New PostgreSQL backends fork from the postmaster, which is pinned too.
    """
    before: dict[int, set[int]] = {}
    for tid in [0, *_service_threads()]:
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass  # a thread that ended meanwhile
    try:
        yield
    finally:
        for tid, mask in before.items():
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                pass
