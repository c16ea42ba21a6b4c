"""What an answered call is connected to (CONTRACT section 3, ``connect``).

``originate`` takes any of the three; ``transfer`` takes ``number`` or ``extension``.
Every string that reaches FreeSWITCH passes an anchored allow-list here and again in
the ESL builders. Whether a ``context`` is one the operator configured is the call
service's to check (it knows the settings).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .fields import CallerIdName, Gateway, Phone, Uuid, matching

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


class _Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ParkConnect(_Target):
    """The answered call waits under the worker's control, with comfort silence."""

    to: Literal["park"] = "park"


class NumberConnect(_Target):
    """Click-to-call: once this call is answered, a second call is placed and bridged to it."""

    to: Literal["number"]
    destination_number: Phone
    caller_id_number: Phone | None = None
    caller_id_name: CallerIdName | None = None
    gateway: Gateway | None = None
    timeout_s: Annotated[int, Field(strict=True, ge=5, le=120)] = 30
    call_id: Uuid | None = None


class ExtensionConnect(_Target):
    """The answered call is handed to the FreeSWITCH dialplan."""

    to: Literal["extension"]
    extension: Annotated[str, Field(strict=True), matching(EXTENSION_RE, "1 to 32 of [A-Za-z0-9_+*#-]")]
    context: Annotated[
        str, Field(strict=True), matching(CONTEXT_RE, "a context name: 1 to 64 of [A-Za-z0-9_.-]")
    ] | None = None


Connect = Annotated[ParkConnect | NumberConnect | ExtensionConnect, Field(discriminator="to")]
TransferConnect = Annotated[NumberConnect | ExtensionConnect, Field(discriminator="to")]
