"""The builders of connected calls, against exact strings: the originate's time limit, comfort
silence and dialplan target, ``uuid_bridge`` and ``uuid_transfer``."""

from __future__ import annotations

import pytest

from callworker.errors import UnsafeValue
from callworker.esl import builders

A = "6f0c0a52-1d4e-4b8a-9c1f-000000000001"
B = "6f0c0a52-1d4e-4b8a-9c1f-000000000002"
HEAD = f"originate {{origination_uuid={A},originate_timeout=30,ignore_early_media=true,"


def originate(**extra: object) -> str:
    return builders.originate(call_id=A, destination_number="+15551230001", gateway="default",
                              timeout_s=30, **extra)  # type: ignore[arg-type]


def test_a_parked_call_hears_comfort_silence_and_ends_at_its_time_limit() -> None:
    assert originate(max_duration_s=14400) == (
        HEAD + "send_silence_when_idle=400,execute_on_answer='sched_hangup +14400 ALLOTTED_TIMEOUT'}"
        "sofia/gateway/default/+15551230001 &park()"
    )


def test_the_answered_call_goes_to_a_dialplan_extension() -> None:
    assert originate(max_duration_s=60, extension=("*98#", "ivr.main")) == (
        HEAD + "send_silence_when_idle=400,execute_on_answer='sched_hangup +60 ALLOTTED_TIMEOUT'}"
        "sofia/gateway/default/+15551230001 *98# XML ivr.main"
    )


def test_without_a_time_limit_nothing_is_added() -> None:
    assert originate() == HEAD[:-1] + "}sofia/gateway/default/+15551230001 &park()"


@pytest.mark.parametrize("seconds", [0, -1, 86401, True, 60.0, "60", "60 hupall"])
def test_a_time_limit_is_an_integer_from_1_to_86400(seconds: object) -> None:
    with pytest.raises(UnsafeValue):
        originate(max_duration_s=seconds)


@pytest.mark.parametrize(("extension", "context"), [
    ("9100 XML public", "default"), ("9100", "default public"), ("", "default"), ("x" * 33, "default"),
    ("9100\napi hupall", "default"), ("9100", "-default"), ("9100", ""), ("91{00}", "default"),
    ("9100", "default'"), ("&park()", "default"),
])
def test_a_target_outside_the_allow_lists_is_refused(extension: str, context: str) -> None:
    with pytest.raises(UnsafeValue):
        originate(extension=(extension, context))
    with pytest.raises(UnsafeValue):
        builders.uuid_transfer(A, extension, context)


def test_uuid_bridge_and_uuid_transfer() -> None:
    assert builders.uuid_bridge(A, B) == f"uuid_bridge {A} {B}"
    assert builders.uuid_transfer(A, "9100", "default") == f"uuid_transfer {A} 9100 XML default"
    with pytest.raises(UnsafeValue):
        builders.uuid_bridge(A, f"{B} -ERR")
    with pytest.raises(UnsafeValue):
        builders.uuid_bridge(A.upper(), B)
