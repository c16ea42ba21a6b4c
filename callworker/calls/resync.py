"""When to reconcile with FreeSWITCH, and trying again until it succeeds.

Strategy: one greenlet runs rounds of reconciliation, one at a time. A round is
asked for after every ESL (re)connect and after FreeSWITCH events had to be
dropped; when such a round had live calls to compare (``attempt`` returns true),
a second look follows a few seconds later, since FreeSWITCH's channel list lags
its core by about a second both ways (the second look ends a call whose channel
was still listed although gone, catches up one that was not listed yet, and
settles calls too young to judge the first time).
Asking while a round runs makes another follow it, as the one running may have
read FreeSWITCH's answers before the reason to ask.

A round tries until an attempt succeeds, waiting a jittered, capped backoff
between attempts and logging each failure (the database down, FreeSWITCH's answer
unreadable, ...); it gives up when the ESL connection drops, since the next
connect asks for a new round. ``reconciled`` is true once an attempt made on the
current connection has succeeded with no further round pending; the first such
attempt after a connect calls ``on_reconciled`` (the worker then takes commands
again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import gevent.event

from callworker.backoff import Backoff
from callworker.errors import CallworkerError

__all__ = ["Reconciler"]

log = logging.getLogger("callworker.reconcile")


class Reconciler:
    """Runs ``attempt`` when asked, again until it succeeds, while FreeSWITCH is connected."""

    def __init__(
        self,
        attempt: Callable[[], bool],
        *,
        connected: Callable[[], bool],
        on_reconciled: Callable[[], None],
        backoff: Backoff | None = None,
        second_look_s: float = 3.0,
    ) -> None:
        self._attempt = attempt
        self._connected = connected
        self._on_reconciled = on_reconciled
        self._backoff = backoff if backoff is not None else Backoff(0.2, 5.0)
        self._second_look_s = second_look_s
        self.reconciled = False
        self.succeeded = 0  # attempts that succeeded
        self.failed = 0  # attempts that failed
        self._wanted = False
        self._repair = False  # what is wanted closes a known gap
        self._connection = 0  # counts (re)connects
        self._resumed = 0  # the connection on_reconciled was last called for
        self._interrupt = gevent.event.Event()  # cuts a wait between attempts short
        self._progress = gevent.event.Event()  # set after every attempt
        self._runner: gevent.Greenlet | None = None
        self._later: gevent.Greenlet | None = None

    # ------------------------------------------------------------------ asking

    def on_connected(self) -> None:
        self._connection += 1
        self._interrupt.set()
        self.request()

    def on_disconnected(self) -> None:
        self.reconciled = False
        self._interrupt.set()

    def request(self, *, routine: bool = False) -> None:
        """Reconcile soon (after the round running, if any).

        Not ``routine`` (a connect, lost events): a gap is known, ``reconciled``
        is false until it is closed, and a second look follows. ``routine``: that
        second look.
        """
        self._wanted = True
        if not routine:
            self._repair = True
            self.reconciled = False
        if self._runner is None or self._runner.dead:
            self._runner = gevent.spawn(self._run)

    def stop(self) -> None:
        for greenlet in (self._runner, self._later):
            if greenlet is not None:
                greenlet.kill(block=False)

    def wait_attempts(self, count: int, timeout: float) -> bool:
        """Until ``count`` attempts in all (failed or not) have ended; False on timeout."""
        with gevent.Timeout(timeout, False):
            while self.succeeded + self.failed < count:
                self._progress.clear()
                if self.succeeded + self.failed < count:
                    self._progress.wait()
            return True
        return False

    def _look_again_later(self) -> None:
        connection = self._connection

        def again() -> None:
            if connection == self._connection and self._connected():
                self.request(routine=True)

        if self._later is not None:
            self._later.kill(block=False)
        self._later = gevent.spawn_later(self._second_look_s, again)

    # ------------------------------------------------------------------ running

    def _run(self) -> None:
        while self._wanted and self._connected():
            repair, self._repair = self._repair, False
            connection, look_again = self._round()
            if connection is None or not self._connected():
                self._repair = self._repair or repair
                return  # FreeSWITCH dropped: the next connect asks again
            if connection != self._connection:
                self._repair = True
                continue  # answers of a connection since replaced; its own round follows
            if not self._wanted:
                self.reconciled = True
            if repair and look_again:
                self._look_again_later()
            if self._resumed != connection:
                self._resumed = connection
                self._on_reconciled()

    def _round(self) -> tuple[int | None, bool]:
        """Attempts until one succeeds: the connection it ran on (None once FreeSWITCH
        drops) and whether it asked for a second look."""
        self._backoff.reset()
        attempt = 0
        while self._connected():
            attempt += 1
            connection = self._connection
            self._wanted = False  # what was asked so far, this attempt covers
            self._interrupt.clear()
            try:
                look_again = bool(self._attempt())
            except Exception as exc:  # noqa: BLE001 - every failure is tried again
                self.failed += 1
                self._progress.set()
                self._wanted = True
                if not self._connected():
                    log.info("reconciliation stopped, FreeSWITCH dropped: %s", exc)
                    return None, False
                delay = self._backoff.next()
                if isinstance(exc, CallworkerError):
                    log.warning("reconciliation with FreeSWITCH failed (attempt %d): %s; "
                                "trying again in %.1f s", attempt, exc, delay)
                else:
                    log.exception("reconciliation with FreeSWITCH failed (attempt %d); "
                                  "trying again in %.1f s", attempt, delay)
                self._interrupt.wait(delay)  # a (re)connect or drop cuts it short
                continue
            self.succeeded += 1
            self._progress.set()
            if attempt > 1:
                log.warning("reconciliation with FreeSWITCH succeeded at attempt %d", attempt)
            return connection, look_again
        return None, False
