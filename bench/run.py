"""``make bench``: every figure of the pipeline on this machine, as a Markdown table.

gevent patches the standard library first, before anything imports socket or
psycopg (psycopg picks its wait function at import).

Usage: ``python bench/run.py [--quick] [--only NAME[,NAME]] [--runs N] [--soak-seconds S]``.
The table goes to stdout and to ``bench-results/latest.md``; progress to stderr.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

# Import `bench` as a package from the repository root, not its modules as top-level names.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench import latency, memory, parser, pipeline, publish, simload  # noqa: E402
from bench.common import Options, Row, log, render_table  # noqa: E402
from bench.infra import REPO  # noqa: E402

FIGURES: dict[str, Callable[[Options], list[Row]]] = {
    "parser": parser.run,
    "simulator": simload.run,
    "cps": pipeline.run,
    "latency": latency.run,
    "publish": publish.run,
    "memory": memory.run_live_calls,
    "soak": memory.run_soak,
}


def _options(argv: list[str]) -> tuple[Options, list[str]]:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, one of each: a smoke check")
    ap.add_argument("--only", default="", help=f"comma-separated figures of: {', '.join(FIGURES)}")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (median); default 3, 1 if --quick")
    ap.add_argument("--soak-seconds", type=float, default=None, help="default 600, 30 if --quick")
    ap.add_argument("--cps", type=float, default=300.0, help="offered calls per second for the CPS figure")
    ap.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                    help="before each run, wait up to this long for the machine to be idle (0: never)")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="sample the worker with py-spy during the CPS runs into DIR")
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
    )
    return options, names


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.rstrip()
    return "\n".join([
        f"- CPU: {cpu}, `nproc` = {os.cpu_count()}",
        (f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"),
        "- `free -h`:", "", "```", memory, "```",
    ])


def main(argv: list[str]) -> int:
    options, names = _options(argv)
    command = "python bench/run.py" + ("" if not argv else " " + shlex.join(argv))
    started = time.time()
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
    table = render_table(rows)
    minutes = (time.time() - started) / 60
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    runs = f"medians of {options.runs} runs" if options.runs > 1 else "one run each"
    report = "\n".join([
        f"# callworker benchmark, {when}", "",
        f"Command: `{command}` ({runs}; {minutes:.1f} minutes).", "",
        table, "", "Machine:", "", _machine(), "",
    ])
    print(report)
    out = REPO / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(report)
    log(f"written to {out / 'latest.md'}")
    # A missed target is a finding, not an error; a figure that could not run is.
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
