"""What one event-socket client listens to: event names, CUSTOM subclasses, filters.

Mirrors mod_event_socket: ``ALL`` takes every event, CUSTOM included; a named
CUSTOM event passes only if its subclass was listed after ``CUSTOM`` (``event
plain CUSTOM`` alone takes only CUSTOM events that have no subclass); filters
apply only to events already subscribed, are ORed, compare case-insensitively,
treat a value starting with ``/`` as a regex and a ``-`` prefix as "drop".
``myevents`` on an outbound socket subscribes a fixed list of channel events and
then passes only the events of the socket's own channel.

Filters that look only at ``Event-Name``, ``Event-Subclass`` and channel variables
(``variable_*``) are decided before an event is built, from the channel's variables
when the event carries them, so ``event plain ALL`` narrowed by such filters costs no
more than a list of names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from callworker.simulator.events import SimEvent

__all__ = ["MYEVENTS", "Subscription"]

# What ``myevents`` subscribes (mod_event_socket parse_command).
MYEVENTS = (
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING",
    "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK", "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
)
_NAME_HEADERS = frozenset({"event-name", "event-subclass"})
_VARIABLE_PREFIX = "variable_"

_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _regex(text: str) -> re.Pattern[str] | None:
    """``/pattern/flags`` or ``/pattern`` as FreeSWITCH's switch_regex_perform reads it."""
    body = text[1:]
    flags = 0
    end = body.rfind("/")
    if end >= 0:
        for char in body[end + 1:]:
            flags |= _REGEX_FLAGS.get(char, 0)
        body = body[:end]
    try:
        return re.compile(body, flags)
    except re.error:
        return None


class Subscription:
    def __init__(self) -> None:
        self.format = "plain"
        self.all = False
        self.names: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        # Set by ``myevents``: only this channel's events pass.
        self.session_uuid: str | None = None
        self._compiled: dict[str, re.Pattern[str] | None] = {}
        # Every filter looks at Event-Name, Event-Subclass or a channel variable only; at
        # the first two only.
        self._decided_early = True
        self._names_only = True

    @property
    def active(self) -> bool:
        return self.all or bool(self.names) or bool(self.subclasses)

    def wants(self, name: str, subclass: str | None, variable: Callable[[str], str | None] | None = None) -> bool:
        """Whether the event may pass: ``variable`` reads the channel variables it will carry
        (one that carries none answers None for each), None when unknown: the built event decides."""
        if not self._subscribed(name, subclass):
            return False
        if not self.filters or not self._decided_early:
            return True
        if variable is None:
            if not self._names_only:
                return True  # a variable filter, and which variables it carries is unknown
            variable = _no_variable
        known = {"event-name": name, "event-subclass": subclass}
        read = variable

        def lookup(header: str) -> str | None:
            if header[:9].lower() == _VARIABLE_PREFIX:
                return read(header[9:])
            return known.get(header.lower())

        return self._filtered(lookup)

    def _subscribed(self, name: str, subclass: str | None) -> bool:
        if self.all:
            return True
        if name not in self.names:
            return False
        return name != "CUSTOM" or subclass is None or subclass in self.subclasses

    def my_events(self, uuid: str) -> None:
        """``myevents``: the fixed channel-event list, and only ``uuid``'s events."""
        self.names.update(MYEVENTS)
        self.session_uuid = uuid

    def add(self, words: list[str]) -> None:
        custom = False
        for word in words:
            if custom:
                self.subclasses.add(word)
                continue
            name = word.upper()
            if name in ("ALL", "SWITCH_EVENT_ALL"):
                self.all = True
            elif name == "CUSTOM":
                custom = True
                self.names.add(name)
            else:
                self.names.add(name)

    def remove(self, words: list[str]) -> None:
        custom = False
        for word in words:
            if custom:
                self.subclasses.discard(word)
                continue
            name = word.upper()
            if name == "ALL":
                self.clear()
            elif name == "CUSTOM":
                custom = True
            else:
                self.names.discard(name)

    def clear(self) -> None:
        self.all = False
        self.names.clear()
        self.subclasses.clear()

    # ------------------------------------------------------------------ filters

    def add_filter(self, header: str, value: str) -> None:
        self.filters.append((header, value))
        self._decided_early = self._decided_early and _early(header)
        self._names_only = self._names_only and header.lower() in _NAME_HEADERS

    def delete_filter(self, header: str, value: str | None) -> None:
        if header.lower() == "all":
            self.filters.clear()
        else:
            self.filters = [
                (h, v) for h, v in self.filters
                if not (h.lower() == header.lower() and (value is None or v == value))
            ]
        self._decided_early = all(_early(h) for h, _ in self.filters)
        self._names_only = all(h.lower() in _NAME_HEADERS for h, _ in self.filters)

    def passes(self, event: SimEvent) -> bool:
        if self.filters and not self._filtered(event.get):
            return False
        # myevents is checked after the filters, as mod_event_socket does.
        return self.session_uuid is None or event.get("Unique-ID") == self.session_uuid

    def _filtered(self, lookup: Callable[[str], str | None]) -> bool:
        send = False
        for header, value in self.filters:
            actual = lookup(header)
            if actual is None:
                continue
            wanted, positive = value, True
            while wanted and wanted[0] in "+- ":
                if wanted[0] != " ":
                    positive = wanted[0] == "+"
                wanted = wanted[1:]
            if send and positive:
                continue
            if value.startswith("/"):
                pattern = self._compiled.get(value)
                if value not in self._compiled:
                    pattern = self._compiled[value] = _regex(value)
                matched = bool(pattern and pattern.search(actual))
            else:
                matched = actual.lower() == wanted.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send


def _early(header: str) -> bool:
    """Whether a filter on this header is decided before the event is built."""
    return header.lower() in _NAME_HEADERS or header[:9].lower() == _VARIABLE_PREFIX


def _no_variable(name: str) -> str | None:
    return None
