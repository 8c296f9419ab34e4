"""Learning a UDP socket's reflexive address from a STUN server: the thin I/O around
:class:`~ppsp.peer.nat.binding.BindingTransaction`.

The transaction decides (what to send, when to send it again, what an answer means); this
module sends its datagrams, hands it what arrives and waits on its next deadline with one
timer (no polling).  The reflexive address is the one a NAT maps this socket to: the address
other peers behind other NATs can reach it at (RFC 8489 section 3).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from typing import cast

from ppsp.errors import StunError
from ppsp.peer.nat.binding import QUICK, BindingTransaction, Retransmission

__all__ = ["parse_server", "reflexive_address"]

STUN_PORT = 3478
"""The STUN port when a server is named without one (RFC 8489 section 18.6)."""


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[IPV6]:PORT`` as ``(host, port)``; ValueError with a one-line
    reason when it is not one."""
    host, port = text, STUN_PORT
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    elif ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            message = f"{text!r}: not HOST[:PORT] (write an IPv6 address as [ADDR]:PORT)"
            raise ValueError(message) from None
    if not host:
        raise ValueError(f"{text!r}: no host")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


class _Endpoint(asyncio.DatagramProtocol):
    """Feeds the transaction what arrives from the server and resolves when it is done."""

    def __init__(self, transaction: BindingTransaction, server: tuple[str, int]) -> None:
        self.transaction = transaction
        self.server = server
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.transport.sendto(self.transaction.request(), self.server)
        self._arm()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # Only the server's datagrams are STUN answers to us (the source of a UDP datagram is
        # not checked by anyone else; an answer from elsewhere is dropped).
        if addr[:2] != self.server:
            self.transaction.dropped += 1
            return
        if self.transaction.receive(data):
            self._finish()

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable) for one request: the retransmissions go on.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _arm(self) -> None:
        deadline = self.transaction.next_deadline()
        if deadline is None:
            self._finish()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        again = self.transaction.timer(asyncio.get_running_loop().time())
        if again is not None and self.transport is not None:
            self.transport.sendto(again, self.server)
        self._arm()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.done.done():
            self.done.set_result(None)


async def reflexive_address(
    server: tuple[str, int],
    *,
    local: tuple[str, int] = ("0.0.0.0", 0),
    sock: socket.socket | None = None,
    retransmission: Retransmission = QUICK,
    software: str | None = "ppsp",
) -> tuple[str, int]:
    """The reflexive ``(ip, port)`` of a UDP socket bound to ``local`` (or of ``sock``, which
    stays open and the caller's), as the STUN ``server`` sees it.

    :class:`~ppsp.errors.StunError` (one line) when the server refuses or does not answer.
    """
    loop = asyncio.get_running_loop()
    host, port = server
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise StunError(f"cannot resolve {host!r}: {exc.strerror}") from None
    if not infos:
        raise StunError(f"STUN server {host!r} has no address")
    resolved = cast(tuple[str, int], infos[0][4][:2])
    transaction = BindingTransaction(
        os.urandom(12), loop.time(), retransmission=retransmission, software=software
    )
    if sock is not None:
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: _Endpoint(transaction, resolved), sock=_borrowed(sock)
        )
    else:
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: _Endpoint(transaction, resolved), local_addr=local
        )
    try:
        await endpoint.done
    finally:
        transport.close()
    if transaction.mapped is None:
        error = transaction.error or StunError("the STUN exchange ended without an answer")
        raise error
    return transaction.mapped


def _borrowed(sock: socket.socket) -> socket.socket:
    """A duplicate of ``sock`` for the exchange: closing the transport closes the duplicate,
    never the caller's socket (both share the one binding the NAT maps)."""
    return socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
