"""Commands on the event socket, without I/O: encoded by a client, parsed by a server."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callworker.errors import ProtocolError, UnsafeValue

__all__ = ["Command", "CommandParser", "encode_command"]

def _check_line(text: str, what: str) -> None:
    if "\n" in text or "\r" in text:
        raise UnsafeValue(f"{what} contains a line break")


def encode_command(
    line: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    """A client command: one line, optional headers, a blank line, optional body.

    A line break anywhere but the framing would start a second command, so it is
    refused here whatever the caller validated before.
    """
    _check_line(line, "command")
    parts = [line]
    for name, value in headers:
        _check_line(name, "header name")
        _check_line(value, "header value")
        parts.append(f"{name}: {value}")
    if body:
        parts.append(f"Content-Length: {len(body)}")
    return ("\n".join(parts) + "\n\n").encode("utf-8") + body


@dataclass(frozen=True, slots=True)
class Command:
    """A command as a server receives it."""

    line: str
    headers: Mapping[str, str]
    body: bytes = b""


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


class CommandParser:
    """Server side: bytes from a client to ``Command`` objects (CR skipped in header lines)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[str, dict[str, str], int] | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_command(self) -> Command | None:
        if self._pending is None:
            while self._buf[:1] in (b"\n", b"\r"):
                del self._buf[:1]
            # CR is dropped from header lines only; a body is raw bytes.
            found = _BLANK_LINE.search(self._buf)
            if found is None:
                return None
            block = bytes(self._buf[: found.start()]).replace(b"\r", b"").decode("utf-8", "replace")
            del self._buf[: found.end()]
            line, _, rest = block.partition("\n")
            headers: dict[str, str] = {}
            for header in rest.split("\n") if rest else ():
                name, _, value = header.partition(":")
                headers[name.strip()] = value.strip()
            try:
                length = int(headers.get("Content-Length", "0") or 0)
            except ValueError:
                raise ProtocolError("command Content-Length is not a number") from None
            self._pending = (line.strip(), headers, length)
        line, headers, length = self._pending
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._pending = None
        return Command(line, headers, body)
