"""The peer: one HTTP endpoint that serves the peer protocol and chunks, and its swarm sessions.

This is the I/O layer of a peer.  The decisions are taken by sans-I/O parts: the peer protocol
handler (:mod:`ppsp.peer.protocol.handler`), the piece picker
(:mod:`ppsp.peer.download.picker`) and the content integrity checks
(:mod:`ppsp.peer.content.description`).  This module moves bytes between them, the tracker
(through :class:`~ppsp.tracker.net.client.TrackerClient`) and other peers over HTTP:

- ``POST /``: the peer protocol (PPSP-PP/0.1 XML, PROFILE.md);
- ``GET /swarm/{swarm}/description``: the content description, self-certified by the swarm ID;
- ``GET /swarm/{swarm}/chunk/{representation}/{index}``: one chunk's bytes (404 when not held),
  the URL template that TRANSPORT_NEGOTIATION hands out for the mandatory HTTP transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp import web
from yarl import URL

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.core.ratelimit import TokenBucket
from ppsp.errors import (
    AuthenticationRequired,
    ChunkChanged,
    ChunkUnavailable,
    ContentError,
    IntegrityError,
    PPSPError,
    TrackerProtocolError,
)
from ppsp.peer.content.description import ContentDescription, chunk_size_for, verify_description
from ppsp.peer.download.picker import DOWNLOAD_CONFIG, PickerConfig, PiecePicker
from ppsp.peer.live import (
    LiveDescription,
    LivePlayback,
    LiveWindow,
    is_live_description,
    verify_live_description,
)
from ppsp.peer.net.chunkfetch import ThreadedChunkClient, UnsupportedResponse
from ppsp.peer.net.chunkstore import ChunkStore, part_path
from ppsp.peer.protocol.addressing import format_host, is_wildcard
from ppsp.peer.protocol.handler import KnownPeer, PeerProtocolClient, PeerProtocolHandler
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import (
    HTTP,
    ChunkAvailabilityResponse,
    ErrorResponse,
    PeerRequest,
    PeerResponse,
    Property,
    PropertyQueryResponse,
    RepresentationMap,
    Stat,
    TransportNegotiationResponse,
    TransportOffer,
    bitmaps_from_chunk_map,
    chunk_map_from_bitmaps,
    format_property_value,
)
from ppsp.wire.tracker import (
    AddressFamily,
    ContentMap,
    Encoding,
    PeerAddress,
    PeerInfo,
    PeerMode,
    ProtocolVersion,
    StreamStatistics,
)

log = logging.getLogger(__name__)

PEER_PROTOCOL = "PPSP-PP/0.1"
"""The peer protocol this peer speaks, as advertised to the tracker (``peerProtocol``)."""

MAX_DESCRIPTION_BYTES = 64 << 20
"""Largest content description accepted from another peer."""

MAX_PEER_MESSAGE_BYTES = 1 << 20
"""Largest peer protocol request body accepted."""

CHUNK_TIMEOUT = aiohttp.ClientTimeout(total=30)
"""Bound on one chunk request, from sending it to the last byte."""

THREADED_FETCH_MIN_CHUNK = 1 << 20
"""Chunks at least this large are fetched in worker threads (:mod:`ppsp.peer.net.chunkfetch`).

Measured with ``bench.transfer_bench`` (docs/BENCHMARKS.md): with 1 MiB chunks the threads
move 256 MiB about 5% faster than the event loop's client (0.596 against 0.569 of a static
server, middles of seven alternated runs); with 512 KiB chunks the two are level, and with
256 KiB chunks the event loop is about 8% faster (a thread hand-over costs about as much as
what it saves on a small chunk)."""

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


class DownloadFailed(PPSPError):
    """A download cannot finish: no peers, tracker unreachable, or no progress in time."""


@dataclass(slots=True)
class RemotePeer:
    """What this peer knows of another peer of a swarm."""

    peer_id: str
    info: PeerInfo
    base_url: str
    offer: TransportOffer | None = None
    bitmap: ChunkBitmap | None = None
    properties: dict[str, str] = field(default_factory=dict)
    bytes_received: int = 0
    bytes_sent: int = 0
    failures: int = 0
    banned: bool = False
    connecting: bool = False
    last_map_at: float = 0.0
    map_version: int = 0
    threaded_fetch: bool = True
    """False once the peer answered a chunk request in a way only the event loop's client reads."""


LIVE_REPRESENTATION = "live"
"""Representation id of a live stream's chunks in chunk maps and chunk URLs."""

