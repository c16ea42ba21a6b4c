"""Secrets never show: not in logs, /healthz, /metrics, replies, events, exception text or Settings.

The worker runs with a recognisable ESL password, database password (PostgreSQL's
trust authentication takes any), AMQP password (a RabbitMQ user made for the test)
and flash-call HMAC key, through traffic and failures: a wrong ESL password, a
database that goes away (a proxy the test cuts) and comes back, a broker that closes
the connection, a wrong AMQP password, a database on a closed port. Every log record
at DEBUG, every HTTP body, every reply and event and every exception's text is
searched for each secret's random part.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest
from gevent.server import StreamServer
from pydantic import ValidationError

from callworker.app import Worker
from callworker.bus.client import AmqpClient
from callworker.bus.probe import Probe, Received
from callworker.config import Settings
from callworker.errors import CallworkerError
from callworker.simulator import Simulator
from callworker.store import make_engine, ping
from tests.conftest import AMQP_HOST
from tests.integration.conftest import make_settings

pytestmark = pytest.mark.integration


@dataclass
class Secrets:
    """Each secret is a readable prefix and a random part; the random part must never show."""

    esl: str = field(default_factory=lambda: f"EslPass{secrets.token_hex(8)}")
    database: str = field(default_factory=lambda: f"DbPass{secrets.token_hex(8)}")
    amqp: str = field(default_factory=lambda: f"AmqpPass{secrets.token_hex(8)}")
    amqp_wrong: str = field(default_factory=lambda: f"AmqpWrong{secrets.token_hex(8)}")
    hmac_key: str = field(default_factory=lambda: f"HmacKey{secrets.token_hex(8)}")

    def cores(self) -> dict[str, str]:
        return {name: value[-16:] for name, value in vars(self).items()}


class Exposure:
    """Everything the worker let out, by where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def add_exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where} str", exc)
        self.add(f"{where} repr", repr(exc))
        self.add(f"{where} traceback", "".join(traceback.format_exception(exc)))

    def assert_clean(self, found: Secrets, records: list[logging.LogRecord]) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        texts = self.texts + [(f"log {r.name}", formatter.format(r)) for r in records]
        leaks = [(where, name) for where, text in texts for name, core in found.cores().items() if core in text]
        assert not leaks, leaks


class LogWatch(logging.Handler):
    """Lets a test wait (with a timeout) for a log record instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._arrived = gevent.event.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._arrived.set()

    def mark(self) -> int:
        return len(self.records)

    def wait_for(
        self, predicate: Callable[[logging.LogRecord], bool], *, since: int = 0, timeout: float = 15.0
    ) -> logging.LogRecord:
        """The first record from index ``since`` on that matches, waiting for it if need be."""
        start = since
        with gevent.Timeout(timeout, AssertionError("no such log record arrived in time")):
            while True:
                for record in self.records[start:]:
                    if predicate(record):
                        return record
                start = len(self.records)
                self._arrived.clear()
                self._arrived.wait()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogWatch]:
    caplog.set_level(logging.DEBUG)  # the root logger, so every library's records too
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # it sets itself to WARNING otherwise
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    yield watch
    logging.getLogger().removeHandler(watch)


class TcpProxy:
    """A TCP relay to the database that the test can cut (connections dropped, new ones refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._open = True
        self._sockets: set[socket.socket] = set()
        self._server = StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def cut(self) -> None:
        self._open = False
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self._open = True

    def close(self) -> None:
        self.cut()
        self._server.stop(timeout=1)

    def _handle(self, client: socket.socket, _address: object) -> None:
        if not self._open:
            client.close()
            return
        try:
            upstream = gevent.socket.create_connection(self._target)
        except OSError:
            client.close()
            return
        pair = {client, upstream}
        self._sockets |= pair
        pipes = [gevent.spawn(self._pipe, client, upstream), gevent.spawn(self._pipe, upstream, client)]
        gevent.joinall(pipes, count=1)
        self._sockets -= pair
        for sock in pair:
            sock.close()
        gevent.killall(pipes)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def found() -> Secrets:
    return Secrets()


@pytest.fixture
def amqp_user(amqp_vhost: str, found: Secrets) -> Iterator[str]:
    """A RabbitMQ user with the recognisable password, allowed everything in the test vhost."""
    user = f"cw-secret-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_user", user, found.amqp)
    try:
        _rabbitmqctl("set_permissions", "-p", amqp_vhost, user, ".*", ".*", ".*")
        yield user
    finally:
        _rabbitmqctl("delete_user", user)


