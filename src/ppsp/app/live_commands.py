"""What ``ppsp live`` and the live half of ``ppsp watch`` do, as coroutines.

The source cuts its input into signed chunks and feeds the swarm; a viewer plays the stream
at a local URL and, with ``-o``, into a file or standard output.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.app.commands import PeerOptions, fail, write_report
from ppsp.app.player import serve_player
from ppsp.errors import PPSPError
from ppsp.peer.live import LiveDescription, QoE, load_key
from ppsp.peer.live.identity import create_key, default_key_path, prepare_key_directory
from ppsp.peer.net.livenode import (
    LiveInput,
    LiveOutputs,
    LiveSourceRunner,
    LiveViewer,
    describe_input_error,
)
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import SwarmSession
from ppsp.process.signals import stop_event


async def watch_live(
    node: PeerNode,
    session: SwarmSession,
    description: LiveDescription,
    stop: asyncio.Event,
    player_host: str,
    player_port: int | None,
    output: Path | None,
    timeout: float,
    report: Path | None,
    on_url: Callable[[str], None] | None,
) -> int:
    """Play a live stream at the player URL (and into ``output``) until it ends or is
    stopped."""
    to_stdout = output is not None and str(output) == "-"
    sink: BinaryIO | None = None
    if to_stdout:
        sink = sys.stdout.buffer
    elif output is not None:
        sink = output.open("wb")
    outputs = LiveOutputs(sink)
    viewer = LiveViewer(node, session, description, outputs, no_progress_timeout=timeout)
    player = LivePlayerEndpoint(outputs, description.media_type)
    try:
        runner, url = await serve_player(
            player.app(), player_host, player_port, to_stderr=to_stdout
        )
    except OSError as exc:
        await node.stop()
        return fail(f"cannot listen on {player_host}:{player_port}: {exc.strerror or exc}")
    if on_url is not None:
        on_url(url)
    code = 0
    try:
        await viewer.run(stop)
        if viewer.ended:
            print("the live stream ended", file=sys.stderr, flush=True)
    except PPSPError as exc:
        code = fail(str(exc))
    finally:
        outputs.close()
        await runner.cleanup()
        print(format_qoe(viewer.qoe(), session), file=sys.stderr, flush=True)
        await node.stop()
        write_report(node, report)
        if sink is not None and not to_stdout:
            sink.close()
    return code


def format_qoe(qoe: QoE, session: SwarmSession) -> str:
    """The one-line quality-of-experience summary a viewer prints when it stops."""
    continuity = qoe.continuity_index
    parts = [
        "startup delay " + ("-" if qoe.startup_delay is None else f"{qoe.startup_delay:.2f} s"),
        "continuity " + ("-" if continuity is None else f"{continuity:.4f}"),
        f"played {qoe.chunks_played}",
        f"skipped {qoe.chunks_skipped}",
        "delay behind source "
        + ("-" if qoe.delay_behind_source is None else f"{qoe.delay_behind_source:.2f} s"),
        f"from source {qoe.bytes_from_source} B",
        f"from peers {qoe.bytes_from_peers} B",
        f"uploaded {session.uploaded_bytes} B",
    ]
    return "qoe: " + ", ".join(parts)


class LivePlayerEndpoint:
    """The local HTTP endpoint for a live stream: one continuous response per player."""

    def __init__(self, outputs: LiveOutputs, media_type: str) -> None:
        self.outputs = outputs
        self.media_type = media_type

    def app(self) -> web.Application:
        """The aiohttp application serving ``/stream`` (and ``/``)."""
        app = web.Application()
        for path in ("/", "/stream"):
            app.router.add_route("GET", path, self.stream)
        return app

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Stream every chunk played from now on, until the viewer stops or the player leaves."""
        queue = self.outputs.subscribe()
        response = web.StreamResponse()
        response.content_type = self.media_type
        response.headers["Cache-Control"] = "no-store"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while (payload := await queue.get()) is not None:
                await response.write(payload)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self.outputs.clients.discard(queue)
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response


async def live_main(
    options: PeerOptions,
    *,
    input_path: str | None = "-",
    chunk_ms: int = 500,
    window_s: int = 30,
    key_path: Path | None = None,
    name: str = "live",
) -> int:
    """Run a live source: print the swarm ID first, then stream until the input ends (or a
    stop signal), announce the end, serve the last chunks briefly and return 0 (1 when the
    input could not be read)."""
    stop = stop_event()
    try:
        live_input = LiveInput.open(input_path)
    except OSError as exc:
        return fail(describe_input_error(input_path, exc))
    try:
        key, key_file, created = source_key(key_path, name)
    except (OSError, PPSPError) as exc:
        live_input.close()
        return fail(f"cannot use the source key: {exc}")
    report = options.report
    node = options.node(clock=time.time, report_interval=5.0)
    runner = LiveSourceRunner(node, key, name=name, chunk_ms=chunk_ms, window_s=window_s)
    try:
        await node.start()
        await runner.announce()
    except (OSError, PPSPError) as exc:
        live_input.close()
        await node.stop(disconnect=False)
        return fail(f"cannot start the live source: {exc}")
    print(runner.swarm_id, flush=True)
    made = "made a new source key in" if created else "using the source key in"
    print(f"{made} {key_file}", file=sys.stderr, flush=True)
    print(f"live source at {node.base_url}", file=sys.stderr, flush=True)
    failure: str | None = None
    try:
        failure = await runner.run(live_input, stop)
    finally:
        print(
            f"live source stopped after {runner.chunks_produced} chunks"
            f" ({runner.start_points} start points)",
            file=sys.stderr,
            flush=True,
        )
        await node.stop()
        write_report(node, report)
    return 0 if failure is None else fail(failure)


def source_key(path: Path | None, name: str) -> tuple[Ed25519PrivateKey, Path, bool]:
    """Load the source key, or make and save one; returns (key, file, whether it is new).

    Without ``path``, the key of the stream called ``name`` in the user's data directory
    (:func:`~ppsp.peer.live.identity.default_key_path`).
    """
    if path is None:
        path = default_key_path(name)
        prepare_key_directory(path)
    if path.exists():
        return load_key(path), path, False
    try:
        return create_key(path), path, True
    except FileExistsError:  # another source made it a moment ago
        return load_key(path), path, False
