"""The memory backend's index of swarms: their IDs in code-point order, read by rank.

:class:`~ppsp.tracker.storage.memory.MemoryStorage` adds a swarm's ID when the swarm gets its
first member and removes it with its last, so that the dashboard's pages of swarms
(:meth:`~ppsp.tracker.storage.memory.MemoryStorage.swarm_page`) cost the number of blocks plus
the page, whatever the number of swarms.  :class:`SortedIds` keeps the IDs in sorted blocks of
about a thousand, so that adding or removing one moves a block rather than every ID.  Kept apart
from the backend's module: a container of its own, written as swarms appear and disappear and
read only by the dashboard.
"""

from __future__ import annotations

import bisect

__all__ = ["SortedIds"]

_BLOCK = 1024
"""Size a block of :class:`SortedIds` is split back to once it holds twice as many."""


class SortedIds:
    """A set of strings in ascending order, read by rank: sorted blocks and each block's last.

    Adding or removing costs a binary search among the blocks and one within a block (a list
    of at most ``2 * _BLOCK``); reading ``limit`` strings from rank ``offset`` costs the
    number of blocks plus ``limit``.  Only strings not held are added.
    """

    __slots__ = ("_blocks", "_lasts")

    def __init__(self) -> None:
        self._blocks: list[list[str]] = []
        self._lasts: list[str] = []

    def add(self, key: str) -> None:
        """Hold ``key`` (which must not be held yet)."""
        lasts = self._lasts
        if not lasts:
            self._blocks.append([key])
            lasts.append(key)
            return
        at = bisect.bisect_left(lasts, key)
        if at == len(lasts):  # past every block: the last one grows
            at -= 1
            block = self._blocks[at]
            block.append(key)
            lasts[at] = key
        else:
            block = self._blocks[at]
            bisect.insort(block, key)
        if len(block) > 2 * _BLOCK:
            rest = block[_BLOCK:]
            del block[_BLOCK:]
            self._blocks.insert(at + 1, rest)
            lasts[at] = block[-1]
            lasts.insert(at + 1, rest[-1])

    def remove(self, key: str) -> None:
        """Stop holding ``key`` (nothing happens when it is not held)."""
        lasts = self._lasts
        at = bisect.bisect_left(lasts, key)
        if at == len(lasts):
            return
        block = self._blocks[at]
        index = bisect.bisect_left(block, key)
        if index == len(block) or block[index] != key:
            return
        del block[index]
        if not block:
            del self._blocks[at]
            del lasts[at]
        elif index == len(block):
            lasts[at] = block[-1]

    def page(self, offset: int, limit: int) -> list[str]:
        """At most ``limit`` strings from rank ``offset`` on (0: the first), in order."""
        out: list[str] = []
        if limit <= 0:
            return out
        for block in self._blocks:
            if offset >= len(block):
                offset -= len(block)
                continue
            out.extend(block[offset : offset + limit - len(out)])
            offset = 0
            if len(out) >= limit:
                break
        return out
