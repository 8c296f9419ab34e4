"""Conformance suite: every storage backend must pass all of it (obligations in base.py)."""

from __future__ import annotations

import random

import pytest

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.messages import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)
from ppsp.tracker.peerlist import select_from_groups
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import PeerRecord, RedisStorage, Storage, StorageCounts
from ppsp.tracker.storage.base import rank_profile
from ppsp.tracker.storage.redis import _version_tuple, pack_content_map, unpack_content_map

from .redis_server import free_port, redis_server


def record(peer_id: str, deadline: float = 100.0, **kw: object) -> PeerRecord:
    fields: dict[str, object] = {
        "peer_id": peer_id,
        "version": ProtocolVersion.V1_1,
        "state": PeerState.TRACKING,
        "addresses": (
            PeerAddress(
                ip="2001:db8::1",
                port=7000,
                family=AddressFamily.IPV6,
                priority=2,
                type=AddressType.HOST,
                connection="ADSL",
                asn="64496",
                peer_protocol="PPSP-PP/0.1",
            ),
            PeerAddress(ip="198.51.100.1", port=4000, type=AddressType.REFLEXIVE),
        ),
        "deadline": deadline,
    }
    fields.update(kw)
    return PeerRecord(**fields)  # type: ignore[arg-type]


def cmap(swarm_id: str, bitmap: bytes = b"\xf0") -> ContentMap:
    return ContentMap(
        swarm_id=swarm_id,
        representations=(
            RepresentationMap(
                representation_id="tag0",
                segments=(
                    SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=bitmap),
                    SegmentMap(start_index=20, end_index=24, chunkmap_size=5, bitmap=b"\x08"),
                ),
            ),
            RepresentationMap(representation_id="ä-ünïcode", segments=()),
        ),
    )


async def test_peer_round_trip(storage: Storage) -> None:
    assert await storage.get_peer("p1") is None
    rec = record("p1", grace_used=True, state=PeerState.PEER_REGISTERED)
    await storage.put_peer(rec)
    assert await storage.get_peer("p1") == rec
    newer = record("p1", deadline=250.5, version=ProtocolVersion.V1_0)
    await storage.put_peer(newer)
    assert await storage.get_peer("p1") == newer
    assert await storage.counts() == StorageCounts(peers=1, swarms=0, memberships=0)


async def test_join_needs_registered_peer(storage: Storage) -> None:
    await storage.join("s", "ghost", PeerMode.LEECH)
    assert await storage.members("s") == []
    assert await storage.memberships("ghost") == {}
    assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0)


async def test_join_members_and_modes(storage: Storage) -> None:
    for pid in ("a", "b"):
        await storage.put_peer(record(pid))
    await storage.join("s1", "a", PeerMode.SEED)
    await storage.join("s1", "b", PeerMode.LEECH)
    await storage.join("s2", "a", PeerMode.LEECH)
    await storage.join("s1", "a", PeerMode.SEED)  # again: no duplicate
    members = {m.peer_id: m for m in await storage.members("s1")}
    assert set(members) == {"a", "b"}
    assert members["a"].mode is PeerMode.SEED
    assert members["a"].addresses == record("a").addresses
    assert members["a"].content_map is None
    assert await storage.memberships("a") == {"s1": PeerMode.SEED, "s2": PeerMode.LEECH}
    assert await storage.counts() == StorageCounts(peers=2, swarms=2, memberships=3)


async def test_members_limit_samples(storage: Storage) -> None:
    for i in range(30):
        await storage.put_peer(record(f"p{i}"))
        await storage.join("big", f"p{i}", PeerMode.LEECH)
    sample = await storage.members("big", limit=10)
    assert len(sample) == 10
    assert len({m.peer_id for m in sample}) == 10
    assert len(await storage.members("big", limit=100)) == 30
    assert await storage.members("none") == []


