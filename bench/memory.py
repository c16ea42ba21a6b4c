"""Figures: the worker's RSS with 10,000 live calls, and its RSS drift over a soak.

Strategy, live calls: originates for a number that answers and stays up, at a
steady rate until every call is answered (its call.answered event received);
then the worker's VmRSS is read. All calls are then hung up at once with
``hupall`` on the simulator's own event socket (a FreeSWITCH operator's move),
and the run must still end with zero loss: 10,000 terminal events and CDRs.

Soak: moderate traffic (calls answered and ended by the far end after two
seconds) for the soak duration, VmRSS sampled every few seconds. Drift is
(last sample − first sample after the warm-up) / first sample after the warm-up.
"""

from __future__ import annotations

import time

import gevent

from bench.common import Options, Row, fmt_mb, log, median
from bench.driver import EventSeen, pace
from bench.esl_samples import EslClient
from bench.infra import rss_bytes
from bench.pipeline import NUMBER_FAR_END_HANGUP
from bench.stack import audit, describe_cpu, stack, wait_for_cdrs

__all__ = ["NUMBER_STAYS_UP", "run_live_calls", "run_soak"]

NUMBER_STAYS_UP = "+15551230001"
_RSS_TARGET = 250 << 20
_DRIFT_TARGET = 0.05
_ORIGINATE_RATE = 100.0  # what the worker takes with room to spare
_SOAK_RATE = 50.0


def _hang_up_all(address: tuple[str, int]) -> str:
    client = EslClient(address)
    try:
        client.send("auth ClueCon")
        return client.send("api hupall NORMAL_CLEARING").body.decode().strip()
    finally:
        client.close()


def _live_run(options: Options, index: int) -> dict[str, float | str]:
    count = options.live_calls
    with stack(f"live-calls-{index}", ring_delay=0.1, answer_delay=0.2,
               quiet_wait=options.quiet_wait) as st:
        idle = rss_bytes(st.worker.pid)
        answered: set[str] = set()

        def on_event(call_id: str, event: EventSeen) -> None:
            if event.type == "call.answered":
                answered.add(call_id)

        st.driver.on_event = on_event
        ids: list[str] = []
        pace(_ORIGINATE_RATE, count / _ORIGINATE_RATE,
             lambda _i: ids.append(st.driver.originate(NUMBER_STAYS_UP)))
        deadline = time.monotonic() + 300
        while len(answered) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # let the last commits and publishes settle
        live = rss_bytes(st.worker.pid)
        simulator = rss_bytes(st.simulator.pid)
        health = st.worker.health()[1]
        log(f"live calls: {len(answered)} answered, worker says {health.get('live_calls')} live, "
            f"RSS {fmt_mb(live)} (idle {fmt_mb(idle)}), simulator {fmt_mb(simulator)}")
        st.mark_cpu()
        log(f"hupall: {_hang_up_all(st.simulator.address)}")
        wait_for_cdrs(st.driver, ids, timeout=300)
        cpu = describe_cpu(st.cpu_share())
        after = rss_bytes(st.worker.pid)
        peak = rss_bytes(st.worker.pid, "VmHWM")
        loss = audit(st, ids).describe()
    return {"live": float(live), "idle": float(idle), "after": float(after), "peak": float(peak),
            "answered": float(len(answered)), "simulator": float(simulator), "loss": loss,
            "cpu": cpu}


def run_live_calls(options: Options) -> list[Row]:
    runs = [_live_run(options, index + 1) for index in range(options.runs)]

    def med(key: str) -> float:
        return median([float(r[key]) for r in runs])

    count = options.live_calls
    return [Row(
        figure=f"worker RSS with {count:,} concurrent live calls",
        result=fmt_mb(med("live")), target=f"≤ {fmt_mb(_RSS_TARGET)}",
        met=med("live") <= _RSS_TARGET and med("answered") >= count,
        notes=[(f"idle after start {fmt_mb(med('idle'))}; after hupall and every CDR "
                f"{fmt_mb(med('after'))}, peak (VmHWM) {fmt_mb(med('peak'))}: the burst of "
                f"{count:,} hangups at once costs more than the live calls; simulator RSS "
                f"{fmt_mb(med('simulator'))}"),
               "losses per run (all hung up at once by hupall): "
               + "; ".join(str(r["loss"]) for r in runs),
               f"during the hupall burst, run 1: {runs[0]['cpu']}"],
    )]


def run_soak(options: Options) -> list[Row]:
    seconds = options.soak_seconds
    warm_up = min(60.0, seconds * 0.2)
    every = 5.0 if seconds >= 120 else 1.0
    samples: list[tuple[float, int]] = []
    with stack("soak", ring_delay=0.1, answer_delay=0.2, far_end_hangup_after=2.0,
               quiet_wait=options.quiet_wait) as st:
        def sample() -> None:
            while True:
                samples.append((time.monotonic(), rss_bytes(st.worker.pid)))
                gevent.sleep(every)

        sampler = gevent.spawn(sample)
        start = time.monotonic()
        st.mark_cpu()
        ids: list[str] = []
        pace(_SOAK_RATE, seconds, lambda _i: ids.append(st.driver.originate(NUMBER_FAR_END_HANGUP)))
        cpu = describe_cpu(st.cpu_share())
        sampler.kill()
        wait_for_cdrs(st.driver, ids, timeout=120)
        loss = audit(st, ids).describe()
    steady = [rss for t, rss in samples if t >= start + warm_up]
    first, last = steady[0], steady[-1]
    drift = (last - first) / first
    log(f"soak: first {fmt_mb(first)}, last {fmt_mb(last)}, max {fmt_mb(max(steady))}, "
        f"drift {drift:+.1%}, {loss}")
    return [Row(
        figure=f"worker RSS drift over a {seconds / 60:g}-minute soak "
               f"({_SOAK_RATE:g} CPS, calls of ~2.3 s)",
        result=f"{drift:+.1%} ({fmt_mb(first)} → {fmt_mb(last)})",
        target="drift ≤ 5 % over 10 min" + ("" if seconds >= 600 else f" (this run: {seconds:g} s)"),
        met=abs(drift) <= _DRIFT_TARGET,
        notes=[(f"single run; warm-up {warm_up:g} s excluded; RSS sampled every {every:g} s, "
                f"max {fmt_mb(max(steady))}; {loss}; {cpu}")],
    )]
