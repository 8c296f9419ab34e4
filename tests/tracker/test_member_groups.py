"""Peer lists ranked by group: the same lists as member-by-member ranking, groups kept right.

:func:`select_from_groups` ranks groups of members sharing a rank profile (peer protocols, ASNs,
best priority) instead of each member; the memory storage keeps those groups as members join,
leave, change addresses and expire.  These tests tie both to the member-by-member reference
(:func:`select_peers`, :func:`group_members` over :meth:`Storage.members`), check that the
choice and the order among equals are uniform, with or without the requester among them, and
that a peer list reads about ``count`` members of the groups, not all of them (the memory
storage hands out its own lists, kept as indexable sets).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import overload

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker.peerlist import select_from_groups, select_peers
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import MemoryStorage, PeerRecord, Storage, SwarmMember, memory
from ppsp.tracker.storage.base import group_members, member_prefix, rank_profile
from ppsp.wire.tracker import AddressType, PeerAddress, PeerMode, ProtocolVersion

PROTOCOLS = st.none() | st.sampled_from(["PPSP-PP/0.1", "BT", "X"])
ASNS = st.none() | st.sampled_from(["64496", "64497"])
PRIORITIES = st.none() | st.integers(0, 3)


@st.composite
def addresses(draw: st.DrawFn) -> tuple[PeerAddress, ...]:
    advertised = draw(
        st.lists(
            st.builds(
                PeerAddress,
                ip=st.just("192.0.2.1"),
                port=st.integers(1, 3),
                peer_protocol=PROTOCOLS,
                asn=ASNS,
                priority=PRIORITIES,
            ),
            max_size=3,
        )
    )
    port = draw(st.integers(1, 3))
    return (*advertised, PeerAddress(ip="203.0.113.9", port=port, type=AddressType.REFLEXIVE))


def _key(member: SwarmMember, requester: tuple[PeerAddress, ...]) -> tuple[int, int]:
    """The rank of a member for a requester, as select_peers computes it (without scope; an
    address's priority ranks nothing)."""
    protocols = {a.peer_protocol for a in requester if a.peer_protocol is not None}
    asns = {a.asn for a in requester if a.asn is not None}
    profile = rank_profile(member.addresses)
    return (
        0 if protocols.intersection(profile[0]) else 1,
        0 if asns.intersection(profile[1]) else 1,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(addresses(), max_size=30),
    addresses(),
    st.none() | st.integers(0, 30),
    st.integers(0, 35),
    st.integers(0, 2**32),
)
def test_grouped_ranking_lists_what_member_ranking_lists(
    member_addresses: list[tuple[PeerAddress, ...]],
    requester: tuple[PeerAddress, ...],
    requester_at: int | None,
    count: int,
    seed: int,
) -> None:
    members = [
        SwarmMember(peer_id=f"p{i}", mode=PeerMode.LEECH, addresses=a)
        for i, a in enumerate(member_addresses)
    ]
    me = SwarmMember(peer_id="me", mode=PeerMode.LEECH, addresses=requester)
    # The requester is in the groups (as a storage lists it) or not (not a member yet).
    listed = list(members)
    if requester_at is not None:
        listed.insert(min(requester_at, len(listed)), me)
    reference = select_peers(
        [*members, me],
        requester_id="me",
        requester_addresses=requester,
        count=count,
        rng=random.Random(seed),
    )
    grouped = select_from_groups(
        group_members(listed),
        exclude="me",
        requester_addresses=requester,
        count=count,
        rng=random.Random(seed),
    )
    ids = [m.peer_id for m in grouped]
    assert len(ids) == len(set(ids)) == len(reference) == min(count, len(members))
    assert "me" not in ids
    # The same ranks in the same order; which members among equals is random.
    assert [_key(m, requester) for m in grouped] == [_key(m, requester) for m in reference]


def test_equal_groups_are_pooled_and_picked_uniformly() -> None:
    # Two groups that rank alike for this requester (neither protocol is its own), and a better
    # one: the better comes first, then a uniform choice over both equal groups.
    requester = (PeerAddress(ip="192.0.2.9", port=1, peer_protocol="Z"),)
    best = [SwarmMember(peer_id="best", mode=PeerMode.SEED, addresses=requester)]
    a = [
        SwarmMember(
            peer_id=f"a{i}",
            mode=PeerMode.LEECH,
            addresses=(PeerAddress(ip="192.0.2.1", port=1, peer_protocol="A"),),
        )
        for i in range(6)
    ]
    b = [
        SwarmMember(
            peer_id=f"b{i}",
            mode=PeerMode.LEECH,
            addresses=(PeerAddress(ip="192.0.2.1", port=1, peer_protocol="B"),),
        )
        for i in range(6)
    ]
    groups = group_members([*a, *best, *b])
    rng = random.Random(3)
    seen: Counter[str] = Counter()
    firsts: Counter[str] = Counter()
    for _ in range(3000):
        chosen = select_from_groups(
            groups, exclude=None, requester_addresses=requester, count=4, rng=rng
        )
        assert chosen[0].peer_id == "best"
        firsts[chosen[1].peer_id[0]] += 1
        seen.update(m.peer_id for m in chosen[1:])
    # 3 of 12 equals per list: each about 750 times; each group second about half the time.
    assert all(600 < seen[m.peer_id] < 900 for m in [*a, *b])
    assert 1300 < firsts["a"] < 1700


def test_large_pools_are_sampled_uniformly() -> None:
    members = [SwarmMember(peer_id=f"p{i}", mode=PeerMode.LEECH, addresses=()) for i in range(200)]
    rng = random.Random(5)
    seen: Counter[str] = Counter()
    for _ in range(2000):
        chosen = select_from_groups(
            group_members(members), exclude="p7", requester_addresses=(), count=5, rng=rng
        )
        assert len({m.peer_id for m in chosen}) == 5
        seen.update(m.peer_id for m in chosen)
    # 5 of 199 per list: each about 50 times; never the requester.
    assert len(seen) == 199 and "p7" not in seen and max(seen.values()) < 100


def _leeches(prefix: str, n: int, protocol: str) -> list[SwarmMember]:
    address = (PeerAddress(ip="192.0.2.1", port=1, peer_protocol=protocol),)
    return [
        SwarmMember(peer_id=f"{prefix}{i}", mode=PeerMode.LEECH, addresses=address)
        for i in range(n)
    ]


def _chi2(counts: Sequence[int]) -> float:
    """Pearson's statistic of ``counts`` against a uniform expectation."""
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


def test_choice_and_order_among_equals_are_uniform_with_the_requester_among_them() -> None:
    # Requester "a0" in the first of two equal groups (3 + 4 members, 6 others): lists of 3
    # from the pool (sampled) and of 6 (the whole pool but the requester, shuffled).  Every
    # other member is at every place of the list equally often.
    requester = (PeerAddress(ip="192.0.2.9", port=1, peer_protocol="Z"),)
    a, b = _leeches("a", 3, "A"), _leeches("b", 4, "B")
    others = [m.peer_id for m in [*a, *b] if m.peer_id != "a0"]
    groups = group_members([*a, *b])
    for count, rounds in ((3, 6000), (6, 6000), (10, 6000)):
        rng = random.Random(count)
        at: Counter[tuple[str, int]] = Counter()
        for _ in range(rounds):
            chosen = select_from_groups(
                groups, exclude="a0", requester_addresses=requester, count=count, rng=rng
            )
            assert len(chosen) == min(count, 6)
            for place, member in enumerate(chosen):
                at[member.peer_id, place] += 1
        assert not any(peer == "a0" for peer, _ in at)
        for place in range(min(count, 6)):
            # 6 members: chi-squared with 5 degrees of freedom; 25 is beyond its 0.9999 quantile.
            assert _chi2([at[peer, place] for peer in others]) < 25, (count, place)


def test_a_whole_group_without_share_is_listed_in_a_uniform_order() -> None:
    # One group holding the requester and not many more members than the list takes (the
    # ordinary swarm of 20 with the limits off): whether all are listed or a part, every other
    # member at every place equally often.
    requester = (PeerAddress(ip="192.0.2.9", port=1, peer_protocol="A"),)
    members = _leeches("a", 7, "A")
    others = [m.peer_id for m in members if m.peer_id != "a0"]
    groups = group_members(members)
    for count in (4, 6, 10):
        rng = random.Random(count)
        at: Counter[tuple[str, int]] = Counter()
        for _ in range(6000):
            chosen = select_from_groups(
                groups,
                exclude="a0",
                requester_addresses=requester,
                count=count,
                rng=rng,
                share=None,
            )
            ids = [m.peer_id for m in chosen]
            assert len(set(ids)) == len(ids) == min(count, 6) and "a0" not in ids
            for place, member in enumerate(chosen):
                at[member.peer_id, place] += 1
        for place in range(min(count, 6)):
            assert _chi2([at[peer, place] for peer in others]) < 25, (count, place)


class _Counted(Sequence[SwarmMember]):
    """A group that counts the members read from it and refuses to be copied whole."""

    def __init__(self, members: list[SwarmMember]) -> None:
        self.members = members
        self.reads = 0

    def __len__(self) -> int:
        return len(self.members)

    @overload
    def __getitem__(self, index: int) -> SwarmMember: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[SwarmMember]: ...

    def __getitem__(self, index: int | slice) -> SwarmMember | Sequence[SwarmMember]:
        if not isinstance(index, int):
            raise AssertionError("a group was sliced")
        self.reads += 1
        return self.members[index]

    def __iter__(self) -> Iterator[SwarmMember]:
        raise AssertionError("a group was iterated")


def test_a_peer_list_reads_about_count_members_not_the_swarm() -> None:
    # 5 better members, then a pool of two large equal groups holding the requester (same AS
    # as the requester; their priority ranks nothing), then worse ones (another AS).
    requester = (PeerAddress(ip="192.0.2.9", port=1, peer_protocol="Z", asn="1"),)
    best = _Counted(_leeches("z", 5, "Z"))
    a = _Counted(_leeches("a", 20_000, "A"))
    b = _Counted(_leeches("b", 30_000, "B"))
    worse = _Counted(_leeches("w", 10_000, "W"))
    groups = [
        ((("A",), ("1",), 0), a),
        ((("Z",), (), None), best),
        ((("B",), ("1",), None), b),
        ((("W",), ("2",), 7), worse),
    ]
    rng = random.Random(1)
    for _ in range(50):
        chosen = select_from_groups(
            groups, exclude="a17", requester_addresses=requester, count=20, rng=rng
        )
        assert [m.peer_id[0] for m in chosen[:5]] == ["z"] * 5
        assert all(m.peer_id[0] in "ab" and m.peer_id != "a17" for m in chosen[5:])
        assert len(chosen) == 20
    # Per list: the 5 best (and one spare draw at most), then 15 of the pool and one spare.
    assert best.reads == 50 * 5
    assert a.reads + b.reads <= 50 * 16
    assert worse.reads == 0


# -- the memory storage keeps its groups right --------------------------------------------------


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _groups(storage: Storage, swarm: str) -> dict[object, set[str]]:
    out: dict[object, set[str]] = {}
    for profile, members in await storage.member_groups(swarm):
        assert members, "no group is empty"
        assert profile not in out, "one group per profile"
        ids = {m.peer_id for m in members}
        assert len(ids) == len(members), "no member twice"
        out[profile] = ids
    return out


async def _reference(storage: Storage, swarm: str) -> dict[object, set[str]]:
    # The interface's default: group the listed members.
    out: dict[object, set[str]] = {}
    for profile, members in await Storage.member_groups(storage, swarm):
        out[profile] = {m.peer_id for m in members}
    return out


def _check_indexable_sets(storage: MemoryStorage) -> None:
    """Each member is where its position slot says, in the group of its peer's profile."""
    for shard in storage._shards:
        for swarm_id, swarm in shard.items():
            placed = 0
            for profile, group in swarm.group_items():
                for position, member in enumerate(group):
                    assert member._position == position
                    assert storage._peers[member.peer_id].member_in(swarm_id) is member
                    assert storage._peers[member.peer_id].profile == profile
                placed += len(group)
            assert placed == swarm.count


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["put", "join", "leave", "delete", "expire"]),
        st.integers(0, 5),  # peer
        st.integers(0, 2),  # swarm
        addresses(),
        st.sampled_from(PeerMode),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPERATIONS, st.integers(0, 2**32))
