"""Peer-list selection: never the requester, bounded, preference order, chunk scopes."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker import peerlist
from ppsp.tracker.peerlist import (
    MAX_PEER_LIST,
    ListedEntries,
    holdings,
    peer_count,
    select_peers,
    to_peer_infos,
)
from ppsp.tracker.storage import SwarmMember
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.tracker import (
    AddressType,
    ContentMap,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
)


def addr(
    ip: str = "192.0.2.1",
    *,
    protocol: str | None = None,
    asn: str | None = None,
    priority: int | None = None,
) -> PeerAddress:
    return PeerAddress(ip=ip, port=7000, peer_protocol=protocol, asn=asn, priority=priority)


def member(
    pid: str,
    *addresses: PeerAddress,
    mode: PeerMode = PeerMode.LEECH,
    content_map: ContentMap | None = None,
) -> SwarmMember:
    reflexive = PeerAddress(ip="203.0.113.9", port=1, type=AddressType.REFLEXIVE)
    return SwarmMember(
        peer_id=pid, mode=mode, addresses=(*addresses, reflexive), content_map=content_map
    )


def chunk_map(indexes: list[int], start: int = 0, size: int = 100) -> ContentMap:
    bits = ChunkBitmap.from_indexes(indexes, size, start)
    return ContentMap(
        swarm_id="s",
        representations=(
            RepresentationMap(
                representation_id="tag0",
                segments=(
                    SegmentMap(
                        start_index=start,
                        end_index=start + size - 1,
                        chunkmap_size=size,
                        bitmap=bits.to_bytes(),
                    ),
                ),
            ),
        ),
    )


def test_peer_count_defaults_and_cap() -> None:
    assert peer_count(None, 20) == 20
    assert peer_count(PeerNum(), 20) == 20
    assert peer_count(PeerNum(count=5), 20) == 5
    assert peer_count(PeerNum(count=10_000), 20) == MAX_PEER_LIST == 200
    assert peer_count(PeerNum(count=0), 20) == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), count=st.integers(0, 30), seed=st.integers(0, 1000))
def test_never_requester_and_bounded(n: int, count: int, seed: int) -> None:
    candidates = [member(f"p{i}") for i in range(n)]
    chosen = select_peers(
        candidates,
        requester_id="p0",
        requester_addresses=(),
        count=count,
        rng=random.Random(seed),
    )
    ids = [m.peer_id for m in chosen]
    assert "p0" not in ids
    assert len(ids) == len(set(ids)) == min(count, max(n - 1, 0))


def test_preference_order_protocol_then_asn_and_priority_ranks_nothing() -> None:
    me = (addr(protocol="PPSP-PP/0.1", asn="64496"),)
    candidates = [
        member("plain"),
        member("high-priority", addr(priority=9)),
        member("same-asn", addr(asn="64496")),
        member("same-proto", addr(protocol="PPSP-PP/0.1")),
        member("both", addr(protocol="PPSP-PP/0.1", asn="64496")),
        member("other-proto", addr(protocol="BitTorrent", priority=99)),
    ]
    chosen = select_peers(
        candidates, requester_id="me", requester_addresses=me, count=10, rng=random.Random(1)
    )
    assert [m.peer_id for m in chosen[:3]] == ["both", "same-proto", "same-asn"]
    # A priority is the peer's own claim: it ranks nothing (random among equals).
    assert {m.peer_id for m in chosen[3:]} == {"other-proto", "high-priority", "plain"}
    firsts = {
        select_peers(
            candidates[:2], requester_id="me", requester_addresses=me, count=1,
            rng=random.Random(seed),
        )[0].peer_id
        for seed in range(20)
    }  # fmt: skip
    assert firsts == {"high-priority", "plain"}


def test_random_among_equals_spreads_load() -> None:
    candidates = [member(f"p{i}") for i in range(10)]
    rng = random.Random(7)
    seen: Counter[str] = Counter()
    for _ in range(200):
        for m in select_peers(
            candidates, requester_id="x", requester_addresses=(), count=2, rng=rng
        ):
            seen[m.peer_id] += 1
    assert len(seen) == 10
    assert min(seen.values()) > 10


def test_holdings_counts_scope_chunks() -> None:
    cmap = chunk_map([0, 1, 2, 50, 99])
    assert holdings(cmap, [RepresentationScope(representation_id="tag0", start_index=0)]) == 5
    scope = [RepresentationScope(representation_id="tag0", start_index=1, end_index=50)]
    assert holdings(cmap, scope) == 3
    assert holdings(cmap, [RepresentationScope(representation_id="tag9", start_index=0)]) == 0
    assert holdings(None, scope) == 0
    offset = chunk_map([110, 111, 149], start=100, size=60)
    scope = [RepresentationScope(representation_id="tag0", start_index=110, end_index=150)]
    assert holdings(offset, scope) == 3
    beyond = [RepresentationScope(representation_id="tag0", start_index=500, end_index=600)]
    assert holdings(offset, beyond) == 0


@settings(max_examples=60, deadline=None)
@given(
    held=st.sets(st.integers(0, 99)),
    first=st.integers(0, 120),
    length=st.integers(0, 60),
)
def test_holdings_matches_bitmap(held: set[int], first: int, length: int) -> None:
    scope = [
        RepresentationScope(representation_id="tag0", start_index=first, end_index=first + length)
    ]
    expected = sum(1 for i in held if first <= i <= first + length)
    assert holdings(chunk_map(sorted(held)), scope) == expected


def test_chunk_scope_filters_and_ranks() -> None:
    scope = (RepresentationScope(representation_id="tag0", start_index=10, end_index=19),)
    candidates = [
        member("none", content_map=chunk_map([0, 1, 2])),
        member("no-map"),
        member("few", content_map=chunk_map([10])),
        member("many", content_map=chunk_map([10, 11, 12, 13])),
        member("seed", mode=PeerMode.SEED),
    ]
    chosen = select_peers(
        candidates,
        requester_id="me",
        requester_addresses=(),
        count=10,
        rng=random.Random(0),
        scope=scope,
        require_scope=True,
    )
    assert [m.peer_id for m in chosen] == ["seed", "many", "few"]
    ranked_only = select_peers(
        candidates,
        requester_id="me",
        requester_addresses=(),
        count=10,
        rng=random.Random(0),
        scope=scope,
    )
    assert [m.peer_id for m in ranked_only[:3]] == ["seed", "many", "few"]
    assert len(ranked_only) == 5


def test_to_peer_infos_tags_swarm() -> None:
    (info,) = to_peer_infos([member("a", addr())], "s1")
    assert info.swarm_id == "s1"
    assert info.peer_id == "a"
    assert info.addresses[-1].type is AddressType.REFLEXIVE


def test_listed_entries_are_kept_for_the_members_listed_last_only() -> None:
    """The entries (and the encoded forms the codecs keep in them) of a bounded number of
    members: listing many more members keeps at most twice the bound (issue 16: no encoded
    form kept per registered peer), and a member listed again within the bound keeps its entry."""
    table = ListedEntries(limit=4)
    members = [member(f"p{i}", addr()) for i in range(40)]
    infos = {}
    for one in members:
        info = PeerInfo(peer_id=one.peer_id, addresses=one.addresses, swarm_id="s")
        table.put(one, info)
        infos[one.peer_id] = info
        assert len(table) <= 8
    assert table.get(members[-1], "s") is infos["p39"]
    assert table.get(members[-1], "t") is None  # kept for another swarm: not this one's
    assert table.get(members[0], "s") is None  # listed long ago: written again when listed
    # A member found in the old generation moves to the young one.
    table.put(members[0], infos["p0"])
    for one in members[1:4]:
        table.put(one, infos[one.peer_id])
    assert table.get(members[0], "s") is infos["p0"]
    for one in members[4:7]:
        table.put(one, infos[one.peer_id])
    assert table.get(members[0], "s") is infos["p0"]


def test_to_peer_infos_keeps_a_bounded_table(monkeypatch: pytest.MonkeyPatch) -> None:
    table = ListedEntries(limit=16)
    monkeypatch.setattr(peerlist, "LISTED", table)
    many = [member(f"p{i}", addr()) for i in range(100)]
    for start in range(0, 100, 20):
        to_peer_infos(many[start : start + 20], "s")
    assert len(table) <= 32
    again = to_peer_infos(many[-5:], "s")
    assert to_peer_infos(many[-5:], "s") == again
    assert all(a is b for a, b in zip(to_peer_infos(many[-5:], "s"), again, strict=True))
