"""A live viewer beside tarpit relays: peers that announce every chunk and never send one.

    python -m bench.live_tarpit_bench [--tarpits 0,3] [--seconds 8] [--out FILE]
    python -m bench.live_tarpit_bench tarpit --tracker URL --swarm ID --ip 127.0.20.20 --name T0

The first form runs, for each count of tarpits, a tracker, a live source (``ppsp live`` on
127.0.2.2, fed a generated MPEG-TS stream at its real rate: ``--seconds`` of it), one honest
viewer that relays (127.0.3.3), that many tarpit relays (each on its own loopback network,
127.0.2N.2N), then the measured viewer (127.0.4.4), and writes JSON: the measured viewer's
continuity index, chunks played and skipped, its startup delay and its exit code for each
count.  The ``ppsp`` measured is whatever the interpreter imports: ``PYTHONPATH=OLD/src``
measures an earlier release, for before/after figures.

The second form is one tarpit relay: it listens on ``--ip``, registers that address at the
tracker with the highest priority (so that peer lists name it first) and JOINs the live swarm.
It answers the peer protocol as a viewer does (transport negotiation, properties, chunk maps):
its map claims every chunk of the live window, the newest any peer's PUSH to it announced
(the source PUSHes its map to every peer it connected to).  It accepts every chunk GET and
never sends a byte, for at most ``--lifetime`` seconds.  With ``--silent`` it answers nothing
at all (the stored-content tarpit of :mod:`bench.tarpit_bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from aiohttp import web

from bench.processes import add_tarpit_arguments, line, spawn, stop
from bench.tarpit_bench import HIGHEST_PRIORITY, run_tarpit
from bench.tracker_attacks import Host, connect, join
from ppsp.codecs.peer_xml import decode_request
from ppsp.errors import PPSPError
from ppsp.peer.net.session import LIVE_REPRESENTATION, live_bitmap
from ppsp.peer.protocol.handler import KnownPeer, PeerProtocolHandler
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import (
    HTTP,
    ChunkAvailabilityRequest,
    RepresentationMap,
    TransportOffer,
    chunk_map_from_bitmaps,
)

ANY_LINE = re.compile(r".")
"""A process's first line (the tracker's URL line, the source's swarm ID)."""
TARPIT_READY = re.compile(r"^tarpit ready")
SOURCE = "127.0.2.2"
RELAY = "127.0.3.3"
VIEWER = "127.0.4.4"


def tarpit_address(number: int) -> str:
    """The loopback address of live tarpit ``number`` (a /24 network of its own)."""
    return f"127.0.{20 + number}.{20 + number}"


class _PitState:
    """What a tarpit relay tells (a :class:`~ppsp.peer.protocol.handler.PeerState`): the whole
    live window as its map, learnt from the maps PUSHed to it."""

    def __init__(self, swarm_id: str, peer_id: str, base_url: str) -> None:
        self.swarm_id = swarm_id
        self._peer_id = peer_id
        self.base_url = base_url
        self.window: tuple[int, int] | None = None  # the newest window announced to it
        self.held_gets: list[web.Request] = []

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def note_push(self, chunk_map: Sequence[RepresentationMap]) -> None:
        """A peer PUSHed its map: claim its window when it reaches further."""
        bitmap = live_bitmap(chunk_map)
        if len(bitmap) and (self.window is None or bitmap.end >= self.window[1]):
            self.window = (bitmap.start, bitmap.end)

    def has_swarm(self, swarm_id: str) -> bool:
        return swarm_id == self.swarm_id

    def chunk_map(self, swarm_id: str) -> tuple[RepresentationMap, ...]:
        if self.window is None:
            return ()
        low, high = self.window
        claimed = ChunkBitmap.from_indexes(range(low, high + 1), high - low + 1, low)
        return chunk_map_from_bitmaps({LIVE_REPRESENTATION: [claimed]})

    def known_peers(self, swarm_id: str) -> Sequence[KnownPeer]:
        return ()

    def store_peer_map(
        self, swarm_id: str, peer_id: str, chunk_map: tuple[RepresentationMap, ...], now: float
    ) -> None:
        return None

    def peer_hosts(self, swarm_id: str, peer_id: str) -> frozenset[str] | None:
        return None

    def exchanges_chunks(self, swarm_id: str, peer_id: str) -> bool:
        return False

    def learn_peers(self, swarm_id: str) -> None:
        return None

    def property_values(self, swarm_id: str, now: float) -> Mapping[str, str]:
        return {}

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        template = f"{self.base_url}/swarm/{swarm_id}/chunk/{{representation}}/{{chunk}}"
        return (TransportOffer(type=HTTP, uri=template),)


