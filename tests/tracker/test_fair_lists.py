"""Fair peer lists: what a peer claims orders peers only within a share per network prefix.

The eclipse of issue 12 (fake seeders of one host, claiming SEED, a high priority and every
chunk, filling every list) through the tracker on both backends; properties of both selection
paths (grouped and chunk-scoped) for whatever a single prefix holds; the ranked order kept
where no share binds, and for a swarm that sits on one address.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.peerlist import select_from_groups, select_peers
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import MemoryStorage, PeerRecord, Storage, SwarmMember
from ppsp.tracker.storage.base import group_members, member_prefix, rank_profile
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    ContentMap,
    FindRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
SEED, LEECH = PeerMode.SEED, PeerMode.LEECH
PROTOCOL = "PPSP-PP/0.1"
FAKE_HOST = "203.0.113.66"
CHUNKS = 64
SCOPE = (RepresentationScope(representation_id="r", start_index=0, end_index=CHUNKS - 1),)


def full_map(swarm_id: str) -> ContentMap:
    bits = ChunkBitmap.from_indexes(list(range(CHUNKS)), CHUNKS)
    segment = SegmentMap(
        start_index=0, end_index=CHUNKS - 1, chunkmap_size=CHUNKS, bitmap=bits.to_bytes()
    )
    return ContentMap(
        swarm_id=swarm_id,
        representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
    )


async def register(
    tracker: Tracker, peer: str, observed: tuple[str, int], mode: PeerMode, priority: int | None
) -> None:
    address = PeerAddress(ip=observed[0], port=7000, peer_protocol=PROTOCOL, priority=priority)
    await tracker.handle(
        ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id=peer,
            peer_addresses=(address,),
            swarm_actions=(SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=mode),),
        ),
        observed=observed,
        now=0.0,
    )


async def test_fake_seeders_of_one_host_never_eclipse_the_real_ones(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(12))
    # 30 fake seeders from one host: SEED, the highest priority, every chunk.
    for i in range(30):
        await register(tracker, f"fake{i}", (FAKE_HOST, 1000 + i), SEED, 2**31)
        await tracker.handle(
            StatReportRequest(
                version=V11, transaction_id="2", peer_id=f"fake{i}", content_maps=(full_map("s"),)
            ),
            observed=(FAKE_HOST, 1000 + i),
            now=0.0,
        )
    # Two real seeders on two other hosts, claiming nothing.
    real = {"real0", "real1"}
    await register(tracker, "real0", ("198.51.100.1", 1), SEED, None)
    await register(tracker, "real1", ("192.0.2.1", 1), SEED, None)
    leechers = [f"leecher{i}" for i in range(8)]
    for i, peer in enumerate(leechers):
        observed = (f"10.0.{i}.1", 5000)
        address = PeerAddress(ip=observed[0], port=7000, peer_protocol=PROTOCOL)
        answer = await tracker.handle(
            ConnectRequest(
                version=V11,
                transaction_id="1",
                peer_id=peer,
                peer_addresses=(address,),
                swarm_actions=(
                    SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=LEECH),
                ),
            ),
            observed=observed,
            now=1.0,
        )
        assert real <= {p.peer_id for p in answer.peers}
    for round_ in range(10):
        for i, peer in enumerate(leechers):
            for scope in ((), SCOPE):
                answer = await tracker.handle(
                    FindRequest(
                        version=V11,
                        transaction_id="3",
                        peer_id=peer,
                        swarm_id="s",
                        content_group=scope,
                    ),
                    observed=(f"10.0.{i}.1", 5000),
                    now=2.0 + round_,
                )
                listed = [p.peer_id or "" for p in answer.peers]
                assert len(listed) == 20
                assert real <= set(listed), (scope, listed)
                # The fake host has its share (2) of the first places; its other peers come
                # after every other peer listed.
                fakes = [at for at, p in enumerate(listed) if p.startswith("fake")]
                others = [at for at, p in enumerate(listed) if not p.startswith("fake")]
                assert len(fakes) > 2 and fakes[2] > others[-1]


# -- properties of the selection ------------------------------------------------------------------

ATTACKER_PREFIX = "203.0.113"
HONEST_HOSTS = ["198.51.100.1", "198.51.100.2", "192.0.2.1", "10.1.1.1", "2001:db8:1::1"]


def reflexive(ip: str) -> PeerAddress:
    return PeerAddress(ip=ip, port=4000, type=AddressType.REFLEXIVE)


@st.composite
def claims(draw: st.DrawFn) -> tuple[PeerAddress, ...]:
    """Whatever a peer may say of itself."""
    return tuple(
        draw(
            st.lists(
                st.builds(
                    PeerAddress,
                    ip=st.just("192.0.2.1"),
                    port=st.just(7000),
                    peer_protocol=st.none() | st.sampled_from([PROTOCOL, "X"]),
                    asn=st.none() | st.sampled_from(["64496", "64497"]),
                    priority=st.none() | st.integers(0, 2**32),
                ),
                max_size=2,
            )
        )
    )


@st.composite
def swarms(draw: st.DrawFn) -> tuple[list[SwarmMember], list[SwarmMember]]:
    """(attacker's members, all on one host; other members, on a few other prefixes)."""
    attackers = [
        SwarmMember(
            peer_id=f"a{i}",
            mode=draw(st.sampled_from(PeerMode)),
            addresses=(*draw(claims()), reflexive(f"{ATTACKER_PREFIX}.{draw(st.integers(1, 3))}")),
            content_map=draw(st.none() | st.just(full_map("s"))),
        )
        for i in range(draw(st.integers(0, 60)))
    ]
    others = [
        SwarmMember(
            peer_id=f"o{i}",
            mode=draw(st.sampled_from(PeerMode)),
            addresses=(*draw(claims()), reflexive(draw(st.sampled_from(HONEST_HOSTS)))),
            content_map=draw(st.none() | st.just(full_map("s"))),
        )
        for i in range(draw(st.integers(0, 25)))
    ]
    return attackers, others


def check_shares(
    chosen: Sequence[SwarmMember], eligible: Sequence[SwarmMember], count: int, share: int
) -> None:
    """What the share policy promises, whoever claims what."""
    ids = [m.peer_id for m in chosen]
    assert len(ids) == len(set(ids)) == min(count, len(eligible))
    listed = Counter(member_prefix(m) for m in chosen)
    held = Counter(member_prefix(m) for m in eligible)
    first_round = {prefix: min(n, share) for prefix, n in held.items()}
    # A prefix takes more than its share only once every prefix has its own.
    if any(n > share for n in listed.values()):
        assert all(listed[p] >= n for p, n in first_round.items()), (listed, held)
    # Whatever the attacker's prefix holds, the others keep their share of the list.
    attacker = prefix_of_host(f"{ATTACKER_PREFIX}.1")
    others = sum(n for p, n in listed.items() if p != attacker)
    others_share = sum(n for p, n in first_round.items() if p != attacker)
    assert others >= min(count - first_round.get(attacker, 0), others_share)


@settings(max_examples=40, deadline=None)
@given(swarms(), st.integers(1, 30), st.integers(1, 3), st.integers(0, 2**32), claims())
def test_grouped_lists_keep_every_prefix_its_share(
    members: tuple[list[SwarmMember], list[SwarmMember]],
    count: int,
    share: int,
    seed: int,
    requester: tuple[PeerAddress, ...],
) -> None:
    attackers, others = members
    everyone = [*attackers, *others]
    chosen = select_from_groups(
        group_members(everyone),
        exclude="o0",
        requester_addresses=requester,
        count=count,
        rng=random.Random(seed),
        share=share,
    )
    assert all(m.peer_id != "o0" for m in chosen)
    check_shares(chosen, [m for m in everyone if m.peer_id != "o0"], count, share)


@settings(max_examples=40, deadline=None)
@given(swarms(), st.integers(1, 30), st.integers(1, 3), st.integers(0, 2**32), st.booleans())
def test_chunk_scoped_lists_keep_every_prefix_its_share(
    members: tuple[list[SwarmMember], list[SwarmMember]],
    count: int,
    share: int,
    seed: int,
    require_scope: bool,
) -> None:
    attackers, others = members
    everyone = [*attackers, *others]
    chosen = select_peers(
        everyone,
        requester_id="o0",
        requester_addresses=(),
        count=count,
        rng=random.Random(seed),
        scope=SCOPE,
        require_scope=require_scope,
        share=share,
    )
    eligible = [
        m
        for m in everyone
        if m.peer_id != "o0" and (not require_scope or m.mode is SEED or m.content_map)
    ]
    check_shares(chosen, eligible, count, share)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**16), st.data())
