"""What happens to a leg whatever its call: the far end's responses, media, answer, the
caller-ID swap, hold, the running application, and the teardown.

Each step fires the events FreeSWITCH 1.10.12 fires for it, in its order (recorded in
tests/fixtures/freeswitch-1.10.12/sequences.json). Shared by originated legs
(``scenarios``) and legs arriving from a carrier (``inbound``).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass

from callworker.simulator.channel import Channel
from callworker.simulator.events import Origin
from callworker.simulator.headers import CODEC
from callworker.simulator.switch import Switch
from callworker.simulator.variables import (
    cdr_vars,
    hangup_vars,
    media_vars,
    progress_vars,
    rtp_stats,
)

__all__ = ["Ending", "HELD_BY_FAR_END", "HELD_BY_US", "answer_leg", "execute_app", "flip_cid",
           "hold", "mark_early_media", "mark_ringing", "start_media", "tear_down", "unhold"]

HELD_BY_US = "us"
HELD_BY_FAR_END = "far_end"
# A re-INVITE from the far end marks the leg held (sofia); uuid_hold goes through switch_ivr.
_HOLD_ORIGINS: dict[tuple[str, bool], Origin] = {
    (HELD_BY_US, True): ("switch_ivr.c", "switch_ivr_hold", 1558),
    (HELD_BY_US, False): ("switch_ivr.c", "switch_ivr_unhold", 1638),
    (HELD_BY_FAR_END, True): ("switch_channel.c", "switch_channel_mark_hold", 875),
    (HELD_BY_FAR_END, False): ("switch_channel.c", "switch_channel_mark_hold", 875),
}
_READ_CODEC: Origin = ("switch_core_codec.c", "switch_core_session_set_real_read_codec", 168)
_WRITE_CODEC: Origin = ("switch_core_codec.c", "switch_core_session_set_write_codec", 450)


@dataclass(frozen=True, slots=True)
class Ending:
    """How a leg ends: the cause and what the SIP dialog recorded about it."""

    cause: str
    sip_status: int | None
    phrase: str
    disposition: str
    # The originate gave up on the leg (its timeout): the BACKGROUND_JOB -ERR follows
    # CHANNEL_HANGUP at once. Otherwise the leg ends first and the -ERR comes after its
    # CHANNEL_HANGUP_COMPLETE.
    timed_out: bool = False


def _profile_changed(ch: Channel) -> None:
    ch.cache.pop("caller", None)
    ch.cache.pop("identity", None)


def _responded(ch: Channel) -> None:
    """The far end's first response names the callee (its number) and its address."""
    if not ch.responded:
        ch.responded = True
        _profile_changed(ch)


def start_media(sw: Switch, ch: Channel) -> None:
    """Codecs negotiated (an SDP answer, in a 183 or a 200): two CODEC events."""
    if ch.media:
        return
    ch.media = True
    ch.media_us = sw.now_us()
    name, rate, bits = CODEC
    sw.emit(ch, "CODEC", origin=_READ_CODEC, bottom=[
        ("channel-read-codec-name", name), ("channel-read-codec-rate", rate),
        ("channel-read-codec-bit-rate", bits)])
    sw.emit(ch, "CODEC", origin=_WRITE_CODEC, bottom=[
        ("Channel-Write-Codec-Name", name), ("Channel-Write-Codec-Rate", rate),
        ("Channel-Write-codec-bit-rate", bits)])


def mark_ringing(sw: Switch, ch: Channel) -> None:
    """180 Ringing: CHANNEL_PROGRESS (with the call state before), then RINGING."""
    _responded(ch)
    ch.progress_us = sw.now_us()
    sw.set_vars(ch, progress_vars())
    sw.emit(ch, "CHANNEL_PROGRESS")
    sw.set_call_state(ch, "RINGING")


def mark_early_media(sw: Switch, ch: Channel) -> None:
    """183 with SDP: CHANNEL_PROGRESS_MEDIA, the call state EARLY, then the codecs."""
    _responded(ch)
    ch.progress_media_us = sw.now_us()
    ch.answer_state = "early"
    sw.set_vars(ch, [*progress_vars(), *media_vars("EARLY MEDIA")])
    sw.emit(ch, "CHANNEL_PROGRESS_MEDIA")
    sw.set_call_state(ch, "EARLY")
    start_media(sw, ch)


def answer_leg(sw: Switch, ch: Channel) -> None:
    """The leg answers: CHANNEL_ANSWER (with the call state before), then ACTIVE."""
    ch.answered_us = sw.now_us()
    ch.media = True
    ch.media_us = ch.media_us or ch.answered_us
    ch.answer_state = "answered"
    sw.set_vars(ch, media_vars("ANSWER"))
    sw.emit(ch, "CHANNEL_ANSWER")
    sw.set_call_state(ch, "ACTIVE")


