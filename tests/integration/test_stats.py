"""stats.get and admin.stats.get end to end: calls of two tenants through the simulator, the
worker on the real RabbitMQ and PostgreSQL, and the figures each tenant (and the operator) gets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.contract import to_iso
from callworker.simulator import Simulator
from callworker.store.stats import percentile
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration

# (number, gateway) -> the simulator's outcome (CONTRACT section 7)
ACME_CALLS = (("+15551230200", "gw1"), ("+15551230486", "gw1"), ("+15551230403", "gw2"))
BETA_CALLS = (("+15551230200", "gw1"), ("+15551230404", "gw1"))


@pytest.fixture
def gw_worker(simulator: Simulator, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    worker = start_worker(make_settings(simulator, pg_url, amqp_url, gateways=("gw1", "gw2"),
                                        default_gateway="gw1"))
    yield worker
    worker.stop()


@pytest.fixture
def tenants() -> tuple[str, str]:
    return f"sa{uuid.uuid4().hex[:8]}", f"sb{uuid.uuid4().hex[:8]}"


@pytest.fixture
def watcher(amqp_url: str, tenants: tuple[str, str]) -> Iterator[Probe]:
    probe = Probe(amqp_url, event_bindings=tuple(f"{t}.#" for t in tenants))
    yield probe
    probe.close()


def ask(probe: Probe, route_tenant: str, command_type: str, /, **fields: Any) -> Received:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    probe.publish_raw(f"{route_tenant}.{command_type}", json.dumps(body).encode())
    return probe.reply_for(body["command_id"], timeout=15)


def place(probe: Probe, tenant: str, number: str, gateway: str) -> list[Received]:
    """One call to its end; its events up to the CDR."""
    reply = ask(probe, tenant, "originate", destination_number=number, gateway=gateway)
    assert reply["ok"], reply
    return probe.call_events_until_terminal(reply["result"]["call_id"], timeout=20)


def cancelled(probe: Probe, tenant: str) -> list[Received]:
    """A call that rings (…0180) hung up by the caller before anyone answers."""
    reply = ask(probe, tenant, "originate", destination_number="+15551230180", gateway="gw2")
    call_id = reply["result"]["call_id"]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.ringing", timeout=10)
    assert ask(probe, tenant, "hangup", call_id=call_id)["ok"]
    return probe.call_events_until_terminal(call_id, timeout=20)


def expected(calls: list[list[Received]]) -> dict[str, Any]:
    """The figures of these calls, from what their events said."""
    cdrs = [events[-1]["data"] for events in calls]
    terminal = [next(e["type"] for e in events if e["type"] in ("call.completed", "call.failed",
                                                                 "call.cancelled")) for events in calls]
    answered = [c for c in cdrs if c["answer_stamp"] is not None]
    causes: dict[str, int] = {}
    for cdr in cdrs:
        causes[cdr["hangup_cause"]] = causes.get(cdr["hangup_cause"], 0) + 1
    effective = len(answered) + sum(
        1 for c in cdrs if c["answer_stamp"] is None and c["hangup_cause"] in ("USER_BUSY", "CALL_REJECTED"))
    pdds = sorted(float(c["pdd_ms"]) for c in cdrs if c["pdd_ms"] is not None)
    p50 = percentile(pdds, 0.5)
    return {
        "calls": len(calls), "answered": len(answered), "failed": terminal.count("call.failed"),
        "cancelled": terminal.count("call.cancelled"),
        "asr": round(len(answered) / len(calls), 4), "ner": round(effective / len(calls), 4),
        "acd_s": round(sum(c["billsec"] for c in answered) / len(answered), 2) if answered else None,
        "pdd_ms_p50": None if p50 is None else round(p50, 1),
        "minutes": round(sum(c["billsec"] or 0 for c in cdrs) / 60, 2), "hangup_causes": causes,
    }


def figures(group: dict[str, Any]) -> dict[str, Any]:
    return {name: group[name] for name in ("calls", "answered", "failed", "cancelled", "asr", "ner", "acd_s",
                                           "pdd_ms_p50", "minutes", "hangup_causes")}


def test_each_tenant_sees_its_own_figures_and_the_operator_sees_both(
    gw_worker: Worker, watcher: Probe, tenants: tuple[str, str]
) -> None:
    acme, beta = tenants
    start = datetime.now(UTC) - timedelta(seconds=1)
    acme_calls = [place(watcher, acme, number, gw) for number, gw in ACME_CALLS] + [cancelled(watcher, acme)]
    beta_calls = [place(watcher, beta, number, gw) for number, gw in BETA_CALLS]
    window = {"from": to_iso(start), "to": to_iso(datetime.now(UTC) + timedelta(seconds=1))}

    got = ask(watcher, acme, "stats.get", **window)
    assert got["ok"], got
    [group] = got["result"]["groups"]
    want = expected(acme_calls)
    # answered, busy, rejected, cancelled: ASR 1/4, NER (answered + busy + rejected) 3/4
    assert (want["answered"], want["failed"], want["cancelled"], want["ner"]) == (1, 2, 1, 0.75)
    assert group["key"] == "all" and figures(group) == want
    assert group["flashcall"] == {"orders": 0, "verified": 0, "conversion": None}

    # Nothing of beta's reaches acme, even when acme names beta in the body.
    assert ask(watcher, acme, "stats.get", tenant=beta, **window)["result"]["groups"] == [group]
    [beta_group] = ask(watcher, beta, "stats.get", **window)["result"]["groups"]
    assert figures(beta_group) == expected(beta_calls)

    # The operator picks one tenant, or sees every tenant together.
    picked = ask(watcher, "admin", "stats.get", tenant=beta, **window)
    assert picked["ok"] and picked["result"]["groups"] == [beta_group]
    [every] = ask(watcher, "admin", "stats.get", **window)["result"]["groups"]
    assert every["calls"] >= 6 and every["answered"] >= 2
    assert every["hangup_causes"].get("USER_BUSY", 0) >= 1 and every["hangup_causes"].get("UNALLOCATED_NUMBER", 0) >= 1

    # acme's calls by gateway, hour and day.
    by_gateway = ask(watcher, acme, "stats.get", group_by="gateway", **window)["result"]["groups"]
    assert [(g["key"], g["calls"], g["answered"], g["failed"], g["cancelled"]) for g in by_gateway] == [
        ("gw1", 2, 1, 1, 0), ("gw2", 2, 0, 1, 1)]
    for grouping, key_of in (("hour", lambda t: t.strftime("%Y-%m-%dT%H:00:00+00:00")),
                             ("day", lambda t: t.strftime("%Y-%m-%d"))):
        groups = ask(watcher, acme, "stats.get", group_by=grouping, **window)["result"]["groups"]
        keys = {key_of(datetime.fromisoformat(events[0]["occurred_at"])) for events in acme_calls}
        assert {g["key"] for g in groups} == keys
        assert sum(g["calls"] for g in groups) == 4 and sum(g["answered"] for g in groups) == 1


def test_a_malformed_range_is_refused_and_the_default_is_the_last_day(
    gw_worker: Worker, watcher: Probe, tenants: tuple[str, str]
) -> None:
    acme, _beta = tenants
    backwards = ask(watcher, acme, "stats.get", **{"from": "2026-11-22T10:00:00+00:00",
                                                   "to": "2026-11-22T09:00:00+00:00"})
    assert backwards["ok"] is False and backwards["error"]["code"] == "VALIDATION_ERROR"
    assert backwards["error"]["details"]["field"] == "to"
    too_long = ask(watcher, acme, "stats.get", group_by="hour", **{"from": "2026-11-01T00:00:00+00:00",
                                                                   "to": "2026-11-22T00:00:00+00:00"})
    assert too_long["error"]["code"] == "VALIDATION_ERROR" and "96 hours" in too_long["error"]["message"]
    unknown = ask(watcher, acme, "stats.get", group_by="week")
    assert unknown["error"]["details"]["field"] == "group_by"
    # Another tenant cannot run the operator's variant, and the operator cannot name itself.
    assert ask(watcher, acme, "admin.stats.get")["error"]["code"] == "UNKNOWN_COMMAND"
    assert ask(watcher, "admin", "stats.get", tenant="admin")["error"]["details"]["field"] == "tenant"

    place(watcher, acme, "+15551230403", "gw1")
    default = ask(watcher, acme, "stats.get")
    assert default["ok"], default
    start, end = (datetime.fromisoformat(default["result"][k]) for k in ("from", "to"))
    assert end - start == timedelta(hours=24) and abs(datetime.now(UTC) - end) < timedelta(seconds=30)
    assert default["result"]["groups"][0]["hangup_causes"] == {"CALL_REJECTED": 1}
