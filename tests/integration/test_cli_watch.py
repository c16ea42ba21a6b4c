"""`callworker watch`: the events of calls placed while it runs, as lines and as the live table."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.event import Event as Flag

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.cli import main

pytestmark = pytest.mark.integration

CALLWORKER = Path(sys.executable).with_name("callworker")


def test_watch_plain_prints_the_events_of_a_call_placed_meanwhile(
    worker: Worker, tenant: str, amqp_url: str, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
    env["CALLWORKER_AMQP_URL"] = amqp_url
    watch = subprocess.Popen([str(CALLWORKER), "watch", "--tenant", tenant, "--plain"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert watch.stderr is not None and watch.stdout is not None
        with gevent.Timeout(20):
            ready = watch.stderr.readline()
        assert ready == f"watching {tenant}.call.# {tenant}.hook.# {tenant}.flashcall.# (Ctrl-C stops)\n"

        # Another tenant's call, ended before ours starts: none of it may show.
        other = f"{tenant}x"
        assert main(["call", "originate", "+15551230486", "--tenant", other, "--amqp-url", amqp_url,
                     "--wait", "--wait-timeout", "30"]) == 0
        call_id = str(uuid.uuid4())
        probe.send(tenant, "originate", destination_number="+15551230200", call_id=call_id)
        lines: list[str] = []
        with gevent.Timeout(30):
            while not lines or " call.cdr " not in lines[-1]:
                lines.append(watch.stdout.readline())
        watch.send_signal(signal.SIGINT)  # how an operator stops it
        assert watch.wait(timeout=15) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
    rows = [line.split() for line in lines]
    # ...0200 answers without ringing (no 180), then the far end hangs up.
    assert [row[2] for row in rows] == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    assert {(row[1], row[3]) for row in rows} == {(tenant, call_id)}
    assert "status=answered" in rows[1] and "hangup_cause=NORMAL_CLEARING" in rows[2]


class Terminal(io.StringIO):
    """A stdout that says it is a terminal, as the operator's is; `drawn` once written to."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = Flag()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.drawn.set()
        return super().write(text)


def test_watch_on_a_terminal_draws_the_calls_up_now_and_follows_them(
    worker: Worker, tenant: str, amqp_url: str, probe: Probe, monkeypatch: Any
) -> None:
    up = str(uuid.uuid4())
    probe.send(tenant, "originate", destination_number="+15551230001", caller_id_number="+15550002222",
               call_id=up)
    probe.event(lambda e: e.get("call_id") == up and e["type"] == "call.answered")
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "200")
    # Stops after three events: held, completed, cdr.
    watch = gevent.spawn(main, ["watch", "--tenant", tenant, "--count", "3", "--amqp-url", amqp_url])
    # The table is first drawn once the queue is bound and the calls up were read.
    assert screen.drawn.wait(20), "the watch drew nothing"
    first = screen.getvalue()
    assert "calls up now: 1" in first
    row = next(line for line in first.splitlines() if up in line)
    assert "answered" in row and "+15550002222" in row and "+15551230001" in row

    probe.send(tenant, "hold", call_id=up)
    probe.event(lambda e: e.get("call_id") == up and e["type"] == "call.held")
    probe.send(tenant, "hangup", call_id=up)
    assert watch.get(timeout=30) == 0
    frames = screen.getvalue()[len(first):]
    assert any(up in line and "on_hold" in line and "held" in line.split() for line in frames.splitlines())
    assert "calls up now: 0" in frames
    assert "latest events (3 seen)" in frames
