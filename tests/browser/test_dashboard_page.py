"""What a person sees on the dashboard: the tenant's calls up now, live; the KPIs; nothing of another tenant.

The worker runs in-process against the simulator, the real RabbitMQ and PostgreSQL;
Chromium loads ``/dashboard?token=`` as a browser on a laptop and on a phone would,
and the laptop view is saved as a screenshot; with CALLWORKER_UPDATE_SCREENSHOT=1 it
is written to docs/dashboard.png, the one the README shows (otherwise a test run would
change a tracked file).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.contract import utcnow
from callworker.simulator import Simulator
from callworker.store import make_engine
from tests.browser.history import GATEWAYS, seed_calls
from tests.integration.conftest import make_settings, start_worker
from tests.integration.sse import fetch

pytestmark = [pytest.mark.browser, pytest.mark.integration]

README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
SUFFIX = uuid.uuid4().hex[:4]
ACME, GLOBEX = f"acme-{SUFFIX}", f"globex-{SUFFIX}"
TOKENS = {ACME: f"acme-{uuid.uuid4().hex}", GLOBEX: f"globex-{uuid.uuid4().hex}"}
ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=0.1, far_end_hangup_after=0.5)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def worker(simulator: Simulator, pg_url: str, amqp_url: str, tmp_path: Path) -> Iterator[Worker]:
    path = tmp_path / "policy.yaml"
    path.write_text(f'admin_token: "{ADMIN_TOKEN}"\ntenants:\n'
                    + "".join(f'  {name}: {{token: "{token}"}}\n' for name, token in TOKENS.items()))
    running = start_worker(make_settings(simulator, pg_url, amqp_url, policy_file=path))
    yield running
    running.stop()


@pytest.fixture
def probe(amqp_url: str) -> Iterator[Probe]:
    watching = Probe(amqp_url, event_bindings=(f"{ACME}.#", f"{GLOBEX}.#"))
    yield watching
    watching.close()


def command(probe: Probe, tenant: str, command_type: str, **fields: Any) -> dict[str, Any]:
    reply = probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])
    assert reply["ok"], reply
    return dict(reply["result"] or {})


def call(probe: Probe, tenant: str, number: str, until: str) -> str:
    call_id = str(uuid.uuid4())
    command(probe, tenant, "originate", destination_number=number, call_id=call_id)
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == until)
    return call_id


def rows(driver: Any) -> list[list[str]]:
    """The calls table's cells as shown (hidden columns are empty), read in one go."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('#calls-body tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()));"))


def wait(driver: Any, condition: Any, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def table(driver: Any, body_id: str) -> list[list[str]]:
    return list(driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).rows)"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()));", body_id))


def bars(driver: Any, container_id: str) -> dict[str, int]:
    """A bar chart's labels and counts as shown."""
    return {label: int(count) for label, count in driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' .bar'))"
        ".map(b => [b.dataset.label, b.querySelector('.n').innerText]);", container_id)}


def hour_ago() -> str:
    return (utcnow() - timedelta(hours=1)).isoformat().replace("+", "%2B")


