"""The memory backend's timers: a time wheel of one-second buckets of peer IDs.

:class:`~ppsp.tracker.storage.memory.MemoryStorage` files every peer's ID under its deadline
(the init or track timer) and asks :class:`TimeWheel` which are due and which comes first.  A
peer's ID is appended to the bucket of its deadline's second, a list slot (8 bytes) rather than
a ``(deadline, peer_id)`` heap entry (64 bytes); a binary heap orders the buckets, not the peers,
and only the earliest second's IDs are moved into a heap of ``(deadline, peer_id)`` when its
deadlines come near, so that expiry pops what is due in order, reading each ID once.

A deadline that moves later is not filed again (*lazy extension*): the ID stays where it was
filed, and when that second comes it is filed anew under the peer's current deadline.  So a
peer that reports every minute costs one entry, not one per report, and the wheel needs no
rebuild (one pass over every peer: up to a second at a million peers).  A deadline that moves
earlier is filed again; its old entry is dropped when met.  Expiry takes at most ``limit`` IDs
a call, so that a mass expiry is cut into batches the event loop serves requests between.
Kept apart from the backend's module: it knows peers by ID and deadline only.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable

__all__ = ["TimeWheel"]


def _second(deadline: float) -> float:
    """The bucket of a deadline: its second (floor), or the deadline itself when infinite."""
    return deadline // 1.0 if math.isfinite(deadline) else deadline


class TimeWheel:
    """Deadlines by second: bucket (a second) -> the IDs whose deadline fell in it when set.

    ``add`` appends an ID to its second's bucket (a heap orders the buckets' seconds).  The
    earliest bucket is opened when it is needed (a deadline may be due in it, or the earliest
    deadline is asked for): its current IDs move, with their deadlines, into a small heap
    (``near``) that takes every later ID of an opened second too, so that each ID is read from
    its bucket once and what is due pops in order.  An ID is current only while its peer's
    deadline (``deadline_of``: None when the peer is gone) is the one it was filed under, so a
    reset deadline needs no removal; ``entries`` counts every ID held, stale ones included
    (:meth:`rebuild` drops them; with lazy extension they stay few).
    """

    __slots__ = ("buckets", "entries", "near", "opened", "seconds")

    def __init__(self) -> None:
        self.buckets: dict[float, list[str]] = {}
        self.seconds: list[float] = []  # a heap of the buckets' keys
        self.near: list[tuple[float, str]] = []  # a heap: the opened seconds' entries
        self.opened = -math.inf  # the last second opened (every earlier one too)
        self.entries = 0

    def add(self, peer_id: str, deadline: float) -> None:
        """Hold ``peer_id`` under ``deadline``."""
        self.entries += 1
        second = _second(deadline)
        if second <= self.opened:
            heapq.heappush(self.near, (deadline, peer_id))
            return
        bucket = self.buckets.get(second)
        if bucket is None:
            self.buckets[second] = [peer_id]
            heapq.heappush(self.seconds, second)
        else:
            bucket.append(peer_id)

    def rebuild(self, deadlines: Iterable[tuple[str, float]]) -> None:
        """Hold exactly these ``(peer_id, deadline)`` pairs (stale entries dropped)."""
        self.buckets = {}
        self.seconds = []
        self.near = []
        self.opened = -math.inf
        self.entries = 0
        for peer_id, deadline in deadlines:
            self.add(peer_id, deadline)

    def _open(self, deadline_of: Callable[[str], float | None]) -> None:
        """Move the earliest bucket's current IDs into ``near``; file anew those whose deadline
        moved later (lazy extension); drop the rest (gone, or filed again earlier)."""
        second = heapq.heappop(self.seconds)
        bucket = self.buckets.pop(second)
        self.entries -= len(bucket)
        self.opened = second
        near = self.near
        for peer_id in bucket:
            deadline = deadline_of(peer_id)
            if deadline is None:
                continue
            filed = _second(deadline)
            if filed == second:
                heapq.heappush(near, (deadline, peer_id))
                self.entries += 1
            elif filed > second:
                self.add(peer_id, deadline)

    def _settle(self, deadline: float, peer_id: str, current: float | None) -> None:
        """An entry popped from ``near`` that is not current: filed anew when its peer's
        deadline moved later, else dropped."""
        self.entries -= 1
        if current is not None and current > deadline:
            self.add(peer_id, current)

    def due(
        self, now: float, deadline_of: Callable[[str], float | None], limit: int | None = None
    ) -> list[str]:
        """Take out the current IDs whose deadline is at or before ``now``, earliest first:
        at most ``limit`` of them (None: all); the others stay for the next call."""
        out: list[str] = []
        taken: set[str] = set()
        near, seconds = self.near, self.seconds
        while limit is None or len(out) < limit:
            if near and near[0][0] <= now:
                deadline, peer_id = heapq.heappop(near)
                current = deadline_of(peer_id)
                if current != deadline:
                    self._settle(deadline, peer_id, current)
                    continue
                self.entries -= 1
                # Filed twice under one deadline (moved earlier and back): taken once.
                if peer_id not in taken:
                    taken.add(peer_id)
                    out.append(peer_id)
            elif seconds and seconds[0] <= now:
                # Every entry of ``near`` is of an opened second, earlier than any bucket's.
                self._open(deadline_of)
            else:
                break
        return out

    def earliest(self, deadline_of: Callable[[str], float | None]) -> float | None:
        """The earliest current deadline (entries met on the way are settled)."""
        near = self.near
        while True:
            while near:
                deadline, peer_id = near[0]
                current = deadline_of(peer_id)
                if current == deadline:
                    return deadline
                heapq.heappop(near)
                self._settle(deadline, peer_id, current)
            if not self.seconds:
                return None
            self._open(deadline_of)
