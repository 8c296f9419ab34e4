"""PPSPP served through a TURN relay, for a seeder no peer can reach directly (I/O layer).

Behind a NAT that maps each destination to a port of its own ("symmetric"), the reflexive
address STUN learnt is not the mapping towards any other peer, and hole punching fails.  Such
a seeder allocates a relay on a TURN server (:class:`~ppsp.peer.net.turn.TurnRelay`) and
registers the relayed address at the tracker as a PROXY PeerAddress; a downloading peer
sends its handshakes to every candidate address together, the relayed one among them, and
keeps the first that answers.

:class:`PpsppRelay` is the relay's side of the seeder: a second
:class:`~ppsp.peer.ppspp.Seeder` engine on the same contents as the one on the PPSPP socket,
fed with the datagrams that come through the relay (Data indications), each as from the
peer's address the server names; its answers leave as Send indications to those addresses.
The socket's own engine is untouched: the two engines share the contents (read-only) and
nothing else, so a peer's channel lives on the path its handshake came by.  One timer waits
for the engine's next deadline, as on the socket.

A downloading peer's relay (``ppsp get --turn``) is the same: its engine starts with no
content and is given the partial content the peer serves once it can be named
(:meth:`PpsppRelay.add`, by :class:`~ppsp.peer.net.ppspp_serving.PartialServing`, which
also announces each chunk newly held through it, :meth:`PpsppRelay.announce`).  A live
viewer's relay (``ppsp watch --turn``) runs a :class:`~ppsp.peer.ppspp.live_server.LiveServer`
instead, on the Unix-time clock of the live engines, given each chunk the viewer verified
(:meth:`PpsppRelay.add_record`, by the viewer's
:class:`~ppsp.peer.net.ppspp_live.LivePpsppEndpoint`).

The peers a relay lets through are those its swarm's FINDs list (:meth:`PpsppRelay.listed`,
the hook of :class:`~ppsp.peer.net.ppspp_nat.PpsppPunch`), bounded by
:class:`~ppsp.peer.nat.relay.RelayPermits`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ppsp.errors import StunError
from ppsp.peer.nat.relay import RelayPermits
from ppsp.peer.net.turn import TurnRelay
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.content import ServedContent
from ppsp.peer.ppspp.live import LiveChunkRecord
from ppsp.peer.ppspp.live_server import LiveServer
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import ChunkRange

__all__ = ["PpsppRelay", "TurnServer", "allocate_relay", "serve_relay"]

Address = tuple[str, int]
"""A UDP address: (ip, port)."""

log = logging.getLogger(__name__)


class PpsppRelay:
    """A :class:`~ppsp.peer.ppspp.Seeder` engine (or a live viewer's
    :class:`~ppsp.peer.ppspp.live_server.LiveServer`, whose times are ``clock``'s: Unix time)
    served through ``relay`` (allocated)."""

    def __init__(
        self,
        relay: TurnRelay,
        seeder: Seeder | LiveServer,
        *,
        permits: RelayPermits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        assert relay.relayed is not None, "allocate the relay first"
        self._loop = asyncio.get_running_loop()
        self.relay = relay
        self.seeder = seeder
        """The engine (named for the seeder's, the first one)."""
        self.relayed: Address = relay.relayed
        """The relayed address peers reach this seeder at (its PROXY PeerAddress)."""
        self.permits = permits or RelayPermits(v6=":" in relay.relayed[0])
        self.unsent = 0
        """Datagrams of the engine not sent: their peer's IP is not (or no longer) permitted."""
        self._clock = clock or self._loop.time
        self._loop_clock = clock is None
        if isinstance(seeder, Seeder):
            # DATA timestamps are the wall clock in microseconds, as on the socket.
            seeder.timestamp_offset = time.time() - self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._permitting: set[asyncio.Task[None]] = set()
        self._closed = False
        relay.on_failure = self._lost
        self._task: asyncio.Task[None] | None = self._loop.create_task(self._receiving())

    def listed(self, peer_id: str, candidates: Sequence[Address]) -> None:
        """A peer of the swarm (``peer_id``) and its PPSPP candidate addresses, as a FIND
        listed it: permit their IPs on the relay (within the bounds)."""
        if self._closed or self.relay.failure is not None:
            return
        changes = self.permits.listed(candidates, self._loop.time())
        for ip in changes.forget:
            self.relay.forget(ip)
        for ip in changes.permit:
            log.debug("permitting %s (peer %s) on the relay", ip, peer_id)
            task = self._loop.create_task(self._permit(ip))
            self._permitting.add(task)
            task.add_done_callback(self._permitting.discard)

    def add(self, content: ServedContent) -> None:
        """Serve ``content`` through the relay too, from the next handshake naming it."""
        assert isinstance(self.seeder, Seeder)
        self.seeder.add_content(content)

    def announce(self, swarm_id: bytes, chunks: ChunkRange) -> None:
        """Chunks of a partial content newly held: a HAVE to the relay's channels of it."""
        if self._closed:
            return
        assert isinstance(self.seeder, Seeder)
        self.seeder.announce(swarm_id, chunks, self._clock())
        self._flush()

    def add_record(self, record: LiveChunkRecord) -> None:
        """(A live relay) serve live chunk ``record``, verified, through the relay too."""
        if self._closed:
            return
        assert isinstance(self.seeder, LiveServer)
        self.seeder.add(record, self._clock())
        self._flush()

    def counts(self) -> dict[str, object]:
        """What the report says of the relay: its address, the IPs permitted, refused and
        given up, datagrams not sent, and the engine's counts."""
        host, port = self.relayed
        return {
            "relayed": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "permitted": len(self.permits.permitted),
            "refused": self.permits.refusals,
            "forgotten": self.permits.forgotten,
            "not_permitted": self.permits.dropped,
            "unsent": self.unsent,
            "dropped": self.relay.dropped,
            "failure": self.relay.failure,
            "ppspp": dict(self.seeder.stats),
        }

    async def close(self) -> None:
        """Tell the relay's established peers goodbye, then release the allocation (a
        Refresh with lifetime 0) and close its socket."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        for pending in list(self._permitting):
            pending.cancel()
        self.seeder.close_all(self._clock())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.relay.close()

    # -- internals -----------------------------------------------------------------------------

    async def _permit(self, ip: str) -> None:
        try:
            await self.relay.permit(ip)
        except StunError as exc:
            self.permits.refused(ip, self._loop.time())
            log.info("the TURN server did not permit %s: %s", ip, exc)

    async def _receiving(self) -> None:
        while True:
            peer, data = await self.relay.receive()
            self.seeder.datagram_received(data, peer, self._clock())
            self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.seeder.handle_timer(self._clock())
        self._flush()

    def _flush(self) -> None:
        for address, data in self.seeder.datagrams_to_send():
            try:
                self.relay.send(address, data)
            except StunError:
                self.unsent += 1  # the peer's IP was given up, or the relay lost
        if self._closed:
            return
        deadline = self.seeder.next_deadline()
        if not self._loop_clock:
            # The engine's clock is not the loop's (Unix time: a live one): re-armed each time.
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if deadline is not None:
                delay = max(0.0, deadline - self._clock())
                self._timer = self._loop.call_later(delay, self._on_timer)
            return
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _lost(self, reason: str) -> None:
        host, port = self.relay.server
        log.warning("the TURN relay on %s:%d is lost: %s", host, port, reason)


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server and the long-term credentials to allocate a relay on it (the password
    is never shown, not even in a ``repr``)."""

    address: tuple[str, int]
    username: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def allocate_relay(server: TurnServer, *, local: Address = ("0.0.0.0", 0)) -> TurnRelay:
    """Allocate a relay on ``server``; :class:`~ppsp.errors.StunError` (one line, without
    the password) when the server cannot be resolved or reached, refuses, or does not
    answer."""
    try:
        return await TurnRelay.allocate(
            server.address, server.username, server.password, local=local
        )
    except OSError as exc:
        raise StunError(f"cannot reach {server}: {exc.strerror or exc}") from None


def serve_relay(
    relay: TurnRelay,
    contents: Sequence[SeededContent],
    *,
    config: SeederConfig | None = None,
    pacer: UploadPacer | None = None,
) -> PpsppRelay:
    """Serve ``contents`` through ``relay`` (allocated) with an engine of their own (DATA
    under the upload cap ``pacer`` when given)."""
    return PpsppRelay(relay, Seeder(list(contents), config=config, pacer=pacer))
