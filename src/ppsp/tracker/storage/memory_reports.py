"""What the memory backend keeps of a peer's reports: content maps and statistics as bytes.

A STAT_REPORT replaces the reporting peer's content map and statistics in each swarm it names.
Kept as the decoded message objects (a :class:`~ppsp.wire.common.ContentMap` is a tree of five
objects the garbage collector tracks, a :class:`~ppsp.wire.tracker.StreamStatistics` one more),
every report left objects behind that lived until the peer's next one: at 100,000 reporting
peers, hundreds of thousands of long-lived objects made anew every few seconds, which each
collection of the older generations walked (pauses of 25-250 ms under load, every request on
the event loop waiting meanwhile; docs/BENCHMARKS.md, issue 16).

Here each is kept as one ``bytes`` object (its fields in one flat tuple, ``marshal``-ed),
which the collector never tracks, and built again when read (chunk-scoped peer lists, the
dashboard: rare beside the reports).  Reading back gives objects equal to those kept.  A kept
map starts with its weight (:func:`~ppsp.tracker.storage.base.content_map_bytes`, 4 bytes), so
that the maps' weights per host and in all (:class:`MapWeights`, the bounds of obligation 6)
are kept right when a map is replaced or dropped without reading it.  Pure functions and
counters, no I/O.
"""

from __future__ import annotations

import marshal
import struct
from typing import Any

from ppsp.tracker.limits import Limits
from ppsp.tracker.storage.base import content_map_bytes, kept_segments, map_fits
from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, RepresentationMap, SegmentMap
from ppsp.wire.tracker import StreamStatistics

__all__ = [
    "KeptMap",
    "KeptStats",
    "MapWeights",
    "kept_map",
    "kept_stats",
    "kept_weight",
    "map_of",
    "stats_of",
]

KeptMap = bytes
"""A content map as kept: its weight (4 bytes, big-endian), then one flat tuple, serialised: its
swarm ID and number of representations, then for each its ID and number of segments, then for
each segment its start and end index, chunk-map size and bitmap."""

KeptStats = bytes
"""Statistics as kept: one flat tuple of the fields of
:class:`~ppsp.wire.tracker.StreamStatistics` in order, ``extra`` last as name, value, name,
value..., serialised."""

_WEIGHT = struct.Struct(">I")
"""The weight a kept map starts with."""

_segment = keyword_builder(SegmentMap)
_representation = keyword_builder(RepresentationMap)
_content_map = keyword_builder(ContentMap)
_statistics = keyword_builder(StreamStatistics)


def kept_map(content_map: ContentMap, segments: int | None = None) -> KeptMap:
    """``content_map`` as kept (see the module): its first ``segments`` segments (None: all;
    :func:`~ppsp.tracker.storage.base.kept_segments`), with their weight."""
    representations = content_map.representations
    if len(representations) == 1 and len(representations[0].segments) == 1 and segments != 0:
        # One segment of one representation (every map a peer of this project sends).
        (rep,) = representations
        (s,) = rep.segments
        one = marshal.dumps(
            (
                content_map.swarm_id,
                1,
                rep.representation_id,
                1,
                s.start_index,
                s.end_index,
                s.chunkmap_size,
                s.bitmap,
            )
        )
        return _WEIGHT.pack(content_map_bytes(content_map)) + one
    if segments is not None:
        content_map = kept_segments(content_map, segments)
        representations = content_map.representations
    kept: list[Any] = [content_map.swarm_id, len(representations)]
    for representation in representations:
        kept += (representation.representation_id, len(representation.segments))
        for s in representation.segments:
            kept += (s.start_index, s.end_index, s.chunkmap_size, s.bitmap)
    return _WEIGHT.pack(content_map_bytes(content_map)) + marshal.dumps(tuple(kept))


def kept_weight(kept_bytes: KeptMap) -> int:
    """The weight of the map kept as ``kept_bytes``."""
    weight: int = _WEIGHT.unpack_from(kept_bytes)[0]
    return weight


def map_of(kept_bytes: KeptMap) -> ContentMap:
    """The content map kept as ``kept_bytes``, equal to the one given to :func:`kept_map`."""
    kept = marshal.loads(kept_bytes[4:])
    representations = []
    at = 2
    for _ in range(kept[1]):
        representation_id, count = kept[at], kept[at + 1]
        at += 2
        segments = []
        for _ in range(count):
            start, end, size, bitmap = kept[at : at + 4]
            segments.append(
                _segment(start_index=start, end_index=end, chunkmap_size=size, bitmap=bitmap)
            )
            at += 4
        representations.append(
            _representation(representation_id=representation_id, segments=tuple(segments))
        )
    return _content_map(swarm_id=kept[0], representations=tuple(representations))


def kept_stats(stats: StreamStatistics) -> KeptStats:
    """``stats`` as kept (see the module)."""
    if not stats.extra:  # the common case, without a list
        return marshal.dumps(
            (
                stats.swarm_id,
                stats.uploaded_bytes,
                stats.downloaded_bytes,
                stats.available_bandwidth,
                stats.concurrent_links,
            )
        )
    kept: list[Any] = [
        stats.swarm_id,
        stats.uploaded_bytes,
        stats.downloaded_bytes,
        stats.available_bandwidth,
        stats.concurrent_links,
    ]
    for name, value in stats.extra:
        kept += (name, value)
    return marshal.dumps(tuple(kept))


def stats_of(kept_bytes: KeptStats) -> StreamStatistics:
    """The statistics kept as ``kept_bytes``, equal to those given to :func:`kept_stats`."""
    kept = marshal.loads(kept_bytes)
    extra = kept[5:]
    return _statistics(
        swarm_id=kept[0],
        uploaded_bytes=kept[1],
        downloaded_bytes=kept[2],
        available_bandwidth=kept[3],
        concurrent_links=kept[4],
        extra=tuple(zip(extra[::2], extra[1::2], strict=True)),
    )


class MapWeights:
    """The weight of the content maps a storage keeps, per host (that registered their peers)
    and in all, and the bounds on them (obligation 6).  ``by_host`` has no zeros."""

    __slots__ = ("by_host", "total")

    def __init__(self) -> None:
        self.by_host: dict[str, int] = {}
        self.total = 0

    def change(self, host: str, was: int, weight: int, limits: Limits | None) -> bool:
        """Count a map weighing ``weight`` in place of one weighing ``was`` (0: none) for
        ``host`` ('': none) when :func:`~ppsp.tracker.storage.base.map_fits` lets it be kept
        (``limits`` None: always); whether it was."""
        grow = weight - was
        by_host = self.by_host
        if (
            grow > 0
            and limits is not None
            and not map_fits(was, weight, by_host.get(host, 0), self.total, host, limits)
        ):
            return False
        self.total += grow
        if host and grow:
            held = by_host.get(host, 0) + grow
            if held > 0:
                by_host[host] = held
            else:
                del by_host[host]
        return True

    def add(self, host: str, by: int) -> None:
        """Count ``by`` more bytes (fewer when negative) of maps for ``host`` ('': none)."""
        self.change(host, 0, by, None)

    def move(self, old_host: str, new_host: str, weight: int) -> None:
        """Count ``weight`` bytes of maps for ``new_host`` instead of ``old_host``."""
        if weight and old_host != new_host:
            self.add(old_host, -weight)
            self.add(new_host, weight)
