"""PPSPP uploads attributed by UDP address to the PeerIDs a tracker listed there."""

from __future__ import annotations

from ppsp.peer.protocol.addressing import ppspp_addresses
from ppsp.peer.upload.attribution import AddressAttribution
from ppsp.wire.tracker import PeerAddress, PeerInfo


def listed(peer_id: str, ip: str, port: int, http_port: int = 7000) -> PeerInfo:
    """A peer as a FIND lists it: its HTTP address, then its PPSPP socket (HOST)."""
    http = PeerAddress(ip=ip, port=http_port, peer_protocol="HTTP")
    return PeerInfo(peer_id=peer_id, addresses=(http, *ppspp_addresses(ip, port, None)))


def test_a_known_address_is_attributed_at_once() -> None:
    book = AddressAttribution()
    assert book.learn([listed("alice", "10.0.0.1", 6000)]) == []
    assert book.sent(("10.0.0.1", 6000), 8192) == "alice"
    assert book.pending == book.unattributed == 0


def test_only_ppspp_addresses_name_a_channel() -> None:
    # The HTTP port of one peer is no UDP address of its: a channel from there is unknown.
    book = AddressAttribution()
    book.learn([listed("alice", "10.0.0.1", 6000, http_port=6001)])
    assert book.sent(("10.0.0.1", 6001), 100) is None
    assert book.pending == 100


def test_bytes_wait_for_a_lookup_and_are_attributed_when_it_names_them() -> None:
    book = AddressAttribution(interval=2.0, first_interval=0.5)
    assert book.lookup_delay(0.0) is None  # nothing waits
    assert book.sent(("10.0.0.2", 6000), 1000) is None
    assert book.sent(("10.0.0.2", 6000), 500) is None
    assert book.lookup_delay(0.0) == 0.0
    book.looked_up(0.0)
    assert book.learn([]) == []  # not listed yet
    assert book.lookup_delay(0.5) == 1.5  # tried once: again after the interval, a deadline
    assert book.sent(("10.0.0.4", 6000), 1) is None
    assert book.lookup_delay(0.25) == 0.25  # a new address: sooner
    book.looked_up(0.5)
    resolved = book.learn([listed("bob", "10.0.0.2", 6000)])
    assert resolved == [("bob", ("10.0.0.2", 6000), 1500)]
    assert book.pending == 1
    book.learn([listed("erin", "10.0.0.4", 6000)])
    assert book.pending == 0 and book.lookup_delay(1.0) is None
    assert book.sent(("10.0.0.2", 6000), 10) == "bob"


def test_an_address_no_lookup_names_is_given_up_after_its_tries() -> None:
    book = AddressAttribution(tries=2)
    book.sent(("10.0.0.3", 6000), 1000)  # libswift's leecher, say
    for now in (0.0, 2.0):
        book.looked_up(now)
        assert book.learn([listed("alice", "10.0.0.1", 6000)]) == []
    assert book.unattributed == 1000 and book.pending == 0
    assert book.sent(("10.0.0.3", 6000), 10) is None  # given up: no more lookups for it
    assert book.unattributed == 1010 and book.lookup_delay(4.0) is None
    # Listed later after all: attributed from then on.
    book.learn([listed("carol", "10.0.0.3", 6000)])
    assert book.sent(("10.0.0.3", 6000), 5) == "carol"


def test_ipv6_addresses_compare_in_one_form() -> None:
    book = AddressAttribution()
    book.learn([listed("dave", "2001:DB8:0:0::1", 6000)])
    assert book.sent(("2001:db8::1", 6000), 7) == "dave"


def test_bounds_and_close() -> None:
    book = AddressAttribution(max_addresses=2)
    for n in range(4):
        book.sent((f"10.0.1.{n}", 6000), 100)
    assert book.pending == 200 and book.unattributed == 200  # two wait, two beyond the bound
    assert book.close() == 200
    assert book.pending == 0 and book.unattributed == 400
    assert book.lookup_delay(0.0) is None
