"""Sampling the worker while a figure runs (``--profile DIR``), with py-spy, if installed.

py-spy attaches to the worker's process from outside, so the worker runs
unchanged; ``--nonblocking`` keeps it from pausing the process at each sample.
Its collapsed stacks are summarised into the functions holding the most samples,
by their own time and with what they call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import Options, log

__all__ = ["PARTS", "maybe_profile", "summarise"]


def _extra_flags() -> list[str]:
    return os.environ.get("CALLWORKER_BENCH_PY_SPY_FLAGS", "").split()


def _py_spy() -> str | None:
    return os.environ.get("CALLWORKER_BENCH_PY_SPY") or shutil.which("py-spy")


@contextmanager
def maybe_profile(options: Options, pid: int, name: str, seconds: float) -> Iterator[None]:
    tool = _py_spy()
    if not options.profile_dir or tool is None:
        if options.profile_dir:
            log("py-spy not found (PATH or CALLWORKER_BENCH_PY_SPY): not profiling")
        yield
        return
    out = Path(options.profile_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{name}.collapsed"
    proc = subprocess.Popen(
        [tool, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
         "--rate", "200", "--nonblocking", *_extra_flags(), "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if raw.exists():
        summary = summarise(raw)
        (out / f"{name}.summary.txt").write_text(summary)
        log(f"profile of {name} written to {out}")


def _function(frame: str) -> str:
    # py-spy frames read "function (path/to/file.py:line)"; keep function and file name.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


# The worker's parts, by a function found on the sampled stack (first match wins).
PARTS = (
    ("journal: batch transaction (SQLAlchemy + psycopg)", ("write_batch",)),
    ("intake: idempotency read get_command (SQL)", ("get_command",)),
    ("intake: call_id_taken read (SQL)", ("call_id_taken",)),
    ("relay: delete confirmed outbox rows (SQL)", ("delete_outbox",)),
    ("relay: read outbox pages (SQL)", ("pending_outbox",)),
    ("journal: operations (state table, events, JSON)", ("Journal._process",)),
    ("ESL: bgapi/api requests", ("EslSession.request",)),
    ("ESL: read, frame and parse events", ("EslSession.receive_events",)),
    ("event pump: events to operations, CDR fields", ("EventPump.",)),
    ("intake: decode, validate, ack", ("Intake.",)),
    ("relay: publish with confirms", ("OutboxRelay.",)),
    ("pika: AMQP frames in and out (hub)", ("pika/",)),
    ("HTTP /healthz and /metrics", ("WSGIHandler",)),
)


def _part(frames: list[str]) -> str:
    joined = ";".join(frames)
    for part, needles in PARTS:
        if any(needle in joined for needle in needles):
            return part
    return "other (hub, timers, greenlet switching)"


def summarise(collapsed: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        parts[_part(frames)] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "by part of the worker:"]
    lines += [f"  {100 * n / total:5.1f}%  {p}" for p, n in parts.most_common()]
    lines += ["", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "with callees:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
