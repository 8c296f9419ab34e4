"""The stored-content download on the event loop: the policy's actions, carried out.

:class:`DownloadRunner` runs a session's sans-I/O
:class:`~ppsp.peer.download.stored.StoredDownload` on a
:class:`~ppsp.peer.net.loop.SessionLoop`: it connects to peers, fetches the description, opens
the store, has each chunk moved by the transport negotiated with its peer
(:mod:`ppsp.peer.net.transport`), pushes and pulls chunk maps, asks for more peers, and turns
what happens into events for the policy.  It decides nothing itself.
:func:`obtain_description` runs the description's search alone (``ppsp watch``, which learns
from the description whether the swarm is live).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ppsp.errors import (
    BodyTooLarge,
    ChunkUnavailable,
    ContentError,
    HttpClientError,
    IntegrityError,
    PeerBusy,
    PPSPError,
)
from ppsp.http.client import Timeout
from ppsp.peer.content.description import ContentDescription, verify_description
from ppsp.peer.download.describing import DescriptionSearch
from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    CancelDescription,
    ChunkAbandoned,
    ChunkFailed,
    ChunkStored,
    Connect,
    DescriptionArrived,
    DescriptionRefused,
    Done,
    Event,
    Failed,
    FetchChunk,
    FetchDescription,
    FindAnswered,
    FindPeers,
    OpenStore,
    PeerConnected,
    PeerUnreachable,
    PullMap,
    PushMap,
    StoreOpened,
)
from ppsp.peer.download.peers import CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, PROGRESS_TIMEOUT
from ppsp.peer.download.stored import StoredDownload
from ppsp.peer.live import LiveDescription, is_live_description, verify_live_description
from ppsp.peer.net.chunkstore import ChunkStore, part_path
from ppsp.peer.net.http_common import MAX_DESCRIPTION_BYTES
from ppsp.peer.net.loop import SessionLoop
from ppsp.peer.net.session import DownloadFailed, RemotePeer, SwarmSession
from ppsp.peer.net.transport import TRANSFER_ERRORS, ChunkNotWanted, ChunkTransport

if TYPE_CHECKING:
    from ppsp.peer.net.node import PeerNode

log = logging.getLogger(__name__)

DESCRIPTION_TIMEOUT = Timeout(
    total=10, connect=CONNECT_TIMEOUT, read=max(FIRST_BYTE_TIMEOUT, PROGRESS_TIMEOUT)
)
"""Bounds on fetching a description from one peer: 10 s in all, and a silent peer is left
after the connect or first-byte timeout (:mod:`ppsp.peer.download.peers`)."""

EXCHANGE_ERRORS = (TimeoutError, PPSPError, HttpClientError, OSError, ConnectionError)
"""What a failed peer protocol exchange raises."""


class _Observer:
    """Follows one chunk transfer for the policy (a
    :class:`~ppsp.peer.net.transport.TransferObserver`)."""

    __slots__ = ("clock", "delivered_once", "download", "index", "peer", "wake")

    def __init__(
        self,
        download: StoredDownload,
        peer: str,
        index: int,
        clock: Callable[[], float],
        wake: asyncio.Event,
    ) -> None:
        self.download = download
        self.peer = peer
        self.index = index
        self.clock = clock
        self.wake = wake
        self.delivered_once = False

    def received(self, nbytes: int) -> None:
        """Bytes are arriving: the request is alive (no wake: only its deadline moves on)."""
        self.download.progress(self.peer, self.index, nbytes, self.clock())

    def delivered(self, nbytes: int) -> bool:
        """Every byte arrived: the request's slot is free, the loop may request more."""
        self.delivered_once = True
        wanted = self.download.delivered(self.peer, self.index, nbytes, self.clock())
        self.wake.set()
        return wanted


