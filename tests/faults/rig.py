"""The fault rig: simulator, proxies, the worker process, the upstream app, and phases of traffic.

A phase runs traffic, injects one fault while calls are flowing, stops placing
calls, hangs up what stays up, waits for quiescence (polling the witnesses with a
deadline), and returns the phase's figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
from sqlalchemy.engine import Engine

from callworker.bus.probe import Probe
from callworker.simulator import Simulator
from tests.faults.ledger import Figures, Ledger
from tests.faults.proxy import Proxy
from tests.faults.traffic import Driver, Recorder
from tests.faults.workerproc import WorkerProcess

__all__ = ["RESULTS", "Rig"]

DEAD_LETTER_QUEUE = "callworker.commands.dead"

# Every phase's figures, for the table printed at the end of the session.
RESULTS: list[tuple[str, Figures]] = []


@dataclass
class Rig:
    simulator: Simulator
    amqp_proxy: Proxy
    pg_proxy: Proxy
    esl_proxy: Proxy
    worker: WorkerProcess
    probe: Probe
    recorder: Recorder
    driver: Driver
    engine: Engine
    amqp_url: str
    node: str
    dead: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.engine, self.simulator, self.recorder, bytes(self.esl_proxy.from_clients))

    def ensure_ready(self) -> None:
        for proxy in (self.amqp_proxy, self.pg_proxy, self.esl_proxy):
            proxy.restore()
        if not self.worker.alive:
            self.worker.start()
        self.worker.wait_healthy(timeout=30)

    def traffic_for(self, seconds: float) -> None:
        """An outage's length, told by the traffic's clock: ``seconds`` worth of calls placed."""
        placed = self.driver.wait_placed(round(seconds * self.driver.rate), timeout=seconds * 3)
        assert placed, f"the driver did not place {seconds:g} s of calls in {seconds * 3:g} s"

    def run_phase(self, name: str, fault: str, inject: Callable[[], None], *,
                  lead: float = 4.0, tail: float = 5.0, settle_s: float = 60.0) -> Figures:
        """Traffic for ``lead`` s, ``inject()``, traffic for ``tail`` s, then settle and count."""
        self.ensure_ready()
        self.driver.start(name)
        # Traffic before and after the fault, counted in calls placed at the driver's rate.
        self.driver.wait_placed(round(lead * self.driver.rate), timeout=lead * 3)
        inject()
        self.driver.wait_placed(round(tail * self.driver.rate), timeout=tail * 3)
        self.driver.stop()
        self.ensure_ready()
        self.driver.finish(name, give_up_after=settle_s / 2)
        sent = self.driver.of_phase(name)
        # Checked again whenever a reply or event arrives (and at least every 0.5 s, for
        # the outbox rows deleted after their last event was delivered).
        self.recorder.wait(lambda: self.ledger.settled(sent, self.node), timeout=settle_s)
        self.dead += self.read_dead_letters()
        figures = self.ledger.figures(name, sent, self.dead)
        RESULTS.append((fault, figures))
        return figures

    def read_dead_letters(self) -> list[dict[str, Any]]:
        """Take everything off the dead-letter queue: the bodies, with the error header."""
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        found: list[dict[str, Any]] = []
        try:
            channel = connection.channel()
            while True:
                method, properties, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
                if method is None:
                    return found
                try:
                    item = json.loads(body)
                except ValueError:
                    item = {}
                item["_error"] = (properties.headers or {}).get("x-callworker-error")
                found.append(item)
        finally:
            connection.close()
