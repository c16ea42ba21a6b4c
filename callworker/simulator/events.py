"""Events as the simulated switch builds them, and their wire encodings.

Strategy: an event is a list of header *blocks*. A block holds its ``(name, value)``
pairs and, computed once, its text/event-plain lines. A channel keeps the blocks
that rarely change (identity, caller profile, variables) and hands the same
objects to every event it fires, so a 200-header HANGUP_COMPLETE costs a few
``bytes.join`` calls rather than 200 URL encodings. Each event is encoded at most
once per format, however many clients receive it, and only if one of them wants it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape as _xml_escape

from callworker.esl.codec import encode_event_json, event_frame, url_encode

__all__ = ["Block", "SimEvent", "EventFactory", "Origin", "ORIGINS", "plain_lines", "encode_value"]

Origin = tuple[str, str, int]

# Event-Calling-File / -Function / -Line-Number as FreeSWITCH 1.10.12 reports them.
ORIGINS: dict[str, Origin] = {
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", 768),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2408),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 301),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", 632),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", 3505),
    "CHANNEL_PROGRESS_MEDIA": (
        "switch_channel.c", "switch_channel_perform_mark_pre_answered", 3560),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3846),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", 3277),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2944),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2967),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3445),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c", "switch_core_session_reporting_state", 943),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1584),
    "CHANNEL_HOLD": ("switch_ivr.c", "switch_ivr_hold", 1558),
    "CHANNEL_UNHOLD": ("switch_ivr.c", "switch_ivr_unhold", 1638),
    "MEDIA_BUG_START": ("switch_core_media_bug.c", "switch_core_media_bug_add", 1014),
    "MEDIA_BUG_STOP": ("switch_core_media_bug.c", "switch_core_media_bug_destroy", 84),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1646),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2020),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", 1481),
    "RECORD_STOP": ("switch_ivr_async.c", "send_record_stop_event", 1240),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
    "COMMAND": ("switch_ivr_async.c", "switch_ivr_broadcast", 5731),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1572),
    "API": ("switch_loadable_module.c", "switch_api_execute", 2954),
    "CUSTOM": ("mod_dptools.c", "event_function", 1402),
}
_UNKNOWN_ORIGIN: Origin = ("switch_event.c", "switch_event_fire_detailed", 2304)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# The characters FreeSWITCH escapes, as a str.translate table: for ASCII text
# without "%" (nearly every value) the result equals codec.url_encode, at C speed.
_ESCAPES = {c: f"%{c:02X}" for c in [*range(0x20), 0x7F, *b' #&+:;<=>?@[\\]^`{|}"']}


def encode_value(value: str) -> str:
    """``codec.url_encode`` with a fast path (the unit tests check both agree)."""
    if value.isascii() and "%" not in value:
        return value.translate(_ESCAPES)
    return url_encode(value)


def plain_lines(pairs: Iterable[tuple[str, str]]) -> bytes:
    """``Name: urlencoded\\n`` lines; empty values are dropped as FreeSWITCH does."""
    return "".join([f"{n}: {encode_value(v)}\n" for n, v in pairs if v != ""]).encode()


class Block:
    """Some consecutive headers of an event; the plain encoding is computed once."""

    __slots__ = ("pairs", "_plain")

    def __init__(self, pairs: list[tuple[str, str]], plain: bytes | None = None) -> None:
        self.pairs = pairs
        self._plain = plain

    @property
    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = plain_lines(self.pairs)
        return self._plain


class SimEvent:
    """One fired event: header blocks, an optional body, frames cached per format."""

    __slots__ = ("name", "subclass", "blocks", "body", "_frames", "_index")

    def __init__(self, name: str, blocks: list[Block], body: str | None = None,
                 subclass: str | None = None) -> None:
        self.name = name
        self.subclass = subclass
        self.blocks = blocks
        self.body = body
        self._frames: dict[str, bytes] = {}
        self._index: dict[str, str] | None = None

    def pairs(self) -> Iterator[tuple[str, str]]:
        for block in self.blocks:
            yield from block.pairs

    def get(self, header: str) -> str | None:
        """A header's raw value (first occurrence), for event filters."""
        if self._index is None:
            index: dict[str, str] = {}
            for name, value in self.pairs():
                if value != "":
                    index.setdefault(name, value)
            self._index = index
        return self._index.get(header)

    def payload(self, fmt: str) -> bytes:
        if fmt == "json":
            return encode_event_json(self.pairs(), self.body)
        if fmt == "xml":
            return self._xml()
        head = b"".join([block.plain for block in self.blocks])
        if not self.body:
            return head + b"\n"
        data = self.body.encode("utf-8")
        return head + b"Content-Length: %d\n\n" % len(data) + data

    def frame(self, fmt: str) -> bytes:
        frame = self._frames.get(fmt)
        if frame is None:
            frame = self._frames[fmt] = event_frame(self.payload(fmt), fmt)
        return frame

    def _xml(self) -> bytes:
        parts = ["<event><headers>"]
        parts += [f"<{n}>{_xml_escape(url_encode(v))}</{n}>" for n, v in self.pairs() if v != ""]
        parts.append("</headers>")
        if self.body:
            size = len(self.body.encode("utf-8"))
            parts.append(f"<Content-Length>{size}</Content-Length>")
            parts.append(f"<body>{_xml_escape(self.body)}</body>")
        parts.append("</event>")
        return "".join(parts).encode("utf-8")

    def __repr__(self) -> str:
        return f"SimEvent({self.name!r})"


