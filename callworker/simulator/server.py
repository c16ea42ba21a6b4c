"""The simulator's public face: a TCP listener speaking FreeSWITCH's inbound event socket,
and inbound calls that the dialplan hands to a server over an outbound socket."""

from __future__ import annotations

import copy
import ipaddress
import socket
from collections import deque

import gevent.event
from gevent.server import StreamServer

from callworker.simulator import legs
from callworker.simulator.api import ApiRunner
from callworker.simulator.channel import Channel
from callworker.simulator.inbound import InboundCall, new_inbound_channel
from callworker.simulator.legs import HELD_BY_FAR_END, answer_leg
from callworker.simulator.media import far_end_dtmf
from callworker.simulator.outbound_socket import OutboundSocket
from callworker.simulator.session import Session
from callworker.simulator.switch import Stats, Switch, Timing

__all__ = ["Simulator"]

_KEPT_COMMANDS = 100_000  # received_commands() keeps the most recent ones


def _advertised_ipv4(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    if address.version != 4 or address.is_unspecified:
        return "127.0.0.1"
    return host


class Simulator:
    """A FreeSWITCH stand-in for demos, load tests and fault tests.

    ``start()`` serves in background greenlets and returns at once; the
    accessors below let tests see what reached the socket and what the calls hold,
    and play the far end (``hangup``, ``far_end_hold``).

    Timing: the far end rings ``ring_delay`` after the INVITE and answers
    ``answer_delay`` later; ...0200 hangs up ``far_end_hangup_after`` its answer;
    ...0180 rings ``long_ring`` before giving up. Event times move in steps of
    ``clock_step`` seconds, as FreeSWITCH's clock does (0: the exact time).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8021,
        password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's own documented default
        *,
        ring_delay: float = 0.05,
        answer_delay: float = 0.15,
        far_end_hangup_after: float = 2.0,
        long_ring: float = 60.0,
        clock_step: float = 0.02,
        hostname: str = "sim1",
        acl_allow: bool = True,
    ) -> None:
        self._bind = (host, port)
        self._password = password
        self._acl_allow = acl_allow
        timing = Timing(ring_delay, answer_delay, far_end_hangup_after, long_ring,
                        round(clock_step * 1_000_000))
        self._switch = Switch(hostname, _advertised_ipv4(host), timing)
        self._api = ApiRunner(self._switch)
        self._sessions: set[Session] = set()
        self._outbound: set[OutboundSocket] = set()
        self._commands: deque[str] = deque(maxlen=_KEPT_COMMANDS)
        self._server: StreamServer | None = None
        self._stopped = gevent.event.Event()

    # ------------------------------------------------------------------ serving

    def start(self) -> None:
        """Bind (port 0 picks a free port) and serve in background greenlets."""
        if self._server is not None:
            return
        self._stopped.clear()
        self._server = StreamServer(self._bind, self._handle, backlog=1024)
        self._server.start()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or self._server.socket is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()``."""
        self.start()
        self._stopped.wait()

    def stop(self) -> None:
        """Close the listener and every client; end every call."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.drop_clients()
        self._switch.kill_all_calls()
        for outbound in list(self._outbound):
            outbound.abort()
        if server is not None:
            server.stop(timeout=1)
        self._stopped.set()

    def drop_clients(self) -> None:
        """Abruptly close every client connection; calls keep running."""
        for session in list(self._sessions):
            session.abort()

    def _handle(self, sock: socket.socket, _address: object) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._switch.stats.connections += 1
        session = Session(self._switch, self._api, sock, password=self._password,
                          acl_allow=self._acl_allow, record=self._commands.append)
        self._sessions.add(session)
        try:
            session.run()
        finally:
            self._sessions.discard(session)

    # ---------------------------------------------------------------- inspection

    @property
    def stats(self) -> Stats:
        """Counts of connections, calls_started, events_sent and commands."""
        return self._switch.stats

    def live_channels(self) -> list[str]:
        return list(self._switch.channels)

    # ------------------------------------------------------------ real-switch truths

    @property
    def channel_list_lag(self) -> float:
        """Seconds ``show channels`` lags the core (0: never), as on FreeSWITCH 1.10.12.

        A channel is listed that long after it was made, and still listed that long
        after it was destroyed; ``uuid_exists`` always answers from the core.
        """
        return self._switch.list_lag

    @channel_list_lag.setter
    def channel_list_lag(self, seconds: float) -> None:
        self._switch.list_lag = seconds

    def refuse_api(self, line: str, reply: str = "-ERR no reply\n", *, times: int = 1) -> None:
        """The next ``times`` api/bgapi commands starting with ``line`` answer ``reply``.

        E.g. ``refuse_api("show channels")``: the reconciliation's channel list comes
        back as an ``-ERR``, as it can from a busy or broken FreeSWITCH.
        """
        self._api.refuse(line, reply, times)

    def channel_vars(self, uuid: str) -> dict[str, str]:
        """The variables of a live or recently ended channel (KeyError if unknown)."""
        return self._switch.lookup(uuid).variables.copy()

    def audio_state(self, uuid: str) -> dict[str, dict[str, int]]:
        """``{"read": {"mute": n, "level": n}, "write": {...}}`` as set by uuid_audio."""
        return copy.deepcopy(self._switch.lookup(uuid).audio)

    def received_commands(self) -> list[str]:
        """Command lines received from all clients, in arrival order (the last 100,000)."""
        return list(self._commands)

    def sent_dtmf(self, uuid: str) -> str:
        """The digits ``uuid_send_dtmf`` sent to the far end of a call, in order."""
        return self._api.media.sent_dtmf.get(uuid, "")

    def far_end_dtmf(self, uuid: str, digits: str) -> None:
        """The far end of a live call keys in ``digits`` (DTMF events on that leg)."""
        far_end_dtmf(self._switch, self._live(uuid), digits, gap_s=0)

    def fire_custom(self, uuid: str, subclass: str, headers: dict[str, str]) -> None:
        """A CUSTOM event on a live channel, as the dialplan ``event`` application fires it.

        ``<action application="event" data="Event-Name=CUSTOM,Event-Subclass=<subclass>,
        name=value,..."/>``: the common headers, then ``Event-Name`` (moved there
        when the app renamed the event), ``Event-Subclass``, the given headers, the
        channel data and the channel variables.
        """
        ch = self._live(uuid)
        self._switch.emit(ch, "CUSTOM", subclass=subclass, top=list(headers.items()), renamed=True)

    # ------------------------------------------------------------ inbound calls

    def place_inbound_call(
        self, host: str, port: int, *, caller_id_number: str, destination_number: str,
        caller_id_name: str | None = None, variables: dict[str, str] | None = None,
        answer: bool = False, full: bool = True,
    ) -> str:
        """A call from a carrier that the dialplan hands to ``host:port``; returns its UUID.

        The dialplan sets ``variables`` (``callworker_tenant``...), answers the call
        first when ``answer`` is true, then runs ``socket host:port async full``
        (``async`` only when ``full`` is false). The channel's events reach
        inbound-socket subscribers like any call's.
        """
        sw = self._switch
        ch = new_inbound_channel(sw, caller_id_number=caller_id_number,
                                 destination_number=destination_number,
                                 caller_id_name=caller_id_name)
        sw.add_channel(ch)
        call = InboundCall(sw, ch, (host, port), variables=variables or {}, answer=answer,
                           full=full, open_socket=lambda sock, leg: self._open_socket(sock, leg, full))
        sw.spawn_call(call.run)
        return ch.uuid

    def _open_socket(self, sock: socket.socket, ch: Channel, full: bool) -> OutboundSocket:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        outbound = OutboundSocket(self._switch, self._api, sock, ch, full=full,
                                  record=self._commands.append)
        self._outbound.add(outbound)
        outbound.closed.rawlink(lambda _event: self._outbound.discard(outbound))
        return outbound

    def answer(self, uuid: str) -> None:
        """The call is answered on this side (as a dialplan ``answer`` would)."""
        ch = self._live(uuid)
        if not ch.answered and not ch.gone:
            answer_leg(self._switch, ch)

    def hangup(self, uuid: str, cause: str | None = None) -> None:
        """The far end hangs up: the caller of an inbound call, the callee of an outbound one.

        The default cause is NORMAL_CLEARING for an answered call and
        ORIGINATOR_CANCEL for one still ringing.
        """
        ch = self._live(uuid)
        default = "NORMAL_CLEARING" if ch.answered else "ORIGINATOR_CANCEL"
        ch.request_hangup(cause or default, remote=True)

    def far_end_hold(self, uuid: str, hold: bool = True) -> bool:
        """The far end puts an answered call on hold (a re-INVITE with sendonly), or resumes it.

        The leg fires CHANNEL_HOLD / CHANNEL_UNHOLD from ``switch_channel_mark_hold``,
        where a ``uuid_hold`` of ours fires them from ``switch_ivr_hold``/``_unhold``.
        A leg has one hold, whoever set it. False when the call is not answered or
        already in that state (KeyError if it is not live).
        """
        ch = self._live(uuid)
        if not ch.answered or ch.gone or ch.held == hold:
            return False
        if hold:
            legs.hold(self._switch, ch, HELD_BY_FAR_END)
        else:
            legs.unhold(self._switch, ch, HELD_BY_FAR_END)
        return True

    def wait_ended(self, uuid: str, timeout: float) -> bool:
        """Wait until the channel is destroyed (its last event fired); False on timeout."""
        return bool(self._switch.lookup(uuid).ended.wait(timeout))

    def _live(self, uuid: str) -> Channel:
        ch = self._switch.find(uuid)
        if ch is None:
            raise KeyError(uuid)
        return ch
