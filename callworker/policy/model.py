"""The policy file's shape (CONTRACT section 8): tenants, their tokens, limits, rates and users.

Strategy: one pydantic model per level, strict (``"60"`` is not 60, an unquoted
``+44`` that YAML reads as the number 44 is not a prefix) and closed (an unknown
key is an error, so a misspelt ``call_per_minute`` is refused instead of being
silently unlimited). Limits and rates are the contract's (``admin.policy.set``
takes the same). Every limit is optional: absent means unlimited. Tokens are
secrets: held as ``SecretStr``, compared in constant time, never dumped.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from callworker.contract.commands import UserId
from callworker.contract.policy import ADMIN_TENANT, LIMIT_FIELDS, Closed, Limits, PolicyTenant, Rate

__all__ = [
    "ADMIN_TENANT",
    "LIMIT_FIELDS",
    "Limits",
    "PolicyFile",
    "Rate",
    "TenantPolicy",
    "UserPolicy",
    "token_matches",
]


class UserPolicy(Limits):
    """A user's limits, checked in addition to the tenant's."""


class TenantPolicy(Limits):
    token: SecretStr | None = None
    rates: tuple[Rate, ...] = ()
    users: dict[UserId, UserPolicy] = {}


class PolicyFile(Closed):
    """The whole file."""

    admin_token: SecretStr | None = None
    tenants: dict[PolicyTenant, TenantPolicy] = {}


def token_matches(secret: SecretStr | None, given: str) -> bool:
    """Whether ``given`` is the token, compared in constant time; never with an unset token."""
    if secret is None or not given:
        return False
    return hmac.compare_digest(secret.get_secret_value().encode(), given.encode())
