"""The admin commands and user_id as the decoder reads them (CONTRACT sections 3 and 8)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from callworker.contract import ContractError, decode_command
from callworker.contract.policy import PolicyGetCommand, PolicySetCommand


def decode(routing_key: str, **fields: Any) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": routing_key.split(".", 1)[1], **fields}
    return decode_command(routing_key, json.dumps(body).encode())


def refusal(routing_key: str, **fields: Any) -> ContractError:
    with pytest.raises(ContractError) as refused:
        decode(routing_key, **fields)
    return refused.value


@pytest.mark.parametrize("command_type", ["policy.get", "policy.set"])
@pytest.mark.parametrize("tenant", ["acme", "admins", "xadmin", "default"])
def test_admin_commands_do_not_exist_for_any_other_tenant(tenant: str, command_type: str) -> None:
    error = refusal(f"{tenant}.{command_type}", tenant=tenant, calls_per_minute=1)
    # The same answer as for a type that exists nowhere: nothing says admin commands exist.
    unknown = refusal(f"{tenant}.no.such", tenant=tenant)
    assert (error.code, error.message, error.details) == (unknown.code, unknown.message, unknown.details)
    assert error.code == "UNKNOWN_COMMAND" and error.dead_letter


@pytest.mark.parametrize("command_type", ["originate", "call.list", "flashcall.create", "hangup"])
def test_the_admin_tenant_runs_admin_commands_only(command_type: str) -> None:
    assert refusal(f"admin.{command_type}").code == "UNKNOWN_COMMAND"


def test_policy_get_names_a_tenant_or_none() -> None:
    assert decode("admin.policy.get").target is None
    command = decode("admin.policy.get", tenant="acme")
    assert isinstance(command, PolicyGetCommand) and command.tenant == "admin" and command.target == "acme"
    assert refusal("admin.policy.get", tenant="Not A Tenant").details["field"] == "tenant"


def test_policy_set_stores_what_it_names_and_null_removes() -> None:
    command = decode("admin.policy.set", tenant="acme", calls_per_minute=None, max_concurrent=3,
                     rates=[{"prefix": "+44", "cents_per_minute": 2.5, "increment_s": 60}])
    assert isinstance(command, PolicySetCommand) and command.target == "acme" and command.user_id is None
    assert command.changes() == {
        "calls_per_minute": None, "max_concurrent": 3,
        "rates": [{"prefix": "+44", "cents_per_minute": "2.5", "increment_s": 60, "min_s": 0}],
    }
    user = decode("admin.policy.set", tenant="acme", user_id="bob", can_call=False)
    assert user.user_id == "bob" and user.changes() == {"can_call": False}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tenant": "acme", "token": "t"}, "token"),
        ({"tenant": "acme", "admin_token": "t"}, "admin_token"),
        ({"tenant": "acme", "token": None}, "token"),
        ({"tenant": "admin", "can_call": True}, "tenant"),
        ({"can_call": True}, "tenant"),
        ({"tenant": "acme", "calls_per_day": 0}, "calls_per_day"),
        ({"tenant": "acme", "calls_per_day": "5"}, "calls_per_day"),
        ({"tenant": "acme", "can_call": "yes"}, "can_call"),
        ({"tenant": "acme", "user_id": "bob", "rates": []}, "rates"),
        ({"tenant": "acme", "rates": [{"prefix": 44, "cents_per_minute": 1}]}, "rates.0.prefix"),
        ({"tenant": "acme", "rates": [{"prefix": "+44", "cents_per_minute": 1, "extra": 1}]}, "rates.0.extra"),
        ({"tenant": "acme", "user_id": "no spaces"}, "user_id"),
    ],
)
def test_policy_set_refuses_tokens_and_bad_values(fields: dict[str, Any], field: str) -> None:
    error = refusal("admin.policy.set", **fields)
    assert error.code == "VALIDATION_ERROR" and error.details["field"] == field, error
    assert "secret" not in error.message


@pytest.mark.parametrize("user_id", ["alice", "a.b@c-d_e", "x" * 64])
def test_every_command_may_name_its_user(user_id: str) -> None:
    assert decode("acme.call.list", user_id=user_id).user_id == user_id
    assert decode("acme.originate", destination_number="+15551230001", user_id=user_id).user_id == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 65, "erased:abc", "a b", "a/b", 5, None])
def test_a_user_id_outside_the_allow_list_is_refused(user_id: Any) -> None:
    if user_id is None:
        assert decode("acme.call.list", user_id=None).user_id is None
        return
    error = refusal("acme.call.list", user_id=user_id)
    assert error.code == "VALIDATION_ERROR" and error.details["field"] == "user_id"
