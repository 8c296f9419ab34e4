"""The live window: the last ``window_s`` seconds of a stream's chunks that a peer keeps.

RFC 7574 section 6.2 ("Forgetting Chunks") lets a live peer discard chunks it played and tell
others by a Live Discard Window.  Here every peer keeps the description's ``window_s`` seconds,
measured on the source timestamps: a chunk is evicted once it is more than ``window_s`` older
than the newest chunk held (:meth:`LiveWindow.add`) or than the current time
(:meth:`LiveWindow.expire`).  An index bound caps memory against a source that cuts chunks
faster than nominal: at most ``max_chunks`` indexes from the newest down.

The window's ``floor`` only rises: it is one past the highest index ever evicted (or the lowest
index the index bound allows).  Chunks below it are refused (:func:`verify_envelope` raises
StaleChunk for them), so a replayed old chunk cannot re-enter.  The CHUNK map a peer announces
for a live swarm is :meth:`LiveWindow.bitmap`: a :class:`~ppsp.wire.bitmap.ChunkBitmap` whose
start is the floor and whose end is the newest index.

The window stores envelopes as given; verify each one (:func:`verify_envelope`) first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from ppsp.errors import ChunkUnavailable
from ppsp.peer.live.envelope import DEFAULT_POLICY, ChunkEnvelope, LivePolicy
from ppsp.peer.live.identity import LiveDescription
from ppsp.wire.bitmap import ChunkBitmap

__all__ = ["LiveWindow"]


class LiveWindow:
    """The chunks of the last ``window_s`` seconds, by index, with a rising floor."""

    __slots__ = ("_chunks", "_floor", "_newest", "max_chunks", "window_ms")

    def __init__(self, *, window_s: float, max_chunks: int) -> None:
        if not (math.isfinite(window_s) and window_s > 0) or max_chunks < 1:
            raise ValueError("window_s must be positive and max_chunks at least 1")
        self.window_ms = window_s * 1000
        self.max_chunks = max_chunks
        self._chunks: dict[int, ChunkEnvelope] = {}
        self._floor = 0
        self._newest: ChunkEnvelope | None = None

    @classmethod
    def for_description(
        cls, description: LiveDescription, policy: LivePolicy = DEFAULT_POLICY
    ) -> LiveWindow:
        """The window a stream's description calls for (index bound: ``burst`` x nominal)."""
        max_chunks = math.ceil(description.window_chunks * policy.burst)
        return cls(window_s=description.window_s, max_chunks=max_chunks)

    # ------------------------------------------------------------------ queries

    @property
    def floor(self) -> int:
        """Lowest chunk index the window still accepts."""
        return self._floor

    @property
    def newest(self) -> int | None:
        """Highest chunk index held (None while empty)."""
        return None if self._newest is None else self._newest.index

    @property
    def newest_timestamp_ms(self) -> int | None:
        """Source timestamp of the newest chunk held (None while empty)."""
        return None if self._newest is None else self._newest.timestamp_ms

    def __contains__(self, index: object) -> bool:
        return index in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._chunks))

    def get(self, index: int) -> ChunkEnvelope:
        """The envelope of chunk ``index``; ChunkUnavailable when it is not held."""
        try:
            return self._chunks[index]
        except KeyError:
            raise ChunkUnavailable(f"live chunk {index!r} is not held") from None

    def bitmap(self) -> ChunkBitmap:
        """What is held, as the CHUNK map wants it: from the floor to the newest index."""
        if self._newest is None:
            return ChunkBitmap(0, self._floor)
        size = self._newest.index - self._floor + 1
        return ChunkBitmap.from_indexes(self._chunks, size, self._floor)

    # ------------------------------------------------------------------ changes

    def add(self, envelope: ChunkEnvelope) -> bool:
        """Hold a verified chunk; True when it is new and inside the window.

        A chunk below the floor, already held, or already too old for the window is not kept.
        A new newest chunk may evict older ones.
        """
        index = envelope.index
        if index < self._floor or index in self._chunks:
            return False
        newest = self._newest
        if newest is not None and envelope.timestamp_ms < newest.timestamp_ms - self.window_ms:
            return False
        self._chunks[index] = envelope
        if newest is None or index > newest.index:
            self._newest = envelope
            self._evict_before_time(envelope.timestamp_ms - self.window_ms)
            self._raise_floor(index - self.max_chunks + 1)
        return index in self._chunks

    def expire(self, now: float) -> list[int]:
        """Evict chunks older than ``window_s`` before ``now`` (Unix s); returns their indexes.

        Call it from time to time, so that a stalled stream's chunks do not linger.
        """
        return self._evict_before_time(now * 1000 - self.window_ms)

    def set_floor(self, floor: int) -> list[int]:
        """Raise the floor (never lowers it), evicting what is below; returns the evicted."""
        return self._raise_floor(floor)

    # ------------------------------------------------------------------ internals

    def _evict_before_time(self, oldest_ms: float) -> list[int]:
        old = [i for i, env in self._chunks.items() if env.timestamp_ms < oldest_ms]
        if not old:
            return []
        return self._raise_floor(max(old) + 1)

    def _raise_floor(self, floor: int) -> list[int]:
        if floor <= self._floor:
            return []
        evicted = sorted(i for i in self._chunks if i < floor)
        for index in evicted:
            del self._chunks[index]
        self._floor = floor
        if self._newest is not None and self._newest.index < floor:
            self._newest = None
        return evicted
