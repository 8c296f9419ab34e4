"""A stored download beside tarpits: peers that join the swarm as seeders and never answer.

    python -m bench.tarpit_bench [--tarpits 0,1,5] [--size-mb 8] [--out FILE]
    python -m bench.tarpit_bench tarpit --tracker URL --swarm ID --ip 127.0.10.10 --name T0

The first form runs, for each count of tarpits, a tracker, two seeders of one file (from
127.0.2.2 and 127.0.3.3) and that many tarpits (each on its own loopback network, 127.0.1N.N),
then one ``ppsp get`` from 127.0.4.4, and writes JSON: the download's time, its exit code and
its last line for each count.  The ``ppsp`` measured is whatever the interpreter imports:
``PYTHONPATH=OLD_CHECKOUT/src`` measures an earlier release, for before/after figures.

The second form is one tarpit: it listens on ``--ip``, registers that address at the tracker
with the highest priority (so that peer lists name it first) and JOINs the swarm as a SEED,
prints ``tarpit ready`` and then accepts every connection and never sends a byte, for at most
``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bench.processes import (
    SWARM_ID,
    add_tarpit_arguments,
    drain,
    line,
    spawn,
    start_tracker,
    stop,
)
from bench.tracker_attacks import Host, connect, join

SEEDERS = ("127.0.2.2", "127.0.3.3")
LEECHER = "127.0.4.4"
HIGHEST_PRIORITY = 4294967295


def tarpit_address(number: int) -> str:
    """The loopback address of tarpit ``number`` (a /24 network of its own)."""
    return f"127.0.{10 + number}.{10 + number}"


async def run_tarpit(tracker: str, swarm_id: str, ip: str, name: str, lifetime: float) -> None:
    """Listen on ``ip``, join the swarm as a SEED, hold every connection without a byte."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):  # read what is sent, never answer
                pass

    server = await asyncio.start_server(hold, ip, 0)
    port = server.sockets[0].getsockname()[1]
    host = Host(tracker, ip)
    try:
        status, body = await host.post(connect(name, ip, port, priority=HIGHEST_PRIORITY))
        assert status == 200, body
        status, body = await host.post(join(name, swarm_id))
        assert status == 200, body
    finally:
        await host.close()
    print(f"tarpit ready on {ip}:{port}", flush=True)
    async with server:
        await asyncio.sleep(lifetime)
    for writer in held:
        writer.close()


async def measure(tarpits: int, source: Path, workdir: Path, timeout: float) -> dict[str, Any]:
    """One download of ``source`` from two seeders beside ``tarpits`` tarpits."""
    started: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[None]] = []
    try:
        tracker_url = await start_tracker(started, drains)
        swarm_id = ""
        for ip in SEEDERS:
            seeder = await spawn(
                "-m", "ppsp", "seed", str(source), "--tracker", tracker_url, "--host", ip
            )
            started.append(seeder)
            swarm_id = await line(seeder, SWARM_ID)
            assert seeder.stderr is not None
            async with asyncio.timeout(30):  # joined: printed once the JOIN succeeded
                while not (await seeder.stderr.readline()).startswith(b"seeding "):
                    pass
            drain(seeder, drains)
        for number in range(tarpits):
            pit = await spawn(
                "-m", "bench.tarpit_bench", "tarpit", "--tracker", tracker_url,
                "--swarm", swarm_id, "--ip", tarpit_address(number), "--name", f"tarpit{number}",
            )  # fmt: skip
            started.append(pit)
            await line(pit, re.compile(r"^tarpit ready"))
            drain(pit, drains)
        output = workdir / f"out-{tarpits}.bin"
        begin = time.perf_counter()
        get = await spawn(
            "-m", "ppsp", "get", swarm_id, "--tracker", tracker_url, "-o", str(output),
            "--host", LEECHER,
        )  # fmt: skip
        started.append(get)
        try:
            _, err = await asyncio.wait_for(get.communicate(), timeout)
            code = get.returncode
        except TimeoutError:
            err, code = b"", None
        elapsed = time.perf_counter() - begin
        lines = err.decode(errors="replace").strip().splitlines()
        complete = code == 0 and output.exists() and output.read_bytes() == source.read_bytes()
        return {
            "tarpits": tarpits,
            "seconds": round(elapsed, 2),
            "exit_code": code,
            "complete": complete,
            "last_line": lines[-1] if lines else "",
        }
    finally:
        await stop(started)
        for task in drains:
            task.cancel()


async def run(counts: Sequence[int], size_mb: int, timeout: float) -> dict[str, Any]:
    """Every measurement, with what was measured on what."""
    with TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        source = workdir / "content.bin"
        source.write_bytes(os.urandom(size_mb << 20))
        runs = [await measure(count, source, workdir, timeout) for count in counts]
    return {
        "benchmark": "tarpit_bench",
        "size_mb": size_mb,
        "seeders": len(SEEDERS),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one tarpit); see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.tarpit_bench")
    commands = parser.add_subparsers(dest="command")
    pit = commands.add_parser("tarpit", help="run one tarpit")
    add_tarpit_arguments(pit)
    parser.add_argument("--tarpits", default="0,1,5", help="counts of tarpits, comma-separated")
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=90.0, help="bound on one download")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "tarpit":
        asyncio.run(run_tarpit(args.tracker, args.swarm, args.ip, args.name, args.lifetime))
        return 0
    counts = [int(part) for part in args.tarpits.split(",") if part.strip()]
    result = json.dumps(asyncio.run(run(counts, args.size_mb, args.timeout)), indent=2)
    if args.out is None:
        print(result)
    else:
        args.out.write_text(result + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
