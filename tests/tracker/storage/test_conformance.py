"""Conformance suite: every storage backend must pass all of it (obligations in base.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import replace

import pytest

from ppsp.errors import Forbidden, ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.redis_storage import (
    RedisStorage,
    _version_tuple,
    pack_content_map,
    unpack_content_map,
)
from ppsp.tracker.peerlist import select_from_groups
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import PeerRecord, Storage, StorageCounts
from ppsp.tracker.storage.base import ReportOutcome, rank_profile
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    CorruptPeerReport,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)
from tracker.storage.redis_server import free_port, redis_server


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


# -- hosts and bounds (obligations 11 and 12) ---------------------------------------------------

LIMITS = Limits(
    peers_per_host=3, swarms_per_peer=3, peers_total=6, swarms_total=4, memberships_total=8
)


def hosted(peer_id: str, host: str, deadline: float = 100.0, **kw: object) -> PeerRecord:
    return record(peer_id, deadline, host=host, **kw)


async def stored_state(storage: Storage, peers: list[str]) -> object:
    """Everything a refused change must leave as it was."""
    return (
        await storage.counts(),
        [await storage.peer_and_memberships(p) for p in peers],
        await storage.next_deadline(),
        [await storage.peers_of_host(h) for h in ("192.0.2.1", "192.0.2.2")],
    )


async def test_peers_are_counted_for_their_registering_host(storage: Storage) -> None:
    await storage.put_peer(hosted("a", "192.0.2.1"))
    await storage.update(hosted("b", "192.0.2.1"), join=[("s", PeerMode.LEECH)])
    await storage.put_peer(hosted("c", "192.0.2.2"))
    await storage.put_peer(record("old"))  # no host (an earlier release): counted for none
    assert await storage.peers_of_host("192.0.2.1") == 2
    assert await storage.peers_of_host("192.0.2.2") == 1
    assert await storage.peers_of_host("") == 0
    assert (await storage.counts()).hosts == 2
    # Rewriting a record keeps the count; a record moved to another host moves it.
    await storage.put_peer(hosted("a", "192.0.2.1", deadline=150.0))
    await storage.put_report(hosted("b", "192.0.2.1", deadline=160.0), (), ())
    assert await storage.peers_of_host("192.0.2.1") == 2
    await storage.put_peer(hosted("c", "192.0.2.1"))
    assert await storage.peers_of_host("192.0.2.1") == 3
    assert await storage.peers_of_host("192.0.2.2") == 0
    assert (await storage.counts()).hosts == 1
    assert (await storage.get_peer("c")) == hosted("c", "192.0.2.1")
    # Deleting and expiring give the counts back.
    await storage.delete_peer("a")
    await storage.expire(155.0)  # b (160) stays, c and old (100) go
    assert await storage.peers_of_host("192.0.2.1") == 1
    await storage.delete_peer("b")
    assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0, hosts=0)


async def test_update_writes_leaves_and_joins_in_one_change(storage: Storage) -> None:
    await storage.update(hosted("a", "192.0.2.1"), join=[("s1", PeerMode.SEED)], limits=LIMITS)
    await storage.put_content_map("a", cmap("s1"))
    newer = hosted("a", "192.0.2.1", deadline=200.0)
    await storage.update(newer, leave=["s1"], join=[("s2", PeerMode.LEECH), ("s3", PeerMode.SEED)])
    assert await storage.peer_and_memberships("a") == (
        newer,
        {"s2": PeerMode.LEECH, "s3": PeerMode.SEED},
    )
    assert await storage.get_content_map("s1", "a") is None
    assert await storage.next_deadline() == 200.0
    assert await storage.counts() == StorageCounts(peers=1, swarms=2, memberships=2, hosts=1)


async def test_a_host_registers_at_most_its_bound_of_peers(storage: Storage) -> None:
    for i in range(3):
        await storage.update(hosted(f"a{i}", "192.0.2.1"), limits=LIMITS)
    before = await stored_state(storage, ["a3"])
    with pytest.raises(Forbidden):
        await storage.update(hosted("a3", "192.0.2.1"), join=[("s", PeerMode.SEED)], limits=LIMITS)
    assert await stored_state(storage, ["a3"]) == before
    # Another host is still served; a registered peer of the full host still writes.
    await storage.update(hosted("b0", "192.0.2.2"), limits=LIMITS)
    await storage.update(
        hosted("a0", "192.0.2.1", 300.0), join=[("s", PeerMode.SEED)], limits=LIMITS
    )
    # The per-host bound off: only the totals count.
    await storage.update(hosted("a3", "192.0.2.1"), limits=LIMITS.off())
    assert await storage.peers_of_host("192.0.2.1") == 4
    # A peer gone gives its place back.
    await storage.delete_peer("a3")
    await storage.delete_peer("a1")
    await storage.update(hosted("a4", "192.0.2.1"), limits=LIMITS)


async def test_a_peer_joins_at_most_its_bound_of_swarms(storage: Storage) -> None:
    await storage.update(hosted("a", "192.0.2.1"), join=[("s1", PeerMode.SEED)], limits=LIMITS)
    before = await stored_state(storage, ["a"])
    later = hosted("a", "192.0.2.1", deadline=500.0)
    joins = [("s2", PeerMode.SEED), ("s3", PeerMode.SEED), ("s4", PeerMode.SEED)]
    with pytest.raises(Forbidden):
        await storage.update(later, join=joins, limits=LIMITS)
    assert await stored_state(storage, ["a"]) == before  # not even the record (deadline)
    await storage.update(later, join=joins[:2], limits=LIMITS)
    # At the bound, a switch (leave one, join one) does not grow the count: allowed.
    await storage.update(later, leave=["s1"], join=[("s9", PeerMode.LEECH)], limits=LIMITS)
    assert len(await storage.memberships("a")) == 3
    with pytest.raises(Forbidden):
        await storage.update(later, join=[("s1", PeerMode.LEECH)], limits=LIMITS)


async def test_totals_answer_that_the_tracker_is_full(storage: Storage) -> None:
    # Peers in all: 6 (two hosts of 3).
    for i in range(6):
        await storage.update(hosted(f"p{i}", f"192.0.2.{1 + i // 3}"), limits=LIMITS)
    with pytest.raises(ServiceUnavailable, match="full"):
        await storage.update(hosted("p6", "192.0.2.9"), limits=LIMITS)
    assert (await storage.counts()).peers == 6
    # Swarms in all: 4.
    await storage.update(
        hosted("p0", "192.0.2.1"),
        join=[("s1", PeerMode.SEED), ("s2", PeerMode.SEED), ("s3", PeerMode.SEED)],
        limits=LIMITS,
    )
    await storage.update(hosted("p1", "192.0.2.1"), join=[("s4", PeerMode.SEED)], limits=LIMITS)
    before = await stored_state(storage, ["p2"])
    with pytest.raises(ServiceUnavailable):
        await storage.update(
            hosted("p2", "192.0.2.1"),
            join=[("s1", PeerMode.LEECH), ("s5", PeerMode.LEECH)],
            limits=LIMITS,
        )
    assert await stored_state(storage, ["p2"]) == before
    # Existing swarms still take members, up to 8 memberships in all.
    for peer in ("p1", "p2", "p3", "p4"):
        await storage.update(
            hosted(peer, "192.0.2.1"), join=[("s1", PeerMode.LEECH)], limits=LIMITS
        )
    with pytest.raises(ServiceUnavailable):
        await storage.update(
            hosted("p5", "192.0.2.2"), join=[("s2", PeerMode.LEECH)], limits=LIMITS
        )
    assert await storage.counts() == StorageCounts(peers=6, swarms=4, memberships=8, hosts=2)
    # Without limits nothing is checked.
    await storage.update(hosted("p5", "192.0.2.2"), join=[("s5", PeerMode.LEECH)])
    assert (await storage.counts()).memberships == 9


async def test_counts_return_to_zero_after_churn(storage: Storage) -> None:
    rng = random.Random(7)
    hosts = ["192.0.2.1", "192.0.2.2", "2001:db8::1", ""]
    swarms = [f"s{i}" for i in range(5)]
    for step in range(400):
        peer = f"p{rng.randrange(12)}"
        host = hosts[int(peer[1:]) % 4]
        op = rng.random()
        if op < 0.5:
            joins = [(s, rng.choice(list(PeerMode))) for s in rng.sample(swarms, rng.randrange(3))]
            leaves = rng.sample(swarms, rng.randrange(2))
            with contextlib.suppress(Forbidden, ServiceUnavailable):  # over a bound: refused
                await storage.update(
                    hosted(peer, host, deadline=float(step + rng.randrange(30))),
                    leave=leaves,
                    join=joins,
                    limits=LIMITS,
                )
        elif op < 0.65:
            await storage.leave(rng.choice(swarms), peer)
        elif op < 0.8:
            await storage.delete_peer(peer)
        else:
            await storage.expire(float(step))
        counts = await storage.counts()
        # The bounds hold all along (no host has an unlimited record here but "").
        assert counts.peers <= LIMITS.peers_total and counts.swarms <= LIMITS.swarms_total
        assert counts.memberships <= LIMITS.memberships_total
        for h in hosts[:3]:
            assert 0 <= await storage.peers_of_host(h) <= LIMITS.peers_per_host
    await storage.expire(1e9)
    assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0, hosts=0)
    for h in hosts:
        assert await storage.peers_of_host(h) == 0


async def test_a_record_of_an_earlier_release_is_counted_for_no_host(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"test:{random.getrandbits(64):x}:")
    try:
        # As an earlier release wrote it: no "h" field.
        key = storage._p + "peer:old"
        await storage._redis.hset(
            key, mapping={"v": "1.1", "s": "TRACKING", "a": b"[]", "d": "10.0", "g": "0"}
        )
        await storage._redis.zadd(storage._p + "deadlines", {"old": 10.0})
        found = await storage.get_peer("old")
        assert found is not None and found.host == ""
        await storage.put_peer(found)  # rewritten as the core does: still counted for none
        assert (await storage.counts()).hosts == 0
        await storage.update(hosted("old", "192.0.2.1"))  # a registration that names a host
        assert await storage.peers_of_host("192.0.2.1") == 1
        assert await storage.expire(100.0) == ["old"]
        assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0, hosts=0)
    finally:
        await storage.close()


async def test_bounds_hold_for_several_trackers_on_one_redis(redis_url: str) -> None:
    """Two storages on one Redis (two tracker processes) registering at once from one host:
    the host never holds more than its bound, and every refusal is a clean Forbidden."""
    prefix = f"test:{random.getrandbits(64):x}:"
    first, second = RedisStorage(redis_url, prefix=prefix), RedisStorage(redis_url, prefix=prefix)
    limits = Limits(peers_per_host=10, swarms_total=3)
    try:

        async def register(storage: Storage, i: int) -> bool:
            try:
                await storage.update(
                    hosted(f"p{i}", "192.0.2.1"), join=[(f"s{i % 5}", PeerMode.SEED)], limits=limits
                )
            except (Forbidden, ServiceUnavailable):
                return False
            return True

        done = await asyncio.gather(*(register((first, second)[i % 2], i) for i in range(40)))
        assert sum(done) <= 10
        assert await first.peers_of_host("192.0.2.1") == sum(done)
        counts = await second.counts()
        assert counts.peers == sum(done) and counts.swarms <= 3
    finally:
        await first.close()
        await second.close()


# -- corrupt-peer reports (obligation 13) ----------------------------------------------------

REPORT_LIMITS = Limits(suspect_reporters=2, reporters_kept=3)


def _member(peer_id: str, host: str) -> PeerRecord:
    """A record registered from ``host``, reached at HOST 192.0.2.9:7001 when it is "bad"."""
    return record(
        peer_id,
        host=host,
        addresses=(
            PeerAddress(ip="192.0.2.9", port=7001, type=AddressType.HOST),
            PeerAddress(ip=host, port=4000, type=AddressType.REFLEXIVE),
        ),
    )


def _report(
    peer_id: str = "bad", ip: str = "192.0.2.9", port: int = 7001, **kw: object
) -> CorruptPeerReport:
    fields: dict[str, object] = {"swarm_id": "s", "peer_id": peer_id, "ip": ip, "port": port}
    fields.update(kw)
    return CorruptPeerReport(**fields)  # type: ignore[arg-type]


async def _swarm_with_reporters(storage: Storage) -> None:
    for peer_id, host in (
        ("bad", "198.51.100.9"),
        ("r1", "203.0.113.1"),
        ("r1b", "203.0.113.1"),
        ("r2", "203.0.113.2"),
        ("r3", "203.0.113.3"),
        ("r4", "203.0.113.4"),
    ):
        await storage.update(_member(peer_id, host), join=[("s", PeerMode.LEECH)])
    await storage.update(_member("outsider", "203.0.113.8"), join=[("other", PeerMode.LEECH)])
    await storage.update(_member("twin", "198.51.100.9"), join=[("s", PeerMode.LEECH)])


async def test_corrupt_reports_count_once_per_member_host(storage: Storage) -> None:
    await _swarm_with_reporters(storage)
    counted, repeated, ignored = (
        ReportOutcome.COUNTED,
        ReportOutcome.REPEATED,
        ReportOutcome.IGNORED,
    )
    add = storage.add_corrupt_reports
    assert await add("r1", "203.0.113.1", [_report(), _report()], REPORT_LIMITS) == [
        counted,
        repeated,
    ]
    assert await add("r1b", "203.0.113.1", [_report(corrupt_chunks=4)], REPORT_LIMITS) == [repeated]
    assert await storage.suspects("s") == frozenset()  # one host, however many peers
    # Not checkable: not a member, wrong address, itself, the reported peer's own host, a
    # reported peer that is not a member of the swarm, an unknown one.
    assert await add("outsider", "203.0.113.8", [_report()], REPORT_LIMITS) == [ignored]
    assert await add("r2", "203.0.113.2", [_report(port=7002)], REPORT_LIMITS) == [ignored]
    assert await add("r2", "203.0.113.2", [_report(ip="192.0.2.10")], REPORT_LIMITS) == [ignored]
    assert await add("bad", "198.51.100.9", [_report()], REPORT_LIMITS) == [ignored]
    assert await add("twin", "198.51.100.9", [_report()], REPORT_LIMITS) == [ignored]
    assert await add("r2", "203.0.113.2", [_report("outsider")], REPORT_LIMITS) == [ignored]
    assert await add("r2", "203.0.113.2", [_report("nobody")], REPORT_LIMITS) == [ignored]
    assert await storage.counts() == StorageCounts(
        peers=8, swarms=2, memberships=8, hosts=6, reported=1, suspects=0
    )
    # A second host: a suspect.  The reported address may be the REFLEXIVE one too.
    assert await add(
        "r2", "203.0.113.2", [_report(ip="198.51.100.9", port=4000)], REPORT_LIMITS
    ) == [counted]
    assert await storage.suspects("s") == frozenset({"bad"})
    assert await storage.suspects("other") == frozenset()
    assert await storage.corrupt_reporters("s", "bad") == {"203.0.113.1": 4, "203.0.113.2": 1}
    # reporters_kept hosts at most.
    assert await add("r3", "203.0.113.3", [_report()], REPORT_LIMITS) == [counted]
    assert await add("r4", "203.0.113.4", [_report()], REPORT_LIMITS) == [repeated]
    assert len(await storage.corrupt_reporters("s", "bad")) == 3
    counts = await storage.counts()
    assert (counts.reported, counts.suspects) == (1, 1)


@pytest.mark.parametrize("ending", ["leave", "delete", "expire"])
async def test_corrupt_reports_end_with_the_membership(storage: Storage, ending: str) -> None:
    await _swarm_with_reporters(storage)
    for reporter, host in (("r1", "203.0.113.1"), ("r2", "203.0.113.2")):
        await storage.add_corrupt_reports(reporter, host, [_report()], REPORT_LIMITS)
    assert await storage.suspects("s") == frozenset({"bad"})
    if ending == "leave":
        assert await storage.leave("s", "bad")
    elif ending == "delete":
        assert await storage.delete_peer("bad")
    else:
        await storage.put_peer(replace(_member("bad", "198.51.100.9"), deadline=1.0))
        assert await storage.expire(2.0) == ["bad"]
    assert await storage.suspects("s") == frozenset()
    assert await storage.corrupt_reporters("s", "bad") == {}
    counts = await storage.counts()
    assert (counts.reported, counts.suspects) == (0, 0)
    # Back in the swarm: a clean slate.
    await storage.update(_member("bad", "198.51.100.9"), join=[("s", PeerMode.LEECH)])
    assert await storage.corrupt_reporters("s", "bad") == {}


# -- dashboard reads (obligation 14) ---------------------------------------------------------


async def _ids(storage: Storage, offset: int = 0, limit: int = 1000) -> list[str]:
    return list((await storage.swarm_page(offset, limit)).swarm_ids)


async def test_swarm_pages_list_swarms_in_code_point_order(storage: Storage) -> None:
    # Code-point order is the order of the IDs' UTF-8 bytes (Redis compares bytes).
    names = ["b", "a", "ä", "Z", "a/b", "€", "aa", "😀", "~"] + [f"s{i:03d}" for i in range(40)]
    for i, name in enumerate(names):
        await storage.put_peer(record(f"p{i}"))
        await storage.join(name, f"p{i}", PeerMode.LEECH)
    await storage.join("a", "p0", PeerMode.LEECH)  # a second member: listed once
    expected = sorted(names)
    assert expected == sorted(names, key=lambda n: n.encode())
    page = await storage.swarm_page(0, 1000)
    assert page.total == len(names) and list(page.swarm_ids) == expected
    assert await _ids(storage, 3, 5) == expected[3:8]
    assert await _ids(storage, len(names) - 2, 10) == expected[-2:]
    assert await _ids(storage, len(names), 10) == []
    assert await _ids(storage, 10**12, 10) == []
    assert await _ids(storage, 0, 0) == []
    assert (await storage.swarm_page(10**12, 10)).total == len(names)


async def test_swarm_pages_follow_swarms_that_end(storage: Storage) -> None:
    for i in range(6):
        await storage.put_peer(record(f"p{i}", deadline=10.0 if i == 3 else 100.0))
        await storage.join(f"s{i}", f"p{i}", PeerMode.SEED)
    await storage.join("s0", "p1", PeerMode.LEECH)
    assert await storage.leave("s1", "p1")  # left by its last member
    assert await storage.delete_peer("p2")  # its last member deleted
    assert await storage.expire(13.0) == ["p3"]  # its last member expired
    assert await _ids(storage) == ["s0", "s4", "s5"]
    assert await storage.leave("s0", "p0")  # one member of two left: still listed
    assert await _ids(storage) == ["s0", "s4", "s5"]
    assert await storage.leave("s0", "p1")
    assert await _ids(storage) == ["s4", "s5"]
    assert (await storage.swarm_page(0, 10)).total == (await storage.counts()).swarms == 2
    await storage.join("s0", "p0", PeerMode.LEECH)  # a swarm that comes back is listed again
    assert await _ids(storage) == ["s0", "s4", "s5"]


async def test_swarm_views_read_members_with_their_statistics_and_maps(
    storage: Storage,
) -> None:
    for pid, mode in (("a", PeerMode.SEED), ("b", PeerMode.LEECH), ("c", PeerMode.LEECH)):
        await storage.put_peer(record(pid))
        await storage.join("s1", pid, mode)
    await storage.join("s2", "a", PeerMode.LEECH)
    mine = StreamStatistics(swarm_id="s1", uploaded_bytes=10, extra=(("ChunksPlayed", "3"),))
    await storage.put_stats("a", mine)
    await storage.put_stats("a", StreamStatistics(swarm_id="s2", uploaded_bytes=99))
    await storage.put_stats("b", StreamStatistics(downloaded_bytes=5))  # peer-wide: not s1's
    for pid in ("a", "b", "c"):
        assert await storage.put_content_map(pid, cmap("s1"))
    before = await storage.counts()
    one, two, none = await storage.swarm_views(["s1", "s2", "nothing"], limit=10, maps=2)
    assert (one.swarm_id, one.members, one.sampled) == ("s1", 3, False)
    by_id = {view.member.peer_id: view for view in one.sample}
    assert set(by_id) == {"a", "b", "c"}
    assert by_id["a"].member.mode is PeerMode.SEED
    assert by_id["a"].member.addresses == record("a").addresses
    assert by_id["a"].stats == mine
    assert by_id["b"].stats is None and by_id["c"].stats is None
    # The first two members read carry their maps, the third none.
    assert [view.member.content_map for view in one.sample] == [cmap("s1"), cmap("s1"), None]
    assert two.members == 1 and two.sample[0].stats == StreamStatistics(
        swarm_id="s2", uploaded_bytes=99
    )
    assert two.sample[0].member.content_map is None  # a member without a stored map
    assert none == type(none)(swarm_id="nothing", members=0)
    assert await storage.swarm_views([], limit=10) == []
    # Reads change nothing.
    assert await storage.counts() == before
    assert await storage.get_content_map("s1", "c") == cmap("s1")


async def test_swarm_views_sample_large_swarms(storage: Storage) -> None:
    for i in range(30):
        await storage.put_peer(record(f"p{i:02d}"))
        await storage.join("big", f"p{i:02d}", PeerMode.SEED if i % 3 == 0 else PeerMode.LEECH)
        await storage.put_stats(f"p{i:02d}", StreamStatistics(swarm_id="big", uploaded_bytes=i))
    (view,) = await storage.swarm_views(["big"], limit=7)
    assert view.members == 30 and view.sampled and len(view.sample) == 7
    ids = [member.member.peer_id for member in view.sample]
    assert len(set(ids)) == 7
    for member in view.sample:
        assert member.stats is not None
        assert member.stats.uploaded_bytes == int(member.member.peer_id[1:])
        assert member.member.mode is (
            PeerMode.SEED if int(member.member.peer_id[1:]) % 3 == 0 else PeerMode.LEECH
        )
    (whole,) = await storage.swarm_views(["big"], limit=30)
    assert not whole.sampled and len(whole.sample) == 30
    (empty,) = await storage.swarm_views(["big"], limit=0)
    assert empty.members == 30 and empty.sample == ()


async def test_swarms_of_an_earlier_release_are_indexed_for_pages(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"test:{random.getrandbits(64):x}:")
    try:
        for i in range(3):
            await storage.put_peer(record(f"p{i}"))
            await storage.join(f"s{i}", f"p{i}", PeerMode.LEECH)
        # As an earlier release left them: swarms without the index, and one it removed
        # from the swarms without taking it out of the index.
        await storage._redis.delete(storage._p + "swarmindex")
        assert await _ids(storage) == ["s0", "s1", "s2"]
        await storage._redis.zadd(storage._p + "swarmindex", {"gone": 0})
        assert await _ids(storage) == ["s0", "s1", "s2"]
    finally:
        await storage.close()
