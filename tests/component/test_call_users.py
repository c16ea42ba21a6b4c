"""user_id: stored with the call, its CDR and its command record; call.list and cdr.list filter on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callworker.calls.service import Delivered
from callworker.store import get_call, get_cdr, get_command, make_engine, migrate
from tests.component.test_call_cost import end_call
from tests.component.test_call_limits import Rig, build, command


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    path = tmp_path / "policy.yaml"
    path.write_text("tenants: {}\n")
    rig = build(engine, path)
    yield rig
    rig.journal.stop()
    engine.dispose()


def test_the_user_is_stored_with_the_call_its_cdr_and_its_command(rig: Rig) -> None:
    cmd = command("acme", "originate", destination_number="+15551230001", user_id="alice")
    call_id = rig.service.execute(cmd, Delivered(None, None))["result"]["call_id"]
    end_call(rig, call_id, 5, None)
    call, cdr = get_call(rig.engine, "acme", call_id), get_cdr(rig.engine, "acme", call_id)
    record = get_command(rig.engine, "acme", cmd.command_id)
    assert call is not None and cdr is not None and record is not None
    assert (call["user_id"], cdr["user_id"], record["user_id"]) == ("alice", "alice", "alice")


def test_lists_filter_on_the_user(rig: Rig) -> None:
    placed: dict[str | None, list[str]] = {"alice": [], "bob": [], None: []}
    for user in ("alice", "bob", "alice", None):
        fields = {"user_id": user} if user else {}
        call_id = rig.originate(**fields)["result"]["call_id"]
        end_call(rig, call_id, 1, None)
        placed[user].append(call_id)

    def listed(command_type: str, key: str, **fields: object) -> list[str]:
        result = rig.service.execute(command("acme", command_type, **fields), Delivered(None, None))["result"]
        return sorted(row["call_id"] for row in result[key])

    assert listed("call.list", "calls", user_id="alice") == sorted(placed["alice"])
    assert listed("cdr.list", "cdrs", user_id="alice") == sorted(placed["alice"])
    assert listed("call.list", "calls", user_id="bob") == placed["bob"]
    assert listed("cdr.list", "cdrs", user_id="carol") == []
    assert len(listed("call.list", "calls")) == 4 and len(listed("cdr.list", "cdrs")) == 4
    page = rig.service.execute(command("acme", "call.list", user_id="alice", limit=1), Delivered(None, None))
    assert page["result"]["total_count"] == 2 and page["result"]["has_more"] is True
