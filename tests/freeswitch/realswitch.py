"""A real FreeSWITCH 1.10 for the tests: found, unpacked once, configured, started, stopped.

Strategy: the tree comes from ``CALLWORKER_TEST_FREESWITCH`` (a ``.tar.xz`` or an
extracted tree) or else the tarball in ``../shared/freeswitch/`` beside the checkout;
a tarball is unpacked once into a cache directory. Each ``RealSwitch`` runs that tree
on free loopback ports with a configuration made of the project's own
``freeswitch-conf/`` plus ``overlay/`` (a fake carrier profile and its dialplan), the
ports and secrets given as the ``FS_*`` environment variables the shipped
``vars.xml`` reads. So what the tests load is what is shipped: if it does not load or
route, a test fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gevent.queue

from callworker.esl.codec import Event
from callworker.esl.connection import EslSession

__all__ = ["Ports", "RealSwitch", "SwitchUnavailable", "find_tree", "free_ports"]

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "freeswitch-conf"
OVERLAY = Path(__file__).resolve().parent / "overlay"
RUNTIME_PACKAGES = Path(__file__).resolve().parent / "runtime-packages.txt"
_FLAGS = {"tmp": "temp"}  # runtime directory -> its freeswitch command-line flag
_RUNTIME_DIRS = ("log", "run", "db", "cache", "tmp", "storage", "recordings", "sounds", "certs",
                 "scripts", "htdocs", "grammar")


class SwitchUnavailable(RuntimeError):
    """No FreeSWITCH tree could be found or run here."""


def _cache_dir() -> Path:
    base = os.environ.get("CALLWORKER_TEST_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "callworker-tests" if base else Path.home() / ".cache" / "callworker-tests"


def find_tree() -> Path:
    """The root of an extracted FreeSWITCH tree (holding bin/freeswitch); SwitchUnavailable if none."""
    given = os.environ.get("CALLWORKER_TEST_FREESWITCH")
    if given:
        source = Path(given)
        if not source.exists():
            raise SwitchUnavailable(f"CALLWORKER_TEST_FREESWITCH={given} does not exist")
    else:
        tarballs = sorted((REPO.parent / "shared" / "freeswitch").glob("freeswitch-*.tar.xz"))
        if not tarballs:
            raise SwitchUnavailable(
                "no FreeSWITCH found: set CALLWORKER_TEST_FREESWITCH to a FreeSWITCH 1.10 tarball or tree"
            )
        source = tarballs[-1]
    if source.is_dir():
        return _tree_root(source)
    return _unpacked(source)


def _tree_root(directory: Path) -> Path:
    for candidate in (directory, *sorted(p for p in directory.iterdir() if p.is_dir())):
        if (candidate / "bin" / "freeswitch").is_file():
            return candidate
    raise SwitchUnavailable(f"{directory} holds no bin/freeswitch")


def _unpacked(tarball: Path) -> Path:
    """The tarball unpacked into the cache, once (unpacked beside, then renamed into place)."""
    stat = tarball.stat()
    target = _cache_dir() / f"{tarball.name.removesuffix('.tar.xz')}-{stat.st_size}-{int(stat.st_mtime)}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpacking-"))
        try:
            with tarfile.open(tarball) as archive:
                archive.extractall(staging, filter="tar")
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # not another run that won the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _tree_root(target)


def missing_libraries(tree: Path) -> list[str]:
    """Shared libraries the FreeSWITCH binary needs that this machine lacks."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(tree / "lib")}
    out = subprocess.run(["ldd", str(tree / "bin" / "freeswitch")], capture_output=True, text=True,
                         env=env, check=False).stdout
    return re.findall(r"^\s*(\S+) => not found", out, re.MULTILINE)


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports(count: int, *, span: int = 1, low: int = 20000, high: int = 60000) -> list[int]:
    """``count`` ports (each the start of ``span`` consecutive free ports), TCP and UDP."""
    rng = secrets.SystemRandom()
    found: list[int] = []
    taken: set[int] = set()
    while len(found) < count:
        start = rng.randrange(low, high - span) & ~1  # even: RTP ranges start on even ports
        block = range(start, start + span)
        if taken.intersection(block) or not all(_port_free(p) for p in (block if span <= 8 else
                                                                         (start, start + span - 1))):
            continue
        found.append(start)
        taken.update(block)
    return found


@dataclass(frozen=True)
class Ports:
    esl: int
    sip: int
    carrier_sip: int
    rtp_start: int
    rtp_end: int
    socket: int  # where the shipped dialplan hands inbound calls (the worker's socket port)

    @classmethod
    def pick(cls, rtp_ports: int = 400) -> Ports:
        esl, sip, carrier, sock = free_ports(4)
        (rtp,) = free_ports(1, span=rtp_ports)
        return cls(esl, sip, carrier, rtp, rtp + rtp_ports - 1, sock)


