"""What a chunk scope holds: how many chunks of a ContentGroup a member's content map holds.

A chunk-scoped peer list (a FIND with a ContentGroup, or a CONNECT or JOIN carrying one) ranks
the members it reads by the chunks of the scope their latest content maps hold
(:func:`ppsp.tracker.peerlist.select_peers`), and a chunk-scoped FIND lists only SEEDs and
members holding one.  Every member's map is read against the scope, so the cost of one list is
what this module keeps bounded: per member, the map's segments plus the ranges that meet them
plus the bitmap bytes within the scope (docs/PROTOCOL.md, "Peer lists").  Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ppsp.wire.tracker import ContentMap, RepresentationScope, SegmentMap

__all__ = ["ChunkScope", "holdings", "segment_bits"]

_OPEN_END = 1 << 64
"""The end of an open-ended range of a scope (past every chunk index)."""


def segment_bits(data: bytes) -> int:
    """Bytes of a bitmap as an integer (the most significant bit of byte 0 highest): every
    conversion a chunk-scoped list makes (:class:`ChunkScope`) goes through here."""
    return int.from_bytes(data, "big")


class ChunkScope:
    """The chunks of a scope (a ContentGroup), ready to count what members' content maps hold.

    Built once per peer list: per representation, the union of the scope's ranges as sorted,
    disjoint ranges (a chunk named twice counts once).  :meth:`held` reads a representation's
    segments as sorted, disjoint *runs*: each segment from its first chunk not described by a
    segment that starts before it (a chunk two segments describe is read in the first, in the
    order of their first chunks: counted once).  Runs and ranges are then met in one sweep,
    and where a run and a range meet only the bytes of the run's bitmap they share are made an
    integer (:func:`segment_bits`).  So a map costs its segments, plus the runs and ranges that
    meet (at most their sum), plus the bytes of its bitmaps within the scope: never the product
    of its segments and the scope's items, nor of a bitmap's size and the scope's items.
    """

    __slots__ = ("_ranges",)

    def __init__(self, scope: Iterable[RepresentationScope]) -> None:
        by_rep: dict[str, list[tuple[int, int]]] = {}
        for item in scope:
            end = _OPEN_END if item.end_index is None else item.end_index
            by_rep.setdefault(item.representation_id, []).append((item.start_index, end))
        self._ranges: dict[str, list[tuple[int, int]]] = {}
        for rep, ranges in by_rep.items():
            ranges.sort()
            joined: list[tuple[int, int]] = []
            for start, end in ranges:
                if joined and start <= joined[-1][1] + 1:
                    # Overlapping or adjacent: one range.
                    joined[-1] = (joined[-1][0], max(joined[-1][1], end))
                else:
                    joined.append((start, end))
            self._ranges[rep] = joined

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def held(self, content_map: ContentMap | None) -> int:
        """How many chunks of the scope the content map says are held."""
        if content_map is None:
            return 0
        ranges = self._ranges
        representations = content_map.representations
        if len(representations) == 1:  # the common case, without a table
            rep = representations[0]
            wanted = ranges.get(rep.representation_id)
            return 0 if wanted is None else _held_in(_runs(rep.segments), wanted)
        found: dict[str, list[SegmentMap]] = {}
        for rep in content_map.representations:
            if rep.representation_id in ranges:
                # (A representation a map names twice counts as one.)
                found.setdefault(rep.representation_id, []).extend(rep.segments)
        return sum(_held_in(_runs(segments), ranges[rep]) for rep, segments in found.items())


_Run = tuple[int, int, bytes, int]
"""A run of a representation's map: its first and last chunk, and the bitmap and first chunk
of the segment it is read from (the bitmap's first bit, the most significant of byte 0)."""


def _runs(segments: Sequence[SegmentMap]) -> list[_Run]:
    """A representation's segments as sorted, disjoint runs (see :class:`ChunkScope`)."""
    spans: list[_Run] = []
    for seg in segments:
        bitmap = seg.bitmap
        first = seg.start_index
        # The chunks the segment describes: its range, its size and its bytes agree (the codecs
        # see to it); bits past the last one are never read.
        last = seg.end_index
        if last >= first + seg.chunkmap_size:
            last = first + seg.chunkmap_size - 1
        if last >= first + len(bitmap) * 8:
            last = first + len(bitmap) * 8 - 1
        if last >= first:
            spans.append((first, last, bitmap, first))
    if len(spans) < 2:
        return spans
    spans.sort(key=_first_of)  # stable: segments starting alike in the map's order
    runs = [spans[0]]
    top = spans[0][1]
    for first, last, bitmap, base in spans[1:]:
        if last <= top:
            continue  # every chunk it describes is read in a segment before it
        runs.append((top + 1 if first <= top else first, last, bitmap, base))
        top = last
    return runs


def _first_of(run: _Run) -> int:
    return run[0]


def _held_in(runs: list[_Run], ranges: list[tuple[int, int]]) -> int:
    """Bits set in ``runs`` within ``ranges`` (both sorted and disjoint), in one sweep: of each
    run, only the bytes a range shares with it are read."""
    held = 0
    at = 0
    count = len(ranges)
    to_int = segment_bits
    for first, last, bitmap, base in runs:
        while at < count and ranges[at][1] < first:
            at += 1  # ranges wholly before this run (and so before every later one)
        scan = at
        while scan < count:
            start, end = ranges[scan]
            if start > last:
                break
            lo = (start if start > first else first) - base
            hi = (end if end < last else last) - base
            value = to_int(bitmap[lo >> 3 : (hi >> 3) + 1]) >> (7 - (hi & 7))
            held += (value & ((1 << (hi - lo + 1)) - 1)).bit_count()
            scan += 1
    return held


def holdings(content_map: ContentMap | None, scope: Iterable[RepresentationScope]) -> int:
    """How many chunks of ``scope`` the content map says are held (each chunk once)."""
    return ChunkScope(scope).held(content_map)
