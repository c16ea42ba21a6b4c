"""The dialplan socket's allow-list: addresses, networks, or FreeSWITCH's resolved address."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from callworker.config import Settings
from callworker.esl.peers import Address, PeerAllowList, allow_list, parse_networks, peer_ip


def test_entries_are_addresses_or_networks() -> None:
    networks = parse_networks(["10.0.0.5", " 172.16.0.0/12 ", "::1", "2001:db8::/32", "10.1.2.3/24"])
    assert [str(n) for n in networks] == ["10.0.0.5/32", "172.16.0.0/12", "::1/128", "2001:db8::/32", "10.1.2.0/24"]
    for bad in ("freeswitch", "10.0.0.256", "10.0.0.0/33", "", "10.0.0.1,10.0.0.2"):
        with pytest.raises(ValueError, match="not an IP address or network"):
            parse_networks([bad])


def test_peer_addresses_as_sockets_report_them() -> None:
    assert peer_ip("::ffff:10.0.0.5") == ipaddress.ip_address("10.0.0.5")  # dual-stack listener
    assert peer_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert peer_ip("not an address") is None


def test_a_list_admits_its_addresses_and_networks_only() -> None:
    allows = allow_list(["10.0.0.5", "192.168.10.0/24"], esl_host="freeswitch").allows
    assert allows("10.0.0.5") and allows("192.168.10.77") and allows("::ffff:192.168.10.1")
    assert not allows("10.0.0.6") and not allows("192.168.11.1") and not allows("127.0.0.1")
    assert not allows("garbage")


def test_without_a_list_only_freeswitchs_address_is_admitted() -> None:
    allows = allow_list([], esl_host="127.0.0.1").allows
    assert allows("127.0.0.1") and not allows("127.0.0.2") and not allows("10.0.0.1")
    # A host name is resolved (localhost: the loopback addresses).
    named = allow_list([], esl_host="localhost")
    assert named.allows("127.0.0.1") and not named.allows("127.0.0.2")


class Resolver:
    def __init__(self, *addresses: str) -> None:
        self.addresses = {ipaddress.ip_address(a) for a in addresses}
        self.calls = 0
        self.fail = False

    def __call__(self, host: str) -> set[Address]:
        self.calls += 1
        if self.fail:
            raise OSError("no such host")
        return set(self.addresses)


def test_a_switch_that_moved_is_found_again_and_strangers_cost_one_lookup_per_interval() -> None:
    now = [100.0]
    resolver = Resolver("172.30.57.3")
    peers = PeerAllowList(host="freeswitch", refresh_s=10.0, resolve=resolver, clock=lambda: now[0])
    assert peers.allows("172.30.57.3") and resolver.calls == 1
    assert peers.allows("172.30.57.3") and resolver.calls == 1  # known: no lookup
    for _ in range(5):
        assert not peers.allows("172.30.57.66")
    assert resolver.calls == 1  # strangers within the interval: no lookup
    resolver.addresses = {ipaddress.ip_address("172.30.57.9")}  # recreated with a new address
    now[0] += 10.0
    assert peers.allows("172.30.57.9") and resolver.calls == 2
    assert not peers.allows("172.30.57.3")


def test_a_failed_lookup_keeps_what_was_known() -> None:
    now = [0.0]
    resolver = Resolver("10.0.0.5")
    peers = PeerAllowList(host="freeswitch", refresh_s=1.0, resolve=resolver, clock=lambda: now[0])
    peers.refresh()
    resolver.fail = True
    now[0] += 5
    assert not peers.allows("10.0.0.6")
    assert peers.allows("10.0.0.5") and "10.0.0.5" in peers.describe()


def test_settings_default_to_loopback_and_freeswitchs_address(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.socket_host, settings.socket_allow) == ("127.0.0.1", ())
    monkeypatch.setenv("CALLWORKER_SOCKET_ALLOW", "10.0.0.5, 10.1.0.0/16")
    assert Settings().socket_allow == ("10.0.0.5", "10.1.0.0/16")
    monkeypatch.setenv("CALLWORKER_SOCKET_ALLOW", "")
    assert Settings().socket_allow == ()
    monkeypatch.setenv("CALLWORKER_SOCKET_ALLOW", "10.0.0.5,freeswitch")
    with pytest.raises(ValidationError, match="CALLWORKER_SOCKET_ALLOW: 'freeswitch'"):
        Settings()
