"""Check: does the simulator keep up with the load it is asked to generate?

Strategy: the simulator process alone, driven over its event socket by a bare
client subscribed to the worker's events, at the CPS figure's offered rate with
the same call shape (answer, far-end hangup after a second). The client
only frames what arrives. Kept up means: its hub woke on time (lag p99 under
20 ms, from the simulator's own monitor), every call ended within the window
plus its length, and its CPU share leaves room for the rest of the stack.
"""

from __future__ import annotations

import socket
import time
import uuid

import gevent
from gevent.queue import Queue

from bench.common import Options, Row, log, median
from bench.driver import pace
from bench.infra import SimulatorProcess, cpu_seconds, wait_for_quiet
from bench.pipeline import NUMBER_FAR_END_HANGUP
from callworker.calls.fsevents import SUBSCRIBED_EVENTS
from callworker.esl import builders
from callworker.esl.codec import Frame, FrameParser, encode_command

__all__ = ["run"]

_LAG_P99_MS = 20.0


class _Client:
    """Commands one after another; events counted, not kept."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.replies: Queue[Frame] = Queue()
        self.hangups = 0
        self.events = 0
        self._reader = gevent.spawn(self._read)
        self.replies.get(timeout=5)  # auth/request

    def _read(self) -> None:
        parser = FrameParser()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            parser.feed(data)
            for frame in parser:
                if frame.content_type == "text/event-plain":
                    self.events += 1
                    if b"CHANNEL_HANGUP_COMPLETE" in frame.body[:40]:
                        self.hangups += 1
                else:
                    self.replies.put(frame)

    def send(self, line: str, headers: list[tuple[str, str]] | None = None) -> Frame:
        self.sock.sendall(encode_command(line, headers or []))
        return self.replies.get(timeout=10)

    def close(self) -> None:
        self._reader.kill()
        self.sock.close()


def _one_run(options: Options) -> dict[str, float]:
    rate, seconds = options.cps, min(options.cps_seconds, 20.0)
    if options.quiet_wait > 0:
        wait_for_quiet(options.quiet_wait)
    sim = SimulatorProcess(0.1, 0.2, 1.0, name="simulator-alone").start()
    client = _Client(sim.address)
    try:
        client.send("auth ClueCon")
        client.send(f"event plain {' '.join(SUBSCRIBED_EVENTS)}")

        def originate(_i: int) -> None:
            call_id = str(uuid.uuid4())
            dial = builders.originate(call_id=call_id, destination_number=NUMBER_FAR_END_HANGUP,
                                      gateway="default", timeout_s=30,
                                      variables={"callworker_tenant": "bench"})
            client.send(f"bgapi {dial}", [("Job-UUID", call_id)])

        cpu0, started = cpu_seconds(sim.pid), time.monotonic()
        sent = pace(rate, seconds, originate)
        cpu = (cpu_seconds(sim.pid) - cpu0) / (time.monotonic() - started)
        deadline = time.monotonic() + 1.3 + 5.0
        while client.hangups < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = client.hangups
    finally:
        client.close()
        report = sim.stop()
    log(f"simulator alone at {rate:g} CPS: cpu {cpu:.2f} cores, lag p99 {report['lag_p99_ms']:.1f} ms, "
        f"{ended}/{sent} calls ended")
    return {"cpu": cpu, "lag_p99": report["lag_p99_ms"], "ended": ended / max(sent, 1)}


def run(options: Options) -> list[Row]:
    runs = [_one_run(options) for _ in range(options.runs)]
    lag = median([r["lag_p99"] for r in runs])
    cpu = median([r["cpu"] for r in runs])
    ended = min(r["ended"] for r in runs)
    return [Row(
        figure=f"the simulator alone at {options.cps:g} CPS (does the load generator keep up?)",
        result=f"hub lag p99 {lag:.1f} ms, {cpu:.2f} cores, {ended:.0%} of calls ended on time",
        target=f"lag p99 ≤ {_LAG_P99_MS:g} ms, every call ends",
        met=lag <= _LAG_P99_MS and ended >= 1.0,
        notes=[("the same call shape as the CPS figure, driven over its event socket by a bare "
               "client subscribed to the worker's events")],
    )]
