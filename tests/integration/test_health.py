"""GET /healthz and /metrics of a running worker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from callworker.app import Worker
from callworker.simulator import Simulator

pytestmark = pytest.mark.integration


def get(worker: Worker, path: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{worker.http.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_health(worker: Worker, status: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = get(worker, "/healthz")
        if code == status:
            return json.loads(body)
        assert time.monotonic() < deadline, f"/healthz stayed {code}: {body!r}"
        worker.esl.wait_connected(0.05)  # a short cooperative wait between polls


def test_healthz_reports_each_dependency(worker: Worker, simulator: Simulator) -> None:
    body = wait_health(worker, 200)
    assert body["status"] == "ok"
    assert body["freeswitch"]["connected"] is True and body["rabbitmq"]["connected"] is True
    assert body["database"]["reachable"] is True
    assert "guest:guest" not in json.dumps(body)  # the AMQP password is masked
    simulator.stop()
    down = wait_health(worker, 503)
    assert down["freeswitch"]["connected"] is False and down["status"] == "degraded"
    assert down["rabbitmq"]["connected"] is True and down["database"]["reachable"] is True


def test_metrics_are_exposed(worker: Worker) -> None:
    code, body = get(worker, "/metrics")
    assert code == 200
    text = body.decode()
    assert "callworker_live_calls" in text and "callworker_freeswitch_connected 1.0" in text
    assert get(worker, "/nothing")[0] == 404
