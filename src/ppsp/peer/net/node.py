"""The peer: one HTTP endpoint that serves the peer protocol and chunks, and its swarm sessions.

This is the I/O layer of a peer; it decides nothing.  The sans-I/O parts decide: the peer
protocol handler (:mod:`ppsp.peer.protocol.handler`), the download policy
(:mod:`ppsp.peer.download.stored`) and the content integrity checks
(:mod:`ppsp.peer.content.description`).  :class:`PeerNode` owns the sockets and the event loop's
resources and moves bytes between them, the tracker (through
:class:`~ppsp.tracker.net.client.TrackerClient`) and other peers:

- its HTTP endpoint (:mod:`ppsp.peer.net.endpoint`) answers other peers;
- the peer protocol exchanges with other peers (connect, PULL, PUSH, FIND) are its base
  class's, :class:`~ppsp.peer.net.peer_exchanges.PeerExchanges`;
- a download runs on the session loop (:mod:`ppsp.peer.net.download`), chunks moving over the
  transport negotiated with each peer (:mod:`ppsp.peer.net.http_transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppsp.errors import AuthenticationRequired, HttpClientError, PPSPError, TrackerProtocolError
from ppsp.http.client import HttpClient
from ppsp.http.server import HTTPServer
from ppsp.peer.content.description import ContentDescription, chunk_size_for
from ppsp.peer.download.peers import PeerBook
from ppsp.peer.download.picker import DOWNLOAD_CONFIG, PickerConfig
from ppsp.peer.download.stored import DownloadTiming, StoredDownload
from ppsp.peer.live import LiveDescription
from ppsp.peer.net.chunkfetch import ThreadedChunkClient
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.download import DownloadRunner, obtain_description
from ppsp.peer.net.endpoint import PeerEndpoint
from ppsp.peer.net.guard import EndpointGuard, serve_endpoint
from ppsp.peer.net.http_common import PEER_ID_HEADER
from ppsp.peer.net.http_transport import HttpChunkTransport
from ppsp.peer.net.limiter import RateLimiter
from ppsp.peer.net.peer_exchanges import EXCHANGE_TIMEOUT as EXCHANGE_TIMEOUT
from ppsp.peer.net.peer_exchanges import QUIET_ERRORS as QUIET_ERRORS
from ppsp.peer.net.peer_exchanges import PeerExchanges
from ppsp.peer.net.peer_exchanges import advertised_rate as advertised_rate
from ppsp.peer.net.peer_urls import route_source_ip, tracker_source
from ppsp.peer.net.session import SOURCE_PROPERTY, DownloadFailed, SwarmSession
from ppsp.peer.net.transport import PPSPP, TRANSPORT_PREFERENCE, ChunkTransport
from ppsp.peer.net.udp_reach import UdpReach
from ppsp.peer.protocol.addressing import (
    format_host,
    is_wildcard,
    ppspp_addresses,
)
from ppsp.peer.protocol.handler import KnownPeer, PeerProtocolClient, PeerProtocolHandler
from ppsp.peer.protocol.senders import hosts_of
from ppsp.peer.upload.connections import MAX_CONNECTIONS_PER_HOST, ConnectionBudget
from ppsp.peer.upload.fair import DEFAULT_HOST_SHARE
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.peer import (
    HTTP,
    Property,
    RepresentationMap,
    TransportOffer,
    chunk_map_from_bitmaps,
    format_property_value,
)
from ppsp.wire.tracker import (
    AddressFamily,
    ContentMap,
    Encoding,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    StreamStatistics,
)

if TYPE_CHECKING:
    from ppsp.peer.net.ppspp_transport import PpsppClientSocket

log = logging.getLogger(__name__)

PEER_PROTOCOL = "PPSP-PP/0.1"
"""The peer protocol this peer speaks, as advertised to the tracker (``peerProtocol``)."""


CHUNK_READ_BYTES = 1 << 20
"""Bytes of a response body the HTTP client buffers before it pauses the socket (64 KiB
under a download cap, so that the cap paces the network, not only the reader)."""

STOP_GRACE_S = 0.25
"""How long a stopping peer lets uploads in progress finish before cutting them."""

DISCONNECT_TIMEOUT_S = 0.5
"""How long a stopping peer waits for the tracker to answer its DISCONNECT.

