"""Parsing ``originate`` arguments the way mod_commands and the dial-string code do."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = ["OriginateArgs", "UsageError", "ORIGINATE_USAGE", "split_args", "parse_originate",
           "parse_var_block"]

ORIGINATE_USAGE = (
    "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] "
    "[<cid_name>] [<cid_num>] [<timeout_sec>]\n"
)
_APP = re.compile(r"&([A-Za-z0-9_\-]+)(?:\((.*)\)|[ :](.*))?\Z", re.S)


class UsageError(ValueError):
    """The arguments do not fit the command's syntax."""


@dataclass(frozen=True, slots=True)
class OriginateArgs:
    variables: list[tuple[str, str]]
    endpoint: str
    app: str
    app_arg: str
    cid_name: str | None
    cid_num: str | None
    timeout: int

    def var(self, name: str) -> str | None:
        found = None
        for key, value in self.variables:
            if key == name:
                found = value
        return found


def split_args(text: str) -> list[str]:
    """Split on spaces; single quotes protect spaces and a token's own outer quotes go."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        if char == " " and not quoted:
            if current:
                args.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        args.append("".join(current))
    return [a[1:-1] if len(a) > 1 and a[0] == a[-1] == "'" else a for a in args]


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] == sep:
            current.append(sep)
            i += 2
            continue
        if char == "'":
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def parse_var_block(content: str) -> list[tuple[str, str]]:
    """``a=b,c='d e',f=x\\,y`` to pairs; quotes around a value are removed."""
    pairs: list[tuple[str, str]] = []
    for item in _split_unescaped(content, ","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        if len(value) > 1 and value[0] == value[-1] == "'":
            value = value[1:-1]
        pairs.append((name, value))
    return pairs


def _closing(text: str, start: int, close: str) -> int:
    quoted = False
    for i in range(start, len(text)):
        if text[i] == "'":
            quoted = not quoted
        elif text[i] == close and not quoted:
            return i
    raise UsageError(f"unbalanced {close}")


def _leading_blocks(url: str) -> tuple[list[tuple[str, str]], str]:
    """Strip ``{..}`` (all legs), then ``[..]``/``<..>`` (this leg) blocks from the URL."""
    variables: list[tuple[str, str]] = []
    rest = url.strip()
    pairs = {"{": "}", "[": "]", "<": ">"}
    while rest and rest[0] in pairs:
        end = _closing(rest, 1, pairs[rest[0]])
        variables += parse_var_block(rest[1:end])
        rest = rest[end + 1:].lstrip()
    return variables, rest


def _first_leg(endpoints: str) -> tuple[list[tuple[str, str]], str]:
    """Legs are separated by ``,`` or ``|``; only the first is dialled here."""
    variables, rest = _leading_blocks(endpoints)
    leg = re.split(r"[,|]", rest, maxsplit=1)[0]
    return variables, leg.strip()


def _int(text: str | None, default: int) -> int:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def parse_originate(text: str) -> OriginateArgs:
    args = split_args(text.strip())
    if not 2 <= len(args) <= 7:
        raise UsageError(ORIGINATE_USAGE)
    args += [""] * (7 - len(args))
    url, exten, _dialplan, _context, cid_name, cid_num, timeout = args
    variables, endpoint = _first_leg(url)
    if not endpoint:
        raise UsageError(ORIGINATE_USAGE)
    found = _APP.match(exten)
    if found:
        app, app_arg = found.group(1), found.group(2) or found.group(3) or ""
    else:
        # An extension goes through the dialplan; here the dialplan parks every call.
        app, app_arg = "park", ""
    blank = {"", "undef"}
    result = OriginateArgs(
        variables=variables, endpoint=endpoint, app=app, app_arg=app_arg.strip(),
        cid_name=None if cid_name in blank else cid_name,
        cid_num=None if cid_num in blank else cid_num,
        timeout=_int(timeout if timeout not in blank else None, 60),
    )
    override = result.var("originate_timeout")
    if override is not None:
        return replace(result, timeout=_int(override, result.timeout))
    return result
