"""Conformance: the bounds on the weight of the content maps kept (obligation 6), on every
backend (the ``storage`` fixture: memory, Redis, Redis Cluster with one and with 8 shards)."""

from __future__ import annotations

import contextlib
import math
import random

from hypothesis import given

from ppsp.errors import Forbidden, ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import PeerRecord, Storage
from ppsp.tracker.storage.base import content_map_bytes
from ppsp.tracker.storage.records import pack_content_map
from ppsp.wire.tracker import (
    AddressType,
    ContentMap,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)
from wire.strategies import content_maps

H1, H2 = "192.0.2.1", "192.0.2.2"


def hosted(peer_id: str, host: str, deadline: float = 100.0) -> PeerRecord:
    return PeerRecord(
        peer_id=peer_id,
        version=ProtocolVersion.V1_1,
        state=PeerState.TRACKING,
        addresses=(PeerAddress(ip=host, port=4000, type=AddressType.REFLEXIVE),),
        deadline=deadline,
        host=host,
    )


def sized(swarm_id: str, nbytes: int, fill: int = 0xFF) -> ContentMap:
    """A map of one segment whose bitmap has ``nbytes`` bytes."""
    segment = SegmentMap(
        start_index=0,
        end_index=8 * nbytes - 1,
        chunkmap_size=8 * nbytes,
        bitmap=bytes([fill]) * nbytes,
    )
    return ContentMap(
        swarm_id=swarm_id,
        representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
    )


W = content_map_bytes(sized("s", 100))
"""The weight of a map of 100 bitmap bytes in swarm ``s``."""


@given(content_maps)
def test_a_map_weighs_its_packed_length(content_map: ContentMap) -> None:
    assert content_map_bytes(content_map) == len(pack_content_map(content_map))


async def members(storage: Storage, swarm_id: str, *peers: tuple[str, str]) -> None:
    for peer_id, host in peers:
        await storage.update(hosted(peer_id, host), join=[(swarm_id, PeerMode.LEECH)])


async def test_maps_keep_their_first_segments_within_limits(storage: Storage) -> None:
    limits = Limits(map_segments_kept=3)
    await members(storage, "s", ("a", H1))
    segments = tuple(
        SegmentMap(start_index=8 * i, end_index=8 * i + 7, chunkmap_size=8, bitmap=b"\xff")
        for i in range(5)
    )
    many = ContentMap(
        swarm_id="s",
        representations=(
            RepresentationMap(representation_id="r", segments=segments[:2]),
            RepresentationMap(representation_id="q", segments=segments[2:]),
            RepresentationMap(representation_id="z", segments=segments[:1]),
        ),
    )
    assert await storage.put_content_map("a", many, limits=limits)
    kept = ContentMap(
        swarm_id="s",
        representations=(
            RepresentationMap(representation_id="r", segments=segments[:2]),
            RepresentationMap(representation_id="q", segments=segments[2:3]),
        ),
    )
    assert await storage.get_content_map("s", "a") == kept
    assert (await storage.counts()).map_bytes == content_map_bytes(kept)
    await storage.put_report(hosted("a", H1), (), (many,), limits=limits)
    (member,) = await storage.members("s", with_maps=True)
    assert member.content_map == kept
    # Without limits the map is kept whole.
    assert await storage.put_content_map("a", many)
    assert await storage.get_content_map("s", "a") == many


async def test_maps_past_a_hosts_bound_are_not_kept(storage: Storage) -> None:
    limits = Limits(map_bytes_per_host=2 * W, map_bytes_total=100 * W)
    await members(storage, "s", ("a", H1), ("b", H1), ("c", H1), ("d", H2))
    assert await storage.put_content_map("a", sized("s", 100), limits=limits)
    assert await storage.put_content_map("b", sized("s", 100), limits=limits)
    assert (await storage.counts()).map_bytes == 2 * W
    # A third map of the same host would take it past its bound: not kept.
    assert not await storage.put_content_map("c", sized("s", 100), limits=limits)
    assert await storage.get_content_map("s", "c") is None
    # Another host's is kept; a map no heavier than the one it replaces always is.
    assert await storage.put_content_map("d", sized("s", 100), limits=limits)
    assert await storage.put_content_map("a", sized("s", 100, 0x0F), limits=limits)
    assert await storage.put_content_map("a", sized("s", 60), limits=limits)
    assert await storage.get_content_map("s", "a") == sized("s", 60)
    # A heavier one past the bound is not kept, and the one it replaced is dropped.
    assert not await storage.put_content_map("b", sized("s", 150), limits=limits)
    assert await storage.get_content_map("s", "b") is None
    assert (await storage.counts()).map_bytes == content_map_bytes(sized("s", 60)) + W
    # The room given back is the host's again.
    assert await storage.put_content_map("c", sized("s", 100), limits=limits)
    # Without limits nothing is checked; leaving, deleting and expiring give every byte back.
    assert await storage.put_content_map("b", sized("s", 300))
    assert await storage.leave("s", "a")
    await storage.delete_peer("b")
    await storage.expire(1e9)
    assert (await storage.counts()).map_bytes == 0


