"""A stats.get reply stays within the contract's 64 KiB."""

from __future__ import annotations

from callworker.calls.stats import within_reply
from callworker.contract import MAX_BODY_BYTES, encode_json
from callworker.store.stats import empty_group


def test_a_reply_that_fits_is_left_as_it_is() -> None:
    result = {"from": "a", "to": "b", "group_by": "hour", "groups": [empty_group(f"h{n}") for n in range(96)]}
    assert within_reply(result) is result and "has_more" not in result


def test_the_last_groups_are_left_out_when_it_would_not_fit() -> None:
    causes = {f"CAUSE_NUMBER_{n:03d}": n for n in range(60)}  # ~1.6 KB of causes per group
    groups = [{**empty_group(f"2026-11-{day:02d}"), "hangup_causes": causes} for day in range(1, 31)]
    groups += [{**empty_group(f"2026-12-{day:02d}"), "hangup_causes": causes} for day in range(1, 31)]
    fitted = within_reply({"from": "a", "to": "b", "group_by": "day", "groups": groups})
    assert fitted["has_more"] is True and 0 < len(fitted["groups"]) < len(groups)
    assert fitted["groups"] == groups[: len(fitted["groups"])]  # the first ones, in order
    reply = {"v": 1, "command_id": "0" * 36, "type": "stats.get", "ok": True, "result": fitted}
    assert len(encode_json(reply)) <= MAX_BODY_BYTES
