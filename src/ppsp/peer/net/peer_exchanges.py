"""A peer's exchanges with other peers: the peer protocol over HTTP, and chunk maps applied.

:class:`PeerExchanges` is the part of :class:`~ppsp.peer.net.node.PeerNode` that talks to other
peers (its base class): connecting to a peer (TRANSPORT_NEGOTIATION, PROPERTY_QUERY and PULL
over HTTP, or PPSPP alone for a peer behind NAT or a PEX candidate,
:class:`~ppsp.peer.net.udp_reach.UdpReach`), PUSH of this peer's chunk map, FIND at the
tracker and at connected peers, the peers listed or found taken into a session, and a peer's
chunk map handed to the download policy or the live viewer.  It decides nothing: the protocol
client (:class:`~ppsp.peer.protocol.handler.PeerProtocolClient`) builds and checks the
messages, the session's policies decide what to do with what comes back.

Layer: I/O, beside :mod:`.node` (whose :class:`~ppsp.peer.net.node.PeerNode` holds what these
methods read, declared below); imports no module that imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.errors import HttpClientError, PPSPError
from ppsp.http.client import HttpClient, Timeout
from ppsp.peer.download.events import MapUpdated
from ppsp.peer.net.http_common import MAX_PEER_MESSAGE_BYTES
from ppsp.peer.net.session import RemotePeer, SwarmSession, live_bitmap
from ppsp.peer.net.transport import PPSPP, choose_offer
from ppsp.peer.net.udp_reach import UdpReach
from ppsp.peer.protocol.handler import PeerProtocolClient
from ppsp.peer.protocol.senders import seed_keeps_map
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.peer import (
    ChunkAvailabilityResponse,
    ErrorResponse,
    PeerRequest,
    PeerResponse,
    Property,
    PropertyQueryResponse,
    RepresentationMap,
    Stat,
    TransportNegotiationResponse,
)
from ppsp.wire.tracker import PeerInfo

if TYPE_CHECKING:
    from ppsp.peer.net.ppspp_transport import PpsppChunkTransport

__all__ = ["EXCHANGE_TIMEOUT", "QUIET_ERRORS", "PeerExchanges", "advertised_rate"]

log = logging.getLogger("ppsp.peer.net.node")
"""The node's logger: what the exchanges log is the node's."""

EXCHANGE_TIMEOUT = Timeout(total=5.0)
"""Bound on one peer protocol exchange."""

QUIET_ERRORS = (PPSPError, HttpClientError, asyncio.TimeoutError, OSError)
"""What an exchange whose answer nobody waits for may raise (and is ignored)."""


class PeerExchanges:
    """The exchanges of a peer with other peers (the base of
    :class:`~ppsp.peer.net.node.PeerNode`, which sets what is declared here)."""

    # What the exchanges read of the node (PeerNode.__init__ and start set them).
    host: str
    port: int
    advertised: tuple[str, int] | None
    clock: Callable[[], float]
    protocol_client: PeerProtocolClient
    tracker: TrackerClient | None
    transport_preference: tuple[str, ...]
    ppspp_port: int | None
    udp: UdpReach
    _http: HttpClient | None
    _stopping: bool

    if TYPE_CHECKING:

        @property
        def peer_id(self) -> str:
            """This peer's PeerID (:attr:`~ppsp.peer.net.node.PeerNode.peer_id`)."""
            ...

    def add_peers(
        self, session: SwarmSession, listed: Sequence[PeerInfo], *, found: bool = False
    ) -> list[RemotePeer]:
        """Remember the listed peers of ``session`` not known yet (never this peer itself);
        ``found``: another peer's FIND answer, of which a bounded few are taken
        (:meth:`~ppsp.peer.download.peers.PeerBook.take_found`)."""
        if self.advertised is not None:  # this peer's own host is never banned
            session.peers.local_host = self.advertised[0]
        return session.add_listed(listed, self.peer_id, found=found)

    def learn_pex(
        self,
        session: SwarmSession,
        transport: PpsppChunkTransport,
        addresses: Sequence[tuple[str, int]],
    ) -> None:
        """Addresses a peer named in a PEX answer on one of ``transport``'s channels: those
        the download policy takes become PEX candidates of ``session`` (``pex:HOST:PORT``,
        reached over PPSPP only, :meth:`connect`), and the session's loop looks at them.
        Never this peer's own PPSPP sockets."""
        own = transport.local_addresses()
        if self.ppspp_port is not None:
            own.add(((self.advertised or (self.host, self.port))[0], self.ppspp_port))
        added = [
            remote
            for host, port in addresses
            if (host, port) not in own and (remote := session.add_pex(host, port)) is not None
        ]
        if added:
            log.debug("PEX candidates: %s", ", ".join(r.peer_id for r in added))
            session.chunk_arrived.set()

    async def discover(self, session: SwarmSession) -> None:
        """Ask the tracker for the swarm's peers (after an unknown peer pushed to us)."""
        await self.find_at_tracker(session)

    async def find_at_tracker(self, session: SwarmSession) -> list[RemotePeer]:
        """FIND at the tracker; the peers it made known (none when the tracker failed)."""
        if self.tracker is None:
            return []
        with contextlib.suppress(PPSPError, HttpClientError, asyncio.TimeoutError):
            return self.add_peers(session, await self.tracker.find(session.swarm_id))
        return []

    async def find_via_peers(self, session: SwarmSession) -> list[RemotePeer]:
        """FIND at connected peers: more peers even when the tracker is slow or gone."""
        targets = [
            r for r in session.remotes.values()
            if r.offer is not None and not r.banned and not self.udp.is_udp_only(session, r)
        ]  # fmt: skip
        added: list[RemotePeer] = []

        async def ask(remote: RemotePeer) -> None:
            request = self.protocol_client.find(session.swarm_id)
            with contextlib.suppress(*QUIET_ERRORS):
                answer = await self.exchange(remote, request)
                added.extend(self.add_peers(session, getattr(answer, "peers", ()), found=True))

        await asyncio.gather(*(ask(remote) for remote in targets[:4]))
        return added

    def _apply_map(
        self,
        session: SwarmSession,
        remote: RemotePeer,
        chunk_map: Sequence[RepresentationMap],
        now: float,
    ) -> None:
        """A chunk map from ``remote``: to the download policy, or the live viewer."""
        if session.live is not None:
            remote.last_map_at = now
            remote.bitmap = live_bitmap(chunk_map)
            session.chunk_arrived.set()
        elif session.download is not None:
            if seed_keeps_map(remote.bitmap):
                remote.last_map_at = now  # a seeder's map only grows (see senders)
                return
            session.download.handle(MapUpdated(remote.peer_id, tuple(chunk_map)), now)
            session.chunk_arrived.set()
        else:
            remote.last_map_at = now

    async def exchange(self, remote: RemotePeer, request: PeerRequest) -> PeerResponse:
        """Send one peer protocol request to ``remote`` and return its answer."""
        assert self._http is not None
        body = self.protocol_client.send(request, self.clock())
        try:
            async with self._http.post(
                remote.base_url + "/",
                body=body,
                headers={"Content-Type": PEER_CONTENT_TYPE},
                timeout=EXCHANGE_TIMEOUT,
            ) as answer:
                data = await answer.read(MAX_PEER_MESSAGE_BYTES)
                return self.protocol_client.receive(request, data, answer.status)
        finally:
            # Drop only transactions past their own deadline (those whose HTTP exchange
            # failed): other exchanges run concurrently, and expiring everything here made
            # their answers "not pending" (every connect racing another one failed).
            self.protocol_client.expire(self.clock())

    async def connect(self, session: SwarmSession, remote: RemotePeer) -> None:
        """Negotiate the transport, query the properties and pull the chunk map of ``remote``.

        The transport is the first of :attr:`transport_preference` (by default
        :data:`~ppsp.peer.net.transport.TRANSPORT_PREFERENCE`) the peer offers.  The peer
        becomes usable (``remote.offer`` set) only once its properties are known, so that what
        they say (a live source, its upload rate) is there before the first request.

        A peer that cannot be reached over HTTP (behind NAT) but lists PPSPP addresses is
        reached over PPSPP alone when downloads ask for PPSPP (:class:`~.udp_reach.UdpReach`);
        so is a PEX candidate, at its one address, without an HTTP exchange (it has none).
        """
        if remote.standing.pex:
            await self.udp.connect(session, remote, sorted(remote.standing.ppspp_addresses))
            self._apply_map(session, remote, self.udp.chunk_map(session, remote), self.clock())
            return
        try:
            await self._negotiate(session, remote)
        except (*QUIET_ERRORS, ConnectionError):
            candidates = self.udp.candidates(remote)
            if (
                not candidates
                or PPSPP not in self.transport_preference
                or session.live is not None
                or self._stopping
            ):
                raise
            await self.udp.connect(session, remote, candidates)
            self._apply_map(session, remote, self.udp.chunk_map(session, remote), self.clock())

    async def _negotiate(self, session: SwarmSession, remote: RemotePeer) -> None:
        """TRANSPORT_NEGOTIATION, PROPERTY_QUERY and PULL with ``remote`` over HTTP."""
        client = self.protocol_client
        preference = self.transport_preference
        negotiation = client.transport_negotiation(session.swarm_id, preference)
        answer = await self.exchange(remote, negotiation)
        if not isinstance(answer, TransportNegotiationResponse):
            raise ConnectionError(f"transport negotiation refused by {remote.peer_id}")
        offer = choose_offer(session.trusted_offers(remote, answer.transports), preference)
        if offer is None:
            raise ConnectionError(f"{remote.peer_id} offers no transport this peer speaks")
        props = await self.exchange(remote, client.property_query(session.swarm_id))
        if not isinstance(props, PropertyQueryResponse):
            raise ConnectionError(f"{remote.peer_id} did not answer PROPERTY_QUERY")
        remote.properties = props.as_dict()
        remote.standing.advertised_rate = advertised_rate(remote.properties)
        remote.offer = offer
        await self.pull_map(session, remote)

    async def pull_map(self, session: SwarmSession, remote: RemotePeer) -> None:
        """CHUNK_AVAILABILITY PULL from ``remote`` (for a peer reached over PPSPP only, what
        its channel's HAVEs name)."""
        if self.udp.is_udp_only(session, remote):
            self._apply_map(session, remote, self.udp.chunk_map(session, remote), self.clock())
            return
        answer = await self.exchange(remote, self.protocol_client.pull_chunk_map(session.swarm_id))
        if isinstance(answer, ChunkAvailabilityResponse):
            self._apply_map(session, remote, answer.chunk_map, self.clock())
        elif isinstance(answer, ErrorResponse):
            raise ConnectionError(f"{remote.peer_id} answered {answer.response}")

    async def push_map(
        self, session: SwarmSession, targets: Sequence[RemotePeer] | None = None
    ) -> None:
        """CHUNK_AVAILABILITY PUSH of our map to ``targets``, by default every connected peer.

        This is the Hybrid flow: peers announce what they got instead of being asked.
        """
        chunk_map = session.chunk_map()
        if targets is None:
            targets = [
                r for r in session.remotes.values()
                if r.offer is not None and not r.banned and not self.udp.is_udp_only(session, r)
            ]  # fmt: skip

        async def push(remote: RemotePeer) -> None:
            request = self.protocol_client.push_chunk_map(session.swarm_id, chunk_map)
            with contextlib.suppress(*QUIET_ERRORS):
                await self.exchange(remote, request)

        await asyncio.gather(*(push(remote) for remote in targets))


def advertised_rate(properties: Mapping[str, str]) -> float | None:
    """The upload rate (bytes per second) a peer advertised as ``Bandwidth`` in PROPERTY_QUERY.

    None when it gave none or not a positive integer (other peers' values are untrusted).
    """
    stat = Stat(property=Property.BANDWIDTH, value=properties.get(Property.BANDWIDTH))
    value = stat.as_int()
    return float(value) if value is not None and value > 0 else None
