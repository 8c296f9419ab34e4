"""The cost of sharing per-host request rates: one Redis against a Redis Cluster.

    python -m bench.tracker_rates_bench [--hosts 1 10 100 1000] [--exchanges 200] [--out FILE]

Starts a redis-server and a Redis Cluster (3 primaries, 3 replicas: the tests'
:mod:`tracker.storage.redis_cluster`) on loopback, then, in this process, times
:meth:`SharedRates.sync` with ``H`` hosts admitted since the last exchange: the process's CPU
and the wall time per exchange, on one Redis (one script call per 1,000 hosts) and on the
cluster (one script call per rate shard that has hosts, 16 shards), and, for comparison, the
design not taken: one script call per host on the cluster (all sent together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from ppsp.tracker.net.guard import _CLUSTER_SYNC_SCRIPT, HostRates, SharedRates, _Cluster


def _tests_on_path() -> None:
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.append(tests)


async def _time_syncs(url: str, hosts: int, exchanges: int) -> dict[str, float]:
    rates = HostRates(1e6, 1e6)
    share = SharedRates(rates, url, prefix=f"bench:{time.monotonic_ns()}:rate:")
    names = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(hosts)]
    try:
        for name in names:  # a first exchange: connections made, scripts loaded
            rates.admit(name, 0.0)
        await share.sync()
        cpu = wall = 0.0
        for _ in range(exchanges):
            for name in names:
                rates.admit(name, 0.0)
            c0, w0 = time.process_time(), time.perf_counter()
            await share.sync()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
    finally:
        await share.close()
    return {"cpu_us": cpu / exchanges * 1e6, "wall_us": wall / exchanges * 1e6}


async def _time_per_host_calls(url: str, hosts: int, exchanges: int) -> dict[str, float]:
    """The design not taken: one script call per host (its own slot), sent together."""
    from ppsp.tracker.net.redis_cluster_link import Command, slot_of

    store = _Cluster(url, f"bench:{time.monotonic_ns()}:rate:")
    names = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(hosts)]
    prefixes = [f"{store.prefixes[0][:-5]}{{{name}}}" for name in names]
    slots = [slot_of(p) for p in prefixes]
    sha = store._sha

    async def once() -> None:
        await asyncio.gather(
            *(
                store._link.batch(
                    [Command(slot, (sha, prefix, "1e6", "1e6", "", 1), _CLUSTER_SYNC_SCRIPT)]
                )
                for slot, prefix in zip(slots, prefixes, strict=True)
            )
        )

    try:
        await once()
        cpu = wall = 0.0
        for _ in range(exchanges):
            c0, w0 = time.process_time(), time.perf_counter()
            await once()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
    finally:
        await store.close()
    return {"cpu_us": cpu / exchanges * 1e6, "wall_us": wall / exchanges * 1e6}


async def _measure(
    one: str, cluster: str, hosts: list[int], exchanges: int
) -> list[dict[str, Any]]:
    rows = []
    for count in hosts:
        runs = max(5, exchanges * 10 // max(10, count))
        row: dict[str, Any] = {"hosts": count, "exchanges": runs}
        row["one_redis"] = await _time_syncs(one, count, runs)
        row["cluster_rate_shards"] = await _time_syncs(cluster, count, runs)
        row["cluster_call_per_host"] = await _time_per_host_calls(cluster, count, runs)
        for key in ("one_redis", "cluster_rate_shards", "cluster_call_per_host"):
            row[key] = {k: round(v, 1) for k, v in row[key].items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print (and write) the figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_rates_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument(
        "--exchanges", type=int, default=200, help="exchanges timed at 10 hosts (fewer above)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _tests_on_path()
    from tracker.storage.redis_cluster import RedisCluster
    from tracker.storage.redis_server import RedisServer

    server, cluster = RedisServer(), RedisCluster()
    try:
        server.start()
        cluster.start()
        rows = asyncio.run(_measure(server.url, cluster.url, args.hosts, args.exchanges))
    finally:
        cluster.stop()
        server.stop()
    report = {
        "command": " ".join(["python", "-m", "bench.tracker_rates_bench", *(argv or sys.argv[1:])]),
        "rows": rows,
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
