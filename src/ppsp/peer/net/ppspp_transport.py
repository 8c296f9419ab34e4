"""PPSPP (RFC 7574 over UDP) as a chunk transport of swarm sessions, both ways.

RFC 7574 carries one chunk per DATA and one DATA per datagram (section 8.1), and a content
description's chunks (256 KiB by default) do not fit a datagram.  So a seeder serves each
representation over PPSPP as an RFC 7574 content of its own: the representation's bytes cut in
small PPSPP chunks (:data:`PPSPP_CHUNK_SIZE`, or the description's chunk size when that is
smaller), SHA-256, its own Merkle root computed when seeding.  The offer in
TRANSPORT_NEGOTIATION names it: ``ppspp://HOST:PORT/ROOTHASH?chunk=SIZE`` (:func:`ppspp_uri`).
Swarm IDs and descriptions do not change.

* Serving: :func:`representation_content` turns a seeded store into a
  :class:`~ppsp.peer.ppspp.SeededContent` (one pass over the file to hash its PPSPP chunks,
  read from the store's file at explicit offsets); the peer's PPSPP socket
  (:mod:`ppsp.peer.net.ppspp_udp`) serves it beside the libswift-compatible content.
* Fetching: :class:`PpsppChunkTransport` keeps one channel (a sans-I/O
  :class:`~ppsp.peer.ppspp.client.ChannelClient`) per remote peer for the session, on the
  content the peer's offer names, all of them over one unconnected UDP socket
  (:class:`PpsppClientSocket`: one NAT mapping, datagrams routed by remote address and
  channel ID).  A fetch of description chunk ``i`` requests the
  PPSPP chunks covering its bytes (:func:`covering_chunks`), each verified up to the offered
  root, assembles the chunk from them (:func:`chunk_pieces`) and writes it to the store, which
  checks it against the description's SHA-256 chunk hash: a PPSPP content consistent with its
  own root but not with the description is caught there (IntegrityError, the peer is banned).
* Reaching a peer over UDP only (:meth:`PpsppChunkTransport.connect_direct`): once a chunk
  fetched over PPSPP verified both up to its offer's root and against the description, that
  root (a function of the representation's bytes) names the content to any peer: a channel on
  it goes to a listed peer's PPSPP candidate addresses together (hole punching,
  :class:`~ppsp.peer.nat.punch.CandidatePaths`) without an offer over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ppsp.errors import (
    ChunkTransferError,
    ChunkUnavailable,
    IntegrityError,
    PeerBusy,
    PPSPError,
)
from ppsp.peer.content.merkle import chunk_hash
from ppsp.peer.nat.punch import CandidatePaths
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.ppspp_socket import PpsppClientSocket
from ppsp.peer.net.session import RemotePeer
from ppsp.peer.net.transport import PPSPP, ChunkNotWanted, ChunkTransport, TransferObserver
from ppsp.peer.ppspp import SeededContent
from ppsp.peer.ppspp.client import (
    ChannelClient,
    ChunkChoked,
    ChunkRejected,
    ChunkResult,
    ClientConfig,
)
from ppsp.peer.ppspp.pex import PexCandidates
from ppsp.peer.protocol.addressing import format_host
from ppsp.wire.ppspp import CHANNEL_ID_BYTES, MAX_DATAGRAM_BYTES, MerkleHashFunction

__all__ = [
    "DATA_OVERHEAD",
    "MAX_PIECES",
    "PPSPP_CHUNK_SIZE",
    "PUNCH_CONNECT_TIMEOUT",
    "ROOT_WAIT",
    "PpsppChunkTransport",
    "PpsppClientSocket",
    "PpsppOffer",
    "StoreChunks",
    "chunk_pieces",
    "covering_chunks",
    "fits_datagram",
    "parse_ppspp_uri",
    "ppspp_chunk_size",
    "ppspp_uri",
    "representation_content",
]

DATA_OVERHEAD = CHANNEL_ID_BYTES + 1 + 2 * 8 + 8
"""Bytes a datagram of one DATA adds to its chunk: channel ID, type, a 64-bit range (the
widest chunk addressing a seeder speaks), timestamp."""

PPSPP_CHUNK_SIZE = 8192
"""The PPSPP chunk size a seeder serves representations with (chosen by measurement, see
docs/BENCHMARKS.md): one chunk per datagram, unfragmented on loopback."""

MAX_PIECES = 256
"""At most this many PPSPP chunks per description chunk: a client refuses an offer whose
chunk size would need more (1 KiB PPSPP chunks for 256 KiB description chunks)."""

PUNCH_CONNECT_TIMEOUT = 10.0
"""Seconds a channel to a peer reached over UDP only sends its handshake to the peer's
candidates (every handshake interval) before giving up: the peer behind NAT learns of us from
the tracker every few seconds and punches towards us from then on."""

ROOT_WAIT = 10.0
"""Seconds a channel to a peer reached over UDP only waits for the session's first verified
PPSPP root (from a peer whose offer came over HTTP) before giving up."""

_QUERY = re.compile(r"chunk=([1-9][0-9]{0,5})")


def fits_datagram(chunk_size: int) -> bool:
    """Whether a chunk of ``chunk_size`` bytes travels in one UDP datagram as a DATA."""
    return chunk_size + DATA_OVERHEAD <= MAX_DATAGRAM_BYTES


def ppspp_chunk_size(description_chunk_size: int) -> int:
    """The PPSPP chunk size a representation of ``description_chunk_size`` chunks is served
    with: :data:`PPSPP_CHUNK_SIZE`, or the description's when smaller (the PPSPP content is
    then the representation itself, its root the ``merkle_root``)."""
    return min(PPSPP_CHUNK_SIZE, description_chunk_size)


@dataclass(frozen=True, slots=True)
class PpsppOffer:
    """What a PPSPP offer names: the seeder's UDP address and the RFC 7574 content (SHA-256
    Merkle tree) it serves the representation as."""

    host: str
    port: int
    root_hash: bytes
    """The content's RFC 7574 root hash (its PPSPP swarm ID)."""
    chunk_size: int
    """The content's PPSPP chunk size in bytes."""


