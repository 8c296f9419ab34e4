"""What the peer's HTTP server and HTTP clients share: the requester's header, bounded bodies.

Every body read from another peer (a peer protocol message, a description, a chunk) is read
with a bound on its length, and, under a download cap, paced by the cap
(:class:`~ppsp.peer.net.limiter.RateLimiter`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp

from ppsp.peer.net.limiter import RateLimiter

PEER_ID_HEADER = "PPSP-Peer-ID"
"""Request header naming the fetching peer, so that uploads are counted per peer."""

MAX_DESCRIPTION_BYTES = 64 << 20
"""Largest content description accepted from another peer."""

MAX_PEER_MESSAGE_BYTES = 1 << 20
"""Largest peer protocol request body accepted."""


class BodyTooLarge(ConnectionError):
    """An HTTP body exceeded the bound set for it."""


async def read_bounded(
    stream: aiohttp.StreamReader, limit: int, *, limiter: RateLimiter | None = None
) -> bytes:
    """Read a whole HTTP body, refusing one longer than ``limit`` bytes.

    With a ``limiter``, every piece read is paced by the download rate limit.
    """
    return b"".join(await read_pieces(stream, limit, limiter=limiter))


async def read_pieces(
    stream: aiohttp.StreamReader,
    limit: int,
    *,
    limiter: RateLimiter | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Read a whole HTTP body as the pieces received, refusing one longer than ``limit`` bytes.

    Buffered pieces are not joined.  With a ``limiter``, pieces of at most 64 KiB are read,
    each paced by the download rate limit.  ``on_bytes`` is called with the number of bytes
    read so far after each piece.
    """
    parts: list[bytes] = []
    size = 0
    async for part in _body_pieces(stream, small=limiter is not None):
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        parts.append(part)
        if on_bytes is not None:
            on_bytes(size)
        if limiter is not None:
            await limiter.consume(len(part))
    return parts


async def _body_pieces(stream: aiohttp.StreamReader, *, small: bool) -> AsyncIterator[bytes]:
    if small:
        while part := await stream.read(65536):
            yield part
        return
    async for part, _ in stream.iter_chunks():
        if part:
            yield part
