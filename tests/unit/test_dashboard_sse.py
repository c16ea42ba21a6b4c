"""Server-sent events as the browser parses them: one message per event, nothing forged by line breaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callworker.dashboard.picture import BUCKET_S, WINDOW_S, history
from callworker.dashboard.sse import comment, message, retry


def parse(stream: bytes) -> list[dict[str, Any]]:
    """The HTML standard's event-stream parsing, enough for these tests."""
    events: list[dict[str, Any]] = []
    data: list[str] = []
    fields: dict[str, Any] = {}
    for line in stream.decode().split("\n"):
        if line == "":
            if data or fields:
                events.append({**fields, "data": "\n".join(data)})
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


def test_an_event_is_one_message_with_its_id_and_json_data() -> None:
    body = {"type": "call.answered", "seq": 3, "data": {"status": "answered"}}
    framed = message(body, event_id="e-1")
    assert framed == b'id: e-1\ndata: {"data":{"status":"answered"},"seq":3,"type":"call.answered"}\n\n'
    assert [json.loads(e["data"]) for e in parse(framed)] == [body]


def test_a_named_event_and_the_reconnect_delay() -> None:
    framed = retry(1000) + message({"calls": []}, event="snapshot")
    assert framed == b'retry: 1000\n\nevent: snapshot\ndata: {"calls":[]}\n\n'
    assert parse(framed)[-1] == {"event": "snapshot", "data": '{"calls":[]}'}


def test_a_keep_alive_is_a_comment_the_browser_ignores() -> None:
    assert comment("keep-alive") == b": keep-alive\n\n"
    assert parse(comment("keep-alive") + comment("x\ny")) == []


def test_an_id_or_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        message({}, event_id="a\nevent: forged")
    with pytest.raises(ValueError):
        message({}, event="snapshot\r")


@given(st.text())
def test_any_text_arrives_whole_as_one_message(text: str) -> None:
    framed = message(text, event_id="x")
    events = parse(framed)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert events == [{"id": "x", "data": expected}]


@given(st.dictionaries(st.text(), st.text()))
def test_any_json_object_round_trips(body: dict[str, str]) -> None:
    assert [json.loads(e["data"]) for e in parse(message(body))] == [body]


def test_the_history_counts_calls_started_and_up_per_bucket() -> None:
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    start = now - timedelta(seconds=WINDOW_S)
    rows: list[dict[str, Any]] = [
        {"initiated_at": start - timedelta(hours=1), "ended_at": None},  # up all along
        {"initiated_at": start - timedelta(hours=1), "ended_at": start - timedelta(minutes=1)},  # before
        {"initiated_at": start + timedelta(seconds=1), "ended_at": start + timedelta(seconds=12)},
        {"initiated_at": now - timedelta(seconds=2), "ended_at": None},
        {"initiated_at": None, "ended_at": None},
    ]
    got = history(rows, now)
    count = WINDOW_S // BUCKET_S
    assert got["bucket_s"] == BUCKET_S and got["start"] == "2026-12-02T04:45:00.000000+00:00"
    assert got["initiated"][0] == 1 and got["initiated"][-1] == 1 and sum(got["initiated"]) == 2
    assert got["concurrent"][:3] == [2, 2, 1]  # the short call is up at 5 s, gone at 15 s
    assert got["concurrent"][-1] == 2 and len(got["concurrent"]) == count
