"""The commands callworker consumes (CONTRACT.md section 3), one frozen model per type.

Strategy: types are strict where JSON has a type of its own (booleans, integers), so
``"30"`` or ``"true"`` are refused rather than coerced; strings that may reach
FreeSWITCH pass an anchored allow-list. Validator messages describe the rule, never the
value, because they travel back in replies and into logs. Unknown body keys are
ignored so that newer clients may add optional fields.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .common import (
    HANGUP_CAUSES,
    CallStatus,
)
from .connect import Connect, ParkConnect, TransferConnect
from .fields import (
    CallerIdName,
    FlashcallPhone,
    Gateway,
    Phone,
    StrictBool,
    StrictStr,
    Tenant,
    UserId,
    Uuid,
    matching,
)

__all__ = [
    "COMMAND_TYPES",
    "CallEventsCommand",
    "CallGetCommand",
    "CallListCommand",
    "CdrListCommand",
    "Command",
    "DtmfCommand",
    "FlashcallCreateCommand",
    "FlashcallVerifyCommand",
    "HangupCommand",
    "HoldCommand",
    "MuteCommand",
    "OriginateCommand",
    "PlayCommand",
    "PrivacyEraseCommand",
    "PrivacyExportCommand",
    "RecordCommand",
    "STATS_DEFAULT_SPAN",
    "STATS_GROUP_BY",
    "STATS_MAX_SPAN",
    "StatsGetCommand",
    "Tenant",
    "TransferCommand",
    "stats_window",
    "UserId",
]

# The error type of "give exactly one of these fields".
ONE_OF = "one_of"
_CODE_RE = re.compile(r"\A[0-9]{1,12}\Z")
_VERIFY_CODE_RE = re.compile(r"\A[0-9]{1,32}\Z")
_MAX_TIMESTAMP_CHARS = 64
# Media (docs/media.md): what may name a sound, a tone and DTMF digits.
SOUND_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\.wav\Z")
TONE_RE = re.compile(r"\A[0-9]{1,5},[0-9]{1,5},[0-9]{1,5}\Z")
DIGITS_RE = re.compile(r"\A[0-9*#A-D]{1,32}\Z")

STATS_GROUP_BY = ("none", "gateway", "hour", "day")
STATS_DEFAULT_SPAN = timedelta(hours=24)
# The longest range of stats.get for each grouping: a reply holds at most 96 hourly or 92
# daily groups, which keeps it within the contract's 64 KiB.
STATS_MAX_SPAN = {
    "none": timedelta(days=366),
    "gateway": timedelta(days=366),
    "hour": timedelta(hours=96),
    "day": timedelta(days=92),
}


def _hangup_cause(value: str) -> str:
    if value not in HANGUP_CAUSES:
        raise ValueError("must be a FreeSWITCH hangup cause name, e.g. NORMAL_CLEARING")
    return value


def _version(value: Any) -> Any:
    # Literal[1] alone would take True (True == 1) and 1.0.
    if type(value) is not int or value != 1:
        raise ValueError("must be the integer 1")
    return value


def _timestamp(value: Any) -> Any:
    """An aware datetime from an ISO 8601 string with offset, normalised to UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > _MAX_TIMESTAMP_CHARS or not value.isascii():
            raise ValueError("must be an ISO 8601 timestamp with offset")
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            # The stdlib message quotes the input: replace it.
            raise ValueError("must be an ISO 8601 timestamp with offset") from None
    if not isinstance(value, datetime):
        raise ValueError("must be an ISO 8601 timestamp string with offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. +00:00 or Z")
    return value.astimezone(UTC)


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]


