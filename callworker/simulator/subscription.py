"""What one event-socket client listens to: event names, CUSTOM subclasses, filters.

Mirrors mod_event_socket: ``ALL`` takes every event, CUSTOM included; a named
CUSTOM event passes only if its subclass was listed after ``CUSTOM``; filters
apply only to events already subscribed, are ORed, compare case-insensitively,
treat a value starting with ``/`` as a regex and a ``-`` prefix as "drop".
"""

from __future__ import annotations

import re

from callworker.simulator.events import SimEvent

__all__ = ["Subscription"]

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
        self._compiled: dict[str, re.Pattern[str] | None] = {}

    @property
    def active(self) -> bool:
        return self.all or bool(self.names) or bool(self.subclasses)

    def wants(self, name: str, subclass: str | None) -> bool:
        if self.all:
            return True
        if name not in self.names:
            return False
        return name != "CUSTOM" or subclass is None or subclass in self.subclasses

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

    def delete_filter(self, header: str, value: str | None) -> None:
        if header.lower() == "all":
            self.filters.clear()
            return
        self.filters = [
            (h, v) for h, v in self.filters
            if not (h.lower() == header.lower() and (value is None or v == value))
        ]

    def passes(self, event: SimEvent) -> bool:
        if not self.filters:
            return True
        send = False
        for header, value in self.filters:
            actual = event.get(header)
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
