"""Real ``ppsp`` processes on loopback for the swarm tests: tracker, seeders, leechers, players.

A :class:`Swarm` owns every process it starts and kills them all when its ``async with`` block
ends, whatever happened inside.  Each process's stdout and stderr are read continuously into
line lists (so a chatty child never blocks on a full pipe), and tests wait on those lines with
bounded timeouts.

Timing is controlled with job-control signals rather than sleeps: :meth:`Peer.freeze` (SIGSTOP)
holds a process still while a test inspects its output file, which turns "at some moment the
leechers held X" into an exact snapshot; :func:`throttle` duty-cycles a process to slow it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType

import aiohttp

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
LISTENING = re.compile(r"listening on (http://\S+)")
COMPLETE = re.compile(r": complete, \d+ bytes verified")
OFFERING = re.compile(r"offering PPSPP to the swarm's peers at udp")
"""What a seeder with a PPSPP socket prints once its PPSPP addresses are registered."""
SERVING = re.compile(r"serving over PPSPP what it holds at udp (\S+):(\d+)")
"""What a downloading peer with a PPSPP socket prints once it serves what it holds."""
CHUNK_SIZE = 65536
START_TIMEOUT = 30.0
"""Bound on a process getting to its first line of output."""
FINISH_TIMEOUT = 60.0
"""Bound on a download finishing (the tests' files take well under a second unthrottled)."""


def content(size: int, seed: int = 7) -> bytes:
    """Reproducible incompressible bytes: no chunk of it is all zeros or equal to another."""
    return random.Random(seed).randbytes(size)


def held_chunks(path: Path, source: bytes, chunk_size: int = CHUNK_SIZE) -> set[int]:
    """Indexes of the chunks of ``path`` that equal the source's (a missing file holds none).

    The peers write each chunk only after verifying it, into a sparse file of the full size; with
    random content, a chunk equal to the source's is a chunk the peer holds.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    view, src = memoryview(data), memoryview(source)
    return {
        index
        for index, offset in enumerate(range(0, len(source), chunk_size))
        if view[offset : offset + chunk_size] == src[offset : offset + chunk_size]
    }


def chunk_count(source: bytes, chunk_size: int = CHUNK_SIZE) -> int:
    """How many chunks the source has."""
    return -(-len(source) // chunk_size)


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Peer:
    """One ``ppsp`` subprocess and the lines it has printed so far."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._pump(process.stdout, self.stdout)),
            asyncio.ensure_future(self._pump(process.stderr, self.stderr)),
        ]

    async def _pump(self, stream: asyncio.StreamReader, lines: list[str]) -> None:
        while True:
            line = await stream.readline()
            if not line:
                break
            lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def pid(self) -> int:
        """The process ID."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None

    def output(self) -> str:
        """Everything printed so far, for assertion messages."""
        return f"--- {self.name} stdout\n" + "\n".join(
            [*self.stdout, f"--- {self.name} stderr", *self.stderr]
        )

    async def wait_line(
        self,
        pattern: str | re.Pattern[str],
        *,
        stream: str = "stderr",
        timeout: float = START_TIMEOUT,
    ) -> re.Match[str]:
        """Wait for a line matching ``pattern`` on ``stream``; fail when the process exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        lines = self.stdout if stream == "stdout" else self.stderr
        seen = 0

        async def scan() -> re.Match[str]:
            nonlocal seen
            while True:
                for line in lines[seen:]:
                    seen += 1
                    match = regex.search(line)
                    if match:
                        return match
                if all(r.done() for r in self._readers):
                    raise AssertionError(
                        f"{self.name} exited without printing {regex.pattern!r}\n{self.output()}"
                    )
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no line matching {regex.pattern!r} within {timeout} s\n"
                + self.output()
            ) from None

    async def first_stdout_line(self, timeout: float = START_TIMEOUT) -> str:
        """The first line the process prints on stdout."""
        return (await self.wait_line(r".+", stream="stdout", timeout=timeout)).group(0)

    async def wait(self, timeout: float = FINISH_TIMEOUT) -> int:
        """Wait for the process to exit (and its output to be read); its exit code."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
            await asyncio.wait_for(asyncio.gather(*self._readers), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name} still running after {timeout} s\n{self.output()}"
            ) from None
        return code

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the process is still there."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def freeze(self) -> None:
        """SIGSTOP: the process stays exactly where it is until :meth:`thaw`."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        self.signal(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL (works on a frozen process too) and reap."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(self.process.wait(), 10)
        for reader in self._readers:
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*self._readers)