class EventFactory:
    """The 13 headers every event starts with, and the switch-wide Event-Sequence."""

    def __init__(self, core_uuid: str, hostname: str, ipv4: str, ipv6: str = "::1") -> None:
        self.sequence = 0
        static = [
            ("Core-UUID", core_uuid),
            ("FreeSWITCH-Hostname", hostname),
            ("FreeSWITCH-Switchname", hostname),
            ("FreeSWITCH-IPv4", ipv4),
            ("FreeSWITCH-IPv6", ipv6),
        ]
        self._static = (static, plain_lines(static).decode())
        self._dates: tuple[int, list[tuple[str, str]], str] = (-1, [], "")
        self._origins: dict[Origin, tuple[list[tuple[str, str]], str]] = {}

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def head(self, name: str, now_us: int, origin: Origin | None = None) -> Block:
        """The common headers of a new event, in FreeSWITCH's order, with a new sequence."""
        seq = self.next_sequence()
        origin_pairs, origin_text = self._origin(origin or ORIGINS.get(name, _UNKNOWN_ORIGIN))
        date_pairs, date_text = self._date(now_us // 1_000_000)
        static_pairs, static_text = self._static
        stamp = str(now_us)
        sequence = str(seq)
        pairs = [("Event-Name", name), *static_pairs, *date_pairs, ("Event-Date-Timestamp", stamp),
                 *origin_pairs, ("Event-Sequence", sequence)]
        text = (f"Event-Name: {encode_value(name)}\n{static_text}{date_text}"
                f"Event-Date-Timestamp: {stamp}\n{origin_text}Event-Sequence: {sequence}\n")
        return Block(pairs, text.encode())

    def _date(self, second: int) -> tuple[list[tuple[str, str]], str]:
        cached_second, pairs, text = self._dates
        if cached_second != second:
            local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            g = time.gmtime(second)
            gmt = (f"{_DAYS[g.tm_wday]}, {g.tm_mday:02d} {_MONTHS[g.tm_mon - 1]} {g.tm_year} "
                   f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT")
            pairs = [("Event-Date-Local", local), ("Event-Date-GMT", gmt)]
            text = plain_lines(pairs).decode()
            self._dates = (second, pairs, text)
        return pairs, text

    def _origin(self, origin: Origin) -> tuple[list[tuple[str, str]], str]:
        cached = self._origins.get(origin)
        if cached is None:
            pairs = [("Event-Calling-File", origin[0]), ("Event-Calling-Function", origin[1]),
                     ("Event-Calling-Line-Number", str(origin[2]))]
            cached = self._origins[origin] = (pairs, plain_lines(pairs).decode())
        return cached
