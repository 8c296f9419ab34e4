"""Pacing bytes on the event loop: the upload and download caps of a peer.

The upload cap is one bucket for every transport: HTTP bodies go through
:meth:`RateLimiter.consume`, PPSPP engines ask an :class:`~ppsp.peer.upload.pacing.UploadPacer`
over the same bucket (:func:`upload_pacer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ppsp.core.ratelimit import TokenBucket
from ppsp.peer.upload.pacing import UploadPacer


class RateLimiter:
    """Paces bytes through a :class:`~ppsp.core.ratelimit.TokenBucket` on the event loop."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.bucket = TokenBucket(rate, now=clock())
        self._turn = asyncio.Lock()

    async def consume(self, nbytes: int, *, still_wanted: Callable[[], bool] | None = None) -> bool:
        """Wait until ``nbytes`` may pass; False when ``still_wanted`` says not to send them.

        Senders take turns (first come, first served), and a sender reserves its bytes only when
        its turn comes: a request whose requester gave up meanwhile costs nothing, instead of
        pushing every later request further back.
        """
        async with self._turn:
            if still_wanted is not None and not still_wanted():
                return False
            wait = self.bucket.reserve(nbytes, self.clock())
            if wait > 0:
                await asyncio.sleep(wait)
        return True


def upload_pacer(limiter: RateLimiter | None) -> UploadPacer | None:
    """A PPSPP engine's pacer under the upload cap ``limiter`` (its bucket, on its clock: the
    event loop's monotonic time, which the engines are given); None without a cap."""
    return None if limiter is None else UploadPacer(limiter.bucket)
