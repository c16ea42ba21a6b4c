"""Where a command's reply goes, and committing a reply with its command record.

Every reply is written in the same journal batch as the command record (the
idempotency key), so a command delivered again finds its first reply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callworker.calls.journal import Journal, Unit
from callworker.contract import Command

__all__ = ["Delivered", "finish", "record_new"]


@dataclass(frozen=True)
class Delivered:
    """Where a command's reply goes."""

    reply_to: str | None
    correlation_id: str | None


def _save(unit: Unit, command: Command, to: Delivered, reply: dict[str, Any], call_id: str | None) -> None:
    unit.save_command(
        tenant=command.tenant,
        command_id=command.command_id,
        command_type=command.type,
        status="done",
        reply=reply,
        call_id=call_id,
        user_id=command.user_id,
    )
    unit.reply(to.reply_to, to.correlation_id, reply)


def finish(
    journal: Journal,
    command: Command,
    to: Delivered,
    reply: dict[str, Any],
    *,
    call_id: str | None = None,
    then: Callable[[Unit], None] | None = None,
) -> dict[str, Any]:
    """Commit the command record, its reply, and ``then``'s changes in one batch; returns the reply."""

    def op(unit: Unit) -> dict[str, Any]:
        if then is not None:
            then(unit)
        _save(unit, command, to, reply, call_id)
        return reply

    return journal.run(op)


def record_new(journal: Journal, command: Command, to: Delivered, reply: dict[str, Any]) -> dict[str, Any]:
    """Commit the command record and its reply as *new* (``Journal.open``): AlreadyStored if the
    command was recorded meanwhile (by a copy of it on another node), whose reply then stands."""
    journal.open(lambda unit: _save(unit, command, to, reply, None))
    return reply