class Swarm:
    """Starts ``ppsp`` processes in a scratch directory and kills every one of them on exit."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = {**ENV, **(env or {})}
        self.peers: list[Peer] = []
        self.tracker_url = ""

    async def __aenter__(self) -> Swarm:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(peer.kill() for peer in self.peers), return_exceptions=True)

    async def spawn(self, name: str, *args: str) -> Peer:
        """Start ``python -m ppsp ARGS`` with both output streams captured."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ppsp",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.workdir,
        )
        peer = Peer(name, process)
        self.peers.append(peer)
        return peer

    async def tracker(self, *args: str) -> Peer:
        """Start ``ppsp tracker`` on a free loopback port; remember its URL."""
        proc = await self.spawn(
            "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
            *args,
        )  # fmt: skip
        match = await proc.wait_line(LISTENING, stream="stdout")
        self.tracker_url = match.group(1)
        return proc

    async def seed(
        self, path: Path, *args: str, encoding: str = "xml", name: str = "seeder"
    ) -> tuple[Peer, str]:
        """Start ``ppsp seed PATH`` (64 KiB chunks); its process and the swarm ID it prints."""
        proc = await self.spawn(
            name, "seed", str(path), "--tracker", self.tracker_url,
            "--tracker-encoding", encoding, "--chunk-size", str(CHUNK_SIZE), *args,
        )  # fmt: skip
        swarm_id = await proc.first_stdout_line()
        assert re.fullmatch(r"[0-9a-f]{64}", swarm_id), proc.output()
        await proc.wait_line(r"^seeding ")  # joined: printed once the JOIN succeeded
        return proc, swarm_id

    async def get(
        self, swarm_id: str, output: Path, *args: str, encoding: str = "xml", name: str = "get"
    ) -> Peer:
        """Start ``ppsp get SWARM -o OUTPUT``."""
        return await self.spawn(
            name, "get", swarm_id, "--tracker", self.tracker_url, "-o", str(output),
            "--tracker-encoding", encoding, *args,
        )  # fmt: skip

    async def watch(self, swarm_id: str, output: Path, *args: str) -> tuple[Peer, str]:
        """Start ``ppsp watch SWARM --player-port 0 -o OUTPUT``; its process and player URL."""
        proc = await self.spawn(
            "watch", "watch", swarm_id, "--tracker", self.tracker_url, "--player-port", "0",
            "-o", str(output), *args,
        )  # fmt: skip
        return proc, await proc.first_stdout_line()

    async def status(self) -> dict[str, object]:
        """The tracker's ``GET /status``."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(self.tracker_url + "/status") as answer,
        ):
            assert answer.status == 200
            payload: dict[str, object] = await answer.json()
            return payload

    async def tracker_requests(self, method: str) -> int:
        """How many ``method`` requests (FIND, JOIN...) the tracker answered so far."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(self.tracker_url + "/metrics") as answer,
        ):
            text = await answer.text()
        pattern = rf'^ppsp_tracker_requests_total\{{[^}}]*method="{method}"[^}}]*\}} (\S+)'
        return sum(int(float(n)) for n in re.findall(pattern, text, re.MULTILINE))


async def finish(peer: Peer, timeout: float = FINISH_TIMEOUT) -> None:
    """Wait for a ``ppsp get`` to exit 0 having printed its completion line."""
    code = await peer.wait(timeout)
    assert code == 0, peer.output()
    assert any(COMPLETE.search(line) for line in peer.stderr), peer.output()
    assert not any("Traceback" in line for line in peer.stderr), peer.output()


async def step_until(
    peers: Sequence[Peer],
    check: Callable[[], bool],
    *,
    run_slice: float = 0.02,
    timeout: float = FINISH_TIMEOUT,
) -> None:
    """Run ``peers`` in short slices, frozen between them, until ``check()`` holds.

    ``check`` is called while every one of them is frozen, so it sees a consistent snapshot;
    when it returns True they are left frozen (the caller thaws them).  It may raise to give up.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for peer in peers:
            peer.thaw()
        await asyncio.sleep(run_slice)
        for peer in peers:
            peer.freeze()
        if check():
            return
        if loop.time() > deadline:
            for peer in peers:
                peer.thaw()
            raise AssertionError(f"condition not reached within {timeout} s")


@contextlib.asynccontextmanager
async def throttle(peer: Peer, *, run: float = 0.02, pause: float = 0.08) -> AsyncIterator[None]:
    """Slow ``peer`` down by letting it run ``run`` seconds out of every ``run + pause``."""

    async def cycle() -> None:
        while True:
            peer.freeze()
            await asyncio.sleep(pause)
            peer.thaw()
            await asyncio.sleep(run)

    task = asyncio.ensure_future(cycle())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        peer.thaw()


async def wait_for_peers(swarm: Swarm, count: int, timeout: float = 30.0) -> None:
    """Poll the tracker's /status until ``count`` peers are registered."""
    async with asyncio.timeout(timeout):
        while (await swarm.status())["peers"] != count:
            await asyncio.sleep(0.05)


LISTING_PROBE = """\
import asyncio, json, secrets, sys
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.tracker import PeerMode

async def main(url, swarm):
    async with TrackerClient(url, secrets.token_hex(16)) as client:
        peers = await client.join(swarm, PeerMode.LEECH)
    print(json.dumps({peer.peer_id: [[a.ip, a.port, a.type.value if a.type else None]
                                     for a in peer.addresses if a.peer_protocol == "PPSPP"]
                      for peer in peers}))

asyncio.run(main(*sys.argv[1:]))
"""
"""JOIN a swarm (a new peer each time) and print each listed peer's PPSPP addresses."""


async def ppspp_listing(
    url: str, swarm_id: str, prefix: Sequence[str] = ()
) -> dict[str, list[list[object]]]:
    """The PPSPP addresses the tracker lists for each peer of ``swarm_id``: ``[ip, port,
    type]`` each, by PeerID (asked with ``prefix``: a namespace)."""
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-c", LISTING_PROBE, url, swarm_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    listing: dict[str, list[list[object]]] = json.loads(out)
    return listing


def run_ppsp(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ppsp ARGS`` to completion, as a shell would (its output captured, wide
    help text; bounded: a hang is a failure)."""
    return subprocess.run(
        [sys.executable, "-m", "ppsp", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )
