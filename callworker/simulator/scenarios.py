"""Call outcomes and the life of one originated leg, event by event.

Strategy: each call is one greenlet running ``run_call``: set-up events, ringing,
then either an answer (the originate result ``+OK <uuid>``) and a talk phase, or
a failure; every path ends in the same teardown. Waits are ``Channel.wait``, which
returns early when ``uuid_kill``/``hupall`` ask for a hangup, so a kill is handled
at whatever point the call has reached. The originate result is handed to
``on_result`` from this greenlet, in line with the events, so a BACKGROUND_JOB
can never overtake or trail the events it belongs to.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass

from callworker.simulator.channel import Channel, now_us
from callworker.simulator.switch import Switch
from callworker.simulator.variables import (
    answer_vars,
    cdr_vars,
    hangup_vars,
    progress_vars,
    rtp_stats,
)

__all__ = ["Ending", "outcome_for", "run_call", "answer_leg", "execute_app", "tear_down", "OUTCOMES"]

# Last four digits of the dialled number -> outcome (CONTRACT section 7).
OUTCOMES = {"0486": "busy", "0408": "no_answer", "0403": "rejected", "0404": "unroutable",
            "0200": "far_end_hangup"}


@dataclass(frozen=True, slots=True)
class Ending:
    cause: str
    sip_status: int | None
    phrase: str
    disposition: str


_FAILURES = {
    "busy": Ending("USER_BUSY", 486, "Busy Here", "recv_refuse"),
    "rejected": Ending("CALL_REJECTED", 603, "Decline", "recv_refuse"),
    "unroutable": Ending("UNALLOCATED_NUMBER", 404, "Not Found", "recv_refuse"),
    "no_answer": Ending("NO_ANSWER", 487, "Request Terminated", "send_cancel"),
}


def outcome_for(number: str) -> str:
    return OUTCOMES.get(number[-4:], "answer")


def _cancelled(ch: Channel) -> Ending:
    """A hangup requested before the answer: FreeSWITCH sends CANCEL."""
    return Ending(ch.kill_cause or "NORMAL_CLEARING", 487, "Request Terminated", "send_cancel")


def _bye(ch: Channel) -> Ending:
    """A hangup of an answered call, requested here (BYE sent) or by the far end."""
    disposition = "recv_bye" if ch.kill_remote else "send_bye"
    return Ending(ch.kill_cause or "NORMAL_CLEARING", 200, "OK", disposition)


def run_call(sw: Switch, ch: Channel, outcome: str, timeout: float, app: tuple[str, str],
             on_result: Callable[[str], None]) -> None:
    done = False

    def result(text: str) -> None:
        nonlocal done
        if not done:
            done = True
            on_result(text)

    try:
        _set_up(sw, ch)
        ending = _ring(sw, ch, outcome, timeout)
        if ending is None:
            answer_leg(sw, ch)
            execute_app(sw, ch, *app)
            result(f"+OK {ch.uuid}\n")
            ending = _talk(sw, ch, outcome)
        tear_down(sw, ch, ending)
        result(f"-ERR {ending.cause}\n")
    finally:
        # Whatever ended the greenlet, an api caller waiting for the result is released.
        result(f"-ERR {ch.hangup_cause or 'NORMAL_TEMPORARY_FAILURE'}\n")
        sw.forget(ch)


def _set_up(sw: Switch, ch: Channel) -> None:
    sw.emit(ch, "CHANNEL_OUTGOING")
    sw.emit(ch, "CHANNEL_STATE")
    sw.set_state(ch, "CS_INIT")
    sw.emit(ch, "CHANNEL_CREATE", state_number=2)
    sw.emit(ch, "CHANNEL_ORIGINATE", state_number=2)
    sw.set_state(ch, "CS_ROUTING")
    sw.set_state(ch, "CS_CONSUME_MEDIA")


def _ring(sw: Switch, ch: Channel, outcome: str, timeout: float) -> Ending | None:
    """Ringing until an answer (None) or the ending of an unanswered call."""
    timing = sw.timing
    deadline = ch.created_us + int(timeout * 1_000_000)
    if ch.wait(timing.ring_delay):
        return _cancelled(ch)
    if outcome in ("rejected", "unroutable"):
        return _FAILURES[outcome]
    if now_us() >= deadline:
        return _FAILURES["no_answer"]
    ch.progress_us = now_us()
    sw.set_vars(ch, progress_vars())
    sw.emit(ch, "CHANNEL_PROGRESS")
    sw.set_call_state(ch, "RINGING")
    if outcome == "busy":
        return _cancelled(ch) if ch.wait(timing.answer_delay) else _FAILURES["busy"]
    remaining = (deadline - now_us()) / 1e6
    if outcome == "no_answer":
        return _cancelled(ch) if ch.wait(remaining) else _FAILURES["no_answer"]
    if ch.wait(min(timing.answer_delay, remaining)):
        return _cancelled(ch)
    if timing.answer_delay > remaining:
        return _FAILURES["no_answer"]
    return None


def answer_leg(sw: Switch, ch: Channel) -> None:
    """The leg answers: CHANNEL_ANSWER, then the call state ACTIVE."""
    ch.answered_us = now_us()
    ch.media = True
    ch.answer_state = "answered"
    sw.set_vars(ch, answer_vars())
    sw.emit(ch, "CHANNEL_ANSWER")
    sw.set_call_state(ch, "ACTIVE")


def execute_app(sw: Switch, ch: Channel, app: str, arg: str) -> None:
    """Start the leg's long-running application (park, socket): CHANNEL_EXECUTE."""
    if ch.state != "CS_EXECUTE":
        sw.set_state(ch, "CS_EXECUTE")
    ch.app, ch.app_data, ch.app_uuid = app, arg, str(uuidlib.uuid4())
    ch.app_running = True
    sw.set_vars(ch, [("current_application", app), ("current_application_data", arg)])
    sw.emit(ch, "CHANNEL_EXECUTE", bottom=[("Application", app), ("Application-Data", arg),
                                           ("Application-UUID", ch.app_uuid)])
    if app == "park":
        ch.parked = True
        sw.emit(ch, "CHANNEL_PARK")


