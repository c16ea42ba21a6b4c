"""stats.get and admin.stats.get as decoded from the wire: the range, the grouping, whose figures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callworker.contract import ContractError, StatsGetCommand, decode_command, stats_window
from callworker.contract.policy import AdminStatsGetCommand

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


def decode(routing_key: str, **fields: Any) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": routing_key.split(".", 1)[1], **fields}
    return decode_command(routing_key, json.dumps(body).encode())


def refusal(routing_key: str, **fields: Any) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode(routing_key, **fields)
    return caught.value


def test_a_tenants_stats_are_its_own_whatever_the_body_names() -> None:
    command = decode("acme.stats.get", tenant="beta", group_by="hour")
    assert type(command) is StatsGetCommand and command.tenant == "acme" and command.group_by == "hour"
    assert not hasattr(command, "target")


def test_the_operator_names_one_tenant_or_none() -> None:
    one = decode("admin.stats.get", tenant="beta")
    every = decode("admin.stats.get")
    assert type(one) is AdminStatsGetCommand and one.target == "beta"
    assert every.target is None and every.group_by == "none"
    assert refusal("admin.stats.get", tenant="admin").details["field"] == "tenant"
    assert refusal("acme.admin.stats.get").code.value == "UNKNOWN_COMMAND"


def test_the_default_range_is_the_24_hours_up_to_now() -> None:
    command = decode("acme.stats.get")
    assert command.window(NOW) == (NOW - timedelta(hours=24), NOW)
    only_to = decode("acme.stats.get", to="2026-11-22T10:00:00+01:00")
    assert only_to.window(NOW) == (datetime(2026, 11, 21, 9, 0, tzinfo=UTC), datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"from": "2026-11-22T10:00:00Z", "to": "2026-11-22T10:00:00Z"}, "to", "after from"),
    ({"from": "2026-11-22T00:00:00Z", "to": "2026-11-26T00:00:01Z", "group_by": "hour"}, "to", "96 hours"),
    ({"from": "2026-08-01T00:00:00Z", "to": "2026-11-22T00:00:00Z", "group_by": "day"}, "to", "92 days"),
    ({"from": "2025-01-01T00:00:00Z", "to": "2026-11-22T00:00:00Z"}, "to", "366 days"),
    ({"group_by": "week"}, "group_by", "'none', 'gateway', 'hour' or 'day'"),
    ({"from": "2026-11-22"}, "from", "offset"),
    ({"from": "2999-01-01T00:00:00Z"}, "to", "after from"),
])
def test_a_range_or_grouping_out_of_bounds_is_refused(fields: dict[str, Any], field: str, words: str) -> None:
    error = refusal("acme.stats.get", **fields)
    assert error.code.value == "VALIDATION_ERROR" and error.details["field"] == field
    assert words in str(error)


def test_the_longest_ranges_are_accepted() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for group_by, span in (("hour", timedelta(hours=96)), ("day", timedelta(days=92)),
                           ("none", timedelta(days=366)), ("gateway", timedelta(days=366))):
        assert stats_window(start, start + span, group_by, NOW) == (start, start + span)
        with pytest.raises(ValueError):
            stats_window(start, start + span + timedelta(microseconds=1), group_by, NOW)