def test_memory_groups_follow_joins_leaves_address_changes_and_expiry(
    operations: list[tuple[str, int, int, tuple[PeerAddress, ...], PeerMode]], seed: int
) -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        for step, (op, peer, swarm, addrs, mode) in enumerate(operations):
            peer_id, swarm_id = f"p{peer}", f"s{swarm}"
            if op == "put":
                record = PeerRecord(
                    peer_id=peer_id,
                    version=ProtocolVersion.V1_1,
                    state=PeerState.TRACKING,
                    addresses=addrs,
                    deadline=float(step + peer),
                )
                await storage.put_peer(record)
            elif op == "join":
                await storage.join(swarm_id, peer_id, mode)
            elif op == "leave":
                await storage.leave(swarm_id, peer_id)
            elif op == "delete":
                await storage.delete_peer(peer_id)
            else:
                await storage.expire(float(step) / 2)
            _check_indexable_sets(storage)
            for s in range(3):
                got = await _groups(storage, f"s{s}")
                assert got == await _reference(storage, f"s{s}")
                for members in await storage.member_groups(f"s{s}"):
                    for m in members[1]:
                        assert rank_profile(m.addresses) == members[0]
                # A peer list from the storage's own groups ranks as member-by-member ranking.
                listed = await storage.members(f"s{s}")
                grouped = select_from_groups(
                    await storage.member_groups(f"s{s}"),
                    exclude=peer_id,
                    requester_addresses=addrs,
                    count=3,
                    rng=random.Random(seed),
                )
                reference = select_peers(
                    listed,
                    requester_id=peer_id,
                    requester_addresses=addrs,
                    count=3,
                    rng=random.Random(seed),
                )
                assert peer_id not in {m.peer_id for m in grouped}
                assert [_key(m, addrs) for m in grouped] == [_key(m, addrs) for m in reference]

    _run(scenario())