class Command(BaseModel):
    """Fields every command carries. ``tenant`` comes from the routing key, never the body."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    TYPE: ClassVar[str] = ""
    # Admin commands run under the reserved tenant "admin" only; their body's
    # "tenant" names the tenant they act on (field ``target``).
    ADMIN: ClassVar[bool] = False

    v: Annotated[Literal[1], BeforeValidator(_version)]
    command_id: Uuid
    type: StrictStr
    expires_at: Timestamp = None
    tenant: Tenant
    # The tenant's own user who asked: stored with what the command creates, counted
    # toward that user's limits.
    user_id: UserId | None = None


class OriginateCommand(Command):
    """Place an outbound call."""

    TYPE: ClassVar[str] = "originate"
    type: Literal["originate"] = "originate"
    destination_number: Phone
    caller_id_number: Phone | None = None
    caller_id_name: CallerIdName | None = None
    privacy: StrictBool = False
    call_id: Uuid | None = None
    timeout_s: Annotated[int, Field(strict=True, ge=5, le=120)] = 30
    gateway: Gateway | None = None
    # What the answered call is connected to (contract/connect.py).
    connect: Connect = Field(default_factory=ParkConnect)
    # None: the configured default (CALLWORKER_MAX_CALL_DURATION_S).
    max_duration_s: Annotated[int, Field(strict=True, ge=1, le=86400)] | None = None


class HangupCommand(Command):
    """Hang up a call."""

    TYPE: ClassVar[str] = "hangup"
    type: Literal["hangup"] = "hangup"
    call_id: Uuid
    cause: Annotated[str, Field(strict=True), AfterValidator(_hangup_cause)] = "NORMAL_CLEARING"


class HoldCommand(Command):
    """Put a call on hold (``hold`` true) or resume it (false)."""

    TYPE: ClassVar[str] = "hold"
    type: Literal["hold"] = "hold"
    call_id: Uuid
    hold: StrictBool = True


class MuteCommand(Command):
    """Mute a call (``muted`` true) or unmute it (false)."""

    TYPE: ClassVar[str] = "mute"
    type: Literal["mute"] = "mute"
    call_id: Uuid
    muted: StrictBool = True


class TransferCommand(Command):
    """Connect an answered call to a number (bridged) or hand it to the dialplan."""

    TYPE: ClassVar[str] = "transfer"
    type: Literal["transfer"] = "transfer"
    call_id: Uuid
    connect: TransferConnect


class PlayCommand(Command):
    """Play a sound file of the sounds directory, or a tone, to the far end; ``loops`` times."""

    TYPE: ClassVar[str] = "play"
    type: Literal["play"] = "play"
    call_id: Uuid
    sound: Annotated[
        str, Field(strict=True), matching(SOUND_RE, "a file name: 1 to 64 of [A-Za-z0-9_-] then .wav")
    ] | None = None
    tone: Annotated[
        str, Field(strict=True), matching(TONE_RE, "<on_ms>,<off_ms>,<hz>, each 1 to 5 digits")
    ] | None = Field(default=None, validate_default=True)
    loops: Annotated[int, Field(strict=True, ge=1, le=100)] = 1

    @field_validator("tone")
    @classmethod
    def _one_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "sound" in info.data and (value is None) == (info.data["sound"] is None):
            raise PydanticCustomError(ONE_OF, "give either sound or tone")
        return value


class DtmfCommand(Command):
    """Send DTMF digits to the far end."""

    TYPE: ClassVar[str] = "dtmf"
    type: Literal["dtmf"] = "dtmf"
    call_id: Uuid
    digits: Annotated[str, Field(strict=True), matching(DIGITS_RE, "1 to 32 of 0-9 * # A-D")]


class RecordCommand(Command):
    """Start or stop recording a call."""

    TYPE: ClassVar[str] = "record"
    type: Literal["record"] = "record"
    call_id: Uuid
    action: Literal["start", "stop"]


class CallGetCommand(Command):
    """Read one call."""

    TYPE: ClassVar[str] = "call.get"
    type: Literal["call.get"] = "call.get"
    call_id: Uuid


class CallListCommand(Command):
    """List calls, newest first; ``from``/``to`` bound ``initiated_at``; ``user_id`` filters."""

    TYPE: ClassVar[str] = "call.list"
    type: Literal["call.list"] = "call.list"
    from_: Timestamp = Field(default=None, alias="from")
    to: Timestamp = None
    status: CallStatus | None = None
    limit: Annotated[int, Field(strict=True, ge=1, le=100)] = 50
    offset: Annotated[int, Field(strict=True, ge=0)] = 0


class CdrListCommand(Command):
    """List call detail records, newest first; ``from``/``to`` bound ``start_stamp``; ``user_id`` filters."""

    TYPE: ClassVar[str] = "cdr.list"
    type: Literal["cdr.list"] = "cdr.list"
    from_: Timestamp = Field(default=None, alias="from")
    to: Timestamp = None
    limit: Annotated[int, Field(strict=True, ge=1, le=1000)] = 100
    offset: Annotated[int, Field(strict=True, ge=0)] = 0


class StatsGetCommand(Command):
    """Call KPIs over ``[from, to)`` (default: the 24 h up to now), in groups."""

    TYPE: ClassVar[str] = "stats.get"
    type: Literal["stats.get"] = "stats.get"
    group_by: Literal["none", "gateway", "hour", "day"] = "none"
    from_: Timestamp = Field(default=None, alias="from")
    to: Timestamp = Field(default=None, validate_default=True)

    @field_validator("to")
    @classmethod
    def _window_fits(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if "from_" in info.data and "group_by" in info.data:
            stats_window(info.data["from_"], value, str(info.data["group_by"]), datetime.now(UTC))
        return value

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``[from, to)`` with the defaults filled in at ``now``."""
        return stats_window(self.from_, self.to, self.group_by, now)


