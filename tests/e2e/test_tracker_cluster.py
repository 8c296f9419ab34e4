"""Trackers on a Redis Cluster: two trackers serve one swarm, through the loss of a primary.

Real ``ppsp tracker`` processes on a real cluster of 3 primaries and 3 replicas started for
the test (:mod:`tracker.storage.redis_cluster`), real peers downloading through them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.swarm_helpers import Swarm, content, finish
from e2e.test_tracker_cli import run_tracker_until_exit
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from tracker.storage.redis_cluster import cluster_port, redis_cluster

pytestmark = pytest.mark.e2e

SIZE = 1 << 20  # 16 chunks of 64 KiB


async def download(swarm: Swarm, tmp_path: Path, swarm_id: str, name: str, data: bytes) -> None:
    """A ``ppsp get`` of the swarm through the swarm's current tracker, to completion."""
    out = tmp_path / f"{name}.bin"
    await finish(await swarm.get(swarm_id, out, "--timeout", "30", name=name))
    assert out.read_bytes() == data


async def test_two_trackers_on_a_cluster_serve_one_swarm_and_survive_a_failover(
    tmp_path: Path,
) -> None:
    data = content(SIZE, seed=6)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with redis_cluster() as cluster:
        async with Swarm(tmp_path) as swarm:
            first = await swarm.tracker("--storage", cluster.url, "--host", "127.0.0.2")
            first_url = swarm.tracker_url
            second = await swarm.tracker("--storage", cluster.url, "--host", "127.0.0.3")
            second_url = swarm.tracker_url
            assert "127.0.0.2" in first_url and "127.0.0.3" in second_url

            swarm.tracker_url = first_url
            _, swarm_id = await swarm.seed(source)
            # A leecher of the other tracker learns of the seeder through the cluster.
            swarm.tracker_url = second_url
            await download(swarm, tmp_path, swarm_id, "leecher", data)

            # The primary holding the swarm's slot goes; its replica takes the slot over.
            naming = RedisClusterStorage(cluster.url)
            shard = naming.swarm_shard(swarm_id)
            await naming.close()
            killed = cluster.kill_primary_of(shard)
            await asyncio.to_thread(cluster.wait_failover, killed)
            assert cluster.primary_of(shard) != killed

            # A new leecher (the first one is gone) still finds the seeder and completes.
            await download(swarm, tmp_path, swarm_id, "after", data)
            for tracker in (first, second):
                assert tracker.alive, tracker.output()
                assert not any("Traceback" in line for line in tracker.stderr), tracker.output()


async def test_an_unreachable_cluster_is_a_one_line_error_before_listening() -> None:
    nodes = ",".join(f"127.0.0.1:{cluster_port()}" for _ in range(2))
    code, stdout, stderr = await run_tracker_until_exit(
        "--storage", f"redis+cluster://:hidden@{nodes}", "--log-level", "info"
    )
    assert code == 1, stderr
    assert "listening" not in stdout + stderr
    assert stderr.count("\n") == 1, stderr
    assert ": cannot use the storage redis+cluster://:***@127.0.0.1:" in stderr, stderr
    assert "storage unavailable" in stderr and "hidden" not in stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:port",
        "redis+cluster://127.0.0.1:7000,",
        "redis+cluster://127.0.0.1:7000/3",
        "redis+cluster://127.0.0.1:7000?shards=0",
    ],
)
async def test_a_malformed_cluster_url_is_refused(url: str) -> None:
    code, stdout, stderr = await run_tracker_until_exit("--storage", url)
    assert code == 2, stderr
    assert "invalid storage URL" in stderr
    assert "Traceback" not in stderr and "listening" not in stdout
