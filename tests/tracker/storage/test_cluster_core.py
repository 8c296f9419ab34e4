"""The tracker core's tests, on a Redis Cluster: every request path (the one-step guesses and
the ordinary path) through the cluster storage.

The tests of ``tracker/test_core.py``, ``test_identity.py``, ``test_corrupt_reports.py``,
``test_limits.py`` and ``test_listed_addresses.py`` run here again, on the session's cluster:
``cluster`` (one shard of each kind: the bounds exact) and ``cluster-sharded`` (8 of each, on
every node).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator

import pytest

import tracker.test_core as core_tests
import tracker.test_corrupt_reports as report_tests
import tracker.test_identity as identity_tests
import tracker.test_limits as limit_tests
import tracker.test_listed_addresses as address_tests
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.storage import Storage
from tracker.storage.conftest import PER_SHARD
from tracker.storage.redis_cluster import RedisCluster

SHARDED_ONLY_PER_SHARD = {"tracker.test_limits": "bounds per shard (docs/PROTOCOL.md)"}
"""Modules whose tests count on exact global bounds: run on ``cluster`` only."""

for _module in (core_tests, report_tests, identity_tests, limit_tests, address_tests):
    for _name, _value in inspect.getmembers(_module):
        if _name.startswith("test_") and callable(_value):
            globals()[_name] = _value
    for _name in ("tracker", "closed"):
        if hasattr(_module, _name) and _name not in globals():
            globals()[_name] = getattr(_module, _name)


@pytest.fixture(params=["cluster", "cluster-sharded"])
async def storage(request: pytest.FixtureRequest, cluster: RedisCluster) -> AsyncIterator[Storage]:
    """A fresh cluster storage (a unique key prefix per test)."""
    module = getattr(request.function, "__module__", "")
    reason = SHARDED_ONLY_PER_SHARD.get(module) or PER_SHARD.get(request.node.originalname)
    if request.param == "cluster-sharded" and reason:
        pytest.skip(f"per shard on a sharded cluster: {reason}")
    shards = 1 if request.param == "cluster" else 8
    backend = RedisClusterStorage(cluster.url, prefix=f"test:{uuid.uuid4().hex}:", shards=shards)
    try:
        yield backend
    finally:
        await backend.close()
