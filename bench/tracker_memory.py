"""Memory per registered peer of the tracker: in process and from outside (RSS over HTTP).

    python -m bench.tracker_memory [--peers 100000 1000000] [--swarm-size 100]
                                   [--mode storage tracker http] [--encoding xml|json]
                                   [--trace N] [--out docs/benchmarks/tracker-memory.json]

Every peer registers once with one membership: a fast CONNECT (CONNECT carrying a JOIN action)
advertising one address of its own (``10.x.y.z:7000``, peer protocol ``PPSP-PP/0.1``), PeerIDs
of 16 hex digits as ``ppsp`` peers make them, ``--swarm-size`` peers per swarm, so that each
answer lists up to 20 peers once the swarm has that many.  Three figures, each the growth of the
resident set (``VmRSS`` of ``/proc``) over the registrations divided by the peers:

- ``storage``: in this process, ``MemoryStorage.update`` with the record the tracker writes
  (advertised address plus the REFLEXIVE one, counted for its host): the storage alone;
- ``tracker``: in this process, ``Tracker.handle`` of each fast CONNECT, its answer encoded by
  the codec as the HTTP layer does (the peer-list entries and their encoded forms the tracker
  keeps are counted);
- ``http``: a real tracker process (``python -m ppsp tracker --limits off``, timers out of the
  way), measured from outside: its ``VmRSS`` before and after the registrations, sent over
  loopback HTTP/1.1 by 32 keep-alive connections from this process; then (``--finds``, 1 by
  default) every peer sends FINDs of its swarm and the growth is taken again: each later
  request writes a new record of the peer, which must not cost a second copy of it.

``--trace N`` adds, for the in-process modes, tracemalloc's top ``N`` allocation sites (by file
and line) of the registrations, at the first ``--peers`` size (tracemalloc's own cost excluded
from the RSS figures: it runs in a separate pass).  Each in-process size runs in a fresh
subprocess, so that one measure's freed memory is not reused by the next.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from ppsp.codecs.tracker import codec_for
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import MemoryStorage
from ppsp.tracker.storage.base import PeerRecord
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    Encoding,
    FindRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
LISTENING = re.compile(r"listening on (https?://\S+)")
CONNECTIONS = 32
"""Keep-alive connections of the HTTP loader."""


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set size of a process (``VmRSS`` of ``/proc/PID/status``), in bytes."""
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc")


def peer_id(i: int) -> str:
    """The PeerID of simulated peer ``i``: 16 hex digits, as ``ppsp`` peers make them."""
    return f"{i:016x}"


def advertised_ip(i: int) -> str:
    """The address simulated peer ``i`` advertises (and, in process, is seen at)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def swarm_of(i: int, swarm_size: int) -> str:
    """The swarm simulated peer ``i`` joins."""
    return f"swarm{i // swarm_size:07d}"


def connect_request(i: int, swarm_size: int) -> ConnectRequest:
    """Simulated peer ``i``'s fast CONNECT: its address and one JOIN action."""
    return ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id=peer_id(i),
        peer_addresses=(PeerAddress(ip=advertised_ip(i), port=7000, peer_protocol="PPSP-PP/0.1"),),
        swarm_actions=(
            SwarmAction(
                swarm_id=swarm_of(i, swarm_size),
                action=SwarmActionType.JOIN,
                peer_mode=PeerMode.LEECH,
            ),
        ),
    )


# -- in process ---------------------------------------------------------------------------------


async def _fill_storage(storage: MemoryStorage, peers: int, swarm_size: int) -> None:
    for i in range(peers):
        ip = advertised_ip(i)
        record = PeerRecord(
            peer_id=peer_id(i),
            version=V11,
            state=PeerState.TRACKING,
            addresses=(
                PeerAddress(ip=ip, port=7000, peer_protocol="PPSP-PP/0.1"),
                PeerAddress(ip=ip, port=40000 + i % 20000, type=AddressType.REFLEXIVE),
            ),
            deadline=3600.0 + i * 1e-3,
            host=ip,
        )
        await storage.update(record, join=((swarm_of(i, swarm_size), PeerMode.LEECH),))


