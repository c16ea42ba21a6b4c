"""The call state table, tested from the table itself."""

from __future__ import annotations

import itertools

import pytest

from callworker.calls.states import (
    ANSWERED_STATUSES,
    FS_EVENT_SIGNALS,
    LIVE,
    TERMINAL,
    TRANSITIONS,
    Signal,
    Status,
    end_signal,
    transition,
)
from callworker.contract import CallStatus, EventType

ALL_PAIRS = list(itertools.product(Status, Signal))


def test_statuses_are_the_contract_statuses() -> None:
    assert {s.value for s in Status} == {s.value for s in CallStatus}


@pytest.mark.parametrize(("status", "signal"), sorted(TRANSITIONS, key=str))
def test_every_table_entry_publishes_a_contract_event(status: Status, signal: Signal) -> None:
    new_status, event = transition(status, signal)
    assert (new_status, event) == TRANSITIONS[(status, signal)]
    assert event in {e.value for e in EventType}


@pytest.mark.parametrize(("status", "signal"), [p for p in ALL_PAIRS if p not in TRANSITIONS])
def test_pairs_outside_the_table_change_nothing(status: Status, signal: Signal) -> None:
    assert transition(status, signal) == (status, None)


@pytest.mark.parametrize(("status", "signal"), [p for p in ALL_PAIRS if p[0] in TERMINAL])
def test_terminal_statuses_absorb_every_signal(status: Status, signal: Signal) -> None:
    assert transition(status, signal) == (status, None)


@pytest.mark.parametrize("status", sorted(LIVE))
@pytest.mark.parametrize("hangup_requested", [False, True])
def test_every_live_call_ends_exactly_once(status: Status, hangup_requested: bool) -> None:
    signal = end_signal(hangup_requested)
    ended, event = transition(status, signal)
    assert ended in TERMINAL
    assert event in {"call.completed", "call.failed", "call.cancelled"}
    # A second hangup report finds nothing left to do.
    assert transition(ended, signal) == (ended, None)
    assert transition(ended, end_signal(not hangup_requested)) == (ended, None)


@pytest.mark.parametrize("status", sorted(LIVE))
def test_how_a_call_ends(status: Status) -> None:
    by_far_end = transition(status, Signal.ENDED)[0]
    by_command = transition(status, Signal.ENDED_BY_COMMAND)[0]
    if status in ANSWERED_STATUSES:
        assert by_far_end == by_command == Status.COMPLETED
    else:
        assert by_far_end == Status.FAILED
        assert by_command == Status.CANCELLED


def test_hold_only_from_answered_and_back() -> None:
    assert transition(Status.ANSWERED, Signal.HELD) == (Status.ON_HOLD, "call.held")
    assert transition(Status.ON_HOLD, Signal.UNHELD) == (Status.ANSWERED, "call.unheld")
    assert transition(Status.RINGING, Signal.HELD) == (Status.RINGING, None)
    assert transition(Status.ON_HOLD, Signal.HELD) == (Status.ON_HOLD, None)


@pytest.mark.parametrize("status", sorted(LIVE))
def test_mute_keeps_the_status(status: Status) -> None:
    assert transition(status, Signal.MUTED) == (status, "call.muted")
    assert transition(status, Signal.UNMUTED) == (status, "call.unmuted")


def test_late_ringing_after_answer_is_ignored() -> None:
    assert transition(Status.ANSWERED, Signal.RINGING) == (Status.ANSWERED, None)


def test_freeswitch_events_map_to_signals() -> None:
    assert FS_EVENT_SIGNALS["CHANNEL_ANSWER"] is Signal.ANSWERED
    assert FS_EVENT_SIGNALS["CHANNEL_PROGRESS_MEDIA"] is Signal.RINGING
    assert FS_EVENT_SIGNALS["CHANNEL_HANGUP_COMPLETE"] is Signal.ENDED
    assert "CHANNEL_CALLSTATE" not in FS_EVENT_SIGNALS
