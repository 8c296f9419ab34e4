"""The download of stored content: every decision of ``ppsp get`` and ``ppsp watch``.

Sans-I/O.  :class:`StoredDownload` is fed events with the time they happened (a peer connected,
a chunk map, a chunk's bytes arriving, stored or failing, a seek, a FIND answer) and answers
with actions (connect, fetch a chunk from a peer, cancel, ban, FIND, PUSH or PULL a chunk map,
done, failed) and the time it must be asked again (see :mod:`ppsp.peer.download.events`).  It
never reads a clock and never waits: ``ppsp.peer.net.download`` moves the bytes.

It goes through these phases:

1. **describing**: the description is asked of the known peers
   (:class:`~ppsp.peer.download.describing.DescriptionSearch`) while connections to them are
   already made, so that the handshakes overlap the description's transfer;
2. **opening**: the description is known and the store is being opened (a ``.part`` file is
   read back to resume); chunk maps received meanwhile are kept;
3. **fetching**: the piece picker (:mod:`ppsp.peer.download.picker`) chooses what to request
   from whom; requests that time out, duplicates in endgame and requests to a banned peer are
   cancelled; a peer whose request or connection timed out (a stall) is benched: its other
   requests are cancelled and it is neither asked nor connected to again until its back-off
   (:meth:`~ppsp.peer.download.peers.PeerStanding.stall`, doubling at each stall) ends, so that
   a silent peer holds no slot for more than a timeout; a peer that sends a corrupt chunk is
   banned with every PeerID at its host (:meth:`~ppsp.peer.download.peers.PeerBook.ban_host`);
   this peer's chunk map is pushed to the connected peers every ``push_interval``, stale maps
   are pulled every ``pull_interval``, and the tracker and the connected peers are asked for
   more peers (FIND) while fewer than ``find_below`` are usable or nothing arrived for
   ``find_after_stall`` seconds; PEX candidates (addresses a peer named over PPSPP,
   :meth:`~ppsp.peer.download.peers.PeerBook.add_pex`) are connected to as they come, a few
   at a time, and one that does not answer is dropped without a fault;
4. **complete** (every chunk held) or **failed** (no description, or no progress for
   ``no_progress_timeout`` seconds).

A seeder's session is a download complete from the start (:meth:`StoredDownload.seeding`).

This object is the one record of which chunks are held (:attr:`StoredDownload.held`): the
store only writes and reads bytes at their offsets, and the picker's own set of missing chunks
follows this record (it is told in the same step).
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from ppsp.peer.content.description import ContentDescription
from ppsp.peer.download.describing import DESCRIPTION_RETRY, DescriptionSearch
from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    ChunkAbandoned,
    ChunkDelivered,
    ChunkFailed,
    ChunkProgress,
    ChunkStored,
    Connect,
    DescriptionArrived,
    DescriptionRefused,
    Done,
    Event,
    Failed,
    FetchChunk,
    FindAnswered,
    FindPeers,
    MapUpdated,
    OpenStore,
    PeerBanned,
    PeerConnected,
    PeerUnreachable,
    PullMap,
    PushMap,
    Seek,
    StoreOpened,
)
from ppsp.peer.download.peers import PeerBook, PeerStanding
from ppsp.peer.download.picker import DOWNLOAD_CONFIG, PickerConfig, PiecePicker
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import RepresentationMap, bitmaps_from_chunk_map

__all__ = ["DownloadTiming", "Phase", "StoredDownload", "stored_bitmap"]

LIVE_SWARM = "this swarm is a live stream: watch it with ppsp watch"
"""Why a download of a live stream's swarm fails."""


class DownloadTiming(NamedTuple):
    """The intervals and bounds of a :class:`StoredDownload`, in seconds; all have defaults.

    (A named tuple: immutable, and built at start-up for a fraction of a dataclass's cost.)
    """

    no_progress_timeout: float = 30.0
    """A download with no chunk stored for this long fails (and so does the description's
    search)."""
    push_interval: float = 0.5
    """Least time between two PUSHes of this peer's chunk map to the connected peers."""
    pull_interval: float = 2.0
    """How often the connected peers' maps are checked for staleness."""
    stale_map: float = 2.0
    """A connected peer's map older than this is pulled."""
    find_interval: float = 3.0
    """Least time between two FINDs for more peers."""
    find_below: int = 4
    """FIND while fewer peers than this are usable..."""
    find_after_stall: float = 2.0
    """... or while no chunk was stored for this long."""
    description_retry: float = DESCRIPTION_RETRY
    """Between two rounds of asking the peers for the description."""


