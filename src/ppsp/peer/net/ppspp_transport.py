"""PPSPP (RFC 7574 over UDP) as a chunk transport of swarm sessions, both ways.

A representation of a swarm's content description *is* an RFC 7574 content: its chunk hashes
are SHA-256 hashes of its chunks, its ``merkle_root`` the RFC 7574 root over them (section
5.1), so the root names it as a PPSPP swarm (errata 4724) and verifies every chunk.

* Serving: :func:`representation_content` turns a session's store into a
  :class:`~ppsp.peer.ppspp.SeededContent` (SHA-256, the description's chunk size, chunks read
  from the store); the peer's PPSPP socket (:mod:`ppsp.peer.net.ppspp_udp`) serves it beside
  the libswift-compatible content, and TRANSPORT_NEGOTIATION offers ``PPSPP`` with
  ``ppspp://HOST:PORT`` (:func:`ppspp_uri`).
* Fetching: :class:`PpsppChunkTransport` keeps one channel (one connected UDP socket and a
  sans-I/O :class:`~ppsp.peer.ppspp.client.ChannelClient`) per remote peer for the session;
  each fetch asks the channel for one chunk, waits for it verified up to the root, and writes
  it to the store.

RFC 7574 carries one chunk per datagram (section 8.1: there is no DATA in pieces), so only
representations whose chunks fit one UDP datagram can travel this way (:func:`fits_datagram`:
32 KiB chunks do, the default 256 KiB ones do not); PPSPP is not offered for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import cast
from urllib.parse import urlsplit

from ppsp.errors import ChunkTransferError, ChunkUnavailable, IntegrityError, PPSPError
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.session import RemotePeer
from ppsp.peer.net.transport import PPSPP, ChunkNotWanted, ChunkTransport, TransferObserver
from ppsp.peer.ppspp import SeededContent
from ppsp.peer.ppspp.client import ChannelClient, ChunkRejected, ChunkResult, ClientConfig
from ppsp.peer.protocol.addressing import format_host
from ppsp.wire.ppspp import CHANNEL_ID_BYTES, MAX_DATAGRAM_BYTES, MerkleHashFunction

__all__ = [
    "DATA_OVERHEAD",
    "PpsppChunkTransport",
    "StoreChunks",
    "fits_datagram",
    "parse_ppspp_uri",
    "ppspp_uri",
    "representation_content",
]

DATA_OVERHEAD = CHANNEL_ID_BYTES + 1 + 2 * 8 + 8
"""Bytes a datagram of one DATA adds to its chunk: channel ID, type, a 64-bit range (the
widest chunk addressing a seeder speaks), timestamp."""

RECEIVE_BUFFER_BYTES = 4 << 20
"""The channel socket's receive buffer asked for (a seeder's bursts outrun a small one)."""


def fits_datagram(chunk_size: int) -> bool:
    """Whether a chunk of ``chunk_size`` bytes travels in one UDP datagram as a DATA."""
    return chunk_size + DATA_OVERHEAD <= MAX_DATAGRAM_BYTES


def ppspp_uri(host: str, port: int) -> str:
    """The URI a PPSPP offer carries: ``ppspp://HOST:PORT`` (an IPv6 host in brackets)."""
    return f"ppspp://{format_host(host)}:{port}"


def parse_ppspp_uri(uri: str) -> tuple[str, int]:
    """``(host, port)`` of a ``ppspp://HOST:PORT`` offer; ValueError for anything else."""
    parts = urlsplit(uri)
    port = parts.port  # ValueError for a port that is no number or out of range
    if parts.scheme.lower() != "ppspp" or not parts.hostname or not port:
        raise ValueError(f"{uri!r} is not ppspp://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{uri!r} is not ppspp://HOST:PORT")
    return parts.hostname, port


class StoreChunks:
    """A :class:`~ppsp.peer.ppspp.ChunkReader` over a session's chunk store.

    ``corrupt`` damages every chunk read (``--corrupt-uploads``, for tests of the receivers).
    A chunk the store cannot give (a seeded file changed on disk) reads as ValueError, which
    closes the seeder's channel.
    """

    def __init__(self, store: ChunkStore, *, corrupt: bool = False) -> None:
        self.store = store
        self.corrupt = corrupt

    def read_chunk(self, index: int, size: int) -> bytes:
        """The bytes of chunk ``index`` from the store."""
        try:
            data = self.store.read(index)
        except PPSPError as exc:
            raise ValueError(str(exc)) from exc
        if self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data


def representation_content(store: ChunkStore, *, corrupt: bool = False) -> SeededContent:
    """The store's representation as an RFC 7574 content: SHA-256 chunk hashes, the
    description's chunk size, root = its ``merkle_root`` (ValueError when its chunks do not
    fit a datagram)."""
    description, representation = store.description, store.representation
    if not fits_datagram(description.chunk_size):
        raise ValueError(f"chunks of {description.chunk_size} bytes do not fit a UDP datagram")
    content = SeededContent(
        size=representation.size,
        leaf_hashes=representation.chunk_hashes,
        reader=StoreChunks(store, corrupt=corrupt),
        chunk_size=description.chunk_size,
        merkle_hash=MerkleHashFunction.SHA256,
    )
    assert content.swarm_id == representation.merkle_root
    return content


