"""What the limits count, per tenant and per user, shared by every node through the database.

Strategy: a call placed is counted by the same write that stores it (the fresh
batch of ``Journal.open``); its end gives its live slot back in the batch that
stores its end. Each write carries *deltas* (a row of ``policy_usage`` whose
counts are what this batch adds) and, for new calls, the caps in force; the
database adds them to the stored counts and a check constraint refuses any
write that takes a count over its cap. A refused write stores nothing (no call,
no command record), and because the counts live in one row per tenant or user,
locked by the write while it adds, two nodes placing calls at once are
serialised on it: the limit holds across nodes and restarts without a lock or a
round trip of its own.

The counts of a row: ``live`` (calls not yet ended), ``day_used`` (calls of the
UTC day ``day``, days since the epoch) and a ring of 60 per-second slots for
the sliding minute: slot ``s % 60`` holds second ``s`` (``ring_sec``) and the
calls placed in it (``ring_cnt``); ``minute_used`` is the calls of the 60 s
ending at the last call placed. PostgreSQL merges the ring in SQL (one
statement with the rest of the batch, ``bulk.py``); SQLite, whose writers take
turns anyway, merges it here in ``Usage.plus``, with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, tuple_
from sqlalchemy.exc import IntegrityError

from callworker.store.db import autocommit, guarded
from callworker.store.models import USAGE

__all__ = [
    "SLOTS",
    "WINDOW_S",
    "Delta",
    "Usage",
    "epoch_day",
    "epoch_second",
    "ended",
    "fold",
    "is_over_limit",
    "placed",
    "refused_limit",
    "read_usage",
    "recent_usage",
    "write_usage_sqlite",
]

WINDOW_S = 60
SLOTS = 60
_ZEROS = (0,) * SLOTS
# The constraint names that mean "over a limit" (models.PolicyUsage), and the limit each checks.
_CAP_CHECKS = {
    "ck_policy_usage_minute": "calls_per_minute",
    "ck_policy_usage_day": "calls_per_day",
    "ck_policy_usage_live": "max_concurrent",
}

Key = tuple[str, str]  # (tenant, user_id); user_id '' is the tenant itself


def epoch_second(moment: datetime) -> int:
    return int(moment.timestamp())


def epoch_day(moment: datetime) -> int:
    """Days since 1970-01-01 of the UTC date of ``moment``."""
    return epoch_second(moment) // 86400


@dataclass(frozen=True)
class Delta:
    """What one write adds to the counts of one tenant or user: calls placed at ``second``
    (with the caps they must stay within), or counted calls that ended (no cap checked)."""

    key: Key
    calls: int = 0
    ended: int = 0
    second: int = 0
    caps: dict[str, int | None] | None = None

    @property
    def day(self) -> int:
        return self.second // 86400

    def usage(self) -> Usage:
        """This delta alone as counts (what a write of it alone adds)."""
        if not self.calls:
            return Usage(live=-self.ended)
        return Usage().with_calls(self.second, self.calls, live=self.calls - self.ended, caps=self.caps or {})


@dataclass(frozen=True)
class Usage:
    """The stored counts of one tenant or user (or a delta of them)."""

    live: int = 0
    day: int = 0
    day_used: int = 0
    ring_sec: tuple[int, ...] = _ZEROS
    ring_cnt: tuple[int, ...] = _ZEROS
    minute_used: int = 0
    caps: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Usage:
        return cls(
            live=int(row["live"]), day=int(row["day"]), day_used=int(row["day_used"]),
            ring_sec=tuple(int(v) for v in row["ring_sec"]), ring_cnt=tuple(int(v) for v in row["ring_cnt"]),
            minute_used=int(row["minute_used"]),
            caps={name: row.get(name) for name in ("minute_cap", "day_cap", "live_cap")},
        )

    def row(self, key: Key, now: datetime) -> dict[str, Any]:
        return {
            "tenant": key[0], "user_id": key[1], "live": self.live, "day": self.day,
            "day_used": self.day_used, "minute_used": self.minute_used,
            "ring_sec": list(self.ring_sec), "ring_cnt": list(self.ring_cnt),
            "minute_cap": self.caps.get("minute_cap"), "day_cap": self.caps.get("day_cap"),
            "live_cap": self.caps.get("live_cap"), "updated_at": now,
        }

    def with_calls(
        self, second: int, calls: int, *, live: int | None = None, caps: dict[str, int | None] | None = None
    ) -> Usage:
        """These counts with ``calls`` more placed at ``second`` (``live``: the change of live, default
        ``calls``; ``caps``: the new caps, default these), as ``plus`` would add them."""
        slot = second % SLOTS
        old_sec, old_cnt = self.ring_sec[slot], self.ring_cnt[slot]
        new_sec, new_cnt = (old_sec, old_cnt + calls) if old_sec >= second else (second, calls)
        ring_sec = self.ring_sec[:slot] + (new_sec,) + self.ring_sec[slot + 1 :]
        ring_cnt = self.ring_cnt[:slot] + (new_cnt,) + self.ring_cnt[slot + 1 :]
        day = second // 86400
        day_used = calls if day > self.day else self.day_used + calls
        merged = Usage(max(0, self.live + (calls if live is None else live)), max(day, self.day), day_used,
                       ring_sec, ring_cnt, 0, dict(self.caps if caps is None else caps))
        return Usage(merged.live, merged.day, merged.day_used, ring_sec, ring_cnt, merged.in_window(second),
                     merged.caps)

    def in_window(self, second: int) -> int:
        """Calls placed in the 60 s ending at ``second`` (and after it: a clock ahead of ours)."""
        return sum(c for s, c in zip(self.ring_sec, self.ring_cnt, strict=True) if s > second - WINDOW_S)

    def on_day(self, day: int) -> int:
        """Calls of UTC day ``day`` (a later day stored counts too: a clock ahead of ours)."""
        return self.day_used if self.day >= day else 0

    def plus(self, delta: Usage) -> Usage:
        """These counts with ``delta`` added: the rules the database follows (see bulk.py)."""
        sec: list[int] = []
        cnt: list[int] = []
        for os_, oc, es, ec in zip(self.ring_sec, self.ring_cnt, delta.ring_sec, delta.ring_cnt, strict=True):
            if ec == 0:
                slot = (os_, oc)
            elif os_ >= es:  # the same second (or a later one, from a clock ahead): add to it
                slot = (os_, oc + ec)
            else:  # the slot held a second that has left the window
                slot = (es, ec)
            sec.append(slot[0])
            cnt.append(slot[1])
        if delta.day > self.day:
            day, day_used = delta.day, delta.day_used
        else:
            day, day_used = self.day, self.day_used + delta.day_used
        merged = Usage(max(0, self.live + delta.live), day, day_used, tuple(sec), tuple(cnt), self.minute_used,
                       dict(delta.caps))
        if delta.minute_used:
            latest = max(s for s, c in zip(delta.ring_sec, delta.ring_cnt, strict=True) if c)
            merged = Usage(merged.live, day, day_used, merged.ring_sec, merged.ring_cnt,
                           merged.in_window(latest), merged.caps)
        return merged

    def over(self) -> str | None:
        """The cap this state is over (``minute_cap``, ``day_cap``, ``live_cap``), if any."""
        checks = (("minute_cap", self.minute_used), ("day_cap", self.day_used), ("live_cap", self.live))
        for name, count in checks:
            cap = self.caps.get(name)
            if cap is not None and count > cap:
                return name
        return None

    def seconds_until_window_holds(self, second: int, most: int) -> int | None:
        """Seconds from ``second`` until the window holds at most ``most`` calls (None: never)."""
        if most < 0:
            return None
        excess = self.in_window(second) - most
        if excess <= 0:
            return 0
        placed = sorted((s, c) for s, c in zip(self.ring_sec, self.ring_cnt, strict=True) if s > second - WINDOW_S)
        for sec, count in placed:
            excess -= count
            if excess <= 0:
                return sec + WINDOW_S - second  # second ``sec`` leaves the window then
        return None


def placed(key: Key, calls: int, now: datetime, caps: dict[str, int | None]) -> Delta:
    """``calls`` new calls placed at ``now``, with the caps they must stay within."""
    return Delta(key, calls=calls, second=epoch_second(now), caps=dict(caps))


def ended(tenant: str, user_id: str | None, calls: int = 1) -> list[Delta]:
    """Counted calls of the tenant (and user) that ended: their live slots given back."""
    keys = [(tenant, "")] + ([(tenant, user_id)] if user_id else [])
    return [Delta(key, ended=calls) for key in keys]


def fold(deltas: Iterable[Delta], now: datetime) -> list[dict[str, Any]]:
    """The rows a write adds: one per key (a statement may touch a row once), in key order (no
    two writes lock the same rows in opposite orders), each the deltas' sum as the database adds.

    ``live`` may be negative (ends); ``minute_used`` is the calls placed (0: no call placed,
    the ring is left alone); the caps are the last placed calls'.
    """
    folded: dict[Key, tuple[Usage, int, int]] = {}  # key -> (ring and day of the calls, live change, placed)
    for delta in deltas:
        counts, live, calls = folded.get(delta.key, (Usage(), 0, 0))
        if delta.calls:
            counts = counts.with_calls(delta.second, delta.calls, live=0, caps=delta.caps)
        folded[delta.key] = (counts, live + delta.calls - delta.ended, calls + delta.calls)
    rows = []
    for key in sorted(folded):
        counts, live, calls = folded[key]
        summed = Usage(live, counts.day, counts.day_used, counts.ring_sec, counts.ring_cnt, calls,
                       counts.caps if calls else {})
        rows.append(summed.row(key, now))
    return rows


def refused_limit(exc: IntegrityError) -> str | None:
    """The limit whose cap refused the write (``calls_per_minute`` ...), or None: not a limit."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None) if diag is not None else None
    if name is None:  # SQLite: "CHECK constraint failed: ck_policy_usage_live"
        name = str(orig)
    return next((limit for check, limit in _CAP_CHECKS.items() if check in name), None)