def _talk(sw: Switch, ch: Channel, outcome: str) -> Ending:
    if outcome == "far_end_hangup":
        if not ch.wait(sw.timing.far_end_hangup_after):
            ch.request_hangup("NORMAL_CLEARING", remote=True)
    else:
        ch.killed.wait()
    return _bye(ch)


def tear_down(sw: Switch, ch: Channel, ending: Ending,
              on_down: Callable[[], None] | None = None) -> None:
    """CHANNEL_HANGUP through CHANNEL_DESTROY (SPEC 5a steps 11-14).

    ``on_down`` runs once the channel is in CS_HANGUP: an outbound socket
    notices the hangup at that point.
    """
    sw.set_vars(ch, hangup_vars(ending.sip_status, ending.phrase, None))
    ch.hangup_cause = ending.cause
    ch.answer_state = "hangup"
    sw.emit(ch, "CHANNEL_HANGUP", state_number=10)
    if ch.parked:
        ch.parked = False
        sw.emit(ch, "CHANNEL_UNPARK", state_number=10)
    if ch.app_running:
        ch.app_running = False
        sw.emit(ch, "CHANNEL_EXECUTE_COMPLETE", state_number=10, bottom=[
            ("Application", ch.app), ("Application-Data", ch.app_data),
            ("Application-Response", "_none_"), ("Application-UUID", ch.app_uuid)])
    ch.hangup_us = now_us()
    if ch.held:
        ch.hold_accum_us += ch.hangup_us - ch.held_since_us
        ch.held_since_us = 0
    sw.set_state(ch, "CS_HANGUP")
    if on_down is not None:
        on_down()
    sw.set_call_state(ch, "HANGUP")
    sw.set_vars(ch, hangup_vars(None, "", ending.disposition))
    sw.set_vars(ch, rtp_stats(ch, ch.hangup_us))
    sw.set_state(ch, "CS_REPORTING")
    sw.set_vars(ch, cdr_vars(ch, ch.app or "park"))
    sw.emit(ch, "CHANNEL_HANGUP_COMPLETE", top=[("Hangup-Cause", ending.cause)])
    sw.set_state(ch, "CS_DESTROY")
    sw.emit(ch, "CHANNEL_DESTROY")
    sw.set_call_state(ch, "DOWN")
