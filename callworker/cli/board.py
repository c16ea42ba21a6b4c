"""What ``callworker watch`` shows: the calls up now and the latest events, kept from events.

Strategy: a pure model fed one event at a time (``apply``) and drawn at any moment
(``render(now)``), so the live table is tested without a broker or a terminal.
Events arrive at least once and, across calls, in any order: a repeated
``event_id`` is dropped, and a call's row only moves forward in ``seq``, so a late
repeat never turns an ended call back into a live one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from callworker.cli.show import TERMINAL_EVENTS, clock, event_line, parse_time, text

__all__ = ["Board", "LiveCall"]

_LIVE_STATUSES = frozenset({"initiated", "ringing", "answered", "on_hold"})
_REMEMBERED_IDS = 10_000


@dataclass
class LiveCall:
    """One row of the calls table: the latest snapshot of a call not yet ended."""

    call_id: str
    tenant: str
    seq: int
    snapshot: dict[str, Any]

    def duration(self, now: datetime) -> float | None:
        answered = parse_time(self.snapshot.get("answered_at"))
        return None if answered is None else (now - answered).total_seconds()


class Board:
    """Calls up now (by call id) and the last ``recent`` events, from the events seen."""

    def __init__(self, *, recent: int = 12) -> None:
        self.calls: dict[str, LiveCall] = {}
        self.recent: deque[Mapping[str, Any]] = deque(maxlen=recent)
        self.events_seen = 0
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()

    def _is_repeat(self, event_id: Any) -> bool:
        if not isinstance(event_id, str):
            return False
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > _REMEMBERED_IDS:
            self._ids.popitem(last=False)
        return False

    def seed(self, tenant: str, snapshot: Mapping[str, Any]) -> None:
        """A call read by call.get or call.list when the watch began; events already seen win."""
        call_id = snapshot.get("call_id")
        if not isinstance(call_id, str) or call_id in self.calls or call_id in self._ended:
            return
        if snapshot.get("status") in _LIVE_STATUSES:
            self.calls[call_id] = LiveCall(call_id, tenant, 0, dict(snapshot))

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Take one event; False when it is a repeat (nothing changed)."""
        if self._is_repeat(event.get("event_id")):
            return False
        self.events_seen += 1
        self.recent.append(event)
        event_type = str(event.get("type", ""))
        call_id, data, seq = event.get("call_id"), event.get("data"), event.get("seq")
        if not event_type.startswith("call.") or not isinstance(call_id, str) or not isinstance(seq, int):
            return True
        if event_type in TERMINAL_EVENTS:
            self.calls.pop(call_id, None)
            self._ended[call_id] = None
            if len(self._ended) > _REMEMBERED_IDS:
                self._ended.popitem(last=False)
            return True
        if call_id in self._ended or not isinstance(data, dict) or data.get("status") not in _LIVE_STATUSES:
            return True
        current = self.calls.get(call_id)
        if current is None or seq > current.seq:
            self.calls[call_id] = LiveCall(call_id, str(event.get("tenant", "-")), seq, dict(data))
        return True

    # ------------------------------------------------------------ drawing

    def calls_table(self, now: datetime) -> Table:
        title = f"calls up now: {len(self.calls)}"
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left")
        for name in ("tenant", "call_id", "status", "direction", "from", "to", "duration", "flags"):
            table.add_column(name, no_wrap=True, min_width=36 if name == "call_id" else None)
        rows = sorted(self.calls.values(), key=lambda c: (str(c.snapshot.get("initiated_at") or ""), c.call_id))
        for call in rows:
            s = call.snapshot
            flags = " ".join(flag for flag, key in (("held", "on_hold"), ("muted", "muted")) if s.get(key))
            table.add_row(
                call.tenant, call.call_id, text(s.get("status")), text(s.get("direction")),
                text(s.get("caller_id_number")), text(s.get("destination_number")),
                clock(call.duration(now)), flags or "-",
            )
        return table

    def render(self, now: datetime) -> Group:
        """The calls table, then the latest events, newest last."""
        lines = [Text(event_line(event, time_of_day=True), no_wrap=True, overflow="ellipsis") for event in self.recent]
        heading = Text(f"latest events ({self.events_seen} seen)", style="bold")
        return Group(self.calls_table(now), heading, *lines)
