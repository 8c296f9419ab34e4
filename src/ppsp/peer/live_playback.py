"""A viewer's playback clock and deadline scheduler for a live stream, and its QoE figures.

:class:`LivePlayback` goes through three states:

1. ``JOINING``: no joining point yet.  The first :meth:`~LivePlayback.note_newest` (the newest
   index a peer's chunk map shows), or else the first :meth:`~LivePlayback.due` after chunks
   arrived, picks the joining point near the live edge: ``first = newest - join_margin``
   (never below the window floor).  Chunks that arrive first do not join by themselves, so a
   batch fetched oldest first still joins at its newest chunk.
2. ``BUFFERING``: waiting until the ``buffer_chunks`` chunks from ``first`` on are all held.
   The moment they are, playback starts: ``play_start`` is that time.  When buffering takes
   longer than ``rejoin_after_s`` (the chunks at the joining point may have gone from every
   peer), or the floor passes the joining point, the viewer rejoins at the current edge.
3. ``PLAYING``: chunk *i* is due at ``play_start + (i - first) * chunk_duration``.
   :meth:`~LivePlayback.due` returns every chunk whose deadline has passed: a chunk that arrived
   by its deadline is played, any other is skipped and counted.  Playback never stalls and never
   waits: it is paced by the clock alone, so the delay behind the source stays what it was at
   the start.

Whether a chunk is on time is decided by its arrival time against its deadline, not by when
:meth:`~LivePlayback.due` happens to be called, so the figures do not depend on the caller's
timer precision.

The scheduler side: :meth:`~LivePlayback.urgency` is the time left before a chunk's deadline,
and :meth:`~LivePlayback.wanted` orders the missing chunks that peers offer: chunks due within
``urgent_s``, soonest first, then the others rarest first (fewest holders), earlier first among
equals.  Chunks already past their deadline or below the window floor are never wanted.
:meth:`~LivePlayback.steer` aligns a :class:`~ppsp.peer.picker.PiecePicker` with the playback
(range, floor and position), for callers that let the picker choose peers.

:class:`QoE` is a snapshot of the viewer's quality of experience for the peer protocol's
PROPERTY_QUERY (:meth:`QoE.as_properties`) and the tracker's StreamStatistics
(:meth:`QoE.as_extra`).

Times are Unix times in seconds (the clock the source's timestamps use), passed in as ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from ppsp.core.bitmap import ChunkBitmap
from ppsp.peer.live_identity import LiveDescription
from ppsp.peer.messages import Property
from ppsp.peer.picker import PiecePicker, Request

__all__ = [
    "LivePlayback",
    "PlaybackConfig",
    "PlaybackState",
    "Playout",
    "QoE",
    "availability_from_bitmaps",
]


class PlaybackState(Enum):
    """Where a viewer's playback is (see the module docstring)."""

    JOINING = "joining"
    BUFFERING = "buffering"
    PLAYING = "playing"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackConfig:
    """Tuning of a :class:`LivePlayback`; every field has a working default."""

    buffer_s: float = 1.5
    """Media to hold contiguously before playback starts, in seconds (when ``buffer_chunks``
    is None)."""
    buffer_chunks: int | None = None
    """Chunks to hold contiguously before playback starts (None: from ``buffer_s``)."""
    join_margin: int | None = None
    """How many chunks behind the newest known one to join (None: ``buffer_chunks - 1``, so
    that the whole startup buffer already exists when the viewer joins)."""
    urgent_s: float = 3.0
    """Chunks due within this many seconds are fetched in deadline order."""
    rejoin_after_s: float = 10.0
    """Rejoin at the live edge when the startup buffer is not complete after this long."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.buffer_s) and self.buffer_s >= 0):
            raise ValueError("buffer_s must be finite and >= 0")
        if self.buffer_chunks is not None and self.buffer_chunks < 1:
            raise ValueError("buffer_chunks must be at least 1")
        if self.join_margin is not None and self.join_margin < 0:
            raise ValueError("join_margin must not be negative")
        if not (math.isfinite(self.urgent_s) and self.urgent_s >= 0):
            raise ValueError("urgent_s must be finite and >= 0")
        if not (math.isfinite(self.rejoin_after_s) and self.rejoin_after_s > 0):
            raise ValueError("rejoin_after_s must be finite and positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Playout:
    """What :meth:`LivePlayback.due` decided: chunks to hand to the player now, and skips."""

    played: tuple[int, ...] = ()
    """Chunk indexes to play now, in order (gaps between them are skipped chunks)."""
    skipped: int = 0
    """How many chunks reached their deadline missing and were skipped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QoE:
    """A viewer's quality-of-experience figures at one moment."""

    startup_delay: float | None = None
    """Seconds from joining to the first chunk played (None before it)."""
    chunks_played: int = 0
    """Chunks played on time."""
    chunks_skipped: int = 0
    """Chunks that reached their deadline missing."""
    delay_behind_source: float | None = None
    """Seconds between the source timestamp of the chunk last played and when it was played."""
    bytes_from_source: int = 0
    """Chunk bytes received from the source itself."""
    bytes_from_peers: int = 0
    """Chunk bytes received from other peers."""

    @property
    def chunks_due(self) -> int:
        """Chunks whose deadline has passed: played plus skipped."""
        return self.chunks_played + self.chunks_skipped

    @property
    def continuity_index(self) -> float | None:
        """Chunks played on time over chunks due (None while nothing was due)."""
        due = self.chunks_due
        return None if due == 0 else self.chunks_played / due

    def as_properties(self) -> dict[str, str]:
        """The peer protocol properties (PROPERTY_QUERY), values as text; unknowns left out.

        StartupDelay and DelayBehindSource in seconds with millisecond precision,
        ContinuityIndex a fraction in [0, 1] with four decimals, ChunksSkipped a count.
        """
        out: dict[str, str] = {}
        if self.startup_delay is not None:
            out[Property.STARTUP_DELAY.value] = _seconds(self.startup_delay)
        continuity = self.continuity_index
        if continuity is not None:
            out[Property.CONTINUITY_INDEX.value] = f"{continuity:.4f}"
        out[Property.CHUNKS_SKIPPED.value] = str(self.chunks_skipped)
        if self.delay_behind_source is not None:
            out[Property.DELAY_BEHIND_SOURCE.value] = _seconds(self.delay_behind_source)
        return out

    def as_extra(self) -> tuple[tuple[str, str], ...]:
        """(name, text) pairs for the tracker's ``StreamStatistics.extra``.

        The properties of :meth:`as_properties`, then ChunksPlayed, BytesFromSource and
        BytesFromPeers.
        """
        return (
            *self.as_properties().items(),
            ("ChunksPlayed", str(self.chunks_played)),
            ("BytesFromSource", str(self.bytes_from_source)),
            ("BytesFromPeers", str(self.bytes_from_peers)),
        )


