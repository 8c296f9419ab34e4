"""The decisions of a live viewer (``ppsp watch`` on a live stream).

Sans-I/O.  :class:`LiveViewerPolicy` has the shape of every session policy
(:class:`~ppsp.peer.download.events.Policy`): it is fed events with the time they happened (a
peer connected or failed, a chunk's envelope arrived or its transfer failed), answers with
actions (connect, fetch a chunk from a peer, give up on a request, ban, PUSH or PULL chunk maps,
FIND, play a chunk, done, failed) and says when it must be asked again.  It never reads a clock
and never waits: ``ppsp.peer.net.livenode`` moves the bytes.

It decides:

- **what to fetch**: the chunks :meth:`~ppsp.peer.live.playback.LivePlayback.wanted` orders first
  (deadline order, then rarest first), among those some peer announced; while the start point
  is looked for, at most ``search_requests`` at a time, nearest the joining point first (one
  below it only once no nearer start point can come: playback would not play it);
- **from whom**: a chunk due later than ``source_relief``, or one of the startup buffer, is
  taken from a viewer that holds it (a *relay*) rather than from the source (the startup
  buffer from the source only by a second ask, as for any chunk near its deadline: below).
  A chunk only the source holds is taken from it by ``source_fanout`` viewers, the first of
  the connected viewers that hold chunks (not on probation), ranked by a hash of the chunk
  index and their PeerID that every viewer computes alike (:func:`fetches_first`); the others
  wait for a relay until the chunk is due within ``source_relief``.  Among holders: for a
  chunk that cannot wait out a stall, one that has sent an envelope (a *proven* peer: a
  relay that never did may announce every chunk and answer none); then the least loaded,
  then the one with the fewest failures, then the fastest measured (a moving average of its
  transfer times; an unmeasured peer first, so chunks that can wait are how new relays are
  tried).  Once playing, a source is asked for a chunk only when its measured transfer time
  (a request given up counting the time it ran) is within the chunk's time left: a swamped
  source shares its upload among every request, and those that cannot arrive in time only
  delay the ones that can;
- **when to look again**: a chunk due within ``hunt_s`` that no relay is known to hold has the
  maps of the connected viewers older than ``hunt_stale`` pulled (not only the neighbours'), so
  that a relay that holds it is found before the viewer falls back on the source;
- **when to ask twice** (endgame): a chunk due within ``endgame_s`` whose request has run
  longer than ``endgame_after`` (or whose request has run ``stall_timeout`` at a busy peer) is
  also asked of another relay that holds it (only a proven one when the first is not), or of
  the source when no relay is free and the chunk is due within ``source_relief``; the first
  copy to arrive ends the others;
- **when to give up**: a request ends at the chunk's deadline (at least ``min_fetch_timeout``
  from when it was made; ``startup_fetch_timeout`` while the startup buffer has no deadlines
  yet), so that a busy sender skips it rather than sending it late; such a late request costs
  the peer nothing, and the chunk, past its deadline, is not asked again (playback skips it:
  :meth:`~ppsp.peer.live.playback.LivePlayback.wanted`).  A failed one counts against the
  peer, and the :data:`~ppsp.peer.download.peers.MAX_FAILURES`-th failure bans it; a forged
  envelope bans it at once, with every other PeerID at its host
  (:meth:`~ppsp.peer.download.peers.PeerBook.ban_host`);
- **whom to leave for a while** (the stored download's rule for slow and silent peers): a
  request still unanswered after ``stall_timeout`` at a peer from which no envelope came for
  :data:`~ppsp.peer.download.peers.FIRST_BYTE_TIMEOUT` is a *stall*: the peer is benched for
  the shared back-off (:meth:`~ppsp.peer.download.peers.PeerStanding.stall`, 2 s doubling to
  30 s) and never banned for it (a source swamped by other viewers is silent too, and a
  banned source is lost for good; a relay that announces every chunk and never sends one
  costs a request every back-off), its requests are given up and their chunks asked of
  other holders at once, well before their deadlines; a benched peer is neither asked nor
  connected to until its back-off ends.  At a peer that delivers (busy, not silent) the
  request is left in flight and the chunk is also asked of another holder;
- **what to play or skip**: the playback clock's (:class:`~ppsp.peer.live.LivePlayback`);
- **whom to tell**: this viewer's map is PUSHed to up to ``neighbours`` viewers (chosen at
  random, replaced when they leave) at most every ``push_interval`` when it holds new chunks;
  their maps and the source's are PULLed when older than ``pull_interval``; the tracker is asked
  for more peers every ``find_interval``, and once, scoped to the joining point, as soon as the
  target is known.

Every chunk held is in the viewer's :class:`~ppsp.peer.live.LiveWindow` (the one record of held
chunks, which the viewer serves and announces); nothing unverified enters it.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from typing import NamedTuple

from ppsp.errors import ForgedChunk, LiveError, PPSPError
from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    ChunkFailed,
    Connect,
    Done,
    Event,
    Failed,
    FetchChunk,
    FindHolders,
    FindPeers,
    LiveChunkArrived,
    PeerBanned,
    PeerConnected,
    PeerUnreachable,
    PlayChunk,
    PullMap,
    PushMap,
)
from ppsp.peer.download.peers import FIRST_BYTE_TIMEOUT, PeerBook, PeerStanding
from ppsp.peer.live.envelope import ChunkEnvelope, verify_envelope
from ppsp.peer.live.identity import LiveDescription
from ppsp.peer.live.playback import LivePlayback, availability_from_bitmaps
from ppsp.peer.live.window import LiveWindow

__all__ = ["LiveTiming", "LiveViewerPolicy", "fetches_first"]


class LiveTiming(NamedTuple):
    """The tuning of a :class:`LiveViewerPolicy`, in seconds and counts; all have defaults
    (docs/BENCHMARKS.md, "Tuning (live)", says how they were chosen)."""

    slots_per_peer: int = 4
    """Chunk requests in flight per relay (the most one relay ever holds, hedges included)."""
    source_slots: int = 1
    """Chunk requests in flight to the source: its upload is the swarm's scarce resource, and
    a queue of requests at it only makes every chunk late."""
    source_relief: float = 0.75
    """A chunk due later than this is not asked of the source while a relay holds it (nor,
    when this viewer is not one of the few that take it first, while none does)."""
    source_fanout: int = 2
    """About how many viewers take each new chunk from the source."""
    fetch_timeout: float = 10.0
    """Longest wait for one chunk."""
    min_fetch_timeout: float = 0.3
    """Shortest wait for one chunk, even one already due."""
    startup_fetch_timeout: float = 3.0
    """Wait for a chunk of the startup buffer (no deadline until playback starts)."""
    stall_timeout: float = 1.0
    """A request unanswered this long is a stall when its peer sent no envelope for
    :data:`~ppsp.peer.download.peers.FIRST_BYTE_TIMEOUT`: the peer is benched, its chunks
    asked elsewhere.  An envelope is a few hundred KiB served from memory (milliseconds on a
    working path), and chunks are asked seconds before their deadlines (the startup buffer
    and the relay margin), so a silent relay's chunks are asked again in time."""
    hunt_s: float = 2.0
    """A chunk due within this that no relay is known to hold makes stale maps be pulled."""
    hunt_stale: float = 0.25
    """... the maps older than this, of every connected viewer."""
    endgame_s: float = 1.5
    """A chunk due within this may be asked of a second relay..."""
    endgame_after: float = 0.35
    """... when its request has run this long."""
    search_requests: int = 4
    """Requests in flight while the start point is looked for: the chunks nearest the joining
    point first (a start point is most often within a chunk or two of it), not the whole
    search range at once (every joining viewer asking for a dozen chunks in one go slowed the
    relays, and with them the new chunks, for everyone)."""
    neighbours: int = 6
    """Viewers this viewer PUSHes its map to and PULLs maps from (besides the source)."""
    push_interval: float = 0.1
    """Least time between two PUSHes of this viewer's map (sent only when it holds new chunks)."""
    pull_interval: float = 0.5
    """A neighbour's (or the source's) map older than this is PULLed, in case a PUSH was lost."""
    find_interval: float = 3.0
    """How often the tracker is asked for more peers."""
    join_grace: float = 1.0
    """The joining point is taken from a source's map; without one, this long after the first
    map showed chunks (a viewer's map may lag the live edge)."""
    no_progress_timeout: float = 30.0
    """The stream is gone when no chunk arrived for this long."""