class Phase(enum.Enum):
    """Where a :class:`StoredDownload` is (see the module docstring)."""

    DESCRIBING = "describing"
    OPENING = "opening"
    FETCHING = "fetching"
    COMPLETE = "complete"
    FAILED = "failed"


def _earliest(*times: float | None) -> float | None:
    """The earliest of ``times`` that are set (None when none is)."""
    known = [t for t in times if t is not None]
    return min(known) if known else None


def stored_bitmap(
    chunk_map: Sequence[RepresentationMap], representation_id: str, chunk_count: int
) -> ChunkBitmap:
    """The chunks of ``representation_id`` a wire chunk map announces (others are ignored)."""
    bitmap = ChunkBitmap(chunk_count)
    for segment in bitmaps_from_chunk_map(chunk_map).get(representation_id, []):
        for index in segment:
            if 0 <= index < chunk_count:
                bitmap.add(index)
    return bitmap


class StoredDownload:
    """The decisions of one stored content session: what to fetch, from whom, and when.

    ``peers`` is the session's peer book (shared with the I/O layer, which adds the peers the
    tracker lists).  Without ``description`` it is first searched for among the peers.
    ``rng`` breaks the picker's ties; pass a seeded one for reproducible choices.
    """

    def __init__(
        self,
        peers: PeerBook,
        *,
        now: float,
        description: ContentDescription | None = None,
        picker_config: PickerConfig = DOWNLOAD_CONFIG,
        timing: DownloadTiming | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.peers = peers
        self.timing = timing or DownloadTiming()
        self.picker_config = picker_config
        self.description: ContentDescription | None = None
        """The content's description, once known."""
        self.phase = Phase.DESCRIBING
        self.cancelled: dict[str, int] = {}
        """Requests given up in flight, by reason (timeout, duplicate, late, failed, corrupt,
        banned)."""
        self.discarded_bytes = 0
        """Bytes received for requests given up or for chunks held meanwhile."""
        self.picker: PiecePicker | None = None
        """The piece picker, from the fetching phase on."""
        self._rng = rng
        self._held: ChunkBitmap | None = None
        self._pending: list[Action] = []
        self._raw_maps: dict[str, tuple[RepresentationMap, ...]] = {}
        # Requests in flight (fetching, not yet delivered), with their body bytes so far.
        self._received: dict[tuple[str, int], int] = {}
        self._delivered: dict[tuple[str, int], int] = {}  # delivered, being verified: bytes
        self._synced: dict[str, int] = {}  # map version the picker has of each peer
        self._seek: int | None = None
        self._last_progress = now
        self._last_push = self._last_pull = self._last_find = -math.inf
        self._last_poll = -math.inf
        self._search: DescriptionSearch | None = None
        if description is None:
            self._search = DescriptionSearch(
                peers,
                now=now,
                timeout=self.timing.no_progress_timeout,
                retry=self.timing.description_retry,
            )
        else:
            self._described(description)

    @classmethod
    def seeding(
        cls, peers: PeerBook, description: ContentDescription, *, now: float
    ) -> StoredDownload:
        """The session of a seeder: every chunk held from the start, nothing to fetch."""
        download = cls(peers, now=now, description=description)
        download._pending.clear()
        download._held = ChunkBitmap.full(description.representation().chunk_count)
        download.phase = Phase.COMPLETE
        return download

    # -- the record of held chunks -------------------------------------------------------------

    @property
    def held(self) -> ChunkBitmap:
        """The chunks held (verified and stored): the one record of them.  Read it, never
        change it (:meth:`stored` does).  Empty until the store is open."""
        return self._held if self._held is not None else ChunkBitmap(0)

    def have(self, index: int) -> bool:
        """Whether chunk ``index`` is held."""
        return self._held is not None and index in self._held

    @property
    def complete(self) -> bool:
        """Whether every chunk is held."""
        return self.phase is Phase.COMPLETE

    @property
    def chunk_count(self) -> int:
        """Chunks of the content (0 while the description is not known)."""
        return 0 if self.description is None else self.description.representation().chunk_count

    # -- events --------------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> None:
        """Take note of ``event``, which happened at ``now`` (see :mod:`.events`)."""
        if isinstance(event, ChunkProgress):
            self.progress(event.peer, event.index, event.nbytes, now)
        elif isinstance(event, ChunkDelivered):
            self.delivered(event.peer, event.index, event.nbytes, now)
        elif isinstance(event, ChunkStored):
            self.stored(event.peer, event.index, event.nbytes, now)
        elif isinstance(event, ChunkFailed):
            self._failed(event, now)
        elif isinstance(event, ChunkAbandoned):
            self._delivered.pop((event.peer, event.index), None)
            if self.picker is not None:
                self.picker.abandon(event.peer, event.index)
        elif isinstance(event, MapUpdated):
            self._map_updated(event.peer, event.chunk_map, now)
        elif isinstance(event, PeerConnected):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.connecting = False
                standing.connected = True
                standing.advertised_rate = event.advertised_rate
        elif isinstance(event, PeerUnreachable):
            standing = self.peers.get(event.peer)
            if standing is not None and standing.pex:
                standing.drop()  # a PEX candidate that did not answer: tried once, no fault
            elif standing is not None:
                standing.connecting = False
                standing.stall(now)  # not connected to again before its back-off
                self._count_failure(standing)
        elif isinstance(event, PeerBanned):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.ban()
        elif isinstance(event, StoreOpened):
            self._store_opened(event.held)
        elif isinstance(event, Seek):
            self.seek(event.index)
        elif (
            isinstance(event, DescriptionArrived | DescriptionRefused | FindAnswered)
            and self._search is not None
            and self.phase is Phase.DESCRIBING
        ):
            self._search.handle(event, now)
            self._after_search(now)

    def progress(self, peer: str, index: int, nbytes: int, now: float) -> None:
        """``nbytes`` bytes of requested chunk ``index`` arrived from ``peer`` so far.

        A transfer whose bytes flow does not time out (the picker's stall timeout).  Reports
        for a request no longer in flight (a cancelled one) are ignored.
        """
        key = (peer, index)
        if key in self._received and self.picker is not None:
            if nbytes > self._received[key]:
                self._bytes_from(peer, now)
            self._received[key] = nbytes
            self.picker.on_progress(peer, index, now)

    def _bytes_from(self, peer: str, now: float) -> None:
        standing = self.peers.get(peer)
        if standing is not None:
            standing.sent_bytes(now)

    def delivered(self, peer: str, index: int, nbytes: int, now: float) -> bool:
        """Every byte of chunk ``index`` arrived from ``peer``; whether to verify and store it.

        Its request slot is free from now on.  False when the chunk is held meanwhile (the
        bytes are dropped, counted as ``late``).
        """
        picker = self.picker
        if picker is None:
            return False
        key = (peer, index)
        self._bytes_from(peer, now)
        picker.on_delivered(peer, index, nbytes, now)
        self._received.pop(key, None)
        if self.have(index):
            picker.abandon(peer, index)
            self._discard("late", nbytes)
            return False
        self._delivered[key] = nbytes
        return True

    def stored(self, peer: str, index: int, nbytes: int, now: float) -> bool:
        """Chunk ``index`` from ``peer`` is verified and written; True when it is newly held.

        In-flight requests for the same chunk are cancelled (``duplicate``); a chunk held
        meanwhile is counted as ``late``.  The last chunk completes the download.
        """
        picker = self.picker
        if picker is None or self._held is None:
            return False
        key = (peer, index)
        if key in self._delivered:
            del self._delivered[key]
        else:  # a transport that verifies as it receives reports no delivery before this
            picker.on_delivered(peer, index, nbytes, now)
        self._received.pop(key, None)
        if not 0 <= index < self._held.size or not self._held.add(index):
            self._discard("late", nbytes)
            return False
        self._last_progress = now
        for duplicate_peer, duplicate in picker.mark_held(index):
            self._cancel(duplicate_peer, duplicate, "duplicate")
        if self._held.complete:
            self.phase = Phase.COMPLETE
            self._pending.append(Done())
        return True

    def seek(self, index: int) -> None:
        """Fetch in playback order from chunk ``index`` on (ignored once complete)."""
        if index < 0 or self.complete:
            return
        if self.picker is None:
            self._seek = index  # applied when the store is open
        else:
            self.picker.seek(index)

    # -- actions -------------------------------------------------------------------------------

    def poll(self, now: float) -> list[Action]:
        """The actions due at ``now``: each is returned once."""
        self._last_poll = now
        if self.phase in (Phase.DESCRIBING, Phase.OPENING, Phase.FETCHING):
            self._connect(now)
        if self.phase is Phase.DESCRIBING and self._search is not None:
            self._pending += self._search.poll(now)
            self._after_search(now)
        elif self.phase is Phase.FETCHING:
            self._fetch(now)
        actions, self._pending = self._pending, []
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must be called again if no event comes (None: only on events)."""
        # A benched peer's back-off ending is due: it may be connected to or asked again.
        release = self.peers.next_release(self._last_poll)
        if self.phase is Phase.DESCRIBING and self._search is not None:
            return _earliest(self._search.next_deadline(), release)
        picker = self.picker
        if self.phase is not Phase.FETCHING or picker is None:
            return release if self.phase is Phase.OPENING else None
        timing = self.timing
        usable = len(self.peers.usable())
        find_at = self._last_find + timing.find_interval
        if usable >= timing.find_below:
            find_at = max(find_at, self._last_progress + timing.find_after_stall)
        times = [
            picker.next_timeout(),
            picker.next_duplicate_at(self._last_poll),
            self._last_push + timing.push_interval if usable else None,
            self._last_pull + timing.pull_interval,
            find_at,
            self._last_progress + timing.no_progress_timeout,
            release,
        ]
        return min(t for t in times if t is not None)

    # -- internals -----------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        for standing in self.peers.to_connect(now):
            standing.connecting = True
            self._pending.append(Connect(standing.peer_id))

    def _after_search(self, now: float) -> None:
        search = self._search
        if search is None or self.phase is not Phase.DESCRIBING:
            return
        if search.failure is not None:
            self.phase = Phase.FAILED  # the search's Failed action is on its way
        elif search.description is not None:
            # The other peers' answers are not waited for: their requests are cancelled (the
            # search's Done is this policy's to give, not the I/O layer's).
            self._pending += [a for a in search.poll(now) if not isinstance(a, Done)]
            description = search.description
            if isinstance(description, ContentDescription):
                self._described(description)
            else:
                self.phase = Phase.FAILED
                self._pending.append(Failed(LIVE_SWARM))

    def _described(self, description: ContentDescription) -> None:
        self.description = description
        self.phase = Phase.OPENING
        self._pending.append(OpenStore(description))
        rep = description.representation()
        for peer, chunk_map in self._raw_maps.items():
            standing = self.peers.get(peer)
            if standing is not None:
                last = standing.last_map_at
                standing.set_map(stored_bitmap(chunk_map, rep.id, rep.chunk_count), last)
        self._raw_maps.clear()

    def _store_opened(self, held: ChunkBitmap) -> None:
        if self.phase is not Phase.OPENING or self.description is None:
            return
        rep = self.description.representation()
        self._held = ChunkBitmap(rep.chunk_count)
        for index in held:
            if 0 <= index < rep.chunk_count:
                self._held.add(index)
        config = replace(self.picker_config, chunk_size=self.description.chunk_size)
        self.picker = PiecePicker(rep.chunk_count, held=self._held, config=config, rng=self._rng)
        if self._seek is not None:
            self.picker.seek(self._seek)
        self.phase = Phase.FETCHING
        if self._held.complete:
            self.phase = Phase.COMPLETE
            self._pending.append(Done())

    def _map_updated(self, peer: str, chunk_map: tuple[RepresentationMap, ...], now: float) -> None:
        standing = self.peers.get(peer)
        if standing is None:
            return
        if self.description is None:
            self._raw_maps[peer] = chunk_map  # decoded once the description is known
            standing.last_map_at = now
            return
        rep = self.description.representation()
        standing.set_map(stored_bitmap(chunk_map, rep.id, rep.chunk_count), now)

    def _fetch(self, now: float) -> None:
        picker = self.picker
        assert picker is not None
        self._sync_peers(picker, now)
        stalled: set[str] = set()
        for peer, index in picker.expired(now):
            self._cancel(peer, index, "timeout")
            stalled.add(peer)
        for peer in stalled:  # a request timed out: a silent peer loses its slots for a while
            standing = self.peers.get(peer)
            if standing is not None and not standing.delivering(now):
                standing.stall(now)
        if stalled:
            self._sync_peers(picker, now)
        for peer, index in picker.next_requests(now):
            self._received[(peer, index)] = 0  # in flight: progress is counted from now on
            self._pending.append(FetchChunk(peer, index))
        self._housekeeping(now)
        # Each condition compares ``now`` with the very sum next_deadline() returns, so that
        # a wake at a deadline always finds its work due (no rounding between the two).
        timeout = self.timing.no_progress_timeout
        if now >= self._last_progress + timeout:
            self.phase = Phase.FAILED
            self._pending.append(
                Failed(
                    f"no progress for {timeout:.0f} s "
                    f"({len(self.held)}/{self.chunk_count} chunks, "
                    f"{len(self.peers)} peers known)"
                )
            )

    def _sync_peers(self, picker: PiecePicker, now: float) -> None:
        """Give the picker the usable peers' new maps, take banned peers out of it, and benched
        peers until their back-off ends (their requests in flight are cancelled)."""
        synced = self._synced
        for standing in self.peers:
            peer = standing.peer_id
            if standing.banned:
                if peer in synced:
                    del synced[peer]
                    for index in picker.ban(peer):
                        self._cancel(peer, index, "banned")
                continue
            if standing.benched(now):
                if peer in synced:
                    del synced[peer]  # given back to the picker once the back-off ends
                    for index in picker.remove_peer(peer):
                        self._cancel(peer, index, "stalled")
                continue
            if (
                standing.connected
                and standing.chunks is not None
                and synced.get(peer) != standing.map_version
            ):
                picker.set_peer(peer, standing.chunks)
                picker.set_advertised_rate(peer, standing.advertised_rate)
                synced[peer] = standing.map_version

    def _housekeeping(self, now: float) -> None:
        timing = self.timing
        usable = self.peers.usable()
        if usable and now >= self._last_push + timing.push_interval:
            self._last_push = now
            self._pending.append(PushMap())
        if now >= self._last_pull + timing.pull_interval:
            self._last_pull = now
            for standing in usable:
                if now - standing.last_map_at > timing.stale_map:
                    self._pending.append(PullMap(standing.peer_id))
        stalled = now >= self._last_progress + timing.find_after_stall
        if (len(usable) < timing.find_below or stalled) and (
            now >= self._last_find + timing.find_interval
        ):
            self._last_find = now
            self._pending.append(FindPeers(via_peers=True))

    def _failed(self, event: ChunkFailed, now: float) -> None:
        key = (event.peer, event.index)
        nbytes = max(event.nbytes, self._received.pop(key, 0), self._delivered.pop(key, 0))
        standing = self.peers.get(event.peer)
        if event.corrupt:
            if standing is not None and standing.ban():
                self._pending.append(BanPeer(event.peer, "corrupt"))
            # Its host too: the other PeerIDs there, now and later, are never asked (their
            # requests are cancelled as the picker learns of the bans).
            for other in self.peers.ban_host(event.peer):
                self._pending.append(BanPeer(other.peer_id, "host"))
            self._discard("corrupt", nbytes)
        elif event.busy:
            # It serves others first (a fair seeder's queue is full): asked again after the
            # wait it named; no fault, since a seeder under load must not be banned for it.
            if standing is not None:
                standing.rest(now, event.retry_after)
            self._discard("busy", nbytes)
        else:
            if standing is not None:
                if not event.stalled:
                    self._count_failure(standing)
                elif not standing.delivering(now):
                    # Silent: benched with a growing back-off, never banned for it.  Silence
                    # proves nothing (a seeder swamped by others is silent too), and a peer
                    # banned so would be lost for good even when it is the only holder left.
                    standing.stall(now)
                # else: the request waited behind others at a busy peer; asked again later
            self._discard("failed", nbytes)
        if self.picker is not None:
            if event.stalled or event.busy:  # no fault: asked again later, others first
                self.picker.on_timed_out(event.peer, event.index)
            else:
                self.picker.on_failed(event.peer, event.index)

    def _count_failure(self, standing: PeerStanding) -> None:
        if standing.fail():
            self._pending.append(BanPeer(standing.peer_id, "failures"))

    def _cancel(self, peer: str, index: int, reason: str) -> None:
        """Ask for a request to be stopped; count it and its bytes received so far."""
        self._discard(reason, self._received.pop((peer, index), 0))
        self._pending.append(CancelChunk(peer, index, reason))

    def _discard(self, reason: str, nbytes: int) -> None:
        self.cancelled[reason] = self.cancelled.get(reason, 0) + 1
        self.discarded_bytes += nbytes
