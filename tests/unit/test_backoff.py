"""Retry delays: jittered, capped at 15 s, back to 0.5 s after a success."""

from __future__ import annotations

from callworker.backoff import Backoff


def delays(rand: float, count: int) -> list[float]:
    backoff = Backoff(0.5, 15.0, rand=lambda: rand)
    return [backoff.next() for _ in range(count)]


def test_delays_grow_and_stop_at_the_cap() -> None:
    assert delays(1.0, 8) == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]


def test_jitter_stays_within_the_upper_half() -> None:
    assert delays(0.0, 8) == [0.5, 0.5, 1.0, 2.0, 4.0, 7.5, 7.5, 7.5]


def test_every_delay_is_between_half_a_second_and_fifteen() -> None:
    backoff = Backoff()
    assert all(0.5 <= backoff.next() <= 15.0 for _ in range(200))


def test_reset_starts_again_from_the_shortest_delay() -> None:
    backoff = Backoff(0.5, 15.0, rand=lambda: 1.0)
    for _ in range(10):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 0.5
