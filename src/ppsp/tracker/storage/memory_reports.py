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
dashboard: rare beside the reports).  Reading back gives objects equal to those kept.  Pure
functions, no I/O.
"""

from __future__ import annotations

import marshal
from typing import Any

from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, RepresentationMap, SegmentMap
from ppsp.wire.tracker import StreamStatistics

__all__ = ["KeptMap", "KeptStats", "kept_map", "kept_stats", "map_of", "stats_of"]

KeptMap = bytes
"""A content map as kept: one flat tuple, serialised: its swarm ID and number of
representations, then for each its ID and number of segments, then for each segment its start
and end index, chunk-map size and bitmap."""

KeptStats = bytes
"""Statistics as kept: one flat tuple of the fields of
:class:`~ppsp.wire.tracker.StreamStatistics` in order, ``extra`` last as name, value, name,
value..., serialised."""

_segment = keyword_builder(SegmentMap)
_representation = keyword_builder(RepresentationMap)
_content_map = keyword_builder(ContentMap)
_statistics = keyword_builder(StreamStatistics)


def kept_map(content_map: ContentMap) -> KeptMap:
    """``content_map`` as kept (see the module)."""
    kept: list[Any] = [content_map.swarm_id, len(content_map.representations)]
    for representation in content_map.representations:
        kept += (representation.representation_id, len(representation.segments))
        for s in representation.segments:
            kept += (s.start_index, s.end_index, s.chunkmap_size, s.bitmap)
    return marshal.dumps(tuple(kept))


def map_of(kept_bytes: KeptMap) -> ContentMap:
    """The content map kept as ``kept_bytes``, equal to the one given to :func:`kept_map`."""
    kept = marshal.loads(kept_bytes)
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
