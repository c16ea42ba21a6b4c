"""Realistic ESL event streams for the parser figure: real captures and simulator output.

The real captures hold one FreeSWITCH 1.2 call (capture 00, 45 frames) and its
6.5 KB CHANNEL_HANGUP_COMPLETE (capture 13). The simulator's own events of an
outbound gateway leg top out near 7.7 KB, smaller than a carrier call's ~12 KB
(the SIP headers a real INVITE brings), so the simulated call is given the SIP
variables of the real captures with ``uuid_setvar`` before it hangs up: its
channel events then weigh what a production FreeSWITCH sends.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from urllib.parse import unquote

import gevent
from gevent.queue import Queue

from callworker.esl import builders
from callworker.esl.codec import Frame, FrameParser, encode_command, event_frame, parse_event
from callworker.simulator import Simulator

__all__ = ["CAPTURES", "EslClient", "capture_events", "describe", "simulator_events"]

# The real captures the tests use too (sources in their SOURCES.md).
CAPTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "esl"
# Bytes of capture variables to add: the variable-carrying events then average ~12 KB.
_EXTRA_BYTES = 7_700


def _event_frames(data: bytes) -> list[Frame]:
    parser = FrameParser()
    parser.feed(data)
    return [frame for frame in parser if frame.content_type.startswith("text/event-")]


def capture_events(prefix: str) -> list[bytes]:
    """The event frames of a capture, re-framed cleanly (the junk of capture 00 removed)."""
    (path,) = CAPTURES.glob(f"{prefix}_*.txt")
    return [event_frame(frame.body, "plain") for frame in _event_frames(path.read_bytes())]


def _capture_variables() -> list[tuple[str, str]]:
    """SIP-side channel variables of the real captures (decoded, single-line values)."""
    seen: dict[str, str] = {}
    for prefix in ("13", "05", "15"):
        (path,) = CAPTURES.glob(f"{prefix}_*.txt")
        for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
            name, sep, value = line.partition(": ")
            if not sep or not name.startswith("variable_"):
                continue
            value = unquote(value)
            key = name[len("variable_"):]
            if "\n" in value or "\r" in value or not value or "-" in key:
                continue
            seen.setdefault(key, value)
    return list(seen.items())


class EslClient:
    """A bare inbound ESL client: commands in order, every frame kept."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.parser = FrameParser()
        self.replies: Queue[Frame] = Queue()
        self.events: list[Frame] = []
        self.raw_events: list[bytes] = []
        self._reader = gevent.spawn(self._read)
        self.replies.get(timeout=5)  # auth/request

    def _read(self) -> None:
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.parser.feed(data)
            for frame in self.parser:
                if frame.content_type.startswith("text/event-"):
                    self.events.append(frame)
                else:
                    self.replies.put(frame)

    def send(self, line: str, headers: list[tuple[str, str]] | None = None) -> Frame:
        self.sock.sendall(encode_command(line, headers or []))
        return self.replies.get(timeout=5)

    def close(self) -> None:
        self._reader.kill()
        self.sock.close()


def simulator_events(fmt: str = "plain", *, min_bytes: int = 8_000) -> list[bytes]:
    """Channel events of one simulated call made ~12 KB; only those of at least ``min_bytes``."""
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.3, answer_delay=0.3)
    sim.start()
    client = EslClient(sim.address)
    try:
        client.send("auth ClueCon")
        client.send(f"event {fmt} ALL")
        call_id = str(uuid.uuid4())
        dial = builders.originate(call_id=call_id, destination_number="+15551230001",
                                  gateway="default", timeout_s=30,
                                  caller_id_number="+15550000000", caller_id_name="bench",
                                  variables={"callworker_tenant": "bench"})
        client.send(f"bgapi {dial}", [("Job-UUID", call_id)])
        gevent.sleep(0.05)
        _inflate(client, call_id)
        gevent.sleep(0.8)  # ringing and answer happen with the new variables
        client.send(f"api uuid_kill {call_id}")
        gevent.sleep(0.3)
    finally:
        client.close()
        sim.stop()
    frames = [frame for frame in client.events if len(frame.body) >= min_bytes]
    if not frames:
        raise RuntimeError("the simulator produced no event of the expected size")
    return [event_frame(frame.body, fmt) for frame in frames]


def _inflate(client: EslClient, call_id: str) -> None:
    """Add the captures' SIP variables (renamed per copy) until events reach ~12 KB."""
    variables = _capture_variables()
    added = 0
    copy = 0
    while added < _EXTRA_BYTES:
        for name, value in variables:
            key = name if copy == 0 else f"{name}_{copy}"
            reply = client.send(f"api uuid_setvar {call_id} {key} {value}")
            if not reply.body.startswith(b"+OK"):
                raise RuntimeError(f"uuid_setvar refused: {reply.body!r}")
            added += len(key) + len(value) + 12
            if added >= _EXTRA_BYTES:
                break
        copy += 1


def describe(frames: list[bytes]) -> str:
    names = sorted({parse_event(_event_frames(frame)[0]).name for frame in frames})
    mean = sum(len(frame) for frame in frames) / len(frames)
    return f"{len(frames)} events, mean {mean / 1000:.1f} KB ({', '.join(names)})"
