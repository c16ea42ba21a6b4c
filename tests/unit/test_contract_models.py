"""The contract's vocabulary, command models built in code, replies and the JSON encoder."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pydantic
import pytest

from callworker.contract import (
    CALLER_ID_NAME_RE,
    COMMAND_TYPES,
    DEAD_LETTER_CODES,
    FLASHCALL_PHONE_RE,
    GATEWAY_RE,
    HANGUP_CAUSES,
    MAX_BODY_BYTES,
    PHONE_RE,
    TENANT_RE,
    TERMINAL_STATUSES,
    UUID_RE,
    CallListCommand,
    CallStatus,
    ContractError,
    ErrorCode,
    EventType,
    HangupCommand,
    OriginateCommand,
    encode_json,
    normalize_uuid,
    reply_error,
    reply_ok,
    to_iso,
    utcnow,
)

CID = "6f1c2d3e-1111-4222-8333-444455556666"

CONTRACT_ERROR_CODES = [
    "INVALID_MESSAGE", "VALIDATION_ERROR", "INVALID_PHONE_NUMBER", "UNKNOWN_COMMAND",
    "COMMAND_EXPIRED", "CALL_NOT_FOUND", "CALL_NOT_ACTIVE", "RATE_LIMITED", "PERMISSION_DENIED", "FREESWITCH_ERROR",
    "ORDER_NOT_FOUND", "ORDER_EXPIRED", "ORDER_CLOSED", "TOO_MANY_ATTEMPTS", "INTERNAL_ERROR",
]


def test_error_codes_are_exactly_the_contracts() -> None:
    assert [c.value for c in ErrorCode] == CONTRACT_ERROR_CODES
    assert all(ErrorCode[name] == name for name in CONTRACT_ERROR_CODES)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_only_malformed_invalid_unknown_or_expired_commands_are_dead_lettered(
    code: ErrorCode,
) -> None:
    dead = {"INVALID_MESSAGE", "VALIDATION_ERROR", "INVALID_PHONE_NUMBER", "UNKNOWN_COMMAND",
            "COMMAND_EXPIRED"}
    assert (code in DEAD_LETTER_CODES) is (code.value in dead)
    assert ContractError(code, "x").dead_letter is (code.value in dead)


def test_contract_error_carries_reply_fields() -> None:
    err = ContractError(
        "CALL_NOT_FOUND", "no such call", details={"call_id": CID}, command_id=CID,
        command_type="hangup",
    )
    assert err.code is ErrorCode.CALL_NOT_FOUND
    assert err.message == "no such call"
    assert err.details == {"call_id": CID}
    assert (err.command_id, err.command_type) == (CID, "hangup")
    assert str(err) == "CALL_NOT_FOUND: no such call"
    assert ContractError(ErrorCode.INTERNAL_ERROR, "boom").details == {}
    with pytest.raises(ValueError):
        ContractError("NOT_A_CODE", "x")


def test_call_statuses_and_terminal_ones() -> None:
    assert [s.value for s in CallStatus] == [
        "initiated", "ringing", "answered", "on_hold", "completed", "failed", "cancelled"
    ]
    assert TERMINAL_STATUSES == {"completed", "failed", "cancelled"}


ALLOW_LISTS = [
    # regex, accepted, refused
    (TENANT_RE, ["a", "acme", "0", "acme_2-b", "a" * 63],
     ["", "Acme", "-acme", "_a", "a.b", "a*", "a#", "a" * 64, "acme\n", "ac me"]),
    (PHONE_RE, ["123", "+123", "1" * 15, "+" + "1" * 15],
     ["12", "1" * 16, "+", "1 23", "123\n", "\n123", "12a", "+-123", "１２３"]),
    (FLASHCALL_PHONE_RE, ["1" * 10, "+" + "1" * 10, "1" * 15],
     ["1" * 9, "1" * 16, "+" + "1" * 9, "1" * 10 + "\n"]),
    (CALLER_ID_NAME_RE, ["A", "Acme Support", "a.b-c_d 9", "x" * 64],
     ["", "x" * 65, 'a"b', "a'b", "a\nb", "a\tb", "a,b", "a{b}", "a|b", "caf\u00e9", "ok\n"]),
    (GATEWAY_RE, ["gw", "carrier.main-1", "G_1", "a" * 64],
     ["", ".gw", "-gw", "gw/1", "gw 1", "gw\n", "a" * 65, "gw;x", "gw:5060"]),
    (UUID_RE, [CID, CID.upper()],
     [CID + "\n", CID[:-1], CID.replace("-", ""), "{" + CID + "}", "urn:uuid:" + CID,
      CID.replace("6", "g")]),
]


@pytest.mark.parametrize(("regex", "accepted", "refused"), ALLOW_LISTS,
                         ids=["tenant", "phone", "flashcall_phone", "caller_id_name",
                              "gateway", "uuid"])
def test_allow_lists(regex: re.Pattern[str], accepted: list[str], refused: list[str]) -> None:
    assert all(regex.match(v) for v in accepted), accepted
    assert not any(regex.match(v) for v in refused), refused
    assert "$" not in regex.pattern


def test_normalize_uuid() -> None:
    assert normalize_uuid(CID.upper()) == CID
    assert normalize_uuid(CID + "\n") is None


def test_hangup_causes_are_freeswitch_names() -> None:
    for name in ("NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER", "ORIGINATOR_CANCEL",
                 "ALLOTTED_TIMEOUT", "CALL_REJECTED", "UNALLOCATED_NUMBER", "STALE_DATE",
                 "BEARERCAPABILITY_NOTIMPL", "NO_PICKUP", "PROGRESS_TIMEOUT"):
        assert name in HANGUP_CAUSES
    assert "NONE" not in HANGUP_CAUSES
    assert all(re.fullmatch(r"[A-Z0-9_]+", name) for name in HANGUP_CAUSES)
    assert len(HANGUP_CAUSES) >= 79


def test_max_body_is_64_kib() -> None:
    assert MAX_BODY_BYTES == 64 * 1024


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2026, 11, 22, 10, 31, tzinfo=UTC), "2026-11-22T10:31:00.000000+00:00"),
        (datetime(2026, 11, 22, 13, 31, 0, 123456, tzinfo=timezone(timedelta(hours=3))),
         "2026-11-22T10:31:00.123456+00:00"),
        (datetime(2026, 11, 22, 10, 31, 0, 5), "2026-11-22T10:31:00.000005+00:00"),
    ],
    ids=["utc", "other offset", "naive taken as utc"],
)
def test_to_iso(dt: datetime, text: str) -> None:
    assert to_iso(dt) == text
    assert datetime.fromisoformat(text) == dt.replace(tzinfo=dt.tzinfo or UTC)


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)


# --- models built in code -------------------------------------------------------------

def test_command_types_map_names_to_models() -> None:
    assert set(COMMAND_TYPES) == {
        "originate", "hangup", "hold", "mute", "call.get", "call.list", "cdr.list",
        "flashcall.create", "flashcall.verify", "call.events", "privacy.export", "privacy.erase", "stats.get",
        "play", "dtmf", "record", "transfer",
    }
    for name, model in COMMAND_TYPES.items():
        assert model.model_fields["type"].default == name


def test_models_are_frozen() -> None:
    cmd = HangupCommand(v=1, command_id=CID, tenant="acme", call_id=CID)
    with pytest.raises(pydantic.ValidationError):
        cmd.cause = "USER_BUSY"  # type: ignore[misc]


def test_model_built_in_code_applies_the_same_rules() -> None:
    ok = OriginateCommand(v=1, command_id=CID.upper(), tenant="acme", destination_number="1000")
    assert ok.command_id == CID and ok.type == "originate" and ok.timeout_s == 30
    for bad in ({"destination_number": "1000\n"}, {"destination_number": "1000", "v": True},
                {"destination_number": "1000", "tenant": "Acme"},
                {"destination_number": "1000", "expires_at": datetime(2026, 1, 1)}):
        with pytest.raises(pydantic.ValidationError):
            fields: dict[str, Any] = {"v": 1, "command_id": CID, "tenant": "acme", **bad}
            OriginateCommand(**fields)


def test_call_list_takes_from_by_python_name_and_wire_name() -> None:
    t = datetime(2026, 11, 22, tzinfo=UTC)
    # By the Python name, as keyword arguments (the type checker knows only the alias "from").
    by_python_name: dict[str, Any] = {"v": 1, "command_id": CID, "tenant": "acme", "from_": t}
    by_name = CallListCommand(**by_python_name)
    by_alias = CallListCommand.model_validate(
        {"v": 1, "command_id": CID, "tenant": "acme", "from": "2026-11-22T00:00:00Z"}
    )
    assert by_name.from_ == by_alias.from_ == t
    assert by_alias.model_dump(by_alias=True)["from"] == t


# --- replies ------------------------------------------------------------------------

def test_reply_ok_shape() -> None:
    reply = reply_ok(CID, "originate", {"call_id": CID, "status": "initiated"})
    assert reply == {"v": 1, "command_id": CID, "type": "originate", "ok": True,
                     "result": {"call_id": CID, "status": "initiated"}}


def test_reply_error_shape() -> None:
    err = ContractError(ErrorCode.FREESWITCH_ERROR, "FreeSWITCH refused the command",
                        details={"reply": "-ERR NO_ROUTE_DESTINATION"}, command_id=CID,
                        command_type="originate")
    assert reply_error(err) == {
        "v": 1, "command_id": CID, "type": "originate", "ok": False,
        "error": {"code": "FREESWITCH_ERROR", "message": "FreeSWITCH refused the command",
                  "details": {"reply": "-ERR NO_ROUTE_DESTINATION"}},
    }


def test_reply_error_for_an_unreadable_message_has_null_ids() -> None:
    reply = reply_error(ContractError(ErrorCode.INVALID_MESSAGE, "body is not valid JSON"))
    assert reply["command_id"] is None and reply["type"] is None
    assert json.loads(encode_json(reply))["error"]["details"] == {}


# --- encode_json --------------------------------------------------------------------

def test_encode_json_round_trip() -> None:
    when = datetime(2026, 11, 22, 13, 31, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    obj = {
        "id": UUID(CID),
        "status": CallStatus.ON_HOLD,
        "type": EventType.CALL_ANSWERED,
        "at": when,
        "day": date(2026, 11, 22),
        "mos": Decimal("4.35"),
        "billsec": Decimal("12"),
        "list": (1, 2.5, None, True),
        "name": "Jos\u00e9 \u0416",
        ErrorCode.RATE_LIMITED: {"retry_after_s": 30},
    }
    body = encode_json(obj)
    assert b" " not in body.replace("Jos\u00e9 \u0416".encode(), b"")
    assert json.loads(body.decode("utf-8")) == {
        "id": CID,
        "status": "on_hold",
        "type": "call.answered",
        "at": "2026-11-22T10:31:00.123456+00:00",
        "day": "2026-11-22",
        "mos": 4.35,
        "billsec": 12,
        "list": [1, 2.5, None, True],
        "name": "Jos\u00e9 \u0416",
        "RATE_LIMITED": {"retry_after_s": 30},
    }
    assert "Jos\u00e9".encode() in body


def test_encode_json_writes_models_by_wire_name() -> None:
    cmd = CallListCommand.model_validate(
        {"v": 1, "command_id": CID, "tenant": "acme", "from_": datetime(2026, 11, 22, tzinfo=UTC)}
    )
    out = json.loads(encode_json(cmd))
    assert out["from"] == "2026-11-22T00:00:00.000000+00:00"
    assert "from_" not in out


def test_encode_json_never_writes_non_json() -> None:
    body = encode_json({"mos": float("nan"), "inf": float("inf"), "d": Decimal("NaN"),
                        "bad": "\ud800"})
    assert json.loads(body) == {"mos": None, "inf": None, "d": None, "bad": "\ud800"}
    body.decode("utf-8")


def test_encode_json_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        encode_json({"x": object()})
