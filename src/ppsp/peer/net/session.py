"""The swarm sessions of a peer: what it serves or fetches in each swarm, and the peers it knows.

A :class:`SwarmSession` holds the I/O side of one swarm: the content's store, the other peers'
addresses and transports (:class:`RemotePeer`), the figures a ``--report`` writes, and the
events that wake whoever waits for chunks.  The decisions and the records they rest on are
sans-I/O: each remote peer's standing is a :class:`~ppsp.peer.download.peers.PeerStanding` of
the session's :class:`~ppsp.peer.download.peers.PeerBook`, and which chunks of stored content
are held is recorded by the session's :class:`~ppsp.peer.download.stored.StoredDownload`
(a live stream's by its :class:`~ppsp.peer.live.LiveWindow`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ppsp.core.hosts import canonical_host
from ppsp.errors import PPSPError
from ppsp.peer.content.description import ContentDescription
from ppsp.peer.download.describing import ByteBudget
from ppsp.peer.download.peers import PeerBook, PeerStanding
from ppsp.peer.download.stored import StoredDownload
from ppsp.peer.live import LiveDescription, LivePlayback, LiveWindow
from ppsp.peer.nat.punch import ppspp_candidates
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.http_common import DESCRIPTION_BYTES_IN_FLIGHT
from ppsp.peer.net.peer_urls import base_url
from ppsp.peer.protocol.addressing import PPSPP_PEER_PROTOCOL
from ppsp.peer.protocol.senders import trusted_offers
from ppsp.peer.upload.fair import UploadLedger
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.common import AddressType
from ppsp.wire.peer import (
    RepresentationMap,
    TransportOffer,
    bitmaps_from_chunk_map,
    chunk_map_from_bitmaps,
)
from ppsp.wire.tracker import (
    ContentMap,
    CorruptPeerReport,
    PeerInfo,
    PeerMode,
    StreamStatistics,
)

LIVE_REPRESENTATION = "live"
"""Representation id of a live stream's chunks in chunk maps and chunk URLs."""

SOURCE_PROPERTY = "LiveSource"
"""PROPERTY_QUERY property by which a live stream's source identifies itself (value ``1``)."""


class DownloadFailed(PPSPError):
    """A download cannot finish: no peers, tracker unreachable, or no progress in time."""