def test_whatever_one_host_registers_the_others_keep_their_share(
    flood: int, seed: int, data: st.DataObject
) -> None:
    """The same property through the tracker: one host registers any number of peers with any
    claims; every list another peer gets still holds the other hosts' share."""

    async def scenario() -> None:
        tracker = Tracker(MemoryStorage(seed=seed), TrackerConfig(), rng=random.Random(seed))
        for i in range(flood):
            await register(
                tracker,
                f"a{i}",
                (FAKE_HOST, 1000 + i),
                data.draw(st.sampled_from(PeerMode)),
                data.draw(st.none() | st.integers(0, 2**32)),
            )
        honest = data.draw(st.lists(st.sampled_from(HONEST_HOSTS), min_size=1, max_size=12))
        for i, host in enumerate(honest):
            await register(tracker, f"o{i}", (host, 2000 + i), SEED, None)
        answer = await tracker.handle(
            FindRequest(version=V11, transaction_id="3", peer_id="o0", swarm_id="s"),
            observed=(honest[0], 2000),
            now=1.0,
        )
        others_listed = sum(not (p.peer_id or "").startswith("a") for p in answer.peers)
        others_held = Counter(prefix_of_host(h) for h in honest[1:])
        share = sum(min(2, n) for n in others_held.values())
        assert others_listed >= min(20 - min(flood, 2), share)

    asyncio.run(scenario())


