"""Abuse limits: resend cooldown, caps per phone and per tenant, destination allow-list;
and the flash-call settings they are read from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from callworker.config import Settings
from callworker.flashcall.limits import DestinationPolicy, Limits, Refusal
from callworker.store import OrderHistory

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LIMITS = Limits(cooldown_s=30, window_s=3600, max_per_phone=3, max_per_tenant=100)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def history(last: float | None = None, phone: tuple[int, float] | None = None,
            tenant: tuple[int, float] | None = None) -> OrderHistory:
    return OrderHistory(
        last_for_phone=ago(last) if last is not None else None,
        phone_count=phone[0] if phone else 0, phone_oldest=ago(phone[1]) if phone else None,
        tenant_count=tenant[0] if tenant else 0, tenant_oldest=ago(tenant[1]) if tenant else None,
    )


def test_a_first_order_is_accepted() -> None:
    assert LIMITS.refusal(history(), NOW) is None


def test_inside_the_cooldown_the_retry_is_rounded_up() -> None:
    assert LIMITS.refusal(history(last=10.5, phone=(1, 10.5)), NOW) == Refusal("cooldown", 20)
    assert LIMITS.refusal(history(last=29.9, phone=(1, 29.9)), NOW) == Refusal("cooldown", 1)
    assert LIMITS.refusal(history(last=30, phone=(1, 30)), NOW) is None


def test_no_cooldown_when_it_is_zero() -> None:
    limits = Limits(cooldown_s=0, window_s=3600, max_per_phone=0, max_per_tenant=0)
    assert limits.refusal(history(last=0, phone=(50, 10), tenant=(5000, 10)), NOW) is None


def test_the_phone_cap_frees_when_the_oldest_order_leaves_the_window() -> None:
    assert LIMITS.refusal(history(last=100, phone=(3, 1000)), NOW) == Refusal("phone", 2600)
    assert LIMITS.refusal(history(last=100, phone=(2, 1000)), NOW) is None


def test_the_tenant_cap() -> None:
    refusal = LIMITS.refusal(history(tenant=(100, 3000)), NOW)
    assert refusal == Refusal("tenant", 600)


def test_when_the_next_order_for_the_phone_is_accepted() -> None:
    assert LIMITS.resend_after_s(history(), NOW) == 30
    # This order is the phone's third in the window: the next waits for the first to leave it.
    assert LIMITS.resend_after_s(history(last=100, phone=(2, 1000)), NOW) == 2600
    none = Limits(cooldown_s=0, window_s=3600, max_per_phone=0, max_per_tenant=0)
    assert none.resend_after_s(history(), NOW) == 0


def test_the_window_start() -> None:
    assert LIMITS.window_start(NOW) == ago(3600)


def test_destinations_must_match_a_pattern_in_full() -> None:
    policy = DestinationPolicy(["1555[0-9]{7}", "7[0-9]{10}"])
    assert policy.allows("+15551234567") and policy.allows("15551234567")
    assert policy.allows("+79161234567")
    assert not policy.allows("+4930123456789")
    assert not policy.allows("+155512345678")  # a longer number is not a match
    assert not DestinationPolicy([]).allows("+15551234567")


def test_flashcall_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLWORKER_FLASHCALL_CID_PREFIXES", "7487260, +7499000")
    monkeypatch.setenv("CALLWORKER_FLASHCALL_ALLOWED_DESTINATIONS", "1555[0-9]{7} 7[0-9]{10}")
    monkeypatch.setenv("CALLWORKER_FLASHCALL_HMAC_KEY", "a-very-secret-key")
    monkeypatch.setenv("CALLWORKER_FLASHCALL_CODE_LENGTH", "6")
    settings = Settings()
    assert settings.flashcall_cid_prefixes == ("7487260", "+7499000")
    assert settings.flashcall_allowed_destinations == ("1555[0-9]{7}", "7[0-9]{10}")
    assert settings.flashcall_code_length == 6
    assert "a-very-secret-key" not in repr(settings) and "a-very-secret-key" not in str(settings)


def test_flashcall_defaults() -> None:
    settings = Settings()
    assert (settings.flashcall_code_length, settings.flashcall_ttl_s) == (4, 300)
    assert (settings.flashcall_max_attempts, settings.flashcall_ring_ms) == (3, 2000)
    assert settings.flashcall_gateway is None
    assert DestinationPolicy(settings.flashcall_allowed_destinations).allows("+15551234567")


@pytest.mark.parametrize(
    "values",
    [
        {"flashcall_cid_prefixes": "12345678901", "flashcall_code_length": 5},  # 16 digits
        {"flashcall_cid_prefixes": "74a"},
        {"flashcall_cid_prefixes": ""},
        {"flashcall_allowed_destinations": "[0-9"},
        {"flashcall_code_length": 2},
    ],
)
def test_invalid_flashcall_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]
