"""Dialplan hooks: events of subclass ``callworker::<name>`` republished as ``hook.<name>``.

A dialplan reports something about a call with the ``event`` application::

    <action application="event"
            data="Event-Name=CUSTOM,Event-Subclass=callworker::survey_done,survey_score=5"/>

and the worker publishes ``<tenant>.hook.survey_done.<call_id>`` with the call's
next ``seq`` and ``data`` = ``{"survey_score": "5"}``. Without ``Event-Name=CUSTOM``
among its values the same application fires CHANNEL_APPLICATION carrying the same
subclass and headers; that form is a hook too (HOOK_EVENTS).

Which headers are "its headers": the ones the dialplan set. An event from the
``event`` app also carries FreeSWITCH's common headers, the channel data, the
caller profile and every channel variable (often a hundred or more, SIP details
included); those are left out, being FreeSWITCH's and not the hook's, and too
big for a 64 KiB message. Left out are headers named ``Core-UUID``,
``Unique-ID``, ``Call-Direction``, ``Answer-State``, ``Hangup-Cause``,
``Session-External-ID``, ``Other-Type``, ``Content-Length`` or starting with
``Event-``, ``FreeSWITCH-``, ``Channel-``, ``Caller-``, ``Other-Leg-``,
``Presence-``, ``PD-`` or ``variable_``. Of the rest, a header is kept when its
name is 1-64 of ``A-Z a-z 0-9 _ . -`` and its value at most 2048 characters, up
to 64 headers; anything else is dropped with a warning. Values are strings, as
the dialplan wrote them (URL-decoded).

Published only for live calls of this node with a hook name of 1-64
``A-Z a-z 0-9 _ -``; an event of another subclass, on a call this worker does
not hold, or with a bad name is ignored.

Subscribing: mod_event_socket delivers a CUSTOM event that has a subclass only
to a listener that named the subclass after ``CUSTOM`` or took ``ALL``;
``event plain CUSTOM`` alone gets only subclass-less CUSTOM events and there is
no wildcard. ``hook_subscription`` therefore turns the worker's event list into
``ALL`` narrowed by filters, which FreeSWITCH applies before it queues an event:
one ``Event-Name`` filter per event the worker uses, and ``Event-Subclass
/^callworker::/``, which lets both forms of the ``event`` application through
(CUSTOM and CHANNEL_APPLICATION with a ``callworker::`` subclass) and no other
CHANNEL_APPLICATION. Any hook name then arrives with nothing to configure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime

from callworker.calls.cdr import epoch_us
from callworker.calls.journal import Journal, Unit
from callworker.calls.states import TERMINAL
from callworker.contract import hook_event_type, utcnow
from callworker.errors import ProtocolError
from callworker.esl.codec import Event

__all__ = ["HOOK_EVENTS", "HOOK_PREFIX", "Hooks", "hook_data", "hook_name", "hook_subscription"]

log = logging.getLogger("callworker.hooks")

HOOK_PREFIX = "callworker::"
# What the event application fires: CUSTOM with Event-Name=CUSTOM, else CHANNEL_APPLICATION.
HOOK_EVENTS = ("CUSTOM", "CHANNEL_APPLICATION")
_MAX_HEADERS = 64
_MAX_VALUE = 2048
_HEADER_NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
_FREESWITCH_NAMES = frozenset({
    "Core-UUID", "Unique-ID", "Call-Direction", "Answer-State", "Hangup-Cause",
    "Session-External-ID", "Other-Type", "Content-Length",
})
_FREESWITCH_PREFIXES = ("Event-", "FreeSWITCH-", "Channel-", "Caller-", "Other-Leg-", "Presence-",
                        "PD-", "variable_")


def hook_subscription(events: Sequence[str]) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """``(events, filters)`` for ``EslConnection``: ALL, narrowed to ``events`` and the hooks."""
    names = [name for name in dict.fromkeys(events) if name not in ("CUSTOM", "ALL")]
    filters = [("Event-Name", name) for name in names]
    filters.append(("Event-Subclass", f"/^{HOOK_PREFIX}/"))
    return ("ALL",), filters


def hook_name(event: Event) -> str | None:
    """``<name>`` of a ``callworker::<name>`` hook event, else None (not validated)."""
    subclass = event.subclass or ""
    if event.name not in HOOK_EVENTS or not subclass.startswith(HOOK_PREFIX):
        return None
    return subclass[len(HOOK_PREFIX):]


def _is_freeswitch_header(name: str) -> bool:
    return name in _FREESWITCH_NAMES or name.startswith(_FREESWITCH_PREFIXES)


def hook_data(event: Event) -> dict[str, str]:
    """The headers the dialplan set on a hook event (see the module docstring)."""
    data: dict[str, str] = {}
    dropped: list[str] = []
    for name in event.names():
        if _is_freeswitch_header(name):
            continue
        value = event.get(name) or ""
        if _HEADER_NAME.match(name) is None or len(value) > _MAX_VALUE or len(data) >= _MAX_HEADERS:
            dropped.append(name[:64])
            continue
        data[name] = value
    if dropped:
        log.warning("hook %s: dropped headers %s (bad name, too long, or too many)",
                    event.subclass, dropped[:10])
    return data


class Hooks:
    """The pump's handler of HOOK_EVENTS: ``pump.on("CUSTOM", hooks.handle)`` and the same for
    CHANNEL_APPLICATION."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.published = 0

    def handle(self, event: Event) -> None:
        name = hook_name(event)
        call_id = event.get("Unique-ID")
        if name is None or not self._journal.knows(call_id):
            return
        assert call_id is not None
        try:
            event_type = hook_event_type(name)
            data = hook_data(event)
        except ValueError as exc:
            log.warning("ignoring hook %r on call %s: %s", name[:80], call_id, exc)
            return
        except ProtocolError as exc:
            log.warning("ignoring an unreadable hook event on call %s: %s", call_id, exc)
            return
        occurred_at = epoch_us(event.get("Event-Date-Timestamp")) or utcnow()
        self._journal.submit(self._emit_op(call_id, event_type, occurred_at, data))

    def _emit_op(
        self, call_id: str, event_type: str, occurred_at: datetime, data: dict[str, str]
    ) -> Callable[[Unit], None]:
        def op(unit: Unit) -> None:
            record = unit.call(call_id)
            if record is None or record.status in TERMINAL:
                return  # it ended meanwhile: a hook belongs to a live call
            unit.emit(record, event_type, occurred_at, data)
            self.published += 1

        return op
