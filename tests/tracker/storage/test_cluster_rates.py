"""Per-host request rates shared through a Redis Cluster (:class:`SharedRates`, rate shards).

Here rather than beside the guard's other tests because it runs on the storage tests' session
cluster (``conftest.py``: 3 primaries, 3 replicas), started once for all of them.
"""

from __future__ import annotations

import uuid
import zlib

import redis.asyncio as aioredis
from redis.crc import key_slot

from ppsp.tracker.net.guard import HostRates, SharedRates
from tracker.storage.redis_cluster import RedisCluster


def _shares(url: str, prefix: str, count: int) -> tuple[list[HostRates], list[SharedRates]]:
    rates = [HostRates(0.01, 10) for _ in range(count)]
    return rates, [SharedRates(r, url, prefix=prefix, clock=lambda: 0.0) for r in rates]


async def test_processes_on_a_cluster_share_a_hosts_rate(cluster: RedisCluster) -> None:
    """As on one Redis: what one process admitted, the other no longer can."""
    prefix = f"test:{uuid.uuid4().hex}:rate:"
    (first, second), shares = _shares(cluster.url, prefix, 2)
    try:
        host = "198.51.100.7"
        assert all(first.admit(host, 0.0) == 0.0 for _ in range(10))
        await shares[0].sync()
        assert second.admit(host, 0.0) == 0.0  # not heard of yet: admitted locally once
        await shares[1].sync()
        assert second.admit(host, 0.0) > 0  # the shared bucket is empty (overdrawn by one)
        assert second.buckets[host].tokens < 0
        assert first.admit(host, 0.0) > 0
    finally:
        for share in shares:
            await share.close()


async def test_hosts_are_shared_in_their_shards_slots_across_the_primaries(
    cluster: RedisCluster,
) -> None:
    """Many hosts in one exchange: each bucket is in its rate shard's slot (``{r:K}``), the
    shards spread over every primary, and every host's balance comes back."""
    prefix = f"test:{uuid.uuid4().hex}:rate:"
    url = cluster.url + "?shards=8"
    (first, second), shares = _shares(url, prefix, 2)
    hosts = [f"203.0.113.{i}" for i in range(200)]
    try:
        for host in hosts:
            assert all(first.admit(host, 0.0) == 0.0 for _ in range(4))
        await shares[0].sync()
        for host in hosts:
            second.admit(host, 0.0)
        await shares[1].sync()
        # The second learnt each host's balance: 10 - 4 - 1 = 5 (the refill is negligible).
        assert all(4.9 < second.buckets[h].tokens < 5.1 for h in hosts)
        by_shard: dict[str, list[str]] = {}
        for host in hosts:
            by_shard.setdefault(f"{{r:{zlib.crc32(host.encode()) % 8}}}", []).append(host)
        assert len(by_shard) == 8
        primaries = set()
        for shard, members in by_shard.items():
            port = cluster.primary_of(prefix + shard)
            primaries.add(port)
            node = aioredis.Redis(host="127.0.0.1", port=port)
            try:
                for host in members:
                    key = f"{prefix}{shard}{host}"
                    assert key_slot(key.encode()) == key_slot(shard.encode())
                    held = await node.hget(key, "t")  # type: ignore[misc]
                    assert held is not None and 4.9 < float(held) < 5.1
            finally:
                await node.aclose()
        assert len(primaries) == 3
    finally:
        for share in shares:
            await share.close()


async def test_rates_go_on_locally_when_the_cluster_is_away() -> None:
    from tracker.storage.redis_cluster import cluster_port

    rates = HostRates(1.0, 2)
    share = SharedRates(rates, f"redis+cluster://127.0.0.1:{cluster_port()}")
    try:
        rates.admit("h", 0.0)
        await share.sync()
        rates.admit("h", 0.0)
        assert rates.admit("h", 0.0) > 0  # the local bucket still counts
    finally:
        await share.close()
