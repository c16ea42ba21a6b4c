"""Shared vocabulary of the wire contract: error codes, call statuses, allow-lists, time format.

Every pattern here is anchored with ``\\A`` and ``\\Z``: ``$`` would also match before a
trailing newline, and a newline smuggled into a FreeSWITCH command line is a new command.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from callworker.esl.causes import HANGUP_CAUSES

__all__ = [
    "CALLER_ID_NAME_RE",
    "DEAD_LETTER_CODES",
    "FLASHCALL_PHONE_RE",
    "GATEWAY_RE",
    "HANGUP_CAUSES",
    "MAX_BODY_BYTES",
    "PHONE_RE",
    "TENANT_RE",
    "TERMINAL_STATUSES",
    "USER_ID_RE",
    "UUID_RE",
    "CallStatus",
    "ContractError",
    "ErrorCode",
    "normalize_uuid",
    "to_iso",
    "utcnow",
]

MAX_BODY_BYTES = 65536
"""Largest message body accepted or published, in bytes (64 KiB)."""


class ErrorCode(StrEnum):
    """The ``error.code`` values of a failed reply (CONTRACT.md section 4)."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INVALID_PHONE_NUMBER = "INVALID_PHONE_NUMBER"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    COMMAND_EXPIRED = "COMMAND_EXPIRED"
    CALL_NOT_FOUND = "CALL_NOT_FOUND"
    CALL_NOT_ACTIVE = "CALL_NOT_ACTIVE"
    RATE_LIMITED = "RATE_LIMITED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FREESWITCH_ERROR = "FREESWITCH_ERROR"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_EXPIRED = "ORDER_EXPIRED"
    ORDER_CLOSED = "ORDER_CLOSED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    INTERNAL_ERROR = "INTERNAL_ERROR"


# Malformed, invalid, unknown or expired commands are dead-lettered; refusals that
# depend on the state of a call or an order are answered but not dead-lettered.
DEAD_LETTER_CODES: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.INVALID_PHONE_NUMBER,
        ErrorCode.UNKNOWN_COMMAND,
        ErrorCode.COMMAND_EXPIRED,
    }
)


class ContractError(Exception):
    """A command could not be accepted; carries everything a failed reply needs.

    ``message`` is for humans and never repeats the offending value: a value may hold
    a secret (a flash-call code) or a newline that would forge a log line.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        command_id: str | None = None,
        command_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details: dict[str, Any] = dict(details) if details else {}
        self.command_id = command_id
        self.command_type = command_type

    @property
    def dead_letter(self) -> bool:
        """True when the command goes to the dead-letter queue as well as being answered."""
        return self.code in DEAD_LETTER_CODES

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ContractError({self.code.value!r}, {self.message!r}, details={self.details!r}, "
            f"command_id={self.command_id!r}, command_type={self.command_type!r})"
        )


class CallStatus(StrEnum):
    """The status of a call as the contract reports it: the one definition of the statuses."""

    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A call in one of these has ended: it takes no command and no later signal changes it.
TERMINAL_STATUSES: frozenset[CallStatus] = frozenset(
    {CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELLED}
)

TENANT_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
PHONE_RE = re.compile(r"\A\+?[0-9]{3,15}\Z")
FLASHCALL_PHONE_RE = re.compile(r"\A\+?[0-9]{10,15}\Z")
CALLER_ID_NAME_RE = re.compile(r"\A[A-Za-z0-9 ._-]{1,64}\Z")
USER_ID_RE = re.compile(r"\A[A-Za-z0-9._@-]{1,64}\Z")
GATEWAY_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
UUID_RE = re.compile(
    r"\A[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z"
)


def normalize_uuid(value: str) -> str | None:
    """The canonical lowercase form of a UUID string, or None when it is not one."""
    if UUID_RE.match(value) is None:
        return None
    return value.lower()




def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def to_iso(dt: datetime) -> str:
    """ISO 8601 in UTC with microseconds and offset: ``2026-11-22T10:31:00.123456+00:00``.

    A naive datetime is taken to be UTC already: some databases (SQLite) hand back
    naive values for columns that were written in UTC.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")
