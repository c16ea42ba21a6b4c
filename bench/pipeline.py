"""Figure: calls per second sustained end to end, with zero loss, PostgreSQL as the database.

Strategy: originates for numbers ending in 0200 (they answer without ringing, and the
far end hangs up after a second) are published at the offered rate for the whole window,
open loop. Each call then flows through everything: command intake, the journal's
commits, ``bgapi originate`` to the simulator, FreeSWITCH events back, the outbox
relay, and its events and reply at the driver; the CDR row lands in PostgreSQL.
The rate counts as sustained when nothing is lost (see ``stack.audit``) and the
pipeline did not fall behind: the end-to-end delay of the calls placed in the last
ten seconds (CDR event received minus originate published, minus the simulated
time to answer and talk time) stays under two seconds. When it does fall behind,
the CDRs completed per second over the window say what it can carry.
"""

from __future__ import annotations

import time

from bench.common import Options, Row, fmt_ms, log, median, percentile
from bench.driver import pace
from bench.profiling import maybe_profile
from bench.stack import Stack, audit, describe_cpu, reply_rtts_ms, stack, wait_for_cdrs

__all__ = ["NUMBER_FAR_END_HANGUP", "TARGET_CPS", "run"]

NUMBER_FAR_END_HANGUP = "+15551230200"
_RING, _ANSWER, _TALK = 0.1, 0.2, 1.0
_NOMINAL = _RING + _TALK  # ...0200 answers ring_delay after the INVITE, without a 180
_BEHIND_MS = 2000.0
TARGET_CPS = 300.0
_PARTS = ("worker", "simulator", "driver", "rabbitmq", "postgres", "other")


def _warm_up(st: Stack) -> None:
    """A few calls first, so connections, pools and caches are warm when timing starts."""
    ids = [st.driver.originate(NUMBER_FAR_END_HANGUP) for _ in range(20)]
    wait_for_cdrs(st.driver, ids, timeout=30)


def _one_run(options: Options, name: str, rate: float, seconds: float) -> dict[str, float | str | bool]:
    with stack(name, ring_delay=_RING, answer_delay=_ANSWER,
               far_end_hangup_after=_TALK, quiet_wait=options.quiet_wait, policy=options.policy) as st:
        _warm_up(st)
        ids: list[str] = []
        st.mark_cpu()
        started = time.time()
        with maybe_profile(options, st.worker.pid, name, seconds):
            pace(rate, seconds, lambda _i: ids.append(st.driver.originate(NUMBER_FAR_END_HANGUP)))
        window_end = time.time()
        cpu = st.cpu_share()
        last = wait_for_cdrs(st.driver, ids, timeout=max(60.0, seconds))
        result = audit(st, ids)
        return _figures(st, ids, started, window_end, last, result.describe(), result.clean, cpu)


def _figures(st: Stack, ids: list[str], started: float, window_end: float, last: float,
             loss: str, clean: bool, cpu: dict[str, float]) -> dict[str, float | str | bool]:
    calls = st.driver.calls
    delays, tail = [], []
    for call_id in ids:
        cdr = next((e for e in calls[call_id].events if e.type == "call.cdr"), None)
        if cdr is None:
            continue
        delay = (cdr.received - calls[call_id].sent - _NOMINAL) * 1000
        delays.append(delay)
        if calls[call_id].sent >= window_end - 10:
            tail.append(delay)
    # CDRs completed per second over the window, once the first calls could have ended.
    steady_from = started + _NOMINAL + 2
    done = sum(1 for call_id in ids for e in calls[call_id].events
               if e.type == "call.cdr" and steady_from <= e.received <= window_end)
    completed_rate = done / max(window_end - steady_from, 1e-9)
    tail_p99 = percentile(tail, 99)
    sustained = clean and tail_p99 < _BEHIND_MS
    rtts = reply_rtts_ms(st.driver, ids)
    figures: dict[str, float | str | bool] = {
        "offered": len(ids) / (window_end - started), "completed_rate": completed_rate,
        "delay_p50": percentile(delays, 50), "delay_p99": percentile(delays, 99),
        "tail_p99": tail_p99, "drain_s": max(0.0, last - window_end - _NOMINAL),
        "reply_p50": percentile(rtts, 50), "reply_p99": percentile(rtts, 99),
        **{f"cpu_{name}": share for name, share in cpu.items()},
        "loss": loss, "sustained": sustained,
    }
    log("cps run: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in figures.items()))
    return figures


def _capacity(options: Options, completed: float) -> tuple[float, int] | None:
    """The highest rate sustained in a few shorter runs, starting from what was completed."""
    rate = max(10.0, 10 * (completed // 10))
    for attempt in range(3):
        figures = _one_run(options, f"cps-capacity-{attempt + 1}", rate, options.cps_seconds / 2)
        if figures["sustained"]:
            return rate, attempt + 1
        rate = max(10.0, 10 * ((rate * 0.8) // 10))
    return None


def run(options: Options) -> list[Row]:
    runs = [_one_run(options, f"cps-{i + 1}", options.cps, options.cps_seconds)
            for i in range(options.runs)]

    def med(key: str) -> float:
        return median([float(r[key]) for r in runs])  # type: ignore[arg-type]

    sustained = sum(bool(r["sustained"]) for r in runs)
    met = sustained * 2 > len(runs) and options.cps >= TARGET_CPS
    offered = med("offered")
    if sustained * 2 > len(runs):
        result = f"{offered:,.0f} CPS sustained for {options.cps_seconds:g} s ({sustained}/{len(runs)} runs)"
        found = None
    else:
        result = (f"**not sustained** at {offered:,.0f} CPS offered ({sustained}/{len(runs)} runs): "
                  f"{med('completed_rate'):,.0f} CDRs/s completed")
        found = _capacity(options, med("completed_rate"))
        result += (f"; sustained: {found[0]:,.0f} CPS ({options.cps_seconds / 2:g} s run)"
                   if found else "; no lower rate tried was sustained")
    per_call = max(med("completed_rate"), 1e-9)
    notes = [
        "losses per run: " + "; ".join(str(r["loss"]) for r in runs),
        (f"end-to-end delay beyond the simulated call (CDR event received − originate published "
        f"− {_NOMINAL:g} s): p50 {fmt_ms(med('delay_p50'))}, p99 {fmt_ms(med('delay_p99'))}, "
        f"p99 of the last 10 s {fmt_ms(med('tail_p99'))}; drain after the window {med('drain_s'):.1f} s"),
        f"originate reply p50 {fmt_ms(med('reply_p50'))}, p99 {fmt_ms(med('reply_p99'))} under this load",
        describe_cpu({name: med(f"cpu_{name}") for name in _PARTS}),
        "CPU per completed call: " + ", ".join(
            f"{name} {1000 * med(f'cpu_{name}') / per_call:.1f} ms" for name in _PARTS[:-1]),
    ]
    return [Row(
        figure=f"calls per second sustained {options.cps_seconds:g} s end to end "
               "(originate → events stored and published → CDR), zero loss, PostgreSQL"
               + (", with a policy in force (limits checked and counted, calls rated)" if options.policy else ""),
        result=result, target=f"≥ {TARGET_CPS:g} CPS", met=met, notes=notes,
    )]