async def test_leave_drops_map_and_stats(storage: Storage) -> None:
    await storage.put_peer(record("a"))
    await storage.join("s1", "a", PeerMode.LEECH)
    await storage.join("s2", "a", PeerMode.LEECH)
    assert await storage.put_content_map("a", cmap("s1"))
    await storage.put_stats("a", StreamStatistics(swarm_id="s1", uploaded_bytes=1))
    await storage.put_stats("a", StreamStatistics(swarm_id="s2", uploaded_bytes=2))
    assert await storage.leave("s1", "a")
    assert not await storage.leave("s1", "a")
    assert await storage.get_content_map("s1", "a") is None
    assert await storage.get_stats("a") == (StreamStatistics(swarm_id="s2", uploaded_bytes=2),)
    assert await storage.memberships("a") == {"s2": PeerMode.LEECH}
    assert await storage.members("s1") == []
    # Rejoining starts without the old map.
    await storage.join("s1", "a", PeerMode.LEECH)
    assert await storage.get_content_map("s1", "a") is None
    assert await storage.counts() == StorageCounts(peers=1, swarms=2, memberships=2)


async def test_content_maps_members_only_and_replaced(storage: Storage) -> None:
    await storage.put_peer(record("a"))
    assert not await storage.put_content_map("a", cmap("s1"))
    assert await storage.get_content_map("s1", "a") is None
    await storage.join("s1", "a", PeerMode.LEECH)
    assert await storage.put_content_map("a", cmap("s1", b"\xf0"))
    assert await storage.put_content_map("a", cmap("s1", b"\x0f"))
    assert await storage.get_content_map("s1", "a") == cmap("s1", b"\x0f")
    (member,) = await storage.members("s1", with_maps=True)
    assert member.content_map == cmap("s1", b"\x0f")
    (member,) = await storage.members("s1")
    assert member.content_map is None


async def test_stats_latest_per_swarm(storage: Storage) -> None:
    await storage.put_peer(record("a"))
    await storage.join("s1", "a", PeerMode.LEECH)
    first = StreamStatistics(swarm_id="s1", uploaded_bytes=1)
    latest = StreamStatistics(
        swarm_id="s1",
        uploaded_bytes=5,
        downloaded_bytes=6,
        available_bandwidth=7,
        concurrent_links=8,
        extra=(("OnlineTime", "3600"),),
    )
    wide = StreamStatistics(uploaded_bytes=9)
    for s in (first, latest, wide):
        await storage.put_stats("a", s)
    assert set(await storage.get_stats("a")) == {latest, wide}
    await storage.put_stats("ghost", wide)
    assert await storage.get_stats("ghost") == ()


async def test_peer_and_memberships_read_together(storage: Storage) -> None:
    assert await storage.peer_and_memberships("a") == (None, {})
    await storage.put_peer(record("a", state=PeerState.PEER_REGISTERED))
    assert await storage.peer_and_memberships("a") == (
        record("a", state=PeerState.PEER_REGISTERED),
        {},
    )
    await storage.join("s1", "a", PeerMode.LEECH)
    await storage.join("s2", "a", PeerMode.SEED)
    found = await storage.peer_and_memberships("a")
    assert found == (await storage.get_peer("a"), await storage.memberships("a"))
    assert found[1] == {"s1": PeerMode.LEECH, "s2": PeerMode.SEED}
    await storage.delete_peer("a")
    assert await storage.peer_and_memberships("a") == (None, {})