def stats_window(
    from_: datetime | None, to: datetime | None, group_by: str, now: datetime
) -> tuple[datetime, datetime]:
    """``[from, to)`` of stats.get: ``to`` defaults to ``now``, ``from`` to 24 h before ``to``.

    Raises ValueError when ``from`` is not before ``to`` or the range is longer than
    the grouping allows (STATS_MAX_SPAN).
    """
    end = to if to is not None else now
    start = from_ if from_ is not None else end - STATS_DEFAULT_SPAN
    if start >= end:
        raise ValueError("must be after from (from defaults to 24 h before to, to to now)")
    longest = STATS_MAX_SPAN[group_by]
    if end - start > longest:
        span = f"{longest.days} days" if group_by != "hour" else f"{longest // timedelta(hours=1)} hours"
        raise ValueError(f"must be at most {span} after from when grouping by {group_by}")
    return start, end


class CallEventsCommand(Command):
    """The stored events of a call (``call_id``) or flash-call order (``order_id``) from ``from_seq``."""

    TYPE: ClassVar[str] = "call.events"
    type: Literal["call.events"] = "call.events"
    call_id: Uuid | None = None
    order_id: Uuid | None = Field(default=None, validate_default=True)
    from_seq: Annotated[int, Field(strict=True, ge=1)] = 1
    limit: Annotated[int, Field(strict=True, ge=1, le=1000)] = 500

    @field_validator("order_id")
    @classmethod
    def _one_subject(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "call_id" in info.data and (value is None) == (info.data["call_id"] is None):
            raise ValueError("give either call_id or order_id")
        return value


class _PrivacyCommand(Command):
    """A subject: ``phone_number`` or ``user_id`` (exactly one)."""

    phone_number: Phone | None = Field(default=None, validate_default=True)

    @field_validator("phone_number")
    @classmethod
    def _one_subject(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "user_id" in info.data and (value is None) == (info.data["user_id"] is None):
            # Its own error type: a missing subject is not an invalid phone number.
            raise PydanticCustomError(ONE_OF, "give either phone_number or user_id")
        return value


class PrivacyExportCommand(_PrivacyCommand):
    """Everything of the tenant that names a phone number or a user."""

    TYPE: ClassVar[str] = "privacy.export"
    type: Literal["privacy.export"] = "privacy.export"


class PrivacyEraseCommand(_PrivacyCommand):
    """Replace a phone number or a user id everywhere the tenant's rows hold it."""

    TYPE: ClassVar[str] = "privacy.erase"
    type: Literal["privacy.erase"] = "privacy.erase"


class FlashcallCreateCommand(Command):
    """Order a flash call; the configured code length is checked by the service."""

    TYPE: ClassVar[str] = "flashcall.create"
    type: Literal["flashcall.create"] = "flashcall.create"
    phone: FlashcallPhone
    code: Annotated[str, Field(strict=True), matching(_CODE_RE, "1 to 12 digits")] | None = None
    return_code: StrictBool = False


class FlashcallVerifyCommand(Command):
    """Check a code (or the whole caller ID) against a flash-call order."""

    TYPE: ClassVar[str] = "flashcall.verify"
    type: Literal["flashcall.verify"] = "flashcall.verify"
    id: Uuid
    code: Annotated[str, Field(strict=True), matching(_VERIFY_CODE_RE, "1 to 32 digits")]


COMMAND_TYPES: dict[str, type[Command]] = {
    model.TYPE: model
    for model in (
        OriginateCommand,
        HangupCommand,
        HoldCommand,
        MuteCommand,
        TransferCommand,
        PlayCommand,
        DtmfCommand,
        RecordCommand,
        CallGetCommand,
        CallListCommand,
        CdrListCommand,
        CallEventsCommand,
        StatsGetCommand,
        PrivacyExportCommand,
        PrivacyEraseCommand,
        FlashcallCreateCommand,
        FlashcallVerifyCommand,
    )
}
