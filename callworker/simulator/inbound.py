"""A call arriving from a carrier and handed to a server by the dialplan ``socket`` app.

Strategy: the simulated dialplan is the one shipped in ``freeswitch-conf``:
``set`` the given variables (``callworker_tenant``...), optionally ``answer``,
then ``socket host:port async full``, then ``hangup NORMAL_TEMPORARY_FAILURE``.
One greenlet per call runs it like the channel thread: arrival events, the
dialplan's applications, the socket application (connect to the server, park on
``connect``), then a wait for a hangup from anyone (the caller, ``uuid_kill``, a
``sendmsg``, or the dialplan going on after the socket closed) and the usual
teardown with a CDR shaped for an inbound leg.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Callable, Mapping

import gevent
import gevent.socket

from callworker.simulator.apps import run_app
from callworker.simulator.channel import Channel
from callworker.simulator.legs import Ending, execute_app, tear_down
from callworker.simulator.outbound_socket import OutboundSocket
from callworker.simulator.switch import Switch
from callworker.simulator.variables import REMOTE_IP, inbound_vars

__all__ = ["AFTER_SOCKET_CAUSE", "InboundCall", "OpenSocket", "new_inbound_channel"]

OpenSocket = Callable[[socket.socket, Channel], OutboundSocket]

# The shipped dialplan's action after ``socket``: reached when the socket fails or closes.
AFTER_SOCKET_CAUSE = "NORMAL_TEMPORARY_FAILURE"
_CONNECT_TIMEOUT = 5.0
# SIP final responses FreeSWITCH sends when it refuses an unanswered inbound leg.
_REFUSALS = {
    "USER_BUSY": (486, "Busy Here"),
    "CALL_REJECTED": (603, "Decline"),
    "UNALLOCATED_NUMBER": (404, "Not Found"),
    "NO_ROUTE_DESTINATION": (404, "Not Found"),
    "NORMAL_TEMPORARY_FAILURE": (503, "Service Unavailable"),
}


def new_inbound_channel(sw: Switch, *, caller_id_number: str, destination_number: str,
                        caller_id_name: str | None) -> Channel:
    """A channel as sofia makes it from an INVITE, with its variables."""
    ch = Channel(
        uuid=str(uuidlib.uuid4()),
        name=f"sofia/external/{caller_id_number}@{REMOTE_IP}",
        number=destination_number,
        cid_name=caller_id_name or caller_id_number,
        cid_num=caller_id_number,
        session_id=sw.next_session_id(),
        direction="inbound",
        context="public",
        created_us=sw.now_us(),
    )
    ch.variables.update(inbound_vars(ch, sw.ipv4))
    return ch


class InboundCall:
    """The life of one inbound channel; ``run`` is its greenlet."""

    def __init__(self, sw: Switch, ch: Channel, target: tuple[str, int], *,
                 variables: Mapping[str, str], answer: bool, full: bool,
                 open_socket: OpenSocket) -> None:
        self.sw = sw
        self.ch = ch
        self.target = target
        self.variables = dict(variables)
        self.answer = answer
        self.full = full
        self.open_socket = open_socket
        self.socket: OutboundSocket | None = None

    def run(self) -> None:
        finished = False
        try:
            self._arrive()
            self._dialplan()
            self._socket_app()
            self.ch.killed.wait()
            socket_ = self.socket
            tear_down(self.sw, self.ch, self._ending(),
                      on_down=socket_.channel_down if socket_ is not None else None)
            finished = True
        finally:
            if not finished and self.socket is not None:
                self.socket.abort()  # stopped from outside: the simulator is going away
            self.sw.forget(self.ch)

    def _arrive(self) -> None:
        sw, ch = self.sw, self.ch
        sw.emit(ch, "CHANNEL_STATE")
        sw.set_state(ch, "CS_INIT")
        sw.emit(ch, "CHANNEL_CREATE", state_number=2)
        sw.set_call_state(ch, "RINGING")
        sw.set_state(ch, "CS_ROUTING")
        sw.set_state(ch, "CS_EXECUTE")

    def _dialplan(self) -> None:
        for name, value in self.variables.items():
            run_app(self.sw, self.ch, "set", f"{name}={value}", str(uuidlib.uuid4()))
        if self.answer:
            run_app(self.sw, self.ch, "answer", "", str(uuidlib.uuid4()))

    def _socket_app(self) -> None:
        sw, ch = self.sw, self.ch
        host, port = self.target
        sw.set_vars(ch, [("socket_host", host)])
        execute_app(sw, ch, "socket", f"{host}:{port} async{' full' if self.full else ''}")
        try:
            sock = gevent.socket.create_connection(self.target, timeout=_CONNECT_TIMEOUT)
        except OSError:
            # "Socket Error!": the app returns and the dialplan goes on to its hangup.
            ch.request_hangup(AFTER_SOCKET_CAUSE)
            return
        sock.settimeout(None)
        self.socket = self.open_socket(sock, ch)
        gevent.spawn(self._serve, self.socket)
        gevent.wait([self.socket.connected, self.socket.closed, ch.killed], count=1)
        if self.socket.connected.is_set() and not ch.killed.is_set():
            ch.parked = True
            sw.emit(ch, "CHANNEL_PARK")

    def _serve(self, socket_: OutboundSocket) -> None:
        socket_.run()
        # Closed by the server after ``connect``: the park ends and the dialplan goes on.
        # Before ``connect`` FreeSWITCH keeps waiting for it until the caller hangs up.
        if socket_.connected.is_set() and not self.ch.gone:
            self.ch.request_hangup(AFTER_SOCKET_CAUSE)

    def _ending(self) -> Ending:
        ch = self.ch
        cause = ch.kill_cause or "NORMAL_CLEARING"
        if ch.answered:
            if ch.kill_remote:
                return Ending(cause, 200, "OK", "recv_bye")
            return Ending(cause, None, "", "send_bye")
        if ch.kill_remote:
            return Ending(cause, 487, "Request Terminated", "recv_cancel")
        status, phrase = _REFUSALS.get(cause, (480, "Temporarily Unavailable"))
        return Ending(cause, status, phrase, "send_refuse")