A command must end within a second of its stop signal; a tracker that does not answer in time
drops the peer when its track timer runs out.
"""


class PeerNode(PeerExchanges):
    """A peer process: the HTTP endpoint, the tracker client and the swarm sessions.

    It implements :class:`ppsp.peer.protocol.handler.PeerState` for the protocol handler.
    """

    def __init__(
        self,
        *,
        tracker_url: str,
        host: str = "127.0.0.1",
        port: int = 0,
        encoding: Encoding = Encoding.XML,
        tracker_version: ProtocolVersion = ProtocolVersion.V1_1,
        peer_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        report_interval: float = 30.0,
        picker_config: PickerConfig | None = None,
        upload_rate: float | None = None,
        download_rate: float | None = None,
        advertise: tuple[str, int | None] | None = None,
        tracker_tls: ssl.SSLContext | None = None,
        tracker_token: str | None = None,
        disclose_stats: bool = False,
        host_share: float = DEFAULT_HOST_SHARE,
        transport_preference: Sequence[str] = TRANSPORT_PREFERENCE,
        connections_per_host: int = MAX_CONNECTIONS_PER_HOST,
    ) -> None:
        self.tracker_url = tracker_url
        self.tracker_tls = tracker_tls
        """Trust anchors for an ``https://`` tracker (the system's when None)."""
        self.tracker_token = tracker_token
        """The bearer token sent to the tracker with every request, if any."""
        self.host = host
        self.port = port
        self.advertise = advertise
        self.advertised: tuple[str, int] | None = None
        """The (ip, port) other peers are told, known once the node has started."""
        self.encoding = encoding
        self.tracker_version = tracker_version
        self._peer_id = peer_id or secrets.token_hex(8)
        self.clock = clock
        self.report_interval = report_interval
        self.picker_config = picker_config or DOWNLOAD_CONFIG
        self.sessions: dict[str, SwarmSession] = {}
        self.started_at = clock()
        self.handler = PeerProtocolHandler(self, disclose_stats=disclose_stats)
        self._lookups: dict[str, asyncio.Task[None]] = {}
        """The tracker lookup that a push from an unknown peer started, per swarm."""
        self.protocol_client = PeerProtocolClient(self._peer_id)
        self.endpoint = PeerEndpoint(self)
        self.guard = EndpointGuard(ConnectionBudget(per_host=connections_per_host))
        """The endpoint's connection bounds (per host, this peer's own host excepted)."""
        self._server: HTTPServer | None = None
        self._http: HttpClient | None = None
        self.tracker: TrackerClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.corrupt_uploads = False
        self.upload_limiter = RateLimiter(upload_rate, clock) if upload_rate else None
        self.host_share = host_share
        """The most of the upload slots one host gets while others want some (fair serving)."""
        self.download_limiter = RateLimiter(download_rate, clock) if download_rate else None
        # Hashing and writing release the GIL: in worker threads they overlap the event
        # loop's network work and each other.  Two: more only compete with the loop.
        self._store_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ppsp-store")
        # Downloads of large chunks run whole in worker threads (see ppsp.peer.net.chunkfetch).
        self.chunk_client = ThreadedChunkClient()
        self.transport_preference = tuple(transport_preference)
        """The chunk transports downloads ask peers for, most preferred first."""
        self.ppspp_endpoint: PpsppClientSocket | None = None
        """The socket PPSPP downloads share (``get --stun``), or None: each opens its own."""
        self.ppspp_port: int | None = None
        """The UDP port this peer serves PPSPP on, when it does (:meth:`offer_ppspp`)."""
        self.ppspp_swarms: dict[str, tuple[bytes, int]] = {}
        """Swarms served over PPSPP: the RFC 7574 root hash and PPSPP chunk size of each."""
        self.udp = UdpReach()
        """The sessions' PPSPP transports and the peers reached over PPSPP only, without
        HTTP (:meth:`connect`): never sent peer protocol messages."""

    # -- PeerState ---------------------------------------------------------------------------

    @property
    def peer_id(self) -> str:
        """This peer's PeerID."""
        return self._peer_id

    def has_swarm(self, swarm_id: str) -> bool:
        """Whether this peer takes part in the swarm."""
        return swarm_id in self.sessions

    def chunk_map(self, swarm_id: str) -> tuple[RepresentationMap, ...]:
        """The chunks this peer holds in the swarm, in wire form."""
        return self.sessions[swarm_id].chunk_map()

    def known_peers(self, swarm_id: str) -> Sequence[KnownPeer]:
        """Peers of the swarm this peer knows (not banned), those holding more first."""
        session = self.sessions[swarm_id]
        known: list[tuple[int, KnownPeer]] = []
        for remote in session.remotes.values():
            standing = remote.standing  # a PEX candidate, or a peer only another peer named
            if remote.banned or standing.pex or (standing.found and not standing.connected):
                continue  # ... and we never reached, is nobody's to pass on
            held = len(remote.bitmap) if remote.bitmap is not None else 0
            chunk_map = (
                chunk_map_from_bitmaps({session.representation_id: [remote.bitmap]})
                if remote.bitmap is not None
                and (session.description is not None or session.live is not None)
                else None
            )
            seed = remote.bitmap is not None and remote.bitmap.complete and remote.bitmap.size > 0
            known.append((held, KnownPeer(info=remote.info, chunk_map=chunk_map, seed=seed)))
        known.sort(key=lambda pair: -pair[0])
        return [peer for _, peer in known]

    def store_peer_map(
        self,
        swarm_id: str,
        peer_id: str,
        chunk_map: tuple[RepresentationMap, ...],
        now: float,
    ) -> None:
        """Remember a chunk map a known peer pushed (the handler checked it comes from it)."""
        session = self.sessions[swarm_id]
        remote = session.remotes.get(peer_id)
        if remote is not None:
            self._apply_map(session, remote, chunk_map, now)

    def peer_hosts(self, swarm_id: str, peer_id: str) -> frozenset[str] | None:
        """The addresses the tracker (or a peer list) gave for ``peer_id``; None: not known."""
        remote = self.sessions[swarm_id].remotes.get(peer_id)
        return None if remote is None else hosts_of(remote.info)

    def exchanges_chunks(self, swarm_id: str, peer_id: str) -> bool:
        """Whether chunks of the swarm went between this peer and ``peer_id``, either way."""
        session = self.sessions[swarm_id]
        remote = session.remotes.get(peer_id)
        received = remote is not None and remote.bytes_received > 0
        return received or session.uploaded_to.get(peer_id, 0) > 0

    def learn_peers(self, swarm_id: str) -> None:
        """Look the swarm's peers up at the tracker in the background (one lookup at a time)."""
        running = self._lookups.get(swarm_id)
        if self._stopping or (running is not None and not running.done()):
            return
        task = self.spawn(self.discover(self.sessions[swarm_id]))
        if task is not None:
            self._lookups[swarm_id] = task

    def property_values(self, swarm_id: str, now: float) -> Mapping[str, str]:
        """Properties this peer reports: upload rate, online time, chunk count, bytes moved."""
        session = self.sessions[swarm_id]
        online = max(0.0, now - self.started_at)
        rate = session.uploaded_bytes / online if online > 0 else 0.0
        bandwidth: dict[str, str] = {}
        if self.upload_limiter is not None:
            # The draft's "available bandwidth": this peer's upload cap, in bytes per second.
            limit = int(self.upload_limiter.bucket.rate)
            bandwidth[Property.BANDWIDTH] = format_property_value(limit)
        return {
            **bandwidth,
            Property.UPLOAD_RATE: format_property_value(int(rate)),
            Property.ONLINE_TIME: format_property_value(int(online)),
            Property.CHUNK_COUNT: format_property_value(len(session.bitmap())),
            Property.SUM_BYTES: format_property_value(
                session.uploaded_bytes + session.downloaded_bytes
            ),
            Property.LINK_NUMBER: format_property_value(len(session.remotes)),
            **self._live_properties(session),
        }

    @staticmethod
    def _live_properties(session: SwarmSession) -> dict[str, str]:
        live = session.live
        if live is None:
            return {}
        if live.is_source:
            return {SOURCE_PROPERTY: "1"}
        return live.playback.qoe().as_properties() if live.playback is not None else {}

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        """The mandatory HTTP transport, as a URL template for this swarm's chunks, and PPSPP
        (``ppspp://HOST:PORT/ROOTHASH?chunk=SIZE``, the advertised host) where this peer
        serves the swarm over it."""
        template = f"{self.base_url}/swarm/{swarm_id}/chunk/{{representation}}/{{chunk}}"
        offers = [TransportOffer(type=HTTP, uri=template)]
        served = self.ppspp_swarms.get(swarm_id)
        if self.ppspp_port is not None and served is not None:
            from ppsp.peer.net.ppspp_transport import ppspp_uri

            ip, _ = self.advertised or (self.host, self.port)
            uri = ppspp_uri(ip, self.ppspp_port, *served)
            offers.append(TransportOffer(type=PPSPP, uri=uri))
        return tuple(offers)

    def advertise_ppspp(self, port: int, reflexive: tuple[str, int] | None = None) -> None:
        """Register this peer's PPSPP UDP socket at the tracker beside its HTTP address: a
        HOST PeerAddress (the advertised IP, ``port``) and, when STUN told one, the socket's
        REFLEXIVE address, both with ``peer_protocol`` :data:`PPSPP_PEER_PROTOCOL`.  Call it
        after :meth:`start` and before the first join (the registration carries them)."""
        assert self.tracker is not None, "start the node first"
        ip, _ = self.advertised or (self.host, self.port)
        self.tracker.advertise(ppspp_addresses(ip, port, reflexive))

    def offer_ppspp(self, swarm_id: str, port: int, root_hash: bytes, chunk_size: int) -> None:
        """Offer PPSPP for ``swarm_id``: its representation is served on UDP ``port`` (by the
        caller) as the RFC 7574 content of root ``root_hash`` and ``chunk_size``-byte chunks."""
        self.ppspp_port = port
        self.ppspp_swarms[swarm_id] = (root_hash, chunk_size)

    # -- life cycle --------------------------------------------------------------------------

    @property
    def http(self) -> HttpClient:
        """The HTTP client to other peers (after :meth:`start`)."""
        assert self._http is not None, "the node is not started"
        return self._http

    @property
    def request_headers(self) -> dict[str, str]:
        """Headers every chunk request carries (the requester's PeerID)."""
        return {PEER_ID_HEADER: self.peer_id}

    @property
    def base_url(self) -> str:
        """Where other peers reach this peer's endpoint (its advertised address, once started)."""
        ip, port = self.advertised or (self.host, self.port)
        return f"http://{format_host(ip)}:{port}"

    async def start(self) -> None:
        """Start the HTTP endpoint and the tracker client."""
        self._server = await serve_endpoint(self.endpoint, self.host, self.port, self.guard)
        if self.port == 0:
            self.port = self._server.addresses[0][1]
        # Served on one address of the host: talk to others from it too, so that they (and
        # the tracker) see the host they will list.
        bound = self._server.addresses[0][0]
        local = None if is_wildcard(bound) else bound
        self.chunk_client.local_address = local
        # Without a download cap, a chunk body may sit in the connection's buffer whole
        # instead of pausing the socket until the reader catches up.
        read_buffer = CHUNK_READ_BYTES if self.download_limiter is None else 65536
        self._http = HttpClient(
            limit=256, limit_per_host=16, local_address=local, read_buffer=read_buffer
        )
        self.advertised = await self._advertised_address()
        ip, port = self.advertised
        self.guard.budget.local_host = ip
        family = AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4
        address = PeerAddress(ip=ip, port=port, family=family, peer_protocol=PEER_PROTOCOL)
        self.tracker = TrackerClient(
            self.tracker_url,
            self.peer_id,
            encoding=self.encoding,
            version=self.tracker_version,
            addresses=(address,),
            peer_protocol=PEER_PROTOCOL,
            clock=self.clock,
            tls=self.tracker_tls,
            token=self.tracker_token,
            local_address=tracker_source(local, self.tracker_url),
        )
        self.tracker.start_reporting(self._stats, interval=self.report_interval)

    async def _advertised_address(self) -> tuple[str, int]:
        """The address other peers are told: ``advertise``, else the bound one (see addressing).

        Bound to a wildcard, the peer advertises the local address of its route to the tracker.
        """
        if self.advertise is not None:
            ip, port = self.advertise
            return ip, port or self.port
        assert self._server is not None
        bound = self._server.addresses[0][0]
        if not is_wildcard(bound):
            return bound, self.port
        try:
            ip = await asyncio.to_thread(route_source_ip, self.tracker_url, ":" in bound)
        except (OSError, ValueError) as exc:
            raise OSError(
                f"cannot tell which address to advertise ({exc}): give --advertise"
            ) from exc
        return ip, self.port

    async def stop(self, *, disconnect: bool = True) -> None:
        """Leave the system at the tracker (DISCONNECT nil), then close everything."""
        self._stopping = True
        while self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = {task for task in self._tasks if not task.done()}
        if self.tracker is not None:
            self.tracker.stop_reporting()
            if disconnect:
                with contextlib.suppress(PPSPError, HttpClientError, asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.tracker.disconnect(None), timeout=DISCONNECT_TIMEOUT_S
                    )
            await self.tracker.close()
        if self._http is not None:
            await self._http.close()
        if self._server is not None:
            await self._server.close(STOP_GRACE_S)
        self._store_pool.shutdown(wait=False, cancel_futures=True)
        self.chunk_client.close()
        for session in self.sessions.values():
            if session.store is not None:
                session.store.close()  # waits for a write in progress

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run ``coro`` in the background; it is cancelled when the node stops.

        Once the node is stopping nothing new starts (a request still being answered may ask
        for a tracker lookup after the tracker client has closed): None then, else the task.
        """
        if self._stopping:
            coro.close()
            return None
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("background task failed: %r", error)

    def chunk_transports(self, session: SwarmSession) -> dict[str, ChunkTransport]:
        """The chunk transports of a session whose store is open, by transport type (PPSPP
        when downloads ask for it)."""
        assert session.store is not None
        transports: dict[str, ChunkTransport] = {}
        if PPSPP in self.transport_preference:
            from ppsp.peer.net.ppspp_transport import PpsppChunkTransport

            ppspp = PpsppChunkTransport(
                store=session.store,
                store_pool=self._store_pool,
                local_address=self.chunk_client.local_address,
                stopping=lambda: self._stopping,
                endpoint=self.ppspp_endpoint,
            )
            transports[PPSPP] = ppspp
            self.udp.add_transport(session.swarm_id, ppspp)
            ppspp.pex.on_candidates = lambda found: self.learn_pex(session, ppspp, found)
        http = HttpChunkTransport(
            http=self.http,
            threads=self.chunk_client,
            store_pool=self._store_pool,
            store=session.store,
            representation=session.representation_id,
            headers=self.request_headers,
            limiter=self.download_limiter,
            stopping=lambda: self._stopping,
        )
        transports[http.kind] = http
        return transports

    # -- seeding -----------------------------------------------------------------------------

    async def seed(self, path: str | Path, *, chunk_size: int | None = None) -> SwarmSession:
        """Describe ``path``, open it as a complete store and JOIN its swarm as SEED.

        The file is read once, in a thread; cancelling this coroutine stops the reading within
        a chunk (the thread does not go on hashing a large file nobody waits for).
        """
        if chunk_size is None:
            chunk_size = chunk_size_for(os.stat(path).st_size)
        given_up = threading.Event()
        try:
            store = await asyncio.to_thread(
                ChunkStore.seed_file, path, chunk_size=chunk_size, cancelled=given_up.is_set
            )
        except asyncio.CancelledError:
            given_up.set()
            raise
        session = SwarmSession.seeding(store, now=self.clock())
        self.sessions[session.swarm_id] = session
        assert self.tracker is not None
        await self.tracker.join(session.swarm_id, PeerMode.SEED)
        await self._report_now()
        return session

    # -- downloading -------------------------------------------------------------------------

    async def join_swarm(self, swarm_id: str) -> SwarmSession:
        """JOIN ``swarm_id`` as LEECH and remember the peers the tracker lists.

        Hosts banned in an earlier session of the swarm stay banned (docs/PROTOCOL.md).
        """
        previous = self.sessions.get(swarm_id)
        session = SwarmSession(
            swarm_id=swarm_id,
            description=None,
            store=None,
            mode=PeerMode.LEECH,
            joined_at=self.clock(),
            peers=PeerBook(banned_hosts=previous.peers.banned_hosts if previous else ()),
        )
        self.sessions[swarm_id] = session
        assert self.tracker is not None
        try:
            listed = await self.tracker.join(swarm_id, PeerMode.LEECH)
        except AuthenticationRequired as exc:
            raise DownloadFailed(str(exc)) from exc  # already a sentence for the user
        except TrackerProtocolError as exc:
            raise DownloadFailed(f"tracker refused JOIN: {exc.reason}") from exc
        except PPSPError as exc:
            raise DownloadFailed(f"tracker unreachable: {exc}") from exc
        self.add_peers(session, listed)
        return session

    async def obtain_description(
        self, session: SwarmSession, timeout: float
    ) -> ContentDescription | LiveDescription:
        """The swarm's description from one of its peers, asking the tracker again as needed.

        Raises :class:`DownloadFailed` when no peer provides a valid one within ``timeout``.
        """
        return await obtain_description(self, session, timeout)

    async def download(
        self,
        swarm_id: str,
        output: str | Path | None,
        *,
        no_progress_timeout: float = 30.0,
        on_progress: Callable[[SwarmSession], None] | None = None,
        session: SwarmSession | None = None,
    ) -> SwarmSession:
        """Fetch the swarm's content into ``output``, verifying every chunk.

        The content is written to ``OUTPUT.part`` (a download interrupted there resumes from
        it), which takes the name ``output`` once every chunk is verified.  Without ``output``
        it goes to a file with no name that disappears with the process.
        ``session`` is one already joined with :meth:`join_swarm`; without it, this joins.
        The description is fetched while the first connections to peers are made.
        Raises :class:`DownloadFailed` with a one-line reason when it cannot finish.
        """
        if session is None:
            session = await self.join_swarm(swarm_id)
        if session.download is None:
            session.download = StoredDownload(
                session.peers,
                now=self.clock(),
                description=session.description,
                picker_config=self.picker_config,
                timing=DownloadTiming(no_progress_timeout=no_progress_timeout),
            )
        target = None if output is None else Path(output)
        runner = DownloadRunner(self, session, target, on_progress)
        try:
            await runner.run()
        except DownloadFailed as exc:
            session.failure = str(exc)
            raise
        finally:
            session.ready.set()
        await self._report_now()
        return session

    async def _report_now(self) -> None:
        if self.tracker is None:
            return
        stats, maps = self._stats()
        with contextlib.suppress(PPSPError, HttpClientError, asyncio.TimeoutError):
            await self.tracker.report(stats, maps)

    def _stats(self) -> tuple[Sequence[StreamStatistics], Sequence[ContentMap]]:
        stats: list[StreamStatistics] = []
        maps: list[ContentMap] = []
        for session in self.sessions.values():
            if self.tracker is not None:  # peers banned for corrupt data, for the next report
                self.tracker.state.note_corrupt(session.corrupt_reports())
            statistics, content_map = session.statistics()
            stats.append(statistics)
            if content_map is not None:
                maps.append(content_map)
        return stats, maps
