"""Taking turns: a long stretch of work lets runnable greenlets in once its slice is used."""

from __future__ import annotations

import time

import gevent

from callworker.turns import Turns


def spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_a_stretch_past_its_slice_lets_the_others_run() -> None:
    ran: list[str] = []
    other = gevent.spawn(ran.append, "other")
    turns = Turns(0.001)
    turns.begin()
    spin(0.002)
    turns.check()
    assert ran == ["other"] and turns.given == 1
    other.join()


def test_a_short_stretch_keeps_going() -> None:
    ran: list[str] = []
    other = gevent.spawn(ran.append, "other")
    turns = Turns(10.0)
    turns.begin()
    turns.check()
    assert ran == [] and turns.given == 0
    other.join()
    assert ran == ["other"]