class DownloadRunner:
    """Carries out the actions of ``session.download`` until it is done or fails.

    ``output`` is where the content goes (``OUTPUT.part`` until complete; None: a file with no
    name); ``on_progress`` is called with the session on every chunk stored and at the end.
    """

    def __init__(
        self,
        node: PeerNode,
        session: SwarmSession,
        output: Path | None,
        on_progress: Callable[[SwarmSession], None] | None = None,
    ) -> None:
        assert session.download is not None
        self.node = node
        self.session = session
        self.download = session.download
        self.output = output
        self.on_progress = on_progress
        self.loop = SessionLoop(
            self.download, clock=node.clock, wake=session.chunk_arrived, fatal=(DownloadFailed,)
        )
        self.transports: dict[str, ChunkTransport] = {}

    async def run(self) -> None:
        """Download until every chunk is held, then commit the file and announce it.

        Raises :class:`~ppsp.peer.net.session.DownloadFailed` with a one-line reason.
        """
        try:
            end = await self.loop.run(self._execute)
        finally:
            for transport in self.transports.values():
                transport.close()
        if isinstance(end, Failed):
            raise DownloadFailed(end.reason)
        store = self.session.store
        assert store is not None
        try:
            await asyncio.to_thread(store.commit)
        except OSError as exc:
            raise DownloadFailed(f"cannot write {self.output}: {exc.strerror or exc}") from exc
        await self.node.push_map(self.session)
        if self.on_progress is not None:
            self.on_progress(self.session)

    # -- actions -------------------------------------------------------------------------------

    def _execute(self, action: Action) -> bool:
        """Carry out one action; True for the one that ends the download."""
        node, session, loop = self.node, self.session, self.loop
        if isinstance(action, FetchChunk):
            self._fetch(action.peer, action.index)
        elif isinstance(action, CancelChunk):
            loop.cancel((action.peer, action.index))
        elif isinstance(action, Connect):
            remote = session.remotes.get(action.peer)
            if remote is not None:
                loop.start(self._connect(remote), self._handle)
        elif isinstance(action, PullMap):
            remote = session.remotes.get(action.peer)
            if remote is not None:
                loop.start(self._pull(remote), self._handle)
        elif isinstance(action, PushMap):
            node.spawn(node.push_map(session))
        elif isinstance(action, FindPeers):
            loop.start(find_peers(node, session, via_peers=action.via_peers), self._handle)
        elif isinstance(action, FetchDescription):
            loop.start(
                description_from(node, session, action.peer),
                self._handle,
                key=("description", action.peer),
            )
        elif isinstance(action, CancelDescription):
            loop.cancel(("description", action.peer))
        elif isinstance(action, OpenStore):
            assert isinstance(action.description, ContentDescription)
            session.description = action.description
            loop.start(self._open(action.description), self._opened)
        elif isinstance(action, BanPeer):
            log.debug("peer %s banned (%s)", action.peer, action.reason)
        return isinstance(action, Done | Failed)

    def _handle(self, event: Event | None) -> None:
        if event is not None:
            self.download.handle(event, self.node.clock())

    def _fetch(self, peer: str, index: int) -> None:
        remote = self.session.remotes.get(peer)
        transport = None
        if remote is not None and remote.transport is not None:
            transport = self.transports.get(remote.transport)
        if remote is None or transport is None:  # not connected over a transport we speak
            self.download.handle(ChunkFailed(peer, index), self.node.clock())
            return
        wake = self.session.chunk_arrived
        observer = _Observer(self.download, peer, index, self.node.clock, wake)
        self.loop.start(
            self._transfer(transport, remote, index, observer), self._transferred, key=(peer, index)
        )

    async def _transfer(
        self, transport: ChunkTransport, remote: RemotePeer, index: int, observer: _Observer
    ) -> Event | None:
        """Move one chunk; what happened, as an event (None: nothing to tell)."""
        try:
            nbytes = await transport.fetch(remote, index, observer)
        except IntegrityError:
            log.warning("peer %s sent a corrupt chunk %d: dropping it", remote.peer_id, index)
            return ChunkFailed(remote.peer_id, index, corrupt=True)
        except ChunkNotWanted:
            return None  # counted as late when it was delivered
        except ChunkUnavailable:  # the store closed under a write: the download is over
            return ChunkAbandoned(remote.peer_id, index) if observer.delivered_once else None
        except TimeoutError:  # no connection, no first byte or no progress in time
            return ChunkFailed(remote.peer_id, index, stalled=True)
        except PeerBusy as exc:  # it serves others first: asked again later
            return ChunkFailed(remote.peer_id, index, busy=True, retry_after=exc.retry_after)
        except TRANSFER_ERRORS:
            return ChunkFailed(remote.peer_id, index)
        except asyncio.CancelledError:
            if observer.delivered_once:  # cancelled while its bytes were being verified
                self.download.handle(ChunkAbandoned(remote.peer_id, index), self.node.clock())
            raise
        return ChunkStored(remote.peer_id, index, nbytes)

    def _transferred(self, event: Event | None) -> None:
        if not isinstance(event, ChunkStored):
            self._handle(event)
            return
        session, now = self.session, self.node.clock()
        if not self.download.stored(event.peer, event.index, event.nbytes, now):
            return
        remote = session.remotes.get(event.peer)
        if remote is not None:
            remote.bytes_received += event.nbytes
        session.downloaded_bytes += event.nbytes
        session.arrivals.append((now, event.peer, event.nbytes))
        if self.download.complete:
            session.completed_at = now
        session.chunk_stored(event.index)
        if self.on_progress is not None:
            self.on_progress(session)

    async def _connect(self, remote: RemotePeer) -> Event:
        try:
            await self.node.connect(self.session, remote)
        except EXCHANGE_ERRORS:
            return PeerUnreachable(remote.peer_id)
        return PeerConnected(remote.peer_id, remote.standing.advertised_rate)

    async def _pull(self, remote: RemotePeer) -> Event | None:
        try:
            await self.node.pull_map(self.session, remote)
        except EXCHANGE_ERRORS:
            return PeerUnreachable(remote.peer_id)
        return None  # the map itself reached the policy as it arrived

    async def _open(self, description: ContentDescription) -> ChunkStore:
        try:
            return await asyncio.to_thread(_open_output, description, self.output)
        except BlockingIOError as exc:
            raise DownloadFailed(
                f"{part_path(self.output or '')} is being written by another download"
            ) from exc
        except OSError as exc:  # an unwritable path, or a disk too small for the content
            raise DownloadFailed(f"cannot write {self.output}: {exc.strerror or exc}") from exc

    def _opened(self, store: ChunkStore) -> None:
        session = self.session
        session.store = store
        self.transports = self.node.chunk_transports(session)
        self.download.handle(StoreOpened(store.found), self.node.clock())
        session.ready.set()