async def test_put_report_writes_record_stats_and_maps_in_order(storage: Storage) -> None:
    await storage.put_peer(record("a", deadline=50.0))
    await storage.join("s1", "a", PeerMode.LEECH)
    old = StreamStatistics(swarm_id="s1", uploaded_bytes=1)
    new = StreamStatistics(swarm_id="s1", uploaded_bytes=2, extra=(("OnlineTime", "5"),))
    wide = StreamStatistics(downloaded_bytes=3)
    refreshed = record("a", deadline=90.0, grace_used=True)
    await storage.put_report(
        refreshed,
        (old, wide, new),  # the later statistics of a swarm replace the earlier
        (cmap("s1", b"\x0f"), cmap("s9")),  # s9: not a member, dropped
    )
    assert await storage.get_peer("a") == refreshed
    assert await storage.next_deadline() == 90.0
    assert set(await storage.get_stats("a")) == {new, wide}
    assert await storage.get_content_map("s1", "a") == cmap("s1", b"\x0f")
    assert await storage.get_content_map("s9", "a") is None
    assert await storage.memberships("a") == {"s1": PeerMode.LEECH}
    # Nothing but the record: the statistics and maps stay as they were.
    await storage.put_report(record("a", deadline=95.0), (), ())
    assert await storage.get_peer("a") == record("a", deadline=95.0)
    assert set(await storage.get_stats("a")) == {new, wide}
    assert await storage.get_content_map("s1", "a") == cmap("s1", b"\x0f")


async def test_delete_removes_everywhere(storage: Storage) -> None:
    for pid in ("a", "b"):
        await storage.put_peer(record(pid))
        await storage.join("s1", pid, PeerMode.LEECH)
    await storage.join("s2", "a", PeerMode.SEED)
    await storage.put_content_map("a", cmap("s1"))
    await storage.put_stats("a", StreamStatistics(swarm_id="s1", uploaded_bytes=1))
    assert await storage.delete_peer("a")
    assert not await storage.delete_peer("a")
    assert await storage.get_peer("a") is None
    assert [m.peer_id for m in await storage.members("s1", with_maps=True)] == ["b"]
    assert await storage.members("s2") == []
    assert await storage.memberships("a") == {}
    assert await storage.get_content_map("s1", "a") is None
    assert await storage.get_stats("a") == ()
    assert await storage.counts() == StorageCounts(peers=1, swarms=1, memberships=1)
    assert await storage.next_deadline() == 100.0


async def test_expire_and_deadlines(storage: Storage) -> None:
    assert await storage.next_deadline() is None
    assert await storage.expire(1e9) == []
    await storage.put_peer(record("a", deadline=10.0))
    await storage.put_peer(record("b", deadline=20.0))
    await storage.put_peer(record("c", deadline=30.0))
    await storage.join("s", "a", PeerMode.LEECH)
    await storage.join("s", "c", PeerMode.LEECH)
    assert await storage.next_deadline() == 10.0
    # Resetting a timer moves its deadline: "a" no longer expires at 10.
    await storage.put_peer(record("a", deadline=40.0))
    assert await storage.next_deadline() == 20.0
    assert await storage.expire(19.9) == []
    assert await storage.expire(20.0) == ["b"]  # at the deadline counts as run out
    assert await storage.next_deadline() == 30.0
    assert sorted(await storage.expire(35.0)) == ["c"]
    assert [m.peer_id for m in await storage.members("s")] == ["a"]
    assert await storage.counts() == StorageCounts(peers=1, swarms=1, memberships=1)
    assert await storage.expire(100.0) == ["a"]
    assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0)
    assert await storage.next_deadline() is None


async def test_many_timer_resets_stay_consistent(storage: Storage) -> None:
    for step in range(200):
        await storage.put_peer(record("a", deadline=float(step)))
    await storage.put_peer(record("b", deadline=150.0))
    assert await storage.next_deadline() == 150.0
    assert await storage.expire(160.0) == ["b"]
    assert await storage.next_deadline() == 199.0


def test_content_map_packing_round_trip() -> None:
    original = cmap("swarm/ü", b"\x00\xff\x10")
    assert unpack_content_map(pack_content_map(original)) == original


@pytest.mark.parametrize("peer_id", ["x:swarms", "peer:x", ""])
async def test_awkward_ids_do_not_collide(storage: Storage, peer_id: str) -> None:
    await storage.put_peer(record("x"))
    await storage.put_peer(record(peer_id))
    await storage.join("s", peer_id, PeerMode.SEED)
    await storage.join("s", "x", PeerMode.LEECH)
    assert await storage.memberships("x") == {"s": PeerMode.LEECH}
    assert await storage.memberships(peer_id) == {"s": PeerMode.SEED}
    await storage.delete_peer(peer_id)
    assert await storage.get_peer("x") == record("x")
    assert [m.peer_id for m in await storage.members("s")] == ["x"]


