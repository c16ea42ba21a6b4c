"""What a flash call still up needs after a restart or reconnect lost its timers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.flashcall.watch import Rearm, rearm_plan

RING_S = 2.5


def call(status: Status, *, order: str | None = "order-1", hangup_requested: bool = False) -> CallRecord:
    return CallRecord(
        call_id="7f1c2a3e-0000-4000-8000-000000000001", tenant="acme", node="fs1",
        direction="outbound", status=status, initiated_at=datetime(2026, 11, 22, tzinfo=UTC),
        flashcall_order_id=order, hangup_requested=hangup_requested,
    )


def test_a_ringing_flash_call_is_given_its_ring_time_again() -> None:
    assert rearm_plan(call(Status.RINGING), RING_S) == Rearm(RING_S)


def test_a_drop_marked_but_never_sent_is_sent_at_once_as_a_cancel() -> None:
    assert rearm_plan(call(Status.RINGING, hangup_requested=True), RING_S) == Rearm(0.0, "ORIGINATOR_CANCEL")


@pytest.mark.parametrize("status", [Status.ANSWERED, Status.ON_HOLD])
def test_an_answered_flash_call_is_hung_up_at_once(status: Status) -> None:
    assert rearm_plan(call(status, hangup_requested=True), RING_S) == Rearm(0.0, "NORMAL_CLEARING")
    assert rearm_plan(call(status), RING_S) == Rearm(0.0, "NORMAL_CLEARING")


def test_a_call_that_has_not_rung_waits_for_its_ringing_event() -> None:
    assert rearm_plan(call(Status.INITIATED), RING_S) is None


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_an_ended_call_needs_nothing(status: Status) -> None:
    assert rearm_plan(call(status, hangup_requested=True), RING_S) is None


def test_an_ordinary_call_is_never_dropped() -> None:
    assert rearm_plan(call(Status.RINGING, order=None), RING_S) is None
    assert rearm_plan(call(Status.ANSWERED, order=None, hangup_requested=True), RING_S) is None