def ppspp_uri(host: str, port: int, root_hash: bytes, chunk_size: int) -> str:
    """The URI a PPSPP offer carries: ``ppspp://HOST:PORT/ROOTHASH?chunk=SIZE`` (an IPv6 host
    in brackets, the root hash in lowercase hex)."""
    return f"ppspp://{format_host(host)}:{port}/{root_hash.hex()}?chunk={chunk_size}"


def parse_ppspp_uri(uri: str) -> PpsppOffer:
    """The :class:`PpsppOffer` of a ``ppspp://HOST:PORT/ROOTHASH?chunk=SIZE`` URI (a SHA-256
    root, 64 hex digits; a chunk that fits a datagram); ValueError for anything else."""
    parts = urlsplit(uri)
    port = parts.port  # ValueError for a port that is no number or out of range
    problem = ValueError(f"{uri!r} is not ppspp://HOST:PORT/ROOTHASH?chunk=SIZE")
    if parts.scheme.lower() != "ppspp" or not parts.hostname or not port:
        raise problem
    if parts.fragment or parts.username or parts.password is not None:
        raise problem
    digest = MerkleHashFunction.SHA256.digest_size
    path = parts.path[1:]
    query = _QUERY.fullmatch(parts.query)
    if len(path) != 2 * digest or query is None:
        raise problem
    try:
        root_hash = bytes.fromhex(path)
    except ValueError:
        raise problem from None
    chunk_size = int(query.group(1))
    if not fits_datagram(chunk_size):
        raise problem
    return PpsppOffer(parts.hostname, port, root_hash, chunk_size)