SOURCE_PROPERTY = "LiveSource"
"""PROPERTY_QUERY property by which a live stream's source identifies itself (value ``1``)."""


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
    """One swarm this peer takes part in: its content, its store and the peers it knows."""

    swarm_id: str
    description: ContentDescription | None
    store: ChunkStore | None
    mode: PeerMode
    live: LiveState | None = None
    remotes: dict[str, RemotePeer] = field(default_factory=dict)
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    uploaded_to: dict[str, int] = field(default_factory=dict)
    arrivals: list[tuple[float, str, int]] = field(default_factory=list)
    joined_at: float = 0.0
    completed_at: float | None = None
    served_chunks: int = 0
    cancelled: dict[str, int] = field(default_factory=dict)
    discarded_bytes: int = 0
    uploads_active: int = 0
    upload_waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    upload_turns: int = 0
    chunk_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    map_changed: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: dict[int, list[asyncio.Future[None]]] = field(default_factory=dict)
    seek_hook: Callable[[int], None] | None = None
    failure: str | None = None

    async def wait_for_chunk(self, index: int) -> None:
        """Return once chunk ``index`` is held (verified and stored)."""
        if self.store is not None and self.store.have(index):
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
        if self.seek_hook is not None:
            self.seek_hook(index)

    @property
    def representation_id(self) -> str:
        """The representation this session stores (``live`` for a live stream)."""
        if self.live is not None:
            return LIVE_REPRESENTATION
        assert self.description is not None
        return self.description.representation().id

    def bitmap(self) -> ChunkBitmap:
        """The chunks held (empty when the description is not known yet)."""
        if self.live is not None:
            return self.live.bitmap()
        if self.store is None:
            return ChunkBitmap(0)
        return self.store.bitmap

    def chunk_map(self) -> tuple[RepresentationMap, ...]:
        """The wire form of the chunks held."""
        if self.live is not None:
            return chunk_map_from_bitmaps({LIVE_REPRESENTATION: [self.live.bitmap()]})
        if self.description is None or self.store is None:
            return ()
        return chunk_map_from_bitmaps({self.representation_id: [self.store.bitmap]})

    @property
    def complete(self) -> bool:
        """Whether every chunk is held."""
        return self.store is not None and self.store.complete

    def report(self, peer_id: str) -> dict[str, object]:
        """This session's figures, as the JSON document ``--report`` writes."""
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
            "arrivals": [list(event) for event in self.arrivals],
            "cancelled": dict(self.cancelled),
            "discarded_bytes": self.discarded_bytes,
            "peers": {
                peer_id: {
                    "connected": remote.offer is not None,
                    "banned": remote.banned,
                    "failures": remote.failures,
                    "chunks_announced": len(remote.bitmap) if remote.bitmap is not None else None,
                }
                for peer_id, remote in self.remotes.items()
            },
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
                delay_behind_source=qoe.delay_behind_source,
                bytes_from_source=qoe.bytes_from_source,
                bytes_from_peers=qoe.bytes_from_peers,
            )
        return figures

    def bytes_by_peer(self) -> dict[str, int]:
        """Bytes received from each remote peer."""
        return {peer_id: r.bytes_received for peer_id, r in self.remotes.items()}


class BodyTooLarge(ConnectionError):
    """An HTTP body exceeded the bound set for it."""


async def read_bounded(
    stream: aiohttp.StreamReader, limit: int, *, limiter: RateLimiter | None = None
) -> bytes:
    """Read a whole HTTP body, refusing one longer than ``limit`` bytes.

    With a ``limiter``, every piece read is paced by the download rate limit.
    """
    return b"".join(await read_pieces(stream, limit, limiter=limiter))