def _seconds(value: float) -> str:
    # Never negative: a source clock ahead of ours shows as no delay rather than a negative one.
    return f"{max(0.0, value):.3f}"


def availability_from_bitmaps(bitmaps: Iterable[ChunkBitmap]) -> dict[int, int]:
    """How many of the given chunk maps (one per peer) hold each chunk index."""
    counts: dict[int, int] = {}
    for bitmap in bitmaps:
        for index in bitmap:
            counts[index] = counts.get(index, 0) + 1
    return counts


class LivePlayback:
    """One viewer's playback of a live stream (see the module docstring).

    ``now`` is the join time, from which the startup delay counts.
    """

    __slots__ = (
        "_buffering_since",
        "_bytes_peers",
        "_bytes_source",
        "_delay",
        "_first",
        "_first_played_at",
        "_floor",
        "_held",
        "_newest",
        "_next",
        "_play_start",
        "_played",
        "_skipped",
        "buffer_chunks",
        "chunk_ms",
        "config",
        "join_margin",
        "joined_at",
    )

    def __init__(
        self,
        description: LiveDescription,
        *,
        now: float,
        config: PlaybackConfig | None = None,
    ) -> None:
        self.config = config or PlaybackConfig()
        self.chunk_ms = description.chunk_ms
        self.buffer_chunks = (
            self.config.buffer_chunks
            if self.config.buffer_chunks is not None
            else max(1, math.ceil(self.config.buffer_s * 1000 / self.chunk_ms))
        )
        self.join_margin = (
            self.config.join_margin
            if self.config.join_margin is not None
            else self.buffer_chunks - 1
        )
        self.joined_at = now
        self._held: dict[int, tuple[int, float]] = {}  # index -> (source ms, arrival time)
        self._newest: int | None = None
        self._floor = 0
        self._first: int | None = None
        self._next: int | None = None
        self._buffering_since = now
        self._play_start: float | None = None
        self._first_played_at: float | None = None
        self._played = 0
        self._skipped = 0
        self._delay: float | None = None
        self._bytes_source = 0
        self._bytes_peers = 0

    # ------------------------------------------------------------------ state queries

    @property
    def state(self) -> PlaybackState:
        """JOINING, BUFFERING or PLAYING."""
        if self._first is None:
            return PlaybackState.JOINING
        if self._play_start is None:
            return PlaybackState.BUFFERING
        return PlaybackState.PLAYING

    @property
    def first(self) -> int | None:
        """The joining point: the first chunk played (None while joining)."""
        return self._first

    @property
    def position(self) -> int | None:
        """The next chunk to play or skip (None while joining)."""
        return self._next

    @property
    def newest(self) -> int | None:
        """The newest chunk index known to exist."""
        return self._newest

    @property
    def play_start(self) -> float | None:
        """When playback started (the first chunk's deadline); None before."""
        return self._play_start

    @property
    def chunk_duration(self) -> float:
        """Nominal duration of a chunk, in seconds."""
        return self.chunk_ms / 1000

    def holds(self, index: int) -> bool:
        """Whether chunk ``index`` is held and not yet played."""
        return index in self._held

    def deadline(self, index: int) -> float | None:
        """When chunk ``index`` is due (None before playback starts)."""
        if self._play_start is None or self._first is None:
            return None
        return self._play_start + (index - self._first) * self.chunk_ms / 1000

    def urgency(self, index: int, now: float) -> float:
        """Seconds left before chunk ``index`` is due: lower is more urgent.

        While buffering, the deadline is estimated as if playback had started when buffering
        began, so a chunk the startup buffer still lacks grows more urgent the longer it is
        missing (a chunk left to relays that never pass it on is then taken from anyone, the
        source included, instead of holding up the start until the viewer rejoins).  Negative:
        the deadline passed.  Infinite while joining.
        """
        if self._first is None:
            return math.inf
        deadline = self.deadline(index)
        if deadline is None:
            return self._buffering_since + (index - self._first) * self.chunk_ms / 1000 - now
        return deadline - now

    def next_timer(self) -> float | None:
        """When :meth:`due` has work next: the next deadline, or the rejoin time while buffering."""
        if self._first is None:
            return None
        if self._play_start is None:
            return self._buffering_since + self.config.rejoin_after_s
        assert self._next is not None
        return self.deadline(self._next)

    # ------------------------------------------------------------------ inputs

    def note_newest(self, index: int, now: float) -> None:
        """Chunk ``index`` exists (a peer announced it, or it arrived); joins on the first call."""
        if index < 0:
            return
        if self._newest is None or index > self._newest:
            self._newest = index
        if self._first is None:
            self._join(now)

    def set_floor(self, floor: int, now: float) -> None:
        """Chunks below ``floor`` have left the live window: never wanted, skipped when due."""
        if floor <= self._floor:
            return
        self._floor = floor
        for index in [i for i in self._held if i < floor]:
            del self._held[index]
        if self._first is not None and self._play_start is None and self._first < floor:
            self._join(now)

    def on_chunk(
        self,
        index: int,
        timestamp_ms: int,
        now: float,
        *,
        nbytes: int = 0,
        from_source: bool = False,
    ) -> bool:
        """A verified chunk arrived at ``now``; True when playback keeps it.

        ``nbytes`` counts towards the bytes received from the source or from peers.  A chunk
        already played, skipped or below the floor is counted but not kept.
        """
        if from_source:
            self._bytes_source += nbytes
        else:
            self._bytes_peers += nbytes
        if self._newest is None or index > self._newest:
            self._newest = index  # joining waits for note_newest() or due()
        if index < self._floor or index in self._held:
            return False
        if self._next is not None and index < self._next:
            return False
        if self._play_start is not None:
            deadline = self.deadline(index)
            if deadline is not None and now > deadline:
                return False  # too late: it is (or will be) skipped
        self._held[index] = (timestamp_ms, now)
        self._maybe_start(now)
        return True

    # ------------------------------------------------------------------ output

    def due(self, now: float) -> Playout:
        """Chunks whose deadline has passed by ``now``: those to play, and how many skipped."""
        if self._first is None:
            if self._newest is None:
                return Playout()
            self._join(now)
        if self._play_start is None:
            self._maybe_start(now)
            if self._play_start is None:
                if now - self._buffering_since >= self.config.rejoin_after_s:
                    self._rejoin(now)
                return Playout()
        assert self._next is not None and self._first is not None
        last = self._last_due(now)
        if last < self._next:
            return Playout()
        played: list[int] = []
        for index in sorted(i for i in self._held if i <= last):
            timestamp_ms, arrived = self._held.pop(index)
            deadline = self.deadline(index)
            assert deadline is not None
            if index < self._next or arrived > deadline:
                continue
            played.append(index)
            self._delay = deadline - timestamp_ms / 1000
        if played and self._first_played_at is None:
            self._first_played_at = self.deadline(played[0])
        skipped = (last - self._next + 1) - len(played)
        self._played += len(played)
        self._skipped += skipped
        self._next = last + 1
        return Playout(played=tuple(played), skipped=skipped)

    def wanted(
        self, availability: Mapping[int, int], now: float, *, limit: int | None = None
    ) -> list[int]:
        """Missing chunks to request, most wanted first (see the module docstring).

        ``availability`` maps chunk indexes to how many peers offer them
        (:func:`availability_from_bitmaps`); chunks nobody offers are left out.
        """
        if self._first is None:
            return []
        lowest = max(self._floor, self._next if self._next is not None else self._first)
        urgent: list[tuple[float, int]] = []
        other: list[tuple[int, int]] = []
        for index, count in availability.items():
            if count <= 0 or index < lowest or index in self._held:
                continue
            left = self.urgency(index, now)
            if self._play_start is not None and left <= 0:
                continue  # its deadline passed: it will be skipped
            if left <= self.config.urgent_s:
                urgent.append((left, index))
            else:
                other.append((count, index))
        urgent.sort()
        other.sort()
        ordered = [index for _, index in urgent] + [index for _, index in other]
        return ordered if limit is None else ordered[: max(0, limit)]

    def steer(self, picker: PiecePicker) -> list[Request]:
        """Align ``picker`` with the playback: range up to the newest, floor and position.

        Returns the picker's in-flight requests below the new floor, to cancel.
        """
        if self._newest is not None:
            picker.extend(self._newest + 1)
        if self._first is None:
            return []
        position = max(self._floor, self._next if self._next is not None else self._first)
        cancels = picker.set_floor(position)
        picker.seek(position)
        return cancels

    def qoe(self) -> QoE:
        """The quality-of-experience figures so far."""
        startup = None if self._first_played_at is None else self._first_played_at - self.joined_at
        return QoE(
            startup_delay=startup,
            chunks_played=self._played,
            chunks_skipped=self._skipped,
            delay_behind_source=self._delay,
            bytes_from_source=self._bytes_source,
            bytes_from_peers=self._bytes_peers,
        )

    # ------------------------------------------------------------------ internals

    def _join(self, now: float) -> None:
        assert self._newest is not None
        first = max(self._floor, self._newest - self.join_margin, 0)
        self._first = first
        self._next = first
        self._buffering_since = now
        for index in [i for i in self._held if i < first]:
            del self._held[index]
        self._maybe_start(now)

    def _rejoin(self, now: float) -> None:
        assert self._first is not None and self._newest is not None
        if self._newest - self.join_margin > self._first or self._floor > self._first:
            self._join(now)
        else:
            self._buffering_since = now  # nothing newer to join: keep waiting

    def _maybe_start(self, now: float) -> None:
        if self._play_start is not None or self._first is None:
            return
        buffer = range(self._first, self._first + self.buffer_chunks)
        if all(index in self._held for index in buffer):
            self._play_start = now

    def _last_due(self, now: float) -> int:
        """The highest index whose deadline is at or before ``now`` (``next - 1`` if none)."""
        assert self._play_start is not None and self._first is not None and self._next is not None
        k = math.floor((now - self._play_start) * 1000 / self.chunk_ms)
        last = self._first + k
        # Correct floating-point rounding against the exact deadline formula.
        while (deadline := self.deadline(last + 1)) is not None and deadline <= now:
            last += 1
        while (
            last >= self._next
            and (deadline := self.deadline(last)) is not None
            and (deadline > now)
        ):
            last -= 1
        return max(last, self._next - 1)
