"""The rules of a flash-call order: attempts, lock, expiry, supersede, closed orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callworker.calls.cdr import cdr_row
from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.contract import ErrorCode
from callworker.flashcall.orders import (
    CALL_OUTCOMES,
    ORDER_COLUMNS,
    Order,
    OrderStatus,
    close,
    expire_if_due,
    judge_attempt,
    phone_key,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def order(max_attempts: int = 3, ttl_s: int = 300) -> Order:
    return Order(
        order_id="0b8e7c1a-3f0e-4a43-9a35-5f0c1b2d3e4f", tenant="acme", node="fs1",
        phone="+15551234567", phone_key="15551234567", status=OrderStatus.OPEN,
        code_hmac="ab" * 32, code_len=4, cid_prefix="7487260", max_attempts=max_attempts,
        created_at=T0, expires_at=T0 + timedelta(seconds=ttl_s),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_right_code_verifies_and_closes_the_order() -> None:
    o = order()
    verdict = judge_attempt(o, matched=True, now=at(10))
    assert verdict.success and verdict.events == ("flashcall.verified",) and verdict.refusal is None
    assert o.status is OrderStatus.VERIFIED and o.closed_at == at(10)
    again = judge_attempt(o, matched=True, now=at(11))
    assert again.refusal is ErrorCode.ORDER_CLOSED and again.events == () and not again.success


def test_wrong_codes_count_down_then_lock() -> None:
    o = order(max_attempts=3)
    first, second = (judge_attempt(o, matched=False, now=at(1)) for _ in range(2))
    assert (first.attempts_left, second.attempts_left) == (2, 1)
    assert first.events == ("flashcall.rejected",) and o.is_open
    last = judge_attempt(o, matched=False, now=at(2))
    assert last.attempts_left == 0 and last.events == ("flashcall.rejected", "flashcall.locked")
    assert o.status is OrderStatus.LOCKED
    # Even the right code is refused now, and nothing more is published.
    after = judge_attempt(o, matched=True, now=at(3))
    assert after.refusal is ErrorCode.TOO_MANY_ATTEMPTS and after.events == ()


def test_a_right_code_after_wrong_ones_still_verifies() -> None:
    o = order()
    judge_attempt(o, matched=False, now=at(1))
    assert judge_attempt(o, matched=True, now=at(2)).success


def test_past_its_ttl_an_order_expires_once() -> None:
    o = order(ttl_s=300)
    verdict = judge_attempt(o, matched=True, now=at(300))
    assert verdict.refusal is ErrorCode.ORDER_EXPIRED and verdict.events == ("flashcall.expired",)
    again = judge_attempt(o, matched=True, now=at(301))
    assert again.refusal is ErrorCode.ORDER_EXPIRED and again.events == ()


def test_expire_if_due_only_touches_open_orders_past_their_ttl() -> None:
    o = order(ttl_s=300)
    assert expire_if_due(o, at(299)) is None and o.is_open
    assert expire_if_due(o, at(300)) == "flashcall.expired" and o.status is OrderStatus.EXPIRED
    assert expire_if_due(o, at(400)) is None
    verified = order()
    judge_attempt(verified, matched=True, now=at(1))
    assert expire_if_due(verified, at(400)) is None and verified.status is OrderStatus.VERIFIED


def test_a_superseded_order_is_closed_silently() -> None:
    o = order()
    verdict = judge_attempt(o, matched=True, now=at(5), superseded=True)
    assert verdict.refusal is ErrorCode.ORDER_CLOSED and verdict.events == ()
    assert o.status is OrderStatus.SUPERSEDED


def test_a_locked_order_stays_locked_past_its_ttl() -> None:
    o = order(max_attempts=1)
    judge_attempt(o, matched=False, now=at(1))
    assert judge_attempt(o, matched=True, now=at(1000)).refusal is ErrorCode.TOO_MANY_ATTEMPTS


def test_only_an_open_order_can_be_closed() -> None:
    o = order()
    assert close(o, OrderStatus.SUPERSEDED, at(1)) is None
    with pytest.raises(ValueError):
        close(o, OrderStatus.VERIFIED, at(2))
    with pytest.raises(ValueError):
        close(order(), OrderStatus.OPEN, at(2))


def test_the_row_round_trips_and_never_holds_the_code() -> None:
    o = order()
    o.call_id = "5f0c1b2d-3e4f-4a43-9a35-0b8e7c1a3f0e"
    row = o.row(at(1))
    assert row["status"] == "open" and row["updated_at"] == at(1)
    assert "code" not in row and set(ORDER_COLUMNS) <= set(row)
    assert Order.from_row(row) == o
    assert o.cid_mask == "7487260****"


def test_the_carrying_calls_events_tell_the_order() -> None:
    assert CALL_OUTCOMES["call.ringing"] == ("ringing", "flashcall.ringing")
    assert CALL_OUTCOMES["call.answered"] == ("answered", "flashcall.answered")
    assert CALL_OUTCOMES["call.failed"] == ("failed", "flashcall.failed")
    assert CALL_OUTCOMES["call.cancelled"] == ("dropped", None)
    assert "call.completed" not in CALL_OUTCOMES


def test_a_phone_is_its_digits() -> None:
    assert phone_key("+15551234567") == phone_key("15551234567") == "15551234567"


def test_a_flash_calls_cdr_shows_the_masked_caller_id() -> None:
    record = CallRecord(
        call_id="5f0c1b2d-3e4f-4a43-9a35-0b8e7c1a3f0e", tenant="acme", node="fs1",
        direction="outbound", status=Status.CANCELLED, initiated_at=T0,
        destination_number="+15551234567", caller_id_number="7487260****",
        flashcall_order_id="0b8e7c1a-3f0e-4a43-9a35-5f0c1b2d3e4f",
    )
    from_freeswitch = {"caller_id_number": "74872604821", "caller_id_name": "74872604821",
                       "destination_number": "+15551234567", "hangup_cause": "ORIGINATOR_CANCEL"}
    row = cdr_row(record, from_freeswitch, now=at(5))
    assert row["caller_id_number"] == "7487260****" and row["caller_id_name"] is None
    assert row["flashcall_order_id"] == record.flashcall_order_id
    record.flashcall_order_id = None  # an ordinary call keeps FreeSWITCH's caller ID
    assert cdr_row(record, from_freeswitch, now=at(5))["caller_id_number"] == "74872604821"