async def read_pieces(
    stream: aiohttp.StreamReader,
    limit: int,
    *,
    limiter: RateLimiter | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Read a whole HTTP body as the pieces received, refusing one longer than ``limit`` bytes.

    Buffered pieces are not joined.  With a ``limiter``, pieces of at most 64 KiB are read,
    each paced by the download rate limit.  ``on_bytes`` is called with the number of bytes
    read so far after each piece.
    """
    parts: list[bytes] = []
    size = 0
    async for part in _body_pieces(stream, small=limiter is not None):
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        parts.append(part)
        if on_bytes is not None:
            on_bytes(size)
        if limiter is not None:
            await limiter.consume(len(part))
    return parts


async def _body_pieces(stream: aiohttp.StreamReader, *, small: bool) -> AsyncIterator[bytes]:
    if small:
        while part := await stream.read(65536):
            yield part
        return
    async for part, _ in stream.iter_chunks():
        if part:
            yield part


class RateLimiter:
    """Paces bytes through a :class:`~ppsp.core.ratelimit.TokenBucket` on the event loop."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.bucket = TokenBucket(rate, now=clock())
        self._turn = asyncio.Lock()

    async def consume(self, nbytes: int, *, still_wanted: Callable[[], bool] | None = None) -> bool:
        """Wait until ``nbytes`` may pass; False when ``still_wanted`` says not to send them.

        Senders take turns (first come, first served), and a sender reserves its bytes only when
        its turn comes: a request whose requester gave up meanwhile costs nothing, instead of
        pushing every later request further back.
        """
        async with self._turn:
            if still_wanted is not None and not still_wanted():
                return False
            wait = self.bucket.reserve(nbytes, self.clock())
            if wait > 0:
                await asyncio.sleep(wait)
        return True


def send_file_now(
    transport: asyncio.BaseTransport, file: BinaryIO, offset: int, length: int
) -> int:
    """Send what the socket takes at once of ``length`` bytes of ``file`` from ``offset``.

    One non-blocking ``sendfile`` straight onto the transport's socket; the number of bytes
    sent (0 when nothing could be).  Only when the transport has nothing buffered, so that the
    bytes follow everything written before them: asyncio's ``loop.sendfile`` then costs
    several futures and four ``epoll_ctl`` calls per chunk for a chunk that the socket takes
    whole.  Errors are left to the caller's slower path, which reports them.
    """
    if transport.is_closing() or not isinstance(transport, asyncio.WriteTransport):
        return 0
    if transport.get_write_buffer_size():
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return os.sendfile(sock.fileno(), file.fileno(), offset, length)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0  # not a socket sendfile can write to, or a broken one: the slow path tells


PEER_ID_HEADER = "PPSP-Peer-ID"
"""Request header naming the fetching peer, so that uploads are counted per peer."""

UPLOAD_PIECE = 16384
"""Bytes written per step when an upload limit paces a chunk."""

UPLOADS_AT_ONCE = 2
"""Chunks of one swarm sent at once under an upload limit; further requests wait their turn.

Sharing a capped upload among every requester at once would finish all their chunks late
together; served in turn, each chunk completes early and its receiver can pass it on sooner.
Waiting requests are served fewest-chunks-held requester first (then in arrival order), so
that peers that joined late catch up and the swarm completes together.
"""


def _connected(request: web.Request) -> bool:
    """Whether the client of ``request`` is still there to receive an answer."""
    return request.transport is not None and not request.transport.is_closing()


def _address_url(address: PeerAddress) -> str:
    host = f"[{address.ip}]" if address.family is AddressFamily.IPV6 else address.ip
    return f"http://{host}:{address.port}"


def _base_url(info: PeerInfo) -> str | None:
    """The URL of a listed peer's endpoint: its first advertised HOST address, else any."""
    if not info.addresses:
        return None
    for address in info.addresses:
        if address.type is None or address.type.value != "REFLEXIVE":
            return _address_url(address)
    return _address_url(info.addresses[0])


class PeerNode:
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
        self.handler = PeerProtocolHandler(self)
        self.protocol_client = PeerProtocolClient(self._peer_id)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.tracker: TrackerClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.corrupt_uploads = False
        self.upload_limiter = RateLimiter(upload_rate, clock) if upload_rate else None
        self.download_limiter = RateLimiter(download_rate, clock) if download_rate else None
        # Hashing and writing release the GIL: in worker threads they overlap the event
        # loop's network work and each other.  Two: more only compete with the loop.
        self._store_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ppsp-store")
        # Downloads of large chunks run whole in worker threads (see ppsp.peer.net.chunkfetch).
        self.chunk_client = ThreadedChunkClient()

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
            if remote.banned:
                continue
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
        """Remember a pushed chunk map; an unknown sender makes us look it up at the tracker."""
        session = self.sessions[swarm_id]
        remote = session.remotes.get(peer_id)
        if remote is None:
            if peer_id != self.peer_id:
                self.spawn(self.discover(session))
            return
        self._apply_map(session, remote, chunk_map, now)

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
        """The mandatory HTTP transport, as a URL template for this swarm's chunks."""
        template = f"{self.base_url}/swarm/{swarm_id}/chunk/{{representation}}/{{chunk}}"
        return (TransportOffer(type=HTTP, uri=template),)

    # -- life cycle --------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The HTTP client session to other peers (after :meth:`start`)."""
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
        app = web.Application(client_max_size=MAX_PEER_MESSAGE_BYTES)
        app.router.add_post("/", self._handle_protocol)
        app.router.add_route("GET", "/", self._handle_protocol)
        app.router.add_get("/swarm/{swarm}/description", self._handle_description)
        app.router.add_get("/swarm/{swarm}/chunk/{representation}/{index}", self._handle_chunk)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=STOP_GRACE_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        # Served on one address of the host: talk to others from it too, so that they (and
        # the tracker) see the host they will list.
        bound = str(self._runner.addresses[0][0])
        local = None if is_wildcard(bound) else bound
        self.chunk_client.local_address = local
        connector = aiohttp.TCPConnector(
            limit=256, limit_per_host=16, local_addr=None if local is None else (local, 0)
        )
        # Without a download cap, a chunk body may sit in the connection's buffer whole
        # instead of pausing the socket every 128 KiB until the reader catches up.
        read_bufsize = CHUNK_READ_BYTES if self.download_limiter is None else 65536
        self._http = aiohttp.ClientSession(
            connector=connector,
            read_bufsize=read_bufsize,
            cookie_jar=aiohttp.DummyCookieJar(),  # peers set no cookies: none to look up
        )
        self.advertised = await self._advertised_address()
        ip, port = self.advertised
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
            local_address=_tracker_source(local, self.tracker_url),
        )
        self.tracker.start_reporting(self._stats, interval=self.report_interval)

    async def _advertised_address(self) -> tuple[str, int]:
        """The address other peers are told: ``advertise``, else the bound one (see addressing).

        Bound to a wildcard, the peer advertises the local address of its route to the tracker.
        """
        if self.advertise is not None:
            ip, port = self.advertise
            return ip, port or self.port
        assert self._runner is not None
        bound = str(self._runner.addresses[0][0])
        if not is_wildcard(bound):
            return bound, self.port
        try:
            ip = await asyncio.to_thread(_route_source_ip, self.tracker_url, ":" in bound)
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
                with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.tracker.disconnect(None), timeout=DISCONNECT_TIMEOUT_S
                    )
            await self.tracker.close()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._store_pool.shutdown(wait=False, cancel_futures=True)
        self.chunk_client.close()
        for session in self.sessions.values():
            if session.store is not None:
                session.store.close()  # waits for a write in progress

    async def store_chunk(self, store: ChunkStore, index: int, parts: Sequence[bytes]) -> None:
        """Verify and write a received chunk in the storing thread (see ``store_parts``).

        Raises IntegrityError when the bytes do not match, ChunkUnavailable once the node is
        stopping; the caller marks the chunk held.
        """
        if self._stopping:
            raise ChunkUnavailable(f"chunk {index}: the peer is stopping")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._store_pool, store.store_parts, index, parts)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background; it is cancelled when the node stops.

        Once the node is stopping nothing new starts (a request still being answered may ask
        for a tracker lookup after the tracker client has closed).
        """
        if self._stopping:
            coro.close()
            return
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("background task failed: %r", error)

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
        description = store.description
        session = SwarmSession(
            swarm_id=description.swarm_id,
            description=description,
            store=store,
            mode=PeerMode.SEED,
        )
        self.sessions[session.swarm_id] = session
        assert self.tracker is not None
        await self.tracker.join(session.swarm_id, PeerMode.SEED)
        await self._report_now()
        return session

    # -- downloading -------------------------------------------------------------------------

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
        Raises :class:`DownloadFailed` with a one-line reason when it cannot finish.
        """
        if session is None:
            session = await self.join_swarm(swarm_id)
        downloader = _Downloader(self, session, output, no_progress_timeout, on_progress)
        try:
            await downloader.run()
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
        with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError):
            await self.tracker.report(stats, maps)

    def _stats(self) -> tuple[Sequence[StreamStatistics], Sequence[ContentMap]]:
        stats: list[StreamStatistics] = []
        maps: list[ContentMap] = []
        for session in self.sessions.values():
            stats.append(
                StreamStatistics(
                    swarm_id=session.swarm_id,
                    uploaded_bytes=session.uploaded_bytes,
                    downloaded_bytes=session.downloaded_bytes,
                    concurrent_links=len(session.remotes),
                    extra=(
                        session.live.playback.qoe().as_extra()
                        if session.live is not None and session.live.playback is not None
                        else ()
                    ),
                )
            )
            chunk_map = session.chunk_map()
            if chunk_map:
                maps.append(ContentMap(swarm_id=session.swarm_id, representations=chunk_map))
        return stats, maps

    # -- remote peers ------------------------------------------------------------------------

    def add_peers(self, session: SwarmSession, listed: Sequence[PeerInfo]) -> list[RemotePeer]:
        """Remember the listed peers of ``session`` not known yet (never this peer itself)."""
        added: list[RemotePeer] = []
        for info in listed:
            if info.peer_id is None or info.peer_id == self.peer_id:
                continue
            if info.peer_id in session.remotes:
                continue
            base = _base_url(info)
            if base is None:
                continue
            remote = RemotePeer(peer_id=info.peer_id, info=info, base_url=base)
            session.remotes[info.peer_id] = remote
            added.append(remote)
        return added

    async def discover(self, session: SwarmSession) -> None:
        """Ask the tracker for the swarm's peers (after an unknown peer pushed to us)."""
        if self.tracker is None:
            return
        with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError):
            self.add_peers(session, await self.tracker.find(session.swarm_id))

    def _apply_map(
        self,
        session: SwarmSession,
        remote: RemotePeer,
        chunk_map: Sequence[RepresentationMap],
        now: float,
    ) -> None:
        remote.last_map_at = now
        if session.live is not None:
            remote.bitmap = _live_bitmap(chunk_map)
            session.map_changed = True
            session.chunk_arrived.set()
            return
        if session.description is None:
            return
        rep = session.description.representation()
        bitmap = ChunkBitmap(rep.chunk_count)
        for segment in bitmaps_from_chunk_map(chunk_map).get(rep.id, []):
            for index in segment:
                if 0 <= index < rep.chunk_count:
                    bitmap.add(index)
        remote.bitmap = bitmap
        remote.map_version += 1
        session.map_changed = True
        session.chunk_arrived.set()

    async def exchange(self, remote: RemotePeer, request: PeerRequest) -> PeerResponse:
        """Send one peer protocol request to ``remote`` and return its answer."""
        assert self._http is not None
        body = self.protocol_client.send(request, self.clock())
        try:
            async with self._http.post(
                remote.base_url + "/",
                data=body,
                headers={"Content-Type": PEER_CONTENT_TYPE},
                timeout=aiohttp.ClientTimeout(total=5.0),
            ) as answer:
                data = await read_bounded(answer.content, MAX_PEER_MESSAGE_BYTES)
                return self.protocol_client.receive(request, data, answer.status)
        finally:
            # Drop only transactions past their own deadline (those whose HTTP exchange
            # failed): other exchanges run concurrently, and expiring everything here made
            # their answers "not pending" (every connect racing another one failed).
            self.protocol_client.expire(self.clock())

    async def connect(self, session: SwarmSession, remote: RemotePeer) -> None:
        """Negotiate the transport, query the properties and pull the chunk map of ``remote``.

        The peer becomes usable (``remote.offer`` set) only once its properties are known, so
        that what they say (a live source, its upload rate) is there before the first request.
        """
        client = self.protocol_client
        answer = await self.exchange(remote, client.transport_negotiation(session.swarm_id))
        if not isinstance(answer, TransportNegotiationResponse):
            raise ConnectionError(f"transport negotiation refused by {remote.peer_id}")
        offer = answer.offer(HTTP)
        if offer is None or offer.uri is None:
            raise ConnectionError(f"{remote.peer_id} offers no HTTP transport")
        props = await self.exchange(remote, client.property_query(session.swarm_id))
        if not isinstance(props, PropertyQueryResponse):
            raise ConnectionError(f"{remote.peer_id} did not answer PROPERTY_QUERY")
        remote.properties = props.as_dict()
        remote.offer = offer
        await self.pull_map(session, remote)

    async def pull_map(self, session: SwarmSession, remote: RemotePeer) -> None:
        """CHUNK_AVAILABILITY PULL from ``remote``."""
        answer = await self.exchange(remote, self.protocol_client.pull_chunk_map(session.swarm_id))
        if isinstance(answer, ChunkAvailabilityResponse):
            self._apply_map(session, remote, answer.chunk_map, self.clock())
        elif isinstance(answer, ErrorResponse):
            raise ConnectionError(f"{remote.peer_id} answered {answer.response}")

    async def push_map(
        self, session: SwarmSession, targets: Sequence[RemotePeer] | None = None
    ) -> None:
        """CHUNK_AVAILABILITY PUSH of our map to ``targets``, by default every connected peer.

        This is the Hybrid flow: peers announce what they got instead of being asked.
        """
        chunk_map = session.chunk_map()
        if targets is None:
            targets = [r for r in session.remotes.values() if r.offer is not None and not r.banned]

        async def push(remote: RemotePeer) -> None:
            request = self.protocol_client.push_chunk_map(session.swarm_id, chunk_map)
            with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError, OSError):
                await self.exchange(remote, request)

        await asyncio.gather(*(push(remote) for remote in targets))

    async def find_via_peers(self, session: SwarmSession) -> None:
        """FIND at connected peers: more peers even when the tracker is slow or gone."""
        targets = [r for r in session.remotes.values() if r.offer is not None and not r.banned]

        async def ask(remote: RemotePeer) -> None:
            request = self.protocol_client.find(session.swarm_id)
            with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError, OSError):
                answer = await self.exchange(remote, request)
                peers = getattr(answer, "peers", ())
                self.add_peers(session, peers)

        await asyncio.gather(*(ask(remote) for remote in targets[:4]))

    async def fetch_description(
        self, session: SwarmSession
    ) -> ContentDescription | LiveDescription:
        """Fetch the content (or live stream) description from a peer; check it against the ID."""
        assert self._http is not None
        for remote in list(session.remotes.values()):
            if remote.banned:
                continue
            url = f"{remote.base_url}/swarm/{session.swarm_id}/description"
            try:
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as answer:
                    if answer.status != 200:
                        continue
                    data = await read_bounded(answer.content, MAX_DESCRIPTION_BYTES)
                if is_live_description(data):
                    return verify_live_description(data, session.swarm_id)
                return verify_description(data, session.swarm_id)
            except ContentError:
                log.warning("peer %s sent a description that fails the swarm ID", remote.peer_id)
                remote.banned = True
            except (TimeoutError, aiohttp.ClientError, OSError):
                remote.failures += 1
        raise ConnectionError("no peer could provide the content description")

    async def obtain_description(
        self, session: SwarmSession, timeout: float
    ) -> ContentDescription | LiveDescription:
        """The swarm's description from one of its peers, asking the tracker again as needed.

        Raises :class:`DownloadFailed` when no peer provides a valid one within ``timeout``.
        """
        deadline = self.clock() + timeout
        while True:
            if session.remotes:
                try:
                    return await self.fetch_description(session)
                except ConnectionError:
                    pass
            if self.clock() > deadline:
                if not session.remotes:
                    raise DownloadFailed("no peers in the swarm")
                raise DownloadFailed("no peer could provide a valid content description")
            await asyncio.sleep(0.5)
            await self.discover(session)

    async def join_swarm(self, swarm_id: str) -> SwarmSession:
        """JOIN ``swarm_id`` as LEECH and remember the peers the tracker lists."""
        session = SwarmSession(
            swarm_id=swarm_id,
            description=None,
            store=None,
            mode=PeerMode.LEECH,
            joined_at=self.clock(),
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

    async def fetch_chunk(
        self,
        session: SwarmSession,
        remote: RemotePeer,
        index: int,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        """GET one chunk from ``remote`` over the negotiated HTTP transport; its body's pieces.

        The pieces are returned as read (not joined: the store verifies and writes them as they
        are).  ``on_bytes`` is called with the number of body bytes read so far after each piece,
        so that the caller can tell a transfer in progress from a stalled one.
        """
        assert self._http is not None and remote.offer is not None
        url = remote.offer.chunk_url(index, session.representation_id)
        headers = {PEER_ID_HEADER: self.peer_id}
        async with self._http.get(url, headers=headers, timeout=CHUNK_TIMEOUT) as answer:
            if answer.status != 200:
                raise ConnectionError(f"{remote.peer_id} answered {answer.status} for {index}")
            limit = session.description.chunk_size if session.description else 0
            return await read_pieces(
                answer.content, limit, limiter=self.download_limiter, on_bytes=on_bytes
            )

    async def fetch_and_store_chunk(
        self,
        session: SwarmSession,
        remote: RemotePeer,
        index: int,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int | None:
        """GET, verify and write one chunk in a worker thread (:mod:`ppsp.peer.net.chunkfetch`).

        Returns the chunk's length once it is written (not yet marked held), or None when this
        transfer is for the event loop's client (:meth:`fetch_chunk`): chunks smaller than
        :data:`THREADED_FETCH_MIN_CHUNK`, under a download cap, when every thread is busy, for
        a URL other than plain ``http://``, and from then on for a peer that answered in the
        chunked coding.  Raises as :meth:`fetch_chunk` and :meth:`store_chunk` do.
        """
        assert remote.offer is not None and session.store is not None
        if (
            self.download_limiter is not None
            or not remote.threaded_fetch
            or self._stopping
            or session.store.description.chunk_size < THREADED_FETCH_MIN_CHUNK
        ):
            return None
        url = remote.offer.chunk_url(index, session.representation_id)
        if not self.chunk_client.accepts(url):
            return None
        try:
            async with asyncio.timeout(CHUNK_TIMEOUT.total):
                return await self.chunk_client.fetch(
                    url,
                    headers={PEER_ID_HEADER: self.peer_id},
                    store=session.store,
                    index=index,
                    on_bytes=on_bytes,
                )
        except UnsupportedResponse:
            remote.threaded_fetch = False
            return None

    # -- HTTP handlers -----------------------------------------------------------------------

    async def _handle_protocol(self, request: web.Request) -> web.Response:
        try:
            body = await read_bounded(request.content, MAX_PEER_MESSAGE_BYTES)
        except BodyTooLarge:
            body = b" " * (MAX_PEER_MESSAGE_BYTES + 1)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            body = b""
        status, answer = self.handler.handle_bytes(body, self.clock())
        return web.Response(status=status, body=answer, content_type=PEER_CONTENT_TYPE)

    async def _handle_description(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["swarm"])
        if session is not None and session.live is not None:
            body = session.live.description.to_bytes()
            return web.Response(body=body, content_type="application/json")
        if session is None or session.description is None:
            raise web.HTTPNotFound()
        return web.Response(body=session.description.to_bytes(), content_type="application/json")

    async def _handle_chunk(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.match_info["swarm"])
        try:
            index = int(request.match_info["index"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if session is not None and session.live is not None:
            return await self._serve_live_chunk(request, session, session.live, index)
        if (
            session is None
            or session.store is None
            or session.description is None
            or request.match_info["representation"] != session.representation_id
            or not session.store.have(index)
        ):
            raise web.HTTPNotFound()
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        try:
            if self.upload_limiter is None and not self.corrupt_uploads:
                return await self._send_stored_chunk(
                    request, session, session.store, requester, index
                )
            data = session.store.read(index)
        except ChunkChanged as exc:
            if len(session.store.changed_chunks) == 1:  # say it once, not per request
                log.warning("%s; chunks that no longer match are not served", exc)
            raise web.HTTPNotFound() from None
        session.served_chunks += 1
        if self.corrupt_uploads:
            data = bytes(b ^ 0x5A for b in data)
        if self.upload_limiter is None:
            self._count_upload(session, requester, len(data))
            return web.Response(body=data, content_type="application/octet-stream")
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.content_length = len(data)
        if session.uploads_active < UPLOADS_AT_ONCE:
            session.uploads_active += 1
        else:
            # Wait for a finishing upload to hand its turn over (see UPLOADS_AT_ONCE).
            remote = session.remotes.get(requester)
            held = len(remote.bitmap) if remote is not None and remote.bitmap else 0
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            session.upload_turns += 1
            heapq.heappush(session.upload_waiters, (held, session.upload_turns, turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._next_upload(session)  # the turn came: pass it on
                turn.cancel()
                raise
        try:
            transport = request.transport
            if transport is None or transport.is_closing():
                return response  # the requester gave up while waiting its turn
            await response.prepare(request)
            for offset in range(0, len(data), UPLOAD_PIECE):
                piece = data[offset : offset + UPLOAD_PIECE]
                await self.upload_limiter.consume(len(piece))
                await response.write(piece)
                self._count_upload(session, requester, len(piece))
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            # The requester gave up on this chunk (an endgame duplicate it cancelled, or
            # it left): nothing more to send.
            pass
        finally:
            self._next_upload(session)
        return response

    @staticmethod
    def _next_upload(session: SwarmSession) -> None:
        """An upload finished: hand its turn to the first waiting request, or free it."""
        while session.upload_waiters:
            _, _, turn = heapq.heappop(session.upload_waiters)
            if not turn.done():
                turn.set_result(None)
                return
        session.uploads_active -= 1

    async def _serve_live_chunk(
        self, request: web.Request, session: SwarmSession, live: LiveState, index: int
    ) -> web.StreamResponse:
        if request.match_info["representation"] != LIVE_REPRESENTATION or index not in live.window:
            raise web.HTTPNotFound()
        envelope = live.window.get(index)
        if self.corrupt_uploads:
            envelope = replace(envelope, payload=bytes(b ^ 0x5A for b in envelope.payload))
        data = envelope.encode()
        session.served_chunks += 1
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        if self.upload_limiter is not None and not await self.upload_limiter.consume(
            len(data), still_wanted=lambda: _connected(request)
        ):
            # The viewer gave up (the chunk's deadline passed) while it waited its turn.
            return web.Response(status=503)
        self._count_upload(session, requester, len(data))
        return web.Response(body=data, content_type="application/octet-stream")

    async def _send_stored_chunk(
        self,
        request: web.Request,
        session: SwarmSession,
        store: ChunkStore,
        requester: str,
        index: int,
    ) -> web.StreamResponse:
        """Send a held chunk straight from the file (``sendfile``).

        What the socket takes at once goes with one ``sendfile`` call (:func:`send_file_now`);
        the rest, if any, through asyncio's ``loop.sendfile``, which waits for the socket to
        drain.  Both send from the page cache without copying the bytes through Python.  Where
        the loop has no ``loop.sendfile`` (uvloop) the rest is read and written.
        """
        file, offset, length = store.sending(index)
        session.served_chunks += 1
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.content_length = length
        try:
            await response.prepare(request)
            transport = request.transport
            if transport is None or transport.is_closing():
                return response
            sent = send_file_now(transport, file, offset, length)
            if sent < length:
                try:
                    loop = asyncio.get_running_loop()
                    await loop.sendfile(
                        transport, file, offset + sent, length - sent, fallback=False
                    )
                except (NotImplementedError, RuntimeError):
                    await response.write(store.read(index)[sent:])
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            return response  # the requester gave up on this chunk
        self._count_upload(session, requester, length)
        return response

    @staticmethod
    def _count_upload(session: SwarmSession, requester: str, nbytes: int) -> None:
        session.uploaded_bytes += nbytes
        session.uploaded_to[requester] = session.uploaded_to.get(requester, 0) + nbytes


class _Downloader:
    """The download loop of one swarm session: connect, pick, fetch, verify, store, announce."""

    def __init__(
        self,
        node: PeerNode,
        session: SwarmSession,
        output: str | Path | None,
        no_progress_timeout: float,
        on_progress: Callable[[SwarmSession], None] | None,
    ) -> None:
        self.node = node
        self.session = session
        self.output = None if output is None else Path(output)
        self.no_progress_timeout = no_progress_timeout
        self.on_progress = on_progress
        self.picker: PiecePicker | None = None
        self.fetches: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.received: dict[tuple[str, int], int] = {}  # body bytes read so far per fetch
        self.last_progress = node.clock()
        self.last_find = 0.0
        self.last_push = 0.0
        self.last_pull = 0.0
        self._synced: dict[str, int] = {}

    async def run(self) -> None:
        node, session = self.node, self.session
        await self._ensure_description()
        assert session.description is not None
        rep = session.description.representation()
        try:
            session.store = await asyncio.to_thread(_open_output, session.description, self.output)
        except BlockingIOError as exc:
            raise DownloadFailed(
                f"{part_path(self.output or '')} is being written by another download"
            ) from exc
        except OSError as exc:  # an unwritable path, or a disk too small for the content
            raise DownloadFailed(f"cannot write {self.output}: {exc.strerror or exc}") from exc
        self.picker = PiecePicker(
            rep.chunk_count,
            held=list(session.store.bitmap),
            config=replace(node.picker_config, chunk_size=session.description.chunk_size),
        )
        session.seek_hook = self._seek
        session.ready.set()
        try:
            while not session.complete:
                now = node.clock()
                self._connect_new()
                self._sync_peers()
                for peer, index in self.picker.expired(now):
                    self._cancel(peer, index, "timeout")
                for peer, index in self.picker.next_requests(now):
                    self._start_fetch(peer, index)
                await self._housekeeping(now)
                if now - self.last_progress > self.no_progress_timeout:
                    raise DownloadFailed(
                        f"no progress for {self.no_progress_timeout:.0f} s "
                        f"({len(session.bitmap())}/{rep.chunk_count} chunks, "
                        f"{len(session.remotes)} peers known)"
                    )
                session.chunk_arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):  # no task per wait, unlike wait_for
                        await session.chunk_arrived.wait()
        finally:
            for task in self.fetches.values():
                task.cancel()
        try:
            await asyncio.to_thread(session.store.commit)
        except OSError as exc:
            raise DownloadFailed(f"cannot write {self.output}: {exc.strerror or exc}") from exc
        await node.push_map(session)
        if self.on_progress is not None:
            self.on_progress(session)

    def _seek(self, index: int) -> None:
        if self.picker is not None and not self.picker.complete:
            self.picker.seek(index)
            self.session.chunk_arrived.set()

    async def _ensure_description(self) -> None:
        if self.session.description is not None:
            return
        description = await self.node.obtain_description(self.session, self.no_progress_timeout)
        if isinstance(description, LiveDescription):
            raise DownloadFailed("this swarm is a live stream: watch it with ppsp watch")
        self.session.description = description

    def _connect_new(self) -> None:
        for remote in self.session.remotes.values():
            if remote.offer is None and not remote.connecting and not remote.banned:
                if remote.failures >= 3:
                    continue
                remote.connecting = True
                self.node.spawn(self._connect(remote))

    async def _connect(self, remote: RemotePeer) -> None:
        try:
            await self.node.connect(self.session, remote)
        except (TimeoutError, PPSPError, aiohttp.ClientError, OSError, ConnectionError):
            remote.failures += 1
        finally:
            remote.connecting = False
            self.session.chunk_arrived.set()

    def _sync_peers(self) -> None:
        assert self.picker is not None
        picker = self.picker
        for peer_id, remote in self.session.remotes.items():
            if remote.banned:
                if peer_id in picker.peers and not picker.is_banned(peer_id):
                    for index in picker.ban(peer_id):
                        self._cancel(peer_id, index, "banned")
                continue
            if (
                remote.offer is not None
                and remote.bitmap is not None
                and self._synced.get(peer_id) != remote.map_version
            ):
                picker.set_peer(peer_id, remote.bitmap)
                picker.set_advertised_rate(peer_id, advertised_rate(remote.properties))
                self._synced[peer_id] = remote.map_version
        self.session.map_changed = False

    def _start_fetch(self, peer_id: str, index: int) -> None:
        remote = self.session.remotes.get(peer_id)
        if remote is None:
            return
        self.fetches[(peer_id, index)] = asyncio.ensure_future(self._fetch(remote, index))

    def _cancel(self, peer_id: str, index: int, reason: str) -> None:
        """Stop a fetch; count it under ``reason`` and its bytes read so far as discarded."""
        task = self.fetches.pop((peer_id, index), None)
        if task is not None:
            task.cancel()
            self._discard(reason, self.received.pop((peer_id, index), 0))

    def _discard(self, reason: str, nbytes: int) -> None:
        cancelled = self.session.cancelled
        cancelled[reason] = cancelled.get(reason, 0) + 1
        self.session.discarded_bytes += nbytes

    def _progress(self, peer_id: str, index: int, nbytes: int) -> None:
        assert self.picker is not None
        self.received[(peer_id, index)] = nbytes
        self.picker.on_progress(peer_id, index, self.node.clock())

    async def _fetch(self, remote: RemotePeer, index: int) -> None:
        node, session, picker = self.node, self.session, self.picker
        assert picker is not None and session.store is not None
        key = (remote.peer_id, index)
        delivered = stored = False
        try:
            on_bytes = functools.partial(self._progress, remote.peer_id, index)
            written = await node.fetch_and_store_chunk(session, remote, index, on_bytes=on_bytes)
            if written is None:
                parts = await node.fetch_chunk(session, remote, index, on_bytes=on_bytes)
                nbytes = sum(len(part) for part in parts)
                # The request's slot is free while the chunk is verified and written.
                picker.on_delivered(remote.peer_id, index, nbytes, node.clock())
                delivered = True
                session.chunk_arrived.set()
                if session.store.have(index):
                    self._discard("late", nbytes)
                    return
                await node.store_chunk(session.store, index, parts)
            else:
                nbytes = written
                picker.on_delivered(remote.peer_id, index, nbytes, node.clock())
                delivered = True
            stored = True
            if not session.store.mark_stored(index):
                self._discard("late", nbytes)
                return
        except IntegrityError:
            log.warning("peer %s sent a corrupt chunk %d: dropping it", remote.peer_id, index)
            remote.banned = True
            picker.on_failed(remote.peer_id, index)
            self._discard("corrupt", self.received.get(key, 0))
            return
        except ChunkUnavailable:
            return  # the store closed under a write: the download is over
        except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError):
            remote.failures += 1
            picker.on_failed(remote.peer_id, index)
            self._discard("failed", self.received.get(key, 0))
            if remote.failures >= 3:
                remote.banned = True
            return
        finally:
            if delivered and not stored:
                picker.abandon(remote.peer_id, index)  # cancelled while verifying
            if self.fetches.get(key) is asyncio.current_task():
                del self.fetches[key]
                self.received.pop(key, None)
            session.chunk_arrived.set()
        now = node.clock()
        remote.bytes_received += nbytes
        session.downloaded_bytes += nbytes
        session.arrivals.append((now, remote.peer_id, nbytes))
        if session.complete:
            session.completed_at = now
        for peer, duplicate in picker.mark_held(index):
            self._cancel(peer, duplicate, "duplicate")
        session.map_changed = True
        session.chunk_stored(index)
        self.last_progress = now
        if self.on_progress is not None:
            self.on_progress(session)

    async def _housekeeping(self, now: float) -> None:
        node, session = self.node, self.session
        if now - self.last_push >= 0.5 and any(r.offer for r in session.remotes.values()):
            self.last_push = now
            node.spawn(node.push_map(session))
        if now - self.last_pull >= 2.0:
            self.last_pull = now
            for remote in session.remotes.values():
                if remote.offer is not None and not remote.banned and now - remote.last_map_at > 2:
                    node.spawn(self._pull(remote))
        usable = [r for r in session.remotes.values() if r.offer is not None and not r.banned]
        if (len(usable) < 4 or now - self.last_progress > 2.0) and now - self.last_find >= 3.0:
            self.last_find = now
            node.spawn(node.discover(session))
            node.spawn(node.find_via_peers(session))

    async def _pull(self, remote: RemotePeer) -> None:
        try:
            await self.node.pull_map(self.session, remote)
        except (TimeoutError, PPSPError, aiohttp.ClientError, OSError, ConnectionError):
            remote.failures += 1
            if remote.failures >= 3:
                remote.banned = True


def advertised_rate(properties: Mapping[str, str]) -> float | None:
    """The upload rate (bytes per second) a peer advertised as ``Bandwidth`` in PROPERTY_QUERY.

    None when it gave none or not a positive integer (other peers' values are untrusted).
    """
    stat = Stat(property=Property.BANDWIDTH, value=properties.get(Property.BANDWIDTH))
    value = stat.as_int()
    return float(value) if value is not None and value > 0 else None


def _live_bitmap(chunk_map: Sequence[RepresentationMap]) -> ChunkBitmap:
    """One bitmap of the live chunks a peer announced (its window, from floor to newest)."""
    held = sorted(
        index
        for segment in bitmaps_from_chunk_map(chunk_map).get(LIVE_REPRESENTATION, [])
        for index in segment
    )
    if not held:
        return ChunkBitmap(0)
    return ChunkBitmap.from_indexes(held, held[-1] - held[0] + 1, held[0])


def _open_output(description: ContentDescription, output: Path | None) -> ChunkStore:
    """The store a download writes: ``OUTPUT.part`` (resumed if present), or a nameless file."""
    if output is None:
        return ChunkStore.create_anonymous(description)
    return ChunkStore.open_partial(description, output)


def _route_source_ip(tracker_url: str, any_family: bool) -> str:
    """The local address this host's packets to the tracker leave from (no packet is sent).

    A UDP socket "connected" to the tracker's address makes the kernel choose the route and
    the source address; ``getsockname`` tells it.  ``any_family`` for a peer bound to ``::``
    (which also serves IPv4), else IPv4 only.
    """
    url = URL(tracker_url)
    if not url.host:
        raise ValueError(f"no host in {tracker_url!r}")
    family = socket.AF_UNSPEC if any_family else socket.AF_INET
    infos = socket.getaddrinfo(url.host, url.port or 80, family, socket.SOCK_DGRAM)
    probe_family, _, _, _, address = infos[0]
    with socket.socket(probe_family, socket.SOCK_DGRAM) as probe:
        probe.connect(address)
        return str(probe.getsockname()[0])


def _tracker_source(local: str | None, tracker_url: str) -> str | None:
    """Where connections to the tracker leave from: the peer's own address, except a loopback
    address towards a tracker elsewhere (it could not get there)."""
    if local is None or not ipaddress.ip_address(local).is_loopback:
        return local
    host = URL(tracker_url).host or ""
    try:
        return local if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return local if host == "localhost" else None
