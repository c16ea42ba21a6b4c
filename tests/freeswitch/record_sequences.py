"""Record what the real FreeSWITCH sends for each scenario of ``tests.sequences`` into
``tests/fixtures/freeswitch-1.10.12/sequences.json``, which the simulator's tests compare
against.

    .venv/bin/python -m tests.freeswitch.record_sequences            # every scenario, ~2 min
    .venv/bin/python -m tests.freeswitch.record_sequences --only busy,muted --repeat 5
    .venv/bin/python -m tests.freeswitch.record_sequences --esl 127.0.0.1:8021 --password ClueCon

Without ``--esl`` it starts the real tier's switch (``tests/freeswitch/realswitch.py``:
``CALLWORKER_TEST_FREESWITCH`` or the tarball in ``../shared/freeswitch/``, with the
project's ``freeswitch-conf/`` and the carrier overlay). With ``--esl`` the switch must run
that configuration. Each scenario is played ``--repeat`` times; the recording is written
only if every repetition agrees (``tests.sequences.summary.compare``), so the fixture
never holds an order the switch does not keep. Where a BACKGROUND_JOB fell among the
leg's events, which is a race between FreeSWITCH's threads, is gathered over the plays
(``jobs[].after``).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from tests.freeswitch.realswitch import RealSwitch, find_tree  # noqa: E402
from tests.sequences.link import EslLink  # noqa: E402
from tests.sequences.scenarios import SCENARIOS, Recording, Scenario, play, real_far_end  # noqa: E402
from tests.sequences.summary import compare, merge_jobs, summarise  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-1.10.12" / "sequences.json"
_SLOW_END = 120.0  # seconds to wait for a slow scenario's end


def _entry(scenario: Scenario, recording: Recording) -> dict[str, Any]:
    originates = [text.replace(recording.call_id, "<call_id>").replace(recording.number, "<number>")
                  for text in recording.originates]
    return {"about": scenario.about, "number_ends_in": scenario.suffix, "originates": originates,
            **summarise(recording)}


def record(scenario: Scenario, address: tuple[str, int], password: str, repeat: int) -> dict[str, Any]:
    """The scenario's entry, once ``repeat`` plays agree; SystemExit with the differences otherwise."""
    end = _SLOW_END if scenario.slow else 30.0
    first = play(scenario, address, password, real_far_end, end_timeout=end)
    entry = _entry(scenario, first)
    for attempt in range(2, repeat + 1):
        again = summarise(play(scenario, address, password, real_far_end, end_timeout=end))
        problems = compare(entry, again)
        if problems:
            raise SystemExit(f"{scenario.name}: play {attempt} differs from play 1:\n" + "\n".join(problems))
        merge_jobs(entry, again)
    return entry


def _write(entries: dict[str, dict[str, Any]], version: str, out: Path) -> None:
    document: dict[str, Any] = {"scenarios": {}}
    if out.exists():
        document = json.loads(out.read_text())
    document["recorded"] = {
        "switch": version.strip(),
        "by": "tests/freeswitch/record_sequences.py",
        "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }
    document["scenarios"].update(entries)
    order = [s.name for s in SCENARIOS]
    document["scenarios"] = {name: document["scenarios"][name]
                             for name in sorted(document["scenarios"], key=order.index)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--esl", help="HOST:PORT of a running switch (default: start one)")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--only", help="comma-separated scenario names (the others are kept)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the minute-long ones")
    parser.add_argument("--repeat", type=int, default=3, help="plays per scenario that must agree")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    scenarios = [s for s in SCENARIOS if (wanted is None or s.name in wanted)
                 and not (args.skip_slow and s.slow)]
    switch = None
    if args.esl:
        host, _, port = args.esl.rpartition(":")
        address, password = (host, int(port)), args.password
    else:
        switch = RealSwitch(find_tree(), Path(tempfile.mkdtemp(prefix="record-sequences-")))
        switch.start()
        address, password = ("127.0.0.1", switch.ports.esl), switch.password
    try:
        link = EslLink(*address, password)
        version = link.api("version")
        link.close()
        entries = {}
        for scenario in scenarios:
            print(f"{scenario.name}: {scenario.about}", file=sys.stderr, flush=True)
            entries[scenario.name] = record(scenario, address, password, args.repeat)
        _write(entries, version, args.out)
    finally:
        if switch is not None:
            switch.stop()
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