async def test_member_groups_hold_every_member_and_lists_leave_out_the_requester(
    storage: Storage,
) -> None:
    # Storage.member_groups (memory: its own lists; Redis: the default, fresh lists): every
    # member in the group of its profile, the requester included, which the selection leaves out.
    profiles = [
        (PeerAddress(ip="192.0.2.1", port=1, peer_protocol="A", asn="64496", priority=2),),
        (PeerAddress(ip="192.0.2.1", port=1, peer_protocol="B"),),
        (),
    ]
    for i in range(30):
        await storage.put_peer(
            PeerRecord(
                peer_id=f"p{i}",
                version=ProtocolVersion.V1_1,
                state=PeerState.TRACKING,
                addresses=profiles[i % 3],
                deadline=100.0,
            )
        )
        await storage.join("s", f"p{i}", PeerMode.LEECH)
    await storage.leave("s", "p4")
    await storage.delete_peer("p5")
    groups = await storage.member_groups("s")
    expected = {
        rank_profile(profiles[k]): {f"p{i}" for i in range(k, 30, 3)} - {"p4", "p5"}
        for k in range(3)
    }
    assert {profile: {m.peer_id for m in members} for profile, members in groups} == expected
    assert sum(len(members) for _, members in groups) == 28
    requester = profiles[0]
    for seed in range(20):
        chosen = select_from_groups(
            groups, exclude="p0", requester_addresses=requester, count=12, rng=random.Random(seed)
        )
        ids = [m.peer_id for m in chosen]
        assert len(set(ids)) == 12 and "p0" not in ids
        # The 9 others of the requester's profile first, then 3 of the 18 that rank alike.
        assert set(ids[:9]) == expected[rank_profile(requester)] - {"p0"}
    assert await storage.member_groups("nothing") == []


# -- reaching the store ----------------------------------------------------------------------


async def test_a_usable_storage_passes_its_check(storage: Storage) -> None:
    await storage.check()


async def test_an_unreachable_redis_fails_its_check_and_every_call() -> None:
    # A port nothing listens on: one-line ServiceUnavailable errors, never RedisError.
    storage = RedisStorage(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(ServiceUnavailable, match="storage unavailable"):
            await storage.check()
        with pytest.raises(ServiceUnavailable):
            await storage.counts()
        with pytest.raises(ServiceUnavailable):
            await storage.peer_and_memberships("p")
    finally:
        await storage.close()


async def test_redis_that_comes_back_is_used_again() -> None:
    """Obligation 9: no restart of the tracker is needed once Redis is back."""
    with redis_server() as server:
        storage = RedisStorage(server.url)
        try:
            await storage.put_peer(record("p"))
            server.stop()
            with pytest.raises(ServiceUnavailable):
                await storage.get_peer("p")
            server.start()  # the same port, empty (no persistence)
            await storage.check()
            assert await storage.get_peer("p") is None
            await storage.put_peer(record("p"))
            assert await storage.get_peer("p") == record("p")
        finally:
            await storage.close()


async def test_redis_older_than_6_2_is_refused(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = RedisStorage(redis_url)
    try:
        real_info = storage._redis.info

        async def old_info(section: str) -> dict[str, object]:
            info: dict[str, object] = await real_info(section)
            return {**info, "redis_version": "6.0.16"}

        monkeypatch.setattr(storage._redis, "info", old_info)
        with pytest.raises(ServiceUnavailable, match=r"Redis 6\.2 or later .* 6\.0\.16"):
            await storage.check()
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("7.0.15", (7, 0, 15)), ("6.2", (6, 2)), ("255.255.255", (255, 255, 255)), ("7.2rc1", (7, 2))],
)
def test_redis_versions_compare_as_numbers(text: str, parsed: tuple[int, ...]) -> None:
    assert _version_tuple(text) == parsed
