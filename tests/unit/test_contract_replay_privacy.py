"""call.events and privacy.* as the decoder reads them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from callworker.contract import CallEventsCommand, ContractError, PrivacyEraseCommand, decode_command


def decode(command_type: str, **fields: Any) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    return decode_command(f"acme.{command_type}", json.dumps(body).encode())


def refusal(command_type: str, **fields: Any) -> ContractError:
    with pytest.raises(ContractError) as refused:
        decode(command_type, **fields)
    return refused.value


def test_call_events_names_a_call_or_an_order_and_pages_by_seq() -> None:
    call_id = str(uuid.uuid4())
    command = decode("call.events", call_id=call_id.upper())
    assert isinstance(command, CallEventsCommand)
    assert (command.call_id, command.order_id, command.from_seq, command.limit) == (call_id, None, 1, 500)
    assert decode("call.events", order_id=call_id, from_seq=7, limit=1000).order_id == call_id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "order_id"),
        ({"call_id": "a", "order_id": None}, "call_id"),
        ({"call_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())}, "order_id"),
        ({"call_id": str(uuid.uuid4()), "from_seq": 0}, "from_seq"),
        ({"call_id": str(uuid.uuid4()), "from_seq": "2"}, "from_seq"),
        ({"call_id": str(uuid.uuid4()), "limit": 0}, "limit"),
        ({"call_id": str(uuid.uuid4()), "limit": 1001}, "limit"),
    ],
)
def test_call_events_refuses(fields: dict[str, Any], field: str) -> None:
    error = refusal("call.events", **fields)
    assert error.code == "VALIDATION_ERROR" and error.details["field"] == field


@pytest.mark.parametrize("command_type", ["privacy.export", "privacy.erase"])
def test_privacy_names_a_phone_number_or_a_user(command_type: str) -> None:
    by_phone = decode(command_type, phone_number="+15551230001")
    assert (by_phone.phone_number, by_phone.user_id) == ("+15551230001", None)
    by_user = decode(command_type, user_id="bob")
    assert (by_user.phone_number, by_user.user_id) == (None, "bob")
    assert isinstance(decode("privacy.erase", user_id="bob"), PrivacyEraseCommand)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({}, "VALIDATION_ERROR", "phone_number"),  # nothing to export is not a bad number
        ({"phone_number": "+15551230001", "user_id": "bob"}, "VALIDATION_ERROR", "phone_number"),
        ({"phone_number": "12"}, "INVALID_PHONE_NUMBER", "phone_number"),
        ({"phone_number": "+1 555"}, "INVALID_PHONE_NUMBER", "phone_number"),
        ({"user_id": "erased:0123abcd"}, "VALIDATION_ERROR", "user_id"),
    ],
)
@pytest.mark.parametrize("command_type", ["privacy.export", "privacy.erase"])
def test_privacy_refuses(command_type: str, fields: dict[str, Any], code: str, field: str) -> None:
    error = refusal(command_type, **fields)
    assert (error.code, error.details["field"]) == (code, field)
