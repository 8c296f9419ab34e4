"""A viewer's playback clock and deadline scheduler for a live stream, and its QoE figures.

:class:`LivePlayback` goes through four states:

1. ``JOINING``: no joining point yet.  The first :meth:`~LivePlayback.note_newest` (the newest
   index a peer's chunk map shows), or else the first :meth:`~LivePlayback.due` after chunks
   arrived, sets the *target* near the live edge: ``newest - join_margin`` (never below the
   window floor).  Chunks that arrive first do not join by themselves, so a batch fetched
   oldest first still joins at its newest chunk.
2. ``BUFFERING``: playback must begin with a *start point*, a chunk the source flagged START
   (for MPEG-TS: the program tables, then a key frame), or the player could decode nothing
   before the next key frame.  The viewer looks for the start point nearest the target (the
   later one of two at the same distance: less delay), at most ``search_s`` of chunks away on
   either side, fetching the chunks nearest the target first (one below the target only
   once no nearer start point can come: it would not be played); a start point is taken once
   every chunk nearer the target has arrived and is not one, or ``search_grace_s`` after it
   was found.
   That chunk is the *first*.  Then it waits until the ``buffer_chunks`` chunks from the
   first on are all held (fewer when the stream ends sooner).  The :meth:`~LivePlayback.due`
   call that finds them held starts playback: ``play_start`` is that time, and nothing is
   output before it.  When buffering takes longer than ``rejoin_after_s`` (the chunks near the
   target may have gone from every peer), or the floor passes the target or the first, the
   viewer rejoins at the current edge.
3. ``PLAYING``: chunks are timed by their source timestamps: chunk *i*, stamped ``ts(i)``, is
   due at ``play_start + ts(i) - ts(first)``, the moment a player that started with the first
   chunk at ``play_start`` presents it.  :meth:`~LivePlayback.due` returns chunks for the
   player in order as soon as they are held (so that the player always has what the viewer
   holds), and skips a missing chunk once it can no longer be presented on time: when a later
   chunk is due, or when it arrived after its own deadline.  A skipped chunk is counted;
   playback never waits for it, so the delay behind the source stays what it was at the start.
4. ``ENDED``: the chunk flagged END (the stream's last) was played or skipped.  Nothing is due
   after it, and nothing after it counts as skipped.

Whether a chunk is on time is decided by its arrival time against its deadline, not by when
:meth:`~LivePlayback.due` happens to be called, so the figures do not depend on the caller's
timer precision.

The scheduler side: :meth:`~LivePlayback.urgency` is the time left before a chunk's deadline
(estimated from the chunk before it for a chunk not held yet), and :meth:`~LivePlayback.wanted`
orders the missing chunks that peers offer: while looking for the start point, nearest the
target first (below the target only when nothing before it in that order is missing); then
chunks due within ``urgent_s``, soonest first, then the others rarest first (fewest holders),
earlier first among equals.  Chunks already skipped, past the end or below
the window floor are never wanted, nor, once playing, a chunk whose deadline has passed: it
would arrive late and be skipped, so a viewer that fell behind asks for what can still be
played on time and skips the rest rather than chase the past (every viewer asking the source
for chunks already late, each request given up and asked again, kept a whole swarm behind).
Whom to ask is the live viewer's policy's (:mod:`ppsp.peer.live.viewer`).

:class:`QoE` is a snapshot of the viewer's quality of experience for the peer protocol's
PROPERTY_QUERY (:meth:`QoE.as_properties`) and the tracker's StreamStatistics
(:meth:`QoE.as_extra`): the startup delay from ``started`` (the ``now`` the playback was made
with, the command's start) to the first chunk played, the delay behind the source at which the
player presents the stream (``play_start - ts(first)``), and the continuity index.

Times are Unix times in seconds (the clock the source's timestamps use), passed in as ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from ppsp.peer.live.identity import LiveDescription
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import Property

__all__ = [
    "LivePlayback",
    "PlaybackConfig",
    "PlaybackState",
    "Playout",
    "QoE",
    "availability_from_bitmaps",
]


MAX_SKIPPED_KEPT = 256
"""Skipped chunk indexes a playback keeps for its report (the count goes on)."""


class PlaybackState(Enum):
    """Where a viewer's playback is (see the module docstring)."""

    JOINING = "joining"
    BUFFERING = "buffering"
    PLAYING = "playing"
    ENDED = "ended"


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
    search_s: float = 10.0
    """How far from the target, in seconds of nominal chunks, a start point is looked for."""
    search_grace_s: float = 1.0
    """How long a start point found waits for the chunks nearer the target before it is taken."""

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
        if not (math.isfinite(self.search_s) and self.search_s >= 0):
            raise ValueError("search_s must be finite and >= 0")
        if not (math.isfinite(self.search_grace_s) and self.search_grace_s >= 0):
            raise ValueError("search_grace_s must be finite and >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Playout:
    """What :meth:`LivePlayback.due` decided: chunks to hand to the player now, and skips."""

    played: tuple[int, ...] = ()
    """Chunk indexes to play now, in order (gaps between them are skipped chunks)."""
    skipped: int = 0
    """How many chunks were skipped (missing when they were due)."""
    ended: bool = False
    """The stream's last chunk has been played or skipped: playback is over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QoE:
    """A viewer's quality-of-experience figures at one moment."""

    startup_delay: float | None = None
    """Seconds from the start of watching (the command's start) to the first chunk played:
    a start point, which a player decodes at once (None before it)."""
    chunks_played: int = 0
    """Chunks played on time."""
    chunks_skipped: int = 0
    """Chunks that could not be played on time (missing or late)."""
    delay_behind_source: float | None = None
    """Seconds between a chunk's arrival at the source and its presentation by a player that
    started with the first chunk when it was played (None before playback starts)."""
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


@dataclass(slots=True)
class _Held:
    """A chunk held for playback: its source timestamp, arrival time and START flag."""

    timestamp_ms: int
    arrived: float
    start: bool


class LivePlayback:
    """One viewer's playback of a live stream (see the module docstring).

    ``now`` is when watching started (the command's start): the startup delay counts from it.
    """

    __slots__ = (
        "_buffering_since",
        "_bytes_peers",
        "_bytes_source",
        "_delay",
        "_end",
        "_first",
        "_first_played_at",
        "_first_ts_ms",
        "_floor",
        "_found_at",
        "_held",
        "_last",
        "_late",
        "_newest",
        "_next",
        "_play_start",
        "_played",
        "_skipped",
        "_skipped_indexes",
        "_target",
        "buffer_chunks",
        "chunk_ms",
        "config",
        "join_margin",
        "search_chunks",
        "started",
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
        self.search_chunks = math.ceil(self.config.search_s * 1000 / self.chunk_ms)
        self.started = now
        self._held: dict[int, _Held] = {}
        self._late: set[int] = set()  # arrived after their deadline: skipped when reached
        self._newest: int | None = None
        self._floor = 0
        self._end: int | None = None
        self._target: int | None = None
        self._first: int | None = None
        self._next: int | None = None
        self._buffering_since = now
        self._found_at: float | None = None
        self._play_start: float | None = None
        self._first_ts_ms = 0
        self._first_played_at: float | None = None
        self._last: tuple[int, int] | None = None  # (index, timestamp_ms) of the last played
        self._played = 0
        self._skipped = 0
        self._skipped_indexes: list[int] = []  # the first MAX_SKIPPED_KEPT skipped, for reports
        self._delay: float | None = None
        self._bytes_source = 0
        self._bytes_peers = 0

    # ------------------------------------------------------------------ state queries

    @property
    def state(self) -> PlaybackState:
        """JOINING, BUFFERING, PLAYING or ENDED."""
        if self._end is not None and self._next is not None and self._next > self._end:
            return PlaybackState.ENDED
        if self._target is None:
            return PlaybackState.JOINING
        if self._play_start is None:
            return PlaybackState.BUFFERING
        return PlaybackState.PLAYING

    @property
    def target(self) -> int | None:
        """The joining target near the live edge (None while joining)."""
        return self._target

    @property
    def first(self) -> int | None:
        """The start point playback begins with (None until it is chosen)."""
        return self._first

    @property
    def position(self) -> int | None:
        """The next chunk to play or skip (None until the start point is chosen)."""
        return self._next

    @property
    def newest(self) -> int | None:
        """The newest chunk index known to exist."""
        return self._newest

    @property
    def end(self) -> int | None:
        """The index of the stream's last chunk, once a chunk flagged END arrived."""
        return self._end

    @property
    def play_start(self) -> float | None:
        """When playback started (the first chunk was handed to the player); None before."""
        return self._play_start

    @property
    def chunk_duration(self) -> float:
        """Nominal duration of a chunk, in seconds."""
        return self.chunk_ms / 1000

    def holds(self, index: int) -> bool:
        """Whether chunk ``index`` is held and not yet played."""
        return index in self._held

    def deadline(self, index: int) -> float | None:
        """When chunk ``index`` is due (None before playback starts).

        Exact for a chunk held or just played; for another one, estimated from the nearest
        chunk below it whose timestamp is known, one nominal chunk duration per index.
        """
        if self._play_start is None:
            return None
        return self._play_start + (self._estimated_ms(index) - self._first_ts_ms) / 1000

    def urgency(self, index: int, now: float) -> float:
        """Seconds left before chunk ``index`` is due: lower is more urgent.

        While buffering, the deadline is estimated as if playback had started when buffering
        began, every chunk up to the first (or the target, while the start point is looked
        for) counting as due then: so a chunk the startup buffer still lacks grows more
        urgent the longer it is missing (a chunk left to relays that never pass it on is then
        taken from anyone, the source included, instead of holding up the start until the
        viewer rejoins).  Negative: the deadline passed.  Infinite while joining.
        """
        if self._target is None:
            return math.inf
        if self._play_start is None:
            ref = self._first if self._first is not None else self._target
            return self._buffering_since + max(0, index - ref) * self.chunk_ms / 1000 - now
        deadline = self.deadline(index)
        assert deadline is not None
        return deadline - now

    def next_timer(self) -> float | None:
        """When :meth:`due` has work next (a past time: at once)."""
        state = self.state
        if state is PlaybackState.JOINING or state is PlaybackState.ENDED:
            return None
        if self._play_start is None:
            timer = self._buffering_since + self.config.rejoin_after_s
            if self._found_at is not None:
                timer = min(timer, self._found_at + self.config.search_grace_s)
            return timer
        assert self._next is not None
        if self._next in self._held or self._next in self._late:
            return self._play_start
        if not self._held:
            return None
        return self.deadline(min(self._held))

    # ------------------------------------------------------------------ inputs

    def note_newest(self, index: int, now: float) -> None:
        """Chunk ``index`` exists (a peer announced it, or it arrived); joins on the first call."""
        if index < 0:
            return
        if self._end is not None:
            index = min(index, self._end)
        if self._newest is None or index > self._newest:
            self._newest = index
        if self._target is None:
            self._join(now)

    def set_floor(self, floor: int, now: float) -> None:
        """Chunks below ``floor`` have left the live window: never wanted, skipped when due."""
        if floor <= self._floor:
            return
        self._floor = floor
        for index in [i for i in self._held if i < floor]:
            del self._held[index]
        if self._play_start is None and self._target is not None:
            joining_point = self._first if self._first is not None else self._target
            if joining_point < floor:
                self._join(now)

    def on_chunk(
        self,
        index: int,
        timestamp_ms: int,
        now: float,
        *,
        start: bool = True,
        end: bool = False,
        nbytes: int = 0,
        from_source: bool = False,
    ) -> bool:
        """A verified chunk arrived at ``now``; True when playback keeps it.

        ``start`` and ``end`` are the chunk's START and END flags.  ``nbytes`` counts towards
        the bytes received from the source or from peers.  A chunk already played, skipped,
        late, past the end, below the floor or too far below the target is counted but not
        kept.
        """
        if from_source:
            self._bytes_source += nbytes
        else:
            self._bytes_peers += nbytes
        if self._end is not None and index > self._end:
            return False
        if end and (self._next is None or index >= self._next):
            self._set_end(index)  # (an end behind the position cannot be: ignored)
        if self._newest is None or index > self._newest:
            self._newest = index  # joining waits for note_newest() or due()
        if index < self._floor or index in self._held:
            return False
        if self._next is not None and index < self._next:
            return False
        searching = self._first is None and self._target is not None
        if searching and index < (self._target or 0) - self.search_chunks:
            return False
        start_at = self._play_start
        if start_at is not None and now > start_at + (timestamp_ms - self._first_ts_ms) / 1000:
            self._late.add(index)  # too late: skipped when playback reaches it
            return False
        self._held[index] = _Held(timestamp_ms, now, start)
        return True

    # ------------------------------------------------------------------ output

    def due(self, now: float) -> Playout:
        """Chunks to hand to the player by ``now``, in order, and how many were skipped."""
        if self.state is PlaybackState.ENDED:
            return Playout(ended=True)
        if self._target is None:
            if self._newest is None:
                return Playout()
            self._join(now)
        if self._play_start is None:
            if self._first is None and self._choose_start(now):
                return Playout(ended=True)
            if self._first is None or not self._buffer_held():
                if now - self._buffering_since >= self.config.rejoin_after_s:
                    self._rejoin(now)
                return Playout()
            self._begin(now)
        return self._play(now)

    def wanted(
        self, availability: Mapping[int, int], now: float, *, limit: int | None = None
    ) -> list[int]:
        """Missing chunks to request, most wanted first (see the module docstring).

        ``availability`` maps chunk indexes to how many peers offer them
        (:func:`availability_from_bitmaps`); chunks nobody offers are left out.
        """
        if self._target is None or self.state is PlaybackState.ENDED:
            return []
        end = self._end if self._end is not None else math.inf
        if self._first is None:
            ordered = self._search_order(availability, end)
        else:
            lowest = max(self._floor, self._next if self._next is not None else self._first)
            urgent: list[tuple[float, int]] = []
            other: list[tuple[int, int]] = []
            for index, count in availability.items():
                if count <= 0 or index < lowest or index > end:
                    continue
                if index in self._held or index in self._late:
                    continue
                left = self.urgency(index, now)
                if left < 0 and self._play_start is not None:
                    continue  # past its deadline: late on arrival, skipped (not chased)
                if left <= self.config.urgent_s:
                    urgent.append((left, index))
                else:
                    other.append((count, index))
            urgent.sort()
            other.sort()
            ordered = [index for _, index in urgent] + [index for _, index in other]
        return ordered if limit is None else ordered[: max(0, limit)]

    @property
    def skipped_indexes(self) -> tuple[int, ...]:
        """The indexes of the chunks skipped so far (the first :data:`MAX_SKIPPED_KEPT`)."""
        return tuple(self._skipped_indexes)

    def qoe(self) -> QoE:
        """The quality-of-experience figures so far."""
        startup = None if self._first_played_at is None else self._first_played_at - self.started
        return QoE(
            startup_delay=startup,
            chunks_played=self._played,
            chunks_skipped=self._skipped,
            delay_behind_source=self._delay,
            bytes_from_source=self._bytes_source,
            bytes_from_peers=self._bytes_peers,
        )

    # ------------------------------------------------------------------ internals

    def _set_end(self, index: int) -> None:
        if self._end is not None and self._end <= index:
            return
        self._end = index
        for later in [i for i in self._held if i > index]:
            del self._held[later]
        if self._newest is not None and self._newest > index:
            self._newest = index
        if self._target is not None and self._target > index:
            self._target = index

    def _join(self, now: float) -> None:
        assert self._newest is not None
        target = max(self._floor, self._newest - self.join_margin, 0)
        if self._end is not None:
            target = min(target, self._end)
        self._target = target
        self._first = self._next = None
        self._found_at = None
        self._buffering_since = now
        lowest = target - self.search_chunks
        for index in [i for i in self._held if i < lowest]:
            del self._held[index]

    def _rejoin(self, now: float) -> None:
        assert self._target is not None and self._newest is not None
        if self._newest - self.join_margin > self._target or self._floor > self._target:
            self._join(now)
        else:
            self._buffering_since = now  # nothing newer to join: keep waiting

    def _search_range(self) -> tuple[int, int]:
        assert self._target is not None
        low = max(self._floor, self._target - self.search_chunks, 0)
        high = self._target + self.search_chunks
        if self._end is not None:
            high = min(high, self._end)
        return low, high

    def _by_distance(self) -> Iterable[int]:
        """Indexes of the search range, nearest the target first, the higher one first."""
        assert self._target is not None
        low, high = self._search_range()
        target = self._target
        for distance in range(self.search_chunks + 1):
            for index in (target + distance, target - distance) if distance else (target,):
                if low <= index <= high:
                    yield index

    def _nearest_start(self) -> tuple[int | None, bool]:
        """The held start point nearest the target, and whether a nearer chunk that exists
        has not arrived yet."""
        newest = -1 if self._newest is None else self._newest
        unresolved = False
        for index in self._by_distance():
            held = self._held.get(index)
            if held is None:
                unresolved = unresolved or index <= newest
            elif held.start:
                return index, unresolved
        return None, unresolved

    def _choose_start(self, now: float) -> bool:
        """Take the start point if it is decided; True when the stream ended without one in
        reach (playback is over before it began)."""
        assert self._target is not None
        chosen, unresolved = self._nearest_start()
        if chosen is None:
            self._found_at = None
            end = self._end
            if end is not None and not unresolved and self._target + self.search_chunks >= end:
                self._next = end + 1
                return True
            return False
        if unresolved:
            if self._found_at is None:
                self._found_at = now
            if now - self._found_at < self.config.search_grace_s:
                return False
        self._first = self._next = chosen
        self._found_at = None
        for index in [i for i in self._held if i < chosen]:
            del self._held[index]
        return False

    def _search_order(self, availability: Mapping[int, int], end: float) -> list[int]:
        """While looking for the start point: what could still change the choice, nearest the
        target first, then the startup buffer of the start point found so far.

        A chunk below the target is listed only when no chunk listed before it is missing
        (every nearer one, and the one as far above, has arrived and is no start point):
        playback begins at the start point, so a chunk below it is never played, and a start
        point at or above the target (the usual case: a key frame every chunk or two) makes
        every chunk below the target useless.  Asked alongside the nearer ones, those chunks
        were cancelled in flight once the start point was taken (the plain live lab's bytes
        sent and not kept: docs/PROTOCOL.md, "Live streaming").  A chunk at or above the
        target is played whatever start point below it is taken.
        """
        chosen, _ = self._nearest_start()
        target = self._target
        assert target is not None
        reach = self.search_chunks + 1 if chosen is None else abs(chosen - target)
        candidates = [i for i in self._by_distance() if abs(i - target) < reach]
        if chosen is not None:
            candidates += range(chosen, chosen + self.buffer_chunks)
        ordered: list[int] = []
        for index in candidates:
            if index in self._held or availability.get(index, 0) <= 0 or index > end:
                continue
            if index in ordered or (index < target and ordered):
                continue  # below a start point still possible at or above it: not yet
            ordered.append(index)
        return ordered

    def _buffer_held(self) -> bool:
        assert self._first is not None
        stop = self._first + self.buffer_chunks
        if self._end is not None:
            stop = min(stop, self._end + 1)
        return all(index in self._held for index in range(self._first, stop))

    def _begin(self, now: float) -> None:
        assert self._first is not None
        self._play_start = now
        self._first_ts_ms = self._held[self._first].timestamp_ms
        self._delay = now - self._first_ts_ms / 1000

    def _play(self, now: float) -> Playout:
        assert self._next is not None
        played: list[int] = []
        skipped = 0
        while self._end is None or self._next <= self._end:
            index = self._next
            held = self._held.pop(index, None)
            if held is not None:
                played.append(index)
                self._last = (index, held.timestamp_ms)
            elif index in self._late or self._later_due(now):
                self._late.discard(index)
                skipped += 1
                if len(self._skipped_indexes) < MAX_SKIPPED_KEPT:
                    self._skipped_indexes.append(index)
            else:
                break
            self._next = index + 1
        if self._late:
            self._late = {i for i in self._late if i >= self._next}
        if played and self._first_played_at is None:
            self._first_played_at = now
        self._played += len(played)
        self._skipped += skipped
        ended = self._end is not None and self._next > self._end
        return Playout(played=tuple(played), skipped=skipped, ended=ended)

    def _later_due(self, now: float) -> bool:
        """Whether a chunk held beyond the next one is due (so the next one is skipped)."""
        if not self._held:
            return False
        deadline = self.deadline(min(self._held))
        return deadline is not None and deadline <= now

    def _estimated_ms(self, index: int) -> int:
        """Chunk ``index``'s source timestamp: exact when known, else estimated."""
        held = self._held.get(index)
        if held is not None:
            return held.timestamp_ms
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        base_index, base_ms = (
            self._last if self._last is not None else (self._first or 0, self._first_ts_ms)
        )
        above: int | None = None
        for other, chunk in self._held.items():
            if base_index < other < index:
                base_index, base_ms = other, chunk.timestamp_ms
            elif other > index and (above is None or other < above):
                above = other
        estimate = base_ms + (index - base_index) * self.chunk_ms
        if above is not None:
            estimate = min(estimate, self._held[above].timestamp_ms)
        return estimate
