"""Server-sent events framing (the HTML standard's ``text/event-stream``), pure.

A message is ``id:``, ``event:`` and one ``data:`` line per line of its text,
ended by a blank line. The JSON we send has no raw newline, but any text is
split so that a newline can never end a message early or forge a field.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["comment", "message", "retry"]


def _field(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {name} cannot hold a line break")
    return f"{name}: {value}\n"


def message(data: Any, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One message: ``data`` as compact JSON (a ``str`` is sent as it is)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), sort_keys=True)
    out = []
    if event_id is not None:
        out.append(_field("id", event_id))
    if event is not None:
        out.append(_field("event", event))
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        out.append(f"data: {line}\n")
    out.append("\n")
    return "".join(out).encode()


def comment(text: str = "") -> bytes:
    """A comment line: ignored by the browser, keeps the connection (and proxies) awake."""
    return f": {text.splitlines()[0] if text else ''}\n\n".encode()


def retry(milliseconds: int) -> bytes:
    """How long the browser waits before it reconnects."""
    return f"retry: {int(milliseconds)}\n\n".encode()
