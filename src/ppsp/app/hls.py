"""A live stream as HLS (RFC 8216): the chunks a viewer plays, as a sliding-window playlist.

Sans-I/O: :class:`LiveSegmenter` is told each chunk the viewer plays (its index, payload,
source timestamp and START flag) and answers the media playlist's text and the segments'
bytes; the player endpoint (:mod:`ppsp.app.live_commands`) serves them over HTTP.  Nothing
here reads a clock: durations come from the chunks' source timestamps.

**Segments.**  A segment begins at a start point (a chunk whose signed START flag says a
player can begin there: the program tables, then a key frame) and takes the chunks that follow
it up to the next start point, so every segment a player may begin with decodes at once.  With
a key frame at every chunk, that is one chunk per segment.  A segment is closed early, and the
next one begins with an ordinary chunk, when one more chunk, as long as the source cuts them,
could make its EXTINF round above the target duration, or when it reaches
:data:`MAX_SEGMENT_CHUNKS` chunks or :data:`MAX_SEGMENT_BYTES` bytes.  A segment is listed
once it is closed: when the next chunk is played, or when the stream ended.  A segment is named
by its first chunk's index (``segments/INDEX.ts``); its media sequence number counts the
segments made since the viewer started.

**Durations.**  A chunk lasts from its source timestamp to the next chunk's (a chunk's
timestamp is when its first byte reached the source), at most :data:`MAX_CHUNK_FACTOR` times
the nominal chunk duration (the source cuts chunks of at most 1.75 times it; a longer gap is a
pause of the input, not media); a chunk whose successor was skipped, or the stream's last,
lasts the nominal duration.  EXT-X-TARGETDURATION is fixed for the stream (RFC 8216 section
6.2.1: it must not change): the longest chunk, :data:`MAX_CHUNK_FACTOR` nominal durations,
rounded up, and at least :data:`MIN_TARGET_DURATION_S` seconds; every EXTINF is at most the
target.

**Gaps.**  A skipped chunk (one the viewer gave up on) ends the segment before it; the next
segment is the next start point, marked EXT-X-DISCONTINUITY, and the chunks between are left
out (a decoder that lost data starts again at a key frame).  EXT-X-DISCONTINUITY-SEQUENCE
counts the discontinuities that left the playlist.

**Bounds.**  The playlist lists the newest :data:`PLAYLIST_SEGMENTS` segments; the newest
:data:`KEPT_SEGMENTS` (at most :data:`KEPT_BYTES` bytes, the newest segment always) can be
fetched, so that a segment stays available a while after it left the playlist (RFC 8216
section 6.2.2).  Chunk indexes that do not rise are ignored.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ppsp.peer.live.envelope import MAX_INDEX

__all__ = [
    "CUT_CHUNK_FACTOR",
    "KEPT_BYTES",
    "KEPT_SEGMENTS",
    "MAX_CHUNK_FACTOR",
    "MAX_SEGMENT_BYTES",
    "MAX_SEGMENT_CHUNKS",
    "MIN_TARGET_DURATION_S",
    "PLAYLIST_SEGMENTS",
    "LiveSegmenter",
    "Segment",
    "parse_segment_name",
    "render_playlist",
    "target_duration",
]

PLAYLIST_SEGMENTS: Final = 12
"""Segments a playlist lists at most (the newest)."""

KEPT_SEGMENTS: Final = 2 * PLAYLIST_SEGMENTS
"""Segments whose bytes are kept (the newest): those listed and as many that left the list."""

KEPT_BYTES: Final = 64 * 1024 * 1024
"""Most bytes of segments kept; the oldest go first (the newest is always kept)."""

MAX_SEGMENT_CHUNKS: Final = 64
"""Most chunks in one segment."""

MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
"""Most bytes in one segment (a chunk larger than it is a segment of its own)."""

MIN_TARGET_DURATION_S: Final = 2
"""Least EXT-X-TARGETDURATION: room for a group of pictures of up to about two seconds in one
segment when chunks are short."""

MAX_CHUNK_FACTOR: Final = 2.0
"""A chunk lasts at most this many nominal chunk durations in the playlist."""

CUT_CHUNK_FACTOR: Final = 1.75
"""The longest chunk the source cuts, in nominal chunk durations (see
:mod:`ppsp.peer.live.source`): what a chunk joining a segment may add to it."""

_SEGMENT_NAME = re.compile(r"(0|[1-9][0-9]{0,18})\.ts")


def target_duration(chunk_ms: int) -> int:
    """EXT-X-TARGETDURATION for a stream of nominal ``chunk_ms`` chunks (whole seconds)."""
    if chunk_ms < 1:
        raise ValueError("chunk_ms must be positive")
    return max(MIN_TARGET_DURATION_S, math.ceil(MAX_CHUNK_FACTOR * chunk_ms / 1000))


def parse_segment_name(name: str) -> int | None:
    """The chunk index a segment's file name (``INDEX.ts``, decimal, no leading zero) names;
    None for any other name."""
    match = _SEGMENT_NAME.fullmatch(name)
    if match is None:
        return None
    index = int(match.group(1))
    return index if index <= MAX_INDEX else None


@dataclass(frozen=True, slots=True)
class Segment:
    """One closed segment: where it is in the playlist, which chunks, how long, its bytes."""

    sequence: int
    """Media sequence number (counts segments from 0)."""
    index: int
    """Its first chunk's index: the segment's name."""
    chunks: int
    """How many chunks it holds (consecutive from ``index``)."""
    duration: float
    """Seconds of media, as the EXTINF says."""
    discontinuity: bool
    """Chunks were skipped before it (EXT-X-DISCONTINUITY)."""
    discontinuity_sequence: int
    """Discontinuities up to and including its own (its Discontinuity Sequence Number)."""
    data: bytes


def render_playlist(
    segments: Sequence[Segment], *, target: int, ended: bool, allow_empty: bool = False
) -> str:
    """The media playlist listing ``segments`` (consecutive, oldest first).

    A discontinuity before the first segment listed is counted in the header, not tagged.
    ``ended`` adds EXT-X-ENDLIST.  Raises ValueError for an empty list unless ``allow_empty``
    (a playlist without segments is only useful once the stream ended).
    """
    if not segments and not allow_empty:
        raise ValueError("a playlist lists at least one segment")
    first = segments[0] if segments else None
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first.sequence if first else 0}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first.discontinuity_sequence if first else 0}",
    ]
    for position, segment in enumerate(segments):
        if segment.discontinuity and position > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{min(segment.duration, target):.3f},")
        lines.append(f"segments/{segment.index}.ts")
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _Chunk:
    index: int
    payload: bytes
    timestamp_ms: int | None
    duration: float | None = None


class LiveSegmenter:
    """Played chunks in, HLS segments and the sliding-window playlist out (see the module)."""

    __slots__ = (
        "_chunk_s",
        "_discontinuities",
        "_gap",
        "_kept_bytes",
        "_last",
        "_open",
        "_open_bytes",
        "_segments",
        "_sequence",
        "ended",
        "target",
    )

    def __init__(self, chunk_ms: int) -> None:
        self.target = target_duration(chunk_ms)
        """EXT-X-TARGETDURATION, whole seconds."""
        self.ended = False
        """The stream ended: no more segments come, and the playlist says so."""
        self._chunk_s = chunk_ms / 1000
        self._segments: deque[Segment] = deque()
        self._kept_bytes = 0
        self._open: list[_Chunk] = []
        self._open_bytes = 0
        self._last: _Chunk | None = None  # the last chunk played (kept or not)
        self._gap = False  # a chunk was skipped since the last segment began
        self._sequence = 0
        self._discontinuities = 0

    # -- input --------------------------------------------------------------------------------

    def played(
        self,
        index: int,
        payload: bytes,
        *,
        timestamp_ms: int | None,
        start: bool,
        end: bool = False,
    ) -> bool:
        """The viewer played chunk ``index`` (``start``: a player can begin with it; ``end``:
        the stream's last).  False when it is ignored: after the end, or an index that does
        not rise."""
        if self.ended or index < 0 or index > MAX_INDEX:
            return False
        last = self._last
        if last is not None and index <= last.index:
            return False
        if timestamp_ms is not None and timestamp_ms < 0:
            timestamp_ms = None
        chunk = _Chunk(index, payload, timestamp_ms)
        contiguous = last is not None and index == last.index + 1
        if last is not None:
            last.duration = self._duration(last, chunk if contiguous else None)
        if not contiguous and last is not None:
            self._close()
            self._gap = True
        self._last = chunk
        if payload:
            if self._open and contiguous and not start and self._fits(chunk):
                self._append(chunk)
            else:
                self._close()
                if start or (contiguous and not self._gap):
                    self._append(chunk)
                # else: after a gap (or at the very beginning) wait for a start point
        if end:
            self.finish()
        return True

    def finish(self) -> None:
        """The stream ended (or the viewer stopped): close the last segment; nothing follows."""
        if self.ended:
            return
        if self._last is not None and self._last.duration is None:
            self._last.duration = self._chunk_s
        self._close()
        self.ended = True

    # -- output -------------------------------------------------------------------------------

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The segments kept, oldest first."""
        return tuple(self._segments)

    def listed(self) -> tuple[Segment, ...]:
        """The segments the playlist lists now, oldest first."""
        return tuple(self._segments)[-PLAYLIST_SEGMENTS:]

    def playlist(self) -> str | None:
        """The media playlist's text; None while no segment is listed and the stream goes on."""
        listed = self.listed()
        if not listed and not self.ended:
            return None
        return render_playlist(listed, target=self.target, ended=self.ended, allow_empty=True)

    def segment(self, index: int) -> bytes | None:
        """The bytes of the kept segment named ``index``; None when there is none."""
        for segment in reversed(self._segments):
            if segment.index == index:
                return segment.data
            if segment.index < index:
                break
        return None

    # -- inside -------------------------------------------------------------------------------

    def _duration(self, chunk: _Chunk, following: _Chunk | None) -> float:
        """How long ``chunk`` lasts, ``following`` being the next chunk (None: not known)."""
        nominal = self._chunk_s
        if following is None or chunk.timestamp_ms is None or following.timestamp_ms is None:
            return nominal
        measured = (following.timestamp_ms - chunk.timestamp_ms) / 1000
        return min(max(measured, 0.0), MAX_CHUNK_FACTOR * nominal)

    def _fits(self, chunk: _Chunk) -> bool:
        """Whether ``chunk`` may join the open segment: it stays under the bounds, and the
        segment, with ``chunk`` as long as the source cuts them, rounds to the target at most."""
        if len(self._open) >= MAX_SEGMENT_CHUNKS:
            return False
        if self._open_bytes + len(chunk.payload) > MAX_SEGMENT_BYTES:
            return False
        so_far = sum(c.duration or 0.0 for c in self._open)
        return so_far + CUT_CHUNK_FACTOR * self._chunk_s < self.target + 0.5

    def _append(self, chunk: _Chunk) -> None:
        self._open.append(chunk)
        self._open_bytes += len(chunk.payload)

    def _close(self) -> None:
        """Close the open segment (every chunk's duration is known by now) and keep it."""
        chunks = self._open
        if not chunks:
            return
        self._open = []
        self._open_bytes = 0
        discontinuity = self._gap and self._sequence > 0
        self._gap = False
        if discontinuity:
            self._discontinuities += 1
        duration = sum(self._chunk_s if c.duration is None else c.duration for c in chunks)
        data = b"".join(c.payload for c in chunks)
        segment = Segment(
            sequence=self._sequence,
            index=chunks[0].index,
            chunks=len(chunks),
            duration=duration,
            discontinuity=discontinuity,
            discontinuity_sequence=self._discontinuities,
            data=data,
        )
        self._sequence += 1
        self._segments.append(segment)
        self._kept_bytes += len(data)
        while len(self._segments) > 1 and (
            len(self._segments) > KEPT_SEGMENTS or self._kept_bytes > KEPT_BYTES
        ):
            self._kept_bytes -= len(self._segments.popleft().data)
