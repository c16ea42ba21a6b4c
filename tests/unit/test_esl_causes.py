"""FreeSWITCH's hangup causes: the one table agrees with what real switches wrote."""

from __future__ import annotations

import re
from pathlib import Path

from callworker.contract import HANGUP_CAUSES
from callworker.esl.causes import CAUSES, cause_named, q850
from callworker.simulator.causes import cause_from_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A CDR's cause and its Q.850 value, as FreeSWITCH writes them into CHANNEL_HANGUP_COMPLETE.
_PAIR = re.compile(rb"variable_hangup_cause: ([A-Z_]+)\r?\n(?:[^\n]*\n)*?variable_hangup_cause_q850: ([0-9]+)")


def captured_pairs() -> set[tuple[str, int]]:
    pairs = set()
    for path in FIXTURES.rglob("*"):
        if path.is_file():
            for cause, value in _PAIR.findall(path.read_bytes()):
                pairs.add((cause.decode(), int(value)))
    return pairs


def test_the_q850_of_every_captured_hangup_is_the_tables() -> None:
    pairs = captured_pairs()
    assert {"NORMAL_CLEARING", "USER_BUSY", "ORIGINATOR_CANCEL"} <= {cause for cause, _ in pairs}
    assert all(q850(cause) == value for cause, value in pairs), pairs


def test_causes_above_interworking_are_written_as_normal_clearing() -> None:
    assert q850("ALLOTTED_TIMEOUT") == 16 and q850("INTERWORKING") == 127 and q850("NO_SUCH_CAUSE") is None


def test_numbers_are_freeswitchs() -> None:
    # switch_types.h: a uuid_kill by number names these.
    assert [cause_named(n) for n in ("802", "703", "816", "487", "17")] == [
        "ALLOTTED_TIMEOUT", "MANAGER_REQUEST", "DECLINE", "ORIGINATOR_CANCEL", "USER_BUSY",
    ]
    assert cause_from_text("no_such", default="NORMAL_CLEARING") == "NORMAL_CLEARING"


def test_a_hangup_command_may_name_every_cause_but_none() -> None:
    assert HANGUP_CAUSES == set(CAUSES) - {"NONE"}
