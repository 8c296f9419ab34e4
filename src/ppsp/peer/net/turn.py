"""A relay on a TURN server for a peer nobody can reach directly: the thin I/O around
:class:`~ppsp.peer.nat.turn.TurnClient` (one UDP socket to the server, one timer at the
client's next deadline, no polling).

    relay = await TurnRelay.allocate(("turn.example", 3478), "user", "secret")
    await relay.permit("203.0.113.9")
    relay.send(("203.0.113.9", 40000), b"hello")
    peer, data = await relay.receive()
    await relay.close()
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import cast

from ppsp.errors import StunError
from ppsp.peer.nat.turn import (
    Allocated,
    DataReceived,
    Failed,
    PermissionRefused,
    Permitted,
    TurnClient,
    TurnEvent,
    TurnState,
)

__all__ = ["TurnRelay"]

QUEUE_MAX = 1024
"""Datagrams from peers kept until :meth:`TurnRelay.receive` takes them (later ones dropped)."""


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, relay: TurnRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        return None  # an ICMP error for one datagram: the retransmissions go on


class TurnRelay:
    """An allocation on a TURN server, made by :meth:`allocate`."""

    def __init__(self, client: TurnClient, server: tuple[str, int]) -> None:
        self.client = client
        self.server = server
        self.relayed: tuple[str, int] | None = None
        """Where peers reach this relay (the RELAY address to register)."""
        self.mapped: tuple[str, int] | None = None
        """This host's reflexive address as the TURN server saw it."""
        self.dropped = 0
        """Datagrams from peers dropped because nobody took them in time."""
        self.failure: str | None = None
        """Why the allocation was lost after it was made (refresh refused or unanswered)."""
        self.on_failure: Callable[[str], None] | None = None
        """Called once with :attr:`failure` when the allocation is lost."""
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._allocated: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._permitted: dict[str, asyncio.Future[None]] = {}
        self._inbox: asyncio.Queue[tuple[tuple[str, int], bytes]] = asyncio.Queue(QUEUE_MAX)

    @classmethod
    async def allocate(
        cls,
        server: tuple[str, int],
        username: str,
        password: str,
        *,
        local: tuple[str, int] = ("0.0.0.0", 0),
    ) -> TurnRelay:
        """Allocate a UDP relay on ``server`` with long-term credentials; one-line
        :class:`~ppsp.errors.StunError` when refused or unanswered."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(server[0], server[1], type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise StunError(f"cannot resolve {server[0]!r}: {exc.strerror}") from None
        resolved = cast(tuple[str, int], infos[0][4][:2])
        relay = cls(TurnClient(username, password, lambda: os.urandom(12)), resolved)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(relay), local_addr=local
        )
        relay._transport = transport
        relay._send_all(relay.client.start(loop.time()))
        relay._arm()
        try:
            await relay._allocated
        except BaseException:
            transport.close()
            raise
        return relay

    async def permit(self, peer_ip: str) -> None:
        """Let ``peer_ip`` send to and receive from the relay (waits for the server)."""
        loop = asyncio.get_running_loop()
        waiter = self._permitted.setdefault(peer_ip, loop.create_future())
        self._send_all(self.client.permit(peer_ip, loop.time()))
        self._arm()
        await waiter

    def forget(self, peer_ip: str) -> None:
        """Stop refreshing the permission for ``peer_ip`` (it lapses on the server)."""
        self.client.forget(peer_ip)

    def send(self, peer: tuple[str, int], data: bytes) -> None:
        """Send ``data`` to ``peer`` through the relay (from the RELAY address);
        :class:`~ppsp.errors.StunError` when ``peer``'s IP is not permitted or the relay is
        lost."""
        if self._transport is not None:
            self._transport.sendto(self.client.send(peer, data), self.server)

    async def receive(self) -> tuple[tuple[str, int], bytes]:
        """The next datagram a permitted peer sent to the relay: ``(peer, data)``."""
        return await self._inbox.get()

    async def close(self) -> None:
        """Release the allocation and close the socket."""
        if self._transport is None:
            return
        self._send_all(self.client.close(asyncio.get_running_loop().time()))
        if self._timer is not None:
            self._timer.cancel()
        self._transport.close()
        self._transport = None

    # -- internals -----------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[:2] != self.server:
            return  # only the server speaks to this socket
        out, events = self.client.receive(data, asyncio.get_running_loop().time())
        self._send_all(out)
        self._events(events)
        self._arm()

    def _on_timer(self) -> None:
        out, events = self.client.timer(asyncio.get_running_loop().time())
        self._send_all(out)
        self._events(events)
        self._arm()

    def _events(self, events: list[TurnEvent]) -> None:
        for event in events:
            if isinstance(event, Allocated):
                self.relayed, self.mapped = event.relayed, event.mapped
                if not self._allocated.done():
                    self._allocated.set_result(None)
            elif isinstance(event, Permitted):
                waiter = self._permitted.pop(event.peer_ip, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, PermissionRefused):
                waiter = self._permitted.pop(event.peer_ip, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(
                        StunError(f"permission for {event.peer_ip}: {event.reason}")
                    )
            elif isinstance(event, DataReceived):
                try:
                    self._inbox.put_nowait((event.peer, event.data))
                except asyncio.QueueFull:
                    self.dropped += 1
            elif isinstance(event, Failed):
                if self._allocated.done() and self.failure is None:
                    self.failure = event.reason
                    if self.on_failure is not None:
                        self.on_failure(event.reason)
                error = StunError(event.reason)
                for waiter in [self._allocated, *self._permitted.values()]:
                    if not waiter.done():
                        waiter.set_exception(error)
                self._permitted.clear()

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self._transport is not None:
            for datagram in datagrams:
                self._transport.sendto(datagram, self.server)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.client.next_deadline()
        if deadline is not None and self.client.state is not TurnState.CLOSED:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)
