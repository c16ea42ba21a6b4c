"""Text of the read-only API commands: ``status``, ``version``, ``show channels|calls``."""

from __future__ import annotations

import json
import time

from callworker.simulator.channel import Channel
from callworker.simulator.headers import CODEC
from callworker.simulator.switch import Switch

__all__ = ["status_text", "version_text", "show", "SHOW_USAGE", "CHANNEL_COLUMNS", "CALL_COLUMNS"]

VERSION = "1.10.11-release git f24064f 2023-12-22 18:08:31Z 64bit"
SHOW_USAGE = (
    "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|"
    "channels [count|like <match string>]|calls|detailed_calls|bridged_calls|"
    "detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|"
    "interfaces|interface_types|tasks|limits|status\n"
)
CHANNEL_COLUMNS = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num",
    "ip_addr", "dest", "application", "application_data", "dialplan", "context", "read_codec",
    "read_rate", "read_bit_rate", "write_codec", "write_rate", "write_bit_rate", "secure",
    "hostname", "presence_id", "presence_data", "accountcode", "callstate", "callee_name",
    "callee_num", "callee_direction", "call_uuid", "sent_callee_name", "sent_callee_num",
    "initial_cid_name", "initial_cid_num", "initial_ip_addr", "initial_dest",
    "initial_dialplan", "initial_context",
)
_CALL_A = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num",
    "ip_addr", "dest", "presence_id", "presence_data", "accountcode", "callstate",
    "callee_name", "callee_num", "callee_direction", "call_uuid", "hostname",
    "sent_callee_name", "sent_callee_num",
)
_CALL_B = tuple(f"b_{c}" for c in _CALL_A if c not in ("call_uuid", "hostname"))
CALL_COLUMNS = (*_CALL_A, *_CALL_B, "call_created_epoch")


def _duration(seconds: float) -> str:
    micro = int(seconds * 1_000_000)
    secs, us = divmod(micro, 1_000_000)
    ms, us = divmod(us, 1000)
    mins, s = divmod(secs, 60)
    hours, m = divmod(mins, 60)
    days, h = divmod(hours, 24)
    years, d = divmod(days, 365)
    return (f"{years} years, {d} days, {h} hours, {m} minutes, {s} seconds, "
            f"{ms} milliseconds, {us} microseconds")


def status_text(sw: Switch) -> str:
    """Shaped exactly like capture 19, trailing spaces included, with live counts."""
    current_sps, peak_5min, peak_sps_5min = sw.load.recent()
    return (
        f"UP {_duration(time.time() - sw.started)}\n"
        f"FreeSWITCH (Version {VERSION}) is ready\n"
        f"{sw.load.since_startup} session(s) since startup\n"
        f"{len(sw.channels)} session(s) - peak {sw.load.peak}, last 5min {peak_5min} \n"
        f"{current_sps} session(s) per Sec out of max 30, peak {sw.load.peak_sps}, "
        f"last 5min {peak_sps_5min} \n"
        "1000 session(s) max\n"
        "min idle cpu 0.00/98.97\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


def version_text() -> str:
    return f"FreeSWITCH Version 1.10.11-release+git~20231222T180831Z~f24064f~64bit ({VERSION})\n"


def _channel_row(sw: Switch, ch: Channel) -> dict[str, str]:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ch.created_us // 1_000_000))
    codec = CODEC if ch.media else ("", "", "")
    return {
        "uuid": ch.uuid, "direction": ch.direction, "created": created,
        "created_epoch": str(ch.created_us // 1_000_000), "name": ch.name, "state": ch.state,
        "cid_name": ch.cid_name, "cid_num": ch.cid_num, "ip_addr": "", "dest": ch.number,
        "application": ch.app if ch.app_running else "",
        "application_data": ch.app_data if ch.app_running else "", "dialplan": "XML",
        "context": ch.context, "read_codec": codec[0], "read_rate": codec[1],
        "read_bit_rate": codec[2], "write_codec": codec[0], "write_rate": codec[1],
        "write_bit_rate": codec[2], "secure": "", "hostname": sw.hostname, "presence_id": "",
        "presence_data": "", "accountcode": "", "callstate": ch.call_state, "callee_name": "",
        "callee_num": "", "callee_direction": "", "call_uuid": ch.uuid, "sent_callee_name": "",
        "sent_callee_num": "", "initial_cid_name": ch.cid_name, "initial_cid_num": ch.cid_num,
        "initial_ip_addr": "", "initial_dest": ch.number, "initial_dialplan": "XML",
        "initial_context": ch.context,
    }


def _call_row(sw: Switch, ch: Channel) -> dict[str, str]:
    row = _channel_row(sw, ch)
    out = {column: row.get(column, "") for column in _CALL_A}
    out.update({column: "" for column in _CALL_B})
    out["call_created_epoch"] = row["created_epoch"]
    return out


def show(sw: Switch, args: str) -> str:
    """``show channels|calls [as json]`` in FreeSWITCH's CSV or JSON shape."""
    words = args.split()
    as_json = words[-2:] == ["as", "json"]
    if as_json:
        words = words[:-2]
    if words not in (["channels"], ["calls"]):
        return SHOW_USAGE
    columns = CHANNEL_COLUMNS if words[0] == "channels" else CALL_COLUMNS
    make = _channel_row if words[0] == "channels" else _call_row
    rows = [make(sw, ch) for ch in sw.listed()]
    if as_json:
        if not rows:
            return '{"row_count": 0}\n'
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
    if not rows:
        return "\n0 total.\n"
    lines = [",".join(columns)] + [",".join(row[c] for c in columns) for row in rows]
    return "\n".join(lines) + f"\n\n{len(rows)} total.\n"
