"""Figure: ``stats.get`` over a month of 1,000,000 calls and CDRs on PostgreSQL.

Strategy: a database of its own (dropped after), migrated, then filled in SQL
with ``INSERT ... SELECT generate_series``: one tenant's month of 1,000,000
calls and their CDRs (a call every 2.6 s; 60 % answered, the rest busy, no
answer, rejected, unroutable, failed or cancelled; four gateways; PDD, billsec,
MOS and cost varying with the row), 20,000 flash-call orders, and another
tenant's 200,000 calls in the same month that the tenant's figures must leave
out. After ``VACUUM ANALYZE``, ``call_stats`` (what ``stats.get`` runs) answers
for the whole month once per grouping as a warm-up, then ``runs`` times each;
the figure is the median, the target under a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from bench.common import Options, Row, log, median
from bench.infra import fresh_database, wait_for_quiet
from callworker.store import make_engine, migrate
from callworker.store.stats import GROUP_BY, call_stats

__all__ = ["run"]

TENANT = "bench"
OTHER = "other"
CALLS = 1_000_000
OTHER_CALLS = 200_000
ORDERS = 20_000
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)
_TARGET_S = 1.0

# Row i's outcome by i % 20: 12 answered, 2 busy, no answer, rejected, unroutable,
# a network failure, 2 cancelled.
_CALLS_SQL = """
INSERT INTO calls (call_id, tenant, node, direction, status, destination_number, initiated_at,
                   answered_at, ended_at, hangup_cause, last_seq, gateway, cost_cents, updated_at)
SELECT md5(CAST(:tenant AS text) || i)::uuid::text, CAST(:tenant AS text), 'fs1', 'outbound',
       CASE WHEN i % 20 < 12 THEN 'completed' WHEN i % 20 < 18 THEN 'failed' ELSE 'cancelled' END,
       '+1555' || lpad((i % 10000000)::text, 7, '0'),
       t, CASE WHEN i % 20 < 12 THEN t + interval '2 seconds' END, t + interval '90 seconds',
       (ARRAY['NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING',
              'NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING','NORMAL_CLEARING',
              'NORMAL_CLEARING','NORMAL_CLEARING','USER_BUSY','USER_BUSY','NO_ANSWER','CALL_REJECTED',
              'UNALLOCATED_NUMBER','NORMAL_TEMPORARY_FAILURE','ORIGINATOR_CANCEL','ORIGINATOR_CANCEL'])[i % 20 + 1],
       4, 'gw' || (i % 4), CASE WHEN i % 20 < 12 THEN (i * 7919) % 600 / 60 + 1 END, t
FROM (SELECT i, CAST(:start AS timestamptz) + i * CAST(:step AS interval) AS t
      FROM generate_series(CAST(0 AS bigint), :count - 1) AS i) AS g
"""
_CDRS_SQL = """
INSERT INTO cdrs (call_id, tenant, direction, destination_number, start_stamp, answer_stamp, end_stamp,
                  duration, billsec, hangup_cause, pdd_ms, rtp_audio_in_mos, node, gateway, cost_cents,
                  created_at)
SELECT call_id, tenant, 'outbound', destination_number, initiated_at + interval '50 milliseconds',
       answered_at, ended_at, 90,
       CASE WHEN answered_at IS NOT NULL THEN (row_number() OVER () * 7919) % 600 ELSE 0 END,
       hangup_cause, 200 + (row_number() OVER () * 104729) % 4000,
       CASE WHEN answered_at IS NOT NULL THEN 3.0 + (row_number() OVER () % 150) / 100.0 END,
       node, gateway, cost_cents, ended_at
FROM calls
"""
_ORDERS_SQL = """
INSERT INTO flashcall_orders (order_id, tenant, node, phone, phone_key, status, code_hmac, code_len,
                              cid_prefix, call_id, max_attempts, created_at, expires_at, updated_at, gateway)
SELECT md5('order' || i)::uuid::text, CAST(:tenant AS text), 'fs1', '+15550000000', '15550000000',
       CASE WHEN i % 10 < 7 THEN 'verified' ELSE 'expired' END, repeat('0', 64), 4, '+1555',
       md5(CAST(:tenant AS text) || (i * 50))::uuid::text, 3, t, t + interval '5 minutes', t, 'gw' || (i * 50 % 4)
FROM (SELECT i, CAST(:start AS timestamptz) + i * CAST(:step AS interval) AS t
      FROM generate_series(CAST(0 AS bigint), :count - 1) AS i) AS g
"""


def _fill(engine: Engine) -> None:
    started = time.monotonic()
    month_s = (MONTH_END - MONTH_START).total_seconds()
    with engine.begin() as conn:
        for tenant, count in ((TENANT, CALLS), (OTHER, OTHER_CALLS)):
            conn.execute(text(_CALLS_SQL), {"tenant": tenant, "start": MONTH_START, "count": count,
                                            "step": f"{month_s / count} seconds"})
        conn.execute(text(_CDRS_SQL))
        conn.execute(text(_ORDERS_SQL), {"tenant": TENANT, "start": MONTH_START, "count": ORDERS,
                                         "step": f"{month_s / ORDERS} seconds"})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    log(f"stats: {CALLS + OTHER_CALLS:,} calls and CDRs, {ORDERS:,} orders written in "
        f"{time.monotonic() - started:.0f} s")


def _timed(engine: Engine, tenant: str | None, group_by: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    groups = call_stats(engine, tenant=tenant, from_=MONTH_START, to=MONTH_END, group_by=group_by)
    elapsed = time.perf_counter() - started
    return elapsed, len(groups), sum(group["calls"] for group in groups)


def run(options: Options) -> list[Row]:
    rows: list[Row] = []
    with fresh_database() as url:
        migrate(url)
        engine = make_engine(url, pool_size=2)
        try:
            _fill(engine)
            if options.quiet_wait > 0:
                wait_for_quiet(options.quiet_wait)
            for tenant, label in ((TENANT, "one tenant"), (None, "every tenant (admin)")):
                for group_by in GROUP_BY:
                    _timed(engine, tenant, group_by)  # warm-up: the month's pages in the cache
                    times = []
                    for index in range(options.runs):
                        elapsed, groups, calls = _timed(engine, tenant, group_by)
                        log(f"stats [{label}, group_by {group_by}] run {index + 1}: {elapsed * 1000:,.0f} ms, "
                            f"{groups} groups, {calls:,} calls")
                        times.append(elapsed)
                    best = median(times)
                    rows.append(Row(
                        figure=f"stats.get over a month of 1,000,000 calls and CDRs, {label}, group_by {group_by}",
                        result=f"{best * 1000:,.0f} ms ({groups} groups, {calls:,} calls)",
                        target=f"< {_TARGET_S:g} s" if tenant is not None else "—",
                        met=best < _TARGET_S if tenant is not None else None,
                    ))
        finally:
            engine.dispose()
    rows[0].notes.append(
        f"PostgreSQL; the tenant's month of {CALLS:,} calls and CDRs and {ORDERS:,} flash-call orders, "
        f"beside another tenant's {OTHER_CALLS:,} calls; median of {options.runs} run(s) after a warm-up")
    return rows
