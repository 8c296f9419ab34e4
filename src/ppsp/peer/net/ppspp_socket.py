"""The one UDP socket of a downloading peer's PPSPP channels (I/O layer).

Every channel of a :class:`~ppsp.peer.net.ppspp_transport.PpsppChunkTransport` sends from and
receives on it, so that the peer has one mapping at a NAT; the datagrams are routed to their
channel by remote address and channel ID.  Split from :mod:`.ppspp_transport`, whose channels
it routes to (:class:`RoutedChannel` is what it needs of one).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ppsp.errors import ChunkTransferError
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.client import ChannelClient
from ppsp.wire.ppspp import CHANNEL_ID_BYTES, MAX_DATAGRAM_BYTES

__all__ = ["RECEIVE_BATCH", "RECEIVE_BUFFER_BYTES", "PpsppClientSocket", "RoutedChannel"]

RECEIVE_BUFFER_BYTES = 4 << 20
"""The transport socket's receive buffer asked for (a seeder's bursts outrun a small one)."""

RECEIVE_BATCH = 64
"""At most this many datagrams read from the transport's socket per wakeup (then other tasks of
the event loop get their turn)."""


class RoutedChannel(Protocol):
    """What the socket needs of a channel it routes datagrams to."""

    name: str
    client: ChannelClient

    @property
    def candidates(self) -> tuple[tuple[str, int], ...]:
        """Every address the channel was tried at."""
        ...

    @property
    def targets(self) -> tuple[tuple[str, int], ...]:
        """The addresses its datagrams go to now."""
        ...

    def heard(self, source: tuple[str, int]) -> None:
        """A datagram of the channel's came from ``source``."""

    def flush(self) -> None:
        """Send what the channel's client has to send."""

    def error(self, exc: OSError, address: tuple[str, int]) -> None:
        """Sending to ``address`` failed with ``exc``."""


Route = tuple[tuple[str, int], int]
"""What a received datagram is routed by: the remote address (host, port) and the channel
ID it is sent to (the first four bytes, the local channel's ID)."""


class PpsppClientSocket:
    """The one unconnected UDP socket every channel of a :class:`PpsppChunkTransport` sends
    from and receives on, so that a downloading peer has one mapping at a NAT (and one
    reflexive address, learnt with STUN on this socket: :mod:`ppsp.peer.net.ppspp_nat`).

    The socket is read directly (``loop.add_reader``), up to :data:`RECEIVE_BATCH` datagrams
    per wakeup; each goes to the channel of its remote address and channel ID (anything else
    is dropped and counted), and each channel that got some then sends and settles once:
    asyncio's datagram transport reads one datagram per turn of the event loop, which costs a
    turn (a ``poll`` and its callbacks) per PPSPP chunk.  :attr:`intercept` sees each
    datagram first (STUN answers).  ``local_address`` is the host bound (any when None) with
    ``family``.
    """

    def __init__(self, local_address: str | None = None, family: int | None = None) -> None:
        if family is None:
            family = socket.AF_INET6 if local_address and ":" in local_address else socket.AF_INET
        self.family = family
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((local_address or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        name = sock.getsockname()
        self.address: tuple[str, int] = (str(name[0]), int(name[1]))
        """The socket's local address."""
        self._channels: dict[Route, RoutedChannel] = {}
        # What the socket could not take at once: (datagram, address, channel or None).
        self._unsent: deque[tuple[bytes, Address, RoutedChannel | None]] = deque()
        self.intercept: Callable[[bytes, Address], bool] | None = None
        """Sees each datagram first and returns True for one it consumed (the STUN answers of
        :mod:`ppsp.peer.net.ppspp_nat`), never handed to a channel."""
        self.unrouted = 0
        """Datagrams dropped: no channel of theirs (a stranger, a closed channel, garbage)."""
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def closed(self) -> bool:
        """Whether the socket is closed."""
        return self._sock is None

    def attach(self, channel: RoutedChannel) -> None:
        """Route the datagrams to ``channel`` (from each of its remote addresses, to its local
        channel ID); ChunkTransferError when another open channel has both."""
        keys = [(address, channel.client.local_id) for address in channel.targets]
        if any(self._channels.get(key, channel) is not channel for key in keys):
            raise ChunkTransferError(f"{channel.name}: channel ID in use, try again")
        for key in keys:
            self._channels[key] = channel

    def detach(self, channel: RoutedChannel) -> None:
        """Stop routing datagrams to ``channel`` (from any of its candidate addresses)."""
        for address in channel.candidates:
            key = (address, channel.client.local_id)
            if self._channels.get(key) is channel:
                del self._channels[key]

    def sendto(self, data: bytes, address: Address, channel: RoutedChannel | None = None) -> None:
        """Send ``data`` to ``address`` after what waits; a failure closes ``channel`` (ICMP
        errors do not reach an unconnected socket: an absent peer shows as a timeout)."""
        if self._sock is None:
            return
        self._unsent.append((data, address, channel))
        if len(self._unsent) == 1:
            self._send_unsent()

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        touched: dict[RoutedChannel, None] = {}
        now = self._loop.time()
        for _ in range(RECEIVE_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an error queued on the socket (not a datagram): read on next time
            source = (str(addr[0]), int(addr[1]))
            if self.intercept is not None and self.intercept(data, source):
                continue
            channel = self._channels.get((source, int.from_bytes(data[:CHANNEL_ID_BYTES])))
            if channel is None or len(data) < CHANNEL_ID_BYTES:
                self.unrouted += 1
                continue
            channel.client.datagram_received(data, now)
            channel.heard(source)
            touched[channel] = None
        for channel in touched:
            channel.flush()

    def _send_unsent(self) -> None:
        """Send what waits, in order; what the socket cannot take now waits for it to be
        writable (datagrams are not dropped here: a lost ACK or REQUEST costs a timeout)."""
        sock, unsent = self._sock, self._unsent
        while sock is not None and unsent:
            data, address, channel = unsent[0]
            try:
                sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(sock.fileno(), self._writable)
                return
            except OSError as exc:
                unsent.popleft()
                if channel is not None:
                    channel.error(exc, address)
                continue
            unsent.popleft()

    def _writable(self) -> None:
        if self._sock is not None:
            self._loop.remove_writer(self._sock.fileno())
        self._send_unsent()

    def close(self) -> None:
        """Close the socket (its channels are closed by their transport)."""
        sock, self._sock = self._sock, None
        self.intercept = None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            self._loop.remove_writer(sock.fileno())
            sock.close()
        self._unsent.clear()
