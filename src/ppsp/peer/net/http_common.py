"""What the peer's HTTP server and HTTP clients share: the requester's header, bounded bodies.

Every body read from another peer (a peer protocol message, a description, a chunk) is read
with a bound on its length, and, under a download cap, paced by the cap
(:class:`~ppsp.peer.net.limiter.RateLimiter`).  A body is any :class:`BodyStream`: the client's
answers (:class:`ppsp.http.client.ResponseBody`) and a server's requests alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ppsp.errors import BodyTooLarge
from ppsp.peer.net.limiter import RateLimiter

__all__ = [
    "DESCRIPTION_BYTES_IN_FLIGHT",
    "MAX_DESCRIPTION_BYTES",
    "MAX_PEER_MESSAGE_BYTES",
    "PEER_ID_HEADER",
    "BodyStream",
    "BodyTooLarge",
    "read_bounded",
    "read_pieces",
]

LIMITED_PIECE_BYTES = 65536
"""Largest piece read at a time under a download cap: each is paced by the cap."""


class BodyStream(Protocol):
    """An HTTP body as it arrives: ``readany()`` gives the next piece received, ``read(n)``
    at most ``n`` bytes of it; both give b"" at the body's end."""

    async def readany(self) -> bytes:
        """The next piece of the body as received; b"" at its end."""
        ...

    async def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes of the body; b"" at its end."""
        ...


PEER_ID_HEADER = "PPSP-Peer-ID"
"""Request header naming the fetching peer, so that uploads are counted per peer."""

MAX_DESCRIPTION_BYTES = 64 << 20
"""Largest content description accepted from another peer."""

DESCRIPTION_BYTES_IN_FLIGHT = MAX_DESCRIPTION_BYTES
"""Bytes of descriptions a swarm session holds while they arrive, every peer asked together
(a search asks several peers at once and more while none answers,
:mod:`ppsp.peer.download.describing`): room for one description of the largest size, not one
per peer asked (peers sending 64 MiB less a byte each, then nothing, had a download hold over
half a gigabyte).  A peer whose bytes would pass it is asked again in a later round, no fault
of its own."""

MAX_PEER_MESSAGE_BYTES = 1 << 20
"""Largest peer protocol request body accepted."""


async def read_bounded(
    stream: BodyStream, limit: int, *, limiter: RateLimiter | None = None
) -> bytes:
    """Read a whole HTTP body, refusing one longer than ``limit`` bytes (BodyTooLarge).

    With a ``limiter``, every piece read is paced by the download rate limit.
    """
    return b"".join(await read_pieces(stream, limit, limiter=limiter))


async def read_pieces(
    stream: BodyStream,
    limit: int,
    *,
    limiter: RateLimiter | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Read a whole HTTP body as the pieces received, refusing one longer than ``limit`` bytes
    (:class:`~ppsp.errors.BodyTooLarge`).

    Pieces are not joined.  With a ``limiter``, pieces of at most
    :data:`LIMITED_PIECE_BYTES` are read, each paced by the download rate limit.  ``on_bytes``
    is called with the number of bytes read so far after each piece.
    """
    parts: list[bytes] = []
    size = 0
    while True:
        if limiter is None:
            part = await stream.readany()
        else:
            part = await stream.read(LIMITED_PIECE_BYTES)
        if not part:
            return parts
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        parts.append(part)
        if on_bytes is not None:
            on_bytes(size)
        if limiter is not None:
            await limiter.consume(len(part))
