"""Tracker benchmark: throughput and latency over loopback HTTP, and memory per membership.

    python -m bench.tracker_bench [--peers N] [--duration S] [--out docs/benchmarks/tracker.json]

The tracker runs as a subprocess (``python -m ppsp tracker``, uvloop), the load generator in this
process (uvloop, one aiohttp session), so each side has a core of its own on a two-core machine.

1. Setup: ``--peers`` peers register (CONNECT) and JOIN one of ``peers / 20`` swarms.
2. Mixed load for ``--duration`` seconds (and at most ``--max-requests``): 40 % STAT_REPORT with a
   content map, 40 % FIND, 20 % churn (a fresh peer's CONNECT, JOIN, DISCONNECT), from
   ``--concurrency`` simulated peers in flight.  Request bodies are encoded before the clock
   starts, so the client spends its time on HTTP only.
3. The same load against a bare aiohttp endpoint (POST returning a fixed body, same server
   settings, same client): the ceiling the tracker is compared with.
4. Memory per swarm membership at 100,000 memberships, in-process with MemoryStorage, measured
   with tracemalloc through the tracker core (and the storage's own measure for comparison).

CPU seconds of the server process (from /proc) and of the client are reported with each phase,
so that it is visible which side was the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ppsp.tracker.codec import codec_for
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.messages import (
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
from ppsp.tracker.storage import MemoryStorage

V11 = ProtocolVersion.V1_1
LISTENING = re.compile(r"listening on (http://\S+)")
MAX_BODY = 64 * 1024


# -- the bare endpoint (run in a subprocess) ----------------------------------------------------


def serve_bare(port: int, body: bytes, content_type: str) -> None:
    """A POST-anything endpoint with the tracker's server settings, answering ``body``."""
    from aiohttp import web

    from ppsp.tracker.server import _runner

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

    with _runner() as runner:
        runner.run(main())


# -- helpers ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


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
    """Sends pre-encoded bodies with one aiohttp session and records latencies."""

    def __init__(self, url: str, session: aiohttp.ClientSession, encoding: Encoding) -> None:
        self.url = url + "/"
        self.session = session
        self.headers = {"Content-Type": encoding.content_type}
        self.codec = codec_for(encoding)
        self.checked: set[str] = set()
        self.check = True

    async def post(self, kind: str, body: bytes, result: PhaseResult) -> None:
        """One request; a non-200 answer counts as an error."""
        started = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
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
    try:
        from ppsp.tracker.storage.memory import measure_membership_bytes
    except ImportError:
        return result
    result["storage_measure_bytes_per_membership_one_swarm_per_peer"] = round(
        measure_membership_bytes(memberships, swarms), 1
    )
    return result


# -- main ---------------------------------------------------------------------------------------


async def load(
    url: str, pid: int, work: Workload, args: argparse.Namespace, setup: bool
) -> dict[str, Any]:
    """Run the setup (optionally) and mixed phases against one server."""
    encoding = Encoding(args.encoding)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        driver = Driver(url, session, encoding)
        driver.check = setup  # the bare endpoint answers one fixed body
        result = await run_setup(driver, work, args.concurrency, pid)
        out["setup"] = result.summary()
        mixed = await run_mixed(
            driver, work, args.concurrency, args.duration, args.max_requests, pid
        )
        out["mixed"] = mixed.summary()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peers", type=int, default=5000, help="simulated peers (setup phase)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of mixed load")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap on mixed requests")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--encoding", choices=["xml", "json"], default="xml")
    parser.add_argument("--memberships", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    encoding = Encoding(args.encoding)
    if args.serve_bare is not None:
        body = codec_for(encoding).encode_response(TrackerResponse(version=V11, transaction_id="1"))
        serve_bare(args.serve_bare, body, encoding.content_type)
        return 0

    work = build_workload(args.peers, args.concurrency, encoding)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)

    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.tracker_bench", *(argv or sys.argv[1:])]
        ),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "workload": {
            "peers": args.peers,
            "swarms": max(1, args.peers // 20),
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "encoding": args.encoding,
            "mix": "40% STAT_REPORT (256-chunk content map), 40% FIND, 20% churn "
            "(CONNECT + JOIN + DISCONNECT of a fresh peer)",
        },
    }

    tracker_proc, tracker_url = _start(
        [
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
        ]
    )
    try:
        with runner:
            report["tracker"] = runner.run(load(tracker_url, tracker_proc.pid, work, args, True))
    finally:
        _stop(tracker_proc)

    bare_proc, bare_url = _start(
        ["-m", "bench.tracker_bench", "--serve-bare", "0", "--encoding", args.encoding]
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner2:
            report["bare_aiohttp"] = runner2.run(load(bare_url, bare_proc.pid, work, args, False))
    finally:
        _stop(bare_proc)

    t_rps = report["tracker"]["mixed"]["requests_per_second"]
    b_rps = report["bare_aiohttp"]["mixed"]["requests_per_second"]
    t_cpu = report["tracker"]["mixed"]["server_cpu_us_per_request"]
    b_cpu = report["bare_aiohttp"]["mixed"]["server_cpu_us_per_request"]
    report["ratio"] = {
        "throughput_tracker_over_bare": round(t_rps / b_rps, 3) if b_rps else None,
        "server_cpu_per_request_tracker_over_bare": round(t_cpu / b_cpu, 3) if b_cpu else None,
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


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
