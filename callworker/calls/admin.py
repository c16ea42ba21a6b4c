"""The admin commands (reserved tenant ``admin``): ``policy.get`` and ``policy.set``.

Thin handlers: the policy book answers and stores; the reply is committed with
the command record like every other reply. The decoder already refused these
commands to every other tenant (``UNKNOWN_COMMAND``) and refused tokens.
"""

from __future__ import annotations

import logging
from typing import Any

from callworker.calls.journal import Journal
from callworker.calls.service import Delivered, finish
from callworker.contract import reply_ok
from callworker.contract.policy import PolicyGetCommand, PolicySetCommand
from callworker.policy import PolicyBook

__all__ = ["AdminCommands"]

log = logging.getLogger("callworker.admin")


class AdminCommands:
    def __init__(self, *, journal: Journal, policy: PolicyBook) -> None:
        self._journal = journal
        self._policy = policy

    def handlers(self) -> dict[str, Any]:
        return {"policy.get": self.policy_get, "policy.set": self.policy_set}

    def policy_get(self, command: PolicyGetCommand, to: Delivered) -> dict[str, Any]:
        result = self._policy.describe(command.target)
        return finish(self._journal, command, to, reply_ok(command.command_id, command.type, result))

    def policy_set(self, command: PolicySetCommand, to: Delivered) -> dict[str, Any]:
        changes = command.changes()
        self._policy.set(command.target, command.user_id, changes)
        # Names of what changed only: the values are the operator's business, not the log's.
        log.info("policy of tenant %s%s set: %s", command.target,
                 f" user {command.user_id}" if command.user_id else "", ", ".join(sorted(changes)) or "nothing")
        result = self._policy.describe(command.target)
        return finish(self._journal, command, to, reply_ok(command.command_id, command.type, result))
