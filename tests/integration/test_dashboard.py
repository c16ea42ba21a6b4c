"""The dashboard against the whole worker, the simulator, the real RabbitMQ and PostgreSQL.

Two tenants place calls at once: each tenant's event stream gets its own events
within a second and none of the other's; the snapshot at connect holds the calls
up now; a wrong token gets 401 and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.dashboard.routes import UNAUTHORIZED
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker
from tests.integration.sse import SseClient, fetch

pytestmark = pytest.mark.integration

TERMINAL = {"call.completed", "call.failed", "call.cancelled"}


@dataclass(frozen=True)
class Tenants:
    a: str
    b: str
    a_token: str
    b_token: str
    admin_token: str


@pytest.fixture
def tenants() -> Tenants:
    n = uuid.uuid4().hex[:8]
    return Tenants(f"ta{n}", f"tb{n}", f"a-tok-{uuid.uuid4().hex}", f"b-tok-{uuid.uuid4().hex}",
                   f"admin-tok-{uuid.uuid4().hex}")


@pytest.fixture
def dash_worker(simulator: Simulator, pg_url: str, amqp_url: str, tmp_path: Path, tenants: Tenants
                ) -> Iterator[Worker]:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f'admin_token: "{tenants.admin_token}"\ntenants:\n'
        f'  {tenants.a}: {{token: "{tenants.a_token}"}}\n  {tenants.b}: {{token: "{tenants.b_token}"}}\n'
    )
    worker = start_worker(make_settings(simulator, pg_url, amqp_url, policy_file=path))
    yield worker
    worker.stop()


@pytest.fixture
def commands(amqp_url: str) -> Iterator[Probe]:
    probe = Probe(amqp_url, event_bindings=("nobody.#",))
    yield probe
    probe.close()


def stream(worker: Worker, query: str, **headers: str) -> SseClient:
    client = SseClient(worker.http.port, f"/api/events?{query}", headers)
    assert client.status == 200, client.response.read()
    return client


def originate(probe: Probe, tenant: str, number: str) -> str:
    call_id = str(uuid.uuid4())
    reply = probe.reply_for(probe.send(tenant, "originate", destination_number=number, call_id=call_id)["command_id"])
    assert reply["ok"], reply
    return call_id


def of_call(call_id: str, last: str = "call.cdr") -> object:
    return lambda m: m.data.get("call_id") == call_id and m.data.get("type") == last


def test_a_tenants_stream_has_its_events_within_a_second_and_none_of_the_other_tenants(
    dash_worker: Worker, commands: Probe, tenants: Tenants
) -> None:
    a = stream(dash_worker, f"token={tenants.a_token}")
    b = stream(dash_worker, f"token={tenants.b_token}")
    admin = stream(dash_worker, f"token={tenants.admin_token}")
    try:
        for client in (a, b, admin):
            assert client.next().event == "snapshot"
        call_a = originate(commands, tenants.a, "+15551230200")  # answers, far end hangs up
        call_b = originate(commands, tenants.b, "+15551230486")  # busy
        got_a = [m for m in a.until(of_call(call_a)) if m.event == "message"]
        got_b = [m for m in b.until(of_call(call_b)) if m.event == "message"]
        assert {m.data["tenant"] for m in got_a} == {tenants.a}
        assert {m.data["call_id"] for m in got_a} == {call_a}
        assert [m.data["type"] for m in got_a] == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
        assert [m.data["seq"] for m in got_a] == [1, 2, 3, 4]
        assert all(m.id == m.data["event_id"] for m in got_a)
        for m in got_a:
            lag = m.arrived - datetime.fromisoformat(m.data["occurred_at"]).timestamp()
            assert lag < 1.0, f"{m.data['type']} reached the page {lag:.2f} s after it happened"
        assert {m.data["tenant"] for m in got_b} == {tenants.b}
        assert got_b[-2].data["type"] == "call.failed"
        # Nothing of the other tenant came later either; the operator saw both.
        assert all(m.data["tenant"] == tenants.a for m in a.drain(0.5))
        assert all(m.data["tenant"] == tenants.b for m in b.drain(0.1))
        ended: set[str] = set()
        while ended != {call_a, call_b}:
            m = admin.next()
            if m.data.get("type") == "call.cdr" and m.data["call_id"] in (call_a, call_b):
                ended.add(m.data["call_id"])
    finally:
        for client in (a, b, admin):
            client.close()


def test_the_snapshot_holds_the_calls_up_now_and_a_reconnect_gets_a_fresh_one(
    dash_worker: Worker, commands: Probe, tenants: Tenants
) -> None:
    watching = stream(dash_worker, f"token={tenants.a_token}")
    try:
        watching.next()
        up = originate(commands, tenants.a, "+15551239001")  # answers and stays up
        other = originate(commands, tenants.b, "+15551239002")
        answered = watching.until(of_call(up, "call.answered"))[-1]
    finally:
        watching.close()
    snap = stream(dash_worker, f"token={tenants.a_token}")
    try:
        first = snap.next()
        assert first.event == "snapshot"
        calls = {c["call_id"]: c for c in first.data["calls"]}
        assert set(calls) == {up}  # tenant B's call is up too, and not here
        assert calls[up]["status"] == "answered" and calls[up]["seq"] >= answered.data["seq"]
        assert calls[up]["tenant"] == tenants.a and calls[up]["on_hold"] is False
        assert first.data["viewer"] == {"tenant": tenants.a, "admin": False, "tenants": []}
        assert sum(first.data["history"]["initiated"]) >= 1 and first.data["history"]["concurrent"][-1] == 1
    finally:
        snap.close()
    for tenant, call_id in ((tenants.a, up), (tenants.b, other)):
        assert commands.reply_for(commands.send(tenant, "hangup", call_id=call_id)["command_id"])["ok"]
    # The page reconnects after a gap (sending the last id it saw): the picture is current.
    again = stream(dash_worker, f"token={tenants.a_token}", **{"Last-Event-ID": answered.id or ""})
    try:
        assert again.next().data["calls"] == []
    finally:
        again.close()
    admin = stream(dash_worker, f"token={tenants.admin_token}&tenant={tenants.b}")
    try:
        assert admin.next().data["viewer"]["tenant"] == tenants.b
    finally:
        admin.close()


def test_without_a_valid_token_the_answer_is_401_and_tells_nothing(
    dash_worker: Worker, tenants: Tenants
) -> None:
    port = dash_worker.http.port
    for path in ("/dashboard", "/api/events", "/api/stats", "/api/mos"):
        for query in ("", "?token=", "?token=wrong", f"?token={tenants.b_token}&tenant={tenants.a}",
                      f"?token={tenants.a_token[:-1]}"):
            assert fetch(port, path + query) == (401, UNAUTHORIZED), path + query
    status, page = fetch(port, f"/dashboard?token={tenants.a_token}")
    assert status == 200 and b"/dashboard/static/dashboard.js" in page



def test_a_token_taken_out_of_the_policy_ends_its_open_streams(
    dash_worker: Worker, tenants: Tenants, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callworker.dashboard.live.KEEPALIVE_S", 0.5)
    a = stream(dash_worker, f"token={tenants.a_token}")
    b = stream(dash_worker, f"token={tenants.b_token}")
    try:
        a.next(), b.next()
        (tmp_path / "policy.yaml").write_text(
            f'admin_token: "{tenants.admin_token}"\ntenants:\n  {tenants.b}: {{token: "{tenants.b_token}"}}\n')
        assert a.ended.wait(10), "the stream of a token no longer in the policy stayed open"
        assert not b.ended.is_set()
        assert fetch(dash_worker.http.port, f"/api/events?token={tenants.a_token}") == (401, UNAUTHORIZED)
    finally:
        a.close()
        b.close()
