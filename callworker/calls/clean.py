"""Values that come from the network (SIP headers through FreeSWITCH), made safe to store.

A caller controls its caller ID name and number; they must never be able to
make a database write fail (a value longer than its column) or carry control
characters into events and logs.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_number", "clean_name", "clean_token"]

_NUMBER_RE = re.compile(r"\A[0-9A-Za-z+*#._-]{1,32}\Z")
_TOKEN_RE = re.compile(r"\A[0-9A-Za-z+*#._:/@-]{1,64}\Z")
_NAME_MAX = 64
# Printable ASCII with single spaces inside: what nearly every name is, already clean.
_PLAIN_NAME_RE = re.compile(r"\A[!-~]+(?: [!-~]+)*\Z")


def clean_number(value: str | None) -> str | None:
    """A number from the network, trimmed; None unless it is a plausible number or user."""
    text = (value or "").strip()
    return text if _NUMBER_RE.match(text) else None


def clean_name(value: str | None) -> str | None:
    """A caller ID name from the network: printable, single-spaced, at most 64 characters."""
    if value and len(value) <= _NAME_MAX and _PLAIN_NAME_RE.match(value):
        return value
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value or "")
    text = " ".join(text.split())[:_NAME_MAX].strip()
    return text or None


def clean_token(value: str | None) -> str | None:
    """A short FreeSWITCH word (cause, codec, disposition); None when it is anything else."""
    text = (value or "").strip()
    return text if _TOKEN_RE.match(text) else None