async def _fill_tracker(tracker: Tracker, peers: int, swarm_size: int, encoding: Encoding) -> None:
    codec = codec_for(encoding)
    for i in range(peers):
        answer = await tracker.handle(
            connect_request(i, swarm_size),
            observed=(advertised_ip(i), 40000 + i % 20000),
            now=i * 1e-3,
        )
        assert isinstance(answer, TrackerResponse)
        codec.encode_response(answer)


def _run(coro: Any) -> None:
    """Run a coroutine that never suspends (the memory backend's) without an event loop."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the coroutine suspended")


def measure_in_process(
    mode: str, peers: int, swarm_size: int, encoding: Encoding, trace: int = 0
) -> dict[str, Any]:
    """RSS growth per peer of ``peers`` registrations in this process (``storage``/``tracker``).

    With ``trace``, tracemalloc runs instead and the top ``trace`` sites are returned.
    """
    gc.collect()
    if trace:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if trace else rss_bytes()
    started = time.perf_counter()
    keep: object
    if mode == "storage":
        storage = keep = MemoryStorage(seed=1)
        _run(_fill_storage(storage, peers, swarm_size))
    else:
        tracker = keep = Tracker(
            MemoryStorage(seed=1), TrackerConfig(init_timeout=1e9, track_timeout=1e9)
        )
        _run(_fill_tracker(tracker, peers, swarm_size, encoding))
    seconds = time.perf_counter() - started
    gc.collect()
    result: dict[str, Any] = {"mode": mode, "peers": peers, "swarm_size": swarm_size}
    if trace:
        snapshot = tracemalloc.take_snapshot()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        result["traced_bytes_per_peer"] = round(grown / peers, 1)
        result["sites"] = [
            {"site": str(stat.traceback[0]), "bytes_per_peer": round(stat.size / peers, 1)}
            for stat in snapshot.statistics("lineno")[:trace]
        ]
    else:
        grown = rss_bytes() - before
        result["rss_bytes_per_peer"] = round(grown / peers, 1)
        result["seconds"] = round(seconds, 2)
    del keep
    return result


def _in_subprocess(
    mode: str, peers: int, swarm_size: int, encoding: Encoding, trace: int
) -> dict[str, Any]:
    """:func:`measure_in_process` in a fresh interpreter (a clean heap for each measure)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tracker_memory",
            "--one",
            mode,
            "--peers",
            str(peers),
            "--swarm-size",
            str(swarm_size),
            "--encoding",
            encoding.value,
            "--trace",
            str(trace),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- over HTTP, from outside --------------------------------------------------------------------


