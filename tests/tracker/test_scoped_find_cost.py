"""What one chunk-scoped FIND costs, counted (never timed): each stored segment read once,
whatever the scope; the segments kept per map bounded; and what is counted is right."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ppsp.tracker import chunk_scope
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS, Limits
from ppsp.tracker.peerlist import ChunkScope, holdings, select_peers
from ppsp.tracker.storage import Storage, SwarmMember
from ppsp.tracker.storage.base import kept_segments
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    ContentMap,
    FindRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1


class CountedSegment:
    """A segment that counts how often its bitmap is read (a stand-in for SegmentMap)."""

    reads = 0

    def __init__(self, start: int, size: int, bitmap: bytes) -> None:
        self.start_index, self.end_index, self.chunkmap_size = start, start + size - 1, size
        self._bitmap = bitmap

    @property
    def bitmap(self) -> bytes:
        CountedSegment.reads += 1
        return self._bitmap


def member(peer_id: str, segments: list[Any]) -> SwarmMember:
    rep = RepresentationMap(representation_id="r", segments=tuple(segments))
    return SwarmMember(
        peer_id=peer_id,
        mode=PeerMode.LEECH,
        addresses=(PeerAddress(ip=f"192.0.2.{len(peer_id)}", port=1, type=AddressType.REFLEXIVE),),
        content_map=ContentMap(swarm_id="s", representations=(rep,)),
    )


def test_a_scoped_list_reads_each_stored_segment_once_whatever_the_scope() -> None:
    # 40 members whose maps hold 16 overlapping segments each; a scope of 16 ranges, every
    # one meeting every segment.  The cost was segments x ranges bitmap conversions per member.
    members = [
        member(f"m{i}", [CountedSegment(0, 64, bytes([0xFF] * 8)) for _ in range(16)])
        for i in range(40)
    ]
    scope = tuple(
        RepresentationScope(representation_id="r", start_index=2 * k, end_index=2 * k)
        for k in range(16)
    )
    CountedSegment.reads = 0
    chosen = select_peers(
        members,
        requester_id="x",
        requester_addresses=(),
        count=20,
        rng=random.Random(1),
        scope=scope,
        require_scope=True,
        share=None,
    )
    assert len(chosen) == 20
    assert CountedSegment.reads <= 40 * 16


def test_each_segment_is_converted_once_and_only_where_the_scope_meets_it(
    monkeypatch: Any,
) -> None:
    made: list[bytes] = []
    real = chunk_scope.segment_bits

    def counted(data: bytes) -> int:
        made.append(data)
        return real(data)

    monkeypatch.setattr(chunk_scope, "segment_bits", counted)
    # 16 segments, a scope naming all of them 64 times over: one conversion a segment.
    segments = [SegmentMap(start_index=8 * i, end_index=8 * i + 7, chunkmap_size=8,
                           bitmap=b"\xff") for i in range(16)]  # fmt: skip
    scope = [RepresentationScope(representation_id="r", start_index=k) for k in range(16)]
    assert ChunkScope(scope * 4).held(member("a", segments).content_map) == 128
    assert len(made) == 16
    # One segment of 44 KiB, 16 ranges of one chunk each: 16 bytes read, not 16 x 44 KiB.
    made.clear()
    size = 44 * 1024 * 8
    big = SegmentMap(start_index=0, end_index=size - 1, chunkmap_size=size,
                     bitmap=b"\xaa" * (size // 8))  # fmt: skip
    scope = [
        RepresentationScope(
            representation_id="r", start_index=k * (size // 16), end_index=k * (size // 16)
        )
        for k in range(16)
    ]
    assert ChunkScope(scope).held(member("a", [big]).content_map) == 16
    assert sum(len(data) for data in made) == 16
    # 16 segments that describe the same chunks: read in the first alone.
    made.clear()
    overlapping = [CountedSegment(0, 64, bytes([0xFF] * 8)) for _ in range(16)]
    assert ChunkScope(scope[:1]).held(member("a", overlapping).content_map) == 1
    assert len(made) == 1


def brute_force(content_map: ContentMap, scope: list[RepresentationScope]) -> int:
    """Chunks of the scope held, counted one by one (each chunk once, read in the first segment
    that describes it, in the order of their first chunks then the map's)."""
    count = 0
    chunks = {(s.representation_id, i) for s in scope for i in range(s.start_index, 100)
              if s.end_index is None or i <= s.end_index}  # fmt: skip
    for rep_id, i in chunks:
        segments = [
            seg
            for rep in content_map.representations
            if rep.representation_id == rep_id
            for seg in rep.segments
            if seg.start_index <= i <= min(seg.end_index, seg.start_index + seg.chunkmap_size - 1)
        ]
        if segments:
            seg = min(segments, key=lambda s: s.start_index)  # the first of equals: min is stable
            offset = i - seg.start_index
            count += bool(seg.bitmap[offset // 8] & (0x80 >> offset % 8))
    return count


@st.composite
def small_segments(draw: st.DrawFn) -> SegmentMap:
    start = draw(st.integers(0, 40))
    size = draw(st.integers(1, 24))
    bitmap = bytearray(draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8)))
    if size % 8:
        bitmap[-1] &= (0xFF << (8 - size % 8)) & 0xFF
    return SegmentMap(
        start_index=start, end_index=start + size - 1, chunkmap_size=size, bitmap=bytes(bitmap)
    )


reps = st.sampled_from(["a", "b"])


@given(
    st.lists(st.tuples(reps, st.lists(small_segments(), max_size=5)), max_size=3),
    st.lists(
        st.builds(
            lambda rep, start, length: RepresentationScope(
                representation_id=rep,
                start_index=start,
                end_index=None if length is None else start + length,
            ),
            reps,
            st.integers(0, 60),
            st.one_of(st.none(), st.integers(0, 30)),
        ),
        max_size=6,
    ),
)
def test_holdings_count_each_chunk_of_the_scope_held_once(
    parts: list[tuple[str, list[SegmentMap]]], scope: list[RepresentationScope]
) -> None:
    content_map = ContentMap(
        swarm_id="s",
        representations=tuple(
            RepresentationMap(representation_id=rep, segments=tuple(segs)) for rep, segs in parts
        ),
    )
    assert holdings(content_map, scope) == brute_force(content_map, scope)


def many_segments(swarm_id: str, count: int) -> ContentMap:
    """The review's map: ``count`` one-byte segments of one representation."""
    segments = tuple(
        SegmentMap(start_index=8 * i, end_index=8 * i + 7, chunkmap_size=8, bitmap=b"\xff")
        for i in range(count)
    )
    return ContentMap(
        swarm_id=swarm_id,
        representations=(RepresentationMap(representation_id="r", segments=segments),),
    )


def test_maps_keep_their_first_segments_only() -> None:
    kept = DEFAULT_LIMITS.map_segments_kept
    small = many_segments("s", kept)
    assert kept_segments(small, kept) is small
    assert kept_segments(many_segments("s", 790), kept) == many_segments("s", kept)
    two = ContentMap(
        swarm_id="t",
        representations=(
            RepresentationMap(representation_id="a", segments=small.representations[0].segments),
            RepresentationMap(representation_id="b", segments=small.representations[0].segments),
        ),
    )
    cut = kept_segments(two, kept)
    assert [rep.representation_id for rep in cut.representations] == ["a"]


async def test_the_tracker_stores_the_first_segments_of_a_report(storage: Storage) -> None:
    limits = Limits(map_segments_kept=4)
    tracker = Tracker(storage, TrackerConfig(limits=limits), rng=random.Random(2))
    join = SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH)
    ids = {"version": V11, "peer_id": "p"}
    seen = ("198.51.100.4", 4000)
    await tracker.handle(
        ConnectRequest(transaction_id="1", swarm_actions=(join,), **ids),  # type: ignore[arg-type]
        observed=seen,
        now=1.0,
    )
    report = StatReportRequest(transaction_id="2", content_maps=(many_segments("s", 790),), **ids)  # type: ignore[arg-type]
    await tracker.handle(report, observed=seen, now=2.0)
    assert await storage.get_content_map("s", "p") == many_segments("s", 4)
    # A chunk-scoped FIND of another peer finds p by the chunks its segments kept say it holds.
    other = {"version": V11, "peer_id": "q"}
    await tracker.handle(
        ConnectRequest(transaction_id="3", swarm_actions=(join,), **other),  # type: ignore[arg-type]
        observed=("198.51.100.5", 4000),
        now=3.0,
    )
    for start, listed in ((0, ["p"]), (31, ["p"]), (32, [])):
        scope = (RepresentationScope(representation_id="r", start_index=start),)
        find = FindRequest(transaction_id="4", swarm_id="s", content_group=scope, **other)  # type: ignore[arg-type]
        answer = await tracker.handle(find, observed=("198.51.100.5", 4000), now=4.0)
        assert [p.peer_id for p in answer.peers] == listed
