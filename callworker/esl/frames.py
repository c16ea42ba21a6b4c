"""ESL framing, client side: bytes in, whole frames out, without I/O.

``feed`` bytes, then ``next_frame`` until ``None`` ("need more data"). A frame is a
block of ``Name: value`` lines ended by an empty line, then ``Content-Length`` bytes
of body when that header is present. The header block is split into lines *before*
any value is URL-decoded, and the body is counted in bytes, so an encoded newline
inside a value can never become a header and a multi-byte character cannot shift
the framing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from callworker.errors import ProtocolError

__all__ = ["Frame", "FrameParser", "split_header_lines"]

# Header names are tokens; anything else on a header line is corruption.
_HEADER_NAME = re.compile(rb"[A-Za-z0-9_.\-]+\Z")
# Where a frame can start again after junk: the first header FreeSWITCH writes.
_RESYNC = re.compile(rb"(?:Content-Type|Content-Length): ")
# An event frame's outer header block, read without the general line splitting.
_EVENT_HEAD = re.compile(rb"Content-Length: ([0-9]+)\nContent-Type: (text/event-(?:plain|json))\Z")
_MAX_HEADER_BLOCK = 1 << 20
_MAX_BODY = 64 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    """One outer frame: its headers (values URL-decoded) and its raw body bytes."""

    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")



def split_header_lines(block: bytes) -> dict[str, str]:
    """``Name: value`` lines to a dict; values stay as sent (still URL-encoded)."""
    text = block.decode("utf-8", "replace")
    values: dict[str, str] = {}
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            # "Name:" with nothing after it is an empty value, not a new header.
            if line.endswith(":"):
                name, value = line[:-1], ""
            else:
                raise ProtocolError(f"header line without ': ' ({len(line)} bytes)")
        values[name] = value
    return values



def _decode_frame_headers(raw: dict[str, str]) -> dict[str, str]:
    return {k: unquote(v) if "%" in v else v for k, v in raw.items()}


class FrameParser:
    """Incremental frame decoder: ``feed(bytes)``, then ``next_frame()`` until ``None``.

    Junk before a frame (seen in real captures) is skipped up to the next
    ``Content-Type:``/``Content-Length:`` header and counted in ``resyncs``; a
    header block that cannot be resynchronised raises ``ProtocolError``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._pending: tuple[dict[str, str], int] | None = None
        self.resyncs = 0

    def feed(self, data: bytes) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> Frame | None:
        if self._pending is None and not self._read_headers():
            return None
        assert self._pending is not None
        headers, length = self._pending
        start = self._pos
        if len(self._buf) - start < length:
            return None
        body = bytes(self._buf[start : start + length])
        self._pos = start + length
        self._pending = None
        return Frame(headers, body)

    def _read_headers(self) -> bool:
        buf = self._buf
        # Blank lines between frames carry nothing (a stream may start with one).
        while self._pos < len(buf) and buf[self._pos] in (10, 13):
            self._pos += 1
        end = buf.find(b"\n\n", self._pos)
        # FreeSWITCH never sends CR, but a peer may: look for CRLF only before the LF end.
        crlf = buf.find(b"\r\n\r\n", self._pos, end if end >= 0 else len(buf))
        if crlf >= 0 and (end < 0 or crlf < end):
            end, skip = crlf, 4
        else:
            skip = 2
        if end < 0:
            if len(buf) - self._pos > _MAX_HEADER_BLOCK:
                raise ProtocolError("header block too long")
            return False
        block = bytes(buf[self._pos : end])
        event = _EVENT_HEAD.match(block)
        if event is not None:
            # The outer header block of nearly every frame FreeSWITCH sends.
            self._pos = end + skip
            digits = event.group(1)
            length = int(digits)
            if length > _MAX_BODY:
                raise ProtocolError("Content-Length out of range")
            headers = {"Content-Length": digits.decode(), "Content-Type": event.group(2).decode()}
            self._pending = (headers, length)
            return True
        junk = self._junk_prefix(block)
        if junk:
            self.resyncs += 1
            self._pos += junk
            return self._read_headers()
        self._pos = end + skip
        raw = split_header_lines(block)
        headers = _decode_frame_headers(raw)
        length = 0
        if "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                raise ProtocolError("Content-Length is not a number") from None
            if not 0 <= length <= _MAX_BODY:
                raise ProtocolError("Content-Length out of range")
        self._pending = (headers, length)
        return True

    @staticmethod
    def _junk_prefix(block: bytes) -> int:
        """Bytes of junk at the start of a header block, 0 when it is clean."""
        first = block.split(b"\n", 1)[0]
        name = first.split(b": ", 1)[0].rstrip(b"\r:")
        if _HEADER_NAME.match(name):
            return 0
        found = _RESYNC.search(block)
        if found is None or found.start() == 0:
            raise ProtocolError("unparseable header line; cannot resynchronise")
        return found.start()