async def _post_all(url: str, bodies: list[bytes], content_type: str) -> int:
    """POST every body over :data:`CONNECTIONS` keep-alive connections; the non-200 count."""
    match = re.match(r"http://([^:/]+):(\d+)", url)
    assert match is not None
    host, port = match.group(1), int(match.group(2))
    bodies = list(reversed(bodies))
    failures = reconnects = 0

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(
            b"POST / HTTP/1.1\r\nHost: tracker\r\nContent-Type: "
            + content_type.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert length is not None, head
        await reader.readexactly(int(length.group(1)))
        return head.startswith(b"HTTP/1.1 200")

    async def worker() -> None:
        nonlocal failures, reconnects
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while bodies:
                body = bodies.pop()
                try:
                    ok = await send(reader, writer, body)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # The server closed the connection (e.g. during a long pause of its
                    # own): a new one, and the request once more.
                    reconnects += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    ok = await send(reader, writer, body)
                failures += not ok
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    if reconnects:
        print(f"reconnected {reconnects} time(s)", file=sys.stderr)
    return failures


def measure_http(peers: int, swarm_size: int, encoding: Encoding, finds: int = 0) -> dict[str, Any]:
    """RSS growth per peer of a real tracker process registering ``peers`` over HTTP.

    With ``finds``, every peer then sends that many FINDs of its swarm (each a new record of
    the peer, as any later request writes) and the growth is taken again.
    """
    codec = codec_for(encoding)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ppsp",
            "tracker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--init-timeout",
            "36000",
            "--track-timeout",
            "36000",
            "--limits",
            "off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = LISTENING.search(proc.stdout.readline())
        if match is None:
            raise RuntimeError("the tracker did not start")
        url = match.group(1)
        # One warm-up registration (imports, first-use caches), then the baseline.
        warm = [codec.encode_request(connect_request(peers + 10_000_000, swarm_size))]
        asyncio.run(_post_all(url, warm, encoding.content_type))
        time.sleep(0.5)
        before = rss_bytes(proc.pid)
        failures = 0
        started = time.perf_counter()
        batch = 50_000
        for first in range(0, peers, batch):
            bodies = [
                codec.encode_request(connect_request(i, swarm_size))
                for i in range(first, min(peers, first + batch))
            ]
            failures += asyncio.run(_post_all(url, bodies, encoding.content_type))
        seconds = time.perf_counter() - started
        time.sleep(0.5)
        after = rss_bytes(proc.pid)
        for _ in range(finds):
            for first in range(0, peers, batch):
                bodies = [
                    codec.encode_request(
                        FindRequest(
                            version=V11,
                            transaction_id="2",
                            peer_id=peer_id(i),
                            swarm_id=swarm_of(i, swarm_size),
                        )
                    )
                    for i in range(first, min(peers, first + batch))
                ]
                failures += asyncio.run(_post_all(url, bodies, encoding.content_type))
        time.sleep(0.5)
        after_finds = rss_bytes(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "mode": "http",
        "peers": peers,
        "swarm_size": swarm_size,
        "encoding": encoding.value,
        "failures": failures,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "rss_bytes_per_peer": round((after - before) / peers, 1),
        "seconds": round(seconds, 1),
        "finds_per_peer": finds,
        "rss_bytes_per_peer_after_finds": round((after_finds - before) / peers, 1),
    }


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure, print a line per figure, and write the JSON report when ``--out`` is given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--swarm-size", type=int, default=100)
    parser.add_argument(
        "--mode", nargs="+", choices=("storage", "tracker", "http"), default=["storage", "tracker"]
    )
    parser.add_argument("--encoding", choices=("xml", "json"), default="xml")
    parser.add_argument("--trace", type=int, default=0)
    parser.add_argument(
        "--finds", type=int, default=1, help="FINDs per peer after registering (http mode)"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", choices=("storage", "tracker"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    encoding = Encoding(args.encoding)
    if args.one:
        result = measure_in_process(args.one, args.peers[0], args.swarm_size, encoding, args.trace)
        print(json.dumps(result))
        return 0
    results: list[dict[str, Any]] = []
    for mode in args.mode:
        for at, peers in enumerate(args.peers):
            if mode == "http":
                result = measure_http(peers, args.swarm_size, encoding, args.finds)
            else:
                result = _in_subprocess(mode, peers, args.swarm_size, encoding, 0)
            results.append(result)
            line = f"{mode:>8} {peers:>9,} peers: {result['rss_bytes_per_peer']:7.1f} B per peer"
            if "rss_bytes_per_peer_after_finds" in result:
                line += f", {result['rss_bytes_per_peer_after_finds']:.1f} after FINDs"
            print(line)
            if args.trace and at == 0 and mode != "http":
                traced = _in_subprocess(mode, peers, args.swarm_size, encoding, args.trace)
                results.append(traced)
                print(f"{'':>8} traced: {traced['traced_bytes_per_peer']:.1f} B per peer")
                for site in traced["sites"]:
                    print(f"{'':>10} {site['bytes_per_peer']:7.1f}  {site['site']}")
    if args.out is not None:
        report = {
            "benchmark": "tracker_memory",
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "revision": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            "results": results,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
