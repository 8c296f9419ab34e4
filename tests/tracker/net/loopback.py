"""One HTTP/1.1 POST from a chosen loopback address, over a plain socket: what a tracker test
sends as a peer of that host would (the answer's status line, head and body as they came)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.server import running_tracker
from tracker.storage.redis_server import redis_server

READ_TIMEOUT = 10.0
"""Bound on one exchange (a test's answer comes in milliseconds)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as received: status, reason phrase, header fields (names in lower case), body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


async def post_from(
    local: str, url: str, body: bytes, content_type: str, path: str = "/announce"
) -> Answer:
    """POST ``body`` to the tracker at ``url`` from the address ``local`` (one connection)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, parts.port, local_addr=(local, 0)), READ_TIMEOUT
    )
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        raw = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    finally:
        writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *fields = head_bytes.decode("latin-1").split("\r\n")
    _, status, reason = [*status_line.split(" ", 2), ""][:3]
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status), reason, headers, rest)


@contextlib.asynccontextmanager
async def served_tracker(storage: str) -> AsyncIterator[str]:
    """The URL of a tracker served on loopback with its defaults, on ``storage`` ("memory", or
    "redis": a redis-server of its own)."""
    if storage == "memory":
        async with running_tracker(TrackerConfig()) as running:
            yield running.url
        return
    with redis_server() as server:
        async with running_tracker(TrackerConfig(), storage_url=server.url) as running:
            yield running.url