def prefix_of_host(ip: str) -> str | None:
    return member_prefix(SwarmMember(peer_id="x", mode=LEECH, addresses=(reflexive(ip),)))


# -- the ranked order is kept where no share binds ------------------------------------------


def _key(member: SwarmMember, requester: Sequence[PeerAddress]) -> tuple[int, int]:
    protocols = {a.peer_protocol for a in requester if a.peer_protocol is not None}
    profile = rank_profile(member.addresses)
    return (0 if protocols.intersection(profile[0]) else 1, 0)


@pytest.mark.parametrize("layout", ["one prefix each", "one address for all"])
def test_the_ranked_order_is_kept_where_no_share_binds(layout: str) -> None:
    requester = (PeerAddress(ip="192.0.2.9", port=1, peer_protocol=PROTOCOL),)
    members = [
        SwarmMember(
            peer_id=f"p{i}",
            mode=LEECH,
            addresses=(
                PeerAddress(
                    ip="192.0.2.1",
                    port=7000,
                    peer_protocol=PROTOCOL if i % 3 else "X",
                    priority=i % 4,
                ),
                reflexive("127.0.0.1" if layout == "one address for all" else f"10.{i}.0.1"),
            ),
        )
        for i in range(60)
    ]
    for seed in range(20):
        chosen = select_from_groups(
            group_members(members),
            exclude="p1",
            requester_addresses=requester,
            count=20,
            rng=random.Random(seed),
        )
        reference = select_peers(
            members,
            requester_id="p1",
            requester_addresses=requester,
            count=20,
            rng=random.Random(seed),
            share=None,
        )
        assert [_key(m, requester) for m in chosen] == [_key(m, requester) for m in reference]


def test_a_lab_on_one_address_gets_full_lists_from_a_counted_group() -> None:
    """A large group on few prefixes (the memory backend counts it) lists as many as asked,
    best first, and reads few members per list."""

    async def scenario() -> None:
        storage = MemoryStorage(seed=1)
        for i in range(260):
            ip = "127.0.0.1" if i < 250 else f"10.0.{i}.1"
            await storage.put_peer(
                PeerRecord(
                    peer_id=f"p{i}",
                    version=V11,
                    state=PeerState.TRACKING,
                    addresses=(
                        PeerAddress(ip=ip, port=7000, peer_protocol=PROTOCOL),
                        reflexive(ip),
                    ),
                    deadline=100.0,
                )
            )
            await storage.join("s", f"p{i}", LEECH)
        ((_, group),) = await storage.member_groups("s")
        counts = getattr(group, "prefix_counts", None)
        assert counts is not None and sum(counts.values()) == 260
        seen: Counter[str] = Counter()
        for seed in range(200):
            chosen = select_from_groups(
                await storage.member_groups("s"),
                exclude="p0",
                requester_addresses=(),
                count=20,
                rng=random.Random(seed),
            )
            ids = [m.peer_id for m in chosen]
            assert len(set(ids)) == 20 and "p0" not in ids
            # The first round: 2 of the lab and the 10 others; then 8 more of the lab.
            lab = [at for at, m in enumerate(chosen) if m.addresses[-1].ip == "127.0.0.1"]
            assert len(lab) == 10 and lab[2:] == list(range(12, 20))
            seen.update(ids)
        # Among equals, every member of the lab is listed now and then (each about 8 times).
        assert sum(1 for p in seen if int(p[1:]) < 250) > 240

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("limits", "fakes_first"), [(Limits(list_share_per_prefix=3), 3), (Limits().off(), 20)]
)
async def test_the_share_is_the_configured_one_and_off_with_the_per_host_limits(
    limits: Limits, fakes_first: int
) -> None:
    tracker = Tracker(MemoryStorage(seed=1), TrackerConfig(limits=limits), rng=random.Random(2))
    for i in range(30):
        await register(tracker, f"fake{i}", (FAKE_HOST, 1000 + i), SEED, 2**31)
    await register(tracker, "real0", ("198.51.100.1", 1), SEED, None)
    await register(tracker, "real1", ("192.0.2.1", 1), SEED, None)
    await register(tracker, "me", ("10.0.0.1", 1), LEECH, None)
    answer = await tracker.handle(
        FindRequest(version=V11, transaction_id="3", peer_id="me", swarm_id="s"),
        observed=("10.0.0.1", 1),
        now=1.0,
    )
    listed = [p.peer_id or "" for p in answer.peers]
    assert len(listed) == 20
    if fakes_first < 20:
        # The first round: the share of the fakes' prefix and both real seeders, in a random
        # order (the fakes' highest priority ranks nothing).
        first = listed[: fakes_first + 2]
        assert {"real0", "real1"} <= set(first)
        assert sum(p.startswith("fake") for p in first) == fakes_first
    else:
        # No share: a uniform draw of the 32 members, as likely to list the real ones as not.
        assert set(listed) <= {f"fake{i}" for i in range(30)} | {"real0", "real1"}
