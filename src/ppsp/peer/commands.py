"""What the peer commands (``ppsp seed``, ``ppsp get``, ``ppsp watch``) do, as coroutines.

The click definitions in :mod:`ppsp.cli` parse options and call these; the live source and the
live half of ``watch`` are in :mod:`ppsp.peer.live_commands`.  Each returns the
process exit code; expected failures are one line on standard error, never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from aiohttp import web

from ppsp.errors import PPSPError
from ppsp.peer.live import LiveDescription
from ppsp.peer.node import DownloadFailed, PeerNode, SwarmSession
from ppsp.peer.picker import PickerConfig
from ppsp.peer.rangehdr import RangeNotSatisfiable, parse_range
from ppsp.signals import stop_event
from ppsp.tracker.messages import Encoding

if TYPE_CHECKING:
    from rich.progress import Progress

WATCH_WINDOW_CHUNKS = 8
"""Chunks ahead of the play position fetched in playback order (the deadline window)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOptions:
    """What every peer command is told: its tracker, where it serves, its limits and report."""

    tracker_url: str
    host: str = "127.0.0.1"
    port: int = 0
    encoding: Encoding = Encoding.XML
    upload_rate: float | None = None
    download_rate: float | None = None
    report: Path | None = None
    corrupt_uploads: bool = False

    def node(self, **settings: Any) -> PeerNode:
        """A peer node with these options (and any further PeerNode settings)."""
        node = PeerNode(
            tracker_url=self.tracker_url,
            host=self.host,
            port=self.port,
            encoding=self.encoding,
            upload_rate=self.upload_rate,
            download_rate=self.download_rate,
            **settings,
        )
        node.corrupt_uploads = self.corrupt_uploads
        return node


def write_report(node: PeerNode, path: Path | None) -> None:
    """Write every session's figures as JSON to ``path`` (atomically), if a path is given.

    Times in the report are the node's monotonic clock; ``wall_offset`` turns them into Unix
    time, so that reports of several processes can be put on one time line.
    """
    if path is None:
        return
    document = {
        "peer_id": node.peer_id,
        "wall_offset": time.time() - node.clock(),
        "sessions": [session.report(node.peer_id) for session in node.sessions.values()],
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(document))
    temporary.replace(path)


def fail(message: str) -> int:
    """Print ``ppsp: message`` on standard error and return the failure exit code."""
    print(f"ppsp: {message}", file=sys.stderr, flush=True)
    return 1


class ProgressReporter:
    """Progress of a download: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, *, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval
        self.interactive = stream.isatty()
        self._progress: Progress | None = None
        self._task: object = None
        self._last = 0.0

    def __call__(self, session: SwarmSession) -> None:
        """Called on every stored chunk."""
        if session.description is None:
            return
        total = session.description.size
        done = min(total, len(session.bitmap()) * session.description.chunk_size)
        if session.complete:
            done = total
        if self.interactive:
            if self._progress is None:
                # Imported here: rich costs start-up time that only a terminal user sees paid.
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                self._progress = Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    transient=False,
                )
                self._progress.start()
                self._task = self._progress.add_task(session.swarm_id[:12], total=total)
            self._progress.update(self._task, completed=done)  # type: ignore[arg-type]
            return
        now = time.monotonic()
        if now - self._last >= self.interval or session.complete:
            self._last = now
            percent = 100.0 * done / total if total else 100.0
            peers = sum(1 for r in session.remotes.values() if r.offer is not None)
            print(
                f"{session.swarm_id[:12]} {percent:5.1f}% {done}/{total} bytes, {peers} peers",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        """Stop the bar, if one is shown."""
        if self._progress is not None:
            self._progress.stop()


async def seed_main(path: Path, options: PeerOptions, *, chunk_size: int | None = None) -> int:
    """Seed ``path``: print the swarm ID first, serve until SIGINT/SIGTERM, then DISCONNECT."""
    stop = stop_event()
    node = options.node()
    try:
        await node.start()
        session = await node.seed(path, chunk_size=chunk_size)
    except PPSPError as exc:
        await node.stop(disconnect=False)
        return fail(f"cannot seed {path}: {exc}")
    except OSError as exc:
        await node.stop(disconnect=False)
        return fail(f"cannot seed {path}: {exc.strerror or exc}")
    print(session.swarm_id, flush=True)
    print(f"seeding {path} at {node.base_url}", file=sys.stderr, flush=True)
    await stop.wait()
    await node.stop()
    write_report(node, options.report)
    return 0


async def get_main(
    swarm_id: str,
    options: PeerOptions,
    *,
    output: Path,
    timeout: float = 30.0,
    seed_after: bool = False,
) -> int:
    """Download ``swarm_id`` into ``output``; 0 when complete and verified."""
    stop = stop_event()
    node = options.node()
    progress = ProgressReporter()
    try:
        await node.start()
    except OSError as exc:
        return fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    download = asyncio.ensure_future(
        node.download(swarm_id, output, no_progress_timeout=timeout, on_progress=progress)
    )
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({download, stopper}, return_when=asyncio.FIRST_COMPLETED)
        progress.close()
        if not download.done():
            download.cancel()
            return fail("interrupted")
        try:
            session = download.result()
        except (DownloadFailed, PPSPError) as exc:
            return fail(str(exc))
        size = session.description.size if session.description else 0
        print(f"{output}: complete, {size} bytes verified", file=sys.stderr, flush=True)
        if seed_after:
            print(f"seeding at {node.base_url} until interrupted", file=sys.stderr, flush=True)
            await stopper
        return 0
    finally:
        stopper.cancel()
        await node.stop()
        write_report(node, options.report)


async def watch_main(
    swarm_id: str,
    options: PeerOptions,
    *,
    player_host: str = "127.0.0.1",
    player_port: int = 0,
    output: Path | None = None,
    timeout: float = 30.0,
    on_url: Callable[[str], None] | None = None,
) -> int:
    """Watch ``swarm_id``: stored content or a live stream, at a local player URL.

    Stored content is served with Range requests while it downloads (``-o`` keeps the file);
    a live stream is served as one continuous response and, with ``-o FILE`` or ``-o -``,
    written to a file or standard output as it plays.
    """
    stop = stop_event()
    report = options.report
    node = options.node(
        picker_config=PickerConfig(window=WATCH_WINDOW_CHUNKS),
        clock=time.time,
        report_interval=5.0,
    )
    try:
        await node.start()
    except OSError as exc:
        return fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    try:
        session = await node.join_swarm(swarm_id)
        description = await node.obtain_description(session, timeout)
    except (DownloadFailed, PPSPError) as exc:
        await node.stop()
        write_report(node, report)
        return fail(str(exc))
    if isinstance(description, LiveDescription):
        from ppsp.peer.live_commands import watch_live

        return await watch_live(
            node,
            session,
            description,
            stop,
            player_host,
            player_port,
            output,
            timeout,
            report,
            on_url,
        )
    session.description = description
    return await _watch_stored(
        node, session, stop, player_host, player_port, output, timeout, report, on_url
    )


async def serve_player(
    app: web.Application, host: str, port: int, *, to_stderr: bool
) -> tuple[web.AppRunner, str]:
    """Serve a player application; print and return its ``/stream`` URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    url = f"http://{host}:{bound}/stream"
    print(url, file=sys.stderr if to_stderr else sys.stdout, flush=True)
    return runner, url


