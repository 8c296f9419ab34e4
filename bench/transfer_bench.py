"""Transfer benchmark: one peer-to-peer download against a plain HTTP download of the same file.

    python -m bench.transfer_bench [--size-mb 64] [--repeat 3] [--out docs/benchmarks/transfer.json]

Everything runs on loopback, each server in a subprocess of its own:

1. Static: ``python -m http.server`` serves a generated file (random bytes); this process
   downloads it with aiohttp into a file, timed from the request to the last byte written.
2. Peer-to-peer: ``ppsp tracker`` and ``ppsp seed`` of the same file run in the background;
   ``ppsp get`` is timed from its start (``create_subprocess_exec``) to its exit, so the figure
   includes the process start-up, the tracker exchange (CONNECT, JOIN), the peer protocol
   handshake, and the verification of every chunk against the content description.  The
   transfer alone is also reported: from ``ppsp get``'s first progress line (first chunk
   stored) to its completion line.  The output is compared with the source afterwards.
3. Start-up: a bare interpreter doing what ``ppsp get`` does before its event loop starts:
   the command line, its arguments' checks and the modules its callback imports
   (:data:`STARTUP_CODE`).
4. CPU: user and system time of each download's processes (the static server and this
   process; ``ppsp get``, the seeder and the tracker, each), and of one SHA-256 of every byte
   (what verifying every chunk costs at the least).

After one warm-up download of each kind, ``--repeat`` rounds alternate a static download and a
peer-to-peer one, so that both see the machine in the same state (page cache, other load); every
sample is reported.  The figure of merit is the median of the rounds' ratios (peer-to-peer /
static, in MiB/s).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

MIB = 1 << 20
LISTENING = re.compile(r"listening on (http://\S+)")
SERVING = re.compile(r"port (\d+)")
PROGRESS = re.compile(r"\d+\.\d% (\d+)/(\d+) bytes")
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONUNBUFFERED": "1",
    # Byte-code cached outside the source tree, as an installed package would have it; the
    # first start-up measurement warms it.
    "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "ppsp-transfer-bench-pycache"),
}
START_TIMEOUT = 30.0
"""Bound on a server getting to its first line of output."""


def generate(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256 hex digest."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


async def spawn(*args: str, cwd: Path | None = None) -> asyncio.subprocess.Process:
    """Start ``python ARGS`` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
        cwd=cwd,
    )


async def first_match(stream: asyncio.StreamReader | None, pattern: re.Pattern[str]) -> str:
    """Read lines until one matches ``pattern``; return its first group."""
    assert stream is not None

    async def scan() -> str:
        while True:
            line = await stream.readline()
            if not line:
                raise RuntimeError(f"process ended before printing {pattern.pattern!r}")
            match = pattern.search(line.decode(errors="replace"))
            if match:
                return match.group(1)

    return await asyncio.wait_for(scan(), START_TIMEOUT)


async def timed_lines(stream: asyncio.StreamReader | None) -> list[tuple[float, str]]:
    """Every line of ``stream`` until its end, each with the time it was read."""
    assert stream is not None
    lines = []
    while line := await stream.readline():
        lines.append((time.perf_counter(), line.decode(errors="replace").rstrip()))
    return lines


async def drain(stream: asyncio.StreamReader | None) -> None:
    """Read and discard a pipe so that its writer never blocks."""
    if stream is not None:
        while await stream.read(65536):
            pass


_DRAINS: set[asyncio.Task[None]] = set()


