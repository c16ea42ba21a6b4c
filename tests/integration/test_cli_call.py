"""`callworker call ...` and `callworker stats` against the real broker, database and worker.

The command line runs in-process through `main([...])` with its output captured, and
once as a process of its own, as an operator starts it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.cli import main

pytestmark = pytest.mark.integration

CALLWORKER = Path(sys.executable).with_name("callworker")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def call_cmd(capsys: pytest.CaptureFixture[str], amqp_url: str, tenant: str, *argv: str) -> tuple[int, str, str]:
    return cli(capsys, "call", *argv, "--tenant", tenant, "--amqp-url", amqp_url)


def event_rows(out: str) -> list[list[str]]:
    """The event lines of --wait, split: [occurred_at, tenant, type, call_id, seq=N, ...]."""
    return [line.split() for line in out.splitlines() if line[:4].isdigit()]


def test_originate_wait_prints_the_reply_then_every_event_of_the_call(
    worker: Worker, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = str(uuid.uuid4())
    status, out, err = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230200", "--call-id", call_id,
                                "--caller-id-number", "+15550001111", "--wait", "--wait-timeout", "30")
    assert status == 0, err
    assert out.splitlines()[0] == f"call {call_id} initiated"
    rows = event_rows(out)
    # ...0200 answers without ringing (no 180), then the far end hangs up.
    assert [row[2] for row in rows] == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    assert {(row[1], row[3]) for row in rows} == {(tenant, call_id)}
    assert [row[4] for row in rows] == [f"seq={n}" for n in range(1, 5)]
    assert "hangup_cause=NORMAL_CLEARING" in rows[2] and "hangup_cause=NORMAL_CLEARING" in rows[3]


def test_originate_wait_json_gives_the_raw_reply_and_events(
    worker: Worker, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230486", "--wait", "--json",
                                "--wait-timeout", "30")
    assert status == 0, err
    reply, *events = [json.loads(line) for line in out.splitlines()]
    assert reply["ok"] is True and reply["type"] == "originate" and reply["result"]["status"] == "initiated"
    call_id = reply["result"]["call_id"]
    assert [e["type"] for e in events] == ["call.initiated", "call.ringing", "call.failed", "call.cdr"]
    assert all(e["call_id"] == call_id and e["tenant"] == tenant for e in events)
    assert events[-1]["data"]["hangup_cause"] == "USER_BUSY"


def test_wait_for_a_click_to_call_whose_first_call_is_busy_ends_with_it(
    worker: Worker, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The second call of connect.to = number is placed only once the first is answered:
    # --wait must not wait for a call that never comes.
    status, out, err = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230486", "--to-number",
                                "+15551112222", "--wait", "--json", "--wait-timeout", "30")
    assert status == 0, err
    reply, *events = [json.loads(line) for line in out.splitlines()]
    assert reply["result"]["connect_call_id"]  # named, never placed
    assert {e["call_id"] for e in events} == {reply["result"]["call_id"]}
    assert [e["type"] for e in events] == ["call.initiated", "call.ringing", "call.failed", "call.cdr"]


def test_hold_mute_hangup_get_and_list_a_live_call(
    worker: Worker, tenant: str, amqp_url: str, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230001")
    assert status == 0
    call_id = out.split()[1]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered")

    assert call_cmd(capsys, amqp_url, tenant, "hold", call_id)[:2] == (0, f"call {call_id}: on hold\n")
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.held")
    assert call_cmd(capsys, amqp_url, tenant, "mute", call_id)[:2] == (0, f"call {call_id}: muted\n")
    assert call_cmd(capsys, amqp_url, tenant, "hold", call_id, "--resume")[:2] == (0, f"call {call_id}: resumed\n")
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.unheld")

    status, out, _ = call_cmd(capsys, amqp_url, tenant, "get", call_id)
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert status == 0 and shown["call_id"] == call_id
    assert (shown["status"], shown["on_hold"], shown["muted"]) == ("answered", "false", "true")

    status, out, err = call_cmd(capsys, amqp_url, tenant, "hangup", call_id, "--wait", "--wait-timeout", "30")
    assert status == 0, err
    assert out.splitlines()[0] == f"call {call_id}: hangup sent (status was answered)"
    assert [row[2] for row in event_rows(out)][-2:] == ["call.completed", "call.cdr"]

    status, out, _ = call_cmd(capsys, amqp_url, tenant, "list", "--status", "completed")
    row = next(line.split() for line in out.splitlines() if call_id in line)
    assert status == 0 and row[:3] == [call_id, "completed", "outbound"] and "NORMAL_CLEARING" in row
    assert out.splitlines()[-1] == "1 of 1"
    status, out, _ = call_cmd(capsys, amqp_url, tenant, "list", "--json")
    assert [c["call_id"] for c in json.loads(out)["result"]["calls"]] == [call_id]


def test_a_repeated_command_id_replays_the_first_reply_and_dials_once(
    worker: Worker, tenant: str, amqp_url: str, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    command_id, first_call = str(uuid.uuid4()), str(uuid.uuid4())
    first = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230404", "--command-id", command_id,
                     "--call-id", first_call, "--json")
    again = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230404", "--command-id", command_id,
                     "--call-id", str(uuid.uuid4()), "--json")
    assert first[0] == again[0] == 0
    assert json.loads(first[1]) == json.loads(again[1])
    probe.event(lambda e: e.get("call_id") == first_call and e["type"] == "call.cdr")
    status, out, _ = call_cmd(capsys, amqp_url, tenant, "list", "--json")
    assert [c["call_id"] for c in json.loads(out)["result"]["calls"]] == [first_call]


def test_error_replies_exit_1_with_the_code_on_stderr(
    worker: Worker, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(uuid.uuid4())
    status, out, err = call_cmd(capsys, amqp_url, tenant, "hold", missing)
    assert (status, out) == (1, "")
    assert err.splitlines() == ["error CALL_NOT_FOUND: no such call", f"  call_id  {missing}"]

    status, out, err = call_cmd(capsys, amqp_url, tenant, "originate", "12")
    assert (status, out) == (1, "") and err.startswith("error INVALID_PHONE_NUMBER: ")

    status, out, err = call_cmd(capsys, amqp_url, tenant, "get", missing, "--json")
    reply = json.loads(out)
    assert status == 1 and err == ""
    assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_FOUND"


def test_transfer_of_an_answered_call_to_a_number_is_shown_and_bridges_it(
    worker: Worker, tenant: str, amqp_url: str, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = call_cmd(capsys, amqp_url, tenant, "originate", "+15551230001")
    assert status == 0
    call_id = out.split()[1]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered")

    status, out, err = call_cmd(capsys, amqp_url, tenant, "transfer", call_id, "--to-number", "+15551230002")
    assert status == 0, err
    assert out.startswith(f"call {call_id}: transferred (status answered); connect call ")
    second = out.split()[-1]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.transferred")
    bridged = probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.bridged")
    assert bridged["data"]["bridged_with"] == second

    status, out, err = call_cmd(capsys, amqp_url, tenant, "transfer", str(uuid.uuid4()), "--to-number",
                                "+15551112222")
    assert (status, out) == (1, "") and "CALL_NOT_FOUND" in err


def _kpi_rows(out: str) -> dict[str, list[str]]:
    """The rows of the printed "calls" table by group: [calls, answered, ..., MOS]."""
    table = out.split("hangup causes")[0]
    return {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:]
            if len(line.split()) == 13 and line.split()[1].isdigit()}


def test_stats_prints_the_tenants_figures(
    worker: Worker, probe: Probe, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cdrs = []
    for number in ("+15551230200", "+15551230486", "+15551230403"):  # answered, busy, rejected
        call_id = probe.send(tenant, "originate", destination_number=number)["command_id"]
        reply = probe.reply_for(call_id)
        cdrs.append(probe.call_events_until_terminal(reply["result"]["call_id"], timeout=20)[-1]["data"])
    status, out, err = cli(capsys, "stats", "--tenant", tenant, "--amqp-url", amqp_url)
    assert status == 0, err
    row = _kpi_rows(out)["all"]
    assert row[:6] == ["3", "1", "2", "0", "0.33", "1"]  # calls answered failed cancelled ASR NER
    answered = next(cdr for cdr in cdrs if cdr["answer_stamp"] is not None)
    minutes = sum(cdr["billsec"] for cdr in cdrs) / 60
    assert float(row[6]) == pytest.approx(answered["billsec"], abs=0.01)  # ACD
    assert float(row[9]) == pytest.approx(minutes, abs=0.01) and row[10] == "0"
    cause_lines = out.split("hangup causes")[1].splitlines()
    causes = {tuple(line.split()[1:]) for line in cause_lines if line.split()[:1] == ["all"]}
    assert causes == {("NORMAL_CLEARING", "1"), ("USER_BUSY", "1"), ("CALL_REJECTED", "1")}

    # By gateway; and the operator's view of the same tenant.
    status, out, err = cli(capsys, "stats", "--tenant", tenant, "--group-by", "gateway", "--amqp-url", amqp_url)
    assert status == 0 and list(_kpi_rows(out)) == ["default"] and _kpi_rows(out)["default"][:2] == ["3", "1"]
    status, out, err = cli(capsys, "stats", "--tenant", "admin", "--of-tenant", tenant, "--amqp-url", amqp_url)
    assert status == 0 and _kpi_rows(out)["all"][:6] == row[:6]
    # Another tenant has none of it.
    status, out, err = cli(capsys, "stats", "--tenant", tenant + "x", "--amqp-url", amqp_url)
    assert status == 0 and _kpi_rows(out)["all"][:6] == ["0", "0", "0", "0", "-", "-"]


def test_stats_refuses_a_range_the_worker_refuses(
    worker: Worker, tenant: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = cli(capsys, "stats", "--tenant", tenant, "--from", "2026-11-02", "--to", "2026-11-01",
                           "--amqp-url", amqp_url)
    assert (status, out) == (1, "") and err.startswith("error VALIDATION_ERROR")


@pytest.fixture
def bare_vhost() -> Iterator[str]:
    """A vhost of its own, where no worker runs."""
    vhost = f"callworker-cli-{uuid.uuid4().hex[:8]}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=True, capture_output=True, timeout=60)


def test_no_reply_in_time_exits_3(bare_vhost: str, amqp_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = amqp_url.rsplit("/", 1)[0] + "/" + bare_vhost
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare("callworker.commands", "topic", durable=True)
    channel.queue_declare("callworker.commands", durable=True)
    channel.queue_bind("callworker.commands", "callworker.commands", "#")
    connection.close()
    status, out, err = call_cmd(capsys, url, "acme", "get", str(uuid.uuid4()), "--reply-timeout", "0.5")
    assert (status, out) == (3, "")
    assert err == "callworker: no reply to call.get within 0.5 s: is a worker running?\n"


def test_a_broker_without_the_workers_topology_exits_4(
    bare_vhost: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = amqp_url.rsplit("/", 1)[0] + "/" + bare_vhost
    status, out, err = call_cmd(capsys, url, "acme", "get", str(uuid.uuid4()))
    assert (status, out) == (4, "")
    assert "callworker.commands" in err and "has a worker run on this broker" in err


def test_an_unreachable_broker_exits_4_without_showing_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    levels = {name: logging.getLogger(name).level for name in ("pika", "alembic", "greenswitch")}
    status, out, err = call_cmd(capsys, "amqp://ops:s3cret-pw@127.0.0.1:1/%2F", "acme", "get", str(uuid.uuid4()))
    assert (status, out) == (4, "")
    # One line: pika's own tracebacks of each connection step are kept out.
    assert err.startswith("callworker: RabbitMQ at 127.0.0.1:1//: ") and "s3cret-pw" not in err
    assert len(err.splitlines()) == 1
    # Run in-process, the tool leaves the caller's logging as it found it.
    assert {name: logging.getLogger(name).level for name in levels} == levels


def test_as_a_process_of_its_own(worker: Worker, tenant: str, amqp_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
    env.update(CALLWORKER_AMQP_URL=amqp_url, CALLWORKER_TENANT=tenant)
    done = subprocess.run([str(CALLWORKER), "call", "originate", "+15551230403", "--wait", "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    reply, *events = [json.loads(line) for line in done.stdout.splitlines()]
    assert reply["ok"] is True
    assert [e["type"] for e in events] == ["call.initiated", "call.failed", "call.cdr"]
    assert events[-1]["data"]["hangup_cause"] == "CALL_REJECTED"
    # Errors come back the same way, with their exit status.
    done = subprocess.run([str(CALLWORKER), "call", "hangup", str(uuid.uuid4())],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error CALL_NOT_FOUND")