async def test_maps_past_the_total_are_not_kept(storage: Storage) -> None:
    limits = Limits(map_bytes_per_host=100 * W, map_bytes_total=2 * W)
    await members(storage, "s", ("a", H1), ("b", H2), ("c", "192.0.2.3"))
    assert await storage.put_content_map("a", sized("s", 100), limits=limits)
    assert await storage.put_content_map("b", sized("s", 100), limits=limits)
    assert not await storage.put_content_map("c", sized("s", 100), limits=limits)
    # With the per-host bounds off, the total still holds.
    assert not await storage.put_content_map("c", sized("s", 100), limits=limits.off())
    # Room made by a lighter map is taken by another host.
    assert await storage.put_content_map("b", sized("s", 20), limits=limits)
    assert await storage.put_content_map("c", sized("s", 10), limits=limits)
    await storage.expire(1e9)
    assert (await storage.counts()).map_bytes == 0


async def test_a_host_whose_bound_is_off_keeps_its_maps(storage: Storage) -> None:
    limits = Limits(map_bytes_per_host=W, map_bytes_total=100 * W).off()
    await members(storage, "s", ("a", H1), ("b", H1))
    assert await storage.put_content_map("a", sized("s", 100), limits=limits)
    assert await storage.put_content_map("b", sized("s", 100), limits=limits)


async def test_reports_keep_their_maps_within_the_bounds(storage: Storage) -> None:
    limits = Limits(map_bytes_per_host=W, map_bytes_total=100 * W)
    await members(storage, "s", ("a", H1), ("b", H1))
    stats = (StreamStatistics(swarm_id="s", uploaded_bytes=5),)
    await storage.put_report(hosted("a", H1, 150.0), stats, (sized("s", 100),), limits=limits)
    await storage.put_report(hosted("b", H1, 150.0), stats, (sized("s", 100),), limits=limits)
    assert await storage.get_content_map("s", "a") == sized("s", 100)
    # The map not kept is no refusal: the record and statistics are written.
    assert await storage.get_content_map("s", "b") is None
    assert (await storage.get_peer("b")) == hosted("b", H1, 150.0)
    assert await storage.get_stats("b") == stats


async def test_a_peer_moved_to_another_host_takes_its_maps_weight_along(
    storage: Storage,
) -> None:
    limits = Limits(map_bytes_per_host=W, map_bytes_total=100 * W)
    await members(storage, "s", ("a", H1), ("b", H1), ("c", H2))
    assert await storage.put_content_map("a", sized("s", 100), limits=limits)
    await storage.put_peer(hosted("a", H2))  # a's record is now counted for H2
    assert await storage.put_content_map("b", sized("s", 100), limits=limits)
    assert not await storage.put_content_map("c", sized("s", 100), limits=limits)
    await storage.expire(1e9)
    assert (await storage.counts()).map_bytes == 0


async def test_map_weights_stay_right_through_churn(storage: Storage) -> None:
    rng = random.Random(11)
    hosts = [H1, H2, ""]
    swarms = ["s0", "s1", "s2"]
    peers = [f"p{i}" for i in range(8)]
    limits = Limits(map_bytes_per_host=3 * W, map_bytes_total=5 * W)
    for step in range(150):
        peer = rng.choice(peers)
        host = hosts[int(peer[1:]) % 3] if rng.random() < 0.9 else rng.choice(hosts)
        op = rng.random()
        if op < 0.3:
            joins = [(s, PeerMode.LEECH) for s in rng.sample(swarms, rng.randrange(1, 3))]
            with contextlib.suppress(Forbidden, ServiceUnavailable):
                await storage.update(
                    hosted(peer, host, float(step + rng.randrange(40))), join=joins
                )
        elif op < 0.7:
            swarm = rng.choice(swarms)
            await storage.put_content_map(peer, sized(swarm, rng.randrange(1, 160)), limits=limits)
        elif op < 0.8:
            await storage.leave(rng.choice(swarms), peer)
        elif op < 0.9:
            await storage.delete_peer(peer)
        else:
            await storage.expire(float(step))
        kept: dict[str, int] = {}
        total = 0
        for p in peers:
            record, joined = await storage.peer_and_memberships(p)
            for swarm_id in joined:
                found = await storage.get_content_map(swarm_id, p)
                if found is not None:
                    assert record is not None
                    total += content_map_bytes(found)
                    kept[record.host] = kept.get(record.host, 0) + content_map_bytes(found)
        assert (await storage.counts()).map_bytes == total
        # A cluster holds the bounds in each swarm shard: a share of the total, a host's whole
        # bound (docs/PROTOCOL.md "Redis Cluster").
        shards = storage._at.n if isinstance(storage, RedisClusterStorage) else 1
        assert total <= math.ceil(limits.map_bytes_total / shards) * shards
        for h in (H1, H2):
            assert kept.get(h, 0) <= limits.map_bytes_per_host * shards
    await storage.expire(1e9)
    assert (await storage.counts()).map_bytes == 0
