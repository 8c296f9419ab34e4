"""Live streams over RFC 7574 (PPSPP, UDP): one socket for serving and receiving.

The sans-I/O engines decide (:mod:`ppsp.peer.ppspp.live_server`,
:mod:`ppsp.peer.ppspp.live_receiver`); this module moves their datagrams on one UDP socket and
keeps one timer.  :class:`LivePpsppEndpoint` serves the live chunks it holds (the source's,
signed as they are cut, or a viewer's, verified by its own channels) and fetches live chunks
for the viewer's policy, one channel per remote peer: a datagram on channel 0, or on one of
the server's channels from that channel's address, is the server's; anything else goes to the
receiving channel of its address and channel ID.  Times are Unix times (``time.time()``), as
everywhere in live: the munros' NTP timestamps are compared with them.

The offer a live peer makes in TRANSPORT_NEGOTIATION is ``ppspp://HOST:PORT/SWARMID?chunk=8192``
with the stream's PPSPP swarm ID (the source's key as a DNSKEY, 66 hex digits): the node's
ordinary PPSPP offer (:meth:`~ppsp.peer.net.node.PeerNode.offer_ppspp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from ppsp.codecs.ppspp import peek_channel
from ppsp.errors import ChunkTransferError, IntegrityError, PPSPPError
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, LiveChunkRecord
from ppsp.peer.ppspp.live_receiver import LiveReceiver, LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LiveServer

log = logging.getLogger(__name__)

__all__ = ["LivePpsppEndpoint", "parse_live_offer"]

MAX_RECENT = 256
"""Verified live chunks kept for :meth:`LivePpsppEndpoint.serve` (those not yet re-served)."""


def parse_live_offer(uri: str, swarm_id: bytes) -> tuple[str, int]:
    """The UDP address of a live PPSPP offer ``ppspp://HOST:PORT/SWARMID?chunk=8192``;
    ValueError unless it names ``swarm_id`` and the live chunk size."""
    parts = urlsplit(uri)
    port = parts.port
    if parts.scheme.lower() != "ppspp" or not parts.hostname or not port:
        raise ValueError(f"{uri!r} is not a ppspp:// offer")
    if parts.path[1:].lower() != swarm_id.hex() or parts.query != f"chunk={LIVE_CHUNK_SIZE}":
        raise ValueError(f"{uri!r} does not offer this live stream")
    return parts.hostname, port


@dataclass(slots=True, eq=False)
class _Channel:
    """A receiving channel and the fetches waiting on it."""

    receiver: LiveReceiver
    address: Address
    waiting: dict[int, list[asyncio.Future[LiveChunkRecord]]] = field(default_factory=dict)
    forged: int = 0


class LivePpsppEndpoint(asyncio.DatagramProtocol):
    """One UDP socket serving a live stream and fetching its chunks (see the module)."""

    def __init__(
        self,
        server: LiveServer,
        receiver_config: LiveReceiverConfig | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.receiver_config = receiver_config
        self.clock = clock
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._channels: dict[Address, _Channel] = {}
        self._recent: dict[int, LiveChunkRecord] = {}
        self.forged = 0
        """Forged signatures and chunks off their munro refused, over all channels."""
        self.on_upload: Callable[[int], None] | None = None
        """Told of the chunk bytes the server sent, after each batch (the session's count)."""
        self._uploaded = 0

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        server: LiveServer,
        receiver_config: LiveReceiverConfig | None = None,
    ) -> LivePpsppEndpoint:
        """Bind ``host:port`` (0: any free port) and serve ``server`` on it."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(server, receiver_config), local_addr=(host, port)
        )
        return protocol

    @property
    def address(self) -> tuple[str, int]:
        """The socket's local address."""
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    # --- serving --------------------------------------------------------------------------

    def append(self, index: int, data: bytes) -> None:
        """(The source) sign and serve live chunk ``index``: its envelope's bytes (one too
        large for a munro, over 4 MiB, is served over HTTP only)."""
        try:
            self.server.append(index, data, self.clock())
        except ValueError as exc:
            log.warning("live chunk %d not served over PPSPP: %s", index, exc)
            return
        self._flush()

    def serve(self, index: int) -> None:
        """Serve live chunk ``index``, fetched and verified over PPSPP, to others too."""
        record = self._recent.pop(index, None)
        if record is not None:
            self.server.add(record, self.clock())
            self._flush()

    # --- fetching -------------------------------------------------------------------------

    async def fetch(self, address: Address, index: int) -> bytes:
        """Live chunk ``index`` from the peer at ``address``, verified against its signed
        munro.  Raises IntegrityError when the peer sent forged bytes meanwhile,
        ChunkTransferError when its channel closed or cannot open; cancel it to give up."""
        config = self.receiver_config
        if config is None:
            raise ChunkTransferError("this endpoint only serves")
        channel = self._channels.get(address)
        now = self.clock()
        if channel is None or channel.receiver.closed is not None:
            channel_id = secrets.randbits(32) or 1
            newest = self.server.newest
            held = None if newest is None else self.server.get(newest)
            receiver = LiveReceiver(
                self.server.swarm_id,
                channel_id=channel_id,
                config=config,
                now=now,
                tune_in=None if held is None else held.munro,
            )
            channel = self._channels[address] = _Channel(receiver, address)
        future: asyncio.Future[LiveChunkRecord] = self._loop.create_future()
        channel.waiting.setdefault(index, []).append(future)
        channel.receiver.request(index, now)
        self._flush()
        try:
            record = await future
        finally:
            waiters = channel.waiting.get(index)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del channel.waiting[index]
                    channel.receiver.cancel(index, self.clock())
                    self._flush()
        return record.data

    def peer_has(self, address: Address, index: int) -> bool | None:
        """What the channel to ``address`` was told of live chunk ``index`` (None: no
        channel)."""
        channel = self._channels.get(address)
        return None if channel is None else channel.receiver.peer_has(index)

    # --- the socket -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Route a datagram to the server or to the receiving channel of its address."""
        now = self.clock()
        try:
            channel_id = peek_channel(data)
        except PPSPPError:
            return
        address = (addr[0], addr[1])
        if self.server.owns(channel_id, address):
            self.server.datagram_received(data, address, now)
        else:
            channel = self._channels.get(address)
            if channel is not None:
                channel.receiver.datagram_received(data, now)
                self._settle(channel)
        self._flush()

    def error_received(self, exc: Exception) -> None:
        """ICMP errors: the channel concerned times out."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer; fail what waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for channel in self._channels.values():
            self._fail(channel, ChunkTransferError("the PPSPP socket closed"))

    def close(self) -> None:
        """Close every channel (closing handshakes) and the socket."""
        now = self.clock()
        self.server.close_all(now)
        for channel in self._channels.values():
            channel.receiver.close(now)
        self._flush()
        if self._transport is not None:
            self._transport.close()

    # --- inside ---------------------------------------------------------------------------

    def _settle(self, channel: _Channel) -> None:
        """Hand verified chunks to their fetches; fail them when the peer forged or left."""
        receiver = channel.receiver
        for record in receiver.take_completed():
            self._recent[record.index] = record
            while len(self._recent) > MAX_RECENT:
                del self._recent[next(iter(self._recent))]
            for future in channel.waiting.pop(record.index, []):
                if not future.done():
                    future.set_result(record)
        if receiver.forged > channel.forged:
            self.forged += receiver.forged - channel.forged
            channel.forged = receiver.forged
            log.warning("forged live chunk data from %s:%s", *channel.address)
            self._fail(channel, IntegrityError("the peer sent a forged live chunk"))
        if receiver.closed is not None:
            self._fail(channel, ChunkTransferError(f"PPSPP channel: {receiver.closed}"))
            self._channels.pop(channel.address, None)

    def _fail(self, channel: _Channel, error: Exception) -> None:
        waiting, channel.waiting = channel.waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.clock()
        self.server.handle_timer(now)
        for channel in list(self._channels.values()):
            channel.receiver.handle_timer(now)
            self._settle(channel)
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for address, data in self.server.datagrams_to_send():
            with contextlib.suppress(OSError):
                transport.sendto(data, address)
        uploaded = self.server.stats["data_bytes"]
        if uploaded != self._uploaded and self.on_upload is not None:
            self.on_upload(uploaded - self._uploaded)
        self._uploaded = uploaded
        for channel in self._channels.values():
            for data in channel.receiver.datagrams_to_send():
                with contextlib.suppress(OSError):
                    transport.sendto(data, channel.address)
        deadlines = [self.server.next_deadline()]
        deadlines += [c.receiver.next_deadline() for c in self._channels.values()]
        deadline = min((d for d in deadlines if d is not None), default=None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = self._loop.call_later(delay, self._on_timer)
