"""Who may hand calls over on the dialplan socket: addresses and networks, or FreeSWITCH's own.

Anyone who can open a TCP connection to the outbound-socket port can pose as
FreeSWITCH and have calls, events and CDRs filed under any tenant, so the server
asks this list about every peer before it says or reads anything.

Strategy: an explicit list (``CALLWORKER_SOCKET_ALLOW``) is parsed once with the
stdlib ``ipaddress`` module and never changes. Without one, the peers allowed are
the addresses FreeSWITCH's host name (``CALLWORKER_ESL_HOST``) resolves to. That
lookup is kept, and made again only when a peer outside it knocks and the last
lookup is older than ``refresh_s``: a switch that moved (a container recreated
with a new address) is let in on its next call, and a stranger knocking
repeatedly costs at most one lookup per ``refresh_s``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = ["Address", "Network", "PeerAllowList", "allow_list", "parse_networks", "peer_ip"]

log = logging.getLogger("callworker.esl.peers")

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses (``10.0.0.5``, ``::1``) and networks (``10.0.0.0/24``); ValueError names a bad one."""
    networks = []
    for entry in entries:
        text = entry.strip()
        try:
            # strict=False: "10.0.0.5/24" means that address's network, as operators write it.
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text[:60]!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


def peer_ip(host: str) -> Address | None:
    """A peer's address as the socket reports it; IPv4 seen through a dual-stack socket as IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # no IPv6 zone: "fe80::1%eth0"
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _resolve(host: str) -> set[Address]:
    """Every address ``host`` resolves to (IPv4 and IPv6); OSError when it resolves to none."""
    found = set()
    for *_, sockaddr in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        address = peer_ip(str(sockaddr[0]))
        if address is not None:
            found.add(address)
    return found


class PeerAllowList:
    """``allows(host)``: whether a peer at ``host`` may hand calls over."""

    def __init__(
        self,
        networks: Iterable[Network] = (),
        *,
        host: str | None = None,
        refresh_s: float = 10.0,
        resolve: Callable[[str], set[Address]] = _resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._networks = tuple(networks)
        self._host = host
        self._refresh_s = refresh_s
        self._resolve = resolve
        self._clock = clock
        self._resolved: frozenset[Address] = frozenset()
        self._resolved_at: float | None = None

    def __repr__(self) -> str:
        return f"PeerAllowList({self.describe()})"

    def describe(self) -> str:
        """For the log: what is allowed."""
        if self._host is None:
            return ", ".join(str(n) for n in self._networks) or "nobody"
        resolved = ", ".join(sorted(str(a) for a in self._resolved)) or "not resolved yet"
        return f"the addresses of {self._host} ({resolved})"

    def allows(self, host: str) -> bool:
        address = peer_ip(host)
        if address is None:
            return False
        if any(address in network for network in self._networks):
            return True
        if self._host is None:
            return False
        if address in self._resolved:
            return True
        now = self._clock()
        if self._resolved_at is None or now - self._resolved_at >= self._refresh_s:
            self.refresh(now)
        return address in self._resolved

    def refresh(self, now: float | None = None) -> None:
        """Look the host name up again (a failed lookup keeps the addresses known so far)."""
        if self._host is None:
            return
        self._resolved_at = self._clock() if now is None else now
        try:
            found = self._resolve(self._host)
        except OSError as exc:
            log.warning("cannot resolve %s to know who may hand calls over: %s", self._host, exc)
            return
        if found != self._resolved:
            log.info("calls may be handed over from %s: %s", self._host, ", ".join(sorted(map(str, found))))
        self._resolved = frozenset(found)


def allow_list(entries: Iterable[str], esl_host: str) -> PeerAllowList:
    """The list of the settings: ``entries`` when there are any, otherwise FreeSWITCH's address."""
    networks = parse_networks(entries)
    if networks:
        return PeerAllowList(networks)
    # An address is taken as it is; a name is resolved (and again when needed).
    literal = peer_ip(esl_host)
    if literal is not None:
        return PeerAllowList([ipaddress.ip_network(literal)])
    return PeerAllowList(host=esl_host)
