"""The scenarios: each CONTRACT section 7 outcome, placed the way the worker places calls,
and what the worker does to calls (hang up while ringing or answered, hold, mute), played
on any switch that speaks the event socket.

Strategy: one connection watches every event (``event plain ALL``), another sends the
commands, as the worker does: ``bgapi originate`` with ``Job-UUID`` = the call's UUID
(``callworker.esl.builders``), then ``api`` commands. A scenario is a list of steps; a
``Run`` plays them and then waits until the leg is gone (CHANNEL_STATE CS_DESTROY) and
every originate has its BACKGROUND_JOB. The far end is played by a callable: on the real
switch, commands on the fake carrier's leg; on the simulator, its own methods.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from callworker.esl import builders
from callworker.esl.codec import Event
from tests.sequences.link import EslLink

__all__ = ["CALLER_NAME", "CALLER_NUMBER", "SCENARIOS", "FarEnd", "Recording", "Run", "Scenario",
           "label", "play", "real_far_end"]

CALLER_NUMBER = "+15550001111"
CALLER_NAME = "Front Desk"
GATEWAY = "default"
ORIGINATE_TIMEOUT = 10  # seconds: well past any answer or refusal, even on a busy machine
SHORT_TIMEOUT = 1  # for the scenarios that run into the timeout: the shortest FreeSWITCH takes


class ScenarioError(AssertionError):
    """The switch did not do what the scenario waits for."""


def label(event: Event) -> str:
    """The event's name, with the new state for CHANNEL_STATE and CHANNEL_CALLSTATE."""
    name = event.name
    if name == "CHANNEL_STATE":
        return f"{name}:{event.get('Channel-State')}"
    if name == "CHANNEL_CALLSTATE":
        return f"{name}:{event.get('Channel-Call-State')}"
    return name


@dataclass
class Recording:
    """What one scenario produced: our leg's events and its BACKGROUND_JOBs, in arrival order."""

    scenario: str
    call_id: str
    number: str
    originates: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # api command (with <call_id>) -> reply


FarEnd = Callable[["Run", bool], None]  # puts the far end of the run's call on hold, or off


class Run:
    """One scenario played once against one switch."""

    def __init__(self, scenario: Scenario, watcher: EslLink, commander: EslLink, far_end: FarEnd,
                 *, end_timeout: float = 30.0) -> None:
        self.scenario = scenario
        self.watcher = watcher
        self.commander = commander
        self.far_end = far_end
        self.end_timeout = end_timeout
        self.call_id = str(uuid.uuid4())
        # A number of its own, so the far end's leg can be told apart on a shared switch.
        self.number = f"+1555{secrets.randbelow(10**6):06d}{scenario.suffix}"
        self.recording = Recording(scenario.name, self.call_id, self.number)
        self._start = len(watcher.events)

    def ours(self) -> list[Event]:
        """Events of our leg and BACKGROUND_JOBs of our originates, in arrival order.

        A leg's events carry its channel data; sofia's notes about it (CUSTOM
        ``sofia::reinvite``, only a Unique-ID) are not the leg's events and come when the
        SIP transaction ends, so they are left out.
        """
        return [e for e in self.watcher.events[self._start:]
                if (e.get("Unique-ID") == self.call_id and e.get("Channel-Name") is not None)
                or (e.name == "BACKGROUND_JOB" and e.get("Job-UUID") == self.call_id)]

    def count(self, wanted: str) -> int:
        return sum(label(e) == wanted for e in self.ours())

    def wait_for(self, wanted: str, count: int = 1, timeout: float = 15.0) -> None:
        if not self.watcher.until(lambda: self.count(wanted) >= count, timeout):
            raise ScenarioError(f"{self.scenario.name}: no {wanted} (#{count}) in {timeout} s; "
                                f"saw {[label(e) for e in self.ours()]}")

    def play(self) -> Recording:
        for step in self.scenario.steps:
            step(self)
        jobs = len(self.recording.originates)
        self.wait_for("BACKGROUND_JOB", jobs, self.end_timeout)
        if self.count("CHANNEL_CREATE"):
            self.wait_for("CHANNEL_STATE:CS_DESTROY", 1, self.end_timeout)
        self.recording.events = self.ours()
        return self.recording


