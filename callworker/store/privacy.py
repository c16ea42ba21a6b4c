"""``privacy.export`` and ``privacy.erase``: what a tenant stores naming a phone number or a user.

Strategy: a *subject* is a phone number (its digits: ``+15551230001`` and
``15551230001`` are one number) or a user id, of one tenant. A phone number is
matched as a whole number wherever it stands in text: not preceded or
followed by a digit or letter (``5551230001`` is not inside ``+15551230001``,
``123`` not inside a UUID); a user id as a whole value (a ``user_id`` column,
or a JSON string equal to it).
Candidate rows are found by the database (the tenant's rows whose text holds
the digits or the id), the exact match and the rewrite are done here, row by
row, in small transactions: an erase is idempotent, so one cut short is simply
asked again.

Erasing replaces the value by ``erased:<keyed hash>`` (the same token for the
same value of the same tenant, so rows that named one person still name one
person, and nothing recovers the value without the key) in every table: calls,
CDRs, stored events, flash-call orders, command records (their replies
included), the events of the tenant still in the outbox, the limits' counts and
the policy overrides of an erased user. The erasure itself is recorded by its
token only (``privacy_erasures``): every node reads it to erase the value from
the calls it holds in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, cast, delete, func, or_, select, update
from sqlalchemy.types import Text

from callworker.store.db import autocommit, fetch_all, guarded
from callworker.store.models import (
    CALLS,
    CDRS,
    COMMANDS,
    ERASURES,
    EVENTS,
    FLASHCALL_ORDERS,
    OUTBOX,
    OVERRIDES,
    RECORDINGS,
    USAGE,
    utcnow,
)

__all__ = [
    "ERASED_PREFIX",
    "Subject",
    "erase",
    "erasures_since",
    "export",
    "latest_erasure",
    "privacy_key",
]

ERASED_PREFIX = "erased:"
_TOKEN_HEX = 24  # 96 bits: "erased:" and the token fit every number column (32 characters)
_CHUNK = 200  # rows rewritten per transaction
# Text columns that may name a phone number, per table.
_PHONE_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("destination_number", "caller_id_number", "caller_id_name"),
    "cdrs": ("destination_number", "caller_id_number", "caller_id_name"),
    "flashcall_orders": ("phone", "phone_key"),
}


def privacy_key(secret: bytes) -> bytes:
    """The key of the erasure tokens, derived from the worker's HMAC key (a separate use of it)."""
    return hmac.new(secret, b"callworker privacy erasure", hashlib.sha256).digest()


@dataclass(frozen=True)
class Subject:
    """A phone number (``kind`` "phone", its digits) or a user id (``kind`` "user") of one tenant."""

    tenant: str
    kind: str
    value: str
    token: str

    @classmethod
    def of(cls, key: bytes, tenant: str, *, phone_number: str | None = None, user_id: str | None = None) -> Subject:
        if (phone_number is None) == (user_id is None):
            raise ValueError("a subject is a phone number or a user id")
        kind, value = ("phone", phone_number.lstrip("+")) if phone_number is not None else ("user", str(user_id))
        message = f"{tenant}\0{kind}\0{value}".encode()
        token = ERASED_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()[:_TOKEN_HEX]
        return cls(tenant, kind, value, token)

    @property
    def _pattern(self) -> re.Pattern[str]:
        # A whole number: no digit, letter or '+' before it (a UUID's hex, a longer number), no
        # digit or letter after it; "/+1555...", "sip:1555...@" and the bare value all match.
        return re.compile(rf"(?<![0-9A-Za-z+])\+?{re.escape(self.value)}(?![0-9A-Za-z])")

    def names(self, text: str | None) -> bool:
        """Whether a text value names the subject."""
        if text is None:
            return False
        if self.kind == "user":
            return text == self.value
        return self._pattern.search(text) is not None

    def scrub_text(self, text: str) -> str:
        if self.kind == "user":
            return self.token if text == self.value else text
        return self._pattern.sub(self.token, text)

    def scrub(self, value: Any) -> Any:
        """``value`` (text, or JSON made of dicts, lists and scalars) with the subject replaced."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    @property
    def needle(self) -> str:
        """What a row's text must contain to be a candidate (LIKE, escaped with '\\')."""
        escaped = self.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


