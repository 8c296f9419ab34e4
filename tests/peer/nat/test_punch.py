"""Hole punching, sans-I/O: the candidate addresses a channel's handshake goes to, and the
punches a seeder behind NAT sends towards listed peers (bounded in peers, rate and per
address, whatever a tracker's list says)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import decode_datagram
from ppsp.errors import PPSPPError
from ppsp.peer.nat.punch import (
    MAX_CANDIDATES,
    PUNCH_DATAGRAM,
    CandidatePaths,
    Puncher,
    ppspp_candidates,
    usable_candidate,
)
from ppsp.wire.common import AddressFamily, AddressType, PeerAddress
from ppsp.wire.ppspp import ChannelParameters, MerkleHashFunction
from ppsp.wire.tracker import PeerInfo

T0 = 100.0
HOST, REFLEXIVE = ("10.0.0.2", 7000), ("203.0.113.9", 7000)


# --- candidates --------------------------------------------------------------------------


def test_every_candidate_is_a_target_until_one_answers() -> None:
    paths = CandidatePaths([HOST, REFLEXIVE])
    assert paths.targets == (HOST, REFLEXIVE)
    assert paths.chosen is None
    assert paths.answered(REFLEXIVE)
    assert paths.chosen == REFLEXIVE
    assert paths.targets == (REFLEXIVE,)
    # Once chosen, another candidate is no longer the channel's.
    assert not paths.answered(HOST)
    assert paths.answered(REFLEXIVE)


def test_an_answer_from_a_stranger_chooses_nothing() -> None:
    paths = CandidatePaths([HOST, REFLEXIVE])
    assert not paths.answered(("198.51.100.1", 7000))
    assert paths.chosen is None
    assert paths.targets == (HOST, REFLEXIVE)


def test_candidates_are_bounded_deduplicated_and_usable() -> None:
    listed = [("0.0.0.0", 1), HOST, HOST, ("224.0.0.1", 5), ("10.0.0.3", 0)]
    listed += [(f"192.0.2.{n}", 9000) for n in range(10)]
    paths = CandidatePaths(listed)
    assert paths.candidates == (HOST, *((f"192.0.2.{n}", 9000) for n in range(3)))
    assert len(paths.candidates) == MAX_CANDIDATES
    with pytest.raises(ValueError):
        CandidatePaths([("255.255.255.255", 9), ("not an ip", 9), ("::", 9)])


def test_usable_candidates() -> None:
    assert usable_candidate(("192.0.2.1", 1))
    assert usable_candidate(("2001:db8::1", 65535))
    for bad in (("192.0.2.1", 0), ("192.0.2.1", 65536), ("0.0.0.0", 5), ("::", 5),
                ("ff02::1", 5), ("255.255.255.255", 5), ("example.org", 5)):  # fmt: skip
        assert not usable_candidate(bad), bad


def test_the_candidates_of_a_listed_peer_are_its_ppspp_addresses() -> None:
    def address(ip: str, port: int, kind: AddressType, protocol: str) -> PeerAddress:
        return PeerAddress(
            ip=ip, port=port, type=kind, peer_protocol=protocol, family=AddressFamily.IPV4
        )

    info = PeerInfo(
        peer_id="p",
        addresses=(
            address("10.0.0.2", 8000, AddressType.HOST, "PPSP-PP/0.1"),
            address(*HOST, AddressType.HOST, "PPSPP"),
            address(*REFLEXIVE, AddressType.REFLEXIVE, "PPSPP"),
        ),
    )
    assert ppspp_candidates(info) == [HOST, REFLEXIVE]


def test_the_punch_is_a_keepalive_on_channel_0() -> None:
    # RFC 7574 8.4: a datagram of the channel ID alone.  Channel 0 opens only with a
    # HANDSHAKE, so a PPSPP engine refuses to take it as anything.
    assert bytes(4) == PUNCH_DATAGRAM
    for merkle_hash in MerkleHashFunction:
        with pytest.raises(PPSPPError):
            decode_datagram(PUNCH_DATAGRAM, ChannelParameters(merkle_hash=merkle_hash))


# --- the puncher -------------------------------------------------------------------------


def drive(puncher: Puncher, until: float) -> list[tuple[float, tuple[str, int]]]:
    """Call the puncher at each of its deadlines up to ``until``: (when, address) sent."""
    sent = []
    now = puncher.next_deadline()
    while now is not None and now <= until:
        sent += [(now, address) for address in puncher.due(now)]
        later = puncher.next_deadline()
        assert later is None or later > now
        now = later
    return sent


def test_a_new_peer_is_punched_every_second_for_twenty_seconds() -> None:
    puncher = Puncher(T0)
    assert puncher.next_deadline() is None
    assert puncher.learn("a", [HOST, REFLEXIVE], T0)
    assert puncher.next_deadline() == T0
    sent = drive(puncher, T0 + 60)
    times = Counter(address for _, address in sent)
    assert times == {HOST: 20, REFLEXIVE: 20}
    assert max(when for when, _ in sent) < T0 + 20
    assert puncher.next_deadline() is None
    assert puncher.punches == 40 and puncher.peers == 1


def test_a_peer_seen_again_is_not_punched_again() -> None:
    puncher = Puncher(T0)
    assert puncher.learn("a", [REFLEXIVE], T0)
    drive(puncher, T0 + 30)
    assert not puncher.learn("a", [REFLEXIVE], T0 + 31)
    assert puncher.next_deadline() is None


def test_an_address_shared_by_new_peers_is_punched_once_a_second() -> None:
    puncher = Puncher(T0)
    for n in range(50):
        puncher.learn(f"peer-{n}", [REFLEXIVE], T0 + n * 0.1)
        puncher.due(T0 + n * 0.1)
    assert puncher.punches == 5  # at T0, +1, +2, +3, +4
    assert puncher.targets == 1


def test_own_addresses_are_never_punched() -> None:
    puncher = Puncher(T0, own=[REFLEXIVE])
    puncher.learn("a", [HOST, REFLEXIVE], T0)
    assert puncher.due(T0) == [HOST]
    assert puncher.dropped == 1


def test_peers_punched_at_once_are_bounded() -> None:
    puncher = Puncher(T0, max_peers=2, rate=1000)
    for n in range(10):
        puncher.learn(f"p{n}", [(f"192.0.2.{n}", 1), (f"198.51.100.{n}", 1)], T0)
    # Room for two peers' worth of candidates: four peers of two addresses each.
    assert puncher.targets == 2 * MAX_CANDIDATES
    assert len(puncher.due(T0)) == 8
    assert puncher.dropped == 12


@settings(max_examples=60, deadline=None)
@given(
    lists=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["192.0.2.1", "192.0.2.2", "0.0.0.0", "2001:db8::1", "x"]),
                st.integers(min_value=-1, max_value=70000),
            ),
            max_size=8,
        ),
        max_size=40,
    ),
    steps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=60),
    rate=st.sampled_from([1.0, 5.0, 32.0]),
)
def test_whatever_the_lists_punches_stay_within_the_rate_and_interval(
    lists: list[list[tuple[str, int]]], steps: list[float], rate: float
) -> None:
    puncher = Puncher(T0, rate=rate, max_peers=4)
    now = T0
    last: dict[tuple[str, int], float] = {}
    sent: list[float] = []
    for number, step in enumerate(steps):
        now += step
        if number < len(lists):
            puncher.learn(f"peer-{number}", lists[number], now)
        deadline = puncher.next_deadline()
        assert deadline is None or deadline >= min(now, deadline)
        for address in puncher.due(now):
            assert usable_candidate(address)
            assert now - last.get(address, -1e9) >= 1.0 - 1e-9
            last[address] = now
            sent.append(now)
        assert puncher.targets <= 4 * MAX_CANDIDATES
    # At most one second's worth at once, then the rate.
    for start in sent:
        window = [t for t in sent if start <= t < start + 1.0]
        assert len(window) <= 2 * max(rate, 1.0)