def test_member_groups_are_the_storages_own_lists() -> None:
    # Nothing is copied per peer list: the memory storage hands out the lists it keeps, and a
    # member replaced in its group (new mode, new addresses of the same profile) keeps its place.
    async def scenario() -> None:
        storage = MemoryStorage()
        for i in range(1000):
            record = PeerRecord(
                peer_id=f"p{i}",
                version=ProtocolVersion.V1_1,
                state=PeerState.TRACKING,
                addresses=(PeerAddress(ip="192.0.2.1", port=1 + i % 2, peer_protocol="A"),),
                deadline=10.0,
            )
            await storage.put_peer(record)
            await storage.join("s", f"p{i}", PeerMode.LEECH)
        ((profile, members),) = await storage.member_groups("s")
        swarm = storage._shard("s")["s"]
        assert members is swarm.group_of(profile)
        assert (await storage.member_groups("s"))[0][1] is members
        ids = [m.peer_id for m in members]
        where, other = ids.index("p500"), ids.index("p501")
        await storage.join("s", "p500", PeerMode.SEED)
        moved = PeerAddress(ip="192.0.2.2", port=9, peer_protocol="A")
        known = await storage.get_peer("p501")
        assert known is not None
        await storage.put_peer(replace(known, addresses=(moved,)))
        assert members[where].peer_id == "p500" and members[where].mode is PeerMode.SEED
        assert members[other].peer_id == "p501" and members[other].addresses == (moved,)
        # A removal moves the last member into the hole: the list keeps its length minus one.
        last = members[-1]
        await storage.leave("s", "p500")
        assert len(members) == 999 and members[where] is last
        _check_indexable_sets(storage)

    _run(scenario())


