"""Lazy header lookups (including the shared ``variable_*`` index) agree with a full parse."""

from __future__ import annotations

import re
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callworker.esl import events as codec_events
from callworker.esl.codec import (
    Event,
    Frame,
    HeaderBatch,
    encode_event_json,
    encode_event_plain,
    parse_event,
    parse_event_json,
    parse_event_plain,
)
from tests.capture_frames import event_frames

# The events drawn carry Event-Name: CUSTOM as well, so no drawn name may be Event-Name.
NAMES = st.from_regex(r"(variable_)?[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda name: name != "Event-Name"
)
# A "%XX" already in a value is passed through by the encoder, as FreeSWITCH does, and so
# reads back decoded: such a value is not "the value sent" (test_esl_codec shows that rule).
VALUES = st.text(min_size=1, max_size=40).filter(lambda value: re.search("%[0-9A-Fa-f]{2}", value) is None)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, VALUES, min_size=1, max_size=30), st.lists(NAMES, max_size=10))
def test_every_lookup_matches_the_value_sent(headers: dict[str, str], absent: list[str]) -> None:
    event = parse_event_plain(encode_event_plain([("Event-Name", "CUSTOM"), *headers.items()]))
    # Ask in an order unrelated to the block's, with names never sent mixed in.
    for name in sorted(headers, reverse=True):
        assert event.get(name) == headers[name], name
    for name in absent:
        if name not in headers:
            assert event.get(name) is None
    assert event.headers() == {"Event-Name": "CUSTOM", **headers}


def test_lookups_agree_with_the_full_parse_on_every_capture(captures_dir: Path) -> None:
    checked = 0
    for frame in event_frames(captures_dir):
        full = parse_event(frame).headers()
        fresh = parse_event(frame)
        for name in reversed(list(full)):
            assert fresh.get(name) == full[name], name
            checked += 1
    assert checked > 1000


# ------------------------------------------------------------------ batches (Event.get_many)


def _one_by_one(event: Event, batch: HeaderBatch) -> list[str | None]:
    return [event.get(name) for name in batch.names]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, VALUES, min_size=1, max_size=30), st.lists(NAMES, max_size=10), st.randoms())
def test_a_batch_reads_what_get_reads(headers: dict[str, str], absent: list[str], rng: Random) -> None:
    names = [*headers, *absent]
    rng.shuffle(names)
    batch = HeaderBatch(names)
    encoded = encode_event_plain([("Event-Name", "CUSTOM"), *headers.items()])
    assert parse_event_plain(encoded).get_many(batch) == _one_by_one(parse_event_plain(encoded), batch)
    # Whatever was read before (an index already built, the full dict split).
    read_first = parse_event_plain(encoded)
    read_first.get(rng.choice(names))
    assert read_first.get_many(batch) == _one_by_one(parse_event_plain(encoded), batch)
    split = parse_event_plain(encoded)
    split.headers()
    assert split.get_many(batch) == _one_by_one(parse_event_plain(encoded), batch)
    as_json = parse_event_json(encode_event_json([("Event-Name", "CUSTOM"), *headers.items()]))
    assert as_json.get_many(batch) == _one_by_one(as_json, batch)


def test_a_batch_reads_what_get_reads_on_every_capture(captures_dir: Path) -> None:
    checked = 0
    for frame in _capture_event_frames(captures_dir):
        names = [*reversed(parse_event(frame).names()), "variable_never_sent", "Never-Sent"]
        batch = HeaderBatch(names)
        assert parse_event(frame).get_many(batch) == _one_by_one(parse_event(frame), batch)
        checked += len(names)
    assert checked > 1000


def test_empty_lines_prefixed_names_and_escapes_in_a_batch() -> None:
    block = (
        "Event-Name: CUSTOM\n"
        "variable_hangup_cause_q850: 16\n"
        "variable_hangup_cause:\n"
        "variable_hangup_cause: NORMAL_CLEARING\n"
        "variable_hangup: x\n"
        "variable_caller:name: no\n"
        "variable_caller: J%C3%BCrgen%20M\n"
        "Caller-Caller-ID-Name:x\n"
        "Caller-Caller-ID-Name: %25%41\n"
        "variable_aXb: no\n"
        "variable_a.b: dot\n"
        "variable_-a: dash\n"
    )
    names = ["variable_hangup_cause", "variable_hangup", "variable_hangup_cause_q850", "variable_caller",
             "variable_caller:name", "Caller-Caller-ID-Name", "variable_hangup_c", "variable_a.b", "variable_-a"]
    expected = ["", "x", "16", "Jürgen M", "no", "%A", None, "dot", "dash"]
    assert parse_event_plain(block.encode()).get_many(HeaderBatch(names)) == expected
    assert [parse_event_plain(block.encode()).get(name) for name in names] == expected


def test_a_batch_past_the_index_bound_searches_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    names = codec_events._VariableNames()
    names._LIMIT = 2
    monkeypatch.setattr(codec_events, "_VARIABLE_NAMES", names)
    batch = HeaderBatch(["variable_a", "Unique-ID", "variable_b", "variable_c", "variable_d"])
    assert [key for _, key in batch.lookups] == ["a", "", "b", "", ""]
    event = parse_event_plain(b"Unique-ID: u\nvariable_d: 4\nvariable_c: 3\nvariable_a: 1\n")
    assert event.get_many(batch) == ["1", "u", None, "3", "4"]


def _capture_event_frames(captures_dir: Path) -> list[Frame]:
    """The plain event frames of the captures that parse (the edited ones aside)."""
    return event_frames(captures_dir, plain_only=True)
