"""The tracker's cost per request in process, by kind, at a given number of registered peers.

    python -m bench.tracker_inprocess [--peers 100000] [--requests 5000] [--encoding xml|json]
                                      [--profile FILE] [--callgrind] [--out FILE]

What one tracker worker does for each request, without sockets or an HTTP layer: the body
decoded by the codec, :meth:`~ppsp.tracker.core.Tracker.handle` on memory storage, the answer
encoded.  ``--peers`` peers are registered first (CONNECT and JOIN, 20 per swarm, the bodies of
:func:`bench.tracker_bench.build_workload`), then ``--requests`` requests of each kind (FIND,
STAT_REPORT, churn: the steps of fresh peers, each a CONNECT, a JOIN and a DISCONNECT) and of
the mixed load (per request 40% FIND, 40% STAT_REPORT, 20% a churn step) are timed, each kind
drawing its peers from the whole registered pool, as ``bench.tracker_compare``'s harness does;
every figure is per request.  (Until December 2026 a churn "request" here was a fresh peer's
three requests, and the mixed load drew a whole churn peer 20% of the time: 1.4 requests per
draw, reported as one.)  This is the figure that separates a tracker of a few
thousand peers (every listed entry kept) from one of 100,000 (almost every entry new).

The garbage collector is set up as the tracker sets it up (:func:`~ppsp.process.tuning.\
tune_garbage_collector` at start, the state frozen once registered, as the tracker's upkeep
does every 50,000 peers), and each phase reports the collections that ran in it: how many,
their total and their longest pause (a pause holds every request waiting on the event loop:
the p99 latency under load).

``--callgrind``: run under ``valgrind --tool=callgrind --instr-atstart=no`` and count
instructions per request of each phase (the timed loops toggle collection on and off around
themselves), a figure that machine load does not move.  ``--profile FILE`` writes a cProfile of
the mixed phase.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.tracker_bench import build_workload
from ppsp.codecs import tracker_json, tracker_xml
from ppsp.codecs.tracker import codec_for
from ppsp.process.tuning import freeze_state, tune_garbage_collector
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.wire.tracker import Encoding


def main(argv: Sequence[str] | None = None) -> int:
    """Run the phases and print (and write) microseconds per request by kind."""
    parser = argparse.ArgumentParser(prog="python -m bench.tracker_inprocess", description=__doc__)
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--encoding", choices=["xml", "json"], default="xml")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile of the mixed phase")
    parser.add_argument("--callgrind", action="store_true", help="instructions under callgrind")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="phases under --callgrind"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--same-port",
        dest="connections",
        action="store_false",
        help="each peer always seen from the same port (default: the next of 50 connections)",
    )
    args = parser.parse_args(argv)
    if args.callgrind:
        return _under_callgrind(args)
    result = asyncio.run(_run(args))
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


KINDS = ("find", "report", "churn", "mixed")


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    encoding = Encoding(args.encoding)
    codec = codec_for(encoding)
    # As the tracker's handler encodes (each JSON value checked as it is written, the output
    # not decoded again).
    encode = (
        tracker_xml.encode_response
        if encoding is Encoding.XML
        else functools.partial(tracker_json.encode_response, check=False)
    )
    work = build_workload(args.peers, 50, encoding)
    storage = MemoryStorage()
    tracker = Tracker(
        storage, TrackerConfig(limits=Limits().off(), track_timeout=3600.0), rng=random.Random(7)
    )
    clock = [1_000.0]
    rng = random.Random(3)
    tune_garbage_collector()
    pauses: list[tuple[int, float]] = []
    started_at = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started_at[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started_at[0]))

    gc.callbacks.append(timed)

    sent = [0]

    async def one(body: bytes, host: int) -> None:
        request = codec.decode_request(body)
        clock[0] += 0.0001
        # Seen from one of 50 connections, the next one each request (as wrk's 50 kept-alive
        # connections of the harness, or a peer that connects anew): its port changes.
        sent[0] += 1
        port = 40_000 + (sent[0] if args.connections else host) % 50
        answer = await tracker.handle(
            request, observed=(f"10.0.{host % 250}.{host % 20 + 1}", port), now=clock[0]
        )
        encode(answer)

    started = time.perf_counter()
    for i, (connect, join) in enumerate(work.setup):
        await one(connect, i)
        await one(join, i)
    setup_s = time.perf_counter() - started
    freeze_state()
    peers = len(work.reports)

    async def finds(n: int) -> None:
        for _ in range(n):
            i = rng.randrange(peers)
            await one(work.finds[i], i)

    async def reports(n: int) -> None:
        for _ in range(n):
            i = rng.randrange(peers)
            await one(work.reports[i], i)

    step = [0]  # churn steps sent: fresh peer step // 3 sends step % 3 (CONNECT, JOIN, LEAVE)

    async def churn(n: int) -> None:
        for _ in range(n):
            k, at = divmod(step[0], 3)
            step[0] += 1
            await one(work.churn[k % len(work.churn)][at], k)

    async def mixed(n: int) -> None:
        # Per request, as the harness's script draws (bench/wrk/ppsp_mixed.lua): 40% FIND,
        # 40% STAT_REPORT, 20% the next step of a fresh peer's CONNECT, JOIN, DISCONNECT.
        for _ in range(n):
            draw = rng.random()
            if draw < 0.4:
                await finds(1)
            elif draw < 0.8:
                await reports(1)
            else:
                await churn(1)

    phases: dict[str, Callable[[int], Any]] = {
        "find": finds,
        "report": reports,
        "churn": churn,
        "mixed": mixed,
    }
    await mixed(2_000)  # warm-up: caches, the first of every code path
    figures: dict[str, float] = {}
    collections: dict[str, dict[str, float]] = {}
    for kind in KINDS if args.phase is None else (args.phase,):
        del pauses[:]
        profiler = cProfile.Profile() if (args.profile is not None and kind == "mixed") else None
        if profiler is not None:
            profiler.enable()
        if args.phase is not None:
            # Instrumented from here (valgrind runs it with --instr-atstart=no: registration
            # runs several times faster uninstrumented).
            _callgrind_control("--instr=on")
            _callgrind_control("--zero")
        t0 = time.perf_counter()
        await phases[kind](args.requests)
        seconds = time.perf_counter() - t0
        if args.phase is not None:
            _callgrind_control("--dump")
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        figures[kind] = round(seconds / args.requests * 1e6, 2)
        collections[kind] = {
            "count": len(pauses),
            "full": sum(1 for generation, _ in pauses if generation == 2),
            "total_ms": round(sum(s for _, s in pauses) * 1e3, 1),
            "longest_ms": round(max((s for _, s in pauses), default=0.0) * 1e3, 1),
        }
    return {
        "what": "microseconds per request in process (decode, Tracker.handle, encode)",
        "peers": args.peers,
        "requests": args.requests,
        "encoding": args.encoding,
        "setup_seconds": round(setup_s, 1),
        "python": platform.python_version(),
        "us_per_request": figures,
        "garbage_collections": collections,
    }


def _callgrind_control(what: str) -> None:
    """Zero or dump this process's callgrind counters (nothing when not under callgrind)."""
    subprocess.run(["callgrind_control", what, str(os.getpid())], check=False, capture_output=True)


def _under_callgrind(args: argparse.Namespace) -> int:
    """Each phase in a process of its own under callgrind (registration not counted)."""
    result: dict[str, Any] = {"what": "instructions per request in process", "peers": args.peers}
    counts: dict[str, float] = {}
    for kind in args.kinds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.%p.out"
            command = [
                "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                sys.executable, "-m", "bench.tracker_inprocess", "--peers", str(args.peers),
                "--requests", str(args.requests), "--encoding", args.encoding, "--phase", kind,
                *([] if args.connections else ["--same-port"]),
            ]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
            dumps = sorted(Path(tmp).glob("cg.*.out.*"))
            totals = [_total(path) for path in dumps]
            # Dump 1 is the phase (zeroed before it); the last is the exit's.
            counts[kind] = round(totals[0] / args.requests) if totals else float("nan")
    result["instructions_per_request"] = counts
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _total(path: Path) -> int:
    """The ``summary:`` (or ``totals:``) instruction count of one callgrind dump."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
