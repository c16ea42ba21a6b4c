"""Cost and quality are computed once, when the CDR is stored, and kept wherever the call is shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.calls.service import Delivered
from callworker.store import get_call, get_cdr, make_engine, migrate
from tests.component.test_call_limits import Rig, build, command
from tests.component.test_call_service import fs_event, sync

POLICY = """\
tenants:
  acme:
    rates:
      - {prefix: "+1", cents_per_minute: 1, increment_s: 60}
      - {prefix: "+1555", cents_per_minute: "0.5", increment_s: 6, min_s: 30}
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'cost.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    rig = build(engine, path)
    yield rig
    rig.journal.stop()
    engine.dispose()


def end_call(rig: Rig, call_id: str, billsec: int, mos: str | None) -> None:
    headers = {"variable_hangup_cause": "NORMAL_CLEARING", "variable_billsec": str(billsec),
               "variable_answer_uepoch": "1700000001000000", "variable_start_uepoch": "1700000000000000"}
    if mos is not None:
        headers["variable_rtp_audio_in_mos"] = mos
    rig.pump.handle(fs_event("CHANNEL_ANSWER", call_id))
    rig.pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **headers))
    sync(rig.journal)


def events_of(rig: Rig, call_id: str) -> dict[str, dict[str, Any]]:
    bodies = [json.loads(item.body) for item in rig.published if item.exchange == "callworker.events"]
    return {b["type"]: b for b in bodies if b.get("call_id") == call_id}


@pytest.mark.parametrize(
    ("number", "billsec", "mos", "cost", "quality"),
    [
        ("+15551230001", 31, "4.45", 1, 4.5),  # 36 s at half a cent a minute: 0.3 -> 1
        ("+15551230001", 0, None, 0, None),  # unanswered: nothing billed, no MOS
        ("+12125550100", 61, "3.14", 2, 3.1),  # the shorter prefix: two whole minutes at 1 cent
        ("+442071234567", 61, "4.0", None, 4.0),  # no rate: cost unknown
    ],
)
def test_cost_and_quality_are_in_the_cdr_the_call_and_its_events(
    rig: Rig, number: str, billsec: int, mos: str | None, cost: int | None, quality: float | None
) -> None:
    reply = rig.originate(destination_number=number, user_id="u1")
    call_id = reply["result"]["call_id"]
    live = rig.service.execute(command("acme", "call.get", call_id=call_id), Delivered(None, None))["result"]
    assert (live["cost_cents"], live["quality_score"], live["user_id"]) == (None, None, "u1")
    end_call(rig, call_id, billsec, mos)
    cdr = get_cdr(rig.engine, "acme", call_id)
    call = get_call(rig.engine, "acme", call_id)
    assert cdr is not None and call is not None
    assert (cdr["cost_cents"], cdr["quality_score"], cdr["user_id"]) == (cost, quality, "u1")
    assert (call["cost_cents"], call["quality_score"]) == (cost, quality)
    events = events_of(rig, call_id)
    terminal = events["call.completed"]["data"]
    assert (terminal["cost_cents"], terminal["quality_score"], terminal["user_id"]) == (cost, quality, "u1")
    cdr_event = events["call.cdr"]["data"]
    assert (cdr_event["cost_cents"], cdr_event["quality_score"], cdr_event["user_id"]) == (cost, quality, "u1")
    listed = rig.service.execute(command("acme", "call.list"), Delivered(None, None))["result"]["calls"]
    assert [(c["call_id"], c["cost_cents"], c["quality_score"]) for c in listed] == [(call_id, cost, quality)]
    cdrs = rig.service.execute(command("acme", "cdr.list"), Delivered(None, None))["result"]["cdrs"]
    assert [(c["cost_cents"], c["quality_score"]) for c in cdrs] == [(cost, quality)]


def test_a_rate_changed_later_leaves_the_stored_cost_alone(rig: Rig) -> None:
    call_id = rig.originate(destination_number="+15551230001")["result"]["call_id"]
    end_call(rig, call_id, 60, "4.2")
    rig.policy.set("acme", None, {"rates": [{"prefix": "+1", "cents_per_minute": 100}]})
    cdr = get_cdr(rig.engine, "acme", call_id)
    assert cdr is not None and cdr["cost_cents"] == 1  # 60 s at 0.5 cents, as computed at the end
    call_id = rig.originate(destination_number="+15551230001")["result"]["call_id"]
    end_call(rig, call_id, 60, None)
    cdr = get_cdr(rig.engine, "acme", call_id)
    assert cdr is not None and cdr["cost_cents"] == 100