async def description_from(node: PeerNode, session: SwarmSession, peer: str) -> Event:
    """GET the swarm's description from ``peer`` and check it against the swarm ID.

    Its bytes are held within the session's budget (:attr:`SwarmSession.description_bytes`,
    every peer asked together): a description whose bytes would pass it is refused without
    fault (the peer is asked again in a later round, when the others' bytes are given back).
    """
    remote = session.remotes.get(peer)
    if remote is None:
        return DescriptionRefused(peer)
    url = f"{remote.base_url}/swarm/{session.swarm_id}/description"
    budget = session.description_bytes
    description: ContentDescription | LiveDescription
    held = 0
    try:
        async with node.http.get(url, timeout=DESCRIPTION_TIMEOUT) as answer:
            if answer.status != 200:
                return DescriptionRefused(peer)  # none (yet): no fault of the peer
            if (answer.content_length or 0) > MAX_DESCRIPTION_BYTES:
                raise BodyTooLarge(f"a description over {MAX_DESCRIPTION_BYTES} bytes")
            pieces: list[bytes] = []
            async for piece in answer:
                if held + len(piece) > MAX_DESCRIPTION_BYTES:
                    raise BodyTooLarge(f"a description over {MAX_DESCRIPTION_BYTES} bytes")
                if not budget.take(len(piece)):
                    return DescriptionRefused(peer)  # others' bytes fill the budget for now
                held += len(piece)
                pieces.append(piece)
        data = b"".join(pieces)
        pieces.clear()
        if is_live_description(data):
            description = verify_live_description(data, session.swarm_id)
        else:
            description = verify_description(data, session.swarm_id)
    except ContentError:
        log.warning("peer %s sent a description that fails the swarm ID", peer)
        return DescriptionRefused(peer, forged=True)
    except (TimeoutError, HttpClientError, OSError):
        return DescriptionRefused(peer, unreachable=True)
    finally:
        budget.give(held)
    return DescriptionArrived(peer, description)


async def find_peers(node: PeerNode, session: SwarmSession, *, via_peers: bool) -> Event:
    """FIND at the tracker (and at up to four connected peers when ``via_peers``)."""
    finds = [node.find_at_tracker(session)]
    if via_peers:
        finds.append(node.find_via_peers(session))
    found = await asyncio.gather(*finds)
    return FindAnswered(tuple(remote.peer_id for added in found for remote in added))


async def obtain_description(
    node: PeerNode, session: SwarmSession, timeout: float
) -> ContentDescription | LiveDescription:
    """The swarm's description from one of its peers, asking the tracker again as needed.

    Raises :class:`~ppsp.peer.net.session.DownloadFailed` when no peer provides a valid one
    within ``timeout`` seconds.
    """
    search = DescriptionSearch(session.peers, now=node.clock(), timeout=timeout)
    loop = SessionLoop(search, clock=node.clock, wake=asyncio.Event())

    def handle(event: Event) -> None:
        search.handle(event, node.clock())

    def execute(action: Action) -> bool:
        if isinstance(action, FetchDescription):
            loop.start(description_from(node, session, action.peer), handle, key=action.peer)
        elif isinstance(action, CancelDescription):
            loop.cancel(action.peer)
        elif isinstance(action, FindPeers):
            loop.start(find_peers(node, session, via_peers=action.via_peers), handle)
        return isinstance(action, Done | Failed)

    end = await loop.run(execute)
    if isinstance(end, Failed):
        raise DownloadFailed(end.reason)
    description = search.description
    assert isinstance(description, ContentDescription | LiveDescription)
    return description


def _open_output(description: ContentDescription, output: Path | None) -> ChunkStore:
    """The store a download writes: ``OUTPUT.part`` (resumed if present), or a nameless file."""
    if output is None:
        return ChunkStore.create_anonymous(description)
    return ChunkStore.open_partial(description, output)
