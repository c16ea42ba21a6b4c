"""``callworker demo``: the simulator and the worker in one process, driven like an upstream app.

It places a handful of calls through RabbitMQ, one per simulator outcome, holds,
resumes, mutes and hangs up the answered one, and prints every reply and event
as it arrives. Database: the embedded SQLite default (or CALLWORKER_DATABASE_URL).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from typing import Any

import gevent
from pydantic import SecretStr

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.config import Settings
from callworker.simulator import Simulator

__all__ = ["run_demo"]

TENANT = "demo"

CALLS = [
    ("+15551230001", "answers and stays up: held, resumed, muted, then hung up"),
    ("+15551230200", "answers; the far end hangs up after 2 s"),
    ("+15551230486", "busy"),
    ("+15551230403", "rejected"),
    ("+15551230404", "unroutable"),
    ("+15551230408", "no answer within the 5 s ring timeout"),
]


def _print_event(event: Received) -> None:
    data = event.get("data", {})
    detail = data.get("status") or data.get("hangup_cause") or ""
    if event["type"] == "call.cdr":
        detail = f"billsec={data.get('billsec')} cause={data.get('hangup_cause')} q850={data.get('hangup_cause_q850')}"
    print(f"  event  {event['call_id'][:8]} seq={event['seq']:<2} {event['type']:<15} {detail}", flush=True)


def _print_reply(reply: Received) -> None:
    outcome = reply.get("result") if reply.get("ok") else reply.get("error")
    print(f"  reply  {reply.get('type'):<10} ok={reply.get('ok')} {outcome}", flush=True)


def _command(probe: Probe, command_type: str, **fields: Any) -> Received:
    sent = probe.send(TENANT, command_type, **fields)
    reply = probe.reply_for(sent["command_id"], timeout=15)
    _print_reply(reply)
    return reply


def _drive(probe: Probe, hangup_after: float) -> None:
    call_ids = {}
    for number, what in CALLS:
        print(f"originate {number}: {what}", flush=True)
        fields: dict[str, Any] = {"destination_number": number, "caller_id_number": "+15550000000",
                                  "caller_id_name": "callworker demo", "call_id": str(uuid.uuid4())}
        if number.endswith("0408"):
            fields["timeout_s"] = 5
        reply = _command(probe, "originate", **fields)
        call_ids[number] = reply["result"]["call_id"]
    up = call_ids["+15551230001"]
    probe.event(lambda e: e.get("call_id") == up and e["type"] == "call.answered", timeout=15)
    for command_type, fields in (
        ("hold", {"hold": True}), ("hold", {"hold": False}), ("mute", {"muted": True}),
    ):
        print(f"{command_type} {fields}", flush=True)
        _command(probe, command_type, call_id=up, **fields)
    gevent.sleep(hangup_after)  # let the call be up a moment, as a person would
    print("hangup", flush=True)
    _command(probe, "hangup", call_id=up)
    pending = set(call_ids.values())
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        event = probe.event(lambda e: e.get("call_id") in pending, timeout=deadline - time.monotonic())
        if event["type"] == "call.cdr":
            pending.discard(event["call_id"])
    print("call.list", flush=True)
    listing = probe.reply_for(probe.send(TENANT, "call.list", limit=10)["command_id"])
    for call in listing["result"]["calls"][: len(CALLS)]:
        print(f"  {call['call_id'][:8]} {call['destination_number']:<13} {call['status']:<10} "
              f"cause={call['hangup_cause']} duration={call['duration_seconds']}")


def _print_events_forever(probe: Probe, shown: list[Received]) -> None:
    while True:
        event = probe.event(lambda e: True, timeout=3600)
        shown.append(event)
        _print_event(event)


def run_demo(*, hangup_after: float = 1.0) -> int:
    simulator = Simulator("127.0.0.1", 0, "ClueCon")
    simulator.start()
    host, port = simulator.address
    settings = Settings(
        esl_host=host, esl_port=port, esl_password=SecretStr("ClueCon"), node_id="demo",
        # Codes of this run only: a fresh key each time, never a known one.
        flashcall_hmac_key=SecretStr(secrets.token_urlsafe(32)),
        http_port=int(os.environ.get("CALLWORKER_HTTP_PORT", "0")),
        socket_port=int(os.environ.get("CALLWORKER_SOCKET_PORT", "0")),
    )
    worker = Worker(settings)
    worker.start()
    print(f"simulator on {host}:{port}; worker health on http://127.0.0.1:{worker.http.port}/healthz", flush=True)
    if not worker.esl.wait_connected(10) or not worker.bus.wait_ready(10):
        print("the worker could not reach FreeSWITCH or RabbitMQ; is RabbitMQ running?", flush=True)
        return 1
    probe = Probe(settings.amqp_url_value, event_bindings=(f"{TENANT}.call.#",))
    # Events print from their own greenlet while the commands go out.
    printer_probe = Probe(settings.amqp_url_value, event_bindings=(f"{TENANT}.call.#",))
    shown: list[Received] = []
    printer = gevent.spawn(_print_events_forever, printer_probe, shown)
    try:
        _drive(probe, hangup_after)
        gevent.sleep(0.2)  # let the printer catch up with the last events
    finally:
        printer.kill()
        probe.close()
        printer_probe.close()
        worker.stop()
        simulator.stop()
    print(f"done: {len(shown)} events for {len(CALLS)} calls", flush=True)
    return 0
