"""Whose addresses a peer list carries (docs/PROTOCOL.md, "Whose addresses a peer list
carries"): the addresses on the host the tracker saw the peer at, and at most one relay.

Peers on distinct loopback hosts (127.0.0.2 lies, 127.0.0.3 asks), on every storage (these
tests run again on a Redis Cluster: ``tracker/storage/test_cluster_core.py``).
"""

from __future__ import annotations

import random

import pytest

from ppsp.tracker.addresses import RELAY_PORTS, Scope, address_scope, usable_addresses
from ppsp.tracker.core import Tracker, TrackerConfig, reflexive_address
from ppsp.tracker.storage import Storage
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ConnectRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
HOST, PROXY, REFLEXIVE = AddressType.HOST, AddressType.PROXY, AddressType.REFLEXIVE
LIAR = "127.0.0.2"
HONEST = "127.0.0.3"


def at(ip: str, port: int, kind: AddressType = HOST, protocol: str | None = None) -> PeerAddress:
    family = AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4
    return PeerAddress(ip=ip, port=port, family=family, type=kind, peer_protocol=protocol)


@pytest.fixture
def tracker(storage: Storage) -> Tracker:
    return Tracker(storage, TrackerConfig(max_peers=50), rng=random.Random(3))


async def register(
    tracker: Tracker, peer_id: str, seen: str, addresses: tuple[PeerAddress, ...], now: float = 0.0
) -> dict[str, tuple[PeerAddress, ...]]:
    """CONNECT joining swarm ``s`` from ``seen``: the swarm's peers listed, by PeerID."""
    request = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id=peer_id,
        peer_addresses=addresses,
        swarm_actions=(
            SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
        ),
    )
    answer = await tracker.handle(request, observed=(seen, 40000 + int(now)), now=now)
    return {info.peer_id or "": info.addresses for info in answer.peers}


async def test_another_hosts_addresses_are_never_listed(tracker: Tracker) -> None:
    # The review's case: HOST, PROXY and REFLEXIVE addresses of other hosts (another loopback
    # host's SSH port, a service's well-known port, a LAN's DNS server), then 15 ports of one
    # other host per entry.
    claims = (at("127.0.0.99", 22), at("127.0.0.1", 7000, PROXY), at("10.0.0.1", 53, REFLEXIVE))
    await register(tracker, "liar0", LIAR, (at(LIAR, 7000), *claims))
    for k in range(1, 5):
        many = tuple(at("127.0.0.99", 1000 + 15 * k + i) for i in range(15))
        await register(tracker, f"liar{k}", LIAR, many, now=float(k))
    listed = await register(tracker, "honest", HONEST, (at(HONEST, 7000),), now=5.0)
    assert sorted(listed) == [f"liar{k}" for k in range(5)]
    for peer_id, addresses in listed.items():
        assert {a.ip for a in addresses} == {LIAR}, peer_id
        assert addresses[-1].type is REFLEXIVE
    assert listed["liar0"][0] == at(LIAR, 7000)
    assert len(listed["liar0"]) == 2 and len(listed["liar1"]) == 1
    # Nothing of them is stored either (the dashboard, corrupt-peer reports read the same).
    record = await tracker.storage.get_peer("liar0")
    assert record is not None and {a.ip for a in record.addresses} == {LIAR}


async def test_one_relay_is_listed(tracker: Tracker) -> None:
    # A peer relayed by a TURN server on another host (the NAT lab's coturn), on a relay's port;
    # a PROXY on a service's port, and a second relay, are not listed.
    ppspp = "PPSPP"
    mine = (
        at(LIAR, 7000),
        at(LIAR, 6778, HOST, ppspp),
        at("127.0.0.9", 22, PROXY, ppspp),
        at("127.0.0.9", 49200, PROXY, ppspp),
        at("127.0.0.10", 49201, PROXY, ppspp),
    )
    await register(tracker, "relayed", LIAR, mine)
    listed = await register(tracker, "honest", HONEST, (at(HONEST, 7000),), now=1.0)
    assert listed["relayed"][:3] == (mine[0], mine[1], mine[3])
    assert listed["relayed"][3] == reflexive_address((LIAR, 40000))
    assert len(listed["relayed"]) == 4


async def test_a_peer_behind_nat_is_listed_as_the_nat_lab_registers_it(tracker: Tracker) -> None:
    # Seen at its router's address: its LAN address is dropped, its STUN-mapped (REFLEXIVE)
    # address on the router's IP and its relay on the TURN server stay.
    router, ppspp = "10.2.3.1", "PPSPP"
    mine = (
        at("172.16.3.2", 6778, HOST, ppspp),
        at(router, 41000, REFLEXIVE, ppspp),
        at("10.1.2.1", 49153, PROXY, ppspp),
    )
    await register(tracker, "natted", router, mine)
    listed = await register(tracker, "public", "10.2.4.1", (at("10.2.4.1", 6778),), now=1.0)
    assert listed["natted"][:2] == mine[1:]
    assert len(listed["natted"]) == 3


def test_a_relay_is_no_narrower_than_its_host() -> None:
    def kept(seen: str, *advertised: PeerAddress) -> tuple[PeerAddress, ...]:
        return usable_addresses(advertised, reflexive_address((seen, 1)))

    public = "8.8.4.4"
    lan_relay, loop_relay = at("192.168.1.1", 50000, PROXY), at("127.0.0.1", 50000, PROXY)
    far_relay = at("9.9.9.9", 50000, PROXY)
    # A peer seen on the internet names no LAN or loopback address as its relay.
    assert kept(public, lan_relay, loop_relay, far_relay) == (far_relay,)
    # A peer seen on a private network (the NAT lab's 10.0.0.0/8) may have a relay there.
    assert kept("10.2.0.1", loop_relay, lan_relay, far_relay) == (lan_relay,)
    assert kept("127.0.0.2", loop_relay, far_relay) == (loop_relay,)
    # Only on a TURN server's ports.
    assert kept(public, at("9.9.9.9", 443, PROXY)) == ()
    assert RELAY_PORTS[0] == 49152 and RELAY_PORTS[-1] == 65535


def test_a_host_is_an_ipv4_address_or_an_ipv6_64() -> None:
    mine = (at("2001:db8:1:2::9", 7000), at("2001:db8:1:3::9", 7000), at("192.0.2.1", 7000))
    kept = usable_addresses(mine, reflexive_address(("2001:db8:1:2::1", 1)))
    assert kept == mine[:1]
    assert usable_addresses((at("192.0.2.2", 7000),), reflexive_address(("192.0.2.1", 1))) == ()


@pytest.mark.parametrize(
    ("ip", "scope"),
    [
        ("8.8.4.4", Scope.GLOBAL),
        ("2606:4700::1", Scope.GLOBAL),
        ("10.1.2.1", Scope.LOCAL),
        ("172.16.0.2", Scope.LOCAL),
        ("100.64.0.1", Scope.LOCAL),
        ("169.254.1.1", Scope.LOCAL),
        ("fe80::1", Scope.LOCAL),
        ("fd00::1", Scope.LOCAL),
        ("127.0.0.2", Scope.LOOPBACK),
        ("::1", Scope.LOOPBACK),
        ("::ffff:127.0.0.1", Scope.LOOPBACK),
        ("not an address", Scope.LOCAL),
    ],
)
def test_address_scope(ip: str, scope: Scope) -> None:
    assert address_scope(ip) is scope
