"""The sans-I/O rules of whom a peer protocol message comes from (peer/protocol/senders.py)."""

from __future__ import annotations

import pytest

from ppsp.peer.protocol.senders import (
    Sender,
    StrangerGate,
    canonical_host,
    hosts_of,
    judge_sender,
    seed_keeps_map,
)
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.tracker import PeerAddress, PeerInfo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.5", "127.0.0.5"),
        ("::ffff:127.0.0.5", "127.0.0.5"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("", None),
        (None, None),
        ("example.org", None),
    ],
)
def test_canonical_host(text: str | None, expected: str | None) -> None:
    assert canonical_host(text) == expected


def test_hosts_of_a_listed_peer_are_all_its_addresses() -> None:
    info = PeerInfo(
        peer_id="x",
        addresses=(PeerAddress(ip="192.0.2.1", port=1), PeerAddress(ip="2001:db8::1", port=2)),
    )
    assert hosts_of(info) == {"192.0.2.1", "2001:db8::1"}
    assert hosts_of(PeerInfo(peer_id="y")) == frozenset()


def test_judge_sender() -> None:
    listed = {"192.0.2.1"}
    assert judge_sender(listed, "192.0.2.1") is Sender.SELF
    assert judge_sender(listed, "::ffff:192.0.2.1") is Sender.SELF
    assert judge_sender(listed, "192.0.2.2") is Sender.FORGED
    assert judge_sender(listed, None) is Sender.FORGED  # not observed: matches nothing
    assert judge_sender(frozenset(), "192.0.2.1") is Sender.FORGED  # known, no address
    assert judge_sender(None, "192.0.2.2") is Sender.UNKNOWN
    assert judge_sender(None, "192.0.2.1", names_us=True) is Sender.FORGED
    assert judge_sender(listed, "192.0.2.1", names_us=True) is Sender.FORGED


def test_a_seeders_map_only_grows() -> None:
    assert seed_keeps_map(ChunkBitmap.from_indexes(range(8), 8))
    assert not seed_keeps_map(ChunkBitmap.from_indexes(range(7), 8))
    assert not seed_keeps_map(ChunkBitmap(0))
    assert not seed_keeps_map(None)


def test_stranger_gate_buckets_per_host() -> None:
    gate = StrangerGate(rate=2.0, burst=2.0, lookup_interval=5.0, max_hosts=2)
    assert [gate.admit("192.0.2.1", 0.0) for _ in range(3)] == [True, True, False]
    assert gate.refused == 1
    assert gate.admit("::ffff:192.0.2.1", 0.0) is False  # the same host, however written
    assert gate.admit("192.0.2.2", 0.0) is True  # another host has its own bucket
    assert gate.admit("192.0.2.1", 0.5) is True  # one token back after half a second
    # Only max_hosts buckets are kept: the least recently seen host is forgotten.
    gate.admit("192.0.2.3", 0.5)
    assert gate.admit("192.0.2.2", 0.5) is True and gate.admit("192.0.2.2", 0.5) is True


def test_stranger_gate_lookups_per_swarm() -> None:
    gate = StrangerGate(lookup_interval=5.0)
    assert gate.lookup_due("s", 0.0) is True
    assert gate.lookup_due("s", 4.9) is False
    assert gate.lookup_due("t", 4.9) is True
    assert gate.lookup_due("s", 5.0) is True
    assert gate.lookup_due("s", 9.0) is False


def test_a_peer_sends_from_any_address_of_its_ipv6_64() -> None:
    """IPv6 temporary addresses: the host is the /64, as the tracker binds and bans count it."""
    listed = {"2001:db8:0:1::10"}
    assert judge_sender(listed, "2001:db8:0:1:abcd::99") is Sender.SELF
    assert judge_sender(listed, "2001:db8:0:2::10") is Sender.FORGED


def test_a_host_cycling_ipv6_addresses_shares_one_bucket() -> None:
    """Fresh addresses from one /64 do not bring fresh tokens."""
    gate = StrangerGate(rate=1.0, burst=3.0)
    admitted = [gate.admit(f"2001:db8:0:1::{n:x}", 0.0) for n in range(1, 11)]
    assert admitted == [True] * 3 + [False] * 7
    assert gate.admit("2001:db8:0:2::1", 0.0)


def test_an_http_offer_is_used_only_where_the_peer_was_reached() -> None:
    from ppsp.peer.protocol.senders import offer_leads_to, trusted_offers
    from ppsp.wire.peer import HTTP, TransportOffer

    reached = "http://127.0.5.5:7000"
    template = "/swarm/s/chunk/{representation}/{chunk}"
    assert offer_leads_to(f"http://127.0.5.5:7000{template}", reached)
    assert offer_leads_to("http://[::ffff:127.0.5.5]:7000/x?c={chunk}", reached)
    assert offer_leads_to("http://[2001:DB8::1]/x", "http://[2001:db8::1]:80")
    for elsewhere in (
        f"http://127.0.7.7:7000{template}",  # another host
        f"http://127.0.5.5:7001{template}",  # another port of the same host
        f"http://127.0.5.5{template}",  # port 80
        f"http://localhost:7000{template}",  # a name, resolved wherever its owner likes
        f"http://user@127.0.5.5:7000{template}",  # credentials
        f"ftp://127.0.5.5:7000{template}",
        f"http://127.0.5.5:{{chunk}}{template}",  # a port the template fills in
        "http://127.0.5.5:99999/x",
        "not a url",
    ):
        assert not offer_leads_to(elsewhere, reached), elsewhere
    ppspp = TransportOffer(type="PPSPP", uri="ppspp://192.0.2.1:6778/aa?chunk=1024")
    good = TransportOffer(type="http", uri=f"http://127.0.5.5:7000{template}")
    bad = TransportOffer(type=HTTP, uri=f"http://127.0.7.7:80{template}")
    assert trusted_offers([bad, ppspp, good], reached) == [ppspp, good]
    assert trusted_offers([bad], reached) == []
