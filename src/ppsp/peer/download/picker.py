"""The piece picker: which chunk to request from which peer, and when to give up on a request.

Sans-I/O: the caller tells the picker what each connected peer holds (a
:class:`~ppsp.wire.bitmap.ChunkBitmap` per peer id), what arrived, failed or was seen, and the
current time ``now``; the picker answers with requests to send (:meth:`PiecePicker.next_requests`),
requests that timed out (:meth:`PiecePicker.expired`) and duplicate requests to cancel
(:meth:`PiecePicker.on_received`).  A chunk whose bytes arrived is verified and stored
outside the picker: :meth:`PiecePicker.on_delivered` frees its request slot at once, and
:meth:`PiecePicker.mark_held` or :meth:`PiecePicker.on_failed` ends its verification.  It
never sleeps and never reads a clock; the caller arms one timer for
:meth:`PiecePicker.next_timeout`, as aioquic's ``get_timer`` / ``handle_timer`` do.

Policy, in the order :meth:`~PiecePicker.next_requests` applies it to the peers' free request
slots:

1. **Urgent**: the ``window`` chunks from the playback position on, in playback order, each to
   the fastest peer holding it that has a free slot.  :meth:`~PiecePicker.seek` moves the window
   at once.
2. **Rarest first**: every other missing chunk that is not in flight, fewest holders first, ties
   broken by the injected random generator, each to the fastest free peer holding it.
3. **Endgame**: once every missing chunk that any peer can supply is in flight, free slots take
   duplicate requests (at most ``endgame_duplicates`` extra per chunk) for requests in flight
   longer than ``endgame_patience`` times their expected transfer time, window chunks first,
   then the oldest requests; the first copy to arrive cancels the others.

Requests in flight are bounded per peer (its slots), in all (``max_requests``: a capped uploader
serving every requester's full slots would finish each chunk late), and for seeders
(``seed_slots``: a peer holding every missing chunk gets few requests while other peers hold
missing chunks, so that the source's upload goes to the chunks only it holds).

Throughput per peer is an EWMA of delivery rates, each sample the chunk's bytes over the time
since the later of the request and the peer's previous delivery (so parallel requests to one
peer measure its aggregate rate).  Until a peer is measured, the rate it advertised
(:meth:`PiecePicker.set_advertised_rate`) ranks it, else the average of the measured peers.
A request expires after ``timeout_factor`` times its expected transfer time (queue depth x
chunk size / throughput), never less than ``timeout_floor``, or after ``initial_timeout``
while the peer is unmeasured; a request whose bytes are arriving
(:meth:`PiecePicker.on_progress`) expires only after ``stall_timeout`` without a byte.  A
peer whose request for a chunk expired is tried last for that chunk; a peer that failed or
corrupted a chunk is never asked for it again; a banned peer is never asked for anything.

Chunks are plain integer indexes in ``[floor, end)``, fixed when the picker is made (a live
viewer's choices are :mod:`ppsp.peer.live.viewer`'s).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from ppsp.peer.download.peers import PROGRESS_TIMEOUT
from ppsp.wire.bitmap import ChunkBitmap

__all__ = ["DOWNLOAD_CONFIG", "PeerId", "PickerConfig", "PiecePicker", "Request"]

PeerId = str
"""A peer's identifier, as the tracker and peer protocol carry it."""