class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to a peer, running a :class:`ChannelClient`; the futures of
    the chunks fetched over it."""

    def __init__(self, client: ChannelClient, name: str) -> None:
        self.client = client
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: dict[int, asyncio.Future[ChunkResult]] = {}
        client.timestamp_offset = time.time() - self._loop.time()

    @property
    def closed(self) -> bool:
        """Whether the channel is closed (a new one is needed)."""
        return self.client.closed

    def want(self, index: int) -> asyncio.Future[ChunkResult]:
        """Ask for chunk ``index``; the future gets what became of it."""
        future = self._waiters.get(index)
        if future is None or future.done():
            future = self._loop.create_future()
            self._waiters[index] = future
            self.client.request(index, self._loop.time())
            self._flush()  # a closed channel fails the future here
        return future

    def forget(self, index: int) -> None:
        """The fetch of ``index`` was cancelled: cancel the request."""
        self._waiters.pop(index, None)
        self.client.cancel(index, self._loop.time())
        self._flush()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport, widen the receive buffer, send the handshake."""
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self._flush()

    def datagram_received(self, data: bytes, addr: object) -> None:
        """Hand a datagram to the client, then settle, send and re-arm."""
        self.client.datagram_received(data, self._loop.time())
        self._flush()

    def error_received(self, exc: Exception) -> None:
        """An ICMP error (nobody on the port): the channel is closed at once."""
        reason = getattr(exc, "strerror", None) or exc
        self.client.close(self._loop.time(), f"unreachable: {reason}")
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer; fail what still waits."""
        self._cancel_timer()
        self._fail_waiters()

    def close(self) -> None:
        """Close the channel (telling the peer) and the socket."""
        self.client.close(self._loop.time())
        self._flush()
        if self._transport is not None:
            self._transport.close()
        self._cancel_timer()

    def _on_timer(self) -> None:
        self._timer = None
        self.client.handle_timer(self._loop.time())
        self._flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        client = self.client
        transport = self._transport
        if transport is not None and not transport.is_closing():
            for data in client.datagrams_to_send():
                transport.sendto(data)
        for result in client.take_results():
            future = self._waiters.pop(result.index, None)
            if future is not None and not future.done():
                future.set_result(result)
        if client.closed:
            self._cancel_timer()
            self._fail_waiters()
            return
        deadline = client.next_deadline()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
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
    """Chunks of one session's store over PPSPP: a channel per remote peer, kept open.

    ``store_pool`` writes verified chunks (the store checks them once more, SHA-256, as it
    writes); ``local_address`` is where the sockets are bound (the peer's own address, so that
    the remote sees the host it listed); ``stopping`` says when the peer is stopping.
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
    ) -> None:
        self.store = store
        self.store_pool = store_pool
        self.local_address = local_address
        self.stopping = stopping
        self.config = config or ClientConfig()
        self._channels: dict[str, asyncio.Task[_Channel]] = {}
        self.chunks_received = 0
        """Chunks fetched and written over PPSPP (for the session's report)."""

    async def fetch(self, remote: RemotePeer, index: int, observer: TransferObserver) -> int:
        """Fetch chunk ``index`` from ``remote`` over its channel, verified up to the root."""
        channel = await self._channel(remote)
        future = channel.want(index)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            channel.forget(index)
            raise
        if isinstance(result, ChunkRejected):
            raise IntegrityError(f"{remote.peer_id}: {result.reason}")
        data = result.data
        observer.received(len(data))
        if not observer.delivered(len(data)):
            raise ChunkNotWanted(f"chunk {index} is held already")
        if self.stopping():
            raise ChunkUnavailable(f"chunk {index}: the peer is stopping")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.store_pool, self.store.write, index, data)
        self.chunks_received += 1
        return len(data)

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
            host, port = parse_ppspp_uri(offer.uri)
        except ValueError as exc:
            raise ChunkTransferError(f"{remote.peer_id}: {exc}") from None
        description = self.store.description
        client = ChannelClient(
            self.store.representation.merkle_root,
            size=self.store.representation.size,
            chunk_size=description.chunk_size,
            now=asyncio.get_running_loop().time(),
            config=self.config,
        )
        loop = asyncio.get_running_loop()
        local = (self.local_address, 0) if self.local_address is not None else None
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Channel(client, f"{remote.peer_id} at {offer.uri}"),
            local_addr=local,
            remote_addr=(host, port),
        )
        return protocol

    def close(self) -> None:
        """Close every channel (each peer is told) and its socket."""
        channels, self._channels = self._channels, {}
        for task in channels.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                task.result().close()


def _usable(task: asyncio.Task[_Channel]) -> bool:
    """Whether a finished channel-opening task gave a channel still open."""
    return not task.cancelled() and task.exception() is None and not task.result().closed