# ------------------------------------------------------------------------ steps

Step = Callable[[Run], None]


def originate(*, ignore_early_media: bool = True, timeout: int = ORIGINATE_TIMEOUT) -> Step:
    """``bgapi originate`` as the worker builds it (optionally without ignore_early_media)."""

    def step(run: Run) -> None:
        command = builders.originate(
            call_id=run.call_id, destination_number=run.number, gateway=GATEWAY, timeout_s=timeout,
            caller_id_number=CALLER_NUMBER, caller_id_name=CALLER_NAME)
        if not ignore_early_media:
            command = command.replace("ignore_early_media=true,", "")
        run.recording.originates.append(command)
        reply = run.commander.command(f"bgapi {command}", (("Job-UUID", run.call_id),))
        if reply.reply_text() != f"+OK Job-UUID: {run.call_id}":
            raise ScenarioError(f"bgapi refused: {reply.reply_text()}")

    return step


def wait(wanted: str, count: int = 1, timeout: float = 15.0) -> Step:
    return lambda run: run.wait_for(wanted, count, timeout)


def api(template: str) -> Step:
    """An api command on the call (``{call_id}`` in the template); its reply is recorded."""

    def step(run: Run) -> None:
        reply = run.commander.api(template.format(call_id=run.call_id))
        run.recording.replies[template.format(call_id="<call_id>")] = reply.replace(
            run.call_id, "<call_id>")

    return step


def far_end_hold(on: bool) -> Step:
    return lambda run: run.far_end(run, on)


def still_up(seconds: float) -> Step:
    """Nothing ends the call for ``seconds`` (an originate timeout that no longer holds)."""

    def step(run: Run) -> None:
        if run.watcher.until(lambda: run.count("CHANNEL_HANGUP") > 0, seconds):
            raise ScenarioError(f"{run.scenario.name}: the call ended within {seconds} s")

    return step


# ----------------------------------------------------------------- the scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    suffix: str  # the last four digits, which choose the far end's behaviour
    about: str
    steps: tuple[Step, ...]
    slow: bool = False  # about a minute on the real switch: recorded, not replayed live

    def __repr__(self) -> str:
        return f"Scenario({self.name})"


