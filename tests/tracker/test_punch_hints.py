"""Hints for peers behind NAT: an asker behind NAT listed a peer is listed to that peer first.

Through the tracker core on both storages (time passed in): the hint made by a NATed peer's
FIND, used by the listed peer's next FIND or JOIN, once; its expiry; a member no longer in the
swarm never listed for it; the share bound per prefix; bounded state under a flood of FINDs
(many askers, many swarms), through the tracker and on the table alone.
"""

from __future__ import annotations

import random
from collections import Counter

from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.punch_hints import (
    HINT_LIFETIME,
    PunchHints,
    behind_nat,
    first_listed,
)
from ppsp.tracker.storage import Storage, SwarmMember
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
PPSPP = "PPSPP/1"
SWARM = "s"


def observed_of(index: int) -> tuple[str, int]:
    """Peer ``index``'s observed address: a /24 of its own (no share policy binds)."""
    return (f"100.64.{index}.1", 40000)


async def connect(
    tracker: Tracker,
    peer: str,
    observed: tuple[str, int],
    *,
    nated: bool,
    swarm: str = SWARM,
    now: float = 0.0,
) -> None:
    """Register ``peer`` and join ``swarm``; behind NAT it advertises its HOST and REFLEXIVE
    PPSPP addresses (what ``ppsp seed --stun`` registers), else one HOST address."""
    addresses: tuple[PeerAddress, ...]
    if nated:
        addresses = (
            PeerAddress(ip="192.168.1.2", port=6000, peer_protocol=PPSPP, type=AddressType.HOST),
            PeerAddress(ip=observed[0], port=6001, peer_protocol=PPSPP, type=AddressType.REFLEXIVE),
        )
    else:
        addresses = (PeerAddress(ip=observed[0], port=6000, peer_protocol=PPSPP),)
    await tracker.handle(
        ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id=peer,
            peer_addresses=addresses,
            swarm_actions=(
                SwarmAction(swarm_id=swarm, action=SwarmActionType.JOIN, peer_mode=PeerMode.SEED),
            ),
            peer_num=PeerNum(count=0),
        ),
        observed=observed,
        now=now,
    )


async def find(
    tracker: Tracker,
    peer: str,
    observed: tuple[str, int],
    now: float,
    *,
    swarm: str = SWARM,
    count: int | None = None,
) -> list[str]:
    """The PeerIDs a FIND of ``peer`` lists, in order."""
    answer = await tracker.handle(
        FindRequest(
            version=V11,
            transaction_id="2",
            peer_id=peer,
            swarm_id=swarm,
            peer_num=PeerNum(count=count) if count is not None else None,
        ),
        observed=observed,
        now=now,
    )
    return [str(info.peer_id) for info in answer.peers]


async def swarm_of_100(tracker: Tracker) -> None:
    """Peer 0 behind NAT, peers 1-99 not."""
    for index in range(100):
        await connect(tracker, f"p{index}", observed_of(index), nated=index == 0)


async def test_the_peer_a_nated_asker_was_listed_lists_it_first(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(5))
    await swarm_of_100(tracker)
    listed = await find(tracker, "p0", observed_of(0), 1.0)
    assert len(listed) == 20 and "p0" not in listed
    assert len(tracker.punch_hints) == 20  # one per peer listed
    for target in listed[:5]:
        at = int(target[1:])
        assert (await find(tracker, target, observed_of(at), 2.0))[0] == "p0"
        # Once: the next list is as for anyone (the hint is used, kept until it expires).
        assert tracker.punch_hints.askers(SWARM, target, 2.0) == []
    # A peer it was not listed is given no hint.
    unlisted = next(f"p{i}" for i in range(1, 100) if f"p{i}" not in listed)
    assert tracker.punch_hints.askers(SWARM, unlisted, 2.0) == []


