"""Hangup causes as the simulator reads them from a command and writes them to a CDR.

The table itself is ``callworker/esl/causes.py``; this module adds FreeSWITCH's
leniencies: an unknown name is NORMAL_CLEARING, and every cause has a Q.850 value.
"""

from __future__ import annotations

from callworker.esl.causes import NORMAL_CLEARING, cause_named
from callworker.esl.causes import q850 as _q850

__all__ = ["cause_from_text", "q850", "NORMAL_CLEARING"]


def cause_from_text(text: str | None, default: str = NORMAL_CLEARING) -> str:
    """A cause given by name (any case) or number; anything unknown becomes ``default``.

    FreeSWITCH's ``switch_channel_str2cause`` quietly turns an unknown name into
    NORMAL_CLEARING where uuid_kill and hupall use it, so a typo never fails a hangup.
    """
    return cause_named(text) or default


def q850(cause: str) -> int:
    """The Q.850 value written as ``hangup_cause_q850`` (values above 127 become 16)."""
    value = _q850(cause)
    return 16 if value is None else value
