"""The dashboard's routes on SQLite: who sees what, 401s that tell nothing, tokens never logged."""

from __future__ import annotations

import http.client
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, insert

from callworker.dashboard import Dashboard, Viewer, viewer_for
from callworker.dashboard.picture import snapshot
from callworker.dashboard.routes import UNAUTHORIZED
from callworker.errors import BrokerUnavailable
from callworker.http import HttpServer
from callworker.policy import PolicyBook
from callworker.store import make_engine, migrate
from callworker.store.models import CALLS, CDRS
from callworker.store.stats import call_stats
from tests.component.test_store import call_row, cdr_row

ADMIN, ACME, BETA = "admin-tok-5d1f", "acme-tok-8c2a", "beta-tok-73e0"
POLICY = f"""\
admin_token: "{ADMIN}"
tenants:
  acme: {{token: "{ACME}"}}
  beta: {{token: "{BETA}"}}
"""
NOW = datetime.now(UTC)
Answer = tuple[str, dict[str, str], bytes]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'dash.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(CALLS), [
            call_row(tenant="acme", status="answered", initiated_at=NOW - timedelta(seconds=30),
                     answered_at=NOW - timedelta(seconds=20), last_seq=3, destination_number="+15550001111"),
            call_row(tenant="acme", status="completed", initiated_at=NOW - timedelta(minutes=5),
                     ended_at=NOW - timedelta(minutes=4), last_seq=5),
            call_row(tenant="beta", status="ringing", initiated_at=NOW - timedelta(seconds=5), last_seq=2,
                     destination_number="+15550002222"),
        ])
        conn.execute(insert(CDRS), [
            cdr_row(str(uuid.uuid4()), tenant="acme", start_stamp=NOW - timedelta(minutes=10), rtp_audio_in_mos=4.4),
            cdr_row(str(uuid.uuid4()), tenant="acme", start_stamp=NOW - timedelta(minutes=9), rtp_audio_in_mos=3.0),
            cdr_row(str(uuid.uuid4()), tenant="beta", start_stamp=NOW - timedelta(minutes=8), rtp_audio_in_mos=2.0),
        ])
    yield engine
    engine.dispose()


@pytest.fixture
def book(engine: Engine, tmp_path: Path) -> PolicyBook:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    book = PolicyBook(engine, path)
    book.load()
    return book


@pytest.fixture
def dashboard(book: PolicyBook, engine: Engine) -> Dashboard:
    return Dashboard(book=book, tenants=lambda: list(book.in_force.file.tenants), engine=engine,
                     subscribe=no_broker)


def no_broker(binding: str) -> Any:
    raise BrokerUnavailable("RabbitMQ at 127.0.0.1:1 is not ready")


