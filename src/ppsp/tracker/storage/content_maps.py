"""What a storage keeps of a content map and what it weighs (obligation 6 of the interface).

The bounds on the content maps kept, as every backend applies them: a map's weight
(:func:`content_map_bytes`), the segments of it that are kept (:func:`kept_segments`) and
whether a map may replace the last one (:func:`map_fits`); the Redis scripts apply the same rules
in Lua.  Part of the storage interface: re-exported by :mod:`ppsp.tracker.storage.base`.

Layer: sans-I/O (the tracker's core).  Imports only :mod:`ppsp.wire` and
:mod:`ppsp.tracker.limits`, never the rest of the storage package (which imports it).
"""

from __future__ import annotations

from ppsp.tracker.limits import Limits
from ppsp.wire.tracker import ContentMap, RepresentationMap

__all__ = ["content_map_bytes", "kept_segments", "map_fits"]


def content_map_bytes(content_map: ContentMap) -> int:
    """What a content map weighs against the bounds on the maps kept (obligation 6): the length
    of its packed form (:func:`~ppsp.tracker.storage.records.pack_content_map`, what Redis
    keeps): 4 bytes and the swarm ID, 6 bytes and the ID of each representation, 28 bytes and
    the bitmap of each segment (IDs in UTF-8)."""
    representations = content_map.representations
    if len(representations) == 1 and len(representations[0].segments) == 1:
        # One segment of one representation (every map a peer of this project sends).
        rep = representations[0]
        return (
            38
            + len(content_map.swarm_id.encode())
            + len(rep.representation_id.encode())
            + len(rep.segments[0].bitmap)
        )
    size = 4 + len(content_map.swarm_id.encode())
    for rep in representations:
        segments = rep.segments
        size += 6 + 28 * len(segments) + len(rep.representation_id.encode())
        for segment in segments:
            size += len(segment.bitmap)
    return size


def kept_segments(content_map: ContentMap, segments: int) -> ContentMap:
    """``content_map`` as a storage keeps it (obligation 6): its first ``segments`` segments
    (``Limits.map_segments_kept``), in the order it gives them; a representation left without
    a segment is dropped.  A map within the bound (every map a peer of this project sends) is
    returned as it is."""
    count = 0
    for rep in content_map.representations:
        count += len(rep.segments)
    if count <= segments:
        return content_map
    left = segments
    representations: list[RepresentationMap] = []
    for rep in content_map.representations:
        if left <= 0:
            break
        if len(rep.segments) > left:
            rep = RepresentationMap(
                representation_id=rep.representation_id, segments=rep.segments[:left]
            )
        representations.append(rep)
        left -= len(rep.segments)
    return ContentMap(swarm_id=content_map.swarm_id, representations=tuple(representations))


def map_fits(
    old: int, new: int, host_bytes: int, total_bytes: int, host: str, limits: Limits | None
) -> bool:
    """Whether a map weighing ``new`` may replace one weighing ``old`` (0: none) (obligation
    6), the maps kept weighing ``host_bytes`` for its peer's ``host`` and ``total_bytes`` in
    all.  The Redis scripts apply the same rule."""
    grow = new - old
    if limits is None or grow <= 0:
        return True
    if limits.per_host and host and host_bytes + grow > limits.map_bytes_per_host:
        return False
    return total_bytes + grow <= limits.map_bytes_total
