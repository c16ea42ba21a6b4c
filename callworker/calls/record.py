"""A call as the worker holds it in memory while it is live."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from callworker.calls.states import Status
from callworker.store.privacy import ERASED_PREFIX, Subject

__all__ = ["CallRecord", "CALL_COLUMNS"]


@dataclass(slots=True)
class CallRecord:
    call_id: str
    tenant: str
    node: str
    direction: str
    status: Status
    initiated_at: datetime
    destination_number: str | None = None
    caller_id_number: str | None = None
    caller_id_name: str | None = None
    on_hold: bool = False
    muted: bool = False
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: str | None = None
    last_seq: int = 0
    hangup_requested: bool = False
    flashcall_order_id: str | None = None
    user_id: str | None = None
    # Counted toward the limits while live (its end gives the slot back).
    counted: bool = False
    # Set once, when the call ends and its CDR is stored.
    cost_cents: int | None = None
    quality_score: float | None = None
    # The other call's call_id while this one is bridged to it.
    bridged_with: str | None = None
    # What the answered call is connected to, and the state of that connection
    # (calls/connect.py): the second call of a click-to-call, whether they were bridged.
    connect: dict[str, Any] | None = None
    # The gateway an outbound call was placed through (None: inbound).
    gateway: str | None = None
    # Not persisted: whether FreeSWITCH has shown a channel for this call yet.
    channel_seen: bool = False
    # Not persisted: the hold and mute state last asked of FreeSWITCH (None: never asked).
    # FreeSWITCH's CHANNEL_HOLD comes after the command's reply, and mute has no event, so
    # a second command right after the first must compare with what was asked, not with
    # what has been reported.
    hold_asked: bool | None = None
    mute_asked: bool | None = None
    # Not persisted: what privacy.erase erased from this live call; what FreeSWITCH or the
    # dialplan still say of it (its CDR, hook events) is erased the same way.
    scrubs: tuple[Subject, ...] = ()

    def row(self, now: datetime) -> dict[str, Any]:
        """The ``calls`` table row."""
        row = {name: getattr(self, name) for name in CALL_COLUMNS}
        row["status"] = str(self.status)
        row["updated_at"] = now
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallRecord:
        values = {name: row[name] for name in CALL_COLUMNS if name in row}
        values["status"] = Status(values["status"])
        return cls(**values)


    def bridged_partner(self) -> str | None:
        """The call this one is or was bridged to (the CDR's ``bridged_with``)."""
        if self.bridged_with is not None:
            return self.bridged_with
        if self.connect and self.connect.get("bridged"):
            return self.connect.get("partner")
        return None

    def scrubbed(self, data: Any) -> Any:
        """``data`` with what was erased from this call erased from it too."""
        for subject in self.scrubs:
            data = subject.scrub(data)
        return data

    def is_erased(self, name: str) -> bool:
        value = getattr(self, name)
        return isinstance(value, str) and ERASED_PREFIX in value


CALL_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(CallRecord) if f.name not in ("channel_seen", "hold_asked", "mute_asked", "scrubs")
)