def _with_password(url: str, password: str) -> str:
    """``scheme://user@host/db`` -> ``scheme://user:password@host/db``."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def _via(url: str, port: int) -> str:
    scheme_user, rest = url.rsplit("@", 1)
    return f"{scheme_user}@127.0.0.1:{port}/{rest.split('/', 1)[1]}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# ----------------------------------------------------------------------- tests


def test_settings_never_show_a_secret(found: Secrets) -> None:
    exposure = Exposure()
    # Raw strings, as the environment gives them.
    values: dict[str, Any] = dict(
        amqp_url=f"amqp://cw:{found.amqp}@127.0.0.1:5672/%2F",
        database_url=f"postgresql+psycopg://postgres:{found.database}@127.0.0.1:5432/cw",
        esl_password=found.esl, flashcall_hmac_key=found.hmac_key,
    )
    settings = Settings(**values)
    for text in (repr(settings), str(settings), settings.model_dump(), settings.model_dump_json()):
        exposure.add("settings", text)
    # A mistake in another setting: the error names it, not the secrets beside it.
    with pytest.raises(ValidationError) as caught:
        invalid: dict[str, Any] = dict(
            esl_port="not a port", esl_password=found.esl, amqp_url=f"amqp://cw:{found.amqp}@h/%2F"
        )
        Settings(**invalid)
    exposure.add_exception("invalid settings", caught.value)
    for url in (f"postgresql+psycopg://postgres@127.0.0.1:{found.database}/cw",
                f"postgresql+psycopg://postgres:{found.database}@[::1/cw"):
        with pytest.raises(CallworkerError) as refused:
            make_engine(url)
        exposure.add_exception("unparseable database URL", refused.value)
    exposure.assert_clean(found, [])


def test_a_worker_through_traffic_and_outages_never_shows_a_secret(
    found: Secrets, logs: LogWatch, amqp_user: str, amqp_vhost: str, pg_url: str, amqp_url: str,
) -> None:
    exposure = Exposure()
    simulator = Simulator("127.0.0.1", 0, found.esl, ring_delay=0.05, answer_delay=0.1, far_end_hangup_after=1.0)
    simulator.start()
    proxy = TcpProxy(("127.0.0.1", 5432))
    settings = make_settings(
        simulator, _via(_with_password(pg_url, found.database), proxy.port),
        f"amqp://{amqp_user}:{found.amqp}@{AMQP_HOST}/{amqp_vhost}",
        esl_password=found.esl, flashcall_hmac_key=found.hmac_key,
    )
    tenant = f"s{uuid.uuid4().hex[:10]}"
    probe = Probe(amqp_url, event_bindings=(f"{tenant}.#",))
    worker = Worker(settings)
    worker.start()
    try:
        assert worker.esl.wait_connected(10) and worker.bus.wait_ready(10)
        _traffic(worker, probe, tenant, exposure)
        _database_outage(worker, probe, tenant, proxy, logs, exposure)
        _broker_outage(worker, probe, tenant, amqp_user, logs, exposure)
        for path in ("/healthz", "/metrics"):
            exposure.add(path, _http(worker.http.port, path))
        exposure.add("settings", repr(worker.settings))
    finally:
        worker.stop()
        probe.close()
        proxy.close()
        simulator.stop()
    exposure.assert_clean(found, logs.records)


def _ask(probe: Probe, tenant: str, exposure: Exposure, command_type: str, **fields: Any) -> Received:
    reply = probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])
    exposure.add(f"reply to {command_type}", json.dumps(reply))
    return reply


def _traffic(worker: Worker, probe: Probe, tenant: str, exposure: Exposure) -> None:
    call_id = _ask(probe, tenant, exposure, "originate", destination_number="+15551230200")["result"]["call_id"]
    for event in probe.call_events_until_terminal(call_id):
        exposure.add("event", json.dumps(event))
    _ask(probe, tenant, exposure, "call.get", call_id=call_id)
    _ask(probe, tenant, exposure, "call.list")
    _ask(probe, tenant, exposure, "cdr.list")
    _ask(probe, tenant, exposure, "hangup", call_id=str(uuid.uuid4()))
    _ask(probe, tenant, exposure, "originate", destination_number="+1555\napi hupall")
    _ask(probe, tenant, exposure, "flashcall.create", phone="+15551234567")
    _ask(probe, tenant, exposure, "flashcall.verify", id=str(uuid.uuid4()), code="1234")
    correlation = probe.publish_raw(f"{tenant}.originate", b"{not json")
    exposure.add("reply to junk", json.dumps(probe.reply_for(None, correlation_id=correlation)))
    status, body = _http(worker.http.port, "/healthz")
    assert status == 200
    exposure.add("/healthz", body)


def _database_outage(
    worker: Worker, probe: Probe, tenant: str, proxy: TcpProxy, logs: LogWatch, exposure: Exposure,
) -> None:
    call_id = _ask(probe, tenant, exposure, "originate", destination_number="+15551230200")["result"]["call_id"]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered")
    mark = logs.mark()
    proxy.cut()  # the far end hangs up meanwhile: the journal cannot write it
    status, body = _http(worker.http.port, "/healthz")
    assert status == 503 and json.loads(body)["database"]["reachable"] is False
    exposure.add("/healthz while the database is away", body)
    logs.wait_for(lambda r: r.name == "callworker.journal" and "database unavailable" in r.getMessage(), since=mark)
    read = probe.send(tenant, "call.get", call_id=call_id)
    logs.wait_for(lambda r: r.name == "callworker.intake" and "database unavailable" in r.getMessage(), since=mark)
    proxy.restore()
    exposure.add("reply after the outage", json.dumps(probe.reply_for(read["command_id"], timeout=20)))
    for event in probe.call_events_until_terminal(call_id, timeout=20):
        exposure.add("event", json.dumps(event))


def _broker_outage(
    worker: Worker, probe: Probe, tenant: str, user: str, logs: LogWatch, exposure: Exposure,
) -> None:
    mark = logs.mark()
    _rabbitmqctl("close_all_user_connections", user, "closed by the secrets test")
    logs.wait_for(lambda r: r.name == "callworker.bus" and "closed" in r.getMessage(), since=mark)
    assert worker.bus.wait_ready(15)
    _status, body = _http(worker.http.port, "/healthz")
    exposure.add("/healthz after the broker came back", body)
    _ask(probe, tenant, exposure, "call.list")


def test_failures_to_connect_never_show_a_secret(
    found: Secrets, logs: LogWatch, simulator: Simulator, amqp_user: str, amqp_vhost: str, pg_url: str,
) -> None:
    exposure = Exposure()
    database = _with_password(pg_url, found.database)
    amqp = f"amqp://{amqp_user}:{found.amqp}@{AMQP_HOST}/{amqp_vhost}"
    # FreeSWITCH (the fixture simulator, password ClueCon) refuses our password.
    worker = Worker(make_settings(simulator, database, amqp, esl_password=found.esl,
                                  flashcall_hmac_key=found.hmac_key))
    mark = logs.mark()
    worker.start()
    try:
        logs.wait_for(lambda r: r.name.startswith("callworker.esl") and r.levelno >= logging.ERROR, since=mark)
        assert worker.esl.last_error is not None
        exposure.add_exception("ESL auth failure", worker.esl.last_error)
        status, body = _http(worker.http.port, "/healthz")
        assert status == 503
        exposure.add("/healthz with FreeSWITCH refusing", body)
    finally:
        worker.stop()
    _wrong_amqp_password(f"amqp://{amqp_user}:{found.amqp_wrong}@{AMQP_HOST}/{amqp_vhost}", logs, exposure)
    # The database is not there at all.
    unreachable = _via(database, _closed_port())
    with pytest.raises(CallworkerError) as no_database:
        Worker(make_settings(simulator, unreachable, amqp, esl_password=found.esl))
    exposure.add_exception("worker without a database", no_database.value)
    engine = make_engine(unreachable)
    with pytest.raises(CallworkerError) as no_ping:
        ping(engine)
    exposure.add_exception("ping without a database", no_ping.value)
    exposure.add("engine", repr(engine))
    engine.dispose()
    exposure.assert_clean(found, logs.records)


def _wrong_amqp_password(url: str, logs: LogWatch, exposure: Exposure) -> None:
    client = AmqpClient(url, node_id="secrets", prefetch=1, on_delivery=lambda d: None, consume=False)
    mark = logs.mark()
    client.start()
    try:
        logs.wait_for(lambda r: r.name == "callworker.bus" and "cannot connect" in r.getMessage(), since=mark)
        with pytest.raises(CallworkerError) as unready:
            client.publish("callworker.events", "x", b"{}")
        exposure.add_exception("publish without a broker", unready.value)
    finally:
        client.stop(timeout=2)
