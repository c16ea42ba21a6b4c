"""The admin commands end to end: only the operator's tenant runs them; values land in force."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.faults.workerproc import WorkerProcess
from tests.integration.conftest import dead_letters, make_settings, start_worker

pytestmark = pytest.mark.integration

HMAC_KEY = "policy-tests-flashcall-key"
POLICY = """\
admin_token: "admin-tok-{n}"
tenants:
  {tenant}:
    token: "tenant-tok-{n}"
    calls_per_minute: 60
    users:
      alice: {{can_call: false}}
"""


def command(probe: Probe, route_tenant: str, command_type: str, /, **fields: Any) -> Received:
    """Send a command whose body may name a ``tenant`` (the admin commands' target)."""
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    probe.publish_raw(f"{route_tenant}.{command_type}", json.dumps(body).encode())
    return probe.reply_for(body["command_id"])


@pytest.fixture
def policy_path(tmp_path: Path, tenant: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(tenant=tenant, n=uuid.uuid4().hex[:6]))
    return path


@pytest.fixture
def policy_worker(simulator: Simulator, pg_url: str, amqp_url: str, policy_path: Path) -> Iterator[Worker]:
    worker = start_worker(make_settings(simulator, pg_url, amqp_url, policy_file=policy_path))
    yield worker
    worker.stop()


def test_the_operator_reads_and_sets_the_policy_in_force(
    policy_worker: Worker, probe: Probe, tenant: str, policy_path: Path
) -> None:
    got = command(probe, "admin", "policy.get", tenant=tenant)
    assert got["ok"], got
    described = got["result"]["tenants"][tenant]
    assert described["calls_per_minute"] == 60 and described["users"]["alice"]["can_call"] is False
    assert "tok" not in json.dumps(got)

    changed = command(probe, "admin", "policy.set", tenant=tenant, user_id="bob", calls_per_day=7)
    assert changed["ok"], changed
    assert changed["result"]["tenants"][tenant]["users"]["bob"]["calls_per_day"] == 7
    changed = command(probe, "admin", "policy.set", tenant=tenant, calls_per_minute=None, max_concurrent=2)
    result = changed["result"]["tenants"][tenant]
    assert (result["calls_per_minute"], result["max_concurrent"]) == (60, 2)  # null gave the file's back
    assert result["overrides"]["tenant"] == {"max_concurrent": 2}
    assert policy_worker.policy.limits(tenant, "bob")[1] is not None
    everything = command(probe, "admin", "policy.get")["result"]["tenants"]
    assert everything[tenant]["max_concurrent"] == 2
    assert "tok" not in json.dumps(everything)


def test_a_token_is_never_set_by_command(policy_worker: Worker, probe: Probe, tenant: str, amqp_url: str) -> None:
    dead_letters(amqp_url)
    reply = command(probe, "admin", "policy.set", tenant=tenant, token="mine-now", calls_per_day=1)
    assert reply["error"]["code"] == "VALIDATION_ERROR" and reply["error"]["details"]["field"] == "token"
    assert "mine-now" not in json.dumps(reply)
    assert len(dead_letters(amqp_url)) == 1
    assert policy_worker.policy.limits(tenant, None)[0].calls_per_day is None  # nothing of it stored


def test_no_other_tenant_can_run_an_admin_command(
    policy_worker: Worker, probe: Probe, tenant: str, amqp_url: str
) -> None:
    dead_letters(amqp_url)
    for command_type, fields in (("policy.get", {}), ("policy.set", {"tenant": tenant, "calls_per_minute": 9999})):
        reply = command(probe, tenant, command_type, **fields)
        assert reply["ok"] is False and reply["error"]["code"] == "UNKNOWN_COMMAND", reply
    assert len(dead_letters(amqp_url)) == 2
    assert policy_worker.policy.limits(tenant, None)[0].calls_per_minute == 60
    # Nor does the operator's tenant place calls.
    assert command(probe, "admin", "originate", destination_number="+15551230001")["error"]["code"] == \
        "UNKNOWN_COMMAND"


def test_sighup_reads_the_file_again_and_a_broken_file_keeps_the_last_good(
    simulator: Simulator, pg_url: str, amqp_url: str, tmp_path: Path, tenant: str, probe: Probe
) -> None:
    path = tmp_path / "sighup.yaml"
    path.write_text(f"tenants:\n  {tenant}:\n    calls_per_day: 10\n")
    host, port = simulator.address
    env = {
        "CALLWORKER_AMQP_URL": amqp_url, "CALLWORKER_DATABASE_URL": pg_url,
        "CALLWORKER_ESL_HOST": host, "CALLWORKER_ESL_PORT": str(port),
        "CALLWORKER_NODE_ID": f"hup-{uuid.uuid4().hex[:6]}", "CALLWORKER_HTTP_HOST": "127.0.0.1",
        "CALLWORKER_HTTP_PORT": str(_free_port()), "CALLWORKER_SOCKET_HOST": "127.0.0.1",
        "CALLWORKER_SOCKET_PORT": str(_free_port()), "CALLWORKER_POLICY_FILE": str(path),
        "CALLWORKER_FLASHCALL_HMAC_KEY": HMAC_KEY,
    }
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(env, log_path)
    worker.start()
    try:
        worker.wait_healthy(60)
        assert _calls_per_day(probe, tenant) == 10
        # Same length and a moment later: SIGHUP reads it at once, before any watch would.
        path.write_text(f"tenants:\n  {tenant}:\n    calls_per_day: 20\n")
        assert worker.proc is not None
        os.kill(worker.proc.pid, signal.SIGHUP)
        assert _wait_value(probe, tenant, 20)
        path.write_text(f"tenants:\n  {tenant}:\n    calls_per_day: -20\n")
        os.kill(worker.proc.pid, signal.SIGHUP)
        _wait_log(worker, log_path, "refused")
        assert _calls_per_day(probe, tenant) == 20
        assert worker.alive
    finally:
        worker.stop()
    text = log_path.read_text()
    refused = [line for line in text.splitlines() if "refused" in line]
    assert len(refused) >= 1 and "calls_per_day (line 3)" in refused[0]


def test_a_broken_policy_file_stops_the_worker_from_starting(
    simulator: Simulator, pg_url: str, amqp_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("tenants:\n  acme:\n    max_concurrent: lots\n")
    host, port = simulator.address
    env = {
        "CALLWORKER_AMQP_URL": amqp_url, "CALLWORKER_DATABASE_URL": pg_url,
        "CALLWORKER_ESL_HOST": host, "CALLWORKER_ESL_PORT": str(port),
        "CALLWORKER_HTTP_PORT": str(_free_port()), "CALLWORKER_POLICY_FILE": str(path),
        "CALLWORKER_FLASHCALL_HMAC_KEY": HMAC_KEY,
    }
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(env, log_path)
    worker.start()
    assert worker.proc is not None
    assert worker.proc.wait(timeout=60) == 2
    lines = [line for line in log_path.read_text().splitlines() if "CALLWORKER_POLICY_FILE" in line]
    assert len(lines) == 1 and lines[0].startswith("callworker: ")
    assert "tenants.acme.max_concurrent (line 3)" in lines[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _calls_per_day(probe: Probe, tenant: str) -> Any:
    return command(probe, "admin", "policy.get", tenant=tenant)["result"]["tenants"][tenant]["calls_per_day"]


def _wait_value(probe: Probe, tenant: str, value: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _calls_per_day(probe, tenant) != value:  # each ask is a round trip through the worker
        if time.monotonic() > deadline:
            return False
    return True


def _wait_log(worker: WorkerProcess, log_path: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never logged"
        assert worker.proc is not None
        try:
            worker.proc.wait(timeout=0.05)  # a short wait on the process between reads
        except subprocess.TimeoutExpired:
            pass
