"""``callworker run|migrate|simulate|demo``: the worker, its database, the simulator, the demo."""

from __future__ import annotations

import argparse
import gc
import signal
from typing import Any

import gevent
from gevent.event import Event as Flag

from callworker.cli.common import load_settings

__all__ = ["add_worker_commands"]


def _wait_for_signal() -> None:
    stop = Flag()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()


def _freeze_what_start_built() -> None:
    """Keep the objects of start-up (modules, models, compiled statements) out of garbage collection.

    They live as long as the process; left in, every full collection walks all of
    them (~60 ms here), and that pause stalls the one hub that reads FreeSWITCH,
    answers commands and publishes.
    """
    gc.collect()
    gc.freeze()


def cmd_run(args: argparse.Namespace) -> int:
    from callworker.app import Worker

    worker = Worker(load_settings())
    worker.start()
    # SIGHUP: read the policy file again (it is also read when it changes).
    gevent.signal_handler(signal.SIGHUP, worker.policy.reload_file)
    _freeze_what_start_built()
    _wait_for_signal()
    worker.stop()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from callworker.store import migrate

    migrate(load_settings().database_url_value)
    print("database is at the latest schema")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from callworker.simulator import Simulator

    settings = load_settings()
    password = args.password if args.password is not None else settings.esl_password.get_secret_value()
    simulator = Simulator(
        args.host, args.port, password, ring_delay=args.ring_delay, answer_delay=args.answer_delay,
        far_end_hangup_after=args.far_end_hangup_after, long_ring=args.long_ring,
        clock_step=args.clock_step,
    )
    simulator.start()
    host, port = simulator.address
    print(f"FreeSWITCH ESL simulator listening on {host}:{port}", flush=True)
    _wait_for_signal()
    simulator.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from callworker.demo import run_demo

    return run_demo(hangup_after=args.hangup_after)


def add_worker_commands(sub: Any) -> None:
    """``run``, ``migrate``, ``simulate`` and ``demo`` on the top-level subparsers."""
    sub.add_parser("run", help="run the worker (applies pending migrations first)").set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(func=cmd_migrate)
    simulate = sub.add_parser("simulate", help="run the FreeSWITCH ESL simulator")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8021)
    simulate.add_argument("--password", default=None, help="default: CALLWORKER_ESL_PASSWORD or ClueCon")
    simulate.add_argument("--ring-delay", type=float, default=0.2)
    simulate.add_argument("--answer-delay", type=float, default=0.6)
    simulate.add_argument(
        "--far-end-hangup-after", type=float, default=2.0,
        help="seconds before the far end hangs up a call to a number ending in 0200",
    )
    simulate.add_argument(
        "--long-ring", type=float, default=60.0,
        help="seconds a number ending in 0180 rings before the far end gives up (NO_ANSWER)",
    )
    simulate.add_argument(
        "--clock-step", type=float, default=0.02,
        help="event times move in steps of this many seconds, as FreeSWITCH's clock does (0: exact)",
    )
    simulate.set_defaults(func=cmd_simulate)
    demo = sub.add_parser("demo", help="simulator and worker together, placing a few calls")
    demo.add_argument("--hangup-after", type=float, default=1.0, help="seconds an answered call stays up")
    demo.set_defaults(func=cmd_demo)
