"""The whole worker, in-process, against the simulator, the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.config import Settings
from callworker.simulator import Simulator


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=0.1, far_end_hangup_after=0.5)
    sim.start()
    yield sim
    sim.stop()


def make_settings(simulator: Simulator, database_url: str, amqp_url: str, **overrides: Any) -> Settings:
    host, port = simulator.address
    values: dict[str, Any] = dict(
        amqp_url=amqp_url, database_url=database_url, esl_host=host, esl_port=port,
        node_id=f"node-{uuid.uuid4().hex[:8]}", http_host="127.0.0.1", http_port=0,
        command_workers=16, esl_connect_timeout_s=2.0, esl_send_timeout_s=3.0,
        socket_host="127.0.0.1", socket_port=0, flashcall_hmac_key="integration-flashcall-key",
    )
    values.update(overrides)
    return Settings(**values)


def start_worker(settings: Settings) -> Worker:
    worker = Worker(settings)
    worker.start()
    assert worker.esl.wait_connected(10), "worker did not connect to the simulator"
    assert worker.bus.wait_ready(10), "worker did not connect to RabbitMQ"
    return worker


@pytest.fixture
def worker(simulator: Simulator, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    w = start_worker(make_settings(simulator, pg_url, amqp_url))
    yield w
    w.stop()


@contextmanager
def running_nodes(
    pg_url: str, amqp_url: str, *, count: int = 2, prefetch: int = 5
) -> Iterator[list[tuple[Worker, Simulator]]]:
    """``count`` workers sharing RabbitMQ and PostgreSQL, each with a simulated FreeSWITCH of its own."""
    nodes = []
    try:
        for _ in range(count):
            sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.02, answer_delay=0.05)
            sim.start()
            nodes.append((start_worker(make_settings(sim, pg_url, amqp_url, prefetch=prefetch)), sim))
        yield nodes
    finally:
        for worker, sim in nodes:
            worker.stop()
            sim.stop()


@pytest.fixture
def two_nodes(pg_url: str, amqp_url: str) -> Iterator[list[tuple[Worker, Simulator]]]:
    with running_nodes(pg_url, amqp_url) as nodes:
        yield nodes


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def probe(amqp_url: str, tenant: str) -> Iterator[Probe]:
    p = Probe(amqp_url, event_bindings=(f"{tenant}.#",))
    yield p
    p.close()


def dead_letters(amqp_url: str) -> list[tuple[Any, bytes]]:
    """Everything in callworker.commands.dead right now (taken off the queue)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        found: list[tuple[Any, bytes]] = []
        while True:
            method, properties, body = channel.basic_get("callworker.commands.dead", auto_ack=True)
            if method is None:
                return found
            found.append((properties, body))
    finally:
        connection.close()


def dead_letter_command_ids(amqp_url: str) -> set[str | None]:
    """The command ids of everything in callworker.commands.dead right now (taken off the queue).

    The queue is shared by the whole test session: bodies that are not JSON objects (left
    by the tests of malformed input) carry no command id and are skipped.
    """
    ids: set[str | None] = set()
    for _properties, body in dead_letters(amqp_url):
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if isinstance(data, dict):
            ids.add(data.get("command_id"))
    return ids