def fetches_first(peer_id: str, index: int, viewers: Iterable[str], fanout: int) -> bool:
    """Whether viewer ``peer_id`` is one of the ``fanout`` (of itself and the other
    ``viewers``) that take chunk ``index`` from the source as soon as it is announced.

    Every viewer ranks the viewers it knows by a hash of the chunk index and their PeerID, the
    same for all, and the ``fanout`` first take the chunk: so the source's upload is spent about
    ``fanout`` times per chunk and not once per viewer, and (where the viewers know the same
    peers) never zero times.  (Each viewer drawing on its own with probability
    ``fanout / viewers`` left about one chunk in eight to no viewer at all with 16 viewers.)
    """
    if fanout <= 0:
        return False
    mine = _rank(peer_id, index)
    ahead = 0
    for other in viewers:
        if other != peer_id and _rank(other, index) < mine:
            ahead += 1
            if ahead >= fanout:
                return False
    return True


def _rank(peer_id: str, index: int) -> bytes:
    return hashlib.sha256(f"{peer_id}:{index}".encode()).digest()[:8]


PROBATION_STALLS = 1
"""Stalls without a single envelope after which a peer is on probation.  Probation costs an
honest relay that was slow to start little (one request at a time, for chunks that can wait,
until its first envelope), and a relay that never answers is kept from urgent chunks from its
first stall on (with two, a tarpit back from its first back-off still took urgent chunks, and
in the lab under attack that skipped chunks)."""


