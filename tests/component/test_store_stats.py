"""stats.get's figures from stored calls, CDRs and flash-call orders (SQLite here; PostgreSQL in
tests/integration/test_stats_postgres.py runs the same `StatsContract`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from callworker.store import make_engine, migrate_engine
from callworker.store.models import CALLS, CDRS, FLASHCALL_ORDERS
from callworker.store.stats import call_stats, percentile
from tests.component.test_store import call_row, cdr_row

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FROM, TO = T0 - timedelta(hours=1), T0 + timedelta(hours=3)


def _ended(tenant: str, at: datetime, *, status: str, cause: str | None, gateway: str | None,
           answered: bool = False, billsec: int = 0, pdd_ms: int | None = None, mos: float | None = None,
           cost: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    call_id = str(uuid.uuid4())
    answer = at + timedelta(seconds=2) if answered else None
    call = call_row(call_id, tenant=tenant, status=status, initiated_at=at, answered_at=answer,
                    ended_at=None if cause is None else at + timedelta(seconds=billsec + 3),
                    hangup_cause=cause, gateway=gateway)
    if cause is None:
        return call, None  # still up: no CDR yet
    cdr = cdr_row(call_id, tenant=tenant, start_stamp=at, answer_stamp=answer, billsec=billsec,
                  hangup_cause=cause, pdd_ms=pdd_ms, rtp_audio_in_mos=mos, cost_cents=cost, gateway=gateway)
    return call, cdr


def _order(tenant: str, at: datetime, status: str, call_id: str | None, gateway: str | None = None) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()), "tenant": tenant, "node": "fs1", "phone": "+15551230000",
        "phone_key": "15551230000", "status": status, "code_hmac": "0" * 64, "code_len": 4,
        "cid_prefix": "+1555", "call_id": call_id, "max_attempts": 3, "created_at": at,
        "expires_at": at + timedelta(minutes=5), "updated_at": at, "gateway": gateway,
    }


def seed(engine: Engine) -> None:
    """acme: 7 calls in the window (2 answered, busy, rejected, a failure, a cancel, one up);
    beta: one answered call; acme also has calls just outside the window."""
    rows = [
        _ended("acme", T0, status="completed", cause="NORMAL_CLEARING", gateway="gw1", answered=True,
               billsec=60, pdd_ms=800, mos=4.5, cost=10),
        _ended("acme", T0 + timedelta(hours=1, minutes=5), status="completed", cause="NORMAL_CLEARING",
               gateway="gw2", answered=True, billsec=30, pdd_ms=1200, mos=3.5, cost=5),
        _ended("acme", T0 + timedelta(minutes=5), status="failed", cause="USER_BUSY", gateway="gw1", pdd_ms=400),
        _ended("acme", T0 + timedelta(minutes=6), status="failed", cause="CALL_REJECTED", gateway="gw1"),
        _ended("acme", T0 + timedelta(minutes=7), status="cancelled", cause="ORIGINATOR_CANCEL", gateway="gw2"),
        _ended("acme", T0 + timedelta(minutes=8), status="failed", cause="NORMAL_TEMPORARY_FAILURE", gateway="gw1"),
        _ended("acme", T0 + timedelta(minutes=9), status="ringing", cause=None, gateway="gw1"),
        _ended("beta", T0 + timedelta(minutes=1), status="completed", cause="NORMAL_CLEARING", gateway="gw1",
               answered=True, billsec=120, pdd_ms=100, mos=4.0, cost=50),
        _ended("acme", FROM - timedelta(microseconds=1), status="completed", cause="NORMAL_CLEARING",
               gateway="gw1", answered=True, billsec=600, pdd_ms=9000, mos=1.0, cost=999),
        _ended("acme", TO, status="failed", cause="USER_BUSY", gateway="gw1", pdd_ms=9000),
    ]
    calls = [call for call, _cdr in rows]
    cdrs = [cdr for _call, cdr in rows if cdr is not None]
    failure_call = calls[5]["call_id"]
    orders = [
        _order("acme", T0, "verified", failure_call, "gw1"),
        _order("acme", T0 + timedelta(minutes=1), "expired", failure_call, "gw1"),
        _order("acme", T0 + timedelta(minutes=2), "open", None),
        _order("beta", T0, "verified", None),
        _order("acme", TO, "verified", None),
    ]
    with engine.begin() as conn:
        conn.execute(CALLS.insert(), calls)
        conn.execute(CDRS.insert(), cdrs)
        conn.execute(FLASHCALL_ORDERS.insert(), orders)


ACME = {
    "key": "all", "calls": 7, "answered": 2, "failed": 3, "cancelled": 1,
    "asr": 0.2857, "ner": 0.5714,  # (2 answered + busy + rejected) / 7
    "acd_s": 45.0, "pdd_ms_p50": 800.0, "pdd_ms_p95": 1160.0, "minutes": 1.5, "cost_cents": 15, "avg_mos": 4.0,
    "hangup_causes": {"NORMAL_CLEARING": 2, "CALL_REJECTED": 1, "NORMAL_TEMPORARY_FAILURE": 1,
                      "ORIGINATOR_CANCEL": 1, "USER_BUSY": 1},
    "flashcall": {"orders": 3, "verified": 1, "conversion": 0.3333},
}


class StatsContract:
    """Subclasses provide `engine`: a migrated, empty database per test."""

    def test_a_tenant_sees_exactly_its_own_figures_of_the_window(self, engine: Engine) -> None:
        seed(engine)
        assert call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="none") == [ACME]

    def test_another_tenant_sees_only_its_own(self, engine: Engine) -> None:
        seed(engine)
        [beta] = call_stats(engine, tenant="beta", from_=FROM, to=TO, group_by="none")
        assert (beta["calls"], beta["answered"], beta["minutes"], beta["cost_cents"]) == (1, 1, 2.0, 50)
        assert beta["hangup_causes"] == {"NORMAL_CLEARING": 1}
        assert beta["flashcall"] == {"orders": 1, "verified": 1, "conversion": 1.0}

    def test_every_tenant_together_when_none_is_named(self, engine: Engine) -> None:
        seed(engine)
        [both] = call_stats(engine, tenant=None, from_=FROM, to=TO, group_by="none")
        assert (both["calls"], both["answered"], both["cost_cents"]) == (8, 3, 65)
        assert both["hangup_causes"]["NORMAL_CLEARING"] == 3
        assert both["flashcall"]["orders"] == 4

    def test_grouped_by_hour_of_the_call(self, engine: Engine) -> None:
        seed(engine)
        groups = call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="hour")
        assert [(g["key"], g["calls"], g["answered"], g["minutes"]) for g in groups] == [
            ("2026-11-22T10:00:00+00:00", 6, 1, 1.0),
            ("2026-11-22T11:00:00+00:00", 1, 1, 0.5),
        ]
        assert groups[1]["pdd_ms_p50"] == 1200.0 and groups[1]["asr"] == 1.0

    def test_grouped_by_day(self, engine: Engine) -> None:
        seed(engine)
        groups = call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="day")
        assert groups == [{**ACME, "key": "2026-11-22"}]

    def test_grouped_by_gateway(self, engine: Engine) -> None:
        seed(engine)
        groups = call_stats(engine, tenant="acme", from_=FROM, to=TO, group_by="gateway")
        by_key = {g["key"]: g for g in groups}
        assert list(by_key) == ["gw1", "gw2", None]  # an order stored without its gateway
        assert (by_key["gw1"]["calls"], by_key["gw1"]["answered"], by_key["gw1"]["failed"]) == (5, 1, 3)
        assert by_key["gw1"]["ner"] == 0.6 and by_key["gw1"]["flashcall"]["orders"] == 2
        assert (by_key["gw2"]["calls"], by_key["gw2"]["cancelled"], by_key["gw2"]["acd_s"]) == (2, 1, 30.0)
        assert by_key[None]["calls"] == 0 and by_key[None]["flashcall"]["orders"] == 1

    def test_an_empty_range_answers_zeros_and_nulls(self, engine: Engine) -> None:
        seed(engine)
        later = TO + timedelta(days=1)
        [empty] = call_stats(engine, tenant="acme", from_=later, to=later + timedelta(hours=1), group_by="none")
        assert empty["calls"] == 0 and empty["asr"] is None and empty["acd_s"] is None
        assert empty["pdd_ms_p95"] is None and empty["minutes"] == 0.0 and empty["hangup_causes"] == {}
        assert call_stats(engine, tenant="acme", from_=later, to=later + timedelta(hours=1), group_by="hour") == []
        assert call_stats(engine, tenant="nobody", from_=FROM, to=TO, group_by="gateway") == []


class TestStatsSqlite(StatsContract):
    @pytest.fixture
    def engine(self) -> Iterator[Engine]:
        engine = make_engine("sqlite://")
        migrate_engine(engine)
        yield engine
        engine.dispose()


def test_percentiles_interpolate_as_postgresql_does() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([100.0, 200.0, 300.0, 400.0], 0.5) == 250.0
    assert percentile([400.0, 800.0, 1200.0], 0.95) == pytest.approx(1160.0)
