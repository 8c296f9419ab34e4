"""Bounded state through the tracker core: floods from one host hit their bound, others go on.

Over a per-host or per-peer bound the answer is Forbidden (403 / error_code 3), over a total
ServiceUnavailable (503 / error_code 5: the tracker is full); a refused request stores nothing.
On both storage backends.
"""

from __future__ import annotations

import contextlib
import random

import pytest

from ppsp.errors import Forbidden, ServiceUnavailable
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS, Limits
from ppsp.tracker.storage import Storage, StorageCounts
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
FLOODER = "203.0.113.66"
OTHER = "198.51.100.7"


def connect(peer: str, *swarms: str, mode: PeerMode = PeerMode.SEED) -> ConnectRequest:
    return ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id=peer,
        swarm_actions=tuple(
            SwarmAction(swarm_id=s, action=SwarmActionType.JOIN, peer_mode=mode) for s in swarms
        ),
    )


def join(peer: str, *swarms: str) -> JoinRequest:
    return JoinRequest(
        version=V11,
        transaction_id="2",
        peer_id=peer,
        swarms=tuple(SwarmAction(swarm_id=s, peer_mode=PeerMode.SEED) for s in swarms),
    )


def find(peer: str, swarm: str) -> FindRequest:
    return FindRequest(version=V11, transaction_id="3", peer_id=peer, swarm_id=swarm)


def bye(peer: str) -> DisconnectRequest:
    return DisconnectRequest(
        version=V11, transaction_id="4", peer_id=peer, scope=DisconnectScope.SYSTEM
    )


def tracker_with(storage: Storage, limits: Limits) -> Tracker:
    return Tracker(storage, TrackerConfig(limits=limits), rng=random.Random(1))


async def test_a_flood_of_registrations_from_one_host_meets_its_bound(storage: Storage) -> None:
    tracker = tracker_with(storage, DEFAULT_LIMITS)
    bound = DEFAULT_LIMITS.peers_per_host
    await tracker.handle(connect("other", "s"), observed=(OTHER, 1), now=0.0)
    refused = 0
    for i in range(bound + 20):
        try:
            await tracker.handle(connect(f"f{i}", "s"), observed=(FLOODER, i), now=0.0)
        except Forbidden as exc:
            assert exc.http_status == 403 and exc.code.json_code == 3
            assert exc.transaction_id == "1"
            refused += 1
    assert refused == 20
    assert await storage.peers_of_host(FLOODER) == bound
    assert (await tracker.stats()).peers == bound + 1
    # Nothing of a refused registration is stored, not even its membership.
    assert await storage.get_peer(f"f{bound}") is None
    assert len(await storage.members("s")) == bound + 1
    # Another host is still served: it registers, joins and gets lists.
    await tracker.handle(connect("newcomer"), observed=(OTHER, 2), now=1.0)
    answer = await tracker.handle(join("newcomer", "s"), observed=(OTHER, 2), now=1.0)
    assert answer.peers == ()  # a SEED join without PeerNum: no list
    answer = await tracker.handle(find("other", "s"), observed=(OTHER, 1), now=1.0)
    assert len(answer.peers) == 20
    # A place given back (BYE) can be taken again.
    await tracker.handle(bye("f0"), observed=(FLOODER, 0), now=2.0)
    await tracker.handle(connect("again"), observed=(FLOODER, 9), now=2.0)


async def test_a_flood_of_swarms_from_one_peer_meets_its_bound(storage: Storage) -> None:
    tracker = tracker_with(storage, Limits(swarms_per_peer=10))
    await tracker.handle(
        connect("f", *(f"s{i}" for i in range(10))), observed=(FLOODER, 1), now=0.0
    )
    record = await storage.get_peer("f")
    with pytest.raises(Forbidden, match="at most 10 swarms"):
        await tracker.handle(join("f", "s10"), observed=(FLOODER, 1), now=5.0)
    # Nothing changed: no membership, not even the timer.
    assert len(await storage.memberships("f")) == 10
    assert await storage.get_peer("f") == record
    # A registration that would be over the bound at once joins nothing at all.
    with pytest.raises(Forbidden):
        await tracker.handle(
            connect("g", *(f"t{i}" for i in range(11))), observed=(FLOODER, 2), now=0.0
        )
    assert await storage.get_peer("g") is None
    assert (await tracker.stats()).swarms == 10
    # Other peers (even of the same host) still join.
    await tracker.handle(connect("h", "s0", "t0"), observed=(FLOODER, 3), now=0.0)


async def test_over_a_total_the_tracker_is_full(storage: Storage) -> None:
    limits = Limits(peers_total=4, swarms_total=3, memberships_total=5)
    tracker = tracker_with(storage, limits)
    await tracker.handle(connect("a", "s1", "s2", "s3"), observed=("192.0.2.1", 1), now=0.0)
    with pytest.raises(ServiceUnavailable) as info:
        await tracker.handle(connect("b", "s4"), observed=("192.0.2.2", 1), now=0.0)
    assert info.value.http_status == 503 and info.value.code.json_code == 5
    assert info.value.transaction_id == "1"
    assert await storage.get_peer("b") is None
    await tracker.handle(connect("b", "s1", "s2"), observed=("192.0.2.2", 1), now=0.0)
    with pytest.raises(ServiceUnavailable):  # memberships: 5 held
        await tracker.handle(connect("c", "s1"), observed=("192.0.2.3", 1), now=0.0)
    await tracker.handle(connect("c"), observed=("192.0.2.3", 1), now=0.0)
    await tracker.handle(connect("d"), observed=("192.0.2.4", 1), now=0.0)
    with pytest.raises(ServiceUnavailable):  # peers: 4 registered
        await tracker.handle(connect("e"), observed=("192.0.2.5", 1), now=0.0)
    assert await storage.counts() == StorageCounts(peers=4, swarms=3, memberships=5, hosts=4)