def is_over_limit(exc: IntegrityError) -> bool:
    """Whether the database refused a write because a count would pass its cap."""
    return refused_limit(exc) is not None


@guarded
def read_usage(engine: Engine, keys: Sequence[Key]) -> dict[Key, Usage]:
    """The stored counts of these tenants and users (absent: nothing counted yet)."""
    if not keys:
        return {}
    stmt = select(USAGE).where(tuple_(USAGE.c.tenant, USAGE.c.user_id).in_(list(set(keys))))
    with autocommit(engine).connect() as conn:
        return {(row["tenant"], row["user_id"]): Usage.from_row(dict(row)) for row in conn.execute(stmt).mappings()}


@guarded
def recent_usage(engine: Engine, since: datetime) -> dict[Key, Usage]:
    """The counts of every tenant and user that placed a call since ``since``."""
    stmt = select(USAGE).where(USAGE.c.updated_at >= since)
    with autocommit(engine).connect() as conn:
        return {(row["tenant"], row["user_id"]): Usage.from_row(dict(row)) for row in conn.execute(stmt).mappings()}


def write_usage_sqlite(conn: Connection, deltas: Sequence[Delta], now: datetime, upsert: Any) -> None:
    """Add the deltas to the stored counts, inside the batch's transaction (SQLite).

    The transaction holds SQLite's write lock already (the batch wrote before
    this), so what is read here is what the others committed: no one can add
    in between. The merged counts are written whole; the check constraints
    refuse them as PostgreSQL's would.
    """
    if not deltas:
        return
    rows = fold(deltas, now)
    keys = [(row["tenant"], row["user_id"]) for row in rows]
    stmt = select(USAGE).where(tuple_(USAGE.c.tenant, USAGE.c.user_id).in_(keys))
    stored = {(row["tenant"], row["user_id"]): Usage.from_row(dict(row)) for row in conn.execute(stmt).mappings()}
    merged = []
    for row in rows:
        key = (row["tenant"], row["user_id"])
        delta = Usage.from_row(row)
        current = stored.get(key)
        total = current.plus(delta) if current is not None else Usage(
            delta.live, delta.day, delta.day_used, delta.ring_sec, delta.ring_cnt, delta.minute_used, delta.caps)
        merged.append(total.row(key, row["updated_at"]))
    upsert(conn, USAGE, merged)