class RemotePeer:
    """Another peer of a swarm: where it is, the transport it offered, what it said, what it sent.

    Its standing (failures, ban, connection, chunk map) is the sans-I/O
    :class:`~ppsp.peer.download.peers.PeerStanding` in :attr:`standing`; the attributes of the
    same names read and write that record.
    """

    __slots__ = ("_offer", "base_url", "bytes_received", "bytes_sent", "info", "peer_id",
                 "properties", "standing")  # fmt: skip

    def __init__(
        self,
        peer_id: str,
        info: PeerInfo,
        base_url: str,
        offer: TransportOffer | None = None,
        *,
        standing: PeerStanding | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.info = info
        self.base_url = base_url
        """Where the peer's endpoint is (its peer protocol at ``/``, its description)."""
        self.standing = standing if standing is not None else PeerStanding(peer_id)
        self.standing.behind_nat = any(
            a.type is AddressType.REFLEXIVE and a.peer_protocol == PPSPP_PEER_PROTOCOL
            for a in info.addresses
        )
        self._offer: TransportOffer | None = None
        self.offer = offer
        self.properties: dict[str, str] = {}
        """What the peer answered to PROPERTY_QUERY (untrusted)."""
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def offer(self) -> TransportOffer | None:
        """The transport negotiated with the peer (None: not connected)."""
        return self._offer

    @offer.setter
    def offer(self, offer: TransportOffer | None) -> None:
        self._offer = offer
        self.standing.connected = offer is not None
        if offer is not None and offer.type.upper() == "PPSPP" and offer.uri:
            # Where the peer is reached over PPSPP: a PEX candidate there is this peer.
            try:
                url = urlsplit(offer.uri)
                host, port = url.hostname, url.port
            except ValueError:
                return
            if host and port:
                self.standing.add_ppspp_address(host, port)

    @property
    def transport(self) -> str | None:
        """The type of the negotiated transport (``HTTP``), None when not connected."""
        return None if self._offer is None else self._offer.type.upper()

    @property
    def address(self) -> str | None:
        """``HOST:PORT`` the negotiated transport reaches the peer at (its offer's URI, else
        :attr:`base_url`), None when not connected; for ``--report`` (``ppsp lab --nat``)."""
        if self._offer is None:
            return None
        url = urlsplit(self._offer.uri or self.base_url)
        return url.netloc or None

    @property
    def relayed(self) -> bool:
        """Whether :attr:`address` is one the tracker listed as relayed (type ``PROXY``)."""
        address = self.address
        return address is not None and any(
            a.type is AddressType.PROXY and address in (f"{a.ip}:{a.port}", f"[{a.ip}]:{a.port}")
            for a in self.info.addresses
        )

    @property
    def failures(self) -> int:
        """Failures counted against the peer (its standing's)."""
        return self.standing.failures

    @failures.setter
    def failures(self, count: int) -> None:
        self.standing.failures = count

    @property
    def banned(self) -> bool:
        """Whether the peer is banned (its standing's)."""
        return self.standing.banned

    @banned.setter
    def banned(self, banned: bool) -> None:
        self.standing.banned = banned

    @property
    def connecting(self) -> bool:
        """Whether a connection to the peer is being made (its standing's)."""
        return self.standing.connecting

    @connecting.setter
    def connecting(self, connecting: bool) -> None:
        self.standing.connecting = connecting

    @property
    def bitmap(self) -> ChunkBitmap | None:
        """The chunk map the peer announced last (its standing's)."""
        return self.standing.chunks

    @bitmap.setter
    def bitmap(self, chunks: ChunkBitmap | None) -> None:
        self.standing.chunks = chunks

    @property
    def last_map_at(self) -> float:
        """When the peer's last chunk map arrived (its standing's)."""
        return self.standing.last_map_at

    @last_map_at.setter
    def last_map_at(self, when: float) -> None:
        self.standing.last_map_at = when


@dataclass(slots=True)
class LiveState:
    """The live part of a swarm session: the stream's description, window and playback."""

    description: LiveDescription
    window: LiveWindow
    is_source: bool
    playback: LivePlayback | None = None
    source_peer_ids: set[str] = field(default_factory=set)
    forged_rejected: int = 0
    stale_rejected: int = 0

    def bitmap(self) -> ChunkBitmap:
        """The chunks of the window held."""
        return self.window.bitmap()


@dataclass(slots=True)
class SwarmSession:
    """One swarm this peer takes part in: its content, its store and the peers it knows.

    For stored content, :attr:`download` (sans-I/O) decides what to fetch and records which
    chunks are held, from the moment the download starts (a seeder's is complete from the
    start); :attr:`store` holds the bytes.
    """

    swarm_id: str
    description: ContentDescription | None
    store: ChunkStore | None
    mode: PeerMode
    live: LiveState | None = None
    download: StoredDownload | None = None
    peers: PeerBook = field(default_factory=PeerBook)
    remotes: dict[str, RemotePeer] = field(default_factory=dict)
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    ledger: UploadLedger = field(default_factory=UploadLedger)
    """Bytes uploaded to each requesting PeerID, bounded (see :attr:`uploaded_to`)."""
    arrivals: list[tuple[float, str, int]] = field(default_factory=list)
    joined_at: float = 0.0
    completed_at: float | None = None
    served_chunks: int = 0
    chunk_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on anything the session's loop must look at (a chunk map, a seek, a chunk)."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the store is open (or the download failed before)."""
    waiters: dict[int, list[asyncio.Future[None]]] = field(default_factory=dict)
    failure: str | None = None
    description_bytes: ByteBudget = field(
        default_factory=lambda: ByteBudget(DESCRIPTION_BYTES_IN_FLIGHT)
    )
    """The bytes of descriptions being fetched, every peer asked together
    (:data:`~ppsp.peer.net.http_common.DESCRIPTION_BYTES_IN_FLIGHT`)."""
    refused_offers: int = 0
    """Transport offers ignored because their URI leads elsewhere than the peer that made
    them (:func:`~ppsp.peer.protocol.senders.trusted_offers`)."""

    @classmethod
    def seeding(cls, store: ChunkStore, *, now: float) -> SwarmSession:
        """The session of a seeder of ``store``'s complete content (ready at once)."""
        description = store.description
        session = cls(
            swarm_id=description.swarm_id,
            description=description,
            store=store,
            mode=PeerMode.SEED,
        )
        session.download = StoredDownload.seeding(session.peers, description, now=now)
        session.ready.set()
        return session

    def add_listed(
        self, listed: Sequence[PeerInfo], own_peer_id: str, *, found: bool = False
    ) -> list[RemotePeer]:
        """Remember the peers of a peer list not known yet (never ``own_peer_id``, nor a peer
        without an HTTP address); the new ones.  With ``found`` the list is another peer's
        FIND answer: only the entries the book takes are remembered
        (:meth:`~ppsp.peer.download.peers.PeerBook.take_found`: a few per answer, a bounded
        number in all and per host, never a second PeerID at a known endpoint)."""
        entries = []
        for info in listed:
            base = base_url(info)
            if info.peer_id is not None and info.peer_id != own_peer_id and base is not None:
                entries.append((info, base, urlsplit(base)))
        if found:
            taken = self.peers.take_found([(i.peer_id, u.hostname, u.port) for i, _, u in entries])
            entries = [entries[index] for index in taken]
        added = [self.add_remote(info, base) for info, base, _ in entries]
        return [remote for remote in added if remote is not None]

    def add_remote(self, info: PeerInfo, base_url: str) -> RemotePeer | None:
        """Remember a listed peer (its standing joins :attr:`peers`); None when already known.

        Its host is that of ``base_url``, where it is reached: a peer at a banned host is
        banned from the start (see :meth:`~ppsp.peer.download.peers.PeerBook.ban_host`).
        """
        peer_id = info.peer_id
        if peer_id is None or peer_id in self.remotes:
            return None
        url = urlsplit(base_url)
        standing = self.peers.add(peer_id, url.hostname, url.port)
        for host, port in ppspp_candidates(info):
            standing.add_ppspp_address(host, port)
        self.peers.listed_at(standing)
        remote = RemotePeer(peer_id, info, base_url, standing=standing)
        self.remotes[peer_id] = remote
        return remote

    def trusted_offers(
        self, remote: RemotePeer, offers: Sequence[TransportOffer]
    ) -> list[TransportOffer]:
        """The transport offers of ``remote`` to choose from: those whose URI leads to where it
        was reached (:func:`~ppsp.peer.protocol.senders.trusted_offers`); the others are
        ignored, and counted (:attr:`refused_offers`)."""
        kept = trusted_offers(offers, remote.base_url)
        self.refused_offers += len(offers) - len(kept)
        return kept

    def add_pex(self, host: str, port: int) -> RemotePeer | None:
        """Remember the PEX candidate at ``(host, port)`` (an address a peer named over PPSPP)
        when the download policy takes it (:meth:`~ppsp.peer.download.peers.PeerBook.add_pex`):
        a remote peer named ``pex:HOST:PORT``, reached over PPSPP only; None otherwise."""
        standing = self.peers.add_pex(host, port)
        if standing is None:
            return None
        remote = RemotePeer(standing.peer_id, PeerInfo(), "", standing=standing)
        self.remotes[standing.peer_id] = remote
        return remote

    @property
    def uploaded_to(self) -> dict[str, int]:
        """Bytes uploaded to each requesting PeerID (bounded per host and in all: bytes to
        further PeerIDs count in ``ledger.unattributed``)."""
        return self.ledger.by_peer

    def count_upload(self, peer_id: str, address: str | None, nbytes: int) -> None:
        """``nbytes`` of a chunk went to ``peer_id`` (its header) at ``address`` (its source)."""
        self.uploaded_bytes += nbytes
        self.ledger.count(peer_id, address, nbytes)

    def count_unattributed_upload(self, nbytes: int) -> None:
        """``nbytes`` of a chunk went to a requester whose PeerID is not known (PPSPP)."""
        self.uploaded_bytes += nbytes
        self.ledger.count_unattributed(nbytes)

    def corrupt_reports(self) -> list[CorruptPeerReport]:
        """The peers banned for corrupt data since the last call, as reports for the tracker
        (each with the address it was reached at; one whose address is unknown is left out)."""
        reports = []
        for peer_id, count in self.peers.take_corrupt():
            remote = self.remotes.get(peer_id)
            if remote is None or remote.standing.pex:  # no PeerID the tracker knows
                continue
            try:
                url = urlsplit(remote.base_url)
                ip, port = canonical_host(url.hostname), url.port
            except ValueError:
                continue
            if ip is None or port is None:
                continue
            reports.append(
                CorruptPeerReport(
                    swarm_id=self.swarm_id, peer_id=peer_id, ip=ip, port=port, corrupt_chunks=count
                )
            )
        return reports

    def have(self, index: int) -> bool:
        """Whether chunk ``index`` of the stored content is held (verified and stored)."""
        return self.download is not None and self.download.have(index)

    async def wait_for_chunk(self, index: int) -> None:
        """Return once chunk ``index`` is held (verified and stored)."""
        if self.have(index):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(index, []).append(future)
        await future

    def chunk_stored(self, index: int) -> None:
        """Wake whoever waits for chunk ``index``."""
        for future in self.waiters.pop(index, []):
            if not future.done():
                future.set_result(None)

    def seek(self, index: int) -> None:
        """Move the playback window to chunk ``index`` (no effect on a complete download)."""
        if self.download is not None:
            self.download.seek(index)
            self.chunk_arrived.set()

    @property
    def representation_id(self) -> str:
        """The representation this session stores (``live`` for a live stream)."""
        if self.live is not None:
            return LIVE_REPRESENTATION
        assert self.description is not None
        return self.description.representation().id

    def bitmap(self) -> ChunkBitmap:
        """A copy of the map of chunks held (empty when the description is not known yet)."""
        if self.live is not None:
            return self.live.bitmap()
        if self.download is None:
            return ChunkBitmap(0)
        held = self.download.held
        return ChunkBitmap(held.size, held.start, held.to_bytes())

    def chunk_map(self) -> tuple[RepresentationMap, ...]:
        """The wire form of the chunks held."""
        if self.live is not None:
            return chunk_map_from_bitmaps({LIVE_REPRESENTATION: [self.live.bitmap()]})
        if self.description is None or self.download is None or self.store is None:
            return ()
        return chunk_map_from_bitmaps({self.representation_id: [self.download.held]})

    def statistics(self) -> tuple[StreamStatistics, ContentMap | None]:
        """What STAT_REPORT says of this session: its statistics (with the live player's
        QoE), and its chunk map when it holds any."""
        live = self.live
        statistics = StreamStatistics(
            swarm_id=self.swarm_id,
            uploaded_bytes=self.uploaded_bytes,
            downloaded_bytes=self.downloaded_bytes,
            concurrent_links=len(self.remotes),
            extra=(
                live.playback.qoe().as_extra()
                if live is not None and live.playback is not None
                else ()
            ),
        )
        chunk_map = self.chunk_map()
        if not chunk_map:
            return statistics, None
        return statistics, ContentMap(swarm_id=self.swarm_id, representations=chunk_map)

    @property
    def complete(self) -> bool:
        """Whether every chunk is held."""
        return self.download is not None and self.download.complete

    def report(self, peer_id: str) -> dict[str, object]:
        """This session's figures, as the JSON document ``--report`` writes."""
        download = self.download
        return {
            "peer_id": peer_id,
            "swarm_id": self.swarm_id,
            "mode": self.mode.value,
            "size": self.description.size if self.description else None,
            "complete": self.complete,
            "joined_at": self.joined_at,
            "completed_at": self.completed_at,
            "downloaded_bytes": self.downloaded_bytes,
            "uploaded_bytes": self.uploaded_bytes,
            "received_from": self.bytes_by_peer(),
            "uploaded_to": dict(self.uploaded_to),
            "uploaded_unattributed": self.ledger.unattributed,
            "arrivals": [list(event) for event in self.arrivals],
            "cancelled": dict(download.cancelled) if download is not None else {},
            "discarded_bytes": download.discarded_bytes if download is not None else 0,
            "banned_hosts": sorted(self.peers.banned_hosts),
            "refused_offers": self.refused_offers,
            "peers": {
                peer_id: {
                    "connected": remote.offer is not None,
                    "transport": remote.transport,
                    "address": remote.address,
                    "relayed": remote.relayed,
                    "banned": remote.banned,
                    "failures": remote.failures,
                    "chunks_announced": len(remote.bitmap) if remote.bitmap is not None else None,
                }
                for peer_id, remote in self.remotes.items()
                if not remote.standing.pex
            },
            # Addresses learned by PEX, never listed peers: how many were kept, how many
            # answered a handshake on the swarm's ID (their bytes are in received_from).
            "pex_candidates": sum(r.standing.pex for r in self.remotes.values()),
            "pex_connected": sum(
                r.standing.pex and r.offer is not None for r in self.remotes.values()
            ),
            "live": self._live_report(),
        }

    def _live_report(self) -> dict[str, object] | None:
        live = self.live
        if live is None:
            return None
        figures: dict[str, object] = {
            "source": live.is_source,
            "chunk_ms": live.description.chunk_ms,
            "window_floor": live.window.floor,
            "window_newest": live.window.newest,
            "forged_rejected": live.forged_rejected,
            "stale_rejected": live.stale_rejected,
        }
        if live.playback is not None:
            qoe = live.playback.qoe()
            figures.update(
                first_index=live.playback.first,
                startup_delay=qoe.startup_delay,
                continuity_index=qoe.continuity_index,
                chunks_played=qoe.chunks_played,
                chunks_skipped=qoe.chunks_skipped,
                skipped_indexes=list(live.playback.skipped_indexes),
                delay_behind_source=qoe.delay_behind_source,
                bytes_from_source=qoe.bytes_from_source,
                bytes_from_peers=qoe.bytes_from_peers,
            )
        return figures

    def bytes_by_peer(self) -> dict[str, int]:
        """Bytes received from each remote peer."""
        return {peer_id: r.bytes_received for peer_id, r in self.remotes.items()}


def live_bitmap(chunk_map: Sequence[RepresentationMap]) -> ChunkBitmap:
    """One bitmap of the live chunks a peer announced (its window, from floor to newest)."""
    held = sorted(
        index
        for segment in bitmaps_from_chunk_map(chunk_map).get(LIVE_REPRESENTATION, [])
        for index in segment
    )
    if not held:
        return ChunkBitmap(0)
    return ChunkBitmap.from_indexes(held, held[-1] - held[0] + 1, held[0])