async def run_live_tarpit(tracker: str, swarm_id: str, ip: str, name: str, lifetime: float) -> None:
    """Listen on ``ip``, JOIN the live swarm, answer the peer protocol, never send a chunk."""
    holding = asyncio.Event()  # never set: every chunk GET waits on it

    # The port is taken first: the transport offer names it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, 0))
    port = sock.getsockname()[1]
    state = _PitState(swarm_id, name, f"http://{ip}:{port}")
    handler = PeerProtocolHandler(state)
    app = web.Application()

    async def protocol(request: web.Request) -> web.Response:
        data = await request.read()
        with contextlib.suppress(PPSPError):
            message = decode_request(data)
            if isinstance(message, ChunkAvailabilityRequest) and message.chunk_map is not None:
                state.note_push(message.chunk_map)
        status, body = handler.handle_bytes(data, time.time(), host=request.remote)
        return web.Response(status=status, body=body, content_type="text/xml")

    async def hold(request: web.Request) -> web.StreamResponse:
        await holding.wait()  # accepted, never answered
        return web.Response(status=404)

    app.router.add_post("/", protocol)
    app.router.add_get("/swarm/{swarm}/chunk/{representation}/{index}", hold)
    app.router.add_get("/swarm/{swarm}/description", hold)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host = Host(tracker, ip)
    try:
        status, body = await host.post(connect(name, ip, port, priority=HIGHEST_PRIORITY))
        assert status == 200, body
        status, body = await host.post(join(name, swarm_id, mode="LEECH"))
        assert status == 200, body
    finally:
        await host.close()
    print(f"tarpit ready on {ip}:{port}", flush=True)
    try:
        await asyncio.sleep(lifetime)
    finally:
        await runner.cleanup()


# -- the benchmark ------------------------------------------------------------------------------


def make_stream(path: Path, seconds: float) -> None:
    """``seconds`` of H.264 test pattern in MPEG-TS (a key frame a second) into ``path``."""
    import subprocess

    from ppsp.app.media import ffmpeg_exe

    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}", "-c:v", "libx264",
            "-preset", "ultrafast", "-b:v", "1M", "-g", "25", "-pix_fmt", "yuv420p",
            "-f", "mpegts", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip


