"""The field types commands share: strict, and every string that may reach FreeSWITCH allow-listed.

Validator messages describe the rule, never the value, because they travel back in
replies and into logs.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from .common import (
    CALLER_ID_NAME_RE,
    FLASHCALL_PHONE_RE,
    GATEWAY_RE,
    PHONE_RE,
    TENANT_RE,
    USER_ID_RE,
    normalize_uuid,
)

__all__ = [
    "CallerIdName",
    "FlashcallPhone",
    "Gateway",
    "Phone",
    "StrictBool",
    "StrictStr",
    "Tenant",
    "UserId",
    "Uuid",
    "matching",
]


def matching(pattern: re.Pattern[str], rule: str) -> AfterValidator:
    """A validator that refuses a string ``pattern`` does not match, naming ``rule``."""

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


StrictStr = Annotated[str, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]
Uuid = Annotated[str, Field(strict=True), AfterValidator(_uuid)]
Phone = Annotated[str, Field(strict=True), matching(PHONE_RE, "an optional '+' then 3 to 15 digits")]
FlashcallPhone = Annotated[
    str, Field(strict=True), matching(FLASHCALL_PHONE_RE, "an optional '+' then 10 to 15 digits")
]
CallerIdName = Annotated[
    str, Field(strict=True), matching(CALLER_ID_NAME_RE, "1 to 64 letters, digits, spaces, '.', '-' or '_'")
]
Gateway = Annotated[
    str, Field(strict=True),
    matching(GATEWAY_RE, "a gateway name: a letter or digit, then up to 63 of [A-Za-z0-9_.-]"),
]
Tenant = Annotated[
    str, Field(strict=True), matching(TENANT_RE, "a tenant name matching [a-z0-9][a-z0-9_-]{0,62}")
]
UserId = Annotated[str, Field(strict=True), matching(USER_ID_RE, "a user id: 1 to 64 of [A-Za-z0-9._@-]")]
