"""FreeSWITCH events, parsed lazily, without I/O.

Event bodies (``text/event-plain``) keep their header block as text: a value is
found and URL-decoded only when it is read. A realistic channel event has ~150-300
headers of which the worker reads about twenty, so most values are never decoded.
The end of the header block is found from the inner ``Content-Length`` line (a long
needle: a fast search) rather than by scanning 12 KB for a blank line, and
``variable_*`` lookups share one regular-expression pass per event over the variable
names the process has asked for (see ``_VariableNames``). Names always read together
(a CDR's) form a ``HeaderBatch``: ``Event.get_many`` answers them in one call, the
variables among them from that same pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import unquote

from callworker.errors import ProtocolError
from callworker.esl.frames import Frame, split_header_lines

__all__ = ["Event", "HeaderBatch", "parse_event", "parse_event_plain", "parse_event_json"]


class Event:
    """A FreeSWITCH event. Values of plain events are URL-decoded on first read.

    A plain event keeps its header block as text and finds a header only when it
    is asked for (a C-speed substring search); the full dict is built only for
    ``headers()``/``names()``. The worker reads a handful of the ~150 headers of a
    channel event, so most lines are never split.
    """

    __slots__ = ("_values", "_text", "_encoded", "_variables", "body")

    def __init__(self, values: dict[str, str], body: str | None, *, encoded: bool) -> None:
        self._values: dict[str, str] | None = values
        self._text = ""
        self._encoded = encoded
        self._variables: tuple[int, dict[str, str]] | None = None
        self.body = body

    @classmethod
    def from_block(cls, block: str, body: str | None) -> Event:
        """A plain event from its header block (lines of ``Name: url-encoded value``)."""
        event = cls.__new__(cls)
        event._values = None
        event._text = "\n" + block + "\n"
        event._encoded = True
        event._variables = None
        event.body = body
        return event

    def _raw(self, name: str) -> str | None:
        if self._values is not None:
            return self._values.get(name)
        if name.startswith("variable_"):
            return self._variable(name)
        return self._find(name)

    def _variable(self, name: str) -> str | None:
        """A ``variable_*`` value through the per-event index of the names in use."""
        if not _VARIABLE_NAMES.knows(name):
            # A name never asked for before: one search now, the index from then on.
            _VARIABLE_NAMES.add(name)
            return self._find(name)
        return self._variable_index().get(name[_VARIABLE_PREFIX_LENGTH:])

    def _variable_index(self) -> dict[str, str]:
        """This event's values of every variable name in use, by name without ``variable_``.

        Built by one pass on first use, and again only if names have joined since.
        """
        names = _VARIABLE_NAMES
        index = self._variables
        if index is None or index[0] != names.generation:
            index = self._variables = (names.generation, names.index(self._text))
        return index[1]

    def _find(self, name: str) -> str | None:
        """The first ``Name: value`` (or empty ``Name:``) line, by substring search."""
        text = self._text
        key = f"\n{name}:"
        at = text.find(key)
        while at >= 0:
            start = at + len(key)
            if text.startswith(" ", start):
                return text[start + 1 : text.index("\n", start)]
            if text.startswith("\n", start):
                return ""
            at = text.find(key, start)  # a longer name with this prefix
        return None

    def _dict(self) -> dict[str, str]:
        if self._values is None:
            self._values = split_header_lines(self._text.strip("\n").encode("utf-8"))
        return self._values

    def get(self, name: str, default: str | None = None) -> str | None:
        # _raw inlined: the CDR of every call reads some twenty values.
        values = self._values
        if values is not None:
            value = values.get(name)
        elif name.startswith("variable_"):
            value = self._variable(name)
        else:
            value = self._find(name)
        if value is None:
            return default
        if self._encoded and "%" in value:
            value = unquote(value)
        return value

    def get_many(self, batch: HeaderBatch) -> list[str | None]:
        """``[self.get(name) for name in batch.names]``, its variables from one index pass."""
        if self._values is not None:
            return [self.get(name) for name in batch.names]
        index = self._variable_index()
        find = self._find
        raw = [index.get(key) if key else find(name) for name, key in batch.lookups]
        # A lazily parsed event is always URL-encoded; most values hold no escape.
        return [unquote(value) if value and "%" in value else value for value in raw]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._raw(name) is not None

    @property
    def name(self) -> str:
        return self._raw("Event-Name") or ""

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    def headers(self) -> dict[str, str]:
        """Every header, decoded (costly on big events: for tests and hooks)."""
        return {key: self.get(key) or "" for key in self._dict()}

    def names(self) -> list[str]:
        return list(self._dict())

    def __repr__(self) -> str:
        return f"Event({self.name!r})"



class _VariableNames:
    """The ``variable_*`` names this process reads, and one regex that finds them all.

    A HANGUP_COMPLETE read for a CDR asks for some twenty variables; a substring
    search per name scans the ~10 KB event twenty times. Instead the first
    ``variable_*`` read of an event runs one pass of a pattern matching every name
    asked for so far (the literal prefix ``\\nvariable_`` keeps the pass fast) and
    keeps the values found; a name not yet known is searched directly once and
    joins the pattern. Results equal the direct search: the first ``Name: value``
    or empty ``Name:`` line of each name. The set is bounded; past the bound,
    unknown names are simply searched directly.
    """

    _LIMIT = 128

    def __init__(self) -> None:
        self._names: dict[str, None] = {}
        self._pattern: re.Pattern[str] | None = None
        self.generation = 0

    def knows(self, name: str) -> bool:
        return name in self._names

    def add(self, name: str) -> None:
        if len(self._names) < self._LIMIT and _VARIABLE_NAME.match(name):
            self._names[name] = None
            self._pattern = None
            self.generation += 1

    def index(self, text: str) -> dict[str, str]:
        """The first value of each known name in ``text``, by name without ``variable_``."""
        if not self._names:
            return {}
        pattern = self._pattern
        if pattern is None:
            alternatives = _alternation(n[_VARIABLE_PREFIX_LENGTH:] for n in self._names)
            # Only the short name is captured: the whole "\nvariable_" is then the
            # literal prefix the search skips to, not re-matched at each variable line.
            pattern = self._pattern = re.compile(
                f"\nvariable_({alternatives}):(?: ([^\n]*)|(?=\n))"
            )
        # (name, value) pairs in text order; reversed, each name's first line is stored last.
        return dict(reversed(pattern.findall(text)))


def _alternation(names: Iterable[str]) -> str:
    """A regex matching any of ``names`` (none empty), grouped by first character.

    Every variable line of an event tries the alternation; grouped, a line is
    turned down after one test per distinct first character instead of one per name.
    Longest first within a group, so a name that prefixes another cannot hide it.
    """
    by_first: dict[str, list[str]] = {}
    for name in sorted(names, key=len, reverse=True):
        by_first.setdefault(name[0], []).append(re.escape(name[1:]))
    return "|".join(f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items())


_VARIABLE_NAME = re.compile(r"variable_[A-Za-z0-9_.\-]+\Z")
_VARIABLE_PREFIX_LENGTH = len("variable_")
_VARIABLE_NAMES = _VariableNames()


class HeaderBatch:
    """Header names read together from many events (a CDR's), for ``Event.get_many``.

    Its ``variable_*`` names join the shared index when the batch is made, so the
    first event already answers them all from one pass instead of one search each.
    """

    __slots__ = ("names", "lookups")

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        for name in self.names:
            if name.startswith("variable_"):
                _VARIABLE_NAMES.add(name)
        # Per name, its key in the variable index, or "" where it is searched directly
        # (a header, or a variable the bounded index did not take).
        self.lookups = tuple(
            (name, name[_VARIABLE_PREFIX_LENGTH:] if _VARIABLE_NAMES.knows(name) else "")
            for name in self.names
        )


_INNER_LENGTH = b"\nContent-Length: "


def parse_event_plain(payload: bytes) -> Event:
    """Parse a ``text/event-plain`` body (the bytes after the outer frame).

    FreeSWITCH writes the header lines, then either a blank line, or a last
    ``Content-Length: N`` line, a blank line and N bytes of body. The header block
    is therefore everything before the first ``\\nContent-Length: N\\n\\n`` (a
    long needle, found fast), or the whole payload when there is none: no 12 KB
    scan for a blank line. A blank line inside the block, which FreeSWITCH never
    writes, carries nothing. Body lines can never become headers, and CR line ends
    or a length that is no number take the general path below.
    """
    if b"\r" not in payload and not payload.startswith(_INNER_LENGTH[1:]):
        at = payload.find(_INNER_LENGTH)
        if at < 0:
            return Event.from_block(payload.strip(b"\n").decode("utf-8", "replace"), None)
        eol = payload.find(b"\n", at + len(_INNER_LENGTH))
        digits = payload[at + len(_INNER_LENGTH) : eol]
        if eol > 0 and payload.startswith(b"\n", eol + 1) and digits.isdigit():
            start, length = eol + 2, int(digits)
            raw = payload[start : start + length]
            if len(raw) != length:
                raise ProtocolError("event body shorter than its Content-Length")
            block = payload[:at].strip(b"\n").decode("utf-8", "replace")
            return Event.from_block(block, raw.decode("utf-8", "replace"))
    return _parse_event_plain_general(payload)


def _parse_event_plain_general(payload: bytes) -> Event:
    """The header block up to the first blank line; a last Content-Length line announces a body."""
    end = payload.find(b"\n\n")
    if end < 0:
        end = len(payload)
    block = payload[:end]
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    body: str | None = None
    # An event body is announced by an inner Content-Length, the block's last line.
    last = block.rfind(b"\n") + 1
    if block.startswith(b"Content-Length: ", last):
        try:
            length = int(block[last + 16 :])
        except ValueError:
            raise ProtocolError("event Content-Length is not a number") from None
        start = end + 2
        raw = payload[start : start + length]
        if len(raw) != length:
            raise ProtocolError("event body shorter than its Content-Length")
        body = raw.decode("utf-8", "replace")
        block = block[: max(last - 1, 0)]
    return Event.from_block(block.decode("utf-8", "replace"), body)


def parse_event_json(payload: bytes) -> Event:
    """Parse a ``text/event-json`` body: a flat object of strings, not URL-encoded."""
    try:
        obj = json.loads(payload)
    except ValueError:
        raise ProtocolError("event-json body is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("event-json body is not an object")
    body = obj.pop("_body", None)
    obj.pop("Content-Length", None)
    values = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
    return Event(values, body if isinstance(body, str) else None, encoded=False)


def parse_event(frame: Frame) -> Event:
    """The event carried by an event frame (plain or json)."""
    ctype = frame.content_type
    if ctype == "text/event-plain":
        return parse_event_plain(frame.body)
    if ctype == "text/event-json":
        return parse_event_json(frame.body)
    raise ProtocolError(f"not an event frame: {ctype!r}")