async def test_limits_off_lift_the_per_host_bounds_only(storage: Storage) -> None:
    tracker = tracker_with(storage, Limits(peers_per_host=2, peers_total=5).off())
    for i in range(5):
        await tracker.handle(connect(f"lab{i}", "s"), observed=("127.0.0.1", i), now=0.0)
    with pytest.raises(ServiceUnavailable):
        await tracker.handle(connect("lab5", "s"), observed=("127.0.0.1", 9), now=0.0)


async def test_counts_return_to_zero_after_churn_through_the_tracker(storage: Storage) -> None:
    tracker = tracker_with(storage, Limits(peers_per_host=4, swarms_per_peer=3, swarms_total=6))
    rng = random.Random(3)
    now = 0.0
    for _ in range(300):
        now += rng.random() * 20
        peer = f"p{rng.randrange(10)}"
        host = (f"192.0.2.{rng.randrange(3)}", rng.randrange(1, 9))
        kind = rng.random()
        request: AnyRequest
        if kind < 0.4:
            request = connect(
                peer, *rng.sample(["a", "b", "c", "d", "e", "f", "g"], rng.randrange(4))
            )
        elif kind < 0.7:
            request = join(
                peer, *rng.sample(["a", "b", "c", "d", "e", "f", "g"], rng.randrange(1, 3))
            )
        elif kind < 0.85:
            request = find(peer, rng.choice("abcdefg"))
        else:
            request = bye(peer)
        with contextlib.suppress(Forbidden, ServiceUnavailable):  # refused: the state machine
            await tracker.handle(request, observed=host, now=now)
        if rng.random() < 0.1:
            await tracker.expire(now)
        counts = await storage.counts()
        assert counts.swarms <= 6
        for h in range(3):
            assert await storage.peers_of_host(f"192.0.2.{h}") <= 4
    await tracker.expire(now + 1e6)
    assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0, hosts=0)


async def test_an_ipv6_host_is_its_64(storage: Storage) -> None:
    # One IPv6 host holds a whole /64 and may use any address of it: registrations from many of
    # its addresses count for one host, and the host may speak for its PeerIDs from any of them.
    limits = Limits(peers_per_host=3)
    tracker = tracker_with(storage, limits)
    for i in range(3):
        await tracker.handle(connect(f"v6-{i}", "s"), observed=(f"2001:db8:1:2::{i + 1}", 1), now=0)
    with pytest.raises(Forbidden):
        await tracker.handle(connect("v6-3", "s"), observed=("2001:db8:1:2::ffff", 1), now=0.0)
    await tracker.handle(connect("v6-other", "s"), observed=("2001:db8:1:3::1", 1), now=0.0)
    await tracker.handle(find("v6-0", "s"), observed=("2001:db8:1:2:abcd::9", 7), now=1.0)
    with pytest.raises(Forbidden):
        await tracker.handle(find("v6-0", "s"), observed=("2001:db8:1:3::1", 7), now=1.0)


def content_report(peer: str, swarm: str, nbytes: int) -> StatReportRequest:
    segment = SegmentMap(
        start_index=0, end_index=8 * nbytes - 1, chunkmap_size=8 * nbytes, bitmap=b"\xff" * nbytes
    )
    content_map = ContentMap(
        swarm_id=swarm,
        representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
    )
    return StatReportRequest(
        version=V11,
        transaction_id="5",
        peer_id=peer,
        stream_stats=(StreamStatistics(swarm_id=swarm, uploaded_bytes=nbytes),),
        content_maps=(content_map,),
    )


async def test_a_hosts_maps_past_its_bound_are_not_kept_and_its_reports_answered(
    storage: Storage,
) -> None:
    # The review's flood: one host's peers report large maps.  Past the host's bound the
    # reports are still answered (they are the peers' keep-alives) and their maps not kept.
    limits = Limits(map_bytes_per_host=10_000, map_bytes_total=1_000_000)
    tracker = tracker_with(storage, limits)
    for i in range(6):
        await tracker.handle(connect(f"f{i}", "s"), observed=(FLOODER, i), now=0.0)
    await tracker.handle(connect("other", "s"), observed=(OTHER, 1), now=0.0)
    for i in range(6):
        answer = await tracker.handle(
            content_report(f"f{i}", "s", 3000), observed=(FLOODER, i), now=10.0
        )
        assert answer.transaction_id == "5"
    kept = [i for i in range(6) if await storage.get_content_map("s", f"f{i}") is not None]
    assert kept == [0, 1, 2]
    assert (await storage.counts()).map_bytes <= 10_000
    # The peers whose maps were not kept were still refreshed, their statistics kept.
    record = await storage.get_peer("f5")
    assert record is not None and record.deadline == 10.0 + tracker.config.track_timeout
    assert (await storage.get_stats("f5"))[0].uploaded_bytes == 3000
    # Another host's map is kept.
    await tracker.handle(content_report("other", "s", 3000), observed=(OTHER, 1), now=10.0)
    assert await storage.get_content_map("s", "other") is not None
    await tracker.expire(1e9)
    assert (await storage.counts()).map_bytes == 0
