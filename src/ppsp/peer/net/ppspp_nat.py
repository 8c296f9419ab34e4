"""STUN on the PPSPP socket: the thin I/O around :class:`~ppsp.peer.nat.keepalive.BindingKeeper`.

The Binding requests leave from the peer's one PPSPP UDP socket (a seeder's,
:mod:`.ppspp_udp`, or a downloading peer's, :class:`~.ppspp_transport.PpsppClientSocket`), so
the reflexive address learnt is the NAT's mapping of that very socket, the one other peers
must send their handshakes to.  The socket's datagrams are told apart on arrival: a STUN message
(:func:`~ppsp.codecs.stun.is_stun`: its magic cookie where a PPSPP datagram has its first
message's type byte) from the STUN server goes to the keeper, anything else to the PPSPP
engine (or channels).  One timer waits for the keeper's next deadline; a Binding every
:data:`~ppsp.peer.nat.keepalive.REFRESH_INTERVAL` seconds keeps the mapping alive.

A seeder behind NAT also punches (:class:`PpsppPunch`, the I/O around
:class:`~ppsp.peer.nat.punch.Puncher`): it asks the tracker for its swarm's peers every
:data:`FIND_INTERVAL` seconds and sends a punch from the same socket towards the PPSPP
addresses of each peer newly listed, so that their handshakes find its NAT open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, cast

from ppsp.codecs.stun import is_stun
from ppsp.errors import HttpClientError, PPSPError, StunError
from ppsp.peer.nat.keepalive import REFRESH_INTERVAL, BindingKeeper
from ppsp.peer.nat.punch import PUNCH_DATAGRAM, Puncher, ppspp_candidates
from ppsp.peer.ppspp.channel import Address
from ppsp.wire.tracker import PeerInfo

__all__ = ["FIND_INTERVAL", "PpsppPunch", "PpsppStun", "StunSocket", "start_stun"]

FIND_INTERVAL = 3.0
"""Seconds between two FINDs of a seeder behind NAT (a peer that joined is punched towards
within about this long)."""

FIND_TIMEOUT = 5.0
"""Seconds one such FIND may take (then the next one is due)."""

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
        self._first: asyncio.Future[tuple[str, int]] = self._loop.create_future()
        server.intercept = self._intercept
        self._on_timer()

    async def first_mapping(self, wait: float) -> tuple[str, int] | None:
        """The first reflexive address, waited for up to ``wait`` seconds (None when none
        came by then)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._first), wait)
        except TimeoutError:
            return self.keeper.mapped

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
        if not self._first.done():
            self._first.set_result(mapped)
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


class PpsppPunch:
    """Punches from a PPSPP socket behind NAT towards the peers the tracker lists.

    ``find`` asks the tracker for the swarm's peers (a FIND); it runs every ``interval``
    seconds, each bounded by :data:`FIND_TIMEOUT`.  Each listed peer (other than ``peer_id``,
    this one) with PPSPP addresses of the socket's family goes to a
    :class:`~ppsp.peer.nat.punch.Puncher`, whose punches (:data:`PUNCH_DATAGRAM`) leave
    ``server``'s socket at the deadlines it gives.  ``own`` are the socket's own addresses
    (HOST, REFLEXIVE), never punched.

    ``on_listed``, when given, is called with each listed peer's PeerID and candidate
    addresses at every FIND (a relay permits them, :mod:`.ppspp_relay`); with ``punch``
    False nothing is punched (a seeder with a relay whose socket is not behind NAT).
    """

    def __init__(
        self,
        server: StunSocket,
        find: Callable[[], Awaitable[Sequence[PeerInfo]]],
        *,
        peer_id: str,
        own: Iterable[Address] = (),
        interval: float = FIND_INTERVAL,
        on_listed: Callable[[str, list[Address]], None] | None = None,
        punch: bool = True,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.find = find
        self.peer_id = peer_id
        self.interval = interval
        self.on_listed = on_listed
        self.punch = punch
        self.puncher = Puncher(self._loop.time(), own=[tuple(a[:2]) for a in own])
        self.finds = 0
        self.find_failures = 0
        self._v6 = ":" in server.address[0]
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = self._loop.create_task(self._finding())

    def counts(self) -> dict[str, object]:
        """What the report says of the punching: FINDs (and failed ones), peers punched
        towards, punches sent, candidate addresses left out."""
        puncher = self.puncher
        return {
            "finds": self.finds,
            "find_failures": self.find_failures,
            "peers": puncher.peers,
            "punches": puncher.punches,
            "dropped": puncher.dropped,
        }

    async def _finding(self) -> None:
        while True:
            try:
                listed = await asyncio.wait_for(self.find(), FIND_TIMEOUT)
            except (PPSPError, HttpClientError, TimeoutError, OSError) as exc:
                self.find_failures += 1
                log.debug("FIND for punching failed: %s", exc)
            else:
                self.finds += 1
                self._learn(listed)
            await asyncio.sleep(self.interval)

    def _learn(self, listed: Sequence[PeerInfo]) -> None:
        now = self._loop.time()
        for info in listed:
            if info.peer_id is None or info.peer_id == self.peer_id:
                continue
            candidates = [a for a in ppspp_candidates(info) if (":" in a[0]) == self._v6]
            if candidates and self.on_listed is not None:
                self.on_listed(info.peer_id, candidates)
            if self.punch and candidates and self.puncher.learn(info.peer_id, candidates, now):
                log.info("punching towards peer %s at %s", info.peer_id, candidates)
        self._on_timer()

    def _on_timer(self) -> None:
        self._timer = None
        if self._task is None:
            return
        for address in self.puncher.due(self._loop.time()):
            self.server.sendto(PUNCH_DATAGRAM, address)
        deadline = self.puncher.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        """Stop the FINDs and the punches."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