def text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def test_the_page_shows_the_tenants_calls_live_and_nothing_of_another_tenant(
    browser: Any, worker: Worker, probe: Probe, pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_url)
    try:
        seed_calls(engine, ACME, utcnow())  # the quarter hour before
        seed_calls(engine, GLOBEX, utcnow(), count=5)
    finally:
        engine.dispose()
    # Now: one call answered and ended, one busy.
    call(probe, ACME, "+15551230200", "call.cdr")
    call(probe, ACME, "+15551230486", "call.cdr")
    # Up now: two answered (one of them held) and one ringing; and another tenant's call.
    talking = call(probe, ACME, "+15551234001", "call.answered")
    held = call(probe, ACME, "+15551234002", "call.answered")
    command(probe, ACME, "hold", call_id=held)
    probe.event(lambda e: e.get("call_id") == held and e["type"] == "call.held")
    ringing = call(probe, ACME, "+15551230180", "call.ringing")
    theirs = call(probe, GLOBEX, "+15559994001", "call.answered")
    # Three flash calls, two of them verified.
    for n in range(3):
        order = command(probe, ACME, "flashcall.create", phone=f"+1555765000{n}", return_code=True)
        if n < 2:
            assert command(probe, ACME, "flashcall.verify", id=order["id"], code=order["code"]["value"])["success"]
        created = probe.event(lambda e, order=order: e.get("order_id") == order["id"])
        carrier = created["data"]["call_id"]
        probe.event(lambda e, carrier=carrier: e.get("call_id") == carrier and e["type"] == "call.cdr")

    browser.get(f"http://127.0.0.1:{worker.http.port}/dashboard?token={TOKENS[ACME]}")
    wait(browser, lambda d: len(rows(d)) == 3 and text(d, "link") == "live")
    shown = {row[1]: row for row in rows(browser)}
    assert set(shown) == {"+15551234001", "+15551234002", "+15551230180"}
    assert shown["+15551234001"][2] == "answered" and shown["+15551234001"][4] == "–"
    assert shown["+15551234002"][2] == "on hold" and shown["+15551234002"][4] == "held"
    assert shown["+15551230180"][2] == "ringing" and shown["+15551230180"][3].endswith("(not answered)")
    assert text(browser, "scope") == f"tenant {ACME}" and text(browser, "calls-count") == "3"
    wait(browser, lambda d: text(d, "now-concurrent") == "3")

    # Live: a new call appears and a call hung up goes, without a reload.
    new = call(probe, ACME, "+15551234003", "call.answered")
    wait(browser, lambda d: "+15551234003" in {row[1] for row in rows(d)}, timeout=3)
    command(probe, ACME, "hangup", call_id=talking)
    wait(browser, lambda d: "+15551234001" not in {row[1] for row in rows(d)}, timeout=3)
    wait(browser, lambda d: text(d, "calls-count") == "3")

    # The last hour's figures are those of stats.get, as a person reads them.
    status, body = fetch(worker.http.port, f"/api/stats?token={TOKENS[ACME]}&from={hour_ago()}")
    assert status == 200, body
    figures = json.loads(body)["groups"][0]
    assert figures["calls"] >= 60 + 2 + 4 + 3 and figures["flashcall"] == {
        "orders": 3, "verified": 2, "conversion": pytest.approx(2 / 3, abs=1e-4)}
    wait(browser, lambda d: text(d, "kpi-calls") == str(figures["calls"]))
    assert text(browser, "kpi-asr") == f"{figures['asr'] * 100:.1f} %"
    assert text(browser, "kpi-ner") == f"{figures['ner'] * 100:.1f} %"
    assert text(browser, "kpi-flash") == "66.7 %" and text(browser, "kpi-flash-detail") == "2 of 3 verified"
    assert text(browser, "kpi-mos") == f"{figures['avg_mos']:.2f}"
    assert text(browser, "kpi-pdd") == f"{figures['pdd_ms_p50'] / 1000:.1f} / {figures['pdd_ms_p95'] / 1000:.1f} s"
    causes = bars(browser, "causes")
    assert causes["NORMAL_CLEARING"] == figures["hangup_causes"]["NORMAL_CLEARING"] and "USER_BUSY" in causes
    assert bars(browser, "outcomes")["answered"] == figures["answered"]
    assert sum(bars(browser, "mos").values()) > 0
    gateways = {row[0] for row in table(browser, "gateways-body")}
    assert set(GATEWAYS) <= gateways

    page = browser.find_element("tag name", "body").text
    assert "+15559994001" not in page and GLOBEX not in page and theirs[:8] not in page
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 150)
    wait(browser, lambda d: d.execute_script("return window.innerHeight") >= height)
    shot = README_SCREENSHOT if os.environ.get("CALLWORKER_UPDATE_SCREENSHOT") == "1" else tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes().startswith(b"\x89PNG")

    # On a phone: the same page, nothing wider than the screen but the tables' own scroll.
    browser.set_window_size(390, 844)
    wait(browser, lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"))
    assert browser.find_element("id", "kpi-asr").is_displayed()
    assert len(rows(browser)) == 3
    for tenant, call_id in ((ACME, held), (ACME, ringing), (ACME, new), (GLOBEX, theirs)):
        command(probe, tenant, "hangup", call_id=call_id)


def test_the_operator_sees_every_tenant_and_can_pick_one(browser: Any, worker: Worker, probe: Probe) -> None:
    from selenium.webdriver.support.ui import Select

    ours = call(probe, ACME, "+15551235001", "call.answered")
    theirs = call(probe, GLOBEX, "+15559995001", "call.answered")
    browser.get(f"http://127.0.0.1:{worker.http.port}/dashboard?token={ADMIN_TOKEN}")
    wait(browser, lambda d: {ours[:8], theirs[:8]} <= {row[-1] for row in rows(d)})
    assert text(browser, "scope") == "all tenants"
    tenant_of = {row[-1]: row[0] for row in rows(browser)}
    assert (tenant_of[ours[:8]], tenant_of[theirs[:8]]) == (ACME, GLOBEX)  # the Tenant column is shown

    picker = Select(browser.find_element("id", "tenant-select"))
    assert {ACME, GLOBEX} <= {option.text for option in picker.options}
    picker.select_by_visible_text(GLOBEX)
    wait(browser, lambda d: text(d, "scope") == f"tenant {GLOBEX}" and text(d, "link") == "live")
    wait(browser, lambda d: theirs[:8] in [row[-1] for row in rows(d)])
    assert ours[:8] not in [row[-1] for row in rows(browser)]
    assert "+15551235001" not in browser.find_element("tag name", "body").text
    for tenant, call_id in ((ACME, ours), (GLOBEX, theirs)):
        command(probe, tenant, "hangup", call_id=call_id)