def drain_outputs(process: asyncio.subprocess.Process) -> None:
    """Keep draining both output pipes of ``process`` in the background until they close."""
    for stream in (process.stdout, process.stderr):
        task = asyncio.ensure_future(drain(stream))
        _DRAINS.add(task)
        task.add_done_callback(_DRAINS.discard)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 10 s; reap."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def static_download(url: str, output: Path) -> float:
    """Download ``url`` into ``output`` with aiohttp; the seconds it took."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = time.perf_counter()
        async with http.get(url) as answer:
            answer.raise_for_status()
            with output.open("wb") as handle:
                async for block in answer.content.iter_chunked(1 * MIB):
                    handle.write(block)
        return time.perf_counter() - started


class StaticServer:
    """``python -m http.server`` serving the directory of ``source``."""

    def __init__(self, source: Path, digest: str) -> None:
        self.source, self.digest = source, digest
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        """Start the server; wait for its port."""
        directory = str(self.source.parent)
        self.process = await spawn(
            "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory
        )  # fmt: skip
        port = await first_match(self.process.stdout, SERVING)
        drain_outputs(self.process)
        self.url = f"http://127.0.0.1:{port}/{self.source.name}"

    async def download(self, output: Path) -> tuple[float, float]:
        """One timed download into ``output``, checked against the source: its seconds, and
        the CPU seconds the server and this process (the client) used for it."""
        output.unlink(missing_ok=True)
        pid = None if self.process is None else self.process.pid
        server, client = process_cpu(pid), time.process_time()
        seconds = await static_download(self.url, output)
        cpu = process_cpu(pid) - server + time.process_time() - client
        if file_digest(output) != self.digest:
            raise RuntimeError("static download differs from the source")
        return seconds, cpu

    async def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            await stop(self.process)


class PeerToPeer:
    """``ppsp tracker`` and ``ppsp seed`` of ``source``; each download a fresh ``ppsp get``."""

    def __init__(self, source: Path, digest: str, chunk_size: int | None) -> None:
        self.source, self.digest, self.chunk_size = source, digest, chunk_size
        self.tracker: asyncio.subprocess.Process | None = None
        self.seeder: asyncio.subprocess.Process | None = None
        self.tracker_url = self.swarm_id = ""

    async def start(self) -> None:
        """Start the tracker and the seeder; wait for the swarm ID."""
        self.tracker = await spawn(
            "-m", "ppsp", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
            "--limits", "off",
        )  # fmt: skip
        self.tracker_url = await first_match(self.tracker.stdout, LISTENING)
        drain_outputs(self.tracker)
        extra = [] if self.chunk_size is None else ["--chunk-size", str(self.chunk_size)]
        self.seeder = await spawn(
            "-m", "ppsp", "seed", str(self.source), "--tracker", self.tracker_url, *extra
        )  # fmt: skip
        self.swarm_id = await first_match(self.seeder.stdout, re.compile(r"^([0-9a-f]{64})$"))
        drain_outputs(self.seeder)

    async def download(self, output: Path) -> tuple[float, float, int, tuple[float, ...]]:
        """One ``ppsp get`` into ``output``: seconds from spawn to exit, and the transfer alone:
        seconds from the first progress line (the first chunk stored) to the last (every
        chunk stored), the bytes stored in between, and the CPU seconds ``ppsp get``, the
        seeder and the tracker each used for it."""
        output.unlink(missing_ok=True)
        servers = [None if p is None else p.pid for p in (self.seeder, self.tracker)]
        before = [children_cpu(), *(process_cpu(pid) for pid in servers)]
        started = time.perf_counter()
        getter = await spawn(
            "-m", "ppsp", "get", self.swarm_id, "--tracker", self.tracker_url, "-o", str(output),
            "--log-level", "warning",
        )  # fmt: skip
        lines = await asyncio.wait_for(timed_lines(getter.stderr), 600)
        await asyncio.wait_for(getter.wait(), 60)
        elapsed = time.perf_counter() - started
        if getter.returncode != 0:
            raise RuntimeError(f"ppsp get failed: {' / '.join(t for _, t in lines)}")
        progress = [(at, m) for at, text in lines if (m := PROGRESS.search(text))]
        first, first_match = progress[0]
        done = min(at for at, m in progress if m.group(1) == m.group(2))
        after = [children_cpu(), *(process_cpu(pid) for pid in servers)]
        cpu = tuple(end - start for start, end in zip(before, after, strict=True))
        if file_digest(output) != self.digest:
            raise RuntimeError("peer-to-peer download differs from the source")
        stored = int(first_match.group(2)) - int(first_match.group(1))
        return elapsed, done - first, stored, cpu

    async def stop(self) -> None:
        """Stop the seeder and the tracker."""
        for process in (self.seeder, self.tracker):
            if process is not None:
                await stop(process)


STARTUP_CODE = (
    "from ppsp.process.tuning import collect_rarely\n"
    "collect_rarely()\n"
    "from ppsp.app.cli import main\n"
    "from ppsp.app.cli.params import SWARM_ID, TRACKER_URL\n"
    "SWARM_ID.convert('ab' * 32, None, None)\n"
    "TRACKER_URL.convert('http://127.0.0.1:7000', None, None)\n"
    "import ppsp.app.commands, ppsp.process.tuning\n"
    "from ppsp.process.ending import end_process\n"
    "end_process(0)\n"
)
"""What ``python -m ppsp get SWARM --tracker URL -o FILE`` runs before its event loop starts,
and how it ends: the collector set as :mod:`ppsp.app.launch` sets it, the command line, the
checks of its arguments (the swarm ID, the tracker URL: the tracker client), the modules its
callback imports (the peer, the tuning), and the end of the process as the launcher ends it
(no teardown); the same imports as
``tests/app/test_startup.py`` checks, so that a module ``get`` stops or starts importing
moves this figure."""


async def measure_startup(repeat: int) -> list[float]:
    """Time a bare interpreter running :data:`STARTUP_CODE`: ``ppsp get``'s start-up share."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        process = await spawn("-c", STARTUP_CODE)
        await asyncio.wait_for(process.communicate(), 60)
        samples.append(time.perf_counter() - started)
    return samples