class _Request:
    """A chunk request in flight: when it was made, when its peer is checked for a stall and
    when it is given up."""

    __slots__ = ("give_up_at", "made_at", "stall_at")

    def __init__(self, made_at: float, give_up_at: float, stall_at: float) -> None:
        self.made_at = made_at
        self.give_up_at = give_up_at
        self.stall_at = stall_at

    def next_time(self) -> float:
        """When the request must be looked at again (a stall check or giving up)."""
        return min(self.give_up_at, self.stall_at)


class LiveViewerPolicy:
    """The decisions of one live viewer (see the module docstring).

    ``peers`` is the session's peer book (the I/O layer adds the peers the tracker lists and
    records the chunk maps they announce in their standings); ``peer_id`` is this viewer's own
    PeerID (for :func:`fetches_first`); ``window`` and ``playback`` are the viewer's live window
    and playback clock (the I/O layer serves the window and reports the playback's figures).
    """

    def __init__(
        self,
        peers: PeerBook,
        *,
        peer_id: str,
        description: LiveDescription,
        window: LiveWindow,
        playback: LivePlayback,
        now: float,
        timing: LiveTiming | None = None,
    ) -> None:
        self.peers = peers
        self.peer_id = peer_id
        self.description = description
        self.window = window
        self.playback = playback
        self.timing = timing or LiveTiming()
        self.sources: set[str] = set()
        """PeerIDs of the peers that said they are the stream's source."""
        self.forged_rejected = 0
        """Envelopes refused for a bad signature or a wrong index (their sender is banned)."""
        self.stale_rejected = 0
        """Envelopes refused as too old, too new or replayed."""
        self.finished = False
        """Done or failed: nothing more is asked."""
        self._requests: dict[tuple[str, int], _Request] = {}
        self._load: dict[str, int] = {}  # requests in flight per peer
        self._speed: dict[str, float] = {}  # EWMA of each peer's transfer time (s)
        self._neighbours: set[str] = set()
        self._pulled_at: dict[str, float] = {}  # when each peer's map was last asked for
        self._rng = random.Random(peer_id)
        self._pending: list[Action] = []
        self._new_chunks = False
        self._scoped_find_done = False
        self._last_push = self._last_find = -math.inf
        self._next_pull: float | None = None  # when a neighbour's map next becomes stale
        self._last_arrival = now
        self._last_poll = now
        self._wake_at: float | None = None  # a deferred chunk's next change of rule
        self._first_map_at: float | None = None  # when a map first showed the live edge

    # -- events --------------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> None:
        """Take note of ``event``, which happened at ``now``."""
        if isinstance(event, LiveChunkArrived):
            self.arrived(event.peer, event.index, event.data, now)
        elif isinstance(event, ChunkFailed):
            if self._end_request(event.peer, event.index) is not None:
                standing = self.peers.get(event.peer)
                if event.corrupt:  # the transport caught forged bytes (PPSPP's signed munros)
                    self.forged_rejected += 1
                    self._ban(event.peer, "forged")
                elif event.busy:  # it serves others first: left alone for the wait it names
                    if standing is not None:
                        standing.rest(now, event.retry_after)
                elif not event.stalled:  # silence is the stall rule's to judge, not a fault
                    self._failure(event.peer)
        elif isinstance(event, PeerConnected):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.connecting = False
                standing.connected = True
                standing.advertised_rate = event.advertised_rate
            if event.source:
                self.sources.add(event.peer)
        elif isinstance(event, PeerUnreachable):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.connecting = False
                standing.stall(now)  # not connected to nor asked again before its back-off
            self._failure(event.peer)
        elif isinstance(event, PeerBanned):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.ban()

    def arrived(self, peer: str, index: int, data: bytes, now: float) -> bool:
        """The envelope of chunk ``index`` arrived from ``peer``; True when it is newly held.

        It is decoded and verified (signature, index asked for, window): a forged one bans its
        sender, a stale one is dropped.  A request given up meanwhile still delivers: the bytes
        are here.
        """
        request = self._end_request(peer, index)
        if request is not None:
            self._measure(peer, now - request.made_at)
        try:
            envelope = ChunkEnvelope.decode(data)
            if envelope.index != index:
                raise ForgedChunk(f"asked for chunk {index}, got {envelope.index}")
            verify_envelope(self.description, envelope, now, self.window)
        except ForgedChunk:
            self.forged_rejected += 1
            self._ban(peer, "forged")
            return False
        except LiveError:
            self.stale_rejected += 1
            return False
        except PPSPError:  # not an envelope at all
            self.forged_rejected += 1
            self._ban(peer, "forged")
            return False
        standing = self.peers.get(peer)
        if standing is not None:
            standing.failures = 0  # a peer that delivers is not failing
            standing.sent_bytes(now)  # ... and is busy, not silent, while it delivers
        if not self.window.add(envelope):
            return False
        for other in [key for key in self._requests if key[1] == index]:
            self._end_request(*other)
            self._pending.append(CancelChunk(other[0], index, "duplicate"))
        self.playback.on_chunk(
            index,
            envelope.timestamp_ms,
            now,
            start=envelope.start,
            end=envelope.end,
            nbytes=len(data),
            from_source=peer in self.sources,
        )
        self._last_arrival = now
        self._new_chunks = True
        return True

    # -- actions -------------------------------------------------------------------------------

    def poll(self, now: float) -> list[Action]:
        """The actions due at ``now``: each is returned once."""
        if self.finished:
            return []
        self._last_poll = now
        self._connect(now)
        playback = self.playback
        newest = self._newest_known()
        if newest is not None and self._may_join(now):
            playback.note_newest(newest, now)
            if not self._scoped_find_done and playback.target is not None:
                self._scoped_find_done = True
                self._pending.append(FindHolders(playback.target))
        playout = playback.due(now)
        for index in playout.played:
            if index in self.window:
                envelope = self.window.get(index)
                self._pending.append(PlayChunk(index, envelope.payload, envelope.start))
        if playout.ended:
            self.finished = True
            self._pending.append(Done())
        else:
            self.window.expire(now)
            playback.set_floor(self.window.floor, now)
            self._expire(now)
            self._request(now)
            self._housekeeping(now)
            timeout = self.timing.no_progress_timeout
            if now >= self._last_arrival + timeout:
                self.finished = True
                self._pending.append(
                    Failed(f"no chunk arrived for {timeout:.0f} s: the stream is gone")
                )
        actions, self._pending = self._pending, []
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must be called again if no event comes (None: only on events)."""
        if self.finished:
            return None
        timing = self.timing
        join_at = None
        if self.playback.target is None and self._first_map_at is not None:
            join_at = self._first_map_at + timing.join_grace
        times = [
            self.playback.next_timer(),
            self._wake_at,
            join_at,
            self._next_pull,
            self._last_find + timing.find_interval,
            self._last_arrival + timing.no_progress_timeout,
        ]
        if self._new_chunks:
            times.append(self._last_push + timing.push_interval)
        if self._requests:
            times.append(min(request.next_time() for request in self._requests.values()))
        # A benched peer's back-off ending: it may be connected to or asked again.
        times.append(self.peers.next_release(self._last_poll))
        return min(t for t in times if t is not None)

    def neighbours(self) -> list[str]:
        """The viewers this viewer exchanges maps with (besides the sources): up to
        ``neighbours`` usable ones, those that left or were banned replaced at random."""
        usable = {s.peer_id for s in self.peers if s.usable and s.peer_id not in self.sources}
        self._neighbours &= usable
        spare = sorted(usable - self._neighbours)
        self._rng.shuffle(spare)
        self._neighbours.update(spare[: max(0, self.timing.neighbours - len(self._neighbours))])
        return sorted(self._neighbours)

    def in_flight(self) -> list[tuple[str, int]]:
        """The requests in flight, as (peer, index), in the order they were made."""
        return list(self._requests)

    # -- internals -----------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        for standing in self.peers.to_connect(now):
            standing.connecting = True
            self._pending.append(Connect(standing.peer_id))

    def _may_join(self, now: float) -> bool:
        """Whether the live edge is known well enough to join: a source's map is known, or
        ``join_grace`` passed since the first map (a viewer's map may lag the edge)."""
        if self.playback.target is not None:
            return True
        for peer in self.sources:
            standing = self.peers.get(peer)
            if standing is not None and standing.chunks:
                return True
        if self._first_map_at is None:
            self._first_map_at = now
        return now >= self._first_map_at + self.timing.join_grace

    def _newest_known(self) -> int | None:
        newest = self.window.newest
        for standing in self.peers:
            chunks = standing.chunks
            # A live map ends at the newest chunk its peer holds.
            if (
                chunks is not None
                and len(chunks)
                and not standing.banned
                and (newest is None or chunks.end > newest)
            ):
                newest = chunks.end
        return newest

    def _expire(self, now: float) -> None:
        """Give up the requests whose time is over (late, not failed: no fault counted) and
        those for chunks no longer wanted (before the playback position or the window); bench
        the peers whose requests stalled, and give up every request of a peer benched or
        banned, so that their chunks are asked of other holders in this same poll."""
        position = self.playback.position
        lowest = max(self.window.floor, -1 if position is None else position)
        for key, request in list(self._requests.items()):
            if key[1] < lowest:
                self._end_request(*key)
                self._pending.append(CancelChunk(key[0], key[1], "unwanted"))
            elif request.give_up_at <= now:
                self._end_request(*key)
                self._measure(key[0], now - request.made_at)  # at least this long
                self._pending.append(CancelChunk(key[0], key[1], "late"))
            elif request.stall_at <= now:
                self._check_stall(key[0], request, now)
        for peer, index in list(self._requests):
            standing = self.peers.get(peer)
            if standing is not None and (standing.banned or standing.benched(now)):
                self._end_request(peer, index)
                reason = "banned" if standing.banned else "stalled"
                self._pending.append(CancelChunk(peer, index, reason))

    def _check_stall(self, peer: str, request: _Request, now: float) -> None:
        """``request`` to ``peer`` is unanswered after ``stall_timeout``: a silent peer is
        benched (one stall however many of its requests stalled; no failure); a peer that
        delivers is busy: the request stays in flight (``_request`` asks another holder too)
        and is looked at again once the peer has been silent for ``FIRST_BYTE_TIMEOUT``.

        A source is never benched for silence: it serves every viewer a share of a capped
        upload, so a viewer that rarely asks it hears nothing from it for seconds while it
        works, and a benched source is a chunk only it holds skipped.  Its request stays until
        the chunk's deadline (one slot: a peer that falsely claims to be a source holds one
        request at a time) and the chunk is also asked of another holder.
        """
        standing = self.peers.get(peer)
        if standing is None or peer in self.sources:
            request.stall_at = math.inf
        elif standing.delivering(now):
            request.stall_at = standing.last_bytes_at + FIRST_BYTE_TIMEOUT
        elif not standing.benched(now):
            standing.stall(now)

    def _timeout(self, index: int, now: float) -> float:
        timing = self.timing
        if self.playback.play_start is None:
            left = timing.startup_fetch_timeout
        else:
            left = self.playback.urgency(index, now)
        return min(timing.fetch_timeout, max(timing.min_fetch_timeout, left))

    def _slots(self, peer: str) -> int:
        timing = self.timing
        slots = timing.source_slots if peer in self.sources else timing.slots_per_peer
        standing = self.peers.get(peer)
        if standing is not None and self._probation(standing):
            return min(slots, 1)  # one request at a time until it delivers
        return slots

    def _request(self, now: float) -> None:
        self._wake_at = None
        usable = [s for s in self.peers if s.usable and s.chunks is not None and not s.benched(now)]
        if not usable:
            return
        timing, playback, sources = self.timing, self.playback, self.sources
        requested: dict[int, list[str]] = {}
        for peer, index in self._requests:
            requested.setdefault(index, []).append(peer)
        availability = availability_from_bitmaps(s.chunks for s in usable if s.chunks is not None)
        for index in self.window:
            availability.pop(index, None)
        wanted = playback.wanted(availability, now)
        # The viewers that take new chunks from the source first are chosen among those that
        # hold chunks and are not on probation: a flooder (it holds nothing) or a tarpit
        # chosen would take nothing on, and the chunk would wait for a relay until it is due
        # within source_relief for every viewer at once (then all ask the source together).
        # Not only those that have sent this viewer an envelope: each viewer's set would be
        # its own, and with small sets many more viewers took each chunk first (the source's
        # share 19.3% against 14.7% in the plain lab, its PPSPP channels swamped behind NAT).
        viewers = [
            s.peer_id
            for s in usable
            if s.peer_id not in sources and s.chunks and not self._probation(s)
        ]
        hunting = False
        budget = len(usable) * timing.slots_per_peer
        # Looking for the start point: a few chunks at a time, the nearest first (second
        # asks of those are not counted).
        searching = budget
        if playback.first is None:
            searching = timing.search_requests - len(requested)
        for index in wanted:
            if budget <= 0:
                break
            left = playback.urgency(index, now)
            holders = [s for s in usable if s.chunks is not None and index in s.chunks]
            relays = [s for s in holders if s.peer_id not in sources]
            asked = requested.get(index)
            if asked:
                # In flight: a second holder as the deadline nears and the first is slow, or
                # once the first is overdue at a busy peer (a silent one is benched instead).
                if len(asked) > 1:
                    continue
                made = self._requests[(asked[0], index)].made_at
                overdue = now - made >= timing.stall_timeout
                if not overdue and left > timing.endgame_s:
                    self._wake(min(now + left - timing.endgame_s, made + timing.stall_timeout))
                    continue
                if not overdue and now - made < timing.endgame_after:
                    self._wake(made + timing.endgame_after)
                    continue
                # A request at a relay that never sent an envelope is hedged only at one that
                # has: two strangers may be two tarpits, and the chunk cannot wait out a
                # second stall (the source is asked instead, below).
                first = self.peers.get(asked[0])
                strangers_ok = first is not None and self._proven(first)
                spare = [
                    s
                    for s in relays
                    if s.peer_id not in asked
                    and self._free(s)
                    and not self._probation(s)
                    and (strangers_ok or self._proven(s))
                ]
                if not spare and left <= timing.source_relief:
                    # No relay free: the source, rather than a skip (if it can be in time).
                    spare = [
                        s
                        for s in holders
                        if s.peer_id in sources
                        and s.peer_id not in asked
                        and self._free(s)
                        and self._in_time(s, left)
                    ]
                if spare:
                    self._ask(self._best(spare, urgent=True), index, now)
                    budget -= 1
                continue
            if searching <= 0:
                continue
            if not relays and left <= timing.hunt_s:
                hunting = True
            relaxed = left > timing.source_relief
            trusted = [s for s in relays if not self._probation(s)]
            if relays and relaxed:
                holders = relays
            elif trusted and playback.play_start is None:
                # The startup buffer from relays (the source by the second ask, above): a
                # burst of joining viewers at the source delays the new chunks the playing
                # viewers need, and a chunk that old is held by the relays they reach.
                holders = trusted
            elif relaxed and not fetches_first(self.peer_id, index, viewers, timing.source_fanout):
                # Another viewer takes it from the source: wait for a relay until it is due
                # within source_relief (and look for one from hunt_s on).
                self._wake(now + left - timing.source_relief)
                if left > timing.hunt_s:
                    self._wake(now + left - timing.hunt_s)
                continue
            # A peer on probation only for a chunk that can wait out a stall and a second ask.
            bears_stall = left > timing.stall_timeout + timing.endgame_s
            free = [
                s
                for s in holders
                if self._free(s)
                and (bears_stall or not self._probation(s))
                and self._in_time(s, left)
            ]
            if not free:
                continue
            self._ask(self._best(free, urgent=not bears_stall), index, now)
            budget -= 1
            searching -= 1
        if hunting:
            self._hunt(now)

    def _probation(self, standing: PeerStanding) -> bool:
        """Whether a relay stalled :data:`PROBATION_STALLS` times and never sent an envelope (a
        relay that announces every chunk and answers none, back from its bench): it gets one
        request at a time, never a hedge, only chunks that can bear a stall, and comes last.
        A source never is (it is never benched for silence either: :meth:`_check_stall`)."""
        return (
            standing.stalls >= PROBATION_STALLS
            and standing.last_bytes_at == -math.inf
            and standing.peer_id not in self.sources
        )

    def _proven(self, standing: PeerStanding) -> bool:
        """Whether ``standing`` has sent an envelope (or is a source): a relay that never did
        may announce every chunk and answer none, and is not yet known to be one until its
        first stall, a second after it was asked."""
        return standing.last_bytes_at != -math.inf or standing.peer_id in self.sources

    def _in_time(self, standing: PeerStanding, left: float) -> bool:
        """Whether a chunk due in ``left`` seconds may be asked of ``standing``: of a relay
        always; of a source, once playing, only when its measured transfer time (a request
        given up counting the time it ran) is within ``left``.  A source's upload is shared
        by every viewer that asks it: when it is swamped, requests that cannot arrive in time
        only slow down the ones that can (the few viewers taking new chunks first), whose
        chunks then reach the relays late and make more viewers fall back on the source."""
        if standing.peer_id not in self.sources or self.playback.play_start is None:
            return True
        took = self._speed.get(standing.peer_id)
        return took is None or took <= left

    def _measure(self, peer: str, took: float) -> None:
        """A transfer from ``peer`` took ``took`` seconds (or ran that long and was given
        up): the moving average of its transfer times."""
        took = max(0.0, took)
        before = self._speed.get(peer)
        self._speed[peer] = took if before is None else 0.7 * before + 0.3 * took

    def _free(self, standing: PeerStanding) -> bool:
        return self._load.get(standing.peer_id, 0) < self._slots(standing.peer_id)

    def _best(self, holders: list[PeerStanding], *, urgent: bool = False) -> PeerStanding:
        """A peer not on probation first; for an ``urgent`` chunk (one that cannot wait out a
        stall) a proven one (:meth:`_proven`) next; then the least loaded holder, then the one
        failing least, then the fastest measured (an unmeasured one first: chunks that can
        bear a stall are how new relays are tried)."""
        load, speed = self._load, self._speed
        return min(
            holders,
            key=lambda s: (
                self._probation(s),
                urgent and not self._proven(s),
                load.get(s.peer_id, 0),
                s.failures,
                speed.get(s.peer_id, 0.0),
            ),
        )

    def _ask(self, standing: PeerStanding, index: int, now: float) -> None:
        peer = standing.peer_id
        self._requests[(peer, index)] = _Request(
            now, now + self._timeout(index, now), now + self.timing.stall_timeout
        )
        self._load[peer] = self._load.get(peer, 0) + 1
        self._pending.append(FetchChunk(peer, index))

    def _end_request(self, peer: str, index: int) -> _Request | None:
        """Forget a request in flight; the request, None when there was none."""
        request = self._requests.pop((peer, index), None)
        if request is not None:
            self._load[peer] = max(0, self._load.get(peer, 1) - 1)
        return request

    def _wake(self, at: float) -> None:
        if self._wake_at is None or at < self._wake_at:
            self._wake_at = at

    def _hunt(self, now: float) -> None:
        """Pull the stale maps of every connected viewer: a chunk near its deadline has no
        known relay."""
        for standing in self.peers:
            if standing.usable and standing.peer_id not in self.sources:
                self._pull(standing, now, self.timing.hunt_stale)

    def _housekeeping(self, now: float) -> None:
        timing = self.timing
        neighbours = self.neighbours()
        if not neighbours:
            self._new_chunks = False  # nobody to tell (a new neighbour PULLs the map)
        elif self._new_chunks and now >= self._last_push + timing.push_interval:
            self._new_chunks = False
            self._last_push = now
            self._pending.append(PushMap(tuple(neighbours)))
        self._next_pull = None
        for peer in neighbours + sorted(self.sources):
            standing = self.peers.get(peer)
            if standing is not None and standing.usable:
                at = self._pull(standing, now, timing.pull_interval)
                if self._next_pull is None or at < self._next_pull:
                    self._next_pull = at
        if now >= self._last_find + timing.find_interval:
            self._last_find = now
            self._pending.append(FindPeers(via_peers=False))

    def _pull(self, standing: PeerStanding, now: float, stale: float) -> float:
        """PULL the map of ``standing`` when it is ``stale`` seconds old and was not asked for
        within that time either; returns when to look again."""
        peer = standing.peer_id
        due = max(standing.last_map_at, self._pulled_at.get(peer, -math.inf)) + stale
        if now >= due:
            self._pulled_at[peer] = now
            self._pending.append(PullMap(peer))
            return now + stale
        return due

    def _failure(self, peer: str) -> None:
        standing = self.peers.get(peer)
        if standing is not None and standing.fail():
            self._pending.append(BanPeer(peer, "failures"))

    def _ban(self, peer: str, reason: str) -> None:
        standing = self.peers.get(peer)
        if standing is not None and standing.ban():
            self._pending.append(BanPeer(peer, reason))
        if reason == "forged":  # its host too: no other PeerID there is connected or asked
            for other in self.peers.ban_host(peer):
                self._pending.append(BanPeer(other.peer_id, "host"))
