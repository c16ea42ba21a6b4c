"""``stats.get`` and ``admin.stats.get``: the KPIs of a tenant (or of every tenant, for the admin).

A tenant's command reads its own rows only (its routing key's tenant); the admin's
names one tenant in ``tenant`` or, without it, reads every tenant together. The
figures are computed by ``store.stats.call_stats``; the reply is committed with the
command record like every other reply. The range limits of the command keep a reply
within 64 KiB; should a reply still be larger (a great many hangup causes), the last
groups are left out and ``has_more`` says so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.journal import Journal
from callworker.calls.service import Delivered, finish
from callworker.contract import (
    MAX_BODY_BYTES,
    ContractError,
    ErrorCode,
    StatsGetCommand,
    encode_json,
    reply_error,
    reply_ok,
    to_iso,
    utcnow,
)
from callworker.store.stats import call_stats

__all__ = ["StatsCommands", "within_reply"]

# Room left in a reply for its envelope.
_ROOM = MAX_BODY_BYTES - 1024


class StatsCommands:
    def __init__(self, *, journal: Journal, engine: Engine) -> None:
        self._journal = journal
        self._engine = engine

    def handlers(self) -> dict[str, Any]:
        return {"stats.get": self.stats_get}

    def stats_get(self, command: StatsGetCommand, to: Delivered) -> dict[str, Any]:
        try:
            reply = reply_ok(command.command_id, command.type, self._result(command))
        except ContractError as error:
            reply = reply_error(error)
        return finish(self._journal, command, to, reply)

    def _result(self, command: StatsGetCommand) -> dict[str, Any]:
        try:
            start, end = command.window(utcnow())
        except ValueError as error:
            # Valid when decoded; the default "to" (now) moved since.
            raise ContractError(ErrorCode.VALIDATION_ERROR, f"to: {error}", details={"field": "to"},
                                command_id=command.command_id, command_type=command.type) from None
        # The admin's command names its tenant in "tenant" (None: all); a tenant's is its own.
        tenant = getattr(command, "target", None) if command.ADMIN else command.tenant
        groups = call_stats(self._engine, tenant=tenant, from_=start, to=end, group_by=command.group_by)
        return within_reply({"from": to_iso(start), "to": to_iso(end), "group_by": command.group_by,
                             "groups": groups})


def within_reply(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its last groups left out (and ``has_more``) while it would pass 64 KiB."""
    groups = list(result["groups"])
    size = len(encode_json(result))
    while size > _ROOM and len(groups) > 1:
        size -= len(encode_json(groups.pop())) + 1
    if len(groups) == len(result["groups"]):
        return result
    return {**result, "groups": groups, "has_more": True}
