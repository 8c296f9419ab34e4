"""Peer lists ranked by group: the same lists as member-by-member ranking, groups kept right.

:func:`select_from_groups` ranks groups of members sharing a rank profile (peer protocols, ASNs,
best priority) instead of each member; the memory storage keeps those groups as members join,
leave, change addresses and expire.  These tests tie both to the member-by-member reference
(:func:`select_peers`, :func:`group_members` over :meth:`Storage.members`).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker.messages import AddressType, PeerAddress, PeerMode, ProtocolVersion
from ppsp.tracker.peerlist import select_from_groups, select_peers
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import MemoryStorage, PeerRecord, Storage, SwarmMember, memory
from ppsp.tracker.storage.base import group_members, rank_profile

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


def _key(member: SwarmMember, requester: tuple[PeerAddress, ...]) -> tuple[int, int, int]:
    """The rank of a member for a requester, as select_peers computes it (without scope)."""
    protocols = {a.peer_protocol for a in requester if a.peer_protocol is not None}
    asns = {a.asn for a in requester if a.asn is not None}
    profile = rank_profile(member.addresses)
    return (
        0 if protocols.intersection(profile[0]) else 1,
        0 if asns.intersection(profile[1]) else 1,
        1 if profile[2] is None else -profile[2],
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(addresses(), max_size=30),
    addresses(),
    st.integers(0, 35),
    st.integers(0, 2**32),
)
def test_grouped_ranking_lists_what_member_ranking_lists(
    member_addresses: list[tuple[PeerAddress, ...]],
    requester: tuple[PeerAddress, ...],
    count: int,
    seed: int,
) -> None:
    members = [
        SwarmMember(peer_id=f"p{i}", mode=PeerMode.LEECH, addresses=a)
        for i, a in enumerate(member_addresses)
    ]
    me = SwarmMember(peer_id="me", mode=PeerMode.LEECH, addresses=requester)
    reference = select_peers(
        [*members, me],
        requester_id="me",
        requester_addresses=requester,
        count=count,
        rng=random.Random(seed),
    )
    grouped = select_from_groups(
        group_members(members),
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
        chosen = select_from_groups(groups, requester_addresses=requester, count=4, rng=rng)
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
            group_members(members), requester_addresses=(), count=5, rng=rng
        )
        assert len({m.peer_id for m in chosen}) == 5
        seen.update(m.peer_id for m in chosen)
    # 5 of 200 per list: each about 50 times.
    assert len(seen) == 200 and max(seen.values()) < 100


# -- the memory storage keeps its groups right --------------------------------------------------


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _groups(storage: Storage, swarm: str, exclude: str | None) -> dict[object, set[str]]:
    out: dict[object, set[str]] = {}
    for profile, members in await storage.member_groups(swarm, exclude=exclude):
        assert members, "no group is empty"
        assert profile not in out, "one group per profile"
        out[profile] = {m.peer_id for m in members}
    return out


async def _reference(storage: Storage, swarm: str, exclude: str | None) -> dict[object, set[str]]:
    # The interface's default: group the listed members.
    out: dict[object, set[str]] = {}
    for profile, members in await Storage.member_groups(storage, swarm, exclude=exclude):
        out[profile] = {m.peer_id for m in members}
    return out


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
@given(OPERATIONS)
def test_memory_groups_follow_joins_leaves_address_changes_and_expiry(
    operations: list[tuple[str, int, int, tuple[PeerAddress, ...], PeerMode]],
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
            for s in range(3):
                for exclude in (None, peer_id, "nobody"):
                    got = await _groups(storage, f"s{s}", exclude)
                    assert got == await _reference(storage, f"s{s}", exclude)
                    for members in await storage.member_groups(f"s{s}", exclude=exclude):
                        for m in members[1]:
                            assert rank_profile(m.addresses) == members[0]

    _run(scenario())


def test_group_lists_are_the_callers_to_change() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        for i in range(3):
            record = PeerRecord(
                peer_id=f"p{i}",
                version=ProtocolVersion.V1_1,
                state=PeerState.TRACKING,
                addresses=(),
                deadline=10.0,
            )
            await storage.put_peer(record)
            await storage.join("s", f"p{i}", PeerMode.LEECH)
        groups = await storage.member_groups("s")
        groups[0][1].clear()  # type: ignore[attr-defined]
        assert len((await storage.member_groups("s"))[0][1]) == 3
        assert len((await storage.member_groups("s", exclude="p1"))[0][1]) == 2

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
