"""Lazy header lookups (including the shared ``variable_*`` index) agree with a full parse."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from callworker.errors import ProtocolError
from callworker.esl.codec import FrameParser, encode_event_plain, parse_event, parse_event_plain

NAMES = st.from_regex(r"(variable_)?[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)
VALUES = st.text(min_size=1, max_size=40)


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
    for path in sorted(captures_dir.glob("*.txt")):
        parser = FrameParser()
        parser.feed(path.read_bytes())
        try:
            frames = list(parser)
        except Exception:  # noqa: BLE001 - edited captures are not framing fixtures
            continue
        for frame in frames:
            if not frame.content_type.startswith("text/event"):
                continue
            try:
                full = parse_event(frame).headers()
            except ProtocolError:
                continue  # the EDITED captures (28, 29) are not valid event bodies
            fresh = parse_event(frame)
            for name in reversed(list(full)):
                assert fresh.get(name) == full[name], (path.name, name)
                checked += 1
    assert checked > 1000
