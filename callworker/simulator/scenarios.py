"""Call outcomes and the life of one originated leg, event by event.

Strategy: each call is one greenlet running ``run_call``: set-up events, the far
end's responses, then either the originate's success (``+OK <uuid>``) and a talk
phase, or a failure; every path ends in the same teardown (``legs.tear_down``).
Waits are ``Channel.wait``, which returns early when ``uuid_kill``/``hupall`` ask
for a hangup, so a kill is handled at whatever point the call has reached. The
originate result is handed to ``on_result`` from this greenlet, in line with the
events and where FreeSWITCH 1.10.12 puts it: ``+OK`` after the answer (and the
caller-ID swap) and before the application starts; ``-ERR`` after the leg's
CHANNEL_HANGUP_COMPLETE, or right after its CHANNEL_HANGUP when the originate timed
out. A test fixture recorded on the real switch holds these sequences
(tests/fixtures/freeswitch-1.10.12/sequences.json).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from callworker.simulator.bridge import schedule_on_answer
from callworker.simulator.channel import Channel
from callworker.simulator.legs import (
    Ending,
    answer_far_end,
    execute_app,
    flip_cid,
    mark_early_media,
    mark_ringing,
    tear_down,
)
from callworker.simulator.media import far_end_dtmf
from callworker.simulator.switch import Switch

__all__ = ["OUTCOMES", "outcome_for", "run_call"]

# Last four digits of the dialled number -> outcome (CONTRACT section 7).
OUTCOMES = {"0486": "busy", "0408": "no_answer", "0403": "rejected", "0404": "unroutable",
            "0200": "far_end_hangup", "0183": "early_media", "0180": "long_ring",
            "0270": "sends_dtmf"}
# ...0270: answers, then the far end keys in these digits (and stays up).
FAR_END_DIGITS = "123#"

# Final responses of a carrier that refuses the call (what FreeSWITCH records of them).
_REFUSED = {
    "busy": Ending("USER_BUSY", 486, "Busy Here", "recv_refuse"),
    "rejected": Ending("CALL_REJECTED", 403, "Forbidden", "recv_refuse"),
    "unroutable": Ending("UNALLOCATED_NUMBER", 404, "Not Found", "recv_refuse"),
    # ...0180: the carrier gives up ringing with 480 and a Q.850 Reason of 19 (NO_ANSWER).
    "long_ring": Ending("NO_ANSWER", 480, "Temporarily Unavailable", "recv_refuse"),
}
# originate_timeout reached: FreeSWITCH hangs up the leg itself and sends CANCEL.
_TIMED_OUT = Ending("NO_ANSWER", None, "", "send_cancel", timed_out=True)
_FOREVER = float("inf")  # until the originate's timeout (or a hangup)


def outcome_for(number: str) -> str:
    return OUTCOMES.get(number[-4:], "answer")


def _unanswered(ch: Channel) -> Ending:
    """A hangup before the answer: asked here (CANCEL sent) or by the far end."""
    cause = ch.kill_cause or "NORMAL_CLEARING"
    return Ending(cause, None, "", "recv_refuse" if ch.kill_remote else "send_cancel")


def _bye(ch: Channel) -> Ending:
    """A hangup of an answered call, requested here (BYE sent) or by the far end."""
    if ch.kill_remote:
        return Ending(ch.kill_cause or "NORMAL_CLEARING", 200, "OK", "recv_bye")
    return Ending(ch.kill_cause or "NORMAL_CLEARING", None, "", "send_bye")


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
        ending = _Ringing(sw, ch, outcome, timeout).run()
        if ending is None:
            flip_cid(sw, ch)
            result(f"+OK {ch.uuid}\n")
            schedule_on_answer(sw, ch)
            execute_app(sw, ch, *app)
            ending = _talk(sw, ch, outcome)
        failed = ending
        tear_down(sw, ch, ending, on_result=lambda: result(f"-ERR {failed.cause}\n"))
    finally:
        # Whatever ended the greenlet, an api caller waiting for the result is released.
        result(f"-ERR {ch.hangup_cause or 'NORMAL_TEMPORARY_FAILURE'}\n")
        sw.forget(ch)


def _set_up(sw: Switch, ch: Channel) -> None:
    """The leg is made: OUTGOING (before its state machine runs), then INIT to CONSUME_MEDIA."""
    sw.emit(ch, "CHANNEL_OUTGOING", state_number=1)
    sw.set_state(ch, "CS_INIT")
    sw.emit(ch, "CHANNEL_CREATE", state_number=2)
    sw.emit(ch, "CHANNEL_ORIGINATE", state_number=2)
    sw.set_state(ch, "CS_ROUTING")
    sw.set_state(ch, "CS_CONSUME_MEDIA")


class _Ringing:
    """From the INVITE to the originate's result: None once it succeeds, else the Ending."""

    def __init__(self, sw: Switch, ch: Channel, outcome: str, timeout: float) -> None:
        self.sw, self.ch, self.outcome = sw, ch, outcome
        self.deadline = time.monotonic() + timeout

    def run(self) -> Ending | None:
        sw, ch, outcome, timing = self.sw, self.ch, self.outcome, self.sw.timing
        if (stopped := self._wait(timing.ring_delay)) is not None:
            return stopped
        if outcome in ("rejected", "unroutable"):
            return _REFUSED[outcome]
        if outcome in ("far_end_hangup", "sends_dtmf"):  # answers without ringing
            answer_far_end(sw, ch)
            return None
        if outcome == "early_media":
            mark_early_media(sw, ch)
            # Without ignore_early_media the originate succeeds on the 183 at once, and
            # originate_timeout no longer applies; with it, it waits for an answer.
            return self._wait(_FOREVER) if ch.ignore_early_media else None
        mark_ringing(sw, ch)
        if outcome == "no_answer":
            return self._wait(_FOREVER)
        if outcome in ("busy", "long_ring"):
            delay = timing.answer_delay if outcome == "busy" else timing.long_ring
            return self._wait(delay) or _REFUSED[outcome]
        if (stopped := self._wait(timing.answer_delay)) is None:
            answer_far_end(sw, ch)
        return stopped

    def _wait(self, seconds: float) -> Ending | None:
        """Wait ``seconds`` for the far end: None if they passed, else the Ending of a
        hangup or of the originate's timeout, whichever came first."""
        remaining = self.deadline - time.monotonic()
        if self.ch.wait(min(seconds, max(remaining, 0.0))):
            return _unanswered(self.ch)
        return _TIMED_OUT if seconds >= remaining else None


def _talk(sw: Switch, ch: Channel, outcome: str) -> Ending:
    if outcome == "far_end_hangup":
        if not ch.wait(sw.timing.far_end_hangup_after):
            ch.request_hangup("NORMAL_CLEARING", remote=True)
    elif outcome == "sends_dtmf":
        far_end_dtmf(sw, ch, FAR_END_DIGITS)
        ch.killed.wait()
    else:
        ch.killed.wait()
    return _bye(ch) if ch.answered else _unanswered(ch)
