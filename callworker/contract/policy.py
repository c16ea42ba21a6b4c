"""The policy's wire shapes (CONTRACT section 8): limits, rates, and the admin commands.

The policy file and ``admin.policy.set`` share these models, so a value the file
refuses the command refuses too. Like the other commands they are strict and
describe rules, never values; unlike them, a limit or rate is closed (an unknown
key is an error), so a misspelt limit is refused rather than left unlimited.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .commands import Command, StatsGetCommand, Tenant, UserId

__all__ = [
    "ADMIN_COMMAND_TYPES",
    "ADMIN_TENANT",
    "AdminStatsGetCommand",
    "LIMIT_FIELDS",
    "Limits",
    "PolicyGetCommand",
    "PolicySetCommand",
    "Rate",
]

# The reserved tenant of the admin commands (``admin.<type>``).
ADMIN_TENANT = "admin"
LIMIT_FIELDS = ("can_call", "calls_per_minute", "calls_per_day", "max_concurrent")

_PREFIX_RE = re.compile(r"\A\+?[0-9]{0,15}\Z")
_MAX_COUNT = 2**31 - 1  # the counts are INTEGER columns


def _prefix(value: str) -> str:
    if _PREFIX_RE.match(value) is None:
        raise ValueError("must be a quoted string: an optional '+' then up to 15 digits")
    return value


def _cents(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise ValueError("must have at most 4 decimal places")
    return value


def _not_admin(value: str) -> str:
    if value == ADMIN_TENANT:
        raise ValueError(f"the tenant name {ADMIN_TENANT!r} is reserved for the admin commands")
    return value


# At least 1: a tenant or user that may place no call at all is can_call: false (PERMISSION_DENIED),
# not a limit no wait ever passes.
Count = Annotated[int, Field(strict=True, ge=1, le=_MAX_COUNT)]
Prefix = Annotated[str, Field(strict=True), AfterValidator(_prefix)]
# A JSON or YAML number (integer, or up to 4 decimal places), or such a number as a string.
Cents = Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False), AfterValidator(_cents)]
PolicyTenant = Annotated[Tenant, AfterValidator(_not_admin)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rate(Closed):
    """What a call to numbers starting with ``prefix`` costs (the longest matching prefix wins)."""

    prefix: Prefix
    cents_per_minute: Cents
    increment_s: Annotated[int, Field(strict=True, ge=1, le=3600)] = 1
    min_s: Annotated[int, Field(strict=True, ge=0, le=86400)] = 0

    @property
    def digits(self) -> str:
        return self.prefix.lstrip("+")


class Limits(Closed):
    """Limits of a tenant or a user; None is unlimited (``can_call`` None: allowed)."""

    can_call: Annotated[bool, Field(strict=True)] | None = None
    calls_per_minute: Count | None = None
    calls_per_day: Count | None = None
    max_concurrent: Count | None = None

    def merged(self, over: dict[str, Any]) -> Limits:
        """These limits with ``over``'s values (the stored overrides) in their place."""
        values = {name: getattr(self, name) for name in LIMIT_FIELDS}
        values.update({name: over[name] for name in LIMIT_FIELDS if name in over})
        return Limits.model_validate(values)


class PolicyGetCommand(Command):
    """``admin.policy.get``: the policy in force, for one tenant (``tenant``) or all."""

    TYPE: ClassVar[str] = "policy.get"
    ADMIN: ClassVar[bool] = True
    type: Literal["policy.get"] = "policy.get"
    target: PolicyTenant | None = None


class PolicySetCommand(Command):
    """``admin.policy.set``: store limits (and rates) of a tenant or user over the file's.

    A field given as null removes the stored value (the file's is in force again);
    a field not given is left as it is. Tokens are never set by command.
    """

    TYPE: ClassVar[str] = "policy.set"
    ADMIN: ClassVar[bool] = True
    type: Literal["policy.set"] = "policy.set"
    target: PolicyTenant
    user_id: UserId | None = None
    can_call: Annotated[bool, Field(strict=True)] | None = None
    calls_per_minute: Count | None = None
    calls_per_day: Count | None = None
    max_concurrent: Count | None = None
    rates: list[Rate] | None = None
    token: Any = None
    admin_token: Any = None

    @field_validator("token", "admin_token")
    @classmethod
    def _no_tokens(cls, value: Any) -> Any:
        raise ValueError("tokens are set in the policy file only, never by command")

    @field_validator("rates")
    @classmethod
    def _rates_per_tenant(cls, value: list[Rate] | None, info: Any) -> list[Rate] | None:
        if value is not None and info.data.get("user_id") is not None:
            raise ValueError("rates belong to a tenant: set them without user_id")
        return value

    def changes(self) -> dict[str, Any]:
        """The values to store (None: remove), only those the command names."""
        names = [*LIMIT_FIELDS, "rates"]
        given = {name: getattr(self, name) for name in names if name in self.model_fields_set}
        if given.get("rates") is not None:
            given["rates"] = [rate.model_dump(mode="json") for rate in given["rates"]]
        return given


class AdminStatsGetCommand(StatsGetCommand):
    """``admin.stats.get``: the KPIs of one tenant (``tenant``) or of every tenant together."""

    ADMIN: ClassVar[bool] = True
    target: PolicyTenant | None = None


ADMIN_COMMAND_TYPES: dict[str, type[Command]] = {
    model.TYPE: model for model in (PolicyGetCommand, PolicySetCommand, AdminStatsGetCommand)
}
