"""The frames of the real captures, for tests that run over all of them."""

from __future__ import annotations

from pathlib import Path

from callworker.errors import ProtocolError
from callworker.esl.codec import Frame, FrameParser, parse_event


def framed_captures(captures_dir: Path) -> list[tuple[str, list[Frame]]]:
    """Each capture's name and frames, leaving out the edited ones that do not frame."""
    found = []
    for path in sorted(captures_dir.glob("*.txt")):
        parser = FrameParser()
        parser.feed(path.read_bytes())
        try:
            found.append((path.name, list(parser)))
        except ProtocolError:
            continue
    return found


def event_frames(captures_dir: Path, *, plain_only: bool = False, name: str | None = None) -> list[Frame]:
    """The event frames whose bodies parse (the EDITED captures 28, 29 aside).

    Plain and JSON ones, or plain only; of one event name if given.
    """
    found = []
    for _capture, frames in framed_captures(captures_dir):
        for frame in frames:
            wanted = "text/event-plain" if plain_only else "text/event"
            if not frame.content_type.startswith(wanted):
                continue
            try:
                event = parse_event(frame)
                event.headers()
            except ProtocolError:
                continue
            if name is None or event.name == name:
                found.append(frame)
    return found
