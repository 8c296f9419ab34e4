"""What the Redis Cluster storage adds to the conformance suite: its URL, its shards spread
over the nodes, a failover followed without a restart, one-line errors, its layout check."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import pytest

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.net.redis_cluster_link import parse_cluster_url
from ppsp.tracker.storage import StorageCounts
from ppsp.wire.tracker import PeerMode
from tracker.storage.redis_cluster import RedisCluster, cluster_port, redis_cluster
from tracker.storage.test_conformance import hosted, record


def test_cluster_urls_name_their_seeds_options_and_shards() -> None:
    parsed = parse_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,[2001:db8::1]:7001")
    assert parsed.seeds == (("10.0.0.1", 7000), ("2001:db8::1", 7001))
    assert parsed.shards == 16
    assert parsed.node_url("2001:db8::1", 7001) == "redis://u:p%40ss@[2001:db8::1]:7001/0"
    tls = parse_cluster_url("rediss+cluster://h:1/0?shards=4&ssl_cert_reqs=none")
    assert tls.shards == 4
    assert tls.node_url("h", 1) == "rediss://h:1/0?ssl_cert_reqs=none"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:7000",
        "redis+cluster://",
        "redis+cluster://127.0.0.1",
        "redis+cluster://127.0.0.1:99999",
        "redis+cluster://127.0.0.1:7000/1",
        "redis+cluster://127.0.0.1:7000?shards=many",
        "redis+cluster://127.0.0.1:7000?shards=5000",
    ],
)
def test_malformed_cluster_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_cluster_url(url)


def test_shards_spread_over_every_primary(cluster: RedisCluster) -> None:
    storage = RedisClusterStorage(cluster.url)
    peers = Counter(cluster.primary_of(storage.peer_shard(f"p{i}")) for i in range(200))
    swarms = Counter(cluster.primary_of(storage.swarm_shard(f"s{i}")) for i in range(200))
    assert len(peers) == len(swarms) == 3, (peers, swarms)


async def test_a_sharded_cluster_sums_its_shards_and_returns_to_zero(
    cluster: RedisCluster,
) -> None:
    storage = RedisClusterStorage(cluster.url, prefix=f"test:{uuid.uuid4().hex}:", shards=8)
    rng = random.Random(3)
    try:
        for i in range(40):
            await storage.update(
                hosted(f"p{i}", f"192.0.2.{i % 5}", deadline=float(i)),
                join=[(f"s{j}", PeerMode.LEECH) for j in rng.sample(range(12), 3)],
            )
        counts = await storage.counts()
        assert (counts.peers, counts.memberships) == (40, 120)
        page = await storage.swarm_page(0, 100)
        assert page.total == counts.swarms == len(page.swarm_ids)
        assert list(page.swarm_ids) == sorted(page.swarm_ids)
        assert (await storage.swarm_page(3, 4)).swarm_ids == page.swarm_ids[3:7]
        assert sum([await storage.peers_of_host(f"192.0.2.{h}") for h in range(5)]) == 40
        assert await storage.next_deadline() == 0.0
        expired = await storage.expire(19.0)
        assert sorted(expired) == sorted(f"p{i}" for i in range(20))
        assert await storage.next_deadline() == 20.0
        await storage.expire(1e9)
        assert await storage.counts() == StorageCounts(peers=0, swarms=0, memberships=0)
    finally:
        await storage.close()


async def test_trackers_with_other_shard_counts_are_refused(cluster: RedisCluster) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    first = RedisClusterStorage(cluster.url, prefix=prefix, shards=4)
    second = RedisClusterStorage(cluster.url, prefix=prefix, shards=8)
    try:
        await first.check()
        with pytest.raises(ServiceUnavailable, match="shards=4"):
            await second.check()
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_cluster_fails_its_check_in_one_line() -> None:
    storage = RedisClusterStorage(f"redis+cluster://127.0.0.1:{cluster_port()}")
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await storage.check()
        assert "\n" not in str(raised.value)
        with pytest.raises(ServiceUnavailable):
            await storage.get_peer("p")
    finally:
        await storage.close()


async def test_a_failover_is_followed_and_errors_stay_one_line() -> None:
    """A primary killed: requests touching its slots fail (503, one line) until its replica
    took over, then every shard is served again, with the data written before."""
    with redis_cluster() as own:
        storage = RedisClusterStorage(own.url, shards=8)
        try:
            await storage.check()
            for i in range(30):
                await storage.put_peer(record(f"p{i}"))
                await storage.join("s", f"p{i}", PeerMode.SEED)
            await asyncio.sleep(0.2)  # replicated (asynchronously) to the replicas
            killed = own.primary_of(storage.swarm_shard("s"))
            # A peer whose own shard stays up: deleted while its swarm's shard is down.
            gone = next(
                f"p{i}" for i in range(30) if own.primary_of(storage.peer_shard(f"p{i}")) != killed
            )
            own.kill(killed)
            with pytest.raises(ServiceUnavailable) as raised:
                await storage.members("s")
            assert "\n" not in str(raised.value) and str(raised.value)
            with pytest.raises(ServiceUnavailable):
                await storage.delete_peer(gone)  # the record goes, the membership cannot
            await asyncio.to_thread(own.wait_failover, killed)
            # The next expiry ends the membership left over: no list names the peer.
            await storage.expire(0.0)
            assert {m.peer_id for m in await storage.members("s")} == {
                f"p{i}" for i in range(30)
            } - {gone}
            await storage.put_peer(record(gone))
            await storage.join("s", gone, PeerMode.SEED)
            assert len(await storage.members("s")) == 30
            assert (await storage.counts()).peers == 30
            await storage.put_peer(record("after"))
            assert await storage.get_peer("after") == record("after")
        finally:
            await storage.close()


@pytest.mark.parametrize("shards", [1, 8])
async def test_a_refused_or_wrong_connect_guess_is_undone(
    cluster: RedisCluster, shards: int
) -> None:
    """``register_new`` writes the record and the joins in one step; when the peer's shard
    or a swarm's shard refuses, what the other wrote is undone before it returns."""
    storage = RedisClusterStorage(cluster.url, prefix=f"test:{uuid.uuid4().hex}:", shards=shards)
    limits = Limits(
        peers_per_host=8, swarms_per_peer=8, peers_total=8 * shards, swarms_total=shards,
        memberships_total=100 * shards,
    )  # fmt: skip
    try:
        await storage.update(hosted("old", "192.0.2.1"), join=[("s0", PeerMode.SEED)])
        before = await storage.counts()
        # Registered already: nothing written, the swarm it is not in stays without it.
        again = await storage.register_new(
            hosted("old", "192.0.2.9"), join=[("t", PeerMode.LEECH)], limits=Limits(),
            lists=["t"], limit=None, with_maps=False,
        )  # fmt: skip
        assert again is None
        assert await storage.members("t") == []
        assert await storage.get_peer("old") == hosted("old", "192.0.2.1")
        assert await storage.counts() == before
        # A swarm shard full: the new peer's record, written in the same step, goes again.
        full = [
            f"x{i}" for i in range(40) if storage.swarm_shard(f"x{i}") == storage.swarm_shard("s0")
        ]
        with pytest.raises(ServiceUnavailable, match="full"):
            await storage.register_new(
                hosted("new", "192.0.2.2"), join=[(full[0], PeerMode.LEECH)], limits=limits,
                lists=[full[0]], limit=None, with_maps=False,
            )  # fmt: skip
        assert await storage.get_peer("new") is None
        assert await storage.peers_of_host("192.0.2.2") == 0
        assert await storage.counts() == before
        # Within the bounds: registered, joined, listed, in one step.
        lists = await storage.register_new(
            hosted("new", "192.0.2.2"), join=[("s0", PeerMode.LEECH)], limits=limits,
            lists=["s0"], limit=None, with_maps=False,
        )  # fmt: skip
        assert lists is not None
        assert {m.peer_id for m in lists[0][1]} == {"old", "new"}
    finally:
        await storage.close()
