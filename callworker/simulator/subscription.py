"""What one event-socket client listens to: event names, CUSTOM subclasses, filters.

Mirrors mod_event_socket: ``ALL`` takes every event, CUSTOM included; a named
CUSTOM event passes only if its subclass was listed after ``CUSTOM`` (``event
plain CUSTOM`` alone takes only CUSTOM events that have no subclass); filters
apply only to events already subscribed, are ORed, compare case-insensitively,
treat a value starting with ``/`` as a regex and a ``-`` prefix as "drop".
``myevents`` on an outbound socket subscribes a fixed list of channel events and
then passes only the events of the socket's own channel.

Filters that look only at ``Event-Name`` and ``Event-Subclass`` are decided
before an event is built, so ``event plain ALL`` narrowed by such filters costs
no more than a list of names.
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
        self._names_only = True  # every filter looks at Event-Name/Event-Subclass only

    @property
    def active(self) -> bool:
        return self.all or bool(self.names) or bool(self.subclasses)

    def wants(self, name: str, subclass: str | None) -> bool:
        if not self._subscribed(name, subclass):
            return False
        if self.filters and self._names_only:
            known = {"event-name": name, "event-subclass": subclass}
            return self._filtered(lambda header: known.get(header.lower()))
        return True

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
        self._names_only = self._names_only and header.lower() in _NAME_HEADERS

    def delete_filter(self, header: str, value: str | None) -> None:
        if header.lower() == "all":
            self.filters.clear()
        else:
            self.filters = [
                (h, v) for h, v in self.filters
                if not (h.lower() == header.lower() and (value is None or v == value))
            ]
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
