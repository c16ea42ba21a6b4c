"""``privacy.export`` and ``privacy.erase`` (thin handlers: the SQL is ``store/privacy.py``), and
the erasure of live calls in memory on every node.

Strategy for live calls: a call that is up is held in memory by its node and
written again with every change, and FreeSWITCH (its CDR) and the dialplan
(hook events) will still name the erased value. So an erase first erases it
from the calls and flash-call orders this node holds (in the journal, so every
batch after it writes the erased values, and what FreeSWITCH says later is
erased the same way), then from the database. Other nodes read the erasure's
token from ``privacy_erasures`` within ``poll_s``, find the live calls whose
values hash to it, and do the same: memory first, then the database again for
what they wrote in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from sqlalchemy.engine import Engine

from callworker.calls.journal import Journal, Unit
from callworker.calls.service import Delivered, finish
from callworker.contract import (
    Command,
    PrivacyEraseCommand,
    PrivacyExportCommand,
    call_snapshot,
    cdr_data,
    reply_ok,
    to_iso,
    utcnow,
)
from callworker.errors import StoreUnavailable
from callworker.store.privacy import Subject, erase, erasures_since, export

__all__ = ["MemoryHolder", "Privacy"]

log = logging.getLogger("callworker.privacy")

_PHONE_FIELDS = ("destination_number", "caller_id_number", "caller_id_name")

# Something else that holds a tenant's values in memory (the flash-call orders):
# ``values(tenant)`` gives (kind, value) pairs to match tokens against;
# ``scrub(unit, subject)`` erases the subject from them inside a journal operation and
# returns how many rows of which table it erased.
MemoryHolder = tuple[Callable[[str], Iterable[tuple[str, str]]], Callable[[Unit, Subject], dict[str, int]]]


def order_view(row: dict[str, Any]) -> dict[str, Any]:
    """A flash-call order as exported: never its code's hash, the caller ID only masked."""
    return {
        "id": row["order_id"],
        "phone": row["phone"],
        "status": row["status"],
        "user_id": row.get("user_id"),
        "cid": {"prefix": row["cid_prefix"], "mask": row["cid_prefix"] + "*" * int(row["code_len"])},
        "code": {"len": row["code_len"]},
        "call_id": row["call_id"],
        "call_status": row["call_status"],
        "hangup_cause": row["hangup_cause"],
        "attempts": row["attempts"],
        "created_at": to_iso(row["created_at"]),
        "expires_at": to_iso(row["expires_at"]),
        "closed_at": to_iso(row["closed_at"]) if row["closed_at"] is not None else None,
    }


def recording_view(row: dict[str, Any]) -> dict[str, Any]:
    """A recording as exported: where its WAV file is (the audio is the operator's to hand over)."""
    return {
        "recording_id": row["recording_id"],
        "call_id": row["call_id"],
        "path": row["path"],
        "status": row["status"],
        "started_at": to_iso(row["started_at"]) if row["started_at"] is not None else None,
        "stopped_at": to_iso(row["stopped_at"]) if row["stopped_at"] is not None else None,
        "duration_ms": row["duration_ms"],
        "size_bytes": row["size_bytes"],
    }