def test_rank_profiles_are_canonical_shared_and_bounded() -> None:
    one = PeerAddress(ip="192.0.2.1", port=1, peer_protocol="B", asn="2", priority=1)
    two = PeerAddress(ip="192.0.2.2", port=2, peer_protocol="A", asn="2", priority=5)
    assert rank_profile((one, two)) == rank_profile((two, one, one)) == (("A", "B"), ("2",), 5)
    assert rank_profile(()) == ((), (), None)

    async def scenario() -> None:
        storage = MemoryStorage()
        for i in range(2):
            await storage.put_peer(
                PeerRecord(
                    peer_id=f"p{i}",
                    version=ProtocolVersion.V1_1,
                    state=PeerState.TRACKING,
                    addresses=(one, two),
                    deadline=10.0,
                )
            )
        assert storage._peers["p0"].profile is storage._peers["p1"].profile
        for i in range(memory._SHARED_PROFILES + 10):
            await storage.put_peer(
                PeerRecord(
                    peer_id=f"q{i}",
                    version=ProtocolVersion.V1_1,
                    state=PeerState.TRACKING,
                    addresses=(PeerAddress(ip="192.0.2.1", port=1, asn=str(i)),),
                    deadline=10.0,
                )
            )
        assert len(storage._profiles) == memory._SHARED_PROFILES

    _run(scenario())


