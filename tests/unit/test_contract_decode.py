"""decode_command and is_expired: every way a command body can be refused, and accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callworker.contract import (
    MAX_BODY_BYTES,
    CallListCommand,
    CallStatus,
    ContractError,
    ErrorCode,
    FlashcallCreateCommand,
    HangupCommand,
    OriginateCommand,
    decode_command,
    encode_json,
    is_expired,
    reply_error,
)

CID = "6f1c2d3e-1111-4222-8333-444455556666"
CALL = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
ORDER = "9d8c7b6a-5f4e-4d3c-8b2a-190817161514"
T0 = datetime(2026, 11, 22, 10, 31, tzinfo=UTC)


def msg(command_type: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "command_id": CID, "type": command_type, **fields}


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


def refused(routing_key: str, body: bytes) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode_command(routing_key, body)
    return info.value


def assert_value_not_echoed(err: ContractError, value: Any) -> None:
    """Neither the message, the details nor the encoded reply repeat the bad value."""
    if not isinstance(value, str) or len(value) < 3:
        return
    assert value not in err.message
    assert value not in str(err.details)
    assert value not in str(err)
    encoded_error = encode_json(reply_error(err)["error"])
    assert value.encode("utf-8") not in encoded_error
    assert json.dumps(value)[1:-1].encode("utf-8") not in encoded_error


# --- bodies that are not a JSON object -------------------------------------------------

INVALID_BODIES = {
    "oversize": raw(msg("originate", destination_number="1234", pad="x" * MAX_BODY_BYTES)),
    "bad utf-8": b'{"v": 1, "command_id": "\xff\xfe"}',
    "not json": b"v=1&command_id=x",
    "truncated json": raw(msg("originate"))[:-1],
    "empty": b"",
    "json array": raw([msg("originate", destination_number="1234")]),
    "json string": raw("originate"),
    "json null": b"null",
    "nan constant": b'{"v": 1, "x": NaN}',
    "deep nesting": b"[" * 60000,
    "huge integer": b'{"v": ' + b"1" * 5000 + b"}",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_unreadable_body_is_invalid_message_with_nothing_echoed(body: bytes) -> None:
    err = refused("acme.originate", body)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert err.command_id is None
    assert err.command_type is None
    assert err.dead_letter


def test_body_of_exactly_max_size_is_accepted() -> None:
    body = raw(msg("originate", destination_number="1234"))
    body = body + b" " * (MAX_BODY_BYTES - len(body))
    assert len(body) == MAX_BODY_BYTES
    assert cast(OriginateCommand, decode_command("acme.originate", body)).destination_number == "1234"


# --- envelope: routing key, v, command_id, type ---------------------------------------

ORIG = {"destination_number": "1234"}
ENVELOPE_CASES = [
    # id, routing key, body, code, field, echoed command_id, echoed type
    ("unknown type", "acme.teleport", msg("teleport"), ErrorCode.UNKNOWN_COMMAND,
     "routing_key", CID, "teleport"),
    ("no type part", "acme", msg("originate", **ORIG), ErrorCode.UNKNOWN_COMMAND,
     "routing_key", CID, "originate"),
    ("type with suffix", "acme.originate.x", msg("originate", **ORIG),
     ErrorCode.UNKNOWN_COMMAND, "routing_key", CID, "originate"),
    ("uppercase tenant", "ACME.originate", msg("originate", **ORIG),
     ErrorCode.VALIDATION_ERROR, "routing_key", CID, "originate"),
    ("empty tenant", ".originate", msg("originate", **ORIG), ErrorCode.VALIDATION_ERROR,
     "routing_key", CID, "originate"),
    ("wildcard tenant", "*.originate", msg("originate", **ORIG), ErrorCode.VALIDATION_ERROR,
     "routing_key", CID, "originate"),
    ("tenant with newline", "acme\n.originate", msg("originate", **ORIG),
     ErrorCode.VALIDATION_ERROR, "routing_key", CID, "originate"),
    ("tenant of 64 chars", "a" * 64 + ".originate", msg("originate", **ORIG),
     ErrorCode.VALIDATION_ERROR, "routing_key", CID, "originate"),
    ("missing v", "acme.originate", {k: v for k, v in msg("originate", **ORIG).items()
                                     if k != "v"},
     ErrorCode.VALIDATION_ERROR, "v", CID, "originate"),
    ("v is 2", "acme.originate", {**msg("originate", **ORIG), "v": 2},
     ErrorCode.VALIDATION_ERROR, "v", CID, "originate"),
    ("v is a string", "acme.originate", {**msg("originate", **ORIG), "v": "1"},
     ErrorCode.VALIDATION_ERROR, "v", CID, "originate"),
    ("v is true", "acme.originate", {**msg("originate", **ORIG), "v": True},
     ErrorCode.VALIDATION_ERROR, "v", CID, "originate"),
    ("v is 1.0", "acme.originate", {**msg("originate", **ORIG), "v": 1.0},
     ErrorCode.VALIDATION_ERROR, "v", CID, "originate"),
    ("missing command_id", "acme.originate",
     {"v": 1, "type": "originate", **ORIG}, ErrorCode.VALIDATION_ERROR, "command_id",
     None, "originate"),
    ("command_id not a uuid", "acme.originate",
     {**msg("originate", **ORIG), "command_id": "order-42"}, ErrorCode.VALIDATION_ERROR,
     "command_id", None, "originate"),
    ("command_id with newline", "acme.originate",
     {**msg("originate", **ORIG), "command_id": CID + "\n"}, ErrorCode.VALIDATION_ERROR,
     "command_id", None, "originate"),
    ("command_id a number", "acme.originate",
     {**msg("originate", **ORIG), "command_id": 42}, ErrorCode.VALIDATION_ERROR,
     "command_id", None, "originate"),
    ("type mismatch", "acme.originate", msg("hangup", call_id=CALL),
     ErrorCode.VALIDATION_ERROR, "type", CID, "hangup"),
    ("type missing", "acme.originate", {"v": 1, "command_id": CID, **ORIG},
     ErrorCode.VALIDATION_ERROR, "type", CID, None),
    ("type not a string", "acme.originate", {**msg("originate", **ORIG), "type": 7},
     ErrorCode.VALIDATION_ERROR, "type", CID, None),
    ("type not echoed when unsafe", "acme.originate",
     {**msg("originate", **ORIG), "type": "originate\nx"}, ErrorCode.VALIDATION_ERROR,
     "type", CID, None),
]


@pytest.mark.parametrize(
    ("routing_key", "body", "code", "field", "echo_id", "echo_type"),
    [case[1:] for case in ENVELOPE_CASES],
    ids=[case[0] for case in ENVELOPE_CASES],
)
def test_envelope_errors(
    routing_key: str,
    body: dict[str, Any],
    code: ErrorCode,
    field: str,
    echo_id: str | None,
    echo_type: str | None,
) -> None:
    err = refused(routing_key, raw(body))
    assert err.code is code
    assert err.details["field"] == field
    assert err.command_id == echo_id
    assert err.command_type == echo_type
    assert err.dead_letter


def test_error_echoes_command_id_in_lowercase() -> None:
    err = refused("acme.originate", raw({**msg("originate"), "command_id": CID.upper()}))
    assert err.command_id == CID


# --- phone numbers ------------------------------------------------------------------

BAD_PHONES = {
    "trailing newline": "79991234567\n",
    "embedded newline": "7999\n1234567",
    "space": "7999 1234567",
    "bridge injection": "&bridge(user/1000)",
    "letters": "7999abc4567",
    "too short": "12",
    "too long": "1234567890123456",
    "brace": "{x=y}7999123",
    "comma": "79991234567,1000",
    "double plus": "++79991234567",
    "inner plus": "7999+1234567",
    "unicode digits": "٧٩٩٩١٢٣٤٥٦٧",
    "empty": "",
}
PHONE_FIELDS = [
    ("acme.originate", "originate", "destination_number", {}),
    ("acme.originate", "originate", "caller_id_number", {"destination_number": "1234"}),
    ("acme.flashcall.create", "flashcall.create", "phone", {}),
]


@pytest.mark.parametrize("value", BAD_PHONES.values(), ids=BAD_PHONES.keys())
@pytest.mark.parametrize(("routing_key", "command_type", "field", "others"), PHONE_FIELDS,
                         ids=[p[2] for p in PHONE_FIELDS])
def test_bad_phone_number_is_invalid_phone_number(
    routing_key: str, command_type: str, field: str, others: dict[str, Any], value: str
) -> None:
    err = refused(routing_key, raw(msg(command_type, **others, **{field: value})))
    assert err.code is ErrorCode.INVALID_PHONE_NUMBER
    assert err.details["field"] == field
    assert err.command_id == CID
    assert err.command_type == command_type
    assert err.dead_letter
    assert_value_not_echoed(err, value)


@pytest.mark.parametrize("value", [79991234567, None, True, ["79991234567"]])
def test_phone_of_wrong_json_type_is_invalid_phone_number(value: Any) -> None:
    err = refused("acme.originate", raw(msg("originate", destination_number=value)))
    assert err.code is ErrorCode.INVALID_PHONE_NUMBER
    assert err.details["field"] == "destination_number"


def test_flashcall_phone_needs_ten_digits() -> None:
    err = refused("acme.flashcall.create", raw(msg("flashcall.create", phone="+999123456")))
    assert err.code is ErrorCode.INVALID_PHONE_NUMBER
    ok = cast(
        FlashcallCreateCommand,
        decode_command("acme.flashcall.create", raw(msg("flashcall.create", phone="+9991234567"))),
    )
    assert ok.phone == "+9991234567"


def test_missing_required_phone_is_a_validation_error() -> None:
    err = refused("acme.originate", raw(msg("originate")))
    assert err.code is ErrorCode.VALIDATION_ERROR
    assert err.details["field"] == "destination_number"


@pytest.mark.parametrize("value", ["+123", "123", "123456789012345", "+123456789012345"])
def test_phone_number_limits_accepted(value: str) -> None:
    assert cast(OriginateCommand, decode_command(
        "acme.originate", raw(msg("originate", destination_number=value))
    )).destination_number == value


# --- other fields -------------------------------------------------------------------

OK_ORIG = {"destination_number": "79991234567"}
FIELD_CASES = [
    # id, routing key suffix, fields, field reported
    ("caller_id_name quote", "originate", {**OK_ORIG, "caller_id_name": 'Bob"s'}, "caller_id_name"),
    ("caller_id_name newline", "originate", {**OK_ORIG, "caller_id_name": "Bob\nX-Header: 1"},
     "caller_id_name"),
    ("caller_id_name apostrophe", "originate", {**OK_ORIG, "caller_id_name": "O'Hara"},
     "caller_id_name"),
    ("caller_id_name empty", "originate", {**OK_ORIG, "caller_id_name": ""}, "caller_id_name"),
    ("caller_id_name 65 chars", "originate", {**OK_ORIG, "caller_id_name": "a" * 65},
     "caller_id_name"),
    ("caller_id_name non-ascii", "originate", {**OK_ORIG, "caller_id_name": "Jos\u00e9"},
     "caller_id_name"),
    ("timeout_s too small", "originate", {**OK_ORIG, "timeout_s": 4}, "timeout_s"),
    ("timeout_s too large", "originate", {**OK_ORIG, "timeout_s": 121}, "timeout_s"),
    ("timeout_s as string", "originate", {**OK_ORIG, "timeout_s": "30"}, "timeout_s"),
    ("timeout_s as float", "originate", {**OK_ORIG, "timeout_s": 30.0}, "timeout_s"),
    ("timeout_s as bool", "originate", {**OK_ORIG, "timeout_s": True}, "timeout_s"),
    ("privacy as string", "originate", {**OK_ORIG, "privacy": "true"}, "privacy"),
    ("privacy as integer", "originate", {**OK_ORIG, "privacy": 1}, "privacy"),
    ("call_id not uuid", "originate", {**OK_ORIG, "call_id": "my-call"}, "call_id"),
    ("gateway with semicolon", "originate", {**OK_ORIG, "gateway": "gw1;rm -rf"}, "gateway"),
    ("gateway with slash", "originate", {**OK_ORIG, "gateway": "sofia/gw1"}, "gateway"),
    ("expires_at naive", "originate", {**OK_ORIG, "expires_at": "2026-11-22T10:31:00"},
     "expires_at"),
    ("expires_at epoch number", "originate", {**OK_ORIG, "expires_at": 1795000000}, "expires_at"),
    ("expires_at epoch string", "originate", {**OK_ORIG, "expires_at": "1795000000"}, "expires_at"),
    ("expires_at garbage", "originate", {**OK_ORIG, "expires_at": "tomorrow please"}, "expires_at"),
    ("hangup cause unknown", "hangup", {"call_id": CALL, "cause": "BECAUSE_I_SAID"}, "cause"),
    ("hangup cause lowercase", "hangup", {"call_id": CALL, "cause": "normal_clearing"},
     "cause"),
    ("hangup cause NONE", "hangup", {"call_id": CALL, "cause": "NONE"}, "cause"),
    ("hangup without call_id", "hangup", {}, "call_id"),
    ("hold as string", "hold", {"call_id": CALL, "hold": "false"}, "hold"),
    ("mute as integer", "mute", {"call_id": CALL, "muted": 0}, "muted"),
    ("call.get call_id newline", "call.get", {"call_id": CALL + "\n"}, "call_id"),
    ("call.list limit 0", "call.list", {"limit": 0}, "limit"),
    ("call.list limit 101", "call.list", {"limit": 101}, "limit"),
    ("call.list offset negative", "call.list", {"offset": -1}, "offset"),
    ("call.list unknown status", "call.list", {"status": "lost"}, "status"),
    ("call.list naive from", "call.list", {"from": "2026-11-22T10:31:00"}, "from"),
    ("cdr.list limit 1001", "cdr.list", {"limit": 1001}, "limit"),
    ("cdr.list to garbage", "cdr.list", {"to": "yesterday"}, "to"),
    ("flashcall code letters", "flashcall.create",
     {"phone": "79991234567", "code": "12ab"}, "code"),
    ("flashcall code 13 digits", "flashcall.create",
     {"phone": "79991234567", "code": "1" * 13}, "code"),
    ("flashcall code as number", "flashcall.create",
     {"phone": "79991234567", "code": 1234}, "code"),
    ("flashcall return_code string", "flashcall.create",
     {"phone": "79991234567", "return_code": "yes"}, "return_code"),
    ("verify id not uuid", "flashcall.verify", {"id": "order-1", "code": "1234"}, "id"),
    ("verify code missing", "flashcall.verify", {"id": ORDER}, "code"),
    ("verify code 33 digits", "flashcall.verify", {"id": ORDER, "code": "7" * 33}, "code"),
    ("verify code with plus", "flashcall.verify", {"id": ORDER, "code": "+74872601234"},
     "code"),
]


@pytest.mark.parametrize(
    ("command_type", "fields", "field"),
    [case[1:] for case in FIELD_CASES],
    ids=[case[0] for case in FIELD_CASES],
)
def test_field_validation_errors(command_type: str, fields: dict[str, Any], field: str) -> None:
    err = refused(f"acme.{command_type}", raw(msg(command_type, **fields)))
    assert err.code is ErrorCode.VALIDATION_ERROR
    assert err.details["field"] == field
    assert err.command_id == CID
    assert err.command_type == command_type
    assert err.dead_letter
    for item in err.details["errors"]:
        assert set(item) == {"field", "message"}
    for value in fields.values():
        assert_value_not_echoed(err, value)


def test_all_field_errors_are_listed_without_input_values() -> None:
    secret = "s3cr3t-value\nX"
    body = msg("originate", destination_number=secret, timeout_s="30", privacy="yes")
    err = refused("acme.originate", raw(body))
    assert err.code is ErrorCode.INVALID_PHONE_NUMBER
    assert [e["field"] for e in err.details["errors"]] == [
        "destination_number", "privacy", "timeout_s"
    ]
    assert all(set(e) == {"field", "message"} for e in err.details["errors"])
    assert_value_not_echoed(err, secret)


def test_first_error_decides_the_code() -> None:
    body = msg("originate", destination_number="1234", caller_id_name="x\ny", timeout_s=1,
               caller_id_number="bad")
    err = refused("acme.originate", raw(body))
    # Fields are validated in declaration order: caller_id_number comes first.
    assert err.code is ErrorCode.INVALID_PHONE_NUMBER
    assert err.details["field"] == "caller_id_number"


# --- accepted commands --------------------------------------------------------------

HAPPY = [
    ("originate", {"destination_number": "+79991234567"},
     {"destination_number": "+79991234567", "caller_id_number": None, "caller_id_name": None,
      "privacy": False, "call_id": None, "timeout_s": 30, "gateway": None}),
    ("originate",
     {"destination_number": "1000", "caller_id_number": "+74951234567",
      "caller_id_name": "Acme Support-1_x.", "privacy": True, "call_id": CALL.upper(),
      "timeout_s": 120, "gateway": "carrier.main-1"},
     {"caller_id_number": "+74951234567", "caller_id_name": "Acme Support-1_x.",
      "privacy": True, "call_id": CALL, "timeout_s": 120, "gateway": "carrier.main-1"}),
    ("hangup", {"call_id": CALL}, {"call_id": CALL, "cause": "NORMAL_CLEARING"}),
    ("hangup", {"call_id": CALL, "cause": "USER_BUSY"}, {"cause": "USER_BUSY"}),
    ("hold", {"call_id": CALL}, {"call_id": CALL, "hold": True}),
    ("hold", {"call_id": CALL, "hold": False}, {"hold": False}),
    ("mute", {"call_id": CALL}, {"call_id": CALL, "muted": True}),
    ("mute", {"call_id": CALL, "muted": False}, {"muted": False}),
    ("call.get", {"call_id": CALL}, {"call_id": CALL}),
    ("call.list", {}, {"from_": None, "to": None, "status": None, "limit": 50, "offset": 0}),
    ("call.list",
     {"from": "2026-11-22T10:00:00+03:00", "to": "2026-11-22T12:00:00Z",
      "status": "answered", "limit": 100, "offset": 7},
     {"from_": datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
      "to": datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
      "status": CallStatus.ANSWERED, "limit": 100, "offset": 7}),
    ("cdr.list", {}, {"from_": None, "to": None, "limit": 100, "offset": 0}),
    ("cdr.list", {"limit": 1000, "from": "2026-11-22T10:31:00.123456+00:00"},
     {"limit": 1000,
      "from_": datetime(2026, 11, 22, 10, 31, 0, 123456, tzinfo=UTC)}),
    ("flashcall.create", {"phone": "+79991234567"},
     {"phone": "+79991234567", "code": None, "return_code": False}),
    ("flashcall.create", {"phone": "79991234567", "code": "0042", "return_code": True},
     {"code": "0042", "return_code": True}),
    ("flashcall.verify", {"id": ORDER, "code": "1234"}, {"id": ORDER, "code": "1234"}),
    ("flashcall.verify", {"id": ORDER, "code": "74872601234"}, {"code": "74872601234"}),
]


@pytest.mark.parametrize(("command_type", "fields", "expected"), HAPPY,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HAPPY)])
def test_every_command_type_decodes_with_defaults(
    command_type: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    cmd = decode_command(f"acme.{command_type}", raw(msg(command_type, **fields)))
    assert cmd.type == command_type
    assert cmd.tenant == "acme"
    assert cmd.command_id == CID
    assert cmd.v == 1
    assert cmd.expires_at is None
    for name, value in expected.items():
        assert getattr(cmd, name) == value, name


def test_tenant_in_body_is_ignored() -> None:
    body = msg("originate", destination_number="1234", tenant="other-tenant")
    assert decode_command("acme.originate", raw(body)).tenant == "acme"


def test_invalid_tenant_in_body_is_ignored_too() -> None:
    body = msg("originate", destination_number="1234", tenant="NOT A TENANT\n")
    assert decode_command("acme-2_b.originate", raw(body)).tenant == "acme-2_b"


def test_unknown_fields_are_ignored() -> None:
    body = msg("hangup", call_id=CALL, reason="customer asked", priority=5)
    cmd = cast(HangupCommand, decode_command("acme.hangup", raw(body)))
    assert cmd.call_id == CALL
    assert not hasattr(cmd, "reason")


def test_from_is_read_only_under_its_wire_name() -> None:
    body = msg("call.list", from_="2026-11-22T10:31:00+00:00")
    assert cast(CallListCommand, decode_command("acme.call.list", raw(body))).from_ is None


def test_command_id_is_normalised_to_lowercase() -> None:
    body = {**msg("call.get", call_id=CALL), "command_id": CID.upper()}
    assert decode_command("acme.call.get", raw(body)).command_id == CID


def test_expires_at_is_kept_as_utc() -> None:
    body = msg("hangup", call_id=CALL, expires_at="2026-11-22T13:31:00+03:00")
    assert decode_command("acme.hangup", raw(body)).expires_at == T0


def test_tenant_of_63_chars_is_accepted() -> None:
    tenant = "a" + "b-_9" * 15 + "zz"
    assert len(tenant) == 63
    cmd = decode_command(f"{tenant}.call.get", raw(msg("call.get", call_id=CALL)))
    assert cmd.tenant == tenant


def test_error_reply_of_a_decode_failure_carries_the_contract_shape() -> None:
    err = refused("acme.originate", raw(msg("originate", destination_number="12")))
    reply = json.loads(encode_json(reply_error(err)))
    assert reply == {
        "v": 1,
        "command_id": CID,
        "type": "originate",
        "ok": False,
        "error": {
            "code": "INVALID_PHONE_NUMBER",
            "message": err.message,
            "details": {"field": "destination_number", "errors": err.details["errors"]},
        },
    }


# --- anything at all ------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(
    ["destination_number", "caller_id_number", "caller_id_name", "privacy", "call_id",
     "timeout_s", "gateway", "cause", "hold", "muted", "from", "to", "status", "limit",
     "offset", "phone", "code", "return_code", "id", "expires_at", "tenant"]
)


@settings(max_examples=300, deadline=None)
@given(
    routing_key=st.sampled_from(["acme." + t for t in (
        "originate", "hangup", "hold", "mute", "call.get", "call.list", "cdr.list",
        "flashcall.create", "flashcall.verify")]),
    fields=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6),
)
def test_any_object_decodes_or_fails_with_a_contract_error(
    routing_key: str, fields: dict[str, Any]
) -> None:
    body = raw(msg(routing_key.split(".", 1)[1], **fields))
    try:
        cmd = decode_command(routing_key, body)
    except ContractError as err:
        assert err.dead_letter
        encode_json(reply_error(err))
    else:
        assert cmd.tenant == "acme"


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_decode_or_fail_with_a_contract_error(body: bytes) -> None:
    with pytest.raises(ContractError):
        decode_command("acme.originate", body)


# --- expiry -------------------------------------------------------------------------

def _hangup(expires_at: datetime | None = None) -> Any:
    fields: dict[str, Any] = {"call_id": CALL}
    if expires_at is not None:
        fields["expires_at"] = expires_at.isoformat()
    return decode_command("acme.hangup", raw(msg("hangup", **fields)))


S = timedelta(seconds=1)
EXPIRY_CASES = [
    # id, expires_at, now, published_at, received_at, max_age, expired
    ("before expires_at", T0, T0 - S, None, T0 - 600 * S, 60.0, False),
    ("at expires_at", T0, T0, None, T0, 60.0, False),
    ("after expires_at", T0, T0 + S, None, T0, 60.0, True),
    ("expires_at overrides max age", T0 + 3600 * S, T0, T0 - 600 * S, T0 - 600 * S, 60.0,
     False),
    ("young by publish time", None, T0, T0 - 59 * S, T0, 60.0, False),
    ("old by publish time", None, T0, T0 - 61 * S, T0, 60.0, True),
    ("publish time wins over receipt", None, T0, T0 - 61 * S, T0 - S, 60.0, True),
    ("old by receipt", None, T0, None, T0 - 61 * S, 60.0, True),
    ("young by receipt", None, T0, None, T0 - 30 * S, 60.0, False),
    ("published in the future", None, T0, T0 + 30 * S, T0, 60.0, False),
]


@pytest.mark.parametrize(
    ("expires_at", "now", "published_at", "received_at", "max_age_s", "expired"),
    [case[1:] for case in EXPIRY_CASES],
    ids=[case[0] for case in EXPIRY_CASES],
)
def test_is_expired(
    expires_at: datetime | None,
    now: datetime,
    published_at: datetime | None,
    received_at: datetime,
    max_age_s: float,
    expired: bool,
) -> None:
    cmd = _hangup(expires_at)
    result = is_expired(
        cmd, now=now, published_at=published_at, received_at=received_at, max_age_s=max_age_s
    )
    assert result is expired


def test_is_expired_takes_naive_times_as_utc() -> None:
    cmd = _hangup(T0)
    naive_now = (T0 + S).replace(tzinfo=None)
    assert is_expired(cmd, now=naive_now, published_at=None, received_at=T0, max_age_s=60)
    cmd = _hangup()
    assert is_expired(
        cmd, now=T0, published_at=(T0 - 61 * S).replace(tzinfo=None), received_at=T0,
        max_age_s=60,
    )
