"""The upstream side of the fault suite: a driver that places calls and a recorder of what comes back.

The driver publishes originates continuously through ``Probe`` (connected to
RabbitMQ directly, never through the proxy the worker uses): calls that answer
and are ended by the far end (``…0200``), busy calls (``…0486``), and calls that
stay up until the driver hangs them up by command once they are answered. A
share of originates is published a second time with the same ``command_id``, as
an app retrying after a timeout would. The recorder keeps every reply and every
event delivery (duplicates included) in arrival order.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
import gevent.event
import gevent.pool

from callworker.bus.probe import Probe, Received

__all__ = ["KIND_NUMBERS", "TERMINAL", "Driver", "Recorder", "Sent"]

TERMINAL = frozenset({"call.completed", "call.failed", "call.cancelled"})
# Last four digits per kind of call (CONTRACT section 7).
KIND_NUMBERS = {"answer": "0200", "busy": "0486", "stay": "7001"}


@dataclass
class Sent:
    """One command as published (``copies`` > 1 when republished with the same command_id)."""

    command_id: str
    type: str
    body: dict[str, Any]
    phase: str
    call_id: str | None = None
    kind: str | None = None
    copies: int = 1
    must_expire: bool = False
    sent_at: float = field(default_factory=time.monotonic)


class Recorder:
    """Replies by command_id and event deliveries by call_id, as they arrive."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self.replies: dict[str, list[Received]] = defaultdict(list)
        self.deliveries: dict[str, list[Received]] = defaultdict(list)
        self._types: dict[str, set[str]] = defaultdict(set)
        self._changed = gevent.event.Event()
        self._greenlets = [gevent.spawn(self._drain, probe.replies, self._on_reply),
                           gevent.spawn(self._drain, probe.events, self._on_event)]

    def close(self) -> None:
        gevent.killall(self._greenlets, timeout=2)

    @staticmethod
    def _drain(queue: Any, handle: Any) -> None:
        while True:
            handle(queue.get())

    def _on_reply(self, reply: Received) -> None:
        self.replies[str(reply.get("command_id"))].append(reply)
        self._changed.set()

    def _on_event(self, event: Received) -> None:
        call_id = str(event.get("call_id"))
        self.deliveries[call_id].append(event)
        self._types[call_id].add(str(event.get("type")))
        self._changed.set()

    # ------------------------------------------------------------------ queries

    def has(self, call_id: str, types: frozenset[str] | set[str]) -> bool:
        return bool(self._types[call_id] & types)

    def ended(self, call_id: str) -> bool:
        return self.has(call_id, TERMINAL)

    def wait(self, condition: Any, timeout: float) -> bool:
        """Until ``condition()`` holds (re-checked whenever something arrives) or the timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            if condition():
                return True
            self._changed.wait(min(remaining, 0.5))
        return True

    def reply(self, command_id: str, timeout: float) -> Received | None:
        got = self.wait(lambda: bool(self.replies.get(command_id)), timeout)
        return self.replies[command_id][0] if got else None


class Driver:
    """Places calls at ``rate`` per second while running; hangs up the calls that stay up."""

    def __init__(self, probe: Probe, recorder: Recorder, tenant: str, *, rate: float = 12.0,
                 mix: dict[str, float] | None = None, republish_share: float = 0.1,
                 seed: int = 7) -> None:
        self._probe = probe
        self._recorder = recorder
        self.tenant = tenant
        self.rate = rate
        self.mix = mix or {"answer": 0.6, "busy": 0.15, "stay": 0.25}
        self.republish_share = republish_share
        # When set: originates carry expires_at this many seconds ahead (an app that
        # gives up on a dial after that long) and are never republished.
        self.expires_in: float | None = None
        self._rng = random.Random(seed)
        self.sent: dict[str, Sent] = {}
        self.phase = ""
        self._pool = gevent.pool.Group()
        self._loop: gevent.Greenlet | None = None
        self._stopping = gevent.event.Event()
        self._placed = gevent.event.Event()  # set on every originate placed
        self.placed = 0
        self._hangup_deadline = 0.0
        self._hanging: set[str] = set()  # calls a greenlet is hanging up

    # ------------------------------------------------------------------ traffic

    def start(self, phase: str) -> None:
        self.phase = phase
        self._hangup_deadline = time.monotonic() + 3600
        self._stopping.clear()
        self._loop = gevent.spawn(self._place_calls)

    def stop(self) -> None:
        """Stop placing calls (hang-ups of calls already placed go on).

        The loop is asked to stop, never killed: a greenlet killed while it waits
        for a publisher confirm leaves that confirm to be taken by the next publish.
        """
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self._stopping.set()
        loop.join(timeout=10)
        if loop.exception is not None:
            raise RuntimeError("the traffic loop failed") from loop.exception

    def _place_calls(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self.originate(self._pick_kind())
            self.placed += 1
            self._placed.set()
            next_at += interval
            self._stopping.wait(max(0.0, next_at - time.monotonic()))  # pacing

    def wait_placed(self, count: int, timeout: float) -> bool:
        """Until ``count`` more originates have been placed (the traffic's own clock) or the timeout."""
        target, deadline = self.placed + count, time.monotonic() + timeout
        while self.placed < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._placed.clear()
            self._placed.wait(remaining)
        return True

    def _pick_kind(self) -> str:
        roll, total = self._rng.random(), 0.0
        for kind, share in self.mix.items():
            total += share
            if roll < total:
                # A call that may expire unplaced is never one to hang up by command.
                return "answer" if kind == "stay" and self.expires_in is not None else kind
        return "answer"

    def number(self, kind: str) -> str:
        return f"+1555{self._rng.randrange(10_000):04d}{KIND_NUMBERS[kind]}"

    def publish(self, command_type: str, phase: str | None = None, **fields: Any) -> Sent:
        body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
        sent = Sent(body["command_id"], command_type, body, phase or self.phase,
                    call_id=fields.get("call_id"))
        self.sent[sent.command_id] = sent
        self._send(sent)
        return sent

    def _send(self, sent: Sent) -> None:
        self._probe.publish_raw(f"{self.tenant}.{sent.type}", json.dumps(sent.body).encode())

    def originate(self, kind: str, **extra: Any) -> Sent:
        if self.expires_in is not None and "expires_at" not in extra:
            extra["expires_at"] = (datetime.now(UTC) + timedelta(seconds=self.expires_in)).isoformat()
        sent = self.publish("originate", destination_number=self.number(kind),
                            call_id=str(uuid.uuid4()), timeout_s=10, **extra)
        sent.kind = kind
        if self._rng.random() < self.republish_share and "expires_at" not in extra:
            self._pool.spawn(self.republish, sent, self._rng.uniform(0.2, 1.5))
        if kind == "stay":
            self._pool.spawn(self._hang_up_when_answered, sent.call_id)
        return sent

    def originate_expiring(self, within_s: float) -> Sent:
        """An originate that must not be executed after ``within_s`` seconds from now."""
        expires = datetime.now(UTC) + timedelta(seconds=within_s)
        sent = self.originate("answer", expires_at=expires.isoformat())
        sent.must_expire = True
        return sent

    def republish(self, sent: Sent, after: float = 0.0) -> None:
        """The same command again (same command_id and body), as a retrying app would."""
        self._stopping.wait(after)  # the app's retry delay (cut short when the traffic stops)
        sent.copies += 1
        self._send(sent)

    # ------------------------------------------------------------------ hang-ups

    def _hang_up_when_answered(self, call_id: str) -> None:
        rec = self._recorder
        self._hanging.add(call_id)
        try:
            rec.wait(lambda: rec.has(call_id, TERMINAL | {"call.answered"}), timeout=8.0)
            talk_time = self._rng.uniform(0.3, 1.5)
            if not rec.ended(call_id) and not rec.wait(lambda: rec.ended(call_id), timeout=talk_time):
                self._hang_up(call_id)
        finally:
            self._hanging.discard(call_id)

    def hang_up(self, call_id: str) -> None:
        self._hanging.add(call_id)
        try:
            self._hang_up(call_id)
        finally:
            self._hanging.discard(call_id)

    def _hang_up(self, call_id: str) -> None:
        """Send hangup commands until the call's terminal event arrives (or the deadline)."""
        rec = self._recorder
        while not rec.ended(call_id) and time.monotonic() < self._hangup_deadline:
            sent = self.publish("hangup", call_id=call_id)
            reply = rec.reply(sent.command_id, timeout=30.0)
            if reply is not None and reply.get("ok"):
                if rec.wait(lambda: rec.ended(call_id), timeout=10.0):
                    return
            elif rec.wait(lambda: rec.ended(call_id), timeout=0.5):
                return  # refused (not held yet, worker away) and ended meanwhile; else try again

    def finish(self, phase: str, give_up_after: float) -> bool:
        """Hang up what is still up of ``phase``; True once every hang-up is done."""
        self._hangup_deadline = time.monotonic() + give_up_after
        for sent in self.of_phase(phase):
            call_id = str(sent.call_id)
            if sent.kind == "stay" and call_id not in self._hanging and not self._recorder.ended(call_id):
                self._pool.spawn(self.hang_up, call_id)
        return bool(self._pool.join(timeout=give_up_after + 1))

    def close(self) -> None:
        self.stop()
        self._hangup_deadline = 0.0
        self._pool.join(timeout=35)
        self._pool.kill(timeout=2)

    def of_phase(self, phase: str) -> list[Sent]:
        return [sent for sent in self.sent.values() if sent.phase == phase]
