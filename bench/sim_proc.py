"""The simulator in a process of its own, with the delays a benchmark asks for.

Prints ``listening <host> <port>`` once serving. A monitor greenlet wakes every
50 ms and records how late it woke: when the simulator cannot keep up with the
calls it runs, its hub falls behind and every scheduled ring, answer and hangup
comes late by as much. On SIGTERM it prints one JSON line (lag percentiles, CPU
seconds, calls and events) and exits.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event as Flag  # noqa: E402

from callworker.simulator import Simulator  # noqa: E402

_TICK = 0.05


def _monitor(lags: list[float]) -> None:
    while True:
        start = time.monotonic()
        gevent.sleep(_TICK)
        lags.append(max(0.0, time.monotonic() - start - _TICK))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ring-delay", type=float, default=0.1)
    parser.add_argument("--answer-delay", type=float, default=0.2)
    parser.add_argument("--far-end-hangup-after", type=float, default=1.0)
    # Exact event times: the latency figure measures the worker from the moment of each
    # event, not FreeSWITCH's 20 ms clock (which would add 10 ms on average).
    parser.add_argument("--clock-step", type=float, default=0.0)
    args = parser.parse_args()
    sim = Simulator("127.0.0.1", args.port, "ClueCon", ring_delay=args.ring_delay,
                    answer_delay=args.answer_delay, far_end_hangup_after=args.far_end_hangup_after,
                    clock_step=args.clock_step)
    sim.start()
    lags: list[float] = []
    gevent.spawn(_monitor, lags)
    host, port = sim.address
    print(f"listening {host} {port}", flush=True)
    stop = Flag()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = sim.stats
    report = {
        "lag_p50_ms": _pct(lags, 50) * 1000, "lag_p99_ms": _pct(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000, "cpu_s": usage.ru_utime + usage.ru_stime,
        "calls": stats.calls_started, "events_sent": stats.events_sent, "commands": stats.commands,
        "max_rss_mb": usage.ru_maxrss / 1024,
    }
    sim.stop()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
