"""How replies and events read for a person: pure functions from contract messages to text.

Nothing here does I/O; the commands print what these return. Values read from a
message are shown as they are; an absent one as ``-``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table

__all__ = [
    "TERMINAL_EVENTS",
    "calls_table",
    "clock",
    "error_lines",
    "event_line",
    "field_lines",
    "result_lines",
    "text",
]

TERMINAL_EVENTS = frozenset({"call.completed", "call.failed", "call.cancelled"})
# Data keys of a call snapshot shown on an event line, after its status.
_SNAPSHOT_FLAGS = ("on_hold", "muted")
_CDR_KEYS = ("billsec", "hangup_cause", "hangup_cause_q850", "sip_hangup_disposition", "pdd_ms")
_DETAIL_LIMIT = 8


def text(value: Any) -> str:
    """A value as one short token: null is ``-``, booleans are true/false, structures are JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def clock(seconds: float | int | None) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour); ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def field_lines(fields: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> list[str]:
    """``key  value`` lines, keys aligned, in the message's own order."""
    keys = [key for key in fields if key not in skip]
    width = max((len(key) for key in keys), default=0)
    return [f"{key.ljust(width)}  {text(fields[key])}" for key in keys]


# ------------------------------------------------------------------ replies

Summary = Callable[[Mapping[str, Any]], str]


def _with_connect(line: str, result: Mapping[str, Any]) -> str:
    connected = result.get("connect_call_id")
    return f"{line}; connect call {connected}" if connected else line


_SUMMARIES: dict[str, tuple[Summary, frozenset[str]]] = {
    "originate": (
        lambda r: _with_connect(f"call {text(r.get('call_id'))} {text(r.get('status'))}", r),
        frozenset({"call_id", "status", "connect_call_id"}),
    ),
    "hangup": (
        lambda r: f"call {text(r.get('call_id'))}: hangup sent (status was {text(r.get('status'))})",
        frozenset({"call_id", "status"}),
    ),
    "hold": (
        lambda r: f"call {text(r.get('call_id'))}: {'on hold' if r.get('on_hold') else 'resumed'}",
        frozenset({"call_id", "on_hold"}),
    ),
    "mute": (
        lambda r: f"call {text(r.get('call_id'))}: {'muted' if r.get('muted') else 'unmuted'}",
        frozenset({"call_id", "muted"}),
    ),
    "transfer": (
        lambda r: _with_connect(f"call {text(r.get('call_id'))}: transferred (status {text(r.get('status'))})", r),
        frozenset({"call_id", "status", "connect_call_id"}),
    ),
}


def result_lines(command_type: str, result: Mapping[str, Any]) -> list[str]:
    """A successful reply's result: a summary line where the type has one, then every other field."""
    summary = _SUMMARIES.get(command_type)
    if summary is None:
        return field_lines(result)
    describe, shown = summary
    return [describe(result), *field_lines(result, shown)]


def error_lines(reply: Mapping[str, Any]) -> list[str]:
    """An error reply: its code and message, each detail, and what UNKNOWN_COMMAND means."""
    error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = text(error.get("code"))
    lines = [f"error {code}: {text(error.get('message'))}"]
    details = error.get("details")
    if isinstance(details, dict):
        lines += [f"  {line}" for line in field_lines(details)]
    if code == "UNKNOWN_COMMAND":
        lines.append(
            f"  the worker does not run '{text(reply.get('type'))}' commands: it is older than this "
            "command line, or the command is reserved to another tenant"
        )
    return lines


def calls_table(calls: list[Mapping[str, Any]], *, title: str | None = None) -> Table:
    """Call snapshots (call.list), one row each."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left", expand=False)
    table.add_column("call_id", no_wrap=True, min_width=36)
    for name in ("status", "direction", "from", "to", "initiated_at", "duration", "hangup_cause", "flags"):
        table.add_column(name, no_wrap=True)
    for call in calls:
        flags = " ".join(flag for flag, key in (("held", "on_hold"), ("muted", "muted")) if call.get(key))
        table.add_row(
            text(call.get("call_id")), text(call.get("status")), text(call.get("direction")),
            text(call.get("caller_id_number")), text(call.get("destination_number")),
            text(call.get("initiated_at")), clock(call.get("duration_seconds")),
            text(call.get("hangup_cause")), flags or "-",
        )
    return table


# ------------------------------------------------------------------ events


def _details(event: Mapping[str, Any]) -> list[str]:
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    event_type = str(event.get("type", ""))
    if event_type == "call.cdr":
        return [f"{key}={text(data.get(key))}" for key in _CDR_KEYS if key in data]
    if event_type.startswith("call.") and "status" in data:
        parts = [f"status={text(data.get('status'))}"]
        parts += [key.replace("on_hold", "held") for key in _SNAPSHOT_FLAGS if data.get(key)]
        parts += [f"{key}={text(data[key])}" for key in ("hangup_cause", "held_by", "bridged_with") if data.get(key)]
        parts += [f"{key}={text(data[key])}" for key in ("digit", "playback_id", "recording_id") if key in data]
        return parts
    scalars = [(key, value) for key, value in data.items() if not isinstance(value, dict | list)]
    return [f"{key}={text(value)}" for key, value in scalars[:_DETAIL_LIMIT]]


def _time_of_day(value: Any) -> str:
    when = parse_time(value)
    return when.strftime("%H:%M:%S.%f")[:-3] if when is not None else text(value)


def event_line(event: Mapping[str, Any], *, time_of_day: bool = False) -> str:
    """One event on one line: when, tenant, type, call or order id, seq, then what changed.

    ``time_of_day`` shortens the timestamp to ``HH:MM:SS.mmm`` (UTC) for the live table.
    """
    subject = event.get("call_id") or event.get("order_id")
    when = _time_of_day(event.get("occurred_at")) if time_of_day else text(event.get("occurred_at"))
    parts = [
        when, text(event.get("tenant")), f"{text(event.get('type')):<22}",
        text(subject), f"seq={text(event.get('seq'))}", *_details(event),
    ]
    return "  ".join(parts)


def parse_time(value: Any) -> datetime | None:
    """A contract timestamp, or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
