"""The limits of placing calls: may this tenant's (or user's) call go out now?

Strategy: the database decides (``store/usage.py``: the write that stores a
new call adds it to the counts and is refused over a cap, on every node at
once). Before that, what this node knows refuses early, without the
database, whatever is over a limit for certain: permission (``can_call``),
and counts that are a *lower bound* of the true ones, so a refusal from them
is never wrong. They are the minute's and the day's calls as last read from
the database plus this node's own since (those counts only grow), and the
calls this node itself has up (others may have ended elsewhere, so the
database's live count, once read, is not a lower bound for long and is not
kept). A node alone thus refuses over-limit calls without the database ever
refusing; several nodes racing at a limit are settled by the database, and
``judge`` then reads the counts afresh to tell which calls of a refused write
go out and why the others do not.

A refusal says which limit, for whom (tenant or user), and an honest
``retry_after_s``: the earliest moment the call would pass if nothing else
were placed meanwhile. The minute's is exact (when enough calls leave the
window); the day's is the next UTC midnight; for calls up at once it is 1 s,
as a slot frees whenever a call ends, which cannot be foreseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callworker.contract import ErrorCode, utcnow
from callworker.contract.policy import Limits
from callworker.policy.book import UNLIMITED, PolicyBook
from callworker.store.usage import (
    WINDOW_S,
    Delta,
    Usage,
    epoch_day,
    epoch_second,
    placed,
    read_usage,
    recent_usage,
)

__all__ = ["CallLimits", "Refusal", "caps_of", "unjudged"]

Key = tuple[str, str]
# Stale lower bounds are forgotten once this many tenants and users are known.
_PRUNE_ABOVE = 10_000


@dataclass(frozen=True)
class Refusal:
    """Why a call may not be placed now."""

    code: ErrorCode  # RATE_LIMITED or PERMISSION_DENIED
    limit: str  # can_call, calls_per_minute, calls_per_day, max_concurrent
    scope: str  # tenant or user
    retry_after_s: int | None = None

    @property
    def message(self) -> str:
        who = "the tenant" if self.scope == "tenant" else "the user"
        if self.code is ErrorCode.PERMISSION_DENIED:
            return f"{who} may not place calls"
        return f"{who} is over its limit {self.limit}: retry later"

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"limit": self.limit, "scope": self.scope}
        if self.retry_after_s is not None:
            details["retry_after_s"] = self.retry_after_s
        return details


def caps_of(limits: Limits) -> dict[str, int | None]:
    return {"minute_cap": limits.calls_per_minute, "day_cap": limits.calls_per_day,
            "live_cap": limits.max_concurrent}


_CAP_LIMITS = (("minute_cap", "calls_per_minute"), ("day_cap", "calls_per_day"), ("live_cap", "max_concurrent"))


def _over(caps: dict[str, int | None], usage: Usage | None, live: int, now: datetime, scope: str) -> Refusal | None:
    """The limit one more call would pass (the one to wait longest for), given these counts."""
    usage = usage or Usage()
    second, day = epoch_second(now), epoch_day(now)
    found: list[Refusal] = []
    for cap_name, limit in _CAP_LIMITS:
        cap = caps.get(cap_name)
        if cap is None:
            continue
        if cap_name == "minute_cap" and usage.in_window(second) + 1 > cap:
            wait = usage.seconds_until_window_holds(second, cap - 1)
        elif cap_name == "day_cap" and usage.on_day(day) + 1 > cap:
            wait = (day + 1) * 86400 - second  # the next UTC midnight
        elif cap_name == "live_cap" and live + 1 > cap:
            wait = 1
        else:
            continue
        found.append(Refusal(ErrorCode.RATE_LIMITED, limit, scope, max(1, wait) if wait is not None else None))
    if not found:
        return None
    # The longest wait: retrying earlier would only be refused again.
    return max(found, key=lambda r: r.retry_after_s if r.retry_after_s is not None else 2**31)


def unjudged(limit: str | None) -> Refusal:
    """The refusal of a call the database kept refusing while its counts moved (rare): retry soon."""
    return Refusal(ErrorCode.RATE_LIMITED, limit or "calls_per_minute", "tenant", 1)


class CallLimits:
    def __init__(self, policy: PolicyBook, engine: Any) -> None:
        self._policy = policy
        self._engine = engine
        # Lower bounds of the minute's and day's counts (live is not kept here).
        self._known: dict[Key, Usage] = {}
        # Counted calls this node has up.
        self._own_live: dict[Key, int] = {}

    def scopes(self, tenant: str, user_id: str | None) -> list[tuple[str, Key, Limits]]:
        tenant_limits, user_limits = self._policy.limits(tenant, user_id)
        scopes = [("tenant", (tenant, ""), tenant_limits)]
        if user_id:
            scopes.append(("user", (tenant, user_id), user_limits or UNLIMITED))
        return scopes

    def check(self, tenant: str, user_id: str | None, now: datetime) -> Refusal | None:
        """A refusal certain from what this node knows, or None (the database decides)."""
        scopes = self.scopes(tenant, user_id)
        for scope, _key, limits in scopes:
            if limits.can_call is False:
                return Refusal(ErrorCode.PERMISSION_DENIED, "can_call", scope)
        refusals = [
            _over(caps_of(limits), self._known.get(key), self._own_live.get(key, 0), now, scope)
            for scope, key, limits in scopes
        ]
        return _longest(refusals)

    def placing(self, tenant: str, user_id: str | None, now: datetime) -> list[Delta]:
        """What one new call adds to the counts, with the caps it must stay within."""
        return [placed(key, 1, now, caps_of(limits)) for _scope, key, limits in self.scopes(tenant, user_id)]

    # ------------------------------------------------------- the journal's side

    def judge(self, openings: Sequence[Sequence[Delta]], now: datetime) -> list[Refusal | None]:
        """After the database refused a write of several new calls: which go out, in order.

        Reads the counts afresh and adds the calls one by one as the database would.
        """
        keys = sorted({delta.key for deltas in openings for delta in deltas})
        fresh = read_usage(self._engine, keys)
        for key, usage in fresh.items():
            self._known[key] = usage  # the newest lower bound of the minute and the day
        state = dict(fresh)
        verdicts: list[Refusal | None] = []
        for deltas in openings:
            refusal: Refusal | None = None
            after: dict[Key, Usage] = {}
            for change in deltas:
                key = change.key
                delta = change.usage()
                current = state.get(key)
                total = current.plus(delta) if current is not None else delta
                over = total.over()
                if over is not None:
                    scope = "user" if key[1] else "tenant"
                    live = current.live if current is not None else 0
                    # Over by the database's rule though not by ours (clocks apart): refuse briefly.
                    found = _over(delta.caps, current, live, now, scope) or \
                        Refusal(ErrorCode.RATE_LIMITED, dict(_CAP_LIMITS)[over], scope, 1)
                    refusal = _longest([refusal, found])
                after[key] = total
            if refusal is None:
                state.update(after)
            verdicts.append(refusal)
        return verdicts

    def committed(self, deltas: Sequence[Delta]) -> None:
        """A batch with usage deltas was committed by this node (journal watcher)."""
        for delta in deltas:
            key = delta.key
            self._own_live[key] = max(0, self._own_live.get(key, 0) + delta.calls - delta.ended)
            if delta.calls:
                known = self._known.get(key) or Usage()
                self._known[key] = known.with_calls(delta.second, delta.calls)
        if len(self._known) > _PRUNE_ABOVE:
            self._prune(utcnow())

    def attach(self, journal: Any) -> None:
        """Take part in a journal's writes: judge refused groups, follow what it counts.

        Called at start, before any call is placed: the counts of the day so far
        are read once, so a restarted node knows them from its first call.
        """
        journal.judge = self.judge
        journal.usage_watchers.append(self.committed)
        journal.reloaders.append(lambda: self.count_live(journal.calls.values()))
        self.count_live(journal.calls.values())
        now = utcnow()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self._known.update(recent_usage(self._engine, min(midnight, now - timedelta(seconds=WINDOW_S))))

    def count_live(self, calls: Iterable[Any]) -> None:
        """The counted calls this node has up (after a start, or a reload of its calls)."""
        self._own_live.clear()
        for call in calls:
            if not call.counted:
                continue
            for key in [(call.tenant, "")] + ([(call.tenant, call.user_id)] if call.user_id else []):
                self._own_live[key] = self._own_live.get(key, 0) + 1

    def _prune(self, now: datetime) -> None:
        second, day = epoch_second(now), epoch_day(now)
        for key in [k for k, u in self._known.items() if not u.in_window(second) and not u.on_day(day)]:
            del self._known[key]
        for key in [k for k, n in self._own_live.items() if n == 0]:
            del self._own_live[key]


def _longest(refusals: Sequence[Refusal | None]) -> Refusal | None:
    found = [r for r in refusals if r is not None]
    if not found:
        return None
    return max(found, key=lambda r: r.retry_after_s if r.retry_after_s is not None else 2**31)
