"""Abuse limits of flash calls: resend cooldown, caps per window, destination allow-list.

Pure: the service reads the figures from the database (``OrderHistory``) and
asks here whether a new order may be placed and, if not, when it may.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from callworker.store.flashcall import OrderHistory

__all__ = ["DestinationPolicy", "Limits", "Refusal"]


@dataclass(frozen=True)
class Refusal:
    """Why a new order is refused now, and in how many whole seconds to try again."""

    limit: str  # "cooldown", "phone" or "tenant"
    retry_after_s: int


def _seconds_until(moment: datetime, now: datetime) -> int:
    # Rounded up and at least 1: retrying after that many seconds must succeed.
    return max(1, math.ceil((moment - now).total_seconds()))


@dataclass(frozen=True)
class Limits:
    cooldown_s: float
    window_s: float
    max_per_phone: int  # 0: no cap
    max_per_tenant: int  # 0: no cap

    def window_start(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.window_s)

    def refusal(self, history: OrderHistory, now: datetime) -> Refusal | None:
        """None when a new order may be placed now; else the first limit it hits."""
        if history.last_for_phone is not None and self.cooldown_s > 0:
            free_at = history.last_for_phone + timedelta(seconds=self.cooldown_s)
            if free_at > now:
                return Refusal("cooldown", _seconds_until(free_at, now))
        window = timedelta(seconds=self.window_s)
        caps = (
            ("phone", self.max_per_phone, history.phone_count, history.phone_oldest),
            ("tenant", self.max_per_tenant, history.tenant_count, history.tenant_oldest),
        )
        for name, cap, count, oldest in caps:
            if cap and count >= cap:
                # Approximation: the cap frees when the oldest order in the window leaves it.
                free_at = (oldest or now) + window
                return Refusal(name, _seconds_until(free_at, now))
        return None

    def resend_after_s(self, history: OrderHistory, now: datetime) -> int:
        """After an order placed ``now``, when the next one for the same phone is accepted.

        ``history`` is what the database held before this order.
        """
        wait = self.cooldown_s
        if self.max_per_phone and history.phone_count + 1 >= self.max_per_phone:
            oldest = history.phone_oldest or now
            wait = max(wait, (oldest + timedelta(seconds=self.window_s) - now).total_seconds())
        return max(0, math.ceil(wait))


class DestinationPolicy:
    """The allow-list of destinations: a phone's digits must match one pattern in full.

    Protects against toll fraud: codes are only ever dialled to number ranges the
    operator chose.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns = tuple(re.compile(pattern) for pattern in patterns)

    def allows(self, phone: str) -> bool:
        digits = phone.lstrip("+")
        return any(pattern.fullmatch(digits) is not None for pattern in self._patterns)
