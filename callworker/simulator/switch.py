"""The simulated switch core: channels, event fan-out, switch-wide counters.

Strategy: everything runs in gevent greenlets of one process, so an event is
created, numbered and handed to every interested client without a yield in
between; per-client order therefore always equals Event-Sequence order. An event
is only built when at least one client wants it (its sequence number is still
consumed, as FreeSWITCH numbers events whoever listens).
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import gevent
import gevent.pool

from callworker.simulator.channel import CALL_STATE_NUMBERS, Channel, now_us
from callworker.simulator.events import Block, EventFactory, Origin, SimEvent
from callworker.simulator.headers import channel_blocks, safe_block, wants_variables

__all__ = ["Switch", "Listener", "Stats", "Timing"]

_ARCHIVE = 5_000  # ended channels whose variables stay readable for tests


def _no_variable(name: str) -> str | None:
    """The variables of an event that carries none."""
    return None


class Listener(Protocol):
    def wants(self, name: str, subclass: str | None, variable: Callable[[str], str | None] | None = None) -> bool: ...

    def deliver(self, event: SimEvent) -> None: ...


@dataclass
class Stats:
    """Counters a test or benchmark can read while the simulator runs."""

    connections: int = 0
    calls_started: int = 0
    events_sent: int = 0
    commands: int = 0


@dataclass(frozen=True)
class Timing:
    ring_delay: float
    answer_delay: float
    far_end_hangup_after: float
    long_ring: float = 60.0  # how long ...0180 rings before the carrier gives up
    clock_step_us: int = 20_000  # FreeSWITCH's clock moves in 20 ms steps


@dataclass
class _Load:
    """Sessions per second and concurrent peaks, for ``status``."""

    since_startup: int = 0
    peak: int = 0
    peak_sps: int = 0
    per_second: dict[int, list[int]] = field(default_factory=dict)  # second -> [created, max live]

    def record(self, live: int) -> None:
        second = int(time.time())
        slot = self.per_second.setdefault(second, [0, 0])
        slot[0] += 1
        slot[1] = max(slot[1], live)
        self.since_startup += 1
        self.peak = max(self.peak, live)
        self.peak_sps = max(self.peak_sps, slot[0])
        if len(self.per_second) > 310:
            for old in [s for s in self.per_second if s < second - 300]:
                del self.per_second[old]

    def recent(self) -> tuple[int, int, int]:
        """(sessions created this second, 5-minute peak of sessions, of sessions/s)."""
        now = int(time.time())
        window = [v for s, v in self.per_second.items() if s >= now - 300]
        current = self.per_second.get(now, [0, 0])[0]
        peak = max((v[1] for v in window), default=0)
        return current, peak, max((v[0] for v in window), default=0)


class Switch:
    """Channels, listeners and the event numbering of one simulated FreeSWITCH."""

    def __init__(self, hostname: str, ipv4: str, timing: Timing) -> None:
        self.core_uuid = str(uuidlib.uuid4())
        self.hostname = hostname
        self.ipv4 = ipv4
        self.timing = timing
        self.factory = EventFactory(self.core_uuid, hostname, ipv4)
        self.listeners: list[Listener] = []
        self.channels: dict[str, Channel] = {}
        self.ended: OrderedDict[str, Channel] = OrderedDict()
        self.stats = Stats()
        self.load = _Load()
        self.started = time.time()
        self.calls = gevent.pool.Group()
        # How far `show channels` (FreeSWITCH's SQL table, filled by a thread of its
        # own) lags the core, in seconds: a channel is listed this long after it was
        # made and still listed this long after it was destroyed.
        self.list_lag = 0.0
        # Called as a channel goes down (after CHANNEL_HANGUP, before CHANNEL_HANGUP_COMPLETE):
        # what runs on it stops (simulator/media.py).
        self.hangup_hooks: list[Callable[[Channel], None]] = []

    def now_us(self) -> int:
        """The switch's clock: microseconds, in FreeSWITCH's steps."""
        return now_us(self.timing.clock_step_us)

    # ------------------------------------------------------------------ events

    def fire(
        self,
        name: str,
        blocks: Callable[[], list[Block]] | None = None,
        *,
        body: str | None = None,
        subclass: str | None = None,
        origin: Origin | None = None,
        renamed: bool = False,
        variable: Callable[[str], str | None] | None = None,
    ) -> SimEvent | None:
        """Number an event and hand it to every listener that wants it.

        ``variable``: reads the channel variables the event will carry (see ``Listener.wants``).

        ``renamed``: the event was created under another name and renamed by the
        dialplan ``event`` application, which deletes ``Event-Name`` from the
        common headers and adds it again after them.
        """
        targets = [item for item in self.listeners if item.wants(name, subclass, variable)]
        if not targets:
            self.factory.next_sequence()
            return None
        head = self.factory.head(name, self.now_us(), origin)
        parts = [Block(head.pairs[1:]), Block([head.pairs[0]])] if renamed else [head]
        if subclass is not None:
            parts.append(Block([("Event-Subclass", subclass)]))
        if blocks is not None:
            parts += blocks()
        event = SimEvent(name, parts, body, subclass)
        for target in targets:
            target.deliver(event)
        return event

    def emit(
        self,
        ch: Channel,
        name: str,
        *,
        top: Sequence[tuple[str, str]] = (),
        bottom: Sequence[tuple[str, str]] = (),
        subclass: str | None = None,
        state_number: int | None = None,
        renamed: bool = False,
        origin: Origin | None = None,
    ) -> SimEvent | None:
        """A channel event: extra headers, channel data, caller profile, variables."""

        def build() -> list[Block]:
            parts = [Block(list(top))] if top else []
            parts += channel_blocks(ch, variables=wants_variables(name), state_number=state_number)
            if bottom:
                parts.append(Block(list(bottom)))
            return parts

        carried = ch.variables.get if wants_variables(name) else _no_variable
        return self.fire(name, build, subclass=subclass, renamed=renamed, origin=origin, variable=carried)

    def set_state(self, ch: Channel, state: str) -> None:
        ch.set_state(state)
        self.emit(ch, "CHANNEL_STATE")

    def set_call_state(self, ch: Channel, call_state: str) -> None:
        old = ch.call_state
        ch.call_state = call_state
        top = [("Original-Channel-Call-State", old),
               ("Channel-Call-State-Number", str(CALL_STATE_NUMBERS[call_state]))]
        self.fire("CHANNEL_CALLSTATE",
                  lambda: [safe_block(top), *channel_blocks(ch, variables=False)], variable=_no_variable)

    def set_vars(self, ch: Channel, pairs: Iterable[tuple[str, str]]) -> None:
        ch.variables.update(pairs)

    # ---------------------------------------------------------------- channels

    def add_channel(self, ch: Channel) -> None:
        self.channels[ch.uuid] = ch
        self.stats.calls_started += 1
        self.load.record(len(self.channels))

    def forget(self, ch: Channel) -> None:
        ch.destroyed_us = now_us()
        if self.channels.get(ch.uuid) is ch:
            del self.channels[ch.uuid]
        ch.cache.clear()
        ch.variables.compact()
        self.ended[ch.uuid] = ch
        self.ended.move_to_end(ch.uuid)
        while len(self.ended) > _ARCHIVE:
            self.ended.popitem(last=False)
        ch.ended.set()

    def find(self, uuid: str) -> Channel | None:
        return self.channels.get(uuid)

    def listed(self) -> list[Channel]:
        """The channels ``show channels`` lists now, oldest first (``list_lag`` behind the core)."""
        if self.list_lag <= 0:
            found = list(self.channels.values())
        else:
            now, lag = now_us(), int(self.list_lag * 1_000_000)
            gone = [ch for ch in self.ended.values() if ch.destroyed_us + lag > now]
            found = [ch for ch in [*self.channels.values(), *gone] if ch.created_us + lag <= now]
        return sorted(found, key=lambda c: c.created_us)

    def lookup(self, uuid: str) -> Channel:
        """A live or recently ended channel (for tests); KeyError if never seen."""
        ch = self.channels.get(uuid) or self.ended.get(uuid)
        if ch is None:
            raise KeyError(uuid)
        return ch

    def next_session_id(self) -> int:
        return self.load.since_startup + 1

    def spawn_call(self, fn: Callable[..., None], *args: object) -> None:
        self.calls.spawn(fn, *args)

    def kill_all_calls(self) -> None:
        self.calls.kill(block=False)
        for ch in list(self.channels.values()):
            self.forget(ch)
