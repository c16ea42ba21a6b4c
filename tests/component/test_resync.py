"""Reconciliation is tried again until it succeeds, and commands wait for it (Reconciler, no I/O)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent.event
import pytest

from callworker.backoff import Backoff
from callworker.calls.resync import Reconciler
from callworker.errors import FreeSwitchUnreadable, StoreUnavailable

WAIT = 5.0


class Rig:
    """A Reconciler whose attempts follow a script: an exception to raise, or None to succeed."""

    def __init__(self, script: list[BaseException | None], *, second_look_s: float = 60.0) -> None:
        self.script = script
        self.connected = True
        self.attempts: list[bool] = []  # connected when each attempt ran
        self.resumed = 0
        self.during: Callable[[], None] | None = None  # run inside the next attempt
        self.live_calls = True  # what each attempt says: it had live calls to compare
        self.reconciler = Reconciler(
            self.attempt, connected=lambda: self.connected, on_reconciled=self.resume,
            backoff=Backoff(0.01, 0.02), second_look_s=second_look_s,
        )
        self.resumed_event = gevent.event.Event()

    def attempt(self) -> bool:
        self.attempts.append(self.connected)
        during, self.during = self.during, None
        if during is not None:
            during()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return self.live_calls


    def resume(self) -> None:
        self.resumed += 1
        self.resumed_event.set()

    def wait(self, attempts: int) -> None:
        assert self.reconciler.wait_attempts(attempts, WAIT), f"{len(self.attempts)} attempts"


def test_a_failed_reconciliation_is_tried_again_and_commands_wait_for_its_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig([StoreUnavailable("the database is away"), FreeSwitchUnreadable("-ERR"), None])
    with caplog.at_level(logging.WARNING, "callworker.reconcile"):
        rig.reconciler.on_connected()
        assert rig.resumed_event.wait(WAIT)
    assert len(rig.attempts) == 3 and rig.resumed == 1
    assert rig.reconciler.reconciled
    assert (rig.reconciler.failed, rig.reconciler.succeeded) == (2, 1)
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == 2 and "the database is away" in failures[0]


def test_not_reconciled_and_no_commands_while_it_keeps_failing() -> None:
    rig = Rig([StoreUnavailable("away")] * 5)
    rig.reconciler.on_connected()
    rig.wait(4)
    assert rig.resumed == 0 and not rig.reconciler.reconciled
    rig.wait(6)
    assert rig.resumed == 1 and rig.reconciler.reconciled


def test_a_drop_ends_the_round_and_the_next_connect_starts_a_new_one() -> None:
    rig = Rig([StoreUnavailable("away")] * 3)

    def drop() -> None:
        rig.connected = False
        rig.reconciler.on_disconnected()

    rig.reconciler.on_connected()
    rig.wait(2)
    rig.during = drop
    rig.wait(3)
    assert rig.resumed == 0 and not rig.reconciler.reconciled
    assert not rig.reconciler.wait_attempts(4, 0.3)  # no retries any more
    rig.connected = True
    rig.reconciler.on_connected()
    assert rig.resumed_event.wait(WAIT)
    assert rig.attempts == [True, True, True, True] and rig.resumed == 1


def test_asking_while_an_attempt_runs_makes_another_follow() -> None:
    rig = Rig([])
    rig.during = lambda: rig.reconciler.request()  # e.g. events dropped meanwhile
    rig.reconciler.on_connected()
    rig.wait(2)
    assert len(rig.attempts) == 2 and rig.resumed == 1 and rig.reconciler.reconciled


def test_answers_of_a_replaced_connection_do_not_let_commands_in() -> None:
    rig = Rig([])
    resumed_during: list[int] = []

    def reconnect() -> None:
        rig.reconciler.on_connected()  # the connection was replaced during the attempt
        resumed_during.append(rig.resumed)

    rig.during = reconnect
    rig.reconciler.on_connected()
    assert rig.resumed_event.wait(WAIT)
    assert len(rig.attempts) == 2 and resumed_during == [0] and rig.resumed == 1


def test_a_second_look_follows_a_repair_and_keeps_the_worker_reconciled() -> None:
    rig = Rig([], second_look_s=0.05)
    rig.reconciler.on_connected()
    rig.wait(2)
    assert rig.reconciler.reconciled and rig.resumed == 1
    assert not rig.reconciler.wait_attempts(3, 0.3)  # the second look is routine: none follows it


def test_no_second_look_when_there_were_no_live_calls_to_compare() -> None:
    rig = Rig([], second_look_s=0.05)
    rig.live_calls = False
    rig.reconciler.on_connected()
    rig.wait(1)
    assert not rig.reconciler.wait_attempts(2, 0.3)
