"""The live table of `callworker watch`: what it shows after a stream of events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from callworker.cli.board import Board

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def snapshot(call_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "call_id": call_id, "status": status, "direction": "outbound", "destination_number": "+15551230001",
        "caller_id_number": "+15550001111", "on_hold": False, "muted": False, "node": "n1",
        "initiated_at": T0.isoformat(), "answered_at": None, "ended_at": None, "duration_seconds": None,
        "hangup_cause": None, **fields,
    }


def event(call_id: str, seq: int, event_type: str, data: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "v": 1, "event_id": str(uuid.uuid4()), "type": event_type, "tenant": "acme", "node": "n1",
        "call_id": call_id, "seq": seq, "occurred_at": (T0 + timedelta(seconds=seq)).isoformat(),
        "data": data, **envelope,
    }


def drawn(board: Board, now: datetime) -> str:
    out = Console(width=200, record=True, no_color=True)
    out.print(board.render(now))
    return out.export_text()


def test_an_answered_call_shows_its_running_duration_and_flags() -> None:
    board, call = Board(), str(uuid.uuid4())
    answered_at = (T0 + timedelta(seconds=3)).isoformat()
    board.apply(event(call, 1, "call.initiated", snapshot(call, "initiated")))
    board.apply(event(call, 2, "call.answered", snapshot(call, "answered", answered_at=answered_at)))
    board.apply(event(call, 3, "call.held", snapshot(call, "on_hold", answered_at=answered_at, on_hold=True,
                                                     muted=True)))
    text = drawn(board, T0 + timedelta(seconds=3 + 75))
    row = next(line for line in text.splitlines() if call in line)
    assert "on_hold" in row and "1:15" in row and "held muted" in row
    assert "calls up now: 1" in text
    # The latest events under the table, newest last, time of day only.
    lines = [line for line in text.splitlines() if "call." in line]
    assert [line.split()[2] for line in lines] == ["call.initiated", "call.answered", "call.held"]
    assert lines[-1].startswith("10:00:03.000")


def test_the_duration_ticks_with_the_clock_alone() -> None:
    board, call = Board(), str(uuid.uuid4())
    board.apply(event(call, 1, "call.answered", snapshot(call, "answered", answered_at=T0.isoformat())))
    assert "0:05" in drawn(board, T0 + timedelta(seconds=5))
    assert "1:00:01" in drawn(board, T0 + timedelta(seconds=3601))


def test_an_ended_call_leaves_the_table_and_a_late_repeat_does_not_bring_it_back() -> None:
    board, call = Board(), str(uuid.uuid4())
    ringing = event(call, 2, "call.ringing", snapshot(call, "ringing"))
    board.apply(event(call, 1, "call.initiated", snapshot(call, "initiated")))
    board.apply(ringing)
    board.apply(event(call, 3, "call.failed", snapshot(call, "failed", hangup_cause="USER_BUSY")))
    assert board.calls == {}
    # Delivered again (at least once) or late from another route: the call stays ended.
    assert board.apply(ringing) is False
    board.apply({**ringing, "event_id": str(uuid.uuid4())})
    assert board.calls == {}


def test_an_older_event_never_overwrites_a_newer_state() -> None:
    board, call = Board(), str(uuid.uuid4())
    board.apply(event(call, 3, "call.answered", snapshot(call, "answered", answered_at=T0.isoformat())))
    board.apply(event(call, 2, "call.ringing", snapshot(call, "ringing")))
    assert board.calls[call].snapshot["status"] == "answered"


def test_a_repeated_event_is_counted_and_listed_once() -> None:
    board, call = Board(), str(uuid.uuid4())
    first = event(call, 1, "call.initiated", snapshot(call, "initiated"))
    assert board.apply(first) is True
    assert board.apply(dict(first)) is False
    assert board.events_seen == 1 and len(board.recent) == 1


def test_seeded_calls_show_until_events_say_otherwise() -> None:
    board, up, gone = Board(), str(uuid.uuid4()), str(uuid.uuid4())
    board.apply(event(gone, 4, "call.completed", snapshot(gone, "completed")))
    board.seed("acme", snapshot(up, "answered", answered_at=T0.isoformat()))
    board.seed("acme", snapshot(gone, "answered"))  # read before it ended: the event wins
    board.seed("acme", snapshot(str(uuid.uuid4()), "completed"))  # not up
    assert set(board.calls) == {up}
    board.apply(event(up, 5, "call.muted", snapshot(up, "answered", muted=True)))
    assert board.calls[up].snapshot["muted"] is True


def test_hook_and_flashcall_events_are_listed_but_make_no_call_row() -> None:
    board, call, order = Board(), str(uuid.uuid4()), str(uuid.uuid4())
    board.apply(event(call, 4, "hook.menu_choice", {"digit": "2"}))
    flash = event(call, 1, "flashcall.created", {"call_id": call, "cid": "7487260****"}, order_id=order)
    del flash["call_id"]
    board.apply(flash)
    text = drawn(board, T0)
    assert board.calls == {} and "digit=2" in text and order in text


def test_only_the_latest_events_are_kept() -> None:
    board = Board(recent=3)
    calls = [str(uuid.uuid4()) for _ in range(5)]
    for call in calls:
        board.apply(event(call, 1, "call.initiated", snapshot(call, "initiated")))
    assert [e["call_id"] for e in board.recent] == calls[2:]
    assert "latest events (5 seen)" in drawn(board, T0)