class Privacy:
    def __init__(
        self, *, journal: Journal, engine: Engine, key: bytes, poll_s: float = 1.0,
        on_erased: Callable[[], None] | None = None,
    ) -> None:
        self._journal = journal
        self._engine = engine
        self._key = key
        self._poll_s = poll_s
        # Told after live calls were erased (the limits recount the calls up by their new user ids).
        self._on_erased = on_erased or (lambda: None)
        self.holders: list[MemoryHolder] = []
        self._greenlet: gevent.Greenlet | None = None
        self._seen = 0

    def handlers(self) -> dict[str, Any]:
        return {"privacy.export": self.export, "privacy.erase": self.erase}

    def subject(self, command: PrivacyExportCommand | PrivacyEraseCommand) -> Subject:
        return Subject.of(self._key, command.tenant, phone_number=command.phone_number, user_id=command.user_id)

    # -------------------------------------------------------------- commands

    def export(self, command: PrivacyExportCommand, to: Delivered) -> dict[str, Any]:
        found = export(self._engine, self.subject(command))
        result = {
            "calls": [{**call_snapshot(row), "caller_id_name": row["caller_id_name"]} for row in found["calls"]],
            "cdrs": [cdr_data(row) for row in found["cdrs"]],
            "flashcall_orders": [order_view(row) for row in found["flashcall_orders"]],
            "recordings": [recording_view(row) for row in found["recordings"]],
            "exported_at": to_iso(utcnow()),
        }
        return finish(self._journal, command, to, reply_ok(command.command_id, command.type, result))

    def erase(self, command: PrivacyEraseCommand, to: Delivered) -> dict[str, Any]:
        subject = self.subject(command)
        in_memory = self._erase_live(subject)
        counts = erase(self._engine, subject)
        for table, count in in_memory.items():  # rows the journal wrote erased already
            counts[table] += count
        log.info("privacy.erase of a %s of tenant %s: %s", subject.kind, subject.tenant,
                 ", ".join(f"{name} {count}" for name, count in counts.items()))
        reply = reply_ok(command.command_id, command.type, {"erased": counts})
        # The command record must not keep the user id it erased.
        return finish(self._journal, _without_user(command), to, reply)

    # ------------------------------------------------------------ live calls

    def _erase_live(self, subject: Subject) -> dict[str, int]:
        """Erase the subject from what this node holds in memory; once committed, the rows it erased."""

        def op(unit: Unit) -> dict[str, int]:
            erased = {"calls": 0}
            for record in list(self._journal.calls.values()):
                if record.tenant != subject.tenant:
                    continue
                names = _PHONE_FIELDS if subject.kind == "phone" else ("user_id",)
                changed: dict[str, Any] = {name: subject.scrub_text(getattr(record, name)) for name in names
                                           if subject.names(getattr(record, name))}
                if record.connect is not None:  # the number a click-to-call is yet to place
                    connect = subject.scrub(record.connect)
                    if connect != record.connect:
                        changed["connect"] = connect
                if changed:
                    for name, value in changed.items():
                        setattr(record, name, value)
                    record.scrubs = (*record.scrubs, subject)
                    unit.save(record)
                    erased["calls"] += 1
            for _values, scrub in self.holders:
                for table, count in scrub(unit, subject).items():
                    erased[table] = erased.get(table, 0) + count
            return erased

        erased: dict[str, int] = self._journal.run(op)
        if erased["calls"]:
            self._on_erased()
        return erased

    def start(self, latest_id: int) -> None:
        """Follow erasures recorded after ``latest_id`` (any node's)."""
        self._seen = latest_id
        self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(timeout=1)
            self._greenlet = None

    def _watch(self) -> None:
        while True:
            gevent.sleep(self._poll_s)  # a period, not a wait for something to happen
            try:
                self.follow()
            except StoreUnavailable:
                log.warning("could not read the privacy erasures; will try again")
            except Exception:
                log.exception("following the privacy erasures failed; will try again")

    def follow(self) -> int:
        """Erase from memory (and again from the database) what new erasures name; how many subjects."""
        found = 0
        for row in erasures_since(self._engine, self._seen):
            for subject in self._subjects_held(row["tenant"], row["token"]):
                self._erase_live(subject)
                erase(self._engine, subject)  # what this node wrote before it knew
                found += 1
            self._seen = row["id"]
        return found

    def _subjects_held(self, tenant: str, token: str) -> list[Subject]:
        """The subjects of this node's memory whose token is ``token`` (their clear values are here)."""
        values: set[tuple[str, str]] = set()
        for record in self._journal.calls.values():
            if record.tenant == tenant:
                values.update(("phone", v) for v in (record.destination_number, record.caller_id_number) if v)
                if record.user_id:
                    values.add(("user", record.user_id))
        for holder_values, _scrub in self.holders:
            values.update(holder_values(tenant))
        subjects = []
        for kind, value in values:
            subject = Subject.of(self._key, tenant, **{"phone_number" if kind == "phone" else "user_id": value})
            if subject.token == token:
                subjects.append(subject)
        return subjects


def _without_user(command: Command) -> Command:
    return command.model_copy(update={"user_id": None})
