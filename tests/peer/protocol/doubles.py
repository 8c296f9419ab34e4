"""Test doubles of the peer protocol: a dict-backed PeerState and the in-memory pair harness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ppsp.peer.protocol.handler import (
    KnownPeer,
    PeerProtocolClient,
    PeerProtocolHandler,
)
from ppsp.peer.protocol.senders import hosts_of
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import (
    PeerRequest,
    PeerResponse,
    Property,
    TransportOffer,
)
from ppsp.wire.tracker import PeerInfo, RepresentationMap


class MemoryPeerState:
    """A dict-backed :class:`PeerState`: the reference implementation, used by tests.

    ``OnlineTime`` (seconds since ``started_at``) and ``ChunkCount`` (chunks held in the swarm)
    are computed; other properties are whatever :meth:`set_property` stored.
    """

    def __init__(self, peer_id: str, *, started_at: float = 0.0) -> None:
        self._peer_id = peer_id
        self.started_at = started_at
        self._maps: dict[str, tuple[RepresentationMap, ...]] = {}
        self._transports: dict[str, tuple[TransportOffer, ...]] = {}
        self._peers: dict[str, dict[str, KnownPeer]] = {}
        self._properties: dict[str, str] = {}
        self.pushed: dict[tuple[str, str], tuple[tuple[RepresentationMap, ...], float]] = {}
        self.partners: set[tuple[str, str]] = set()
        """(swarm, PeerID) pairs that chunks went between (see :meth:`exchanges_chunks`)."""
        self.lookups: list[str] = []
        """Swarms :meth:`learn_peers` was asked to look up, in order."""

    @property
    def peer_id(self) -> str:
        """This peer's PeerID."""
        return self._peer_id

    def add_swarm(
        self,
        swarm_id: str,
        *,
        chunk_map: Sequence[RepresentationMap] = (),
        transports: Sequence[TransportOffer] = (),
    ) -> None:
        """Join a swarm with a chunk map and the transports its chunks are served over."""
        self._maps[swarm_id] = tuple(chunk_map)
        self._transports[swarm_id] = tuple(transports)
        self._peers.setdefault(swarm_id, {})

    def add_peer(
        self,
        swarm_id: str,
        info: PeerInfo,
        *,
        chunk_map: Sequence[RepresentationMap] | None = None,
        seed: bool = False,
    ) -> None:
        """Record a peer of the swarm (keyed by its PeerID)."""
        key = info.peer_id or f"@{len(self._peers[swarm_id])}"
        self._peers[swarm_id][key] = KnownPeer(
            info=info, chunk_map=None if chunk_map is None else tuple(chunk_map), seed=seed
        )

    def set_property(self, name: str, value: str) -> None:
        """Set a reported property value (text; see ``format_property_value``)."""
        self._properties[name] = value

    def has_swarm(self, swarm_id: str) -> bool:
        """Whether the swarm was added."""
        return swarm_id in self._maps

    def chunk_map(self, swarm_id: str) -> tuple[RepresentationMap, ...]:
        """The chunk map given to :meth:`add_swarm`."""
        return self._maps.get(swarm_id, ())

    def known_peers(self, swarm_id: str) -> Sequence[KnownPeer]:
        """Known peers in insertion order, each with the map it last pushed, if any."""
        peers: list[KnownPeer] = []
        for key, known in self._peers.get(swarm_id, {}).items():
            pushed = self.pushed.get((swarm_id, key))
            peers.append(known if pushed is None else replace(known, chunk_map=pushed[0]))
        return peers

    def store_peer_map(
        self,
        swarm_id: str,
        peer_id: str,
        chunk_map: tuple[RepresentationMap, ...],
        now: float,
    ) -> None:
        """Keep the pushed map with the time it arrived."""
        self.pushed[(swarm_id, peer_id)] = (chunk_map, now)

    def peer_hosts(self, swarm_id: str, peer_id: str) -> frozenset[str] | None:
        """The addresses of the recorded peer's entry; None when it is not recorded."""
        known = self._peers.get(swarm_id, {}).get(peer_id)
        return None if known is None else hosts_of(known.info)

    def exchanges_chunks(self, swarm_id: str, peer_id: str) -> bool:
        """Whether (swarm, peer) was added to :attr:`partners`."""
        return (swarm_id, peer_id) in self.partners

    def learn_peers(self, swarm_id: str) -> None:
        """Record the lookup in :attr:`lookups`."""
        self.lookups.append(swarm_id)

    def property_values(self, swarm_id: str, now: float) -> Mapping[str, str]:
        """Stored properties plus the computed OnlineTime and ChunkCount."""
        held = sum(
            len(ChunkBitmap(segment.chunkmap_size, segment.start_index, segment.bitmap))
            for representation in self._maps.get(swarm_id, ())
            for segment in representation.segments
        )
        return {
            **self._properties,
            Property.ONLINE_TIME.value: str(max(0, int(now - self.started_at))),
            Property.CHUNK_COUNT.value: str(held),
        }

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        """The transports given to :meth:`add_swarm`."""
        return self._transports.get(swarm_id, ())


class PeerPair:
    """A client wired to a handler in memory, through the codec (h11 ``ConnectionPair`` style)."""

    def __init__(
        self, client: PeerProtocolClient, handler: PeerProtocolHandler, host: str | None = None
    ) -> None:
        self.client = client
        self.handler = handler
        self.host = host
        """The source address the handler is told the client's requests come from."""

    def exchange(self, request: PeerRequest, now: float = 0.0) -> PeerResponse:
        """Send ``request`` as bytes, let the handler answer, and return the checked answer."""
        data = self.client.send(request, now)
        status, body = self.handler.handle_bytes(data, now, host=self.host)
        return self.client.receive(request, body, status)
