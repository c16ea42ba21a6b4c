"""What the operator commands print for a reply, an event, a stats.get reply and CDRs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console

from callworker.cli.cdr import write_cdrs
from callworker.cli.show import clock, error_lines, event_line, result_lines
from callworker.cli.stats import stats_tables
from callworker.cli.watch import bindings
from callworker.contract import CDR_FIELDS

CALL = "5f0c1e2a-0000-4000-8000-000000000001"


def test_replies_read_as_one_summary_line() -> None:
    assert result_lines("originate", {"call_id": CALL, "status": "initiated"}) == [f"call {CALL} initiated"]
    assert result_lines("originate", {"call_id": CALL, "status": "initiated", "connect_call_id": "c2"}) == [
        f"call {CALL} initiated; connect call c2"
    ]
    assert result_lines("hold", {"call_id": CALL, "on_hold": False}) == [f"call {CALL}: resumed"]
    assert result_lines("mute", {"call_id": CALL, "muted": True}) == [f"call {CALL}: muted"]
    assert result_lines("hangup", {"call_id": CALL, "status": "answered"}) == [
        f"call {CALL}: hangup sent (status was answered)"
    ]


def test_fields_a_summary_does_not_name_are_still_shown() -> None:
    lines = result_lines("transfer", {"call_id": CALL, "status": "answered", "note": None, "extra": [1, 2]})
    assert lines == [f"call {CALL}: transferred (status answered)", "note   -", "extra  [1,2]"]


def test_a_call_reads_as_aligned_fields() -> None:
    lines = result_lines("call.get", {"call_id": CALL, "on_hold": True, "hangup_cause": None})
    assert lines == [f"call_id       {CALL}", "on_hold       true", "hangup_cause  -"]


def test_unknown_command_says_what_it_means() -> None:
    reply = {"v": 1, "command_id": None, "type": "transfer", "ok": False,
             "error": {"code": "UNKNOWN_COMMAND", "message": "the routing key names no known command",
                       "details": {"field": "routing_key"}}}
    lines = error_lines(reply)
    assert lines[0] == "error UNKNOWN_COMMAND: the routing key names no known command"
    assert lines[1] == "  field  routing_key"
    assert "does not run 'transfer' commands" in lines[2]


def test_other_errors_show_code_message_and_details_only() -> None:
    reply = {"ok": False, "type": "hold", "error": {"code": "CALL_NOT_ACTIVE", "message": "not answered",
                                                    "details": {"call_id": CALL}}}
    assert error_lines(reply) == ["error CALL_NOT_ACTIVE: not answered", f"  call_id  {CALL}"]


def test_event_lines() -> None:
    base = {"occurred_at": "2026-11-22T10:31:00.123456+00:00", "tenant": "acme", "call_id": CALL, "seq": 4}
    held = {**base, "type": "call.held",
            "data": {"status": "on_hold", "on_hold": True, "muted": False, "held_by": "far_end"}}
    assert event_line(held) == (
        f"2026-11-22T10:31:00.123456+00:00  acme  call.held               {CALL}  seq=4  status=on_hold  held"
        "  held_by=far_end"
    )
    cdr = {**base, "type": "call.cdr", "data": {"billsec": 12, "hangup_cause": "NORMAL_CLEARING", "node": "n"}}
    assert event_line(cdr).endswith("seq=4  billsec=12  hangup_cause=NORMAL_CLEARING")
    hook = {**base, "type": "hook.menu", "data": {"digit": "2", "nested": {"x": 1}}}
    assert event_line(hook, time_of_day=True).startswith("10:31:00.123  acme  hook.menu")
    assert event_line(hook).endswith("seq=4  digit=2")


def test_clock() -> None:
    assert [clock(None), clock(0), clock(59.9), clock(61), clock(3600 * 5 + 62)] == [
        "-", "0:00", "0:59", "1:01", "5:01:02"
    ]


def test_watch_bindings() -> None:
    assert bindings("acme", None) == ["acme.call.#", "acme.hook.#", "acme.flashcall.#"]
    assert bindings(None, CALL) == [f"*.*.*.{CALL}"]
    assert bindings("acme", CALL) == [f"acme.*.*.{CALL}"]


STATS_REPLY: dict[str, Any] = {
    "v": 1, "command_id": "c", "type": "stats.get", "ok": True,
    "result": {"groups": [
        {"key": "gw-a", "calls": 120, "answered": 66, "failed": 40, "cancelled": 14, "asr": 0.55, "ner": 0.9,
         "acd_s": 73.25, "pdd_ms_p50": 1800, "pdd_ms_p95": 4200, "minutes": 80.5, "cost_cents": 312,
         "avg_mos": 4.31, "hangup_causes": {"NORMAL_CLEARING": 66, "USER_BUSY": 30, "NO_ANSWER": 10},
         "flashcall": {"orders": 20, "verified": 15, "conversion": 0.75}},
        {"key": "gw-b", "calls": 3, "answered": 0, "failed": 3, "cancelled": 0, "asr": 0.0, "ner": 0.0,
         "acd_s": None, "pdd_ms_p50": None, "pdd_ms_p95": None, "minutes": 0, "cost_cents": 0,
         "avg_mos": None, "hangup_causes": {"UNALLOCATED_NUMBER": 3},
         "flashcall": {"orders": 0, "verified": 0, "conversion": None}},
    ]},
}


def test_stats_groups_read_as_tables() -> None:
    out = Console(width=200, record=True, no_color=True)
    for table in stats_tables(STATS_REPLY["result"]["groups"]):
        out.print(table)
    text = out.export_text()
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip().startswith("gw-")}
    # One KPI row per group, in the contract's order; unknown values as '-'.
    kpi_a = next(line.split() for line in text.splitlines() if line.split()[:2] == ["gw-a", "120"])
    assert kpi_a == ["gw-a", "120", "66", "40", "14", "0.55", "0.9", "73.25", "1800", "4200", "80.5", "312", "4.31"]
    kpi_b = next(line.split() for line in text.splitlines() if line.split()[:2] == ["gw-b", "3"])
    assert kpi_b == ["gw-b", "3", "0", "3", "0", "0", "0", "-", "-", "-", "0", "0", "-"]
    causes = [line.split() for line in text.splitlines() if len(line.split()) == 3 and line.split()[0] == "gw-a"]
    assert causes == [["gw-a", "NORMAL_CLEARING", "66"], ["gw-a", "USER_BUSY", "30"], ["gw-a", "NO_ANSWER", "10"]]
    # Flash calls: only the group that had orders.
    assert ["gw-a", "20", "15", "0.75"] in [line.split() for line in text.splitlines()]
    assert "flash calls" in text and rows
    assert [t.title for t in stats_tables(STATS_REPLY["result"]["groups"])] == ["calls", "hangup causes", "flash calls"]


def test_a_single_group_is_called_all_and_empty_sections_are_left_out() -> None:
    tables = stats_tables([{"key": None, "calls": 0, "hangup_causes": {}, "flashcall": {"orders": 0}}])
    assert [t.title for t in tables] == ["calls"]
    out = Console(width=200, record=True, no_color=True)
    out.print(tables[0])
    assert any(line.split()[:2] == ["all", "0"] for line in out.export_text().splitlines())


CDR = {name: None for name in CDR_FIELDS} | {
    "call_id": CALL, "tenant": "acme", "direction": "outbound", "caller_id_name": 'Desk, "Front"',
    "start_stamp": "2026-11-22T10:31:00.000000+00:00", "billsec": 12, "rtp_audio_in_mos": 4.5,
    "missed_call": False, "node": "n1",
}


def test_csv_has_the_contract_columns_in_order_and_quotes_what_needs_it() -> None:
    out = io.StringIO(newline="")
    assert write_cdrs(iter([CDR]), out, "csv") == 1
    text = out.getvalue()
    header, row = text.split("\r\n")[:2]
    assert header == ",".join(CDR_FIELDS)
    assert row.startswith(f'{CALL},acme,outbound,"Desk, ""Front""",,,2026-11-22T10:31:00.000000+00:00,,,,12,')
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[1][CDR_FIELDS.index("missed_call")] == "false"
    assert parsed[1][CDR_FIELDS.index("rtp_audio_in_mos")] == "4.5"


def test_json_is_one_array_and_jsonl_one_record_per_line() -> None:
    for count in (0, 1, 3):
        records = [dict(CDR, billsec=i) for i in range(count)]
        out = io.StringIO()
        assert write_cdrs(iter(records), out, "json") == count
        assert json.loads(out.getvalue()) == records
        lines = io.StringIO()
        write_cdrs(iter(records), lines, "jsonl")
        assert [json.loads(line) for line in lines.getvalue().splitlines()] == records