async def measure(
    tarpits: int, stream: Path, workdir: Path, timeout: float, *, silent: int = 0
) -> dict[str, Any]:
    """One live viewer beside one honest relay, ``tarpits`` tarpit relays and ``silent``
    tarpits that answer nothing (numbered after the others)."""
    started: list[asyncio.subprocess.Process] = []
    env = {"XDG_DATA_HOME": str(workdir / "xdg")}
    try:
        tracker = await spawn(
            "-m", "ppsp", "tracker", "--host", "127.0.0.1", "--port", "0",
            "--log-level", "error", env=env, stderr=False,
        )  # fmt: skip
        started.append(tracker)
        tracker_url = (await line(tracker, ANY_LINE)).rsplit(" ", 1)[-1]
        # The source reads a pipe that ffmpeg -re fills at the stream's real rate once every
        # other peer is up (a slow start of the processes costs no part of the stream).
        read_fd, write_fd = os.pipe()
        try:
            source = await spawn(
                "-m", "ppsp", "live", "--tracker", tracker_url, "--host", SOURCE,
                "--key", str(workdir / f"source-{tarpits}.key"),
                stdin=read_fd, env=env, stderr=False,
            )  # fmt: skip
        finally:
            os.close(read_fd)
        started.append(source)
        swarm_id = await line(source, ANY_LINE)
        report = workdir / f"viewer-{tarpits}.json"

        async def watch(ip: str, name: str) -> asyncio.subprocess.Process:
            process = await spawn(
                "-m", "ppsp", "watch", swarm_id, "--tracker", tracker_url, "--host", ip,
                "--player-port", "0", "-o", str(workdir / f"{name}-{tarpits}.ts"),
                "--report", str(workdir / f"{name}-{tarpits}.json"), env=env, stderr=False,
            )  # fmt: skip
            started.append(process)
            return process

        await watch(RELAY, "relay")
        for number in range(tarpits + silent):
            pit = await spawn(
                "-m", "bench.live_tarpit_bench", "tarpit", "--tracker", tracker_url,
                "--swarm", swarm_id, "--ip", tarpit_address(number), "--name", f"pit{number}",
                "--lifetime", str(timeout), *(["--silent"] if number >= tarpits else []),
                env=env, stderr=False,
            )  # fmt: skip
            started.append(pit)
            await line(pit, TARPIT_READY)
        from ppsp.app.media import ffmpeg_exe

        try:
            feeder = await asyncio.create_subprocess_exec(
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-i", str(stream),
                "-c", "copy", "-f", "mpegts", "-",
                stdin=asyncio.subprocess.DEVNULL, stdout=write_fd,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        started.append(feeder)
        await asyncio.sleep(1.5)  # the source's map reaches the tarpits (it PUSHes to them)
        viewer = await watch(VIEWER, "viewer")
        try:
            code: int | None = await asyncio.wait_for(viewer.wait(), timeout)
        except TimeoutError:
            code = None
        result: dict[str, Any] = {"tarpits": tarpits, "silent": silent, "exit_code": code}
        if report.exists():
            live = json.loads(report.read_text())["sessions"][0]["live"]
            for key in (
                "continuity_index",
                "chunks_played",
                "chunks_skipped",
                "startup_delay",
                "delay_behind_source",
            ):
                result[key] = live.get(key)
        return result
    finally:
        await stop(started)


async def run(counts: Sequence[int], seconds: float, timeout: float) -> dict[str, Any]:
    """Every measurement, with what was measured on what."""
    with TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        stream = workdir / "stream.ts"
        await asyncio.to_thread(make_stream, stream, seconds)
        runs = [await measure(count, stream, workdir, timeout) for count in counts]
    return {
        "benchmark": "live_tarpit_bench",
        "stream_seconds": seconds,
        "chunk_ms": 500,
        "honest_relays": 1,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one tarpit relay); see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.live_tarpit_bench")
    commands = parser.add_subparsers(dest="command")
    pit = commands.add_parser("tarpit", help="run one tarpit relay")
    add_tarpit_arguments(pit)
    pit.add_argument("--silent", action="store_true", help="answer nothing at all")
    parser.add_argument("--tarpits", default="0,3", help="counts of tarpits, comma-separated")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the stream")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on one viewer")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "tarpit":
        if args.silent:
            coro = run_tarpit(args.tracker, args.swarm, args.ip, args.name, args.lifetime)
        else:
            coro = run_live_tarpit(args.tracker, args.swarm, args.ip, args.name, args.lifetime)
        asyncio.run(coro)
        return 0
    counts = [int(part) for part in args.tarpits.split(",") if part.strip()]
    result = json.dumps(asyncio.run(run(counts, args.seconds, args.timeout)), indent=2)
    if args.out is None:
        print(result)
    else:
        args.out.write_text(result + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