def covering_chunks(offset: int, length: int, chunk_size: int) -> range:
    """The PPSPP chunks (of ``chunk_size`` bytes) holding bytes ``offset`` to
    ``offset + length - 1`` of the content (``length`` at least 1)."""
    return range(offset // chunk_size, (offset + length - 1) // chunk_size + 1)


def chunk_pieces(
    offset: int, length: int, chunk_size: int, chunks: Sequence[bytes]
) -> list[memoryview]:
    """The parts of ``chunks`` (the :func:`covering_chunks` of the same bytes, in order)
    that make up bytes ``offset`` to ``offset + length - 1``: the first and last cut."""
    first = offset // chunk_size
    end = offset + length
    pieces = []
    for number, data in enumerate(chunks, start=first):
        start = number * chunk_size
        low, high = max(offset, start) - start, min(end, start + len(data)) - start
        pieces.append(memoryview(data)[low:high])
    return pieces


class StoreChunks:
    """A :class:`~ppsp.peer.ppspp.ChunkReader` of PPSPP chunks over a seeded chunk store.

    PPSPP chunk ``j`` of ``chunk_size`` bytes is read from the store's file at its offset; the
    store first checks that each description chunk it overlaps is still as it was hashed (a
    seeded file changed on disk reads as ValueError, which closes the seeder's channel).
    ``corrupt`` damages every chunk read (``--corrupt-uploads``, for tests of the receivers).
    """

    def __init__(self, store: ChunkStore, chunk_size: int, *, corrupt: bool = False) -> None:
        self.store = store
        self.chunk_size = chunk_size
        self.corrupt = corrupt

    def read_chunk(self, index: int, size: int) -> bytes:
        """The ``size`` bytes of PPSPP chunk ``index`` from the store's file."""
        offset = index * self.chunk_size
        step = self.store.description.chunk_size
        try:
            for number in range(offset // step, (offset + size - 1) // step + 1):
                file, _, _ = self.store.sending(number)
            data = os.pread(file.fileno(), size, offset)
        except PPSPError as exc:
            raise ValueError(str(exc)) from exc
        if self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data


def representation_content(
    store: ChunkStore, *, chunk_size: int | None = None, corrupt: bool = False
) -> SeededContent:
    """The seeded store's representation as an RFC 7574 content: SHA-256, PPSPP chunks of
    ``chunk_size`` bytes (default :func:`ppspp_chunk_size`), read from the store's file.

    Hashes the file once (blocking: run it in a worker thread) unless the PPSPP chunks are the
    description's own, whose hashes it has; with ``corrupt`` the hashes are those of the
    damaged bytes, so the content is consistent with its root and differs from the
    description.  ValueError for a chunk size that does not fit a datagram, one so small that
    a description chunk would need more than :data:`MAX_PIECES` of them (clients refuse such
    an offer), or a file that changed on disk.
    """
    description, representation = store.description, store.representation
    size = chunk_size or ppspp_chunk_size(description.chunk_size)
    if not fits_datagram(size):
        raise ValueError(f"PPSPP chunks of {size} bytes do not fit a UDP datagram")
    if -(-description.chunk_size // size) > MAX_PIECES:
        raise ValueError(
            f"{description.chunk_size}-byte chunks would need more than {MAX_PIECES} PPSPP"
            f" chunks of {size} bytes each"
        )
    reader = StoreChunks(store, size, corrupt=corrupt)
    count = -(-representation.size // size)
    hash_name = MerkleHashFunction.SHA256.hashlib_name
    leaves: Sequence[bytes]
    if size == description.chunk_size and not corrupt:
        leaves = representation.chunk_hashes
    else:
        leaves = [
            chunk_hash(reader.read_chunk(j, min(size, representation.size - j * size)), hash_name)
            for j in range(count)
        ]
    content = SeededContent(
        size=representation.size,
        leaf_hashes=leaves,
        reader=reader,
        chunk_size=size,
        merkle_hash=MerkleHashFunction.SHA256,
    )
    # The description's own chunks: the content is the representation, its root the same.
    assert (
        corrupt
        or size != description.chunk_size
        or (content.swarm_id == representation.merkle_root)
    )
    return content


class _Channel:
    """A :class:`ChannelClient` to one peer over the transport's :class:`PpsppClientSocket`;
    the futures of the chunks fetched over it.

    With ``paths`` (a peer reached over UDP only), the channel's datagrams go to each of the
    peer's candidate addresses until the handshake's answer comes from one of them, which is
    the channel's :attr:`address` from then on.
    """

    def __init__(
        self,
        client: ChannelClient,
        name: str,
        endpoint: PpsppClientSocket,
        address: tuple[str, int],
        paths: CandidatePaths | None = None,
        pex: PexCandidates | None = None,
    ) -> None:
        self.client = client
        self.pex = pex
        self.name = name
        self.paths = paths
        self.address = address if paths is None else paths.candidates[0]
        self._loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bool] = self._loop.create_future()
        """True once the peer answered the handshake, False when the channel closed first."""
        self._endpoint: PpsppClientSocket | None = endpoint
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: dict[int, asyncio.Future[ChunkResult]] = {}
        self._interest: Counter[int] = Counter()  # chunk -> fetches waiting for it
        client.timestamp_offset = time.time() - self._loop.time()
        endpoint.attach(self)
        self.flush()  # the handshake

    @property
    def closed(self) -> bool:
        """Whether the channel is closed (a new one is needed)."""
        return self.client.closed

    @property
    def chunk_size(self) -> int:
        """The PPSPP chunk size of the channel's content."""
        return self.client.chunk_size

    @property
    def candidates(self) -> tuple[tuple[str, int], ...]:
        """Every address the peer may answer from (its candidates, or its one address)."""
        return (self.address,) if self.paths is None else self.paths.candidates

    @property
    def targets(self) -> tuple[tuple[str, int], ...]:
        """Where the channel's datagrams go now."""
        return (self.address,) if self.paths is None else self.paths.targets

    def heard(self, source: tuple[str, int]) -> None:
        """A datagram from ``source`` was taken by the client: the one that opened the
        channel makes ``source`` its address, and the other candidates are dropped."""
        paths, endpoint = self.paths, self._endpoint
        if paths is None or paths.chosen is not None or not self.client.answered:
            return
        if endpoint is not None:
            endpoint.detach(self)
        paths.answered(source)
        self.address = source
        if endpoint is not None:
            try:
                endpoint.attach(self)
            except ChunkTransferError:  # another channel has this address and ID: give up
                self.client.close(self._loop.time(), "channel ID in use")

    def want(self, indexes: Iterable[int]) -> list[asyncio.Future[ChunkResult]]:
        """Ask for PPSPP chunks ``indexes`` (one REQUEST for a run); a future for each gets
        what became of it.  Each call is balanced by a :meth:`release` of the same chunks."""
        futures = []
        new = []
        for index in indexes:
            self._interest[index] += 1
            future = self._waiters.get(index)
            if future is None or future.done():
                future = self._loop.create_future()
                self._waiters[index] = future
                new.append(index)
            futures.append(future)
        if new:
            self.client.request_many(new, self._loop.time())
            self.flush()  # a closed channel fails the futures here
        return futures

    def release(self, indexes: Iterable[int]) -> None:
        """A fetch no longer waits for ``indexes``: a chunk that no other fetch wants and has
        not come is cancelled (CANCEL)."""
        cancelled = []
        for index in indexes:
            left = self._interest[index] - 1
            if left > 0:
                self._interest[index] = left
                continue
            del self._interest[index]
            future = self._waiters.pop(index, None)
            if future is not None and not future.done():
                future.cancel()
                cancelled.append(index)
        now = self._loop.time()
        for index in cancelled:
            self.client.cancel(index, now)
        if cancelled:
            self.flush()

    def error(self, exc: OSError, address: tuple[str, int]) -> None:
        """A datagram to ``address`` could not be sent (no route, ...): the channel is closed,
        unless other candidates are still tried."""
        paths = self.paths
        if paths is not None and paths.chosen is None and len(paths.candidates) > 1:
            return  # e.g. a HOST address of another network: the others may answer
        reason = exc.strerror or exc
        self.client.close(self._loop.time(), f"unreachable: {reason}")
        self.flush()

    def close(self) -> None:
        """Close the channel (telling the peer)."""
        self.client.close(self._loop.time())
        self.flush()
        self._detach()

    def _detach(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.detach(self)
        self._cancel_timer()
        self._fail_waiters()

    def _on_timer(self) -> None:
        self._timer = None
        self.client.handle_timer(self._loop.time())
        self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def flush(self) -> None:
        """Send the client's datagrams, settle its results and re-arm its timer."""
        client = self.client
        pex = self.pex
        if pex is not None and client.answered:
            if pex.wanted:
                client.request_peers(self._loop.time())  # rate-limited by the client
            learned = client.take_candidates()
            if learned:
                pex.learned(self.address, learned)
        out = client.datagrams_to_send()
        endpoint = self._endpoint
        if endpoint is not None:
            targets = self.targets
            for data in out:
                for target in targets:
                    endpoint.sendto(data, target, self)
        for result in client.take_results():
            future = self._waiters.pop(result.index, None)
            if future is not None and not future.done():
                future.set_result(result)
        if client.closed:
            # Closed by us, by the peer or for silence: no more datagrams are routed to it.
            self._detach()
            if not self.opened.done():
                self.opened.set_result(False)
            return
        if client.answered and not self.opened.done():
            self.opened.set_result(True)
        deadline = client.next_deadline()
        # A timer due no later than the deadline is kept: early, it finds nothing due and
        # re-arms (the deadline moves later with nearly every datagram: re-arming each time
        # would cost a timer per batch).
        if self._timer is not None and (deadline is None or self._timer.when() > deadline):
            self._cancel_timer()
        if deadline is not None and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _fail_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        reason = f"{self.name}: {self.client.failure or 'channel closed'}"
        for future in waiters.values():
            if not future.done():
                error: Exception = (
                    TimeoutError(reason) if self.client.timed_out else ChunkTransferError(reason)
                )
                future.set_exception(error)


class PpsppChunkTransport(ChunkTransport):
    """Chunks of one session's store over PPSPP: a channel per remote peer, kept open, on the
    RFC 7574 content its offer names, all over one UDP socket (:class:`PpsppClientSocket`).

    ``store_pool`` writes verified chunks (the store checks them once more, SHA-256, as it
    writes); ``local_address`` is where the socket is bound (the peer's own address, so that
    the remote sees the host it listed); ``stopping`` says when the peer is stopping.
    ``endpoint`` is a socket to use (and leave open) for peers of its address family, e.g.
    one whose reflexive address STUN keeps (``ppsp get --stun``); otherwise the transport
    opens one per address family at its first channel and closes it with itself.
    """

    kind = PPSPP

    def __init__(
        self,
        *,
        store: ChunkStore,
        store_pool: Executor,
        local_address: str | None = None,
        stopping: Callable[[], bool] = lambda: False,
        config: ClientConfig | None = None,
        endpoint: PpsppClientSocket | None = None,
    ) -> None:
        self.store = store
        self.store_pool = store_pool
        self.local_address = local_address
        self.stopping = stopping
        self.config = config or ClientConfig()
        self._channels: dict[str, asyncio.Task[_Channel]] = {}
        self._shared = endpoint
        self._endpoints: dict[int, PpsppClientSocket] = {}  # the ones it opened, by family
        self.chunks_received = 0
        """Chunks fetched and written over PPSPP (for the session's report)."""
        self.verified: tuple[bytes, int] | None = None
        """The first root hash and chunk size (PPSPP) a chunk verified under, both up to the
        root and against the description: the content's name for peers reached over UDP
        only (:meth:`connect_direct`)."""
        self._verified = asyncio.Event()
        self.pex = PexCandidates(
            lambda: sum(_usable(t) for t in self._channels.values() if t.done())
        )
        """Addresses the channels learned by PEX (asked for while few channels are open):
        :attr:`PexCandidates.candidates`, each new one handed to ``pex.on_candidates`` (set
        by the node: :meth:`~ppsp.peer.net.node.PeerNode.learn_pex` makes it a candidate
        peer of the download, tried by :meth:`connect_direct`: nothing is believed of it
        before its handshake on the swarm's ID is answered)."""

    async def fetch(self, remote: RemotePeer, index: int, observer: TransferObserver) -> int:
        """Fetch description chunk ``index`` from ``remote``: the PPSPP chunks covering it,
        each verified up to the offered root, assembled and checked against the description's
        chunk hash as the store writes it."""
        channel = await self._channel(remote)
        store = self.store
        offset, length = store.description.chunk_range(index, store.representation.id)
        chunk_size = channel.chunk_size
        numbers = covering_chunks(offset, length, chunk_size)
        futures = channel.want(numbers)
        chunks: list[bytes] = []
        try:
            for number, future in zip(numbers, futures, strict=True):
                result = await asyncio.shield(future)
                if isinstance(result, ChunkRejected):
                    raise IntegrityError(f"{remote.peer_id}: {result.reason} (PPSPP)")
                if isinstance(result, ChunkChoked):  # asked again later, or elsewhere
                    raise PeerBusy(f"{remote.peer_id}: the peer choked the PPSPP channel")
                chunks.append(result.data)
                start = number * chunk_size
                observer.received(min(offset + length, start + chunk_size) - max(offset, start))
        finally:
            channel.release(numbers)
            for future in futures:  # failures of chunks no longer awaited are not reported
                if future.done() and not future.cancelled():
                    future.exception()
        if not observer.delivered(length):
            raise ChunkNotWanted(f"chunk {index} is held already")
        if self.stopping():
            raise ChunkUnavailable(f"chunk {index}: the peer is stopping")
        pieces = chunk_pieces(offset, length, chunk_size, chunks)
        loop = asyncio.get_running_loop()
        try:
            # The store checks the chunk against the description's hash before writing it.
            await loop.run_in_executor(self.store_pool, store.store_parts, index, pieces)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{remote.peer_id}: {exc} (PPSPP content verified against the peer's root,"
                " not the description's)"
            ) from None
        self.chunks_received += 1
        if self.verified is None:
            self.verified = (channel.client.root_hash, chunk_size)
            self._verified.set()
        return length

    async def connect_direct(
        self,
        remote: RemotePeer,
        candidates: Sequence[tuple[str, int]],
        *,
        root_wait: float = ROOT_WAIT,
    ) -> str:
        """Open a channel to ``remote`` at its PPSPP ``candidates`` (HOST, REFLEXIVE, ...;
        those of the first one's address family), without an offer over HTTP: on the content
        of :attr:`verified` (waited for up to ``root_wait`` seconds), its handshake sent to
        every candidate until one answers (hole punching: the peer punches towards us too).
        Returns the URI of the channel (``ppspp://`` the answering address, the root, the
        chunk size), to be the peer's offer; the channel is kept for its fetches.

        ChunkTransferError when no root is verified in time, no candidate is usable, or the
        peer refuses the root; TimeoutError when no candidate answers in
        :data:`PUNCH_CONNECT_TIMEOUT` seconds.
        """
        if self.verified is None:
            try:
                await asyncio.wait_for(self._verified.wait(), root_wait)
            except TimeoutError:
                raise ChunkTransferError(
                    f"{remote.peer_id}: no PPSPP root verified yet to ask it for"
                ) from None
        assert self.verified is not None
        root_hash, chunk_size = self.verified
        v6 = bool(candidates) and ":" in candidates[0][0]
        try:
            paths = CandidatePaths(a for a in candidates if (":" in a[0]) == v6)
        except ValueError:
            raise ChunkTransferError(f"{remote.peer_id}: no usable PPSPP address") from None
        task = self._channels.get(remote.peer_id)
        if task is not None and not task.done():
            task.cancel()
        elif task is not None and _usable(task):
            task.result().close()  # connected again: the new channel replaces it
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._open_direct(remote, paths, root_hash, chunk_size))
        self._channels[remote.peer_id] = task
        channel = await asyncio.shield(task)
        host, port = channel.address
        return ppspp_uri(host, port, root_hash, chunk_size)

    async def _open_direct(
        self, remote: RemotePeer, paths: CandidatePaths, root_hash: bytes, chunk_size: int
    ) -> _Channel:
        loop = asyncio.get_running_loop()
        config = replace(
            self.config, connect_timeout=max(self.config.connect_timeout, PUNCH_CONNECT_TIMEOUT)
        )
        client = ChannelClient(
            root_hash,
            size=self.store.representation.size,
            chunk_size=chunk_size,
            now=loop.time(),
            config=config,
        )
        family = socket.AF_INET6 if ":" in paths.candidates[0][0] else socket.AF_INET
        shown = ", ".join(f"{format_host(h)}:{p}" for h, p in paths.candidates)
        name = f"{remote.peer_id} at udp {shown}"
        endpoint = self.endpoint(family)
        channel = _Channel(client, name, endpoint, paths.candidates[0], paths, self.pex)
        try:
            if not await asyncio.shield(channel.opened):
                error = TimeoutError if client.timed_out else ChunkTransferError
                raise error(f"{name}: {client.failure or 'channel closed'}")
        except asyncio.CancelledError:
            channel.close()
            raise
        return channel

    async def _channel(self, remote: RemotePeer) -> _Channel:
        """The open channel to ``remote``, opened (again) when there is none."""
        task = self._channels.get(remote.peer_id)
        if task is not None and task.done() and not _usable(task):
            task = None
        if task is None:
            task = asyncio.ensure_future(self._open(remote))
            self._channels[remote.peer_id] = task
        return await asyncio.shield(task)

    async def _open(self, remote: RemotePeer) -> _Channel:
        offer = remote.offer
        if offer is None or offer.uri is None:
            raise ChunkTransferError(f"{remote.peer_id} offers no PPSPP address")
        try:
            target = parse_ppspp_uri(offer.uri)
        except ValueError as exc:
            raise ChunkTransferError(f"{remote.peer_id}: {exc}") from None
        description = self.store.description
        if -(-description.chunk_size // target.chunk_size) > MAX_PIECES:
            raise ChunkTransferError(
                f"{remote.peer_id}: PPSPP chunks of {target.chunk_size} bytes are too small"
                f" for {description.chunk_size}-byte chunks"
            )
        loop = asyncio.get_running_loop()
        client = ChannelClient(
            target.root_hash,
            size=self.store.representation.size,
            chunk_size=target.chunk_size,
            now=loop.time(),
            config=self.config,
        )
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        endpoint = self.endpoint(family)
        remote_address = (str(address[0]), int(address[1]))
        name = f"{remote.peer_id} at {offer.uri}"
        return _Channel(client, name, endpoint, remote_address, pex=self.pex)

    def channel_client(self, peer_id: str) -> ChannelClient | None:
        """The client of the open channel to ``peer_id`` (its HAVEs say what the peer
        holds), or None when there is none."""
        task = self._channels.get(peer_id)
        if task is None or not task.done() or not _usable(task):
            return None
        return task.result().client

    def local_addresses(self) -> set[tuple[str, int]]:
        """The addresses of the sockets the channels use (never a peer to connect to)."""
        sockets = [*self._endpoints.values(), self._shared]
        return {s.address for s in sockets if s is not None and not s.closed}

    def endpoint(self, family: int) -> PpsppClientSocket:
        """The socket the channels to peers of address ``family`` use (opened when none)."""
        shared = self._shared
        if shared is not None and shared.family == family and not shared.closed:
            return shared
        endpoint = self._endpoints.get(family)
        if endpoint is None or endpoint.closed:
            local = self.local_address
            if local is not None and (":" in local) != (family == socket.AF_INET6):
                local = None  # the peer's own host is of the other family
            endpoint = PpsppClientSocket(local, family)
            self._endpoints[family] = endpoint
        return endpoint

    def close(self) -> None:
        """Close every channel (each peer is told) and the sockets the transport opened."""
        channels, self._channels = self._channels, {}
        for task in channels.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                task.result().close()
        endpoints, self._endpoints = self._endpoints, {}
        for endpoint in endpoints.values():
            endpoint.close()


def _usable(task: asyncio.Task[_Channel]) -> bool:
    """Whether a finished channel-opening task gave a channel still open."""
    return not task.cancelled() and task.exception() is None and not task.result().closed
