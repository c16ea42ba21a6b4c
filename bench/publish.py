"""Figure: events published per second by the worker, against raw pika with confirms.

Strategy: the outbox is filled before the worker starts (``store.write_batch``, the
worker's own write path) with real event envelopes of a typical size, for this
node. On start the relay finds them and publishes them all: read a page from
PostgreSQL, publish within its window of unconfirmed messages, delete what the
broker confirmed. A durable queue bound to ``callworker.events`` receives them,
as a dashboard's would. Both rates are read the same way, off the broker: the
queue's message count, polled; the rate is taken between 10 % and 90 % of the
messages, leaving out start-up and tail. The reference (``refpub_proc.py``)
publishes the same number of messages of the same body, persistent, with the
same window of confirms, into the same queue.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import gevent
import pika

from bench.common import Options, Row, fmt_rate, log, median
from bench.infra import (
    REPO,
    SimulatorProcess,
    WorkerProcess,
    fresh_database,
    fresh_vhost,
    wait_for_quiet,
)
from callworker.bus.topology import EVENTS_EXCHANGE
from callworker.contract import encode_json, event_routing_key, make_event
from callworker.store import Batch, make_engine, migrate, write_batch

__all__ = ["run"]

_TARGET = 0.8
_QUEUE = "bench.events"
_NODE = "bench"  # WorkerProcess's node id


def _event(tenant: str, seq: int) -> tuple[str, bytes, str]:
    """A call.answered envelope as the journal writes it: routing key, body, event id."""
    call_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    data = {
        "call_id": call_id, "status": "answered", "direction": "outbound",
        "destination_number": "+15551230200", "caller_id_number": "+15550000000",
        "on_hold": False, "muted": False, "node": _NODE,
        "initiated_at": (now - timedelta(seconds=1)).isoformat(), "answered_at": now.isoformat(),
        "ended_at": None, "duration_seconds": 0, "hangup_cause": None,
    }
    envelope = make_event(event_type="call.answered", tenant=tenant, node=_NODE,
                          subject_id=call_id, seq=seq, occurred_at=now, data=data)
    return event_routing_key(tenant, "call.answered", call_id), encode_json(envelope), envelope["event_id"]


def _preload(database_url: str, tenant: str, count: int) -> bytes:
    """``count`` outbox rows for this node; returns one body (they are all this size)."""
    migrate(database_url)
    engine = make_engine(database_url)
    body = b""
    try:
        for start in range(0, count, 2000):
            batch = Batch()
            for _ in range(start, min(count, start + 2000)):
                key, body, event_id = _event(tenant, 3)
                batch.outbox.append({
                    "node": _NODE, "exchange": EVENTS_EXCHANGE, "routing_key": key,
                    "message_id": event_id, "correlation_id": None, "headers": None,
                    "body": body, "created_at": datetime.now(UTC),
                })
            write_batch(engine, batch)
    finally:
        engine.dispose()
    return body


class _QueueCount:
    """A durable queue bound to the events exchange, and its message count over time."""

    def __init__(self, amqp_url: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._connection.channel()
        self._channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        self._channel.queue_declare(_QUEUE, durable=True)
        self._channel.queue_bind(_QUEUE, EVENTS_EXCHANGE, routing_key="#")
        self.samples: list[tuple[float, int]] = []

    def count(self) -> int:
        return int(self._channel.queue_declare(_QUEUE, passive=True).method.message_count)

    def watch(self, total: int, timeout: float) -> None:
        """Sample the count every 25 ms until it reaches ``total`` (in its own greenlet)."""
        self.samples = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.count()
            self.samples.append((time.monotonic(), n))
            if n >= total:
                return
            gevent.sleep(0.025)
        raise TimeoutError(f"only {self.samples[-1][1]} of {total} messages arrived")

    def rate(self, total: int) -> float:
        def when(fraction: float) -> float:
            return next(t for t, n in self.samples if n >= fraction * total)

        return 0.8 * total / max(when(0.9) - when(0.1), 1e-9)

    def purge(self) -> None:
        self._channel.queue_purge(_QUEUE)

    def close(self) -> None:
        self._connection.close()


def _one_run(options: Options, index: int) -> tuple[float, float, int]:
    count = 10_000 if options.quick else 60_000
    tenant = f"b{uuid.uuid4().hex[:8]}"
    if options.quiet_wait > 0:
        wait_for_quiet(options.quiet_wait)
    with fresh_database() as database, fresh_vhost() as amqp:
        body = _preload(database, tenant, count)
        counter = _QueueCount(amqp)
        simulator = SimulatorProcess(name=f"publish-{index}-simulator").start()
        try:
            watcher = gevent.spawn(counter.watch, count, 300.0)
            worker = WorkerProcess(database, amqp, simulator.address, name=f"publish-{index}-worker")
            worker.start()
            watcher.get()
            worker.stop()
        finally:
            simulator.stop()
        ours = counter.rate(count)
        counter.purge()
        reference = _reference(amqp, tenant, body, count, counter)
        counter.close()
    log(f"publish run {index}: worker {ours:,.0f}/s, raw pika {reference:,.0f}/s, body {len(body)} B")
    return ours, reference, len(body)


def _reference(amqp: str, tenant: str, body: bytes, count: int, counter: _QueueCount) -> float:
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        watcher = gevent.spawn(counter.watch, count, 300.0)
        proc = subprocess.run(
            [sys.executable, str(REPO / "bench" / "refpub_proc.py"), "--url", amqp,
             "--exchange", EVENTS_EXCHANGE, "--tenant", tenant, "--body-file", handle.name,
             "--count", str(count), "--window", "1000"],
            capture_output=True, text=True, timeout=300, check=True)
        watcher.get()
    log(f"raw pika publisher: {proc.stdout.strip()}")
    return counter.rate(count)


def run(options: Options) -> list[Row]:
    runs = [_one_run(options, index + 1) for index in range(options.runs)]
    ours = median([r[0] for r in runs])
    reference = median([r[1] for r in runs])
    ratio = median([r[0] / r[1] for r in runs])
    return [Row(
        figure="events published per second (outbox → RabbitMQ, confirmed, rows deleted)",
        result=f"{fmt_rate(ours)} ({ratio:.2f}× the reference)",
        reference=f"raw pika, persistent, confirms, window 1000: {fmt_rate(reference)}",
        target=f"≥ {_TARGET:g}× the reference", met=ratio >= _TARGET,
        notes=[(f"{runs[0][2]} B event bodies, {10_000 if options.quick else 60_000:,} per run, "
                "into one durable queue; rate between 10 % and 90 % of the messages"),
               ("the relay's scan path (rows already in the outbox, as after a restart or a broker "
                "outage): pages read from PostgreSQL, published, confirmed rows deleted; live "
                "traffic reaches the relay by notification and skips the page reads")],
    )]
