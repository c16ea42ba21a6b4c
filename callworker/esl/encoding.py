"""What a FreeSWITCH server writes on its event socket, without I/O (used by the simulator).

Events, command and api replies, the auth request, the disconnect notice and the
rude rejection, framed as FreeSWITCH 1.10 frames them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "url_encode",
    "encode_event_plain",
    "encode_event_json",
    "event_frame",
    "command_reply",
    "api_response",
    "auth_request",
    "disconnect_notice",
    "rude_rejection",
    "DISCONNECT_TEXT",
]

DISCONNECT_TEXT = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

# Characters FreeSWITCH escapes in event values (switch_utils.h), besides control
# bytes and bytes >= 0x7F; a "%" already starting a %XX escape is kept as it is.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f-\U0010ffff #&+:;<=>?@\[\\\]^`{|}"]|%(?![0-9A-Fa-f]{2})')


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def url_encode(value: str) -> str:
    """Encode a value as FreeSWITCH does in text/event-plain."""
    return _NEEDS_ESCAPE.sub(_escape, value)


def encode_event_plain(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """The body of a text/event-plain frame; empty values are dropped as FreeSWITCH does."""
    lines = [f"{name}: {url_encode(value)}\n" for name, value in headers if value != ""]
    text = "".join(lines).encode("utf-8")
    if body:
        data = body.encode("utf-8")
        return text + f"Content-Length: {len(data)}\n\n".encode() + data
    return text + b"\n"


def encode_event_json(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """The body of a text/event-json frame: flat strings, not URL-encoded."""
    obj = {name: value for name, value in headers if value != ""}
    if body:
        obj["Content-Length"] = str(len(body.encode("utf-8")))
        obj["_body"] = body
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_frame(payload: bytes, fmt: str = "plain") -> bytes:
    """Wrap an event body in its outer frame (Content-Length first, as FreeSWITCH does)."""
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-{fmt}\n\n".encode() + payload


def command_reply(reply_text: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = ["Content-Type: command/reply", f"Reply-Text: {reply_text}"]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def api_response(body: str) -> bytes:
    data = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def disconnect_notice(extra: Sequence[tuple[str, str]] = ()) -> bytes:
    data = DISCONNECT_TEXT.encode()
    lines = ["Content-Type: text/disconnect-notice"]
    lines += [f"{name}: {value}" for name, value in extra]
    lines.append(f"Content-Length: {len(data)}")
    return ("\n".join(lines) + "\n\n").encode() + data


def rude_rejection() -> bytes:
    text = b"Access Denied, go away.\n"
    return b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s" % (len(text), text)