async def test_a_join_lists_the_hinted_asker_first(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(6))
    await swarm_of_100(tracker)
    target = (await find(tracker, "p0", observed_of(0), 1.0))[0]
    at = int(target[1:])
    # The listed peer leaves the swarm and joins again as a leecher: its JOIN's list.
    await tracker.handle(
        DisconnectRequest(
            version=V11,
            transaction_id="3",
            peer_id=target,
            scope=DisconnectScope.SWARMS,
            swarms=(SwarmAction(swarm_id=SWARM, action=SwarmActionType.LEAVE),),
        ),
        observed=observed_of(at),
        now=2.0,
    )
    answer = await tracker.handle(
        JoinRequest(
            version=V11,
            transaction_id="4",
            peer_id=target,
            swarms=(SwarmAction(swarm_id=SWARM, peer_mode=PeerMode.LEECH),),
        ),
        observed=observed_of(at),
        now=3.0,
    )
    assert answer.peers[0].peer_id == "p0"


async def test_a_chunk_scoped_find_lists_the_hinted_asker_first(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(12))
    await swarm_of_100(tracker)  # every member a SEED: each holds every chunk of a scope
    target = (await find(tracker, "p0", observed_of(0), 1.0))[0]
    scope = (RepresentationScope(representation_id="r", start_index=0, end_index=9),)
    answer = await tracker.handle(
        FindRequest(
            version=V11,
            transaction_id="6",
            peer_id=target,
            swarm_id=SWARM,
            content_group=scope,
        ),
        observed=observed_of(int(target[1:])),
        now=2.0,
    )
    assert answer.peers[0].peer_id == "p0"


async def test_plain_askers_make_no_hints(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(7))
    await swarm_of_100(tracker)
    for index in range(1, 30):
        await find(tracker, f"p{index}", observed_of(index), 1.0)
    assert len(tracker.punch_hints) == 0


async def test_the_hint_expires(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(8))
    await swarm_of_100(tracker)
    listed = await find(tracker, "p0", observed_of(0), 1.0)
    later = 1.0 + HINT_LIFETIME
    assert tracker.punch_hints.askers(SWARM, listed[0], later - 0.5) == ["p0"]
    assert tracker.punch_hints.askers(SWARM, listed[0], later) == []
    # Lists after the lifetime are as for anyone: over the first places of the 19 other
    # peers' lists, the NATed peer comes first about as often as any other member.
    firsts = Counter(
        [(await find(tracker, t, observed_of(int(t[1:])), later))[0] for t in listed[1:]]
    )
    assert firsts["p0"] <= 3
    tracker.punch_hints.expire(later)
    assert len(tracker.punch_hints) == 0


async def test_an_asker_that_left_is_not_listed(storage: Storage) -> None:
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(9))
    await swarm_of_100(tracker)
    listed = await find(tracker, "p0", observed_of(0), 1.0)
    await tracker.handle(
        DisconnectRequest(
            version=V11,
            transaction_id="5",
            peer_id="p0",
            scope=DisconnectScope.SWARMS,
            swarms=(SwarmAction(swarm_id=SWARM, action=SwarmActionType.LEAVE),),
        ),
        observed=observed_of(0),
        now=2.0,
    )
    for target in listed[:5]:
        assert "p0" not in await find(tracker, target, observed_of(int(target[1:])), 3.0)


async def test_hinted_askers_of_one_prefix_take_at_most_its_share(storage: Storage) -> None:
    share = TrackerConfig().limits.list_share_per_prefix
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(10))
    # 40 peers on prefixes of their own, then 8 NATed askers of one /24 (8 hosts).
    for index in range(40):
        await connect(tracker, f"p{index}", observed_of(index), nated=False)
    crowd = [f"n{i}" for i in range(8)]
    for i, peer in enumerate(crowd):
        await connect(tracker, peer, (f"203.0.113.{i + 1}", 5000), nated=True)
    for i, peer in enumerate(crowd):
        # Each is listed the whole swarm: each will punch towards p1.
        listed = await find(tracker, peer, (f"203.0.113.{i + 1}", 5000), 1.0, count=100)
        assert "p1" in listed
    assert len(tracker.punch_hints.askers(SWARM, "p1", 1.0)) == 8  # the per-peer bound
    answer = await find(tracker, "p1", observed_of(1), 2.0)
    assert len(answer) == 20
    assert sum(peer in crowd for peer in answer) == share
    assert set(answer[:share]) <= set(crowd)


