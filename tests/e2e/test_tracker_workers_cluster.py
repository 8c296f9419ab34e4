"""Several tracker workers on one port, sharing a Redis Cluster (``--workers 2``).

Real ``ppsp tracker`` processes on a real cluster of 3 primaries and 3 replicas started for
the module (:mod:`tracker.storage.redis_cluster`): a seeder and a leecher meet through the
workers, and one host's request rate is shared by both workers through the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import Swarm, content, finish
from e2e.test_tracker_workers import metrics_dirs, wait_for_children, workers_with_limits
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.tracker import ConnectRequest, Encoding, ProtocolVersion
from tracker.storage.redis_cluster import RedisCluster, redis_cluster

pytestmark = pytest.mark.e2e

SIZE = 1 << 20  # 16 chunks of 64 KiB


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """One cluster for the module's tests (each tracker's keys: the default prefix, so each
    test starts from an emptied cluster)."""
    with redis_cluster() as started:
        yield started


@pytest.fixture
async def swarm(tmp_path: Path, cluster: RedisCluster) -> AsyncIterator[Swarm]:
    for port in cluster.ports:  # replicas refuse FLUSHALL: their primaries' flush reaches them
        cluster.cli(port, "flushall")
    async with Swarm(tmp_path) as running:
        yield running


async def test_two_workers_on_a_cluster_serve_a_seeder_and_a_leecher(
    swarm: Swarm, tmp_path: Path, cluster: RedisCluster
) -> None:
    data = content(SIZE, seed=8)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    tracker = await swarm.tracker("--workers", "2", "--storage", cluster.url)
    assert "2 workers" in tracker.output()
    await wait_for_children(tracker.pid, 2)
    _, swarm_id = await swarm.seed(source)
    out = tmp_path / "leecher.bin"
    await finish(await swarm.get(swarm_id, out, "--timeout", "30", name="leecher"))
    assert out.read_bytes() == data
    status = await swarm.status()
    assert status["swarms"] == 1
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()


async def test_a_hosts_request_rate_holds_across_workers_on_a_cluster(
    swarm: Swarm, cluster: RedisCluster
) -> None:
    """One host floods on new connections spread over two workers (10/s, burst 10): what it
    gets through stays near one bucket, not two, and both workers refuse it."""
    tracker = await workers_with_limits(swarm, cluster.url)
    workers = await wait_for_children(tracker.pid, 2)
    url = swarm.tracker_url
    body = xml_codec.encode_request(
        ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id="x")
    )
    headers = {"Content-Type": Encoding.XML.content_type}
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        loop = asyncio.get_running_loop()
        started = loop.time()
        end = started + 3.0

        async def flood() -> None:
            while loop.time() < end:
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses.append(resp.status)
                except aiohttp.ClientConnectionError:
                    statuses.append(0)  # a connection over the bound, closed at once

        await asyncio.gather(*(flood() for _ in range(4)))
        elapsed = loop.time() - started
    admitted = statuses.count(200) + statuses.count(403)  # 403: the same PeerID, admitted
    assert statuses.count(503) > 50, statuses
    # Alone, each worker would admit 10 + 10 per second: about 80 in all.
    allowed = 10 + 10 * elapsed
    assert admitted <= allowed + 15, (admitted, allowed, len(statuses))

    # Each worker's own counters (``PID.json``, written within a second): both refused it.
    refused: dict[int, float] = {}
    for _ in range(100):
        for pid in workers:
            for path in metrics_dirs():
                with contextlib.suppress(OSError, ValueError):
                    held = json.loads((path / f"{pid}.json").read_bytes())
                    refused[pid] = held["refusals"]["rate_limited"]
        if len(refused) == 2 and all(refused.values()):
            break
        await asyncio.sleep(0.1)
    assert len(refused) == 2 and all(refused.values()), refused
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()
