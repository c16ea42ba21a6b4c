"""The error tree of callworker. Third-party exceptions are wrapped at the boundary."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallworkerError",
    "ConfigError",
    "FreeSwitchError",
    "FreeSwitchUnavailable",
    "FreeSwitchNotSent",
    "FreeSwitchTimeout",
    "FreeSwitchAuthError",
    "FreeSwitchUnreadable",
    "ProtocolError",
    "UnsafeValue",
    "BrokerUnavailable",
    "PublishFailed",
    "StoreUnavailable",
    "AlreadyStored",
    "HeldElsewhere",
    "OverLimit",
]


class CallworkerError(Exception):
    """Root of every error callworker raises on purpose."""


class ConfigError(CallworkerError):
    """The settings are invalid."""


class FreeSwitchError(CallworkerError):
    """FreeSWITCH could not be used as asked."""


class FreeSwitchUnavailable(FreeSwitchError):
    """No usable ESL connection: not connected, dropped, or closed mid-command."""


class FreeSwitchNotSent(FreeSwitchUnavailable):
    """No usable connection, and nothing of the command reached FreeSWITCH: safe to send again.

    Any other FreeSwitchUnavailable from a command may come after FreeSWITCH got it.
    """


class FreeSwitchTimeout(FreeSwitchUnavailable):
    """FreeSWITCH did not reply in time; the connection was closed and will be reopened."""


class FreeSwitchAuthError(FreeSwitchError):
    """FreeSWITCH refused the ESL password or the connection (ACL)."""


class FreeSwitchUnreadable(FreeSwitchError):
    """FreeSWITCH answered, but not in a form that says what was asked: the answer is unknown."""


class ProtocolError(CallworkerError):
    """The peer sent bytes that are not valid event-socket framing."""


class UnsafeValue(CallworkerError, ValueError):
    """A value failed the allow-list check before it could reach an ESL command."""


class BrokerUnavailable(CallworkerError):
    """No usable RabbitMQ connection."""


class PublishFailed(CallworkerError):
    """RabbitMQ did not confirm a publish (nack, return, or connection lost before the confirm)."""


class StoreUnavailable(CallworkerError):
    """The database could not be reached or refused the transaction."""


class AlreadyStored(CallworkerError):
    """A call or command written as new names a call id or command id the database holds already."""


class HeldElsewhere(CallworkerError):
    """What the command acts on is held by another node; only that node may execute it."""

    def __init__(self, node: str) -> None:
        super().__init__(f"held by node {node}")
        self.node = node


class OverLimit(CallworkerError):
    """A new call was refused by the database: it would take a count over a limit.

    ``refusal`` says which limit and when to retry, or is only the limit's name
    when the counts moved under it while it was judged (retry in a moment).
    """

    def __init__(self, refusal: Any) -> None:
        super().__init__("over a limit")
        self.refusal = refusal