def rate(size: int, seconds: float) -> float:
    """MiB per second."""
    return size / MIB / seconds


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (/proc, Linux); 0.0 when
    it cannot be read."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu() -> float:
    """CPU seconds used by this process's children that have ended (``ppsp get`` runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hash_cpu(path: Path) -> float:
    """CPU seconds of SHA-256 over every byte of ``path`` once, in 1 MiB blocks read from the
    page cache: what verifying each chunk against its hash costs at the least."""
    buffer = bytearray(MIB)
    view = memoryview(buffer)
    started = time.process_time()
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hashlib.sha256(view[:count]).digest()
    return time.process_time() - started


async def run(size_mb: int, repeat: int, chunk_size: int | None) -> dict[str, Any]:
    """Run both measurements on a fresh file of ``size_mb`` MiB; the report as a dict.

    After one warm-up download of each kind (not counted), the rounds alternate a static
    download and a peer-to-peer one, so that both see the same state of the machine; each
    round gives a ratio, and the report's figure of merit is their median.
    """
    size = size_mb * MIB
    with tempfile.TemporaryDirectory(prefix="ppsp-transfer-bench-") as temp:
        workdir = Path(temp)
        served = workdir / "served"
        served.mkdir()
        source = served / "content.bin"
        digest = generate(source, size)
        startup = (await measure_startup(repeat + 1))[1:]  # the first compiled the byte-code
        static_server = StaticServer(source, digest)
        p2p_swarm = PeerToPeer(source, digest, chunk_size)
        static: list[float] = []
        static_cpu: list[float] = []
        p2p: list[float] = []
        p2p_cpu: list[tuple[float, ...]] = []
        transfers: list[float] = []
        transferred: list[int] = []
        try:
            await static_server.start()
            await p2p_swarm.start()
            await static_server.download(workdir / "static.out")
            await p2p_swarm.download(workdir / "p2p.out")
            for _ in range(repeat):
                seconds, cpu = await static_server.download(workdir / "static.out")
                static.append(seconds)
                static_cpu.append(cpu)
                whole, transfer, nbytes, each = await p2p_swarm.download(workdir / "p2p.out")
                p2p.append(whole)
                p2p_cpu.append(each)
                transfers.append(transfer)
                transferred.append(nbytes)
            hashing = min(hash_cpu(source) for _ in range(3))
        finally:
            await static_server.stop()
            await p2p_swarm.stop()
    static_s, p2p_s = statistics.median(static), statistics.median(p2p)
    transfer_s = statistics.median(transfers)
    startup_s = statistics.median(startup)
    rest_s = p2p_s - transfer_s - startup_s
    # Rates, not times: the transfer window leaves out the first chunk.
    static_rates = [rate(size, s) for s in static]
    transfer_rates = [rate(n, t) for n, t in zip(transferred, transfers, strict=True)]
    transfer_ratios = [t / s for t, s in zip(transfer_rates, static_rates, strict=True)]
    whole_ratios = [s / w for s, w in zip(static, p2p, strict=True)]
    return {
        "benchmark": "transfer",
        "command": " ".join(["python -m bench.transfer_bench", *sys.argv[1:]]),
        "size_bytes": size,
        "chunk_size": chunk_size,
        "repeat": repeat,
        "method": "one warm-up of each, then rounds alternating static and peer-to-peer",
        "static_http": {
            "server": "python -m http.server (subprocess)",
            "client": "aiohttp, in the benchmark process",
            "seconds": [round(s, 4) for s in static],
            "median_seconds": round(static_s, 4),
            "mib_per_s": round(rate(size, static_s), 1),
            "cpu_seconds": [round(s, 4) for s in static_cpu],
            "cpu_is": "user + system of the server and of this process (the client)",
        },
        "p2p": {
            "processes": "ppsp tracker, ppsp seed, ppsp get (timed from spawn to exit)",
            "swarm_id": p2p_swarm.swarm_id,
            "seconds": [round(s, 4) for s in p2p],
            "median_seconds": round(p2p_s, 4),
            "mib_per_s": round(rate(size, p2p_s), 1),
            "transfer_seconds": [round(s, 4) for s in transfers],
            "transfer_median_seconds": round(transfer_s, 4),
            "transfer_bytes": transferred,
            "transfer_mib_per_s": round(statistics.median(transfer_rates), 1),
            "transfer_is": "first chunk stored to last chunk stored (bytes stored in between)",
            "process_startup_seconds": round(statistics.median(startup), 4),
            "process_startup_is": "python -c STARTUP_CODE: the command line, the argument "
            "checks and the imports of ppsp get, spawn to exit",
            "rest_seconds": round(rest_s, 4),
            "rest_is": "tracker CONNECT/JOIN, description, handshake, final report, exit",
            "cpu_seconds": [round(sum(s), 4) for s in p2p_cpu],
            "cpu_is": "user + system of ppsp get, the seeder and the tracker",
            "cpu_seconds_each": [[round(x, 4) for x in s] for s in p2p_cpu],
            "cpu_each_is": "[ppsp get, the seeder, the tracker]",
        },
        "sha256_cpu_seconds": round(hashing, 4),
        "sha256_is": "one SHA-256 of every byte of the file, 1 MiB blocks, in this process",
        "round_ratios_transfer_only": [round(r, 3) for r in transfer_ratios],
        "round_ratios_start_to_exit": [round(r, 3) for r in whole_ratios],
        "ratio_p2p_to_static": round(statistics.median(whole_ratios), 3),
        "ratio_p2p_transfer_only_to_static": round(statistics.median(transfer_ratios), 3),
        "target_ratio": 0.5,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "system": platform.platform(),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the benchmark, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=64, help="Size of the file (MiB).")
    parser.add_argument("--repeat", type=int, default=3, help="Downloads per method.")
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="ppsp seed --chunk-size (default: ppsp's)."
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON report here.")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    report = asyncio.run(run(args.size_mb, args.repeat, args.chunk_size))
    text = json.dumps(report, indent=2) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