async def _watch_stored(
    node: PeerNode,
    session: SwarmSession,
    stop: asyncio.Event,
    player_host: str,
    player_port: int,
    output: Path | None,
    timeout: float,
    report: Path | None,
    on_url: Callable[[str], None] | None,
) -> int:
    temp_dir: tempfile.TemporaryDirectory[str] | None = None
    if output is None or str(output) == "-":
        temp_dir = tempfile.TemporaryDirectory(prefix="ppsp-watch-")
        output = Path(temp_dir.name) / "content"
    download = asyncio.ensure_future(
        node.download(session.swarm_id, output, no_progress_timeout=timeout, session=session)
    )
    player = PlayerEndpoint(lambda: node.sessions.get(session.swarm_id))

    async def start_at_beginning() -> None:
        # A viewer watches from the start unless its player seeks: fetch in playback order
        # from chunk 0 until the player asks for something else.
        await session.ready.wait()
        session.seek(0)

    node.spawn(start_at_beginning())
    try:
        runner, url = await serve_player(player.app(), player_host, player_port, to_stderr=False)
    except OSError as exc:
        download.cancel()
        await node.stop()
        return fail(f"cannot listen on {player_host}:{player_port}: {exc.strerror or exc}")
    if on_url is not None:
        on_url(url)
    stopper = asyncio.ensure_future(stop.wait())
    code = 0
    try:
        await asyncio.wait({download, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if download.done():
            try:
                download.result()
                print("download complete; still serving the player", file=sys.stderr, flush=True)
            except (DownloadFailed, PPSPError) as exc:
                code = fail(str(exc))
                stopper.cancel()
            if code == 0:
                await stopper
        else:
            download.cancel()
    finally:
        stopper.cancel()
        await runner.cleanup()
        await node.stop()
        write_report(node, report)
        if temp_dir is not None:
            temp_dir.cleanup()
    return code


class PlayerEndpoint:
    """The local HTTP endpoint players open: the content with Range support, chunk-aware.

    A request for a byte range moves the download's playback window to the first chunk of the
    range at once, then streams each chunk as soon as it is verified.
    """

    def __init__(self, session: Callable[[], SwarmSession | None]) -> None:
        self._session = session

    def app(self) -> web.Application:
        """The aiohttp application serving ``/stream`` (and ``/``)."""
        app = web.Application()
        for path in ("/", "/stream"):
            app.router.add_route("GET", path, self.stream)
            app.router.add_route("HEAD", path, self.stream)
        return app

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Serve the whole content or the requested byte range."""
        session = self._session()
        if session is None:
            raise web.HTTPServiceUnavailable(text="not joined yet")
        await session.ready.wait()
        description = session.description
        if description is None or session.store is None:
            raise web.HTTPServiceUnavailable(text=session.failure or "content not available")
        total = description.size
        try:
            span = parse_range(request.headers.get("Range"), total)
        except RangeNotSatisfiable:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={"Content-Range": f"bytes */{total}"}
            ) from None
        first, last = (0, total - 1) if span is None else (span.first, span.last)
        response = web.StreamResponse(status=200 if span is None else 206)
        response.content_type = description.media_type
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = last - first + 1
        if span is not None:
            response.headers["Content-Range"] = span.content_range
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        chunk_size = description.chunk_size
        first_chunk, last_chunk = first // chunk_size, last // chunk_size
        session.seek(first_chunk)
        for index in range(first_chunk, last_chunk + 1):
            await session.wait_for_chunk(index)
            data = session.store.read(index)
            offset = index * chunk_size
            lo = max(first, offset) - offset
            hi = min(last, offset + len(data) - 1) - offset + 1
            await response.write(data[lo:hi])
        await response.write_eof()
        return response
