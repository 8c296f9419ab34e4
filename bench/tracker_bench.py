"""Tracker benchmark: throughput and latency over loopback HTTP, and memory per membership.

    python -m bench.tracker_bench [--peers N] [--duration S] [--rounds R] [--out FILE]

The tracker runs as a subprocess (``python -m ppsp tracker``, uvloop), and so does a bare aiohttp
endpoint (POST returning a fixed body, the empty success answer of the same encoding, with the
tracker's server settings); the load
generator runs in this process (uvloop, one aiohttp session per server), so each side has a core
of its own on a two-core machine.

1. Setup: ``--peers`` peers register (CONNECT) and JOIN one of ``peers / 20`` swarms (the bare
   endpoint gets the same requests, as a warm-up).
2. Warm-up: ``--warmup`` seconds of the mixed load against each server.
3. Mixed load in ``--rounds`` rounds: each round runs the load against the bare endpoint and
   against the tracker, ``--duration / --rounds`` seconds each, alternating which goes first.
   The load: 40 % STAT_REPORT with a content map, 40 % FIND, 20 % churn (a fresh peer's CONNECT,
   JOIN, DISCONNECT), from ``--concurrency`` simulated peers in flight.  Request bodies are
   encoded before the clock starts, so the client spends its time on HTTP only.  Each round
   gives a paired ratio (tracker req/s over bare req/s, measured seconds apart under the same
   machine load); the reported ratio is the median of the rounds' ratios.
4. Memory per swarm membership at 100,000 memberships, in-process with MemoryStorage, measured
   with tracemalloc through the tracker core (and the storage's own measure for comparison).

CPU seconds of the server process (from /proc) and of the client are reported with each phase,
so that it is visible which side was the bottleneck.  With ``--storage`` on Redis, the Redis
servers' CPU over the run (from /proc, the servers' own ``process_id``) is reported per tracker
request of the run; ``--storage cluster[?shards=N]`` starts a Redis Cluster of its own for the
run (3 primaries, 3 replicas: the tests' :mod:`tracker.storage.redis_cluster`).
``bench.tracker_instructions`` gives the load-independent figure (instructions per request
under callgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ppsp.codecs.tracker import codec_for
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import MemoryStorage, PeerRecord
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
LISTENING = re.compile(r"listening on (https?://\S+)")
MAX_BODY = 64 * 1024


# -- the bare endpoint (run in a subprocess) ----------------------------------------------------


def serve_bare(port: int, body: bytes, content_type: str) -> None:
    """A POST-anything endpoint with the tracker's server settings, answering ``body``."""
    from aiohttp import web

    from ppsp.tracker.net.server import runner_for_tracker

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def main() -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{path:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        host, real_port = runner.addresses[0][:2]
        print(f"bare endpoint listening on http://{host}:{real_port}", flush=True)
        await asyncio.Event().wait()

    with runner_for_tracker() as runner:
        runner.run(main())


# -- helpers ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (Linux /proc).

    The children are the workers of ``ppsp tracker --workers N``; with one process there are
    none.  (A Redis server's CPU is not counted: it is another program.)
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in _process_tree_stats(pid):
        total += int(stat[11]) + int(stat[12])
    return total / ticks


def _process_tree_stats(pid: int) -> list[list[str]]:
    """The /proc stat fields (after the command name) of ``pid`` and of its direct children."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            found.append(fields)
    return found


def _start(args: Sequence[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, match.group(1)


_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def _empty_redis(url: str) -> None:
    """Empty the Redis database (or every primary of the cluster) the benchmarked tracker will
    use (earlier runs' peers)."""
    for client in _redis_clients(url):
        try:
            if url.startswith(_CLUSTER_SCHEMES):
                if "master" in client.info("replication")["role"]:
                    client.flushall()
            else:
                client.flushdb()
        finally:
            client.close()


def _redis_clients(url: str) -> list[Any]:
    """A client of the Redis server of ``url``, or of every node of a ``redis+cluster://``."""
    import redis

    if not url.startswith(_CLUSTER_SCHEMES):
        return [redis.Redis.from_url(url)]
    from ppsp.tracker.net.redis_cluster_link import parse_cluster_url

    parsed = parse_cluster_url(url)
    seed = redis.Redis.from_url(parsed.node_url(*parsed.seeds[0]))
    try:
        nodes = seed.execute_command("CLUSTER NODES")
    finally:
        seed.close()
    if isinstance(nodes, dict):  # redis-py's parsed form: keyed by "host:port"
        addresses = [str(address) for address in nodes]
    else:
        text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
        addresses = [line.split()[1].split("@")[0] for line in text.splitlines()]
    clients = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        clients.append(redis.Redis.from_url(parsed.node_url(host or "127.0.0.1", int(port))))
    return clients


def _storage_pids(url: str) -> dict[str, list[int]]:
    """The process IDs of the Redis servers behind ``url`` that run on this machine: ``all``,
    and the ``primaries`` (a cluster's replicas left out)."""
    pids: dict[str, list[int]] = {"all": [], "primaries": []}
    for client in _redis_clients(url):
        try:
            pid = int(client.info("server")["process_id"])
            primary = client.info("replication")["role"] == "master"
        finally:
            client.close()
        if Path(f"/proc/{pid}").exists():
            pids["all"].append(pid)
            if primary:
                pids["primaries"].append(pid)
    return pids


def _pids_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _storage(storage: str) -> Iterator[str]:
    """The ``--storage`` URL to benchmark: ``storage``, or for ``cluster[?shards=N]`` the URL
    of a Redis Cluster started for the run (the tests' fixture, stopped at the end)."""
    if not storage.startswith("cluster"):
        yield storage
        return
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    from tracker.storage.redis_cluster import RedisCluster

    cluster = RedisCluster()
    try:
        cluster.start()
        query = storage.partition("?")[2]
        yield cluster.url + (f"?{query}" if query else "")
    finally:
        cluster.stop()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# -- workload -----------------------------------------------------------------------------------


def _content_map(swarm_id: str, rng: random.Random) -> ContentMap:
    return ContentMap(
        swarm_id=swarm_id,
        representations=(
            RepresentationMap(
                representation_id="video",
                segments=(
                    SegmentMap(
                        start_index=0,
                        end_index=255,
                        chunkmap_size=256,
                        bitmap=rng.randbytes(32),
                    ),
                ),
            ),
        ),
    )


@dataclass
class Workload:
    """Pre-encoded request bodies: setup pairs, steady-state operations, churn triples."""

    setup: list[tuple[bytes, bytes]]
    reports: list[bytes]
    finds: list[bytes]
    churn: list[tuple[bytes, bytes, bytes]]


def build_workload(peers: int, concurrency: int, encoding: Encoding, seed: int = 1) -> Workload:
    """Encode every body the load generator will send."""
    rng = random.Random(seed)
    codec = codec_for(encoding)
    swarms = max(1, peers // 20)
    setup: list[tuple[bytes, bytes]] = []
    reports: list[bytes] = []
    finds: list[bytes] = []
    for i in range(peers):
        peer = f"bench{i:07d}"
        swarm = f"swarm{i % swarms:05d}"
        mode = PeerMode.SEED if i % 5 == 0 else PeerMode.LEECH
        address = (
            PeerAddress(ip="127.0.0.1", port=10000 + i % 50000, peer_protocol="PPSP-PP/0.1"),
        )
        setup.append(
            (
                codec.encode_request(
                    ConnectRequest(
                        version=V11, transaction_id=f"{i}1", peer_id=peer, peer_addresses=address
                    )
                ),
                codec.encode_request(
                    JoinRequest(
                        version=V11,
                        transaction_id=f"{i}2",
                        peer_id=peer,
                        swarms=(SwarmAction(swarm_id=swarm, peer_mode=mode),),
                    )
                ),
            )
        )
        reports.append(
            codec.encode_request(
                StatReportRequest(
                    version=V11,
                    transaction_id=f"{i}3",
                    peer_id=peer,
                    stream_stats=(
                        StreamStatistics(
                            swarm_id=swarm,
                            uploaded_bytes=rng.randrange(1 << 30),
                            downloaded_bytes=rng.randrange(1 << 30),
                            available_bandwidth=1_000_000,
                        ),
                    ),
                    content_maps=(_content_map(swarm, rng),),
                )
            )
        )
        finds.append(
            codec.encode_request(
                FindRequest(version=V11, transaction_id=f"{i}4", peer_id=peer, swarm_id=swarm)
            )
        )
    churn: list[tuple[bytes, bytes, bytes]] = []
    for w in range(concurrency):
        peer = f"churn{w:05d}"
        swarm = f"swarm{w % swarms:05d}"
        churn.append(
            (
                codec.encode_request(
                    ConnectRequest(version=V11, transaction_id=f"c{w}1", peer_id=peer)
                ),
                codec.encode_request(
                    JoinRequest(
                        version=V11,
                        transaction_id=f"c{w}2",
                        peer_id=peer,
                        swarms=(SwarmAction(swarm_id=swarm, peer_mode=PeerMode.LEECH),),
                    )
                ),
                codec.encode_request(
                    DisconnectRequest(
                        version=V11,
                        transaction_id=f"c{w}3",
                        peer_id=peer,
                        scope=DisconnectScope.SYSTEM,
                    )
                ),
            )
        )
    return Workload(setup=setup, reports=reports, finds=finds, churn=churn)


@dataclass
class PhaseResult:
    """Counts and latencies of one load phase."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The phase's figures, for the JSON report."""
        lat = sorted(self.latencies)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.wall, 3),
            "requests_per_second": round(self.requests / self.wall, 1) if self.wall else 0.0,
            "latency_ms": {
                "p50": round(_percentile(lat, 0.50) * 1000, 3),
                "p90": round(_percentile(lat, 0.90) * 1000, 3),
                "p99": round(_percentile(lat, 0.99) * 1000, 3),
                "max": round(lat[-1] * 1000, 3) if lat else None,
            },
            "server_cpu_seconds": round(self.server_cpu, 3),
            "client_cpu_seconds": round(self.client_cpu, 3),
            "server_cpu_us_per_request": (
                round(self.server_cpu / self.requests * 1e6, 1) if self.requests else None
            ),
            "by_kind": self.by_kind,
        }


class Driver:
    """Sends pre-encoded bodies with one aiohttp session and records latencies.

    ``headers_by_body``, when given, holds the headers of each body (e.g. its peer's bearer
    token, ``bench.tracker_trust_bench``), made before the clock starts.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        encoding: Encoding,
        headers_by_body: dict[bytes, dict[str, str]] | None = None,
    ) -> None:
        self.url = url + "/"
        self.session = session
        self.headers = {"Content-Type": encoding.content_type}
        self.headers_by_body = headers_by_body
        self.codec = codec_for(encoding)
        self.checked: set[str] = set()
        self.check = True

    async def post(self, kind: str, body: bytes, result: PhaseResult) -> None:
        """One request; a non-200 answer counts as an error."""
        by_body = self.headers_by_body
        headers = self.headers if by_body is None else by_body[body]
        started = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            data = await resp.read()
            status = resp.status
        result.latencies.append(time.perf_counter() - started)
        result.requests += 1
        result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
        if status != 200:
            result.errors += 1
        elif self.check and kind not in self.checked:
            # Decode the first answer of each kind: the server answers real PPSP, not just 200.
            self.checked.add(kind)
            answer = self.codec.decode_response(data, status, resp.reason or "")
            if not isinstance(answer, TrackerResponse):
                raise RuntimeError(f"{kind}: {answer}")


async def run_setup(driver: Driver, work: Workload, concurrency: int, pid: int) -> PhaseResult:
    """Register and join every simulated peer."""
    result = PhaseResult()
    queue = list(reversed(work.setup))

    async def worker() -> None:
        while queue:
            connect, join = queue.pop()
            await driver.post("CONNECT", connect, result)
            await driver.post("JOIN", join, result)

    cpu0, scpu0, t0 = time.process_time(), _cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall = time.perf_counter() - t0
    result.client_cpu = time.process_time() - cpu0
    result.server_cpu = _cpu_seconds(pid) - scpu0
    return result


async def run_mixed(
    driver: Driver,
    work: Workload,
    concurrency: int,
    duration: float,
    max_requests: int,
    pid: int,
    seed: int = 2,
) -> PhaseResult:
    """The steady-state mix for ``duration`` seconds or ``max_requests`` requests."""
    result = PhaseResult()
    deadline = time.perf_counter() + duration
    peers = len(work.reports)

    async def worker(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        connect, join, leave = work.churn[w]
        while time.perf_counter() < deadline and result.requests < max_requests:
            draw = rng.random()
            if draw < 0.4:
                await driver.post("STAT_REPORT", work.reports[rng.randrange(peers)], result)
            elif draw < 0.8:
                await driver.post("FIND", work.finds[rng.randrange(peers)], result)
            else:
                await driver.post("CONNECT", connect, result)
                await driver.post("JOIN", join, result)
                await driver.post("DISCONNECT", leave, result)

    cpu0, scpu0, t0 = time.process_time(), _cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.wall = time.perf_counter() - t0
    result.client_cpu = time.process_time() - cpu0
    result.server_cpu = _cpu_seconds(pid) - scpu0
    return result


# -- memory -------------------------------------------------------------------------------------


async def _fill(tracker: Tracker, peers: int, per_peer: int, swarms: int) -> None:
    for i in range(peers):
        peer = f"mem{i:07d}"
        observed = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 40000 + i % 20000)
        await tracker.handle(
            ConnectRequest(
                version=V11,
                transaction_id="1",
                peer_id=peer,
                peer_addresses=(
                    PeerAddress(ip=observed[0], port=7000, peer_protocol="PPSP-PP/0.1"),
                ),
            ),
            observed=observed,
            now=0.0,
        )
        await tracker.handle(
            JoinRequest(
                version=V11,
                transaction_id="2.0",
                peer_id=peer,
                swarms=tuple(
                    SwarmAction(
                        swarm_id=f"swarm{(i * per_peer + k) % swarms:05d}",
                        peer_mode=PeerMode.LEECH,
                        transaction_id=f"2.{k + 1}",
                    )
                    for k in range(per_peer)
                ),
                peer_num=None,
            ),
            observed=observed,
            now=0.0,
        )


def measure_memory(
    memberships: int = 100_000, per_peer: int = 5, swarms: int = 1_000
) -> dict[str, Any]:
    """Bytes per membership through the tracker core, with every peer in ``per_peer`` swarms."""
    peers = memberships // per_peer
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracker = Tracker(
            MemoryStorage(), TrackerConfig(max_peers=20, init_timeout=1e9, track_timeout=1e9)
        )
        asyncio.run(_fill(tracker, peers, per_peer, swarms))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    stats = asyncio.run(tracker.stats())
    result: dict[str, Any] = {
        "memberships": stats.memberships,
        "peers": stats.peers,
        "swarms": stats.swarms,
        "swarms_per_peer": per_peer,
        "bytes_total": after - before,
        "bytes_per_membership": round((after - before) / stats.memberships, 1),
        "bytes_per_peer": round((after - before) / stats.peers, 1),
        "method": "tracemalloc, in-process Tracker + MemoryStorage, via Tracker.handle",
    }
    result["storage_measure_bytes_per_membership_one_swarm_per_peer"] = round(
        measure_membership_bytes(memberships, swarms), 1
    )
    return result


def measure_membership_bytes(memberships: int = 100_000, swarms: int = 1_000) -> float:
    """Bytes of memory per swarm membership, measured with tracemalloc.

    Worst case for the ratio: every peer is in exactly one swarm, so each membership also
    carries a whole peer record with an advertised and a REFLEXIVE address; the storage alone,
    written directly (not through the tracker).
    """

    async def fill(storage: MemoryStorage) -> None:
        for i in range(memberships):
            peer_id = f"{i:012x}"
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            await storage.put_peer(
                PeerRecord(
                    peer_id=peer_id,
                    version=ProtocolVersion.V1_1,
                    state=PeerState.TRACKING,
                    addresses=(
                        PeerAddress(
                            ip=ip,
                            port=7000,
                            family=AddressFamily.IPV4,
                            type=AddressType.HOST,
                            peer_protocol="PPSP-PP/0.1",
                        ),
                        PeerAddress(ip=ip, port=40000 + i % 20000, type=AddressType.REFLEXIVE),
                    ),
                    deadline=1000.0 + i,
                )
            )
            await storage.join(f"swarm-{i % swarms}", peer_id, PeerMode.LEECH)

    def run(storage: MemoryStorage) -> None:
        coro = fill(storage)
        # The memory backend never suspends, so one send() runs the coroutine to completion
        # without an event loop.
        try:
            coro.send(None)
        except StopIteration:
            return
        raise RuntimeError("memory storage suspended unexpectedly")

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storage = MemoryStorage()
        run(storage)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del storage
    return (after - before) / memberships


# -- main ---------------------------------------------------------------------------------------


def tracker_args(storage: str = "memory", workers: int = 1) -> list[str]:
    """Arguments of ``python`` that start the benchmarked tracker (timers out of the way, and
    the per-host limits: every simulated peer comes from 127.0.0.1)."""
    return [
        "-m",
        "ppsp",
        "tracker",
        "--port",
        "0",
        "--log-level",
        "warning",
        "--init-timeout",
        "3600",
        "--track-timeout",
        "3600",
        "--storage",
        storage,
        "--workers",
        str(workers),
        "--limits",
        "off",
    ]


def bare_args(encoding: Encoding) -> list[str]:
    """Arguments of ``python`` that start the bare endpoint answering ``encoding``-size bodies."""
    return ["-m", "bench.tracker_bench", "--serve-bare", "0", "--encoding", encoding.value]


def merge(results: Sequence[PhaseResult]) -> PhaseResult:
    """One result covering several phases against the same server."""
    total = PhaseResult()
    for result in results:
        total.requests += result.requests
        total.errors += result.errors
        total.latencies.extend(result.latencies)
        total.wall += result.wall
        total.client_cpu += result.client_cpu
        total.server_cpu += result.server_cpu
        for kind, count in result.by_kind.items():
            total.by_kind[kind] = total.by_kind.get(kind, 0) + count
    return total


@dataclass
class Target:
    """One server under load: its driver and process id."""

    name: str
    driver: Driver
    pid: int


def _rps(result: PhaseResult) -> float:
    return result.requests / result.wall if result.wall else 0.0


def _cpu_us(result: PhaseResult) -> float:
    return result.server_cpu / result.requests * 1e6 if result.requests else float("nan")


async def interleaved(
    tracker: Target, bare: Target, work: Workload, args: argparse.Namespace
) -> dict[str, Any]:
    """Setup, warm-up, then rounds of bare and tracker load in alternating order."""
    out: dict[str, Any] = {"tracker": {}, "bare_aiohttp": {}}
    for target in (tracker, bare):
        setup = await run_setup(target.driver, work, args.concurrency, target.pid)
        out[target.name]["setup"] = setup.summary()
    round_seconds = args.duration / args.rounds
    if args.warmup > 0:
        for target in (bare, tracker):
            warm = await run_mixed(
                target.driver, work, args.concurrency, args.warmup, args.max_requests, target.pid
            )
            out[target.name]["warmup"] = warm.summary()
    phases: dict[str, list[PhaseResult]] = {"tracker": [], "bare_aiohttp": []}
    rounds: list[dict[str, Any]] = []
    # The Redis servers' CPU during the tracker's rounds (``_run`` names their processes).
    storage_pids: dict[str, list[int]] = getattr(args, "storage_pids", {})
    storage_cpu = dict.fromkeys(storage_pids, 0.0)
    for index in range(args.rounds):
        order = (bare, tracker) if index % 2 == 0 else (tracker, bare)
        got: dict[str, PhaseResult] = {}
        for target in order:
            before = {role: _pids_cpu_seconds(p) for role, p in storage_pids.items()}
            got[target.name] = await run_mixed(
                target.driver,
                work,
                args.concurrency,
                round_seconds,
                args.max_requests,
                target.pid,
                seed=3 + index,
            )
            phases[target.name].append(got[target.name])
            if target is tracker:
                for role, p in storage_pids.items():
                    storage_cpu[role] += _pids_cpu_seconds(p) - before[role]
        t, b = got["tracker"], got["bare_aiohttp"]
        rounds.append(
            {
                "round": index + 1,
                "order": [target.name for target in order],
                "tracker_rps": round(_rps(t), 1),
                "bare_rps": round(_rps(b), 1),
                "ratio": round(_rps(t) / _rps(b), 3) if _rps(b) else None,
                "tracker_server_cpu_us_per_request": round(_cpu_us(t), 1),
                "bare_server_cpu_us_per_request": round(_cpu_us(b), 1),
                "cpu_ratio": round(_cpu_us(t) / _cpu_us(b), 3),
                "tracker_errors": t.errors,
                "bare_errors": b.errors,
            }
        )
    for name, results in phases.items():
        out[name]["mixed"] = merge(results).summary()
    served = out["tracker"]["mixed"]["requests"]
    if storage_pids and served:
        out["tracker"]["mixed"]["storage_cpu_us_per_request"] = {
            role: round(seconds / served * 1e6, 1) for role, seconds in storage_cpu.items()
        }
    out["rounds"] = rounds
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peers", type=int, default=5000, help="simulated peers (setup phase)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of mixed load per server, all rounds"
    )
    parser.add_argument("--rounds", type=int, default=5, help="bare/tracker rounds (paired)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument(
        "--max-requests", type=int, default=1_000_000, help="cap on mixed requests per phase"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--encoding", choices=["xml", "json"], default="xml")
    parser.add_argument("--memberships", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--storage",
        default="memory",
        help="the tracker's --storage: memory, a redis:// URL whose database is emptied first, "
        "a redis+cluster:// URL whose primaries are emptied first, or cluster[?shards=N]: a "
        "Redis Cluster of 3 primaries and 3 replicas started for the run",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the tracker's --workers (needs a Redis --storage)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    encoding = Encoding(args.encoding)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, bare_body(encoding), encoding.content_type)
        return 0

    work = build_workload(args.peers, args.concurrency, encoding)
    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.tracker_bench", *(argv or sys.argv[1:])]
        ),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "workload": {
            "peers": args.peers,
            "swarms": max(1, args.peers // 20),
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "round_s": args.duration / args.rounds,
            "warmup_s": args.warmup,
            "encoding": args.encoding,
            "storage": (
                "memory"
                if args.storage == "memory"
                else "redis-cluster"
                if "cluster" in args.storage
                else "redis"
            ),
            "storage_url": args.storage,
            "tracker_workers": args.workers,
            "mix": "40% STAT_REPORT (256-chunk content map), 40% FIND, 20% churn "
            "(CONNECT + JOIN + DISCONNECT of a fresh peer)",
        },
    }

    with _storage(args.storage) as storage:
        _run(report, storage, work, args, encoding)
    if "storage_cpu_seconds" in report:
        tracker = report["tracker"]
        served = sum(tracker[phase]["requests"] for phase in ("setup", "warmup", "mixed")
                     if phase in tracker)  # fmt: skip
        report["storage_cpu_us_per_tracker_request"] = round(
            report["storage_cpu_seconds"] / served * 1e6, 1
        )

    ratios = sorted(r["ratio"] for r in report["rounds"] if r["ratio"] is not None)
    cpu_ratios = sorted(r["cpu_ratio"] for r in report["rounds"])
    t_mixed, b_mixed = report["tracker"]["mixed"], report["bare_aiohttp"]["mixed"]
    report["ratio"] = {
        "throughput_tracker_over_bare": round(statistics.median(ratios), 3) if ratios else None,
        "throughput_ratio_min": ratios[0] if ratios else None,
        "throughput_ratio_max": ratios[-1] if ratios else None,
        "throughput_ratio_per_round": [r["ratio"] for r in report["rounds"]],
        "server_cpu_per_request_tracker_over_bare": round(statistics.median(cpu_ratios), 3),
        "all_rounds_throughput_tracker_over_bare": (
            round(t_mixed["requests_per_second"] / b_mixed["requests_per_second"], 3)
            if b_mixed["requests_per_second"]
            else None
        ),
        "method": "median over rounds of tracker req/s / bare req/s, each pair measured "
        "back to back in alternating order",
    }
    if not args.skip_memory:
        report["memory"] = measure_memory(args.memberships)

    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    errors = report["tracker"]["setup"]["errors"] + report["tracker"]["mixed"]["errors"]
    return 1 if errors else 0


def _run(
    report: dict[str, Any],
    storage: str,
    work: Workload,
    args: argparse.Namespace,
    encoding: Encoding,
) -> None:
    """Start the tracker on ``storage`` and the bare endpoint, run the rounds into ``report``
    (with the Redis servers' CPU over the run when the storage is Redis)."""
    pids: list[int] = []
    if storage != "memory":
        _empty_redis(storage)
        args.storage_pids = _storage_pids(storage)
        pids = args.storage_pids["all"]
    storage_cpu = _pids_cpu_seconds(pids)
    tracker_proc, tracker_url = _start(tracker_args(storage, args.workers))
    try:
        bare_proc, bare_url = _start(bare_args(encoding))
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                report.update(
                    runner.run(
                        _run_interleaved(
                            (tracker_url, tracker_proc.pid),
                            (bare_url, bare_proc.pid),
                            work,
                            args,
                        )
                    )
                )
        finally:
            _stop(bare_proc)
    finally:
        _stop(tracker_proc)

    if pids:
        report["storage_cpu_seconds"] = round(_pids_cpu_seconds(pids) - storage_cpu, 3)
        report["storage_processes"] = len(pids)


def bare_body(encoding: Encoding) -> bytes:
    """The fixed answer of the bare endpoint: an empty success answer in ``encoding``."""
    return codec_for(encoding).encode_response(TrackerResponse(version=V11, transaction_id="1"))


async def _run_interleaved(
    tracker: tuple[str, int], bare: tuple[str, int], work: Workload, args: argparse.Namespace
) -> dict[str, Any]:
    encoding = Encoding(args.encoding)
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
        )
        for _ in range(2)
    ]
    try:
        tracker_driver = Driver(tracker[0], sessions[0], encoding)
        bare_driver = Driver(bare[0], sessions[1], encoding)
        bare_driver.check = False  # the bare endpoint answers one fixed body
        return await interleaved(
            Target("tracker", tracker_driver, tracker[1]),
            Target("bare_aiohttp", bare_driver, bare[1]),
            work,
            args,
        )
    finally:
        for session in sessions:
            await session.close()


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
