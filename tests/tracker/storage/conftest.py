"""The storage tests run on every backend: memory, one Redis, and a Redis Cluster.

The cluster (3 primaries, 3 replicas: :mod:`tracker.storage.redis_cluster`) is started once
for the session.  ``cluster`` keeps every peer in one peer shard and every swarm in one swarm
shard (``shards=1``: two slots, the bounds and counts exact as on one server);
``cluster-sharded`` spreads them over 8 shards of each kind, on every node, where a few
obligations hold per shard only (:data:`PER_SHARD`, docs/PROTOCOL.md "Redis Cluster").
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.storage import MemoryStorage, Storage
from tracker.storage.redis_cluster import RedisCluster, redis_cluster

PER_SHARD = {
    "test_a_host_registers_at_most_its_bound_of_peers": "peers per host: per peer shard",
    "test_a_peer_joins_at_most_its_bound_of_swarms": "swarms in all (4 here): "
    "ceil(total / shards) per shard",
    "test_totals_answer_that_the_tracker_is_full": "totals: ceil(total / shards) per shard",
    "test_counts_return_to_zero_after_churn": "bounds per shard (the zero counts are checked "
    "in test_cluster.py)",
    "test_peers_are_counted_for_their_registering_host": "hosts: counted once per peer shard",
    "test_corrupt_reports_count_once_per_member_host": "hosts: counted once per peer shard",
    "test_maps_past_the_total_are_not_kept": "map bytes in all: ceil(total / shards) per "
    "swarm shard",
}
"""Conformance tests whose exact global bounds or host count hold per shard on a sharded
cluster, with the reason."""


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster for the session (its data: test prefixes, never removed)."""
    with redis_cluster() as started:
        yield started


@pytest.fixture(params=["memory", "redis", "cluster", "cluster-sharded"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    """A fresh, empty storage of each backend (Redis: a unique key prefix per test)."""
    backend: Storage
    prefix = f"test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        backend = MemoryStorage(seed=1)
    elif request.param == "redis":
        backend = RedisStorage(request.getfixturevalue("redis_url"), prefix=prefix)
    else:
        name = request.node.originalname
        if request.param == "cluster-sharded" and name in PER_SHARD:
            pytest.skip(f"per shard on a sharded cluster: {PER_SHARD[name]}")
        url = request.getfixturevalue("cluster").url
        shards = 1 if request.param == "cluster" else 8
        backend = RedisClusterStorage(url, prefix=prefix, shards=shards)
    try:
        yield backend
    finally:
        await backend.close()
