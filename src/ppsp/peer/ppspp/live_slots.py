"""Send slots of a live server under an upload cap: a few channels send at a time, in turn.

Sans-I/O, no clock.  :class:`~.live_server.LiveServer` under an upload cap (a
:class:`~ppsp.peer.upload.pacing.UploadPacer`) lets at most ``slots`` channels with requested
chunks queued take turns at the cap; the others wait, in the order they asked, and each slot
that frees (its channel's queue is empty: sent, cancelled or closed) goes to the first waiting
channel of a host that has none sending, else to the first waiting channel (no slot is left
idle).  It is the rule of HTTP's fair serving (:data:`~ppsp.peer.upload.fair.CAPPED_SLOTS`):
sharing a capped rate among every requester at once finishes all their chunks late together,
while served in turn each chunk completes early and its receiver can pass it on sooner.  (A
live source sharing its 6 Mbit/s among about 15 requests at once took 2-2.5 s per live chunk
instead of 0.2-0.5 s, docs/PROTOCOL.md, "PPSPP live".)  Without a cap every channel sends at
once, as before: only a capped server has slots.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

__all__ = ["SendSlots"]


class SendSlots:
    """Which channels (by key) may send: ``slots`` at a time, the others waiting in turn.
    ``queued(key)`` says whether a channel still has chunks queued: one that has none when its
    turn comes leaves the wait."""

    def __init__(self, slots: int, queued: Callable[[int], bool]) -> None:
        if slots < 1:
            raise ValueError("a server sends on one channel at least")
        self.slots = slots
        self._queued = queued
        self._active: dict[int, str] = {}
        """Channels sending -> their host."""
        self._waiting: OrderedDict[int, str] = OrderedDict()
        """Channels waiting for a slot -> their host, in the order they asked."""
        self.waits = 0
        """Times a channel had to wait for a slot."""

    def sending(self, key: int) -> bool:
        """Whether channel ``key`` holds a slot."""
        return key in self._active

    @property
    def waiting(self) -> int:
        """Channels waiting for a slot."""
        return len(self._waiting)

    def want(self, key: int, host: str) -> list[int]:
        """Channel ``key`` (on ``host``) has chunks queued: it keeps its slot, takes a free one
        or waits (keeping its place).  The channels given a slot now, ``key`` among them when
        it got one."""
        if key in self._active:
            return []
        if key not in self._waiting:
            self._waiting[key] = host
        admitted = self._fill()
        if key not in admitted:
            self.waits += 1
        return admitted

    def release(self, key: int) -> list[int]:
        """Channel ``key`` has nothing queued, or is gone: its slot (or its place in the wait)
        is given up.  The channels given a slot in its place."""
        self._waiting.pop(key, None)
        if self._active.pop(key, None) is None:
            return []
        return self._fill()

    def _fill(self) -> list[int]:
        admitted: list[int] = []
        while self._waiting and len(self._active) < self.slots:
            busy = set(self._active.values())
            key = next((k for k, host in self._waiting.items() if host not in busy), None)
            if key is None:
                key = next(iter(self._waiting))
            host = self._waiting.pop(key)
            if self._queued(key):
                self._active[key] = host
                admitted.append(key)
        return admitted
