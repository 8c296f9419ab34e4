"""STUN on the PPSPP socket: the thin I/O around :class:`~ppsp.peer.nat.keepalive.BindingKeeper`.

The Binding requests leave from the peer's one PPSPP UDP socket (a seeder's,
:mod:`.ppspp_udp`, or a downloading peer's, :class:`~.ppspp_transport.PpsppClientSocket`), so
the reflexive address learnt is the NAT's mapping of that very socket, the one other peers
must send their handshakes to.  The socket's datagrams are told apart on arrival: a STUN message
(:func:`~ppsp.codecs.stun.is_stun`: its magic cookie where a PPSPP datagram has its first
message's type byte) from the STUN server goes to the keeper, anything else to the PPSPP
engine (or channels).  One timer waits for the keeper's next deadline; a Binding every
:data:`~ppsp.peer.nat.keepalive.REFRESH_INTERVAL` seconds keeps the mapping alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Protocol, cast

from ppsp.codecs.stun import is_stun
from ppsp.errors import StunError
from ppsp.peer.nat.keepalive import REFRESH_INTERVAL, BindingKeeper
from ppsp.peer.ppspp.channel import Address

__all__ = ["PpsppStun", "StunSocket", "start_stun"]

log = logging.getLogger(__name__)


class StunSocket(Protocol):
    """A PPSPP socket STUN runs on: a seeder's :class:`~.ppspp_udp.PpsppSeederServer` or a
    downloading peer's :class:`~.ppspp_transport.PpsppClientSocket`."""

    intercept: Callable[[bytes, Address], bool] | None
    """Sees each datagram first; True for one it consumed."""

    @property
    def address(self) -> tuple[str, int]:
        """The socket's local address."""
        ...

    def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram from the socket."""
        ...


class PpsppStun:
    """Bindings to one STUN server from a PPSPP socket (:class:`StunSocket`).

    ``on_change`` is called with each new reflexive address (the first, and any change).
    """

    def __init__(
        self,
        server: StunSocket,
        stun_server: tuple[str, int],
        *,
        interval: float = REFRESH_INTERVAL,
        on_change: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.stun_server = stun_server
        self.keeper = BindingKeeper(self._loop.time(), interval=interval)
        self.on_change = on_change
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        server.intercept = self._intercept
        self._on_timer()

    @property
    def mapped(self) -> tuple[str, int] | None:
        """The socket's reflexive address, once a STUN server told it."""
        return self.keeper.mapped

    def counts(self) -> dict[str, object]:
        """What the report says of the Bindings: how many, answered, address changes, and
        the last reflexive address (``"IP:PORT"``, or None)."""
        keeper = self.keeper
        mapped = keeper.mapped
        return {
            "bindings": keeper.bindings,
            "answers": keeper.answers,
            "changes": keeper.changes,
            "reflexive": None if mapped is None else f"{mapped[0]}:{mapped[1]}",
        }

    def _intercept(self, data: bytes, addr: Address) -> bool:
        # Only the server's STUN datagrams are ours; a stranger's STUN datagram goes to the
        # engine, which drops it as it drops any other garbage.
        if tuple(addr[:2]) != self.stun_server or not is_stun(data):
            return False
        error = self.keeper.error
        if self.keeper.receive(data, self._loop.time()):
            self._changed()
        elif self.keeper.error is not None and self.keeper.error is not error:
            log.warning("STUN %s:%d: %s", *self.stun_server, self.keeper.error)
        self._arm()
        return True

    def _changed(self) -> None:
        mapped = self.keeper.mapped
        assert mapped is not None
        log.info(
            "PPSPP socket %s:%d has reflexive address %s:%d (STUN %s:%d)",
            *self.server.address,
            *mapped,
            *self.stun_server,
        )
        if self.on_change is not None:
            self.on_change(mapped)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        error = self.keeper.error
        datagram = self.keeper.timer(self._loop.time(), os.urandom(12))
        if datagram is not None:
            self.server.sendto(datagram, self.stun_server)
        if self.keeper.error is not None and self.keeper.error is not error:
            # A Binding went unanswered: the mapping may lapse (warned once per failure).
            log.warning("STUN %s:%d: %s", *self.stun_server, self.keeper.error)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._closed:
            self._timer = self._loop.call_at(self.keeper.next_deadline(), self._on_timer)

    def close(self) -> None:
        """Stop the Bindings and hand every datagram to the engine again."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.server.intercept == self._intercept:
            self.server.intercept = None


async def start_stun(
    server: StunSocket,
    stun_server: tuple[str, int],
    *,
    interval: float = REFRESH_INTERVAL,
    on_change: Callable[[tuple[str, int]], None] | None = None,
) -> PpsppStun:
    """Resolve ``stun_server`` (HOST, PORT) for the socket's address family and start the
    Bindings from ``server``'s socket; :class:`~ppsp.errors.StunError` when it cannot be
    resolved."""
    loop = asyncio.get_running_loop()
    host, port = stun_server
    family = socket.AF_INET6 if ":" in server.address[0] else socket.AF_INET
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise StunError(f"cannot resolve {host!r}: {exc.strerror}") from None
    if not infos:
        raise StunError(f"STUN server {host!r} has no address")
    resolved = cast(tuple[str, int], tuple(infos[0][4][:2]))
    return PpsppStun(server, resolved, interval=interval, on_change=on_change)