def answer_far_end(sw: Switch, ch: Channel) -> None:
    """200 OK to our INVITE: the codecs (unless early media set them), then the answer."""
    _responded(ch)
    start_media(sw, ch)
    answer_leg(sw, ch)


def flip_cid(sw: Switch, ch: Channel) -> None:
    """The originate succeeded: FreeSWITCH swaps caller and callee ID (CALL_UPDATE).

    From here ``Caller-Caller-ID-*`` name the far end; ``Caller-Orig-Caller-ID-*``
    keep what was sent.
    """
    ch.flipped = True
    _profile_changed(ch)
    sw.emit(ch, "CALL_UPDATE", top=[("Direction", "RECV")])


def hold(sw: Switch, ch: Channel, by: str) -> None:
    """Held by us (uuid_hold) or by the far end (its re-INVITE): HELD, then CHANNEL_HOLD."""
    ch.held_since_us = ch.last_hold_us = sw.now_us()
    ch.held_by = by
    sw.set_call_state(ch, "HELD")
    sw.emit(ch, "CHANNEL_HOLD", origin=_HOLD_ORIGINS[by, True])


def unhold(sw: Switch, ch: Channel, by: str) -> None:
    """UNHELD and CHANNEL_UNHOLD; the next media frame makes the call ACTIVE again.

    One hold per leg, whoever put it there: ``uuid_hold off`` resumes a call the far
    end held, and the far end one we held (as FreeSWITCH 1.10.12 does); the events
    tell who resumed it.
    """
    ch.hold_accum_us += sw.now_us() - ch.held_since_us
    ch.held_since_us = 0
    ch.held_by = None
    sw.set_call_state(ch, "UNHELD")
    sw.emit(ch, "CHANNEL_UNHOLD", origin=_HOLD_ORIGINS[by, False])
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


def _end_application(sw: Switch, ch: Channel) -> None:
    if ch.parked:
        ch.parked = False
        sw.emit(ch, "CHANNEL_UNPARK", state_number=10)
    if ch.app_running:
        ch.app_running = False
        sw.emit(ch, "CHANNEL_EXECUTE_COMPLETE", state_number=10, bottom=[
            ("Application", ch.app), ("Application-Data", ch.app_data),
            ("Application-Response", "_none_"), ("Application-UUID", ch.app_uuid)])


def tear_down(sw: Switch, ch: Channel, ending: Ending, on_down: Callable[[], None] | None = None,
              on_result: Callable[[], None] | None = None) -> None:
    """CHANNEL_HANGUP through CHANNEL_DESTROY and the state CS_DESTROY.

    ``on_down`` runs once the channel is in CS_HANGUP: an outbound socket notices
    the hangup at that point. ``on_result`` reports an unanswered originate's
    failure where FreeSWITCH's originate thread does (see ``Ending.timed_out``).
    """
    sw.set_vars(ch, hangup_vars(ending.sip_status, ending.phrase, ending.disposition, ending.cause))
    ch.hangup_cause = ending.cause
    ch.answer_state = "hangup"
    sw.emit(ch, "CHANNEL_HANGUP", state_number=10)
    if on_result is not None and ending.timed_out:
        on_result()
    channel_hooks, ch.hangup_hooks = ch.hangup_hooks, []
    for channel_hook in channel_hooks:
        channel_hook()
    _end_application(sw, ch)
    for hook in sw.hangup_hooks:
        hook(ch)
    ch.hangup_us = sw.now_us()
    if ch.held:
        ch.hold_accum_us += ch.hangup_us - ch.held_since_us
        ch.held_since_us = 0
    sw.set_state(ch, "CS_HANGUP")
    if on_down is not None:
        on_down()
    sw.set_call_state(ch, "HANGUP")
    if ch.media or ch.direction == "inbound":  # a carrier's INVITE brings its SDP
        sw.set_vars(ch, rtp_stats(ch, ch.hangup_us))
    sw.set_state(ch, "CS_REPORTING")
    sw.set_vars(ch, cdr_vars(ch, ch.app or "park"))
    sw.emit(ch, "CHANNEL_HANGUP_COMPLETE", top=[("Hangup-Cause", ending.cause)])
    if on_result is not None:
        on_result()
    sw.emit(ch, "CHANNEL_DESTROY", state_number=12)
    ch.set_state("CS_DESTROY")
    sw.emit(ch, "CHANNEL_STATE")
