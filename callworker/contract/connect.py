"""What an answered call is connected to (CONTRACT section 3, ``connect``).

``originate`` takes any of the three; ``transfer`` takes ``number`` or ``extension``.
Every string that reaches FreeSWITCH passes an anchored allow-list here and again in
the ESL builders. Whether a ``context`` is one the operator configured is the call
service's to check (it knows the settings).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .common import CALLER_ID_NAME_RE, GATEWAY_RE, PHONE_RE, normalize_uuid

__all__ = [
    "CONTEXT_RE",
    "EXTENSION_RE",
    "Connect",
    "ExtensionConnect",
    "NumberConnect",
    "ParkConnect",
    "TransferConnect",
]

EXTENSION_RE = re.compile(r"\A[A-Za-z0-9_+*#-]{1,32}\Z")
# The shape of a context name (the configured list is checked by the service).
CONTEXT_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def _matching(pattern: re.Pattern[str], rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if pattern.match(value) is None:
            raise ValueError(f"must be {rule}")
        return value

    return AfterValidator(check)


def _uuid(value: str) -> str:
    normalized = normalize_uuid(value)
    if normalized is None:
        raise ValueError("must be a UUID (8-4-4-4-12 hexadecimal digits)")
    return normalized


_Phone = Annotated[str, Field(strict=True), _matching(PHONE_RE, "an optional '+' then 3 to 15 digits")]
_Name = Annotated[
    str, Field(strict=True), _matching(CALLER_ID_NAME_RE, "1 to 64 letters, digits, spaces, '.', '-' or '_'")
]
_Gateway = Annotated[
    str, Field(strict=True),
    _matching(GATEWAY_RE, "a gateway name: a letter or digit, then up to 63 of [A-Za-z0-9_.-]"),
]


class _Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ParkConnect(_Target):
    """The answered call waits under the worker's control, with comfort silence."""

    to: Literal["park"] = "park"


class NumberConnect(_Target):
    """Click-to-call: once this call is answered, a second call is placed and bridged to it."""

    to: Literal["number"]
    destination_number: _Phone
    caller_id_number: _Phone | None = None
    caller_id_name: _Name | None = None
    gateway: _Gateway | None = None
    timeout_s: Annotated[int, Field(strict=True, ge=5, le=120)] = 30
    call_id: Annotated[str, Field(strict=True), AfterValidator(_uuid)] | None = None


class ExtensionConnect(_Target):
    """The answered call is handed to the FreeSWITCH dialplan."""

    to: Literal["extension"]
    extension: Annotated[str, Field(strict=True), _matching(EXTENSION_RE, "1 to 32 of [A-Za-z0-9_+*#-]")]
    context: Annotated[
        str, Field(strict=True), _matching(CONTEXT_RE, "a context name: 1 to 64 of [A-Za-z0-9_.-]")
    ] | None = None


Connect = Annotated[ParkConnect | NumberConnect | ExtensionConnect, Field(discriminator="to")]
TransferConnect = Annotated[NumberConnect | ExtensionConnect, Field(discriminator="to")]
