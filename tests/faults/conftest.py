"""The fault rig as a fixture, and the table of figures at the end of the session.

The worker runs as a subprocess (``callworker run``) against the in-process
simulator, with its RabbitMQ, PostgreSQL and ESL connections through proxies
the tests cut; its database and vhost are fresh for the session (root conftest).
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from callworker.bus.probe import Probe
from callworker.simulator import Simulator
from callworker.store import make_engine, migrate
from tests.faults.proxy import Proxy
from tests.faults.report import render, write_report
from tests.faults.rig import RESULTS, Rig
from tests.faults.traffic import Driver, Recorder
from tests.faults.workerproc import WorkerProcess

REPORT = Path(__file__).resolve().parents[2] / "bench-results" / "faults.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _through(url: str, port: int) -> str:
    """``url`` with its host:port replaced by 127.0.0.1:<port> (the proxy)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 0)


@pytest.fixture(scope="module")
def rig(request: pytest.FixtureRequest, pg_url: str, amqp_url: str) -> Iterator[Rig]:
    """One rig per module; a module may set ``WORKER_ENV`` (settings of its own) and ``RATE``."""
    simulator = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=0.15,
                          far_end_hangup_after=1.0)
    simulator.start()
    amqp_target = _target(amqp_url)
    amqp_proxy = Proxy(0, (amqp_target[0], amqp_target[1] or 5672)).start()
    pg_target = _target(pg_url)
    pg_proxy = Proxy(0, (pg_target[0], pg_target[1] or 5432)).start()
    esl_proxy = Proxy(0, simulator.address, record=True).start()
    migrate(pg_url)
    node = f"faults-{uuid.uuid4().hex[:8]}"
    env = {
        "CALLWORKER_AMQP_URL": _through(amqp_url, amqp_proxy.port),
        "CALLWORKER_DATABASE_URL": _through(pg_url, pg_proxy.port),
        "CALLWORKER_ESL_HOST": "127.0.0.1", "CALLWORKER_ESL_PORT": str(esl_proxy.port),
        "CALLWORKER_NODE_ID": node, "CALLWORKER_HTTP_HOST": "127.0.0.1",
        "CALLWORKER_HTTP_PORT": str(_free_port()), "CALLWORKER_SOCKET_PORT": str(_free_port()),
        "CALLWORKER_ESL_CONNECT_TIMEOUT_S": "2", "CALLWORKER_ESL_SEND_TIMEOUT_S": "3",
        "CALLWORKER_COMMAND_WORKERS": "32", "CALLWORKER_COMMAND_MAX_AGE_S": "60",
        "CALLWORKER_FLASHCALL_HMAC_KEY": "faults-suite-flashcall-key",
        **getattr(request.module, "WORKER_ENV", {}),
    }
    # Not under pytest's basetemp: other pytest runs rotate it away while this one reads it.
    logs = Path(tempfile.mkdtemp(prefix="callworker-faults-"))
    worker = WorkerProcess(env, logs / "worker.log")
    tenant = f"f{uuid.uuid4().hex[:10]}"
    # The upstream app talks to RabbitMQ directly (never through the proxy), so it
    # sees every reply and event; no heartbeats, as its connections idle at times.
    probe = Probe(f"{amqp_url}?heartbeat=0", event_bindings=(f"{tenant}.#",))
    recorder = Recorder(probe)
    # Calls per second; raise it to make the races the faults hit more likely.
    rate = getattr(request.module, "RATE", None) or float(os.environ.get("CALLWORKER_FAULTS_RATE", "12"))
    driver = Driver(probe, recorder, tenant, rate=rate)
    engine = make_engine(pg_url)
    built = Rig(simulator, amqp_proxy, pg_proxy, esl_proxy, worker, probe, recorder, driver,
                engine, amqp_url, node)
    worker.start()
    try:
        worker.wait_healthy(timeout=30)
        yield built
    finally:
        driver.close()
        worker.stop()
        recorder.close()
        probe.close()
        for proxy in (amqp_proxy, pg_proxy, esl_proxy):
            proxy.stop()
        simulator.stop()
        engine.dispose()
        print(f"\nworker log: {worker.log_path}")


HERE = Path(__file__).resolve().parent
SLOW_MODULES = {HERE / "test_faults.py", HERE / "test_event_backlog.py", HERE / "test_bridged_sigkill.py"}


def _asked_for(config: pytest.Config) -> bool:
    """Whether the command line names this directory or something in it."""
    here = HERE
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == here or here in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fault phases run when asked for by path (``make test-faults``), not in every run.

    They restart worker processes and cut connections for minutes, so
    ``pytest`` without arguments (``make test``) deselects them, and says so; the
    quick tests of this directory run everywhere.
    """
    if _asked_for(config):
        return
    slow = [item for item in items if Path(str(item.path)) in SLOW_MODULES]
    if slow:
        items[:] = [item for item in items if Path(str(item.path)) not in SLOW_MODULES]
        config.hook.pytest_deselected(items=slow)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    table = render(RESULTS)
    write_report(REPORT, table)
    terminalreporter.write_sep("=", "fault suite figures")
    terminalreporter.write_line(table)
    terminalreporter.write_line(f"(also in {REPORT})")


__all__ = ["rig"]