async def test_hints_stay_bounded_under_a_flood_of_finds(storage: Storage) -> None:
    hints = PunchHints(per_asker=32, per_target=4, per_swarm=300, total=1000)
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(11), punch_hints=hints)
    # 12 swarms of 40 NATed peers each, every one listed 200 (the whole swarm) twice.
    for s in range(12):
        for i in range(40):
            index = s * 40 + i
            observed = (f"100.{64 + index // 256}.{index % 256}.1", 40000)
            await connect(tracker, f"s{s}p{i}", observed, nated=True, swarm=f"w{s}")
    for now in (1.0, 2.0):
        for s in range(12):
            for i in range(40):
                index = s * 40 + i
                observed = (f"100.{64 + index // 256}.{index % 256}.1", 40000)
                await find(tracker, f"s{s}p{i}", observed, now, swarm=f"w{s}", count=200)
                assert len(hints) <= 1000
    per_swarm = Counter(swarm for _, swarm, _, _ in hints.noted)
    per_asker = Counter(asker for _, _, _, asker in hints.noted)
    per_target = Counter((swarm, target) for _, swarm, target, _ in hints.noted)
    assert 900 <= len(hints) <= 1000  # full (room made for a list may go partly unused)
    assert max(per_swarm.values()) <= 300
    assert max(per_asker.values()) <= 32
    assert max(per_target.values()) <= 4


def test_the_table_alone_stays_bounded() -> None:
    hints = PunchHints(per_asker=8, per_target=3, per_swarm=50, total=200)
    rng = random.Random(3)
    for step in range(20_000):
        swarm = f"w{rng.randrange(40)}"
        asker = f"a{rng.randrange(500)}"
        listed = [f"t{rng.randrange(100)}" for _ in range(20)]
        hints.note(swarm, asker, listed, step * 0.01)
        assert len(hints) <= 200
    per_swarm = Counter(swarm for _, swarm, _, _ in hints.noted)
    assert max(per_swarm.values()) <= 50
    assert max(Counter(a for _, _, _, a in hints.noted).values()) <= 8
    assert max(Counter((s, t) for _, s, t, _ in hints.noted).values()) <= 3
    # The inner tables hold exactly the hints of ``noted`` (nothing left behind).
    kept = {
        (s, t, a) for s, targets in hints._swarms.items() for t, d in targets.items() for a in d
    }
    assert kept == {(s, t, a) for _, s, t, a in hints.noted}
    hints.expire(1e9)
    assert len(hints) == 0
    assert not hints._swarms and not hints._swarm_counts and not hints._askers


def test_a_hint_is_made_once_and_not_towards_the_asker() -> None:
    hints = PunchHints()
    assert hints.note(SWARM, "x", ["y", "x", "z"], 0.0) == 2
    assert hints.note(SWARM, "x", ["y", "z"], 1.0) == 0  # already kept: no new window
    hints.used(SWARM, "y", ["x"])
    assert hints.askers(SWARM, "y", 1.0) == []
    assert hints.note(SWARM, "x", ["y"], 2.0) == 0  # used, kept until it would expire
    assert hints.askers(SWARM, "z", 1.0) == ["x"]
    assert hints.askers("other", "z", 1.0) == []


def test_behind_nat_reads_the_advertised_addresses_only() -> None:
    observed = PeerAddress(ip="198.51.100.1", port=1, type=AddressType.REFLEXIVE)
    host = PeerAddress(ip="192.168.1.2", port=2, type=AddressType.HOST)
    stun = PeerAddress(ip="198.51.100.1", port=3, type=AddressType.REFLEXIVE)
    assert not behind_nat((observed,))  # the tracker's own observed address
    assert not behind_nat((host, observed))
    assert behind_nat((host, stun, observed))


def test_first_listed_keeps_the_share_and_leaves_suspects_out() -> None:
    def member(peer: str, ip: str) -> SwarmMember:
        address = PeerAddress(ip=ip, port=1, type=AddressType.REFLEXIVE)
        return SwarmMember(peer_id=peer, mode=PeerMode.LEECH, addresses=(address,))

    found = [member(f"c{i}", f"203.0.113.{i + 1}") for i in range(5)]
    found += [member("o", "198.51.100.1"), member("bad", "192.0.2.1")]
    chosen = first_listed(found, suspects=frozenset({"bad"}), limit=10, share=2)
    assert [m.peer_id for m in chosen] == ["c0", "c1", "o"]
    assert len(first_listed(found, suspects=frozenset(), limit=2, share=None)) == 2