# -- the memory storage counts the prefixes of large groups ------------------------------------


def _check_prefix_counts(storage: MemoryStorage) -> None:
    """Each member keeps its prefix; a group's counts, when kept, are exact."""
    for shard in storage._shards:
        for swarm in shard.values():
            for _, group in swarm.group_items():
                prefixes = Counter(m._prefix for m in group)
                assert all(m._prefix == member_prefix(m) for m in group)
                if group.prefix_counts is not None:
                    assert group.prefix_counts == prefixes
                    assert len(group) >= memory._COUNT_UNTIL
                elif len(group) >= memory._COUNT_FROM:
                    assert group.spread  # spread over many prefixes when last counted


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["move", "join", "leave", "delete", "put"]),
            st.integers(0, 119),  # peer
            st.integers(0, 24),  # the /24 it moves to (more than a group counts)
            st.sampled_from(["A", "B"]),  # its protocol: its rank group
        ),
        max_size=150,
    )
)
def test_memory_groups_count_the_prefixes_of_their_members(
    operations: list[tuple[str, int, int, str]],
) -> None:
    def record(peer: int, net: int, protocol: str) -> PeerRecord:
        ip = f"10.0.{net}.{peer + 1}"
        return PeerRecord(
            peer_id=f"p{peer}",
            version=ProtocolVersion.V1_1,
            state=PeerState.TRACKING,
            addresses=(
                PeerAddress(ip=ip, port=7000, peer_protocol=protocol),
                PeerAddress(ip=ip, port=4000, type=AddressType.REFLEXIVE),
            ),
            deadline=10.0,
        )

    async def scenario() -> None:
        storage = MemoryStorage()
        # 100 members on 3 prefixes: one group, counted.
        for peer in range(100):
            await storage.put_peer(record(peer, peer % 3, "A"))
            await storage.join("s", f"p{peer}", PeerMode.LEECH)
        ((_, group),) = await storage.member_groups("s")
        assert getattr(group, "prefix_counts", None) == {"10.0.0": 34, "10.0.1": 33, "10.0.2": 33}
        for op, peer, net, protocol in operations:
            if op in ("move", "put"):
                await storage.put_peer(record(peer, net if op == "move" else peer % 3, protocol))
            elif op == "join":
                await storage.join("s", f"p{peer}", PeerMode.SEED)
            elif op == "leave":
                await storage.leave("s", f"p{peer}")
            else:
                await storage.delete_peer(f"p{peer}")
            _check_prefix_counts(storage)
            _check_indexable_sets(storage)

    _run(scenario())
