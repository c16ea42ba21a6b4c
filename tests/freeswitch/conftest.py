"""The real FreeSWITCH tier: a real FreeSWITCH 1.10 on loopback, real SIP and RTP, the worker
in-process against it, the real RabbitMQ and PostgreSQL.

One switch runs for the whole test session (``real_switch``), from the project's own
``freeswitch-conf/`` plus ``overlay/``: a fake carrier profile behind the shipped gateway
``default`` whose dialplan plays the CONTRACT section 7 outcomes. Where no FreeSWITCH can
be found the tier is skipped in one line, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.config import Settings
from tests.freeswitch.realswitch import EslClient, RealSwitch, SwitchUnavailable, find_tree

pytestmark = pytest.mark.freeswitch


def _tree_or_skip() -> Path:
    try:
        return find_tree()
    except SwitchUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"real FreeSWITCH tier: {error}", pytrace=False)
        pytest.skip(f"real FreeSWITCH tier skipped: {error}")


@pytest.fixture(scope="session")
def freeswitch_tree() -> Path:
    return _tree_or_skip()


def start_switch(tree: Path, workdir: Path) -> RealSwitch:
    switch = RealSwitch(tree, workdir)
    try:
        switch.start()
    except SwitchUnavailable as error:
        pytest.fail(f"real FreeSWITCH did not start: {error}", pytrace=False)
    return switch


@pytest.fixture(scope="session")
def real_switch(freeswitch_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealSwitch]:
    """The session's FreeSWITCH, shared by the tests that leave it running."""
    switch = start_switch(freeswitch_tree, tmp_path_factory.mktemp("freeswitch"))
    yield switch
    switch.stop()


def switch_settings(switch: RealSwitch, database_url: str, amqp_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        amqp_url=amqp_url, database_url=database_url,
        esl_host="127.0.0.1", esl_port=switch.ports.esl, esl_password=switch.password,
        node_id=f"fs-{uuid.uuid4().hex[:8]}", http_host="127.0.0.1", http_port=0,
        socket_host="127.0.0.1", socket_port=switch.ports.socket,
        command_workers=16, esl_connect_timeout_s=3.0, esl_send_timeout_s=5.0,
        gateways=("default",), default_gateway="default", flashcall_hmac_key="real-tier-flashcall-key",
    )
    values.update(overrides)
    return Settings(**values)


def start_worker(settings: Settings) -> Worker:
    worker = Worker(settings)
    worker.start()
    assert worker.esl.wait_connected(15), "the worker did not connect to FreeSWITCH"
    assert worker.bus.wait_ready(15), "the worker did not connect to RabbitMQ"
    return worker


def hang_up_everything(switch: RealSwitch) -> None:
    """End every channel, so no call of one test lives on into the next."""
    if switch.alive:
        try:
            switch.api("hupall NORMAL_CLEARING")
        except Exception:  # noqa: BLE001 - a switch a test killed is restarted by its owner
            pass


@pytest.fixture
def fs_worker(real_switch: RealSwitch, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    worker = start_worker(switch_settings(real_switch, pg_url, amqp_url))
    yield worker
    hang_up_everything(real_switch)
    worker.stop()


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def probe(amqp_url: str, tenant: str) -> Iterator[Probe]:
    p = Probe(amqp_url, event_bindings=(f"{tenant}.#",))
    yield p
    p.close()


@pytest.fixture
def switch_events(real_switch: RealSwitch) -> Iterator[EslClient]:
    """A bare ESL connection to the switch with every event, to watch and drive the far end."""
    client = real_switch.client(events="ALL")
    yield client
    client.close()
