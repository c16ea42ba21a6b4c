"""What a person sees on the dashboard: the tenant's calls up now, live; the KPIs; nothing of another tenant.

The worker runs in-process against the simulator, the real RabbitMQ and PostgreSQL;
Chromium loads ``/dashboard?token=`` as a browser on a laptop and on a phone would,
and the laptop view is saved as docs/dashboard.png.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
SUFFIX = uuid.uuid4().hex[:4]
ACME, GLOBEX = f"acme-{SUFFIX}", f"globex-{SUFFIX}"
TOKENS = {ACME: f"acme-{uuid.uuid4().hex}", GLOBEX: f"globex-{uuid.uuid4().hex}"}


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=0.1, far_end_hangup_after=0.5)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def worker(simulator: Simulator, pg_url: str, amqp_url: str, tmp_path: Path) -> Iterator[Worker]:
    path = tmp_path / "policy.yaml"
    path.write_text(f'admin_token: "admin-{uuid.uuid4().hex}"\ntenants:\n'
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
    from selenium.webdriver.common.by import By

    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, "#calls-body tr")]


def wait(driver: Any, condition: Any, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def test_the_page_shows_the_tenants_calls_live_and_nothing_of_another_tenant(
    browser: Any, worker: Worker, probe: Probe
) -> None:
    # The last hour: one call answered and ended, one busy.
    call(probe, ACME, "+15551230200", "call.cdr")
    call(probe, ACME, "+15551230486", "call.cdr")
    # Up now: two answered (one of them held) and one ringing; and another tenant's call.
    talking = call(probe, ACME, "+15551234001", "call.answered")
    held = call(probe, ACME, "+15551234002", "call.answered")
    command(probe, ACME, "hold", call_id=held)
    probe.event(lambda e: e.get("call_id") == held and e["type"] == "call.held")
    call(probe, ACME, "+15551230180", "call.ringing")
    theirs = call(probe, GLOBEX, "+15559994001", "call.answered")

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
    call(probe, ACME, "+15551234003", "call.answered")
    wait(browser, lambda d: "+15551234003" in {row[1] for row in rows(d)}, timeout=3)
    command(probe, ACME, "hangup", call_id=talking)
    wait(browser, lambda d: "+15551234001" not in {row[1] for row in rows(d)}, timeout=3)
    wait(browser, lambda d: text(d, "calls-count") == "3")

    page = browser.find_element("tag name", "body").text
    assert "+15559994001" not in page and GLOBEX not in page and theirs[:8] not in page
    browser.save_screenshot(str(SCREENSHOT))

    # On a phone: the same page, nothing wider than the screen but the tables' own scroll.
    browser.set_window_size(390, 844)
    wait(browser, lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"))
    assert browser.find_element("id", "kpi-asr").is_displayed()
    assert len(rows(browser)) == 3
