"""The comparison the simulator is held to (tests/sequences/summary.py) notices what matters
and only that: a test of the test harness, over the recorded real-switch sequences."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.sequences.summary import compare, job_in_window, shape

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-1.10.12" / "sequences.json"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())["scenarios"]


def test_a_recording_equals_itself(recorded: dict[str, Any]) -> None:
    for name, entry in recorded.items():
        assert compare(entry, copy.deepcopy(entry), observed=True) == [], name


def test_an_extra_or_missing_event_is_a_difference(recorded: dict[str, Any]) -> None:
    real = recorded["far_end_hangup"]
    ringing = copy.deepcopy(real)
    at = ringing["events"].index("CHANNEL_STATE:CS_CONSUME_MEDIA") + 1
    ringing["events"][at:at] = ["CHANNEL_PROGRESS", "CHANNEL_CALLSTATE:RINGING"]
    problems = compare(real, ringing)
    assert problems and "+CHANNEL_PROGRESS" in problems[0]
    tail = copy.deepcopy(real)
    tail["events"].append("CHANNEL_CALLSTATE:DOWN")
    assert compare(real, tail)


def test_values_that_must_match_and_those_compared_by_shape(recorded: dict[str, Any]) -> None:
    real = recorded["busy"]
    index = real["subscribed"].index("CHANNEL_HANGUP_COMPLETE")
    other = copy.deepcopy(real)
    complete = other["headers"][index]
    complete["variable_end_uepoch"] = str(int(complete["variable_end_uepoch"]) + 1_234_567)
    complete["variable_duration"] = "7"
    assert compare(real, other) == []  # times and durations differ between any two calls
    complete["variable_hangup_cause_q850"] = "16"
    complete["variable_progress_uepoch"] = "0"  # "never rang" is not a time
    del complete["variable_sip_hangup_disposition"]
    problems = "\n".join(compare(real, other))
    assert "variable_hangup_cause_q850" in problems and "variable_progress_uepoch" in problems
    assert "variable_sip_hangup_disposition" in problems


def test_a_job_is_held_to_where_the_switch_can_put_it(recorded: dict[str, Any]) -> None:
    real = recorded["busy"]
    assert real["jobs"][0]["after"][0] == "CHANNEL_HANGUP_COMPLETE"
    events = [name for name in real["events"] if name != "BACKGROUND_JOB"]
    early = events.index("CHANNEL_HANGUP") + 1
    raced = copy.deepcopy(real)
    raced["events"] = [*events[:early], "BACKGROUND_JOB", *events[early:]]
    raced["jobs"][0]["after"] = ["CHANNEL_HANGUP"]
    assert compare(real, raced) == []  # a race the real switch runs either way
    problems = compare(real, raced, observed=True)  # but not where the recording saw it
    assert problems and "followed CHANNEL_HANGUP_COMPLETE" in problems[0]
    before_hangup = [*events[:early - 1], "BACKGROUND_JOB", *events[early - 1:]]
    assert not job_in_window(before_hangup, 0, "-ERR USER_BUSY\n")
    answered = recorded["answered_hangup"]["events"]
    assert job_in_window(answered, 0, "+OK <call_id>\n")
    assert not job_in_window([n for n in answered if n != "CALL_UPDATE"], 0, "+OK <call_id>\n")


def test_shapes() -> None:
    assert shape("Event-Date-Timestamp", "1796174565143107") == "epoch_us"
    assert shape("variable_answer_uepoch", "0") == "0"
    assert shape("variable_billmsec", "660") == "count"
    assert shape("variable_rtp_audio_in_mos", "4.50") == "decimal"
    assert shape("variable_hangup_cause_q850", "17") == "17"
