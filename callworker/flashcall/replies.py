"""Committing a flash-call command's outcome: the command record and its reply, in one batch.

A refusal caused by the state of things (RATE_LIMITED, ORDER_*, TOO_MANY_ATTEMPTS)
is a reply like any other; a command that fails validation raises ContractError
for the intake to dead-letter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callworker.calls.journal import Journal, Unit
from callworker.calls.service import Delivered
from callworker.contract import Command, ContractError, ErrorCode, reply_error

__all__ = ["commit_reply", "contract_error", "finish", "refusals_as_replies"]


def contract_error(
    command: Command, code: ErrorCode, message: str, **details: Any
) -> ContractError:
    """An error naming the command; ``message`` and ``details`` never carry a code."""
    return ContractError(
        code, message, details=details, command_id=command.command_id, command_type=command.type
    )


def commit_reply(
    unit: Unit, command: Command, to: Delivered, reply: dict[str, Any], *,
    status: str = "done", call_id: str | None = None,
) -> None:
    """Inside an operation: the command record, and the reply queued with the batch."""
    unit.save_command(
        tenant=command.tenant, command_id=command.command_id, command_type=command.type,
        status=status, reply=reply, call_id=call_id, user_id=command.user_id,
    )
    unit.reply(to.reply_to, to.correlation_id, reply)


def finish(
    journal: Journal, command: Command, to: Delivered, reply: dict[str, Any], *,
    call_id: str | None = None,
) -> dict[str, Any]:
    """Commit the command record and its reply in one batch; returns the reply."""

    def op(unit: Unit) -> dict[str, Any]:
        commit_reply(unit, command, to, reply, call_id=call_id)
        return reply

    return journal.run(op)


def refusals_as_replies(
    journal: Journal, command: Command, to: Delivered, handler: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a handler; a refusal due to the state of things becomes a committed reply."""
    try:
        return handler()
    except ContractError as error:
        if error.dead_letter:
            raise
        return finish(journal, command, to, reply_error(error))