_KILL = api("uuid_kill {call_id}")
_PLAYBACK = "9616ec3c-76cb-59ca-a212-af8fbceac6e1"
_RECORDING = f"/tmp/callworker-sequences/acme/{{call_id}}/{_PLAYBACK}.wav"
_ANSWERED = wait("CHANNEL_PARK")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("answered_hangup", "0181", "rings (180), answers; hung up by uuid_kill",
             (originate(), _ANSWERED, _KILL)),
    Scenario("ringing_hangup", "0408", "rings; hung up by uuid_kill before any answer",
             (originate(timeout=30), wait("CHANNEL_PROGRESS"), _KILL)),
    Scenario("far_end_hangup", "0200", "answers without ringing; the far end hangs up after 2 s",
             (originate(),)),
    Scenario("busy", "0486", "rings briefly, then 486 Busy Here", (originate(),)),
    Scenario("rejected", "0403", "403 Forbidden, no ringing", (originate(),)),
    Scenario("unallocated", "0404", "404 Not Found, no ringing", (originate(),)),
    Scenario("no_answer", "0408", "rings until originate_timeout",
             (originate(timeout=SHORT_TIMEOUT),)),
    Scenario("long_ring_timeout", "0180", "rings; originate_timeout comes first",
             (originate(timeout=SHORT_TIMEOUT),)),
    Scenario("long_ring", "0180", "rings 60 s, then the far end gives up (480, Q.850 19)",
             (originate(timeout=90),), slow=True),
    Scenario("early_media", "0183", "183 with SDP and a tone, never answers; ignore_early_media",
             (originate(timeout=SHORT_TIMEOUT),)),
    Scenario("early_media_not_ignored", "0183",
             "the same without ignore_early_media: the originate succeeds on the 183 and its "
             "timeout no longer holds; hung up by uuid_kill",
             (originate(ignore_early_media=False, timeout=SHORT_TIMEOUT), wait("CHANNEL_PARK"),
              still_up(SHORT_TIMEOUT + 1.0), _KILL)),
    Scenario("held_and_resumed", "0181", "answered; uuid_hold, uuid_hold off; hung up",
             (originate(), _ANSWERED, api("uuid_hold {call_id}"), wait("CHANNEL_HOLD"),
              api("uuid_hold off {call_id}"), wait("CHANNEL_UNHOLD"),
              wait("CHANNEL_CALLSTATE:ACTIVE", 2), _KILL)),
    Scenario("far_end_hold", "0181", "answered; the far end holds and resumes; hung up",
             (originate(), _ANSWERED, far_end_hold(True), wait("CHANNEL_HOLD"),
              far_end_hold(False), wait("CHANNEL_UNHOLD"), wait("CHANNEL_CALLSTATE:ACTIVE", 2),
              _KILL)),
    Scenario("muted", "0181", "answered; uuid_audio start read mute 1, then mute 0; hung up",
             (originate(), _ANSWERED, api("uuid_audio {call_id} start read mute 1"),
              wait("MEDIA_BUG_START"), api("uuid_audio {call_id} start read mute 0"),
              wait("MEDIA_BUG_STOP"), _KILL)),
    Scenario("duplicate_uuid", "0181",
             "answered; an originate again with the same origination_uuid; hung up",
             (originate(), _ANSWERED, originate(), wait("BACKGROUND_JOB", 2), _KILL)),
    Scenario("media", "0181",
             "answered; a tone played (uuid_broadcast), a recording started and stopped, DTMF sent; hung up",
             (originate(), _ANSWERED, api(f"uuid_broadcast {{call_id}} {{{{callworker_playback_id={_PLAYBACK}}}}}"
                                          "tone_stream://%(100,100,440);loops=2 aleg"),
              wait("PLAYBACK_STOP"), wait("COMMAND"), api(f"uuid_record {{call_id}} start {_RECORDING}"),
              wait("MEDIA_BUG_START"), api("uuid_send_dtmf {call_id} 1#"),
              api(f"uuid_record {{call_id}} stop {_RECORDING}"), wait("MEDIA_BUG_STOP"), _KILL)),
    Scenario("far_end_dtmf", "0270", "answers; the far end keys in 123#; hung up",
             (originate(), _ANSWERED, wait("DTMF", 4), _KILL)),
    Scenario("unknown_uuid", "0181", "hold, unhold, mute and kill a uuid no channel has",
             (api("uuid_hold {call_id}"), api("uuid_hold off {call_id}"),
              api("uuid_audio {call_id} start read mute 1"), _KILL)),
)


def real_far_end(run: Run, on: bool) -> None:
    """The fake carrier's leg of the call (``sofia/carrier/...``) holds or resumes it."""
    carrier = [e for e in run.watcher.events
               if e.name == "CHANNEL_ANSWER" and e.get("Caller-Destination-Number") == run.number
               and (e.get("Channel-Name") or "").startswith("sofia/carrier/")]
    if not carrier:
        raise ScenarioError("the carrier's leg of the call was not seen")
    command = f"uuid_hold {carrier[0]['Unique-ID']}" if on else f"uuid_hold off {carrier[0]['Unique-ID']}"
    reply = run.commander.api(command)
    if not reply.startswith("+OK"):
        raise ScenarioError(f"{command}: {reply}")


def play(scenario: Scenario, address: tuple[str, int], password: str, far_end: FarEnd,
         *, end_timeout: float = 30.0) -> Recording:
    """Play ``scenario`` once on the switch at ``address``."""
    watcher = EslLink(*address, password, events="ALL")
    commander = EslLink(*address, password)
    try:
        return Run(scenario, watcher, commander, far_end, end_timeout=end_timeout).play()
    finally:
        commander.close()
        watcher.close()
