"""``make bench``: every figure of the pipeline on this machine, as a Markdown table.

gevent patches the standard library first, before anything imports socket or
psycopg (psycopg picks its wait function at import).

Usage: ``python bench/run.py [--quick] [--only NAME[,NAME]] [--runs N] [--soak-seconds S] [--output PATH]``.
The page (date, command, code, table, machine) goes to stdout and, for a run of
every figure, to ``docs/benchmark-latest.md``, the page the README links; a
partial or ``--quick`` run writes ``bench-results/latest.md`` instead. Progress
goes to stderr.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

# Import `bench` as a package from the repository root, not its modules as top-level names.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench import latency, memory, parser, pipeline, publish, realswitch, simload, stats  # noqa: E402
from bench.common import Options, Row, log  # noqa: E402
from bench.report import RunInfo, code_version, machine, render_report, report_path, write_report  # noqa: E402

FIGURES: dict[str, Callable[[Options], list[Row]]] = {
    "parser": parser.run,
    "simulator": simload.run,
    "cps": pipeline.run,
    "latency": latency.run,
    "publish": publish.run,
    "memory": memory.run_live_calls,
    "soak": memory.run_soak,
    "freeswitch": realswitch.run,
    "stats": stats.run,
}


def _options(argv: list[str]) -> tuple[Options, list[str], Path]:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, one of each: a smoke check")
    ap.add_argument("--only", default="", help=f"comma-separated figures of: {', '.join(FIGURES)}")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (median); default 3, 1 if --quick")
    ap.add_argument("--soak-seconds", type=float, default=None, help="default 600, 30 if --quick")
    ap.add_argument("--cps", type=float, default=300.0, help="offered calls per second for the CPS figure")
    ap.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                    help="before each run, wait up to this long for the machine to be idle (0: never)")
    ap.add_argument("--policy", action="store_true",
                    help="CPS figure with a policy in force: the driver's tenant limited (caps far above "
                         "what the run places: every call counted and checked, none refused) and rated")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="sample the worker with py-spy during the CPS runs into DIR")
    ap.add_argument("--output", default=None, metavar="PATH",
                    help="write the page here (default: docs/benchmark-latest.md for a run of every figure "
                         "without --quick, bench-results/latest.md otherwise)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    quick = args.quick
    options = Options(
        quick=quick,
        runs=args.runs if args.runs is not None else (1 if quick else 3),
        soak_seconds=args.soak_seconds if args.soak_seconds is not None else (30.0 if quick else 600.0),
        cps=args.cps,
        cps_seconds=10.0 if quick else 60.0,
        latency_seconds=10.0 if quick else 30.0,
        live_calls=1_000 if quick else 10_000,
        profile_dir=args.profile,
        quiet_wait=args.quiet_wait,
        policy=args.policy,
    )
    output = report_path(all_figures=set(names) == set(FIGURES), quick=quick, output=args.output)
    return options, names, output


def main(argv: list[str]) -> int:
    options, names, output = _options(argv)
    command = "python bench/run.py" + ("" if not argv else " " + shlex.join(argv))
    started = time.time()
    code, code_changed = code_version()  # what is measured is what was there at the start
    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        count = 1 if name == "soak" else options.runs  # the soak is one long run
        log(f"figure {name}: starting ({count} run(s))")
        try:
            rows += FIGURES[name](options)
        except Exception as exc:  # noqa: BLE001 - a failed figure is reported, the others run
            log(f"figure {name} failed: {exc!r}")
            failed.append(name)
            rows.append(Row(figure=name, result=f"**failed**: {exc!r}", met=False))
    info = RunInfo(
        when=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=command,
        runs=options.runs,
        minutes=(time.time() - started) / 60,
        code=code,
        code_changed=code_changed,
        soak_minutes=options.soak_seconds / 60 if "soak" in names else None,
    )
    report = render_report(rows, info, machine())
    print(report)
    log(f"written to {write_report(report, output)}")
    # A missed target is a finding, not an error; a figure that could not run is.
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