# ------------------------------------------------------------------ export


@guarded
def export(engine: Engine, subject: Subject) -> dict[str, list[dict[str, Any]]]:
    """The tenant's calls, CDRs and flash-call orders that name the subject, and the recordings
    of those calls (rows as stored)."""
    calls = _matching_rows(engine, CALLS, subject, CALLS.c.initiated_at)
    return {
        "calls": calls,
        "cdrs": _matching_rows(engine, CDRS, subject, CDRS.c.start_stamp),
        "flashcall_orders": _matching_rows(engine, FLASHCALL_ORDERS, subject, FLASHCALL_ORDERS.c.created_at),
        "recordings": _recordings_of(engine, subject.tenant, [row["call_id"] for row in calls]),
    }


def _recordings_of(engine: Engine, tenant: str, call_ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start in range(0, len(call_ids), _CHUNK):
        chunk = call_ids[start : start + _CHUNK]
        stmt = select(RECORDINGS).where(RECORDINGS.c.tenant == tenant, RECORDINGS.c.call_id.in_(chunk))
        rows.extend(fetch_all(engine, stmt))
    return rows


def _candidates(table: Table, subject: Subject) -> Any:
    if subject.kind == "user":
        return table.c.user_id == subject.value
    columns = _PHONE_COLUMNS[table.name]
    return or_(*(table.c[name].like(subject.needle, escape="\\") for name in columns))


def _row_names(table: Table, subject: Subject, row: dict[str, Any]) -> bool:
    if subject.kind == "user":
        return bool(row.get("user_id") == subject.value)
    return any(subject.names(row.get(name)) for name in _PHONE_COLUMNS[table.name])


def _matching_rows(engine: Engine, table: Table, subject: Subject, newest: Any) -> list[dict[str, Any]]:
    stmt = select(table).where(table.c.tenant == subject.tenant, _candidates(table, subject)).order_by(newest.desc())
    return [row for row in fetch_all(engine, stmt) if _row_names(table, subject, row)]


# ------------------------------------------------------------------- erase


@guarded
def erase(engine: Engine, subject: Subject) -> dict[str, int]:
    """Replace the subject by its token everywhere the tenant's rows hold it; counts of rows changed.

    Records the erasure (its token) for the nodes' calls in memory first, so a
    node that holds one of the subject's live calls erases it even if this is
    cut short.
    """
    with autocommit(engine).begin() as conn:
        conn.execute(ERASURES.insert().values(tenant=subject.tenant, token=subject.token, created_at=utcnow()))
    counts = {
        # A call's connection holds the number a click-to-call is yet to place.
        "calls": _erase_columns(engine, CALLS, subject)
        + _erase_json(engine, CALLS, "connect", (CALLS.c.call_id,), subject),
        "cdrs": _erase_columns(engine, CDRS, subject),
        "events": _erase_json(engine, EVENTS, "body", (EVENTS.c.event_id,), subject),
        "flashcall_orders": _erase_columns(engine, FLASHCALL_ORDERS, subject),
    }
    _erase_columns(engine, COMMANDS, subject)
    _erase_json(engine, COMMANDS, "reply", (COMMANDS.c.tenant, COMMANDS.c.command_id), subject)
    _erase_outbox(engine, subject)
    if subject.kind == "user":
        _erase_user_keys(engine, subject)
    return counts


def _keys(table: Table) -> tuple[Any, ...]:
    return tuple(table.primary_key.columns)


def _chunks(engine: Engine, stmt: Any) -> Iterator[list[dict[str, Any]]]:
    rows = fetch_all(engine, stmt)
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _erase_columns(engine: Engine, table: Table, subject: Subject) -> int:
    """Rewrite the columns that name the subject (phone columns, or user_id); rows changed."""
    columns = ("user_id",) if subject.kind == "user" else _PHONE_COLUMNS.get(table.name, ())
    if not columns:
        return 0
    keys = _keys(table)
    stmt = select(*keys, *(table.c[name] for name in columns)).where(
        table.c.tenant == subject.tenant, _candidates(table, subject)
    )
    changed = 0
    for chunk in _chunks(engine, stmt):
        with engine.begin() as conn:
            for row in chunk:
                values = {name: subject.scrub_text(row[name]) for name in columns if subject.names(row[name])}
                if values:
                    conn.execute(update(table).where(*(k == row[k.name] for k in keys)).values(**values))
                    changed += 1
    return changed


def _erase_json(engine: Engine, table: Table, column: str, keys: tuple[Any, ...], subject: Subject) -> int:
    """Rewrite the JSON documents of the tenant that name the subject; rows changed."""
    # A user id is looked for as a JSON string ("alice"); '_' in one only widens the search.
    needle = subject.needle if subject.kind == "phone" else f"%{json.dumps(subject.value)}%"
    text = cast(table.c[column], Text)
    stmt = select(*keys, table.c[column]).where(table.c.tenant == subject.tenant, text.like(needle, escape="\\"))
    return _rewrite(engine, table, column, keys, stmt, subject.scrub)


def _rewrite(
    engine: Engine, table: Table, column: str, keys: tuple[Any, ...], stmt: Any, scrub: Callable[[Any], Any]
) -> int:
    changed = 0
    for chunk in _chunks(engine, stmt):
        with engine.begin() as conn:
            for row in chunk:
                scrubbed = scrub(row[column])
                if scrubbed != row[column]:
                    conn.execute(update(table).where(*(k == row[k.name] for k in keys)).values({column: scrubbed}))
                    changed += 1
    return changed


def _erase_outbox(engine: Engine, subject: Subject) -> None:
    """The tenant's events not yet published go out erased (replies, whose tenant no row says, as they are)."""
    digits = subject.value.encode()
    stmt = select(OUTBOX.c.id, OUTBOX.c.body).where(func.length(OUTBOX.c.body) > 0)
    for chunk in _chunks(engine, stmt):
        with engine.begin() as conn:
            for row in chunk:
                body = bytes(row["body"])
                if digits not in body:
                    continue
                try:
                    envelope = json.loads(body)
                except ValueError:
                    continue
                if not isinstance(envelope, dict) or envelope.get("tenant") != subject.tenant:
                    continue
                scrubbed = subject.scrub(envelope)
                if scrubbed != envelope:
                    new_body = json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":")).encode()
                    conn.execute(update(OUTBOX).where(OUTBOX.c.id == row["id"]).values(body=new_body))


def _erase_user_keys(engine: Engine, subject: Subject) -> None:
    """The user's limits' counts and stored policy carry on under the token."""
    with engine.begin() as conn:
        for table in (USAGE, OVERRIDES):
            old = (table.c.tenant == subject.tenant, table.c.user_id == subject.value)
            new = (table.c.tenant == subject.tenant, table.c.user_id == subject.token)
            if conn.execute(select(table.c.tenant).where(*old)).first() is None:
                continue
            if conn.execute(select(table.c.tenant).where(*new)).first() is not None:
                conn.execute(delete(table).where(*new))  # erased before: the newer row carries on
            conn.execute(update(table).where(*old).values(user_id=subject.token))


@guarded
def erasures_since(engine: Engine, after_id: int) -> list[dict[str, Any]]:
    """Erasures recorded after ``after_id``: id, tenant, token."""
    stmt = select(ERASURES.c.id, ERASURES.c.tenant, ERASURES.c.token).where(ERASURES.c.id > after_id)
    return fetch_all(engine, stmt.order_by(ERASURES.c.id))


@guarded
def latest_erasure(engine: Engine) -> int:
    """The id of the newest erasure recorded (0: none)."""
    with autocommit(engine).connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(ERASURES.c.id), 0))).scalar_one())
