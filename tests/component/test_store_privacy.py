"""Export and erasure in the database: found wherever stored, erased everywhere, the other tenants untouched.

``PrivacyContract`` runs on SQLite here and on PostgreSQL in the integration tier.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from callworker.store import Batch, make_engine, migrate, write_batch
from callworker.store.models import metadata
from callworker.store.privacy import Subject, erase, erasures_since, export, latest_erasure, privacy_key
from callworker.store.usage import placed
from tests.component.test_store import call_row, cdr_row, command_row, event_row

KEY = privacy_key(b"privacy-test-key")
NUMBER = "+15557771234"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def dump(engine: Engine) -> str:
    """Every row of every table, as text."""
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                values = {k: (bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, memoryview)) else v)
                          for k, v in row.items()}
                parts.append(f"{table.name}: {json.dumps(values, default=str)}")
    return "\n".join(parts)


def order_row(order_id: str, tenant: str, phone: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "order_id": order_id, "tenant": tenant, "node": "fs1", "phone": phone, "phone_key": phone.lstrip("+"),
        "status": "verified", "code_hmac": "ab" * 32, "code_len": 4, "cid_prefix": "7487260",
        "call_id": None, "call_status": "dropped", "hangup_cause": None, "attempts": 0, "max_attempts": 3,
        "last_seq": 1, "supersedes": None, "created_at": T0, "expires_at": T0 + timedelta(minutes=5),
        "closed_at": T0, "user_id": None, "updated_at": T0,
    }
    row.update(overrides)
    return row


def stored(engine: Engine, tenant: str, number: str = NUMBER, user: str = "bob") -> dict[str, str]:
    """A tenant's rows naming ``number`` and ``user`` in every table, and one row naming neither."""
    named, other, order_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    envelope = {"v": 1, "tenant": tenant, "type": "call.answered", "call_id": named,
                "data": {"destination_number": number, "user_id": user, "caller_id_number": "+15550000000"}}
    hook = {"v": 1, "tenant": tenant, "type": "hook.survey", "call_id": named,
            "data": {"Channel-Name": f"sofia/gateway/default/{number}"}}
    write_batch(engine, Batch(
        calls=[call_row(named, tenant=tenant, destination_number=number, user_id=user),
               call_row(other, tenant=tenant, destination_number="+15550009999")],
        cdrs=[cdr_row(named, tenant=tenant, destination_number=number, user_id=user),
              cdr_row(other, tenant=tenant, destination_number="+15550009999")],
        events=[event_row(named, 1, tenant=tenant, body=envelope), event_row(named, 2, tenant=tenant, body=hook),
                event_row(other, 1, tenant=tenant)],
        commands=[command_row(str(uuid.uuid4()), tenant=tenant, user_id=user, type="call.get",
                              reply={"ok": True, "result": {"destination_number": number}})],
        outbox=[{"node": "fs1", "exchange": "callworker.events", "routing_key": f"{tenant}.call.answered.{named}",
                 "message_id": None, "correlation_id": None, "headers": None,
                 "body": json.dumps(envelope).encode()}],
        usage=[placed((tenant, user), 1, T0, {})],
    ))
    write_batch(engine, Batch(orders=[order_row(order_id, tenant, number, user_id=user)]))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO policy_overrides (tenant, user_id, settings, updated_at) "
                          "VALUES (:t, :u, '{\"max_concurrent\": 1}', :at)"), {"t": tenant, "u": user, "at": T0})
    return {"named": named, "other": other, "order": order_id}


class PrivacyContract:
    def test_export_finds_every_call_cdr_and_order_naming_the_number(self, engine: Engine) -> None:
        ids = stored(engine, "acme")
        stored(engine, "zeta")
        found = export(engine, Subject.of(KEY, "acme", phone_number=NUMBER.lstrip("+")))
        assert [row["call_id"] for row in found["calls"]] == [ids["named"]]
        assert [row["call_id"] for row in found["cdrs"]] == [ids["named"]]
        assert [row["order_id"] for row in found["flashcall_orders"]] == [ids["order"]]
        by_user = export(engine, Subject.of(KEY, "acme", user_id="bob"))
        assert [row["call_id"] for row in by_user["calls"]] == [ids["named"]]
        assert export(engine, Subject.of(KEY, "acme", user_id="nobody")) == {
            "calls": [], "cdrs": [], "flashcall_orders": [], "recordings": []}

    def test_an_erased_number_is_nowhere_in_the_tenants_rows(self, engine: Engine) -> None:
        stored(engine, "acme")
        stored(engine, "zeta")
        subject = Subject.of(KEY, "acme", phone_number=NUMBER)
        counts = erase(engine, subject)
        assert counts == {"calls": 1, "cdrs": 1, "events": 2, "flashcall_orders": 1}
        everything = dump(engine)
        acme = [line for line in everything.splitlines() if '"acme"' in line or "acme." in line]
        assert acme and not any(NUMBER.lstrip("+") in line for line in acme), [
            line for line in acme if NUMBER.lstrip("+") in line]
        assert subject.token in everything
        zeta = [line for line in everything.splitlines() if '"zeta"' in line and NUMBER in line]
        assert len(zeta) >= 5  # the other tenant's rows keep the same number
        assert "+15550009999" in everything  # other numbers stay
        assert erase(engine, subject) == {"calls": 0, "cdrs": 0, "events": 0, "flashcall_orders": 0}

    def test_an_erased_user_is_nowhere_and_their_counts_carry_on_under_the_token(self, engine: Engine) -> None:
        stored(engine, "acme", number="+15550001111", user="bob")
        stored(engine, "zeta", number="+15550002222", user="bob")
        subject = Subject.of(KEY, "acme", user_id="bob")
        counts = erase(engine, subject)
        assert counts == {"calls": 1, "cdrs": 1, "events": 1, "flashcall_orders": 1}
        everything = dump(engine)
        acme = [line for line in everything.splitlines() if '"acme"' in line]
        assert not any('"bob"' in line for line in acme)
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT tenant, user_id FROM policy_usage ORDER BY tenant")).all()
            overrides = conn.execute(text("SELECT tenant, user_id FROM policy_overrides ORDER BY tenant")).all()
        assert keys == [("acme", subject.token), ("zeta", "bob")]
        assert overrides == [("acme", subject.token), ("zeta", "bob")]

    def test_each_erasure_is_recorded_by_its_token_only(self, engine: Engine) -> None:
        before = latest_erasure(engine)
        subject = Subject.of(KEY, "acme", phone_number=NUMBER)
        erase(engine, subject)
        rows = erasures_since(engine, before)
        assert [(row["tenant"], row["token"]) for row in rows] == [("acme", subject.token)]
        assert latest_erasure(engine) == rows[0]["id"]
        assert erasures_since(engine, rows[0]["id"]) == []


class TestPrivacySqlite(PrivacyContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
