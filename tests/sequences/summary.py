"""A recording as the worker sees it, and what must be equal between two switches.

The summary of a scenario holds: every event of our leg (with the new state for STATE
and CALLSTATE events) and its BACKGROUND_JOBs, in order; the subset the worker
subscribes to; for each of those the headers the worker reads (and the body of a
BACKGROUND_JOB), with the call's UUID and number replaced by ``<call_id>`` and
``<number>``; and the replies to the api commands.

Equal between switches: names and order, which headers are present, causes, Q.850
values, dispositions, codecs, caller IDs, states, calling functions, job bodies and
replies. Not equal, so compared by shape only: times (a microsecond epoch, or 0 for
"never") and durations (a whole number), MOS (a decimal).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from callworker.calls.fsevents import SUBSCRIBED_EVENTS as CALL_EVENTS
from callworker.calls.media_events import MEDIA_EVENTS
from tests.sequences.scenarios import Recording, label

__all__ = ["CDR_READS", "EVENT_READS", "compare", "job_in_window", "merge_jobs", "shape", "summarise"]

# Read on every event the worker handles (fsevents.py): which call, when, by whom held,
# with the channel's own account of its state alongside.
EVENT_READS = ("Unique-ID", "Job-UUID", "Event-Date-Timestamp", "Event-Calling-Function",
               "Hangup-Cause", "Answer-State", "Channel-State", "Channel-Call-State")
# Read from CHANNEL_HANGUP_COMPLETE for the CDR (cdr.py).
CDR_READS = (
    "Caller-Orig-Caller-ID-Name", "Caller-Orig-Caller-ID-Number", "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number", "Caller-Destination-Number", "variable_start_uepoch",
    "variable_answer_uepoch", "variable_end_uepoch", "variable_duration", "variable_billsec",
    "variable_billmsec", "variable_hangup_cause", "variable_hangup_cause_q850",
    "variable_sip_hangup_disposition", "variable_progress_uepoch",
    "variable_progress_media_uepoch", "variable_rtp_audio_in_mos", "variable_read_codec",
    "variable_write_codec",
)
# Read from the media events (media_events.py).
MEDIA_READS = ("callworker_playback_id", "Playback-File-Path", "Playback-Status", "Record-File-Path",
               "variable_record_ms", "variable_record_samples", "DTMF-Digit", "DTMF-Duration")
SUBSCRIBED_EVENTS = (*CALL_EVENTS, *MEDIA_EVENTS)
BODY = "_body"
JOB = "BACKGROUND_JOB"
_TIMES = re.compile(r"Event-Date-Timestamp|variable_\w+_uepoch")
_COUNTS = frozenset({"variable_duration", "variable_billsec", "variable_billmsec", "variable_record_ms",
                     "variable_record_samples"})
_DECIMALS = frozenset({"variable_rtp_audio_in_mos"})


def _reads(name: str) -> tuple[str, ...]:
    if name in MEDIA_EVENTS:
        return EVENT_READS + MEDIA_READS
    return EVENT_READS + CDR_READS if name == "CHANNEL_HANGUP_COMPLETE" else EVENT_READS


def summarise(recording: Recording) -> dict[str, Any]:
    """The JSON form of a recording (as stored in the fixture)."""

    def clean(value: str) -> str:
        return value.replace(recording.call_id, "<call_id>").replace(recording.number, "<number>")

    subscribed = [e for e in recording.events if e.name in SUBSCRIBED_EVENTS]
    headers = []
    for event in subscribed:
        found = {name: clean(value) for name in _reads(event.name)
                 if (value := event.get(name)) is not None}
        if event.name == "BACKGROUND_JOB":
            found[BODY] = clean(event.body or "")
        headers.append(found)
    events = [label(e) for e in recording.events]
    jobs = [{"body": found[BODY], "after": [before]}
            for found, before in zip([h for h in headers if BODY in h], _job_predecessors(events),
                                     strict=True)]
    return {"events": events, "subscribed": [label(e) for e in subscribed], "headers": headers,
            "jobs": jobs, "replies": dict(recording.replies)}


def _job_predecessors(events: list[str]) -> list[str]:
    """For each BACKGROUND_JOB, the leg's event just before it ("" if none)."""
    out, last = [], ""
    for name in events:
        if name == JOB:
            out.append(last)
        else:
            last = name
    return out


def job_in_window(events: list[str], index: int, body: str) -> bool:
    """Whether the ``index``-th BACKGROUND_JOB is where FreeSWITCH's threads can put it.

    The job is fired by the originate's own thread when it returns, so only what that
    thread does first is ordered before it: the caller-ID swap (CALL_UPDATE) of a
    success; the leg's CHANNEL_HANGUP of a failure (the timeout fires it there, a
    refusal is noticed there). Where it falls after those, among the leg's own
    events, is a race (the real switch puts a refusal's -ERR on either side of
    CHANNEL_HANGUP_COMPLETE).
    """
    if index > 0:
        return True  # another originate with the UUID in use: it made no channel of its own
    positions = [i for i, name in enumerate(events) if name == JOB]
    at = positions[index]
    before = events[:at]
    if body.startswith("+OK"):
        return "CALL_UPDATE" in before and "CHANNEL_HANGUP" not in before
    return "CHANNEL_HANGUP" in before or "CHANNEL_CREATE" not in events


