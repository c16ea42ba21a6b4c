"""The one retry delay: capped, exponential, jittered; every reconnect and retry loop uses it.

Jitter keeps to the upper half of each step, so delays still grow, while many workers
that lost the same server at the same moment come back spread out instead of together.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Exponential delays from ``initial`` up to ``cap``, jittered in the upper half; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.5, cap: float = 15.0,
                 rand: Callable[[], float] = random.random) -> None:
        self._initial = initial
        self._cap = max(cap, initial)
        self._rand = rand
        self._attempts = 0

    def next(self) -> float:
        ceiling = min(self._cap, self._initial * 2.0 ** min(self._attempts, 32))
        self._attempts += 1
        floor = max(self._initial, ceiling / 2)
        return floor + (ceiling - floor) * self._rand()

    def reset(self) -> None:
        self._attempts = 0
