"""Pacing bytes on the event loop: the upload and download caps of a peer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ppsp.core.ratelimit import TokenBucket


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