def shape(name: str, value: str) -> str:
    """What must match of a header's value: the value itself, or its kind for times and counts."""
    if _TIMES.fullmatch(name):
        return "0" if value == "0" else ("epoch_us" if re.fullmatch(r"1\d{15}", value) else value)
    if name in _COUNTS:
        return "count" if value.isdigit() else value
    if name in _DECIMALS:
        return "decimal" if re.fullmatch(r"\d+\.\d+", value) else value
    return value


def _diff(what: str, expected: list[str], actual: list[str], names: tuple[str, str]) -> list[str]:
    if expected == actual:
        return []
    lines = difflib.unified_diff(expected, actual, *names, lineterm="", n=2)
    return [f"{what} differ:\n  " + "\n  ".join(lines)]


def _without_jobs(names: list[str]) -> list[str]:
    return [name for name in names if name != JOB]


def _headers(where: str, want: dict[str, str], got: dict[str, str],
             names: tuple[str, str]) -> list[str]:
    problems = []
    if sorted(want) != sorted(got):
        problems.append(f"{where}: headers present differ: only {names[0]} {sorted(set(want) - set(got))}, "
                        f"only {names[1]} {sorted(set(got) - set(want))}")
    for name in sorted(set(want) & set(got)):
        if shape(name, want[name]) != shape(name, got[name]):
            problems.append(f"{where}: {name} is {got[name]!r} ({names[1]}), {want[name]!r} ({names[0]})")
    return problems


def _jobs(expected: dict[str, Any], actual: dict[str, Any], observed: bool,
          names: tuple[str, str]) -> list[str]:
    problems = []
    if len(expected["jobs"]) != len(actual["jobs"]):
        return [f"BACKGROUND_JOBs: {len(expected['jobs'])} ({names[0]}), {len(actual['jobs'])} ({names[1]})"]
    for index, (want, got) in enumerate(zip(expected["jobs"], actual["jobs"], strict=True)):
        if not job_in_window(actual["events"], index, got["body"]):
            problems.append(f"BACKGROUND_JOB #{index + 1} ({got['body']!r}) is out of place: "
                            f"{actual['events']}")
        if observed and got["after"][0] not in want["after"]:
            problems.append(f"BACKGROUND_JOB #{index + 1} follows {got['after'][0]}; in the "
                            f"recording it followed {' or '.join(want['after'])}")
    return problems


def compare(expected: dict[str, Any], actual: dict[str, Any], *, observed: bool = False,
            names: tuple[str, str] = ("real", "simulated")) -> list[str]:
    """The differences that matter between two summaries of one scenario (empty: equal).

    BACKGROUND_JOBs are compared apart from the leg's events: their bodies and headers
    like any event's, their place by ``job_in_window`` (and, with ``observed``, it must
    be a place ``expected`` saw: a fixture's, gathered over several plays).
    """
    problems = _diff("events of the leg", _without_jobs(expected["events"]),
                     _without_jobs(actual["events"]), names)
    problems += _diff("events the worker subscribes to", _without_jobs(expected["subscribed"]),
                      _without_jobs(actual["subscribed"]), names)
    if not problems:
        pairs = [(want, got, name) for want, got, name in zip(
            _by_kind(expected, False), _by_kind(actual, False),
            _without_jobs(expected["subscribed"]), strict=True)]
        pairs += [(want, got, JOB) for want, got in zip(_by_kind(expected, True),
                                                         _by_kind(actual, True), strict=False)]
        for index, (want, got, name) in enumerate(pairs):
            problems += _headers(f"{name} (#{index + 1})", want, got, names)
        problems += _jobs(expected, actual, observed, names)
    if expected["replies"] != actual["replies"]:
        problems.append(f"api replies differ: {names[0]} {expected['replies']}, "
                        f"{names[1]} {actual['replies']}")
    return problems


def _by_kind(summary: dict[str, Any], jobs: bool) -> list[dict[str, str]]:
    """The header dicts of the subscribed events: the jobs', or the others'."""
    return [h for h, name in zip(summary["headers"], summary["subscribed"], strict=True)
            if (name == JOB) == jobs]


def merge_jobs(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Add where ``other``'s jobs came to the places ``into`` has seen them."""
    for mine, theirs in zip(into["jobs"], other["jobs"], strict=True):
        for place in theirs["after"]:
            if place not in mine["after"]:
                mine["after"].append(place)
