"""A relayed seeder's decisions, sans-I/O: which listed peers' IPs it permits on its TURN
relay, within which bounds, and the PROXY address it registers (docs/PROTOCOL.md, "NAT
traversal")."""

from __future__ import annotations

import pytest

from ppsp.peer.nat.punch import ppspp_candidates
from ppsp.peer.nat.relay import MAX_RELAY_PERMITS, RelayPermits
from ppsp.peer.nat.turn import MAX_PERMISSIONS
from ppsp.peer.protocol.addressing import ppspp_addresses, relayed_address
from ppsp.wire.common import AddressFamily, AddressType, PeerAddress
from ppsp.wire.tracker import PeerInfo

T0 = 50.0


def test_the_ips_of_a_listed_peers_candidates_are_permitted_once() -> None:
    permits = RelayPermits()
    changes = permits.listed([("10.0.0.2", 6778), ("203.0.113.5", 41000)], T0)
    assert changes.permit == ["10.0.0.2", "203.0.113.5"] and changes.forget == []
    # Listed again (another port of the same NAT, say): nothing new to ask the server.
    again = permits.listed([("203.0.113.5", 41001), ("10.0.0.2", 6778)], T0 + 3)
    assert again.permit == [] and again.forget == []
    assert permits.permitted == ("203.0.113.5", "10.0.0.2")  # least recently listed first


def test_unusable_candidates_and_the_other_family_are_left_out() -> None:
    permits = RelayPermits(v6=False)
    candidates = [("0.0.0.0", 9), ("255.255.255.255", 9), ("224.0.0.1", 9), ("2001:db8::1", 9),
                  ("not an ip", 9), ("192.0.2.7", 0), ("192.0.2.8", 9)]  # fmt: skip
    assert permits.listed(candidates, T0).permit == ["192.0.2.8"]
    assert RelayPermits(v6=True).listed(candidates, T0).permit == ["2001:db8::1"]


def test_a_full_table_waits_until_the_oldest_is_stale_then_gives_it_up() -> None:
    permits = RelayPermits(max_permits=2, stale=300.0)
    permits.listed([("192.0.2.1", 1)], T0)
    permits.listed([("192.0.2.2", 1)], T0 + 10)
    # Full, and both were listed within the stale time: the newcomer waits.
    assert permits.listed([("192.0.2.3", 1)], T0 + 100).permit == []
    assert permits.dropped == 1
    # 192.0.2.1 was listed again: 192.0.2.2 is now the least recently listed.
    permits.listed([("192.0.2.1", 1)], T0 + 200)
    assert permits.listed([("192.0.2.3", 1)], T0 + 250).permit == []
    changes = permits.listed([("192.0.2.3", 1)], T0 + 310)
    assert changes.permit == ["192.0.2.3"] and changes.forget == ["192.0.2.2"]
    assert permits.permitted == ("192.0.2.1", "192.0.2.3") and permits.forgotten == 1


def test_a_hostile_listing_never_holds_more_than_the_bound() -> None:
    permits = RelayPermits()
    flood = [(f"198.51.{n // 250}.{n % 250 + 1}", 9) for n in range(5000)]
    changes = permits.listed(flood, T0)
    assert len(changes.permit) == MAX_RELAY_PERMITS == len(permits.permitted)
    assert permits.dropped == 5000 - MAX_RELAY_PERMITS
    # Below the TURN client's own bound, which refuses more.
    assert MAX_RELAY_PERMITS < MAX_PERMISSIONS


def test_a_refused_ip_frees_its_place_and_is_not_asked_again_soon() -> None:
    permits = RelayPermits(max_permits=1, stale=300.0)
    assert permits.listed([("192.0.2.1", 1)], T0).permit == ["192.0.2.1"]
    permits.refused("192.0.2.1", T0 + 1)
    permits.refused("192.0.2.99", T0 + 1)  # never asked for: ignored
    assert permits.permitted == () and permits.refusals == 1
    assert permits.listed([("192.0.2.1", 1)], T0 + 100).permit == []
    assert permits.listed([("192.0.2.2", 1)], T0 + 100).permit == ["192.0.2.2"]
    permits.refused("192.0.2.2", T0 + 101)
    assert permits.listed([("192.0.2.1", 1)], T0 + 302).permit == ["192.0.2.1"]


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        RelayPermits(max_permits=0)
    with pytest.raises(ValueError):
        RelayPermits(stale=0)


def test_the_relayed_address_is_registered_last_as_proxy() -> None:
    listed = ppspp_addresses(
        "10.234.0.2", 6778, reflexive=("203.0.113.5", 41000), relayed=("198.51.100.1", 50000)
    )
    assert [(a.ip, a.port, a.type) for a in listed] == [
        ("10.234.0.2", 6778, AddressType.HOST),
        ("203.0.113.5", 41000, AddressType.REFLEXIVE),
        ("198.51.100.1", 50000, AddressType.PROXY),
    ]
    assert {a.peer_protocol for a in listed} == {"PPSPP"}
    assert listed[-1] == relayed_address(("198.51.100.1", 50000))
    assert relayed_address(("2001:db8::1", 5)).family is AddressFamily.IPV6
    # A downloading peer tries it with the others (the PROXY address is a PPSPP candidate).
    info = PeerInfo(peer_id="p", addresses=tuple(listed))
    assert ppspp_candidates(info)[-1] == ("198.51.100.1", 50000)
    assert ppspp_addresses("10.234.0.2", 6778) == [
        PeerAddress(ip="10.234.0.2", port=6778, type=AddressType.HOST, peer_protocol="PPSPP",
                    family=AddressFamily.IPV4),
    ]  # fmt: skip
