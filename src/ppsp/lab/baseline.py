"""The client-server baseline: one plain HTTP server, its upload capped, and N downloading clients.

The server serves one file at ``/content`` and paces every response through a single
:class:`~ppsp.core.ratelimit.TokenBucket` shared by all connections, so that together they never
exceed the cap, as the swarm's source never does.  The clients start at the same offsets as the
swarm's peers and each fetches the whole file; their times are the baseline the swarm is
compared with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from ppsp.core.ratelimit import TokenBucket
from ppsp.lab.report import BaselineFigures

PIECE = 16 * 1024
"""Bytes written per paced write."""


class PacedFileServer:
    """An aiohttp server of one file at ``/content``, all responses sharing one rate cap."""

    def __init__(self, path: Path, rate: float, *, host: str = "127.0.0.1") -> None:
        self.data = path.read_bytes()
        self.rate = rate
        self.host = host
        self.bucket = TokenBucket(rate, now=time.monotonic())
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port of ``host``; returns the content's URL."""
        app = web.Application()
        app.router.add_get("/content", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.url = f"http://{self.host}:{port}/content"
        return self.url

    async def stop(self) -> None:
        """Close the listening socket and every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.content_length = len(self.data)
        await response.prepare(request)
        view = memoryview(self.data)
        for offset in range(0, len(self.data), PIECE):
            piece = view[offset : offset + PIECE]
            delay = self.bucket.reserve(len(piece), time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
            await response.write(bytes(piece))
        await response.write_eof()
        return response


async def _client(
    http: aiohttp.ClientSession, url: str, size: int, start: float, deadline: float
) -> float:
    """Wait ``start`` seconds, download ``url``; returns the download's duration."""
    await asyncio.sleep(start)
    began = time.monotonic()
    received = 0
    async with asyncio.timeout(max(0.0, deadline - began)):
        async with http.get(url) as response:
            response.raise_for_status()
            async for block in response.content.iter_chunked(1 << 16):
                received += len(block)
    if received != size:
        raise ValueError(f"received {received} of {size} bytes")
    return time.monotonic() - began


async def run_baseline(
    path: Path, *, rate: float, starts: Sequence[float], timeout: float
) -> BaselineFigures:
    """Serve ``path`` at ``rate`` and download it once per entry of ``starts`` (seconds).

    Every client is bounded by ``timeout`` seconds from the baseline's beginning; a client that
    fails or runs out of time has no completion time and its error is listed.
    """
    server = PacedFileServer(path, rate)
    url = await server.start()
    size = len(server.data)
    first = min(starts, default=0.0)
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    times: list[float | None] = []
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            results = await asyncio.gather(
                *(_client(http, url, size, start - first, deadline) for start in starts),
                return_exceptions=True,
            )
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                errors.append(f"client {i + 1}: {type(result).__name__}: {result}")
                times.append(None)
            else:
                times.append(result)
    finally:
        await server.stop()
    return BaselineFigures(
        rate=rate,
        size=size,
        joined_at=tuple(start - first for start in starts),
        completion_times=tuple(times),
        errors=tuple(errors),
    )
