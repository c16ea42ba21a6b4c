"""The figures of one fault phase, from witnesses that share no code with the worker.

What the upstream app sent and received (``Driver``/``Recorder``), what FreeSWITCH
was asked to do (the simulator's command log and channels), what the worker wrote
on its ESL connections (the proxy's tape: written is not always received), and
what the worker committed (its PostgreSQL tables, read directly, not through the
proxy). The invariants of the contract are checked across them:

- every originate dialled exactly once, or expired and never dialled (or, when a
  connection died under it, settled as failed without being sent again);
- every command answered (a republished one with its first reply again);
- every stored event published at least once; no two events share (call_id, seq);
  stored seq gapless from 1;
- every call exactly one terminal event, one CDR row, one ``call.cdr`` event.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from callworker.simulator import Simulator
from callworker.store.models import CALLS, CDRS, EVENTS, OUTBOX
from tests.faults.traffic import TERMINAL, Recorder, Sent

__all__ = ["Figures", "Ledger", "dialled_counts", "outbox_backlog"]

_DIALLED = re.compile(r"originate [^\n]*origination_uuid=([0-9a-fA-F-]{36})")
_COMPARED = ("command_id", "type", "ok", "result", "error")


def dialled_counts(simulator: Simulator) -> Counter[str]:
    """How often each call_id was dialled (originates FreeSWITCH received)."""
    counts: Counter[str] = Counter()
    for line in simulator.received_commands():
        match = _DIALLED.search(line)
        if match:
            counts[match.group(1)] += 1
    return counts


def outbox_backlog(engine: Engine, node: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OUTBOX).where(OUTBOX.c.node == node)).scalar_one())


@dataclass
class Figures:
    """One row of the table; ``problems`` says what broke an invariant, if anything."""

    phase: str
    # commands
    sent: int = 0
    replied: int = 0
    originates: int = 0
    executed: int = 0
    expired: int = 0
    doubled: int = 0
    in_transit: int = 0
    unsent: int = 0
    republished: int = 0
    extra_replies: int = 0
    # events
    expected: int = 0
    published: int = 0
    missing: int = 0
    duplicated: int = 0
    reordered: int = 0
    # calls
    calls: int = 0
    one_terminal: int = 0
    cdr_rows: int = 0
    cdr_events: int = 0
    reconstructed: int = 0
    status_differs: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Figures) -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), int):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.problems += other.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 40:
            self.problems.append(text)


@dataclass
class _Stored:
    calls: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    cdrs: Counter[str]
    reconstructed: set[str]


class Ledger:
    """Reads the witnesses for the commands of one phase and checks them against each other."""

    def __init__(self, engine: Engine, simulator: Simulator, recorder: Recorder,
                 written: bytes = b"") -> None:
        self.engine = engine
        self.simulator = simulator
        self.recorder = recorder
        # What the worker wrote on its ESL connections (FreeSWITCH may not have read it all).
        self.written = set(_DIALLED.findall(written.decode("latin-1")))

    # ---------------------------------------------------------------- reading

    def _stored(self, call_ids: list[str]) -> _Stored:
        stored = _Stored({}, {}, Counter(), set())
        with self.engine.connect() as conn:
            for start in range(0, len(call_ids), 500):
                chunk = call_ids[start:start + 500]
                for row in conn.execute(select(CALLS).where(CALLS.c.call_id.in_(chunk))).mappings():
                    stored.calls[row["call_id"]] = dict(row)
                query = select(EVENTS.c.call_id, EVENTS.c.seq, EVENTS.c.event_id, EVENTS.c.type).where(
                    EVENTS.c.call_id.in_(chunk)).order_by(EVENTS.c.call_id, EVENTS.c.seq)
                for row in conn.execute(query).mappings():
                    stored.events.setdefault(row["call_id"], []).append(dict(row))
                query = select(CDRS.c.call_id, CDRS.c.reconstructed).where(CDRS.c.call_id.in_(chunk))
                for row in conn.execute(query).mappings():
                    stored.cdrs[row["call_id"]] += 1
                    if row["reconstructed"]:
                        stored.reconstructed.add(row["call_id"])
        return stored

    def settled(self, sent: list[Sent], node: str) -> bool:
        """Every command answered, every call ended, every stored event received, outbox empty."""
        replies = self.recorder.replies
        if any(len(replies.get(s.command_id, ())) < s.copies for s in sent):
            return False
        call_ids = [str(s.call_id) for s in sent if s.type == "originate"]
        stored = self._stored(call_ids)
        for call_id, row in stored.calls.items():
            if row["status"] not in ("completed", "failed", "cancelled"):
                return False
            received = {e.get("event_id") for e in self.recorder.deliveries.get(call_id, ())}
            if any(e["event_id"] not in received for e in stored.events.get(call_id, ())):
                return False
        return outbox_backlog(self.engine, node) == 0

    # ---------------------------------------------------------------- figures

    def figures(self, phase: str, sent: list[Sent], dead: list[dict[str, Any]]) -> Figures:
        fig = Figures(phase)
        originates = [s for s in sent if s.type == "originate"]
        stored = self._stored([str(s.call_id) for s in originates])
        self._commands(fig, sent, dead)
        self._originates(fig, originates, stored)
        for sent_call in originates:
            call_id = str(sent_call.call_id)
            if call_id in stored.calls:
                self._call(fig, call_id, stored)
        return fig

    def _commands(self, fig: Figures, sent: list[Sent], dead: list[dict[str, Any]]) -> None:
        fig.sent = sum(s.copies for s in sent)
        for s in sent:
            replies = self.recorder.replies.get(s.command_id, [])
            fig.extra_replies += max(0, len(replies) - s.copies)
            if replies:
                fig.replied += 1
            else:
                fig.problem(f"{s.type} {s.command_id}: no reply")
            if s.copies > 1:
                fig.republished += 1
                first = {k: replies[0].get(k) for k in _COMPARED} if replies else None
                if any({k: r.get(k) for k in _COMPARED} != first for r in replies):
                    shown = [r.get("result") or (r.get("error") or {}).get("code") for r in replies]
                    fig.problem(f"{s.command_id}: a republished command got different replies {shown}")
        dead_ids = {d.get("command_id") for d in dead}
        for s in sent:
            replies = self.recorder.replies.get(s.command_id, [])
            expired = any((r.get("error") or {}).get("code") == "COMMAND_EXPIRED" for r in replies)
            if expired and s.command_id not in dead_ids:
                fig.problem(f"{s.command_id}: expired but not dead-lettered")

    def _originates(self, fig: Figures, originates: list[Sent], stored: _Stored) -> None:
        dialled = dialled_counts(self.simulator)
        fig.originates = len(originates)
        for s in originates:
            call_id = str(s.call_id)
            replies = self.recorder.replies.get(s.command_id, [])
            expired = any((r.get("error") or {}).get("code") == "COMMAND_EXPIRED" for r in replies)
            times = dialled.get(call_id, 0)
            if times > 1:
                fig.doubled += 1
                fig.problem(f"{call_id}: dialled {times} times")
            if expired:
                fig.expired += 1
                if times or call_id in stored.calls:
                    fig.problem(f"{call_id}: expired, yet executed")
            elif times == 1:
                fig.executed += 1
            elif call_id in stored.reconstructed and times == 0 and call_id in self.written:
                # Written into a connection FreeSWITCH had just closed: the worker
                # cannot know whether it ran, so it must not send it again; answered
                # initiated, settled as failed by reconciliation.
                fig.in_transit += 1
            elif call_id in stored.reconstructed and times == 0:
                # Never written: acceptable only if the worker died between committing
                # the call and sending it (after a restart it cannot know either).
                fig.unsent += 1
            else:
                fig.problem(f"{call_id}: neither executed nor expired (dialled {times}, replies {len(replies)})")
            if s.must_expire and not expired:
                fig.problem(f"{call_id}: should have expired")

    def _call(self, fig: Figures, call_id: str, stored: _Stored) -> None:
        fig.calls += 1
        deliveries = self.recorder.deliveries.get(call_id, [])
        self._events(fig, call_id, stored, deliveries)
        self._ending(fig, call_id, stored, deliveries)

    def _events(self, fig: Figures, call_id: str, stored: _Stored, deliveries: list[Any]) -> None:
        """Stored seq gapless; every stored event received; no seq taken twice; arrival order."""
        rows = stored.events.get(call_id, [])
        seqs = [row["seq"] for row in rows]
        last_seq = stored.calls[call_id]["last_seq"]
        if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != last_seq:
            fig.problem(f"{call_id}: stored seq {seqs} (last_seq {last_seq})")
        by_id = {d.get("event_id"): d for d in deliveries}
        fig.expected += len(rows)
        fig.published += sum(1 for row in rows if row["event_id"] in by_id)
        fig.missing += sum(1 for row in rows if row["event_id"] not in by_id)
        fig.duplicated += len(deliveries) - len(by_id)
        per_seq: dict[int, set[str]] = {}
        for d in deliveries:
            per_seq.setdefault(int(d.get("seq", 0)), set()).add(str(d.get("event_id")))
        if any(len(ids) > 1 for ids in per_seq.values()):
            fig.problem(f"{call_id}: two different events with the same seq")
        first_seen = list(dict.fromkeys(int(d.get("seq", 0)) for d in deliveries))
        if first_seen != sorted(first_seen):
            fig.reordered += 1
            fig.problem(f"{call_id}: events first arrived in seq order {first_seen}")

    def _ending(self, fig: Figures, call_id: str, stored: _Stored, deliveries: list[Any]) -> None:
        """One terminal event, one CDR row, one call.cdr event; the status FreeSWITCH saw."""
        terminals = {d.get("event_id") for d in deliveries if d.get("type") in TERMINAL}
        cdr_events = {d.get("event_id") for d in deliveries if d.get("type") == "call.cdr"}
        fig.one_terminal += len(terminals) == 1
        fig.cdr_events += len(cdr_events) == 1
        fig.cdr_rows += stored.cdrs[call_id] == 1
        if len(terminals) != 1 or len(cdr_events) != 1 or stored.cdrs[call_id] != 1:
            fig.problem(f"{call_id}: {len(terminals)} terminal events, {len(cdr_events)} cdr events, "
                        f"{stored.cdrs[call_id]} CDR rows")
        reconstructed = call_id in stored.reconstructed
        fig.reconstructed += reconstructed
        status = stored.calls[call_id]["status"]
        if self._status_differs(call_id, status):
            fig.status_differs += 1
            if not reconstructed:
                fig.problem(f"{call_id}: ended {status}, FreeSWITCH says otherwise")

    def _status_differs(self, call_id: str, status: str) -> bool:
        """FreeSWITCH answered the call but the worker did not report it completed, or vice versa."""
        try:
            answered = self.simulator.channel_vars(call_id).get("endpoint_disposition") == "ANSWER"
        except KeyError:
            answered = False  # never dialled
        return answered != (status == "completed")
