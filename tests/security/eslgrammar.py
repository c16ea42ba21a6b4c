"""The grammar of what the worker may write to the event socket, and hypothesis strategies.

The allow-lists are written out again from CONTRACT.md rather than imported: they are
the oracle the implementation is checked against.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "ATTACKS",
    "BREAKERS",
    "EXTRA_VALUE",
    "EXTRA_VARIABLE",
    "CONTEXT",
    "EXTENSION",
    "GATEWAY_NAME",
    "LIVE_CALL",
    "MISSING",
    "NAME",
    "PHONE",
    "PRIVACY_VARIABLES",
    "SERVICE_VARIABLES",
    "TENANT_NAME",
    "UUID_ANY_CASE",
    "UUID_LOWER",
    "fits",
    "json_values",
    "names",
    "nasty",
    "originate_target",
    "parse_originate",
    "phones",
    "some_wild",
    "spliced",
    "split_frame",
    "uuids",
    "uuids_any_case",
]

# The call the attacks aim at (answered in the component rig).
LIVE_CALL = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"

# ----------------------------------------------------------------- the grammar

# The contract's allow-lists, written out again from CONTRACT.md: the oracle.
PHONE = r"\+?[0-9]{3,15}"
NAME = r"[A-Za-z0-9 ._-]{1,64}"
UUID_ANY_CASE = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
UUID_LOWER = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TENANT_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
GATEWAY_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
EXTENSION = r"[A-Za-z0-9_+*#-]{1,32}"
CONTEXT = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

ORIGINATE_LINE = re.compile(
    r"originate \{(?P<block>[^{}]*)\}"
    rf"sofia/gateway/(?P<gateway>{GATEWAY_NAME})/(?P<number>{PHONE}) "
    rf"(?:&park\(\)|(?P<extension>{EXTENSION}) XML (?P<context>{CONTEXT}))"
)
SERVICE_VARIABLES = {
    "origination_uuid": UUID_LOWER,
    "originate_timeout": r"[0-9]{1,3}",
    "ignore_early_media": "true",
    "origination_caller_id_number": PHONE,
    "origination_caller_id_name": f"'{NAME}'",
    "origination_privacy": "screen:hide_name:hide_number",
    "sip_cid_type": "pid",
    "sip_invite_from_uri": "sip:anonymous@anonymous.invalid",
    "sip_from_display": "Anonymous",
    "callworker_tenant": TENANT_NAME,
    # A click-to-call's second call names its first (the worker takes its park by it).
    "callworker_connect_partner": UUID_LOWER,
    # Comfort silence while parked, and the hangup at max_duration_s after answer.
    "send_silence_when_idle": "400",
    "execute_on_answer": r"'sched_hangup \+[1-9][0-9]{0,4} ALLOTTED_TIMEOUT'",
}
# A private call carries all of these and any other call none: an anonymous From, and
# the number in P-Asserted-Identity with "Privacy: id".
PRIVACY_VARIABLES = frozenset({"origination_privacy", "sip_cid_type", "sip_invite_from_uri", "sip_from_display"})
EXTRA_VARIABLE = re.compile(r"callworker_[a-z0-9_]{0,53}")
EXTRA_VALUE = r"[A-Za-z0-9._:+-]{0,128}"


def fits(pattern: str, value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def parse_originate(line: str, *, extra_names: bool = False) -> tuple[dict[str, str], str, str]:
    """The variables, gateway and number of an originate; AssertionError if anything else is there."""
    match = ORIGINATE_LINE.fullmatch(line)
    assert match is not None, f"not one clean originate: {line!r}"
    variables: dict[str, str] = {}
    for part in match["block"].split(","):
        name, sep, value = part.partition("=")
        assert sep and name not in variables, f"bad variable {part!r} in {line!r}"
        if name in SERVICE_VARIABLES and not (extra_names and EXTRA_VARIABLE.fullmatch(name)):
            assert fits(SERVICE_VARIABLES[name], value), f"bad value of {name}: {value!r}"
        else:
            assert extra_names and EXTRA_VARIABLE.fullmatch(name), f"unknown variable {name!r}"
            assert fits(EXTRA_VALUE, value), f"bad value of {name}: {value!r}"
        variables[name] = value
    assert "origination_uuid" in variables and "originate_timeout" in variables
    assert variables.get("ignore_early_media") == "true", f"early media would end the ring timeout: {line!r}"
    return variables, match["gateway"], match["number"]


def originate_target(line: str) -> tuple[str, str] | None:
    """(extension, context) an originate hands the answered call to; None: park."""
    match = ORIGINATE_LINE.fullmatch(line)
    assert match is not None, f"not one clean originate: {line!r}"
    return None if match["extension"] is None else (match["extension"], match["context"])


def split_frame(payload: bytes) -> tuple[str, dict[str, str]]:
    """The command line and headers of one encoded command: printable ASCII lines, one blank line."""
    assert payload.endswith(b"\n\n"), payload
    head = payload[:-2]
    assert b"\n\n" not in head and b"\r" not in head, payload
    assert all(0x20 <= byte < 0x7F for byte in head.replace(b"\n", b"")), payload
    line, *header_lines = head.decode("ascii").split("\n")
    headers = dict(h.split(": ", 1) for h in header_lines)
    assert len(headers) == len(header_lines), payload
    return line, headers


# ---------------------------------------------------------------- strategies

BREAKERS = [
    "\n",
    "\r",
    "\r\n",
    "\n\napi hupall\n\n",
    "\x00",
    "\t",
    "\x0b",
    "\x0c",
    "\x85",
    "\u2028",
    " ",
    ",",
    "{",
    "}",
    "[",
    "]",
    "|",
    "&",
    "'",
    '"',
    "\\",
    ";",
    "^",
    "=",
    "/",
    "(",
    ")",
    "&park()",
    "}sofia/gateway/default/15550000000",
    "${hupall}",
    "%0A",
    "\u0661",
    "\uff11",
]

ATTACKS = [
    "+15551230001\napi hupall",
    "+15551230001\r\n\r\napi hupall MANAGER_REQUEST\r\n\r\n",
    "15551230001 &bridge(user/1000)",
    "{api_on_answer=hupall}15551230001",
    "15551230001,sofia/gateway/default/15559990000",
    "15551230001|loopback/9999",
    "[leg_timeout=1]15551230001",
    "x',api_on_answer=hupall,x='",
    "Bob}sofia/gateway/default/15559990000 &park()\n\nbgapi originate {",
    "default/15559990000,sofia/gateway/evil",
    "../internal",
    f"{LIVE_CALL}\napi hupall",
    f"{LIVE_CALL} NORMAL_CLEARING",
    f"{LIVE_CALL}\n\nexit",
    "NORMAL_CLEARING\napi hupall",
    "NORMAL_CLEARING hupall",
    "\uff11\uff15\uff15\uff15\uff11\uff12\uff13",
    "",
    "x" * 300,
]


def spliced(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value with something that breaks out of it inserted somewhere."""
    return st.tuples(valid, st.sampled_from(BREAKERS), st.integers(0, 80)).map(
        lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
    )


def nasty(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(valid, spliced(valid), st.sampled_from(ATTACKS), st.text(max_size=80))


phones = st.from_regex(PHONE, fullmatch=True)
names = st.from_regex(NAME, fullmatch=True)
uuids = st.uuids().map(str)
uuids_any_case = st.one_of(uuids, uuids.map(str.upper))
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
MISSING = object()


def some_wild(
    valid: dict[str, st.SearchStrategy[Any]], wild: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Values for every field: up to three (often none) drawn wild, the others valid.

    Drawing every field wild at once would almost never produce a command the
    contract accepts, and the accepted ones are what must arrive clean.
    """

    @st.composite
    def draw(draw_: Any) -> dict[str, Any]:
        chosen = draw_(st.sets(st.sampled_from(sorted(valid)), max_size=3))
        return {name: draw_((wild if name in chosen else valid)[name], label=name) for name in sorted(valid)}

    return draw()
