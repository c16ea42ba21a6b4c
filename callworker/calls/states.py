"""The call state machine as data: (status, signal) -> (new status, contract event).

A *signal* is what happened to a call, whoever reported it: FreeSWITCH (ringing,
answer, hold, hangup) or the worker itself (mute, which FreeSWITCH never reports).
The table is the whole machine; ``transition`` only looks it up. Terminal
statuses absorb every later signal, which is what makes the terminal event
exactly-once: a repeated or late hangup finds nothing left to do.
"""

from __future__ import annotations

from enum import StrEnum

from callworker.contract.common import TERMINAL_STATUSES, CallStatus

__all__ = [
    "Status",
    "Signal",
    "TRANSITIONS",
    "TERMINAL",
    "LIVE",
    "ANSWERED_STATUSES",
    "FS_EVENT_SIGNALS",
    "transition",
    "end_signal",
]


# The contract's statuses are the machine's.
Status = CallStatus


class Signal(StrEnum):
    RINGING = "ringing"  # 180, or 183 with early media
    ANSWERED = "answered"
    HELD = "held"
    UNHELD = "unheld"
    MUTED = "muted"
    UNMUTED = "unmuted"
    ENDED = "ended"  # the channel ended without a hangup command of ours
    ENDED_BY_COMMAND = "ended_by_command"  # ... after a hangup command of ours


TERMINAL = TERMINAL_STATUSES
LIVE = frozenset(Status) - TERMINAL
ANSWERED_STATUSES = frozenset({Status.ANSWERED, Status.ON_HOLD})

S, G = Status, Signal

# (status, signal) -> (new status, event type or None). A pair that is absent
# changes nothing and publishes nothing (for example a late 180 after answer).
TRANSITIONS: dict[tuple[Status, Signal], tuple[Status, str | None]] = {
    (S.INITIATED, G.RINGING): (S.RINGING, "call.ringing"),
    (S.INITIATED, G.ANSWERED): (S.ANSWERED, "call.answered"),
    (S.RINGING, G.ANSWERED): (S.ANSWERED, "call.answered"),
    (S.ANSWERED, G.HELD): (S.ON_HOLD, "call.held"),
    (S.ON_HOLD, G.UNHELD): (S.ANSWERED, "call.unheld"),
    # Ended before answer: the far end or the network decided (failed), or we did (cancelled).
    (S.INITIATED, G.ENDED): (S.FAILED, "call.failed"),
    (S.RINGING, G.ENDED): (S.FAILED, "call.failed"),
    (S.INITIATED, G.ENDED_BY_COMMAND): (S.CANCELLED, "call.cancelled"),
    (S.RINGING, G.ENDED_BY_COMMAND): (S.CANCELLED, "call.cancelled"),
    # Ended after answer: completed, whoever hung up.
    (S.ANSWERED, G.ENDED): (S.COMPLETED, "call.completed"),
    (S.ON_HOLD, G.ENDED): (S.COMPLETED, "call.completed"),
    (S.ANSWERED, G.ENDED_BY_COMMAND): (S.COMPLETED, "call.completed"),
    (S.ON_HOLD, G.ENDED_BY_COMMAND): (S.COMPLETED, "call.completed"),
}

# Mute does not change the status; it is published for every live status.
for _status in LIVE:
    TRANSITIONS[(_status, G.MUTED)] = (_status, "call.muted")
    TRANSITIONS[(_status, G.UNMUTED)] = (_status, "call.unmuted")
del _status

# FreeSWITCH events that carry a signal. CHANNEL_CALLSTATE repeats what these
# say (and arrives beside them), so it is not subscribed at all.
FS_EVENT_SIGNALS: dict[str, Signal] = {
    "CHANNEL_PROGRESS": Signal.RINGING,
    "CHANNEL_PROGRESS_MEDIA": Signal.RINGING,
    "CHANNEL_ANSWER": Signal.ANSWERED,
    "CHANNEL_HOLD": Signal.HELD,
    "CHANNEL_UNHOLD": Signal.UNHELD,
    "CHANNEL_HANGUP_COMPLETE": Signal.ENDED,
}


def transition(status: Status, signal: Signal) -> tuple[Status, str | None]:
    """The new status and the contract event to publish (None: nothing happens)."""
    return TRANSITIONS.get((status, signal), (status, None))


def end_signal(hangup_requested: bool) -> Signal:
    """Which ending a hangup is: ours (a hangup command) or anyone else's."""
    return Signal.ENDED_BY_COMMAND if hangup_requested else Signal.ENDED