Request = tuple[PeerId, int]
"""A (peer id, chunk index) pair: a request to send, an expired one, or one to cancel."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PickerConfig:
    """Tuning of a :class:`PiecePicker`; every field has a working default."""

    window: int = 0
    """Chunks after the playback position fetched in order (0: plain download)."""
    default_slots: int = 4
    """Requests in flight per peer when :meth:`PiecePicker.set_peer` gives none."""
    chunk_size: int = 256 * 1024
    """Nominal bytes per chunk, for expected transfer times."""
    timeout_floor: float = 2.0
    """Shortest request timeout, in seconds."""
    initial_timeout: float = 15.0
    """Request timeout while a peer's throughput is unmeasured, in seconds."""
    timeout_factor: float = 3.0
    """Timeout as a multiple of the expected transfer time."""
    endgame_duplicates: int = 1
    """Extra requests per chunk allowed in endgame."""
    endgame_patience: float = 0.0
    """In endgame, a request is duplicated only once it has been in flight this many times its
    expected transfer time (0: at once)."""
    max_requests: int = 0
    """Requests in flight to all peers together (0: only the per-peer slots bound them)."""
    seed_slots: int = 0
    """Requests in flight to a peer holding every missing chunk (a seeder), if fewer than its
    slots (0: no such bound): the seeder's upload goes to the chunks only it holds, the other
    chunks come from peers that are still downloading."""
    stall_timeout: float = PROGRESS_TIMEOUT
    """Seconds a request whose bytes are arriving may go without a byte before it expires
    (:data:`~ppsp.peer.download.peers.PROGRESS_TIMEOUT`)."""
    ewma_alpha: float = 0.3
    """Weight of the newest throughput sample."""
    queue_time: float = 0.0
    """Seconds of a peer's measured throughput kept in flight to it: a peer faster than
    ``slots x chunk_size / queue_time`` gets more request slots than its own, up to
    ``max_slots``, so that a fast link stays busy while chunks are verified and stored
    (0: slots never grow)."""
    max_slots: int = 16
    """Most request slots ``queue_time`` may give a peer."""

    def __post_init__(self) -> None:
        if self.window < 0 or self.default_slots < 1 or self.chunk_size < 1:
            raise ValueError("window must be >= 0, default_slots and chunk_size >= 1")
        if self.timeout_floor <= 0 or self.initial_timeout <= 0 or self.timeout_factor <= 0:
            raise ValueError("timeouts must be positive")
        if self.endgame_duplicates < 0 or not 0 < self.ewma_alpha <= 1:
            raise ValueError("endgame_duplicates must be >= 0 and ewma_alpha in (0, 1]")
        if min(self.endgame_patience, self.max_requests, self.seed_slots) < 0:
            raise ValueError("endgame_patience, max_requests and seed_slots must be >= 0")
        if self.stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive")
        if self.queue_time < 0 or self.max_slots < 1:
            raise ValueError("queue_time must be >= 0 and max_slots >= 1")


DOWNLOAD_CONFIG = PickerConfig(
    default_slots=2, max_requests=24, seed_slots=1, endgame_patience=1.0, queue_time=0.05
)
"""The tuning a stored-content download uses (``ppsp get``); see docs/BENCHMARKS.md."""


class _Flight:
    """One request in flight: when it was sent, when it expires, how long it should take."""

    __slots__ = ("deadline", "expected", "requested_at")

    def __init__(self, requested_at: float, deadline: float, expected: float) -> None:
        self.requested_at = requested_at
        self.deadline = deadline
        self.expected = expected


class _Peer:
    """Mutable per-peer state."""

    __slots__ = (
        "advertised",
        "chunks",
        "failed",
        "last_delivery",
        "requests",
        "slots",
        "throughput",
        "timed_out",
    )

    def __init__(self, chunks: ChunkBitmap, slots: int) -> None:
        self.advertised: float | None = None
        self.chunks = chunks
        self.slots = slots
        self.throughput: float | None = None
        self.last_delivery: float | None = None
        self.requests: dict[int, _Flight] = {}
        self.failed: set[int] = set()
        self.timed_out: set[int] = set()


def _copy(bitmap: ChunkBitmap) -> ChunkBitmap:
    return ChunkBitmap(bitmap.size, bitmap.start, bitmap.to_bytes())


