"""An honest download beside a flooding host: what fair serving at the seeder keeps for it.

    python -m bench.flood_bench [--size-mb 32] [--connections 64] [--upload-rate R] [--out F]
    python -m bench.flood_bench flood --url SEEDER_URL --swarm ID --chunks N --ip 127.0.6.6

The first form starts a tracker and one seeder (127.0.2.2) of a random file, then times one
``ppsp get`` (from 127.0.4.4) twice: undisturbed, and beside a flooding host (127.0.6.6) that
pulls chunks from the seeder over ``--connections`` parallel connections for the whole
download; it writes JSON: each download's time, and beside the flood the bytes each host got
while both were active and the honest host's share of them.  Without ``--upload-rate`` the
seeder is uncapped; with it, capped.  The ``ppsp`` measured is whatever the interpreter
imports: ``PYTHONPATH=OLD_CHECKOUT/src`` measures an earlier release, for before/after figures.

The second form is the flooder alone: ``--connections`` keep-alive connections from ``--ip``,
each asking for chunk after chunk (round the ``--chunks`` of the swarm) as fast as they come,
under a PeerID of its own per connection, for at most ``--seconds`` and ``--requests`` chunks
in all.  It prints ``flood ready`` once a chunk came, then ``flooded BYTES WALL`` (bytes of
chunk bodies received so far, and the Unix time) every 0.05 s, and ``flood done BYTES REFUSED``
at the end.

The honest host's share counts the bytes both hosts got between the honest download's first
and last chunk arrivals (its ``--report``), the flooder's interpolated from its counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

from bench.processes import ROOT, SWARM_ID, drain, line, spawn, start_tracker, stop

SEEDER = "127.0.2.2"
HONEST = "127.0.4.4"
FLOODER = "127.0.6.6"
SEEDING = re.compile(r"^seeding .* in (\d+) chunks of .*, at (http://\S+)$")
FLOODED = re.compile(r"^flooded (\d+) ([0-9.]+)$")

__all__ = ["FLOODED", "ROOT", "SEEDING", "flood", "honest_share", "main"]


def _bytes_at(samples: Sequence[tuple[float, int]], when: float) -> float:
    """The flooder's byte count at Unix time ``when``, interpolated from its samples."""
    if not samples or when <= samples[0][0]:
        return float(samples[0][1]) if samples else 0.0
    for (t0, b0), (t1, b1) in itertools.pairwise(samples):
        if t0 <= when <= t1:
            return b0 + (b1 - b0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return float(samples[-1][1])


def honest_share(report: dict[str, Any], samples: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Bytes each host got while both were active, and the honest host's share of them.

    ``report`` is the honest ``ppsp get``'s ``--report``; ``samples`` the flooder's (Unix
    time, bytes so far).  The window runs from the honest download's first chunk arrival to
    its last; the honest bytes are those that arrived after the first.
    """
    offset = float(report["wall_offset"])
    arrivals = [(float(t) + offset, int(n)) for t, _, n in report["sessions"][0]["arrivals"]]
    if len(arrivals) < 2:
        return {"window_s": 0.0, "honest_bytes": 0, "flood_bytes": 0, "honest_share": None}
    arrivals.sort()
    begin, end = arrivals[0][0], arrivals[-1][0]
    honest = sum(n for _, n in arrivals[1:])
    flood = int(_bytes_at(samples, end) - _bytes_at(samples, begin))
    return {
        "window_s": round(end - begin, 3),
        "honest_bytes": honest,
        "flood_bytes": flood,
        "honest_share": round(honest / (honest + flood), 3) if honest + flood else None,
    }


class _Flood:
    """The flooder's counters."""

    def __init__(self, requests: int) -> None:
        self.received = 0
        self.refused = 0
        self.left = requests
        self.first = asyncio.Event()


async def _pull(
    url: str, swarm: str, chunks: int, ip: str, number: int, state: _Flood, deadline: float
) -> None:
    """One connection's loop: GET chunk after chunk, read each body, until a bound is hit."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    index = number % max(1, chunks)
    while state.left > 0 and time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(ip, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            while state.left > 0 and time.monotonic() < deadline:
                state.left -= 1
                path = f"/swarm/{swarm}/chunk/main/{index}"
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"PPSP-Peer-ID: flood{number}\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                match = re.search(rb"(?i)content-length:\s*(\d+)", head)
                length = int(match.group(1)) if match else 0
                remaining = length
                while remaining:
                    data = await reader.read(min(remaining, 1 << 20))
                    if not data:
                        raise ConnectionError("closed mid-body")
                    remaining -= len(data)
                if status == 200:
                    state.received += length
                    state.first.set()
                else:
                    state.refused += 1
                    if status == 503:
                        await asyncio.sleep(0.05)  # do not spin on refusals
                index = (index + 1) % max(1, chunks)
                if b"close" in head.lower():
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            await asyncio.sleep(0.01)
        finally:
            writer.close()


async def flood(
    url: str, swarm: str, chunks: int, ip: str, connections: int, seconds: float, requests: int
) -> None:
    """Run the flooder (see the module docstring); every loop is bounded in time and count."""
    state = _Flood(requests)
    deadline = time.monotonic() + seconds
    pulls = [
        asyncio.ensure_future(_pull(url, swarm, chunks, ip, number, state, deadline))
        for number in range(connections)
    ]

    async def tell() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await state.first.wait()
        print("flood ready", flush=True)
        while True:
            print(f"flooded {state.received} {time.time():.3f}", flush=True)
            await asyncio.sleep(0.05)

    teller = asyncio.ensure_future(tell())
    await asyncio.gather(*pulls, return_exceptions=True)
    teller.cancel()
    print(f"flooded {state.received} {time.time():.3f}", flush=True)
    print(f"flood done {state.received} {state.refused}", flush=True)


async def _download(
    swarm_id: str, tracker_url: str, output: Path, timeout: float
) -> tuple[float, int | None]:
    """One ``ppsp get`` from HONEST: its time and exit code (None: timed out); its report
    goes beside ``output`` (``.json``)."""
    begin = time.perf_counter()
    get = await spawn(
        "-m", "ppsp", "get", swarm_id, "--tracker", tracker_url, "-o", str(output),
        "--host", HONEST, "--report", str(output.with_suffix(".json")),
    )  # fmt: skip
    try:
        await asyncio.wait_for(get.communicate(), timeout)
        code = get.returncode
    except TimeoutError:
        code = None
        await stop([get])
    return time.perf_counter() - begin, code


async def measure(
    source: Path, workdir: Path, connections: int, upload_rate: str | None, timeout: float
) -> dict[str, Any]:
    """The honest download undisturbed, then beside a flooding host."""
    started: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[None]] = []
    try:
        tracker_url = await start_tracker(started, drains)
        rate = ["--upload-rate", upload_rate] if upload_rate else []
        seeder = await spawn(
            "-m", "ppsp", "seed", str(source), "--tracker", tracker_url, "--host", SEEDER, *rate
        )
        started.append(seeder)
        swarm_id = await line(seeder, SWARM_ID)
        assert seeder.stderr is not None
        seeding = None
        async with asyncio.timeout(30):  # joined: printed once the JOIN succeeded
            while seeding is None:
                seeding = SEEDING.match((await seeder.stderr.readline()).decode().strip())
        drain(seeder, drains)
        chunks, seeder_url = int(seeding.group(1)), seeding.group(2)
        tag = upload_rate or "uncapped"
        alone, alone_code = await _download(
            swarm_id, tracker_url, workdir / f"alone-{tag}.bin", timeout
        )
        flooder = await spawn(
            "-m", "bench.flood_bench", "flood", "--url", seeder_url, "--swarm", swarm_id,
            "--chunks", str(chunks), "--ip", FLOODER, "--connections", str(connections),
            "--seconds", str(timeout + 10),
        )  # fmt: skip
        started.append(flooder)
        await line(flooder, re.compile(r"^flood ready"))
        samples: list[tuple[float, int]] = []

        async def follow() -> None:
            assert flooder.stdout is not None
            while line := (await flooder.stdout.readline()).decode():
                if match := FLOODED.match(line.strip()):
                    samples.append((float(match.group(2)), int(match.group(1))))

        follower = asyncio.ensure_future(follow())
        await asyncio.sleep(0.5)  # the flood under way
        output = workdir / f"beside-{tag}.bin"
        beside, beside_code = await _download(swarm_id, tracker_url, output, timeout)
        await asyncio.sleep(0.2)  # the next counts printed
        follower.cancel()
        report_path = output.with_suffix(".json")
        shares = (
            honest_share(json.loads(report_path.read_text()), samples)
            if report_path.exists()
            else {}
        )
        return {
            "upload_rate": upload_rate,
            "connections": connections,
            "alone": {"seconds": round(alone, 2), "exit_code": alone_code},
            "beside_flood": {"seconds": round(beside, 2), "exit_code": beside_code, **shares},
            "slowdown": round(beside / alone, 2) if alone > 0 else None,
        }
    finally:
        await stop(started)
        for task in drains:
            task.cancel()


async def run(
    size_mb: int, connections: int, rates: Sequence[str | None], timeout: float
) -> dict[str, Any]:
    """Every measurement, with what was measured on what."""
    with TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        source = workdir / "content.bin"
        source.write_bytes(os.urandom(size_mb << 20))
        runs = [await measure(source, workdir, connections, rate, timeout) for rate in rates]
    return {
        "benchmark": "flood_bench",
        "size_mb": size_mb,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or the flooder); see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.flood_bench")
    commands = parser.add_subparsers(dest="command")
    pull = commands.add_parser("flood", help="run the flooder")
    pull.add_argument("--url", required=True, help="the seeder's base URL")
    pull.add_argument("--swarm", required=True)
    pull.add_argument("--chunks", type=int, required=True, help="chunks in the swarm")
    pull.add_argument("--ip", required=True, help="the address to flood from")
    pull.add_argument("--connections", type=int, default=64)
    pull.add_argument("--seconds", type=float, default=30.0, help="bound on the flood's time")
    pull.add_argument("--requests", type=int, default=200_000, help="bound on chunks asked")
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--upload-rate",
        action="append",
        help="the seeder's cap (repeatable; 'none' for uncapped; default: none and 16MiB)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on one download")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "flood":
        asyncio.run(
            flood(
                args.url, args.swarm, args.chunks, args.ip, args.connections, args.seconds,
                args.requests,
            )
        )  # fmt: skip
        return 0
    rates = [None if r == "none" else r for r in (args.upload_rate or ["none", "16MiB"])]
    document = asyncio.run(run(args.size_mb, args.connections, rates, args.timeout))
    result = json.dumps(document, indent=2)
    if args.out is None:
        print(result)
    else:
        args.out.write_text(result + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
