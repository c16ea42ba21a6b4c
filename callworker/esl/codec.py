"""The FreeSWITCH event-socket wire format, without I/O.

Strategy: bytes go in through ``feed``; whole frames come out of ``next_frame``
(``None`` means "need more data"). A frame is a block of ``Name: value`` lines
ended by an empty line, then ``Content-Length`` bytes of body when that header is
present. The header block is split into lines *before* any value is URL-decoded,
and the body is counted in bytes, so an encoded newline inside a value can never
become a header and a multi-byte character cannot shift the framing.

Event bodies (``text/event-plain``) are parsed lazily: the header block is kept as
text and a value is found and URL-decoded only when it is read. A realistic channel
event has ~150-300 headers of which the worker reads about twenty, so most values
are never decoded. The end of the header block is found from the inner
``Content-Length`` line (a long needle: a fast search) rather than by scanning 12 KB
for a blank line, and ``variable_*`` lookups share one regular-expression pass per
event over the variable names the process has asked for (see ``_VariableNames``).
Names always read together (a CDR's) form a ``HeaderBatch``: ``Event.get_many``
answers them in one call, the variables among them from that same pass.

The format is split by job, and this module gathers it: ``frames`` (client-side
framing), ``events`` (lazy events), ``encoding`` (what a FreeSWITCH server sends,
used by the simulator) and ``commands`` (what a client sends, and the server's
parser of it), so both sides share one definition of the format. Nothing here
imports socket, gevent or greenswitch.
"""

from __future__ import annotations

from callworker.esl.commands import Command, CommandParser, encode_command
from callworker.esl.encoding import (
    DISCONNECT_TEXT,
    api_response,
    auth_request,
    command_reply,
    disconnect_notice,
    encode_event_json,
    encode_event_plain,
    event_frame,
    rude_rejection,
    url_encode,
)
from callworker.esl.events import Event, HeaderBatch, parse_event, parse_event_json, parse_event_plain
from callworker.esl.frames import Frame, FrameParser

__all__ = [
    "Frame",
    "Event",
    "HeaderBatch",
    "FrameParser",
    "Command",
    "CommandParser",
    "parse_event",
    "parse_event_plain",
    "parse_event_json",
    "url_encode",
    "encode_event_plain",
    "encode_event_json",
    "event_frame",
    "command_reply",
    "api_response",
    "auth_request",
    "disconnect_notice",
    "rude_rejection",
    "encode_command",
    "DISCONNECT_TEXT",
]
