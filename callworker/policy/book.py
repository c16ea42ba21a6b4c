"""The policy in force: the file's, with the values ``admin.policy.set`` stored over them.

Strategy: everything a command asks (a tenant's or user's limits, a tenant's
rates, whose token this is) is read from one immutable ``InForce`` snapshot,
rebuilt whole whenever the file or the stored overrides change and swapped in
by one assignment: an originate never waits on the file or the database for
its policy. The file is re-read on SIGHUP and when its content changes (read
once a second: a modification time can stay the same across two quick writes);
the stored overrides when their version
changes (checked every ``overrides_poll_s``), so a value set on one node is in
force on every node within that time, and at once on the node that set it. A
file that cannot be used is refused with one log line and the last good one
stays in force; at start there is none, and the worker does not start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from callworker.errors import ConfigError, StoreUnavailable
from callworker.policy.loader import PolicyFileError, file_bytes, read_policy_file
from callworker.policy.model import LIMIT_FIELDS, Limits, PolicyFile, Rate, token_matches
from callworker.store.policy import load_overrides, overrides_version, save_override

__all__ = ["InForce", "PolicyBook", "UNLIMITED"]

log = logging.getLogger("callworker.policy")

UNLIMITED = Limits()
_Key = tuple[str, str]  # (tenant, user_id); user_id '' is the tenant itself


@dataclass(frozen=True)
class InForce:
    """One consistent view of the policy, built from the file and the overrides."""

    file: PolicyFile = field(default_factory=PolicyFile)
    overrides: dict[_Key, dict[str, Any]] = field(default_factory=dict)
    limits: dict[_Key, Limits] = field(default_factory=dict)
    rates: dict[str, tuple[Rate, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, file: PolicyFile, overrides: dict[_Key, dict[str, Any]]) -> InForce:
        limits: dict[_Key, Limits] = {}
        rates: dict[str, tuple[Rate, ...]] = {}
        tenants = set(file.tenants) | {tenant for tenant, _user in overrides}
        for tenant in tenants:
            own = file.tenants.get(tenant)
            limits[(tenant, "")] = _limits(own).merged(overrides.get((tenant, ""), {}))
            stored_rates = overrides.get((tenant, ""), {}).get("rates")
            if stored_rates is not None:
                rates[tenant] = tuple(Rate.model_validate(rate) for rate in stored_rates)
            elif own is not None:
                rates[tenant] = own.rates
            users = set(own.users if own is not None else ()) | {u for t, u in overrides if t == tenant and u}
            for user in users:
                user_file = own.users.get(user) if own is not None else None
                limits[(tenant, user)] = _limits(user_file).merged(overrides.get((tenant, user), {}))
        return cls(file, overrides, limits, rates)


def _limits(source: Limits | None) -> Limits:
    if source is None:
        return UNLIMITED
    return Limits.model_validate({name: getattr(source, name) for name in LIMIT_FIELDS})


class PolicyBook:
    def __init__(
        self, engine: Engine, path: Path | None, *, file_poll_s: float = 1.0, overrides_poll_s: float = 2.0
    ) -> None:
        self._engine = engine
        self._path = path
        self._file_poll_s = file_poll_s
        self._overrides_poll_s = overrides_poll_s
        self._content: bytes | None = None
        self._version: tuple[int, datetime | None] | None = None
        self._greenlet: gevent.Greenlet | None = None
        self.in_force = InForce()

    # ------------------------------------------------------------------ life

    def load(self) -> None:
        """Read the file and the overrides at start; ConfigError if the file cannot be used."""
        if self._path is not None:
            self._content = file_bytes(self._path)
            try:
                file = read_policy_file(self._path, self._content)
            except PolicyFileError as exc:
                raise ConfigError(f"CALLWORKER_POLICY_FILE {self._path}: {exc}") from None
            self.in_force = InForce.build(file, self.in_force.overrides)
        self.refresh_overrides(force=True)
        log.info("policy in force: %d tenant(s)%s", len(self.in_force.file.tenants),
                 f" from {self._path}" if self._path is not None else " (no policy file)")

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(timeout=1)
            self._greenlet = None

    def reload_file(self) -> bool:
        """Read the file again (SIGHUP, or it changed); True when a new policy is in force."""
        if self._path is None:
            return False
        self._content = file_bytes(self._path)
        try:
            file = read_policy_file(self._path, self._content)
        except PolicyFileError as exc:
            log.error("policy file %s refused, the last good policy stays in force: %s", self._path, exc)
            return False
        self.in_force = InForce.build(file, self.in_force.overrides)
        log.info("policy file %s loaded: %d tenant(s)", self._path, len(file.tenants))
        return True

    def refresh_overrides(self, *, force: bool = False) -> bool:
        """Read the stored overrides again if they changed; True when they did."""
        version = overrides_version(self._engine)
        if not force and version == self._version:
            return False
        rows = load_overrides(self._engine)
        overrides = {(row["tenant"], row["user_id"]): dict(row["settings"]) for row in rows}
        try:
            self.in_force = InForce.build(self.in_force.file, overrides)
        except ValidationError:
            log.exception("stored policy overrides cannot be used; the last good ones stay in force")
            return False
        self._version = version
        return True

    def _watch(self) -> None:
        next_overrides = time.monotonic()
        while True:
            gevent.sleep(self._file_poll_s)  # a period, not a wait for something to happen
            try:
                if self._path is not None and file_bytes(self._path) != self._content:
                    self.reload_file()
                if time.monotonic() >= next_overrides:
                    next_overrides = time.monotonic() + self._overrides_poll_s
                    self.refresh_overrides()
            except StoreUnavailable:
                log.warning("could not read the policy overrides; will try again")
            except Exception:
                log.exception("watching the policy failed; will try again")

    # -------------------------------------------------------------- reading

    def limits(self, tenant: str, user_id: str | None) -> tuple[Limits, Limits | None]:
        """The tenant's limits and, when it has any, the user's (checked in addition)."""
        limits = self.in_force.limits
        tenant_limits = limits.get((tenant, ""), UNLIMITED)
        return tenant_limits, limits.get((tenant, user_id)) if user_id else None

    def rates(self, tenant: str) -> tuple[Rate, ...]:
        return self.in_force.rates.get(tenant, ())

    def tenant_for_token(self, token: str) -> str | None:
        """The tenant whose dashboard token this is (never with an empty token)."""
        found = None
        for name, tenant in self.in_force.file.tenants.items():
            if token_matches(tenant.token, token):  # every token compared: no early exit
                found = name
        return found

    def is_admin_token(self, token: str) -> bool:
        return token_matches(self.in_force.file.admin_token, token)

    def describe(self, tenant: str | None = None) -> dict[str, Any]:
        """The policy in force without its tokens (``admin.policy.get``), for one tenant or all."""
        view = self.in_force
        names: Iterable[str] = sorted({t for t, _u in view.limits})
        if tenant is not None:
            names = [tenant]
        return {"tenants": {name: self._describe_tenant(view, name) for name in names}}

    @staticmethod
    def _describe_tenant(view: InForce, tenant: str) -> dict[str, Any]:
        own = view.limits.get((tenant, ""), UNLIMITED)
        users = sorted(u for t, u in view.limits if t == tenant and u)
        stored = {u or "": dict(v) for (t, u), v in view.overrides.items() if t == tenant}
        return {
            **own.model_dump(),
            "rates": [rate.model_dump() for rate in view.rates.get(tenant, ())],
            "users": {user: view.limits[(tenant, user)].model_dump() for user in users},
            "overrides": {
                "tenant": stored.pop("", {}),
                "users": stored,
            },
        }

    # -------------------------------------------------------------- writing

    def set(self, tenant: str, user_id: str | None, changes: dict[str, Any]) -> None:
        """Store values over the file's (None removes one) and put them in force here at once."""
        save_override(self._engine, tenant, user_id or "", changes)
        self.refresh_overrides(force=True)