class RealSwitch:
    """One FreeSWITCH process on loopback, run from ``tree`` with the shipped configuration."""

    def __init__(self, tree: Path, workdir: Path, ports: Ports | None = None, *, password: str | None = None):
        self.tree = tree
        self.workdir = workdir
        self.ports = ports or Ports.pick()
        self.password = password or f"t{secrets.token_hex(8)}"
        self.conf = workdir / "conf"
        self.runtime = workdir / "runtime"
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    @property
    def recordings(self) -> Path:
        return self.runtime / "recordings"

    @property
    def sounds(self) -> Path:
        return self.runtime / "sounds"

    @property
    def log_path(self) -> Path:
        return self.runtime / "log" / "freeswitch.log"

    def _prepare(self) -> None:
        shutil.copytree(SHIPPED_CONF, self.conf, ignore=shutil.ignore_patterns("*.md"))
        shutil.copytree(OVERLAY, self.conf, dirs_exist_ok=True)
        for name in _RUNTIME_DIRS:
            (self.runtime / name).mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        """The FS_* settings of the shipped vars.xml, for loopback and these ports."""
        p = self.ports
        return {
            "FS_ESL_LISTEN_PORT": str(p.esl),
            "FS_ESL_PASSWORD": self.password,
            "FS_SIP_PORT": str(p.sip),
            "FS_SIP_IP": "127.0.0.1",
            "FS_RTP_IP": "127.0.0.1",
            "FS_EXTERNAL_SIP_IP": "127.0.0.1",
            "FS_EXTERNAL_RTP_IP": "127.0.0.1",
            "FS_RTP_START_PORT": str(p.rtp_start),
            "FS_RTP_END_PORT": str(p.rtp_end),
            "FS_GATEWAY_HOST": f"127.0.0.1:{p.carrier_sip}",
            "FS_SIP_DOMAIN": "127.0.0.1",
            "FS_CALLWORKER_SOCKET_PORT": str(p.socket),
            "FS_TEST_CARRIER_SIP_PORT": str(p.carrier_sip),
        }

    # ------------------------------------------------------------------ life

    def start(self, timeout: float = 40.0, *, cpus: set[int] | None = None) -> None:
        """Start and wait until ready; ``cpus``: run it on these cores only (benchmarks)."""
        missing = missing_libraries(self.tree)
        if missing:
            packages = RUNTIME_PACKAGES.read_text().split() if RUNTIME_PACKAGES.exists() else []
            raise SwitchUnavailable(
                f"FreeSWITCH needs {', '.join(missing)}: apt-get install -y --no-install-recommends "
                + " ".join(packages)
            )
        r = self.runtime
        command = [
            str(self.tree / "bin" / "freeswitch"), "-nf", "-nc", "-nonat",
            "-base", str(r), "-conf", str(self.conf), "-mod", str(self.tree / "lib" / "freeswitch" / "mod"),
            *(arg for name in _RUNTIME_DIRS for arg in (f"-{_FLAGS.get(name, name)}", str(r / name))),
        ]
        if cpus:
            command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
        env = {**os.environ, **self.environment(), "LD_LIBRARY_PATH": str(self.tree / "lib")}
        out = open(r / "log" / "stdout.log", "ab")  # noqa: SIM115 - handed to the process
        try:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Until the core says ready and both SIP profiles run (between tries, wait on the process)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._watch(0.2)
            try:
                status = self.api("status", timeout=2)
                sofia = self.api("sofia status", timeout=2)
            except Exception as error:  # noqa: BLE001 - not up yet
                last = str(error)
                continue
            last = f"{status.strip()[:200]} / {sofia.strip()[-300:]}"
            if "is ready" in status and all(
                re.search(rf"^\s*{name}\s+profile\s+\S+\s+RUNNING", sofia, re.MULTILINE)
                for name in ("external", "carrier")
            ):
                return
        self.stop()
        raise SwitchUnavailable(f"FreeSWITCH did not become ready in {timeout:g} s: {last}\n{self.log_tail()}")

    def _watch(self, timeout: float) -> None:
        """Wait up to ``timeout`` on the process; an exit is an error at once."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return
        raise SwitchUnavailable(f"FreeSWITCH exited with status {code}\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the switch vanishes with every call, as in a crash."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------ ESL

    def client(self, events: str | None = None) -> EslClient:
        return EslClient(self, events)

    def api(self, command: str, timeout: float = 10.0) -> str:
        """One ``api`` command on a connection of its own."""
        with self.client() as client:
            return client.api(command, timeout=timeout)


class EslClient:
    """A bare inbound ESL connection to the switch, for tests to drive and watch it."""

    def __init__(self, switch: RealSwitch, events: str | None = None) -> None:
        self.events: gevent.queue.Queue[Event] = gevent.queue.Queue()
        self._session = EslSession("127.0.0.1", switch.ports.esl, switch.password, connect_timeout=5,
                                   on_event=self.events.put)
        self._session.connect()
        if events:
            self._session.send(f"event plain {events}", timeout=5)

    def api(self, command: str, timeout: float = 10.0) -> str:
        return self._session.send(f"api {command}", timeout=timeout).body.decode("utf-8", "replace")

    def bgapi(self, command: str, timeout: float = 10.0) -> str:
        """``bgapi <command>``: FreeSWITCH's reply text (``+OK Job-UUID: ...``)."""
        return self._session.send(f"bgapi {command}", timeout=timeout).reply_text()

    def event(self, predicate: object, timeout: float = 10.0) -> Event:
        """The next event matching ``predicate`` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching FreeSWITCH event in time")
            try:
                event = self.events.get(timeout=remaining)
            except gevent.queue.Empty:
                raise TimeoutError("no matching FreeSWITCH event in time") from None
            if predicate(event):  # type: ignore[operator]
                return event

    def close(self) -> None:
        self._session.close("test done")

    def __enter__(self) -> EslClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
