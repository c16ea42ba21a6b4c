"""Figures: FreeSWITCH event time → subscriber, and command published → reply, at 100 per second.

Strategy: one load per run serves both figures: originates at 100 per second for
the window (so 100 commands/s and 100 CPS; numbers ending in 0200, answered and
ended by the far end). Event latency compares each event's ``occurred_at`` (the
simulator's Event-Date-Timestamp, exact rather than in FreeSWITCH's 20 ms steps, for
call.answered, call.completed and call.cdr) with the time the driver received it, on the same machine clock.
The command round trip is originate published → reply received. In the same run,
against the same broker and vhost, the reference: a bare pika responder
(``echo_proc.py``) answering requests of the same size at the same rate.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time

from bench.common import Options, Row, fmt_ms, log, median, percentile
from bench.driver import pace
from bench.infra import REPO
from bench.pipeline import NUMBER_FAR_END_HANGUP
from bench.profiling import maybe_profile
from bench.stack import (
    Stack,
    audit,
    describe_cpu,
    event_delays_ms,
    reply_rtts_ms,
    slow_episodes,
    stack,
    wait_for_cdrs,
)

__all__ = ["run"]

FS_EVENTS = ("call.answered", "call.completed", "call.cdr")
_EVENT_P99_TARGET = 50.0
_REPLY_P99_TARGET = 20.0


def _reference_rtts(st: Stack, rate: float, seconds: float) -> list[float]:
    """Raw pika request/reply at ``rate`` for ``seconds`` through a bare responder."""
    queue = f"bench.echo.{st.tenant}"
    echo = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "echo_proc.py"), "--url", st.amqp_url,
         "--queue", queue, "--reply-size", "160"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo responder did not start")
        body = json.dumps({"v": 1, "command_id": "0" * 36, "type": "originate",
                           "destination_number": NUMBER_FAR_END_HANGUP, "call_id": "0" * 36,
                           "caller_id_number": "+15550000000", "caller_id_name": "bench"}).encode()
        keys: list[str] = []
        pace(rate, seconds, lambda _i: keys.append(st.driver.request(queue, body)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(st.driver.calls[k].reply is None for k in keys):
            time.sleep(0.05)
        return reply_rtts_ms(st.driver, keys)
    finally:
        echo.terminate()
        echo.wait(10)


class GcPauses:
    """The driver's own garbage-collection pauses while it stamps receipts.

    A pause of the driver delays every stamp taken after it and would be counted as
    the worker's latency; knowing the longest tells whether a tail is the driver's.
    """

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.count = 0
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.count += 1
        self.longest_ms = max(self.longest_ms, (time.perf_counter() - self._started) * 1000)


class CommitProbe:
    """``commit_probe.py`` beside the load: the machine's own commit latency meanwhile."""

    def __init__(self, database_url: str) -> None:
        url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "commit_probe.py"), "--url", url],
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the commit probe did not start")

    def stop(self) -> dict[str, float]:
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        return dict(json.loads(out.strip().splitlines()[-1]))


def _one_run(options: Options, index: int) -> dict[str, float | str]:
    rate, seconds = options.latency_rate, options.latency_seconds
    with stack(f"latency-{index}", ring_delay=0.1, answer_delay=0.2, far_end_hangup_after=1.0,
               quiet_wait=options.quiet_wait) as st:
        warm = [st.driver.originate(NUMBER_FAR_END_HANGUP) for _ in range(20)]
        wait_for_cdrs(st.driver, warm, timeout=30)
        reference = _reference_rtts(st, rate, min(seconds, 10.0))
        ids: list[str] = []
        probe = CommitProbe(st.database_url)
        st.mark_cpu()
        with GcPauses() as driver_gc:
            with maybe_profile(options, st.worker.pid, f"latency-{index}", seconds):
                pace(rate, seconds, lambda _i: ids.append(st.driver.originate(NUMBER_FAR_END_HANGUP)))
            cpu = st.cpu_share()
            commits = probe.stop()
            wait_for_cdrs(st.driver, ids, timeout=60)
        loss = audit(st, ids).describe()
        events = event_delays_ms(st.driver, ids, FS_EVENTS)
        replies = reply_rtts_ms(st.driver, ids)
        episodes = slow_episodes(st.driver, ids, _REPLY_P99_TARGET)
    figures: dict[str, float | str] = {
        "event_p50": percentile(events, 50), "event_p99": percentile(events, 99),
        "reply_p50": percentile(replies, 50), "reply_p99": percentile(replies, 99),
        "ref_p50": percentile(reference, 50), "ref_p99": percentile(reference, 99),
        "events": float(len(events)), "loss": loss, "cpu": describe_cpu(cpu),
        "commit_p50": commits["p50"], "commit_p99": commits["p99"], "commit_max": commits["max"],
        "episodes": episodes, "driver_gc_max": driver_gc.longest_ms, "driver_gcs": float(driver_gc.count),
    }
    log("latency run: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in figures.items()))
    return figures


def run(options: Options) -> list[Row]:
    runs = [_one_run(options, index + 1) for index in range(options.runs)]

    def med(key: str) -> float:
        return median([float(r[key]) for r in runs])

    rate = options.latency_rate
    stalls = "; ".join(f"{float(r['commit_p50']):.1f} / {float(r['commit_p99']):.1f} / "
                       f"{float(r['commit_max']):.0f} ms" for r in runs)
    common = [f"losses per run: {'; '.join(str(r['loss']) for r in runs)}",
              f"run 1 {runs[0]['cpu']}"]
    commits_note = ("the machine's own commits meanwhile (a single-row insert every 50 ms beside the "
              f"load; p50 / p99 / max per run): {stalls}. Any durable reply waits at least that long; "
              "a max far above p99 is a stall of the disk under PostgreSQL")
    return [
        Row(
            figure=f"FreeSWITCH event time → event received by a subscriber, p50 / p99, at {rate:g} CPS",
            result=f"{fmt_ms(med('event_p50'))} / {fmt_ms(med('event_p99'))}",
            target=f"p99 ≤ {_EVENT_P99_TARGET:g} ms", met=med("event_p99") <= _EVENT_P99_TARGET,
            notes=[(f"{med('events'):,.0f} events per run (call.answered, "
                   "call.completed, call.cdr) over "
                   f"{options.latency_seconds:g} s"), *common],
        ),
        Row(
            figure=f"command published → reply received, p50 / p99, at {rate:g} commands/s (originate)",
            result=f"{fmt_ms(med('reply_p50'))} / {fmt_ms(med('reply_p99'))}",
            reference=f"raw pika round trip: {fmt_ms(med('ref_p50'))} / {fmt_ms(med('ref_p99'))}",
            target=f"p99 ≤ {_REPLY_P99_TARGET:g} ms", met=med("reply_p99") <= _REPLY_P99_TARGET,
            notes=["p99 per run: " + ", ".join(fmt_ms(float(r["reply_p99"])) for r in runs), commits_note,
                   "slow replies per run (commands sent within 100 ms of each other form an episode): "
                   + "; ".join(str(r["episodes"]) for r in runs),
                   "the driver's own garbage collections while stamping (count, longest): "
                   + "; ".join(f"{float(r['driver_gcs']):.0f}, {float(r['driver_gc_max']):.1f} ms" for r in runs)],
        ),
    ]