def get(dashboard: Dashboard, path: str, query: str = "") -> Answer:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = dashboard.handle({"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}, start_response)
    assert body is not None, f"{path} is not a dashboard route"
    return seen["status"], seen["headers"], b"".join(body)


def mos(dashboard: Dashboard, query: str) -> dict[str, int]:
    status, _headers, body = get(dashboard, "/api/mos", query)
    assert status == "200 OK", body
    return {band["band"]: band["calls"] for band in json.loads(body)["bands"]}


PROTECTED = ("/dashboard", "/api/events", "/api/stats", "/api/mos")
REFUSED = ("", "token=", "token=nope", f"token={ACME[:-1]}", f"token={ACME}x", f"token={ACME}&tenant=beta",
           "tenant=acme", f"token={ADMIN}&tenant=Not%20A%20Tenant", "token=" + "a" * 2000)


@pytest.mark.parametrize("path", PROTECTED)
def test_without_a_valid_token_every_route_answers_401_and_the_same_body(dashboard: Dashboard, path: str) -> None:
    answers = [get(dashboard, path, query) for query in REFUSED]
    assert {status for status, _h, _b in answers} == {"401 Unauthorized"}
    assert {body for _s, _h, body in answers} == {UNAUTHORIZED}
    assert b"acme" not in UNAUTHORIZED and b"beta" not in UNAUTHORIZED


def test_a_tenant_token_sees_its_tenant_and_the_admin_token_any(book: PolicyBook) -> None:
    assert viewer_for(book, {"token": ACME}) == Viewer("acme", admin=False)
    assert viewer_for(book, {"token": ACME, "tenant": "acme"}) == Viewer("acme", admin=False)
    assert viewer_for(book, {"token": BETA}) == Viewer("beta", admin=False)
    assert viewer_for(book, {"token": ADMIN}) == Viewer(None, admin=True)
    assert viewer_for(book, {"token": ADMIN, "tenant": "beta"}) == Viewer("beta", admin=True)
    assert Viewer("acme", admin=False).binding == "acme.#" and Viewer(None, admin=True).binding == "#"


def test_the_page_comes_with_its_own_script_and_style_and_nothing_from_elsewhere(dashboard: Dashboard) -> None:
    status, headers, page = get(dashboard, "/dashboard", f"token={ACME}")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.decode())
    assert sorted(assets) == ["/dashboard/static/dashboard.css", "/dashboard/static/dashboard.js"]
    for asset in assets:
        status, headers, body = get(dashboard, asset)
        assert status == "200 OK" and body
        assert not re.search(rb"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", body), f"{asset} names an outside host"
    assert get(dashboard, "/dashboard/static/../app.py")[0] == "404 Not Found"
    assert dashboard.handle({"REQUEST_METHOD": "GET", "PATH_INFO": "/elsewhere"}, lambda *a: None) is None


def test_the_mos_distribution_is_the_viewers_own(dashboard: Dashboard) -> None:
    assert mos(dashboard, f"token={ACME}") == {"<2.6": 0, "2.6-3.1": 1, "3.1-3.6": 0, "3.6-4.0": 0,
                                              "4.0-4.3": 0, ">=4.3": 1}
    assert sum(mos(dashboard, f"token={BETA}").values()) == 1
    assert sum(mos(dashboard, f"token={ADMIN}").values()) == 3
    assert mos(dashboard, f"token={ADMIN}&tenant=beta")["<2.6"] == 1
    long_ago = (NOW - timedelta(days=2)).isoformat()
    assert sum(mos(dashboard, f"token={ACME}&to={long_ago.replace('+', '%2B')}").values()) == 0


@pytest.mark.parametrize("query", ["from=yesterday", "from=2026-12-01T00:00:00", "group_by=week",
                                   "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
                                   "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&group_by=hour",
                                   "from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z"])
def test_a_bad_parameter_is_a_400_that_says_which(dashboard: Dashboard, query: str) -> None:
    path = "/api/stats" if "group_by" in query else "/api/mos"
    status, _headers, body = get(dashboard, path, f"token={ACME}&{query}")
    assert status == "400 Bad Request", body
    assert json.loads(body)["error"]


def stats(dashboard: Dashboard, query: str) -> dict[str, Any]:
    status, _headers, body = get(dashboard, "/api/stats", query)
    assert status == "200 OK", body
    return dict(json.loads(body))


def test_the_stats_are_what_stats_get_answers_for_the_viewers_tenant(dashboard: Dashboard, engine: Engine) -> None:
    mine = stats(dashboard, f"token={ACME}")
    assert mine["group_by"] == "none" and len(mine["groups"]) == 1
    end = datetime.fromisoformat(mine["to"])
    assert datetime.fromisoformat(mine["from"]) == end - timedelta(hours=24)
    assert mine["groups"] == call_stats(engine, tenant="acme", from_=end - timedelta(hours=24), to=end,
                                        group_by="none")
    acme = mine["groups"][0]
    assert (acme["calls"], acme["answered"]) == (2, 1)  # the call up now and the one completed
    assert stats(dashboard, f"token={BETA}")["groups"][0]["calls"] == 1
    assert stats(dashboard, f"token={ADMIN}")["groups"][0]["calls"] == 3
    assert stats(dashboard, f"token={ADMIN}&tenant=beta")["groups"][0]["calls"] == 1
    hourly = stats(dashboard, f"token={ACME}&group_by=hour&from={(NOW - timedelta(hours=2)).isoformat()}")
    assert hourly["group_by"] == "hour" and sum(g["calls"] for g in hourly["groups"]) == 2


def test_the_snapshot_holds_the_viewers_calls_up_now_with_their_seq(engine: Engine) -> None:
    mine = snapshot(engine, Viewer("acme", admin=False), [])
    assert [(c["tenant"], c["status"], c["seq"]) for c in mine["calls"]] == [("acme", "answered", 3)]
    assert mine["calls"][0]["destination_number"] == "+15550001111"
    assert mine["viewer"] == {"tenant": "acme", "admin": False, "tenants": []}
    assert sum(mine["history"]["initiated"]) == 2 and mine["history"]["concurrent"][-1] == 1
    everything = snapshot(engine, Viewer(None, admin=True), ["acme", "beta"])
    assert sorted(c["tenant"] for c in everything["calls"]) == ["acme", "beta"]
    assert everything["viewer"]["tenants"] == ["acme", "beta"]


def test_no_token_reaches_a_log_line_or_the_error_stream(
    dashboard: Dashboard, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = HttpServer("127.0.0.1", 0, health=lambda: (True, {}), registry=CollectorRegistry(),
                        routes=dashboard.handle)
    server.start()
    broken: Callable[..., Any] = lambda *_a, **_k: 1 / 0  # noqa: E731 - a route that fails inside
    monkeypatch.setattr("callworker.dashboard.routes.mos_distribution", broken)
    try:
        statuses = []
        for path in ("/dashboard", "/api/mos", "/api/stats", "/api/events", "/nowhere"):
            for token in (ACME, ADMIN, "wrong-secret-token"):
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                connection.request("GET", f"{path}?token={token}")
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
                connection.close()
    finally:
        server.stop()
    assert 500 in statuses and 401 in statuses and 200 in statuses  # the failing route was reached
    captured = capfd.readouterr()
    for secret in (ACME, ADMIN, "wrong-secret-token"):
        assert secret not in caplog.text
        assert secret not in captured.out + captured.err
    assert "dashboard /api/mos failed" in caplog.text