class PiecePicker:
    """Chooses chunk requests for one swarm (one representation) from the peers' chunk maps.

    ``end`` is one past the last chunk index; ``start`` the first wanted (the floor); ``held``
    the chunks already held (for instance a :class:`~ppsp.wire.bitmap.ChunkBitmap` from the
    store).  ``rng`` breaks ties; pass a seeded one for reproducible choices.
    """

    def __init__(
        self,
        end: int,
        *,
        start: int = 0,
        held: Iterable[int] = (),
        config: PickerConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if start < 0 or end < start:
            raise ValueError("need 0 <= start <= end")
        self.config = config or PickerConfig()
        self._rng = rng or random.Random()
        self._floor = start
        self._end = end
        self._missing = set(range(start, end))
        self._missing.difference_update(held)
        self._position: int | None = None
        self._peers: dict[PeerId, _Peer] = {}
        self._banned: set[PeerId] = set()
        self._avail: dict[int, int] = {}
        self._holders: dict[int, set[PeerId]] = {}  # chunk -> peers it is requested from
        # Delivered chunks being verified (not requested again), with the peers whose copies
        # are being verified.
        self._verifying: dict[int, set[PeerId]] = {}
        # Missing chunks that some peer holds, fewest holders first, random among equals;
        # rebuilt when availability changes, held chunks are skipped until the next rebuild.
        self._rarest: list[int] | None = None
        # Whether the last next_requests reached the endgame with a free slot: only then can
        # time alone (a request growing overdue) make it issue more.
        self._endgame_open = False

    # ------------------------------------------------------------------ state queries

    @property
    def floor(self) -> int:
        """First chunk index still wanted."""
        return self._floor

    @property
    def end(self) -> int:
        """One past the last chunk index known."""
        return self._end

    @property
    def position(self) -> int | None:
        """The playback position, or None before the first :meth:`seek`."""
        return self._position

    @property
    def missing(self) -> frozenset[int]:
        """Chunks in ``[floor, end)`` not held."""
        return frozenset(self._missing)

    @property
    def complete(self) -> bool:
        """Whether every chunk in ``[floor, end)`` is held."""
        return not self._missing

    @property
    def peers(self) -> frozenset[PeerId]:
        """Connected, not banned peers."""
        return frozenset(self._peers)

    def is_banned(self, peer: PeerId) -> bool:
        """Whether ``peer`` was banned."""
        return peer in self._banned

    def availability(self, index: int) -> int:
        """How many connected peers hold chunk ``index``."""
        return self._avail.get(index, 0)

    def throughput(self, peer: PeerId) -> float | None:
        """The peer's measured throughput in bytes per second (None until measured)."""
        state = self._peers.get(peer)
        return None if state is None else state.throughput

    def in_flight(self, peer: PeerId | None = None) -> list[Request]:
        """Requests in flight (to ``peer``, or to every peer), sorted."""
        if peer is None:
            return sorted((pid, c) for pid, state in self._peers.items() for c in state.requests)
        state = self._peers.get(peer)
        return [] if state is None else sorted((peer, c) for c in state.requests)

    def next_timeout(self) -> float | None:
        """The earliest request deadline: when to call :meth:`expired` next (None: no timer)."""
        deadlines = [f.deadline for state in self._peers.values() for f in state.requests.values()]
        return min(deadlines, default=None)

    def next_duplicate_at(self, now: float) -> float | None:
        """When, after ``now``, an endgame request grows overdue enough to be duplicated.

        Only while the last :meth:`next_requests` reached the endgame with a free slot:
        otherwise a slot must free first, which an event tells.  None when nothing is due by
        time alone; the caller then calls :meth:`next_requests` again on its next event.
        """
        config = self.config
        if not self._endgame_open or not config.endgame_duplicates:
            return None
        due: float | None = None
        for chunk, peers in self._holders.items():
            if (
                len(peers) > config.endgame_duplicates
                or chunk not in self._missing
                or chunk in self._verifying
            ):
                continue
            at = max(
                flight.requested_at + config.endgame_patience * flight.expected
                for flight in (self._peers[p].requests[chunk] for p in peers)
            )
            if at > now and (due is None or at < due):
                due = at
        return due

    @property
    def endgame(self) -> bool:
        """Whether every missing chunk that some peer can supply is already in flight."""
        return not any(
            chunk not in self._holders and chunk not in self._verifying and self._usable(chunk)
            for chunk in self._missing
        )

    # ------------------------------------------------------------------ peers

    def set_peer(self, peer: PeerId, chunks: ChunkBitmap, *, slots: int | None = None) -> None:
        """Add ``peer`` or replace its chunk map (a copy is kept); ignored for banned peers."""
        if slots is not None and slots < 1:
            raise ValueError("a peer needs at least one request slot")
        if peer in self._banned:
            return
        state = self._peers.get(peer)
        if state is None:
            state = _Peer(_copy(chunks), slots or self.config.default_slots)
            self._peers[peer] = state
        else:
            if slots is not None:
                state.slots = slots
            if state.chunks == chunks:
                return  # the same map again: nothing to recount
            self._count(state.chunks, -1)
            state.chunks = _copy(chunks)
        self._count(state.chunks, +1)

    def peer_has(self, peer: PeerId, index: int) -> None:
        """Record that ``peer`` announced chunk ``index`` (e.g. a pushed availability)."""
        state = self._peers.get(peer)
        if state is None or index < 0 or index in state.chunks:
            return
        if not state.chunks.start <= index <= state.chunks.end:
            old = state.chunks
            start = min(old.start, index) if old.size else index
            end = max(old.end, index) if old.size else index
            state.chunks = ChunkBitmap.from_indexes(old, end - start + 1, start)
        state.chunks.add(index)
        if index >= self._floor:
            self._avail[index] = self._avail.get(index, 0) + 1
            self._rarest = None

    def set_advertised_rate(self, peer: PeerId, rate: float | None) -> None:
        """What ``peer`` says it can upload (bytes per second), e.g. from PROPERTY_QUERY.

        It ranks the peer until its throughput is measured; the measurement then decides.
        """
        state = self._peers.get(peer)
        if state is not None:
            state.advertised = rate if rate is not None and rate > 0 else None

    def set_slots(self, peer: PeerId, slots: int) -> None:
        """Change how many requests may be in flight to ``peer`` at once."""
        if slots < 1:
            raise ValueError("a peer needs at least one request slot")
        self._peers[peer].slots = slots

    def remove_peer(self, peer: PeerId) -> list[int]:
        """Forget a disconnected peer; returns the chunks that were in flight to it."""
        state = self._peers.pop(peer, None)
        if state is None:
            return []
        self._count(state.chunks, -1)
        for chunk in state.requests:
            self._unhold(chunk, peer)
        return sorted(state.requests)

    def ban(self, peer: PeerId) -> list[int]:
        """Never ask ``peer`` again (e.g. it sent corrupt data); returns its in-flight chunks."""
        self._banned.add(peer)
        return self.remove_peer(peer)

    # ------------------------------------------------------------------ position and range

    def seek(self, position: int) -> None:
        """Move the playback position (and with it the urgent window) to chunk ``position``."""
        if position < 0:
            raise ValueError("position must not be negative")
        self._position = position

    # ------------------------------------------------------------------ events

    def mark_held(self, index: int) -> list[Request]:
        """Record a chunk held by other means; returns in-flight requests for it to cancel."""
        self._missing.discard(index)
        self._verifying.pop(index, None)
        cancels: list[Request] = []
        for peer in sorted(self._holders.pop(index, ())):
            del self._peers[peer].requests[index]
            cancels.append((peer, index))
        return cancels

    def on_received(self, peer: PeerId, index: int, nbytes: int, now: float) -> list[Request]:
        """A verified chunk arrived from ``peer``; returns duplicate requests to cancel.

        The same as :meth:`on_delivered` followed by :meth:`mark_held`.
        """
        self.on_delivered(peer, index, nbytes, now)
        return self.mark_held(index)

    def on_delivered(self, peer: PeerId, index: int, nbytes: int, now: float) -> None:
        """The bytes of ``index`` arrived from ``peer`` and are being verified.

        The request's slot is free again and the delivery counts in the peer's throughput;
        the chunk is not requested again while it is verified.  Then :meth:`mark_held` (it
        was good) or :meth:`on_failed` (it was not) says how verification ended.
        Chunks being verified count against ``max_requests``, which bounds them.
        """
        state = self._peers.get(peer)
        if state is not None:
            request = state.requests.pop(index, None)
            if request is not None:
                self._unhold(index, peer)
                busy_since = request.requested_at
                if state.last_delivery is not None:
                    busy_since = max(busy_since, state.last_delivery)
                self._sample(state, nbytes, now - busy_since)
            state.last_delivery = now
        if index in self._missing:
            self._verifying.setdefault(index, set()).add(peer)

    def abandon(self, peer: PeerId, index: int) -> None:
        """Verification of ``peer``'s copy of ``index`` did not finish (it was cancelled).

        Unless another copy is being verified, the chunk may be requested again.
        """
        self._end_verification(peer, index)

    def on_progress(self, peer: PeerId, index: int, now: float) -> None:
        """Bytes of the requested chunk ``index`` are arriving from ``peer``.

        A request whose bytes flow does not expire: its deadline moves to at least
        ``stall_timeout`` seconds from ``now``, so only a stalled transfer times out.
        """
        state = self._peers.get(peer)
        flight = None if state is None else state.requests.get(index)
        if flight is not None:
            flight.deadline = max(flight.deadline, now + self.config.stall_timeout)

    def on_failed(self, peer: PeerId, index: int) -> None:
        """``peer`` could not deliver ``index`` or sent bytes that failed verification.

        The peer is never asked for that chunk again; :meth:`ban` excludes it entirely.
        """
        self._end_verification(peer, index)
        state = self._peers.get(peer)
        if state is None:
            return
        if state.requests.pop(index, None) is not None:
            self._unhold(index, peer)
        state.failed.add(index)

    def on_timed_out(self, peer: PeerId, index: int) -> None:
        """``peer`` did not deliver ``index`` in time, or answered that it was busy.

        Unlike :meth:`on_failed`, no fault: the peer is tried last for that chunk, not never
        (it may be the only holder, swamped by other requesters for a while).
        """
        self._end_verification(peer, index)
        state = self._peers.get(peer)
        if state is None:
            return
        if state.requests.pop(index, None) is not None:
            self._unhold(index, peer)
        state.timed_out.add(index)

    def expired(self, now: float) -> list[Request]:
        """Remove and return requests whose deadline has passed, to re-issue elsewhere.

        Each expiry counts as a slow delivery in the peer's throughput, and the peer is tried
        last for that chunk from now on.
        """
        result: list[tuple[float, PeerId, int]] = []
        for pid, state in self._peers.items():
            for chunk, flight in list(state.requests.items()):
                if now < flight.deadline:
                    continue
                del state.requests[chunk]
                self._unhold(chunk, pid)
                state.timed_out.add(chunk)
                self._sample(state, self.config.chunk_size, now - flight.requested_at)
                result.append((flight.deadline, pid, chunk))
        result.sort()
        return [(pid, chunk) for _, pid, chunk in result]

    # ------------------------------------------------------------------ picking

    def next_requests(self, now: float) -> list[Request]:
        """Requests to send now, filling every peer's free slots (see the module docstring)."""
        self._endgame_open = False
        bounded = self._bounded_seeders()
        free = {
            pid: slots - len(state.requests)
            for pid, state in self._peers.items()
            if (slots := self._slots(state, pid in bounded)) > len(state.requests)
        }
        out: list[Request] = []
        budget = self._budget()
        if not free or not self._missing or budget <= 0:
            return out
        speeds = self._speeds()

        def issue(chunk: int) -> bool:
            """Request ``chunk`` from its best free holder; False when none is free."""
            nonlocal budget
            peer = self._best_peer(chunk, free, speeds)
            if peer is None:
                return False
            self._issue(peer, chunk, now)
            out.append((peer, chunk))
            budget -= 1
            free[peer] -= 1
            if not free[peer]:
                del free[peer]
            if budget <= 0:
                free.clear()
            return True

        window = self._window()
        missing, holders, verifying = self._missing, self._holders, self._verifying
        for chunk in window:
            if chunk in missing and chunk not in holders and chunk not in verifying:
                issue(chunk)
                if not free:
                    return out

        for chunk in self._rarest_order():
            if chunk in missing and chunk not in holders and chunk not in verifying:
                issue(chunk)
                if not free:
                    return out

        if any(
            c in missing and c not in holders and c not in verifying and self._usable(c)
            for c in self._rarest_order()
        ):
            return out  # not endgame: the only holders of some unrequested chunk are busy
        self._endgame_open = True
        in_window = set(window)
        duplicable = sorted(
            (
                chunk not in in_window,
                chunk if chunk in in_window else min(self._requested_at(chunk, p) for p in peers),
                chunk,
            )
            for chunk, peers in self._holders.items()
            if len(peers) <= self.config.endgame_duplicates
            and chunk in self._missing
            and chunk not in verifying
            and self._overdue(chunk, peers, now)
        )
        for _, _, chunk in duplicable:
            issue(chunk)
            if not free:
                break
        return out

    # ------------------------------------------------------------------ internals

    def _bounded_seeders(self) -> set[PeerId]:
        """Peers held to ``seed_slots``: seeders, while another peer holds a missing chunk.

        A seeder holds every missing chunk.  With no other peer able to supply anything, the
        seeders are used to their full slots.
        """
        if not self.config.seed_slots:
            return set()
        seeders: set[PeerId] = set()
        others = False
        for pid, state in self._peers.items():
            chunks = state.chunks
            # Short-circuiting checks: a complete map needs no scan, and a partial one
            # usually shows a missing chunk it lacks (or holds) within a few steps.
            whole = chunks.complete and chunks.start <= self._floor and chunks.end >= self._end - 1
            if whole or all(chunk in chunks for chunk in self._missing):
                seeders.add(pid)
            elif not others and any(chunk in chunks for chunk in self._missing):
                others = True
        return seeders if others else set()

    def _slots(self, state: _Peer, bounded: bool) -> int:
        """The peer's request slots (grown by ``queue_time``), at most ``seed_slots`` for a
        ``bounded`` seeder."""
        config = self.config
        slots = state.slots
        if config.queue_time and state.throughput is not None and slots < config.max_slots:
            wanted = int(state.throughput * config.queue_time / config.chunk_size)
            slots = max(slots, min(wanted, config.max_slots))
        return min(slots, config.seed_slots) if bounded else slots

    def _budget(self) -> int:
        """How many more requests ``max_requests`` allows now (a large number without a cap)."""
        if not self.config.max_requests:
            return len(self._missing) * (1 + self.config.endgame_duplicates)
        in_flight = sum(len(state.requests) for state in self._peers.values())
        return self.config.max_requests - in_flight - len(self._verifying)

    def _window(self) -> list[int]:
        if self._position is None or not self.config.window:
            return []
        first = max(self._position, self._floor)
        return list(range(first, min(first + self.config.window, self._end)))

    def _rarest_order(self) -> list[int]:
        """Missing chunks some peer holds, rarest first (cached; see ``_rarest``)."""
        order = self._rarest
        if order is None:
            avail, rng = self._avail, self._rng
            keyed = sorted((avail[c], rng.random(), c) for c in self._missing if c in avail)
            order = self._rarest = [c for _, _, c in keyed]
        elif len(order) > 2 * len(self._missing) + 64:
            missing = self._missing
            order = self._rarest = [c for c in order if c in missing]
        return order

    def _count(self, chunks: ChunkBitmap, delta: int) -> None:
        self._rarest = None
        for index in chunks:
            if index < self._floor:
                continue
            count = self._avail.get(index, 0) + delta
            if count > 0:
                self._avail[index] = count
            else:
                self._avail.pop(index, None)

    def _usable(self, chunk: int) -> bool:
        """Whether some connected peer holds ``chunk`` and has not failed it."""
        return any(
            chunk in state.chunks and chunk not in state.failed for state in self._peers.values()
        )

    def _speeds(self) -> dict[PeerId, float]:
        known = [s.throughput for s in self._peers.values() if s.throughput is not None]
        # An unmeasured peer ranks by what it advertised, else as an average one: neither
        # starved nor blindly trusted.
        neutral = sum(known) / len(known) if known else 0.0
        speeds: dict[PeerId, float] = {}
        for pid, state in self._peers.items():
            if state.throughput is not None:
                speeds[pid] = state.throughput
            elif state.advertised is not None:
                speeds[pid] = state.advertised
            else:
                speeds[pid] = neutral
        return speeds

    def _best_peer(
        self, chunk: int, free: dict[PeerId, int], speeds: dict[PeerId, float]
    ) -> PeerId | None:
        best: tuple[bool, float, float] | None = None
        chosen: PeerId | None = None
        for pid in free:
            state = self._peers[pid]
            if chunk not in state.chunks or chunk in state.failed or chunk in state.requests:
                continue
            key = (chunk not in state.timed_out, speeds[pid], self._rng.random())
            if best is None or key > best:
                best, chosen = key, pid
        return chosen

    def _issue(self, peer: PeerId, chunk: int, now: float) -> None:
        state = self._peers[peer]
        queue = len(state.requests) + 1
        if state.throughput is None or state.throughput <= 0:
            timeout = self.config.initial_timeout
            expected = timeout / self.config.timeout_factor
        else:
            expected = queue * self.config.chunk_size / state.throughput
            timeout = self.config.timeout_factor * expected
        deadline = now + max(self.config.timeout_floor, timeout)
        state.requests[chunk] = _Flight(now, deadline, expected)
        self._holders.setdefault(chunk, set()).add(peer)

    def _end_verification(self, peer: PeerId, chunk: int) -> None:
        copies = self._verifying.get(chunk)
        if copies is not None:
            copies.discard(peer)
            if not copies:
                del self._verifying[chunk]

    def _unhold(self, chunk: int, peer: PeerId) -> None:
        peers = self._holders.get(chunk)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._holders[chunk]

    def _requested_at(self, chunk: int, peer: PeerId) -> float:
        return self._peers[peer].requests[chunk].requested_at

    def _overdue(self, chunk: int, peers: set[PeerId], now: float) -> bool:
        """Whether every request for ``chunk`` took ``endgame_patience`` x its expected time."""
        patience = self.config.endgame_patience
        return all(
            now - flight.requested_at >= patience * flight.expected
            for flight in (self._peers[p].requests[chunk] for p in peers)
        )

    def _sample(self, state: _Peer, nbytes: int, elapsed: float) -> None:
        if elapsed <= 0 or nbytes <= 0:
            return
        rate = nbytes / elapsed
        if state.throughput is None:
            state.throughput = rate
        else:
            alpha = self.config.ewma_alpha
            state.throughput = alpha * rate + (1 - alpha) * state.throughput
