"""Who is looking: a tenant's token sees that tenant, the admin token every tenant or one it picks.

A missing, empty or unknown token gives no viewer at all; the caller answers 401
with one body for every such case, so the answer tells nothing about any tenant.
Tokens are compared in constant time by the policy (``token_matches``) and are
never logged or echoed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

from callworker.contract import TENANT_RE

__all__ = ["TokenBook", "Viewer", "query", "viewer_for"]

# The longest token looked at; anything longer is not a token of ours.
_MAX_TOKEN = 512


class TokenBook(Protocol):
    def tenant_for_token(self, token: str) -> str | None: ...

    def is_admin_token(self, token: str) -> bool: ...


@dataclass(frozen=True)
class Viewer:
    """What one request may see: ``tenant`` None means every tenant (the operator's view)."""

    tenant: str | None
    admin: bool

    @property
    def binding(self) -> str:
        """The routing key the viewer's event queue is bound with on ``callworker.events``."""
        return "#" if self.tenant is None else f"{self.tenant}.#"


def query(environ: dict[str, object]) -> dict[str, str]:
    """The query string's parameters, the first value of each."""
    raw = str(environ.get("QUERY_STRING") or "")
    return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}


def viewer_for(book: TokenBook, params: dict[str, str]) -> Viewer | None:
    """The viewer a request's ``token`` (and for the operator, ``tenant``) stands for, or None.

    None for no token, a wrong one, or a tenant's token asking for another tenant.
    """
    token = params.get("token", "")
    if not token or len(token) > _MAX_TOKEN:
        return None
    admin = book.is_admin_token(token)
    own = book.tenant_for_token(token)  # both asked every time: no shortcut to time
    picked = params.get("tenant") or None
    if admin:
        if picked is not None and TENANT_RE.match(picked) is None:
            return None
        return Viewer(tenant=picked, admin=True)
    if own is None or (picked is not None and picked != own):
        return None
    return Viewer(tenant=own, admin=False)
