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

Behind NAT the socket is also a :class:`~ppsp.peer.net.ppspp_nat.StunSocket`: STUN's Binding
answers are taken by :attr:`LivePpsppEndpoint.intercept` before any routing, and the
punches of :class:`~ppsp.peer.net.ppspp_nat.PpsppPunch` leave by :meth:`~LivePpsppEndpoint.sendto`.
A peer reached over UDP only (:meth:`LivePpsppEndpoint.reach`) gets its channel's handshake at
each of its candidate addresses until one answers (:class:`~ppsp.peer.nat.punch.CandidatePaths`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from ppsp.codecs.ppspp import peek_channel
from ppsp.errors import ChunkTransferError, IntegrityError, PPSPPError
from ppsp.peer.nat.punch import CandidatePaths
from ppsp.peer.net.ppspp_uploads import PpsppUploads
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, LiveChunkRecord
from ppsp.peer.ppspp.live_receiver import LiveReceiver, LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LiveServer

if TYPE_CHECKING:
    from ppsp.peer.net.ppspp_relay import PpsppRelay

log = logging.getLogger(__name__)

__all__ = ["LivePpsppEndpoint", "live_offer_uri", "parse_live_offer"]

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


def live_offer_uri(address: Address, swarm_id: bytes) -> str:
    """The live PPSPP offer ``ppspp://HOST:PORT/SWARMID?chunk=8192`` of a peer at ``address``
    (the form :func:`parse_live_offer` reads; IPv6 in brackets)."""
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"ppspp://{host}:{address[1]}/{swarm_id.hex()}?chunk={LIVE_CHUNK_SIZE}"


@dataclass(slots=True, eq=False)
class _Channel:
    """A receiving channel and the fetches waiting on it.

    ``paths`` is set for a channel opened towards several candidate addresses
    (:meth:`LivePpsppEndpoint.reach`): its datagrams go to every candidate until one answers,
    which becomes ``address``."""

    receiver: LiveReceiver
    address: Address
    waiting: dict[int, list[asyncio.Future[LiveChunkRecord]]] = field(default_factory=dict)
    forged: int = 0
    paths: CandidatePaths | None = None
    answered: asyncio.Future[Address] | None = None

    @property
    def targets(self) -> tuple[Address, ...]:
        """Where the channel's datagrams go now."""
        return (self.address,) if self.paths is None else self.paths.targets


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
        self.uploads: PpsppUploads | None = None
        """The server's DATA counted in the session's report (closed with the socket)."""
        self.relays: list[PpsppRelay] = []
        """TURN relays each chunk served is also served through (``watch --turn``,
        ``live --turn``)."""
        self.intercept: Callable[[bytes, Address], bool] | None = None
        """Sees each datagram first and returns True for one it consumed (the STUN answers of
        :class:`~ppsp.peer.net.ppspp_nat.PpsppStun`), never routed to a channel."""

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        server: LiveServer,
        receiver_config: LiveReceiverConfig | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> LivePpsppEndpoint:
        """Bind ``host:port`` (0: any free port) and serve ``server`` on it; with ``sock``, a
        UDP socket bound already (whose reflexive address STUN told), on that socket."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            sock.setblocking(False)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: cls(server, receiver_config), sock=sock
            )
        else:
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
            record = self.server.append(index, data, self.clock())
        except ValueError as exc:
            log.warning("live chunk %d not served over PPSPP: %s", index, exc)
            return
        self._flush()
        for relay in self.relays:
            relay.add_record(record)

    def serve(self, index: int) -> None:
        """Serve live chunk ``index``, fetched and verified over PPSPP, to others too."""
        record = self._recent.pop(index, None)
        if record is not None:
            self.server.add(record, self.clock())
            self._flush()
            for relay in self.relays:
                relay.add_record(record)

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
            channel = self._open_channel(config, address, now)
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

    async def reach(self, candidates: list[Address], config: LiveReceiverConfig) -> Address:
        """Open a receiving channel to a peer reached over UDP only (behind NAT): its
        handshake goes to each of ``candidates`` (most preferred first; see
        :class:`~ppsp.peer.nat.punch.CandidatePaths`) at every handshake interval of
        ``config`` until one answers; returns that address, the channel's from then on
        (:meth:`fetch` uses it).  ChunkTransferError when none answered within the
        handshake timeout, or there is no usable candidate."""
        try:
            paths = CandidatePaths(candidates)
        except ValueError as exc:
            raise ChunkTransferError(str(exc)) from None
        for address in paths.candidates:
            channel = self._channels.get(address)
            if channel is not None and channel.receiver.closed is None and channel.paths is None:
                return address  # a channel to it is open already
        channel = self._open_channel(config, paths.candidates[0], self.clock(), paths=paths)
        assert channel.answered is not None
        self._flush()
        return await asyncio.shield(channel.answered)

    def peer_map(self, address: Address, window_chunks: int) -> list[int]:
        """The live chunks the channel to ``address`` was told the peer holds, within
        ``window_chunks`` of the newest it announced (none: no channel)."""
        channel = self._channels.get(address)
        if channel is None:
            return []
        newest = channel.receiver.peer_newest
        if newest is None:
            return []
        first = max(0, newest - window_chunks + 1)
        return [i for i in range(first, newest + 1) if channel.receiver.peer_has(i)]

    def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram from the socket (a STUN Binding, a punch); errors are dropped."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(OSError):
                transport.sendto(data, address)

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
        address = (addr[0], addr[1])
        if self.intercept is not None and self.intercept(data, address):
            return
        try:
            channel_id = peek_channel(data)
        except PPSPPError:
            return
        if self.server.owns(channel_id, address):
            self.server.datagram_received(data, address, now)
        else:
            channel = self._channels.get(address)
            if channel is not None:
                channel.receiver.datagram_received(data, now)
                if channel.paths is not None and channel.receiver.answered:
                    self._chosen(channel, address)
                self._settle(channel)
        self._flush()

    def error_received(self, exc: Exception) -> None:
        """ICMP errors: the channel concerned times out."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer; fail what waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for channel in list(dict.fromkeys(self._channels.values())):
            self._fail(channel, ChunkTransferError("the PPSPP socket closed"))

    def close(self) -> None:
        """Close every channel (closing handshakes) and the socket."""
        now = self.clock()
        self.server.close_all(now)
        for channel in list(dict.fromkeys(self._channels.values())):
            channel.receiver.close(now)
        self._flush()
        if self._transport is not None:
            self._transport.close()
        if self.uploads is not None:
            self.uploads.close()  # before the report: what is unresolved is unattributed

    # --- inside ---------------------------------------------------------------------------

    def _open_channel(
        self,
        config: LiveReceiverConfig,
        address: Address,
        now: float,
        *,
        paths: CandidatePaths | None = None,
    ) -> _Channel:
        """A new receiving channel to ``address`` (or, with ``paths``, to every candidate:
        routed from each until one answered)."""
        newest = self.server.newest
        held = None if newest is None else self.server.get(newest)
        receiver = LiveReceiver(
            self.server.swarm_id,
            channel_id=secrets.randbits(32) or 1,
            config=config,
            now=now,
            tune_in=None if held is None else held.munro,
        )
        channel = _Channel(receiver, address, paths=paths)
        if paths is None:
            self._channels[address] = channel
        else:
            channel.answered = self._loop.create_future()
            # Read even when the caller gave up meanwhile (no "never retrieved" warning).
            channel.answered.add_done_callback(lambda f: f.cancelled() or f.exception())
            for candidate in paths.candidates:
                old = self._channels.get(candidate)
                if old is None or old.receiver.closed is not None:
                    self._channels[candidate] = channel
        return channel

    def _chosen(self, channel: _Channel, address: Address) -> None:
        """The peer answered a channel opened to several candidates, from ``address``: the
        channel is that address's alone from now on."""
        paths = channel.paths
        assert paths is not None
        if not paths.answered(address):
            return
        for candidate in paths.candidates:
            if self._channels.get(candidate) is channel:
                del self._channels[candidate]
        channel.paths = None
        channel.address = address
        self._channels[address] = channel
        if channel.answered is not None and not channel.answered.done():
            channel.answered.set_result(address)

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
            error = ChunkTransferError(f"PPSPP channel: {receiver.closed}")
            self._fail(channel, error)
            for address in channel.targets:
                if self._channels.get(address) is channel:
                    del self._channels[address]
            if channel.answered is not None and not channel.answered.done():
                channel.answered.set_exception(error)

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
        for channel in list(dict.fromkeys(self._channels.values())):
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
        channels = list(dict.fromkeys(self._channels.values()))
        for channel in channels:
            for data in channel.receiver.datagrams_to_send():
                for address in channel.targets:  # every candidate until one answered
                    with contextlib.suppress(OSError):
                        transport.sendto(data, address)
        deadlines = [self.server.next_deadline()]
        deadlines += [c.receiver.next_deadline() for c in channels]
        deadline = min((d for d in deadlines if d is not None), default=None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = self._loop.call_later(delay, self._on_timer)
