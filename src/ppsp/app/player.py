"""The local endpoint a player opens (``ppsp watch``), and content written out in order.

:class:`PlayerEndpoint` serves stored content with Range requests while it downloads
(``/stream``), and the watch page a browser opens at the root (:mod:`ppsp.app.web`);
:func:`serve_player` runs any player application on the player address (the one for live
streams is :class:`ppsp.app.live_commands.LivePlayerEndpoint`); :func:`copy_in_order` writes a
download to a stream (``-o -``) chunk by chunk as the chunks are verified.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from collections.abc import Callable
from typing import BinaryIO

import aiohttp
from aiohttp import web

from ppsp.app.web import WatchPage, stored_figures
from ppsp.codecs.rangehdr import RangeNotSatisfiable, parse_range
from ppsp.peer.net.session import SwarmSession

log = logging.getLogger(__name__)

DEFAULT_PLAYER_PORT = 8080
"""The player port tried first when none is given; any free port is taken when it is in use."""

PLAYER_SHUTDOWN_S = 0.25
"""How long a stopping viewer lets players' requests finish before cutting them."""

PLAYER_GONE = (ConnectionError, aiohttp.ClientConnectionResetError)
"""What writing to a player that went away (closed, seeked elsewhere) raises: not an error."""


async def serve_player(
    app: web.Application, host: str, port: int | None, *, to_stderr: bool, hls: bool = False
) -> tuple[web.AppRunner, str]:
    """Serve a player application; print and return its ``/stream`` URL.

    The URL goes to standard output (standard error when ``to_stderr``), the first line there;
    the watch page's URL (the root) and, with ``hls``, the HLS playlist's follow on standard
    error.  ``port`` None takes DEFAULT_PLAYER_PORT when it is free and any free port
    otherwise, so that several viewers run side by side on one machine.  A request whose player
    goes away is cancelled at once, and stopping cuts the requests still running after
    PLAYER_SHUTDOWN_S.
    """
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=PLAYER_SHUTDOWN_S,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, DEFAULT_PLAYER_PORT if port is None else port).start()
        except OSError as exc:
            if port is not None or exc.errno != errno.EADDRINUSE:
                raise
            await web.TCPSite(runner, host, 0).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    shown = f"[{host}]" if ":" in host else host
    root = f"http://{shown}:{bound}/"
    url = root + "stream"
    print(url, file=sys.stderr if to_stderr else sys.stdout, flush=True)
    also = f" (HLS: {root}live.m3u8)" if hls else ""
    print(f"watch in a browser at {root}{also}", file=sys.stderr, flush=True)
    return runner, url


class PlayerEndpoint:
    """The local HTTP endpoint players open: the content with Range support, chunk-aware.

    A request for a byte range moves the download's playback window to the first chunk of the
    range at once, then streams each chunk as soon as it is verified.  A player that closes
    the connection or seeks elsewhere (which closes it) ends its request quietly.
    """

    def __init__(self, session: Callable[[], SwarmSession | None]) -> None:
        self._session = session

    def app(self) -> web.Application:
        """The aiohttp application serving ``/stream`` and the watch page (``/``,
        ``/stats.json``, ``/static/*``)."""
        app = web.Application()
        app.router.add_route("GET", "/stream", self.stream)
        app.router.add_route("HEAD", "/stream", self.stream)
        WatchPage(kind="stored", swarm_id=self._swarm_id, figures=self.figures).add_routes(app)
        return app

    def _swarm_id(self) -> str:
        session = self._session()
        return "" if session is None else session.swarm_id

    def figures(self) -> dict[str, object]:
        """This viewer's figures for the watch page (``/stats.json``)."""
        return stored_figures(self._session())

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
        try:
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
        except PLAYER_GONE:
            log.debug("player left %s", request.path_qs)
        return response


async def copy_in_order(session: SwarmSession, sink: BinaryIO) -> int:
    """Write the session's content to ``sink`` in order, each chunk once it is verified.

    Returns the bytes written.  The writes run in a thread (a pipe to a slow reader blocks);
    BrokenPipeError when the reader has gone.
    """
    await session.ready.wait()
    description, store = session.description, session.store
    if description is None or store is None:
        return 0
    written = 0
    for index in range(description.representation().chunk_count):
        await session.wait_for_chunk(index)
        data = store.read(index)
        await asyncio.to_thread(_write_all, sink, data)
        written += len(data)
    await asyncio.to_thread(sink.flush)
    return written


def _write_all(sink: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        count = sink.write(view)
        view = view[count if count is not None else len(view) :]
