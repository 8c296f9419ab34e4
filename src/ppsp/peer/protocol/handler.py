"""The sans-I/O peer protocol: a request handler for the serving side, a client for the asking side.

Nothing here touches a socket or a clock.  A peer's HTTP layer hands the body of each POST to
:meth:`PeerProtocolHandler.handle_bytes` (or a decoded request to
:meth:`PeerProtocolHandler.handle`) together with the current time ``now``, and writes back the
status and body it is given.  The handler reads and updates the peer through the small
:class:`PeerState` interface.  On the asking side :class:`PeerProtocolClient` builds requests with
unique transaction IDs, encodes them, and checks each answer against the request it answers;
request timeouts are driven by ``now`` as in aioquic (:meth:`PeerProtocolClient.next_deadline`,
:meth:`PeerProtocolClient.expire`).  The tests wire a client to a handler in memory, through
the codec, as h11's ``ConnectionPair`` does (tests/peer/protocol/doubles.py), so that every
exchange is tested without sockets.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ppsp.codecs.peer_xml import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    response_status,
)
from ppsp.errors import (
    InvalidSyntax,
    LocalProtocolError,
    MessageForbidden,
    ObjectNotFound,
    PeerInternalError,
    PeerProtocolError,
    TemporarilyOverloaded,
)
from ppsp.peer.protocol.senders import ParseBudget, Sender, StrangerGate, judge_sender
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.fields import MAX_MESSAGE_BYTES
from ppsp.wire.peer import (
    HTTP,
    ChunkAvailabilityRequest,
    ChunkAvailabilityResponse,
    ErrorResponse,
    FindRequest,
    FindResponse,
    OkResponse,
    PeerMethod,
    PeerRequest,
    PeerResponse,
    Property,
    PropertyQueryRequest,
    PropertyQueryResponse,
    Stat,
    TransportNegotiationRequest,
    TransportNegotiationResponse,
    TransportOffer,
)
from ppsp.wire.tracker import PeerInfo, PeerNum, RepresentationMap, RepresentationScope

__all__ = [
    "DEFAULT_MAX_PEERS",
    "DEFAULT_REQUEST_TIMEOUT",
    "SWARM_PROPERTIES",
    "KnownPeer",
    "PeerProtocolClient",
    "PeerProtocolHandler",
    "PeerState",
]

DEFAULT_MAX_PEERS = 50
"""Most peers a FIND answer lists when the requester sets no smaller ``Peernum``."""

DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds a client waits for an answer before :meth:`PeerProtocolClient.expire` drops it."""

SWARM_PROPERTIES = frozenset(
    {Property.BANDWIDTH.value.lower(), Property.CHUNK_COUNT.value.lower(), "livesource"}
)
"""Properties (lower-case) any peer of the swarm gets: what it needs to fetch from us.

``Bandwidth`` (our upload cap) and ``ChunkCount`` (a PULL tells as much) schedule requests;
``LiveSource`` tells a live viewer that this is the stream's source.  Every other property is
a statistic about us (uptime, traffic, links, playback figures), answered only to peers we
exchange chunks with, or to anyone when the handler is built with ``disclose_stats``.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownPeer:
    """A peer this peer knows in one swarm, as a FIND answer candidate.

    ``chunk_map`` is the peer's last known chunk map (from its PUSH or our PULL), None when
    unknown; ``seed`` marks a peer known to hold the whole content.
    """

    info: PeerInfo
    chunk_map: tuple[RepresentationMap, ...] | None = None
    seed: bool = False


class PeerState(Protocol):
    """What the handler needs from the peer it serves.  Implemented by the peer.

    Obligations: every method is quick and does no I/O; ``known_peers`` lists the peers with
    the chunk map last stored for them by :meth:`store_peer_map`; ``transports`` includes the
    mandatory HTTP transport with its URL template for the swarm.
    """

    @property
    def peer_id(self) -> str:
        """This peer's PeerID."""
        ...

    def has_swarm(self, swarm_id: str) -> bool:
        """Whether this peer takes part in the swarm."""
        ...

    def chunk_map(self, swarm_id: str) -> tuple[RepresentationMap, ...]:
        """The chunks this peer holds in the swarm, in wire form."""
        ...

    def known_peers(self, swarm_id: str) -> Sequence[KnownPeer]:
        """Other peers of the swarm this peer knows, in its own order of preference."""
        ...

    def store_peer_map(
        self,
        swarm_id: str,
        peer_id: str,
        chunk_map: tuple[RepresentationMap, ...],
        now: float,
    ) -> None:
        """Remember the chunk map a known peer pushed for the swarm (received at ``now``).

        Called only for a push that comes from the peer it names (see
        :mod:`ppsp.peer.protocol.senders`).
        """
        ...

    def peer_hosts(self, swarm_id: str, peer_id: str) -> frozenset[str] | None:
        """The host addresses known for ``peer_id`` in the swarm; None when it is not known."""
        ...

    def exchanges_chunks(self, swarm_id: str, peer_id: str) -> bool:
        """Whether chunks of the swarm went between this peer and ``peer_id`` (either way)."""
        ...

    def learn_peers(self, swarm_id: str) -> None:
        """Look up the swarm's peers (at the tracker), without waiting: an unknown one pushed."""
        ...

    def property_values(self, swarm_id: str, now: float) -> Mapping[str, str]:
        """Every property this peer can report, name to value text, as of ``now``."""
        ...

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        """Transports this peer serves the swarm's chunks over, each with its URI."""
        ...


# --------------------------------------------------------------------------------------------
# Serving side.

_Interval = tuple[int, int | None]


def _scope(request: FindRequest) -> dict[str | None, list[_Interval]] | None:
    """The chunk scope of a FIND as intervals per Representation (None key: any); None = all.

    FIND's ChunkID *n* means "chunks *n* and higher" and 0 means any chunk (draft section
    4.2.1.3.1); FIND_CHUNK's ChunkID names one chunk.  ChunkIDs apply to every Representation.
    """
    scope: dict[str | None, list[_Interval]] = {}
    for chunk_id in request.chunk_ids:
        if request.method is PeerMethod.FIND:
            if chunk_id == 0:
                return None
            scope.setdefault(None, []).append((chunk_id, None))
        else:
            scope.setdefault(None, []).append((chunk_id, chunk_id))
    for entry in request.content_group:
        scope.setdefault(entry.representation_id, []).append((entry.start_index, entry.end_index))
    return scope or None


def _merge(intervals: Iterable[_Interval]) -> list[_Interval]:
    """Sorted, disjoint union of inclusive intervals (``None`` end: unbounded)."""
    merged: list[_Interval] = []
    for start, end in sorted(intervals, key=lambda item: item[0]):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None or start <= last_end + 1:
                if last_end is not None and (end is None or end > last_end):
                    merged[-1] = (last_start, end)
                continue
        merged.append((start, end))
    return merged


def _held(chunk_map: Sequence[RepresentationMap], scope: dict[str | None, list[_Interval]]) -> int:
    """How many chunks of ``scope`` the map holds (each chunk counted once)."""
    total = 0
    for representation in chunk_map:
        intervals = _merge(scope.get(None, []) + scope.get(representation.representation_id, []))
        for segment in representation.segments if intervals else ():
            try:
                bitmap = ChunkBitmap(segment.chunkmap_size, segment.start_index, segment.bitmap)
            except ValueError:
                continue
            total += sum(bitmap.count_in(start, end) for start, end in intervals)
    return total


_Answer = (
    FindResponse
    | ChunkAvailabilityResponse
    | PropertyQueryResponse
    | TransportNegotiationResponse
    | OkResponse
)
"""The success answers the handler builds (each names the answering peer, or nobody)."""


class PeerProtocolHandler:
    """Answers peer protocol requests for one peer, backed by its :class:`PeerState`.

    Each method has one handler; anything the protocol forbids is raised as the
    :class:`~ppsp.errors.PeerProtocolError` of Table 2.  The I/O layer passes the source
    address of each request's connection (``host``); whom a request comes from is decided by
    :func:`~ppsp.peer.protocol.senders.judge_sender`:

    - a PUSH is believed only from the peer it names; in a known peer's name from another host
      (or in ours) it is refused with 403 ``MESSAGE FORBIDDEN``; under an unknown PeerID it is
      acknowledged and not stored, and may make the state look the swarm's peers up, within the
      bounds of :class:`~ppsp.peer.protocol.senders.StrangerGate` (over them: 503
      ``TEMPORARILY OVERLOADED``);
    - answers carry our PeerID only to a known peer of the swarm writing from its own host (it
      has it from the tracker's list already); to anyone else they name no sender;
    - PROPERTY_QUERY answers :data:`SWARM_PROPERTIES` to anyone, statistics only to a peer
      we exchange chunks with (from its own host) unless ``disclose_stats``.
    """

    def __init__(
        self,
        state: PeerState,
        *,
        max_peers: int = DEFAULT_MAX_PEERS,
        disclose_stats: bool = False,
        gate: StrangerGate | None = None,
        parse_budget: ParseBudget | None = None,
    ) -> None:
        self.state = state
        self.max_peers = max_peers
        self.disclose_stats = disclose_stats
        self.gate = gate if gate is not None else StrangerGate()
        self.parse_budget = parse_budget if parse_budget is not None else ParseBudget()
        self.forged_refused = 0
        """Requests refused because they named a known peer (or us) from another host."""

    def sender(self, request: PeerRequest, host: str | None) -> Sender:
        """Whether ``request`` comes from the peer it names (``host``: its connection's source)."""
        return judge_sender(
            self.state.peer_hosts(request.swarm_id, request.peer_id),
            host,
            names_us=request.peer_id == self.state.peer_id,
        )

    def handle(self, request: PeerRequest, now: float, *, host: str | None = None) -> PeerResponse:
        """The success answer to ``request``; raises PeerProtocolError for an error answer.

        ``host`` is the source address of the request's connection (None: not observed, which
        matches no peer).  Every method answers 404 ``OBJECT NOT FOUND`` for a swarm this peer
        is not in.
        """
        try:
            if not self.state.has_swarm(request.swarm_id):
                raise ObjectNotFound(f"not in swarm {request.swarm_id}")
            sender = self.sender(request, host)
            match request:
                case FindRequest():
                    answer: _Answer = self._find(request, now)
                case ChunkAvailabilityRequest():
                    answer = self._chunk_availability(request, now, sender, host)
                case PropertyQueryRequest():
                    answer = self._property_query(request, now, sender)
                case TransportNegotiationRequest():
                    answer = self._transport_negotiation(request, now)
            if sender is not Sender.SELF:
                # The asker knows whom it asked; our PeerID goes to known peers only.
                answer = replace(answer, peer_id=None)
            return answer
        except PeerProtocolError as exc:
            if exc.transaction_id is None:
                exc.transaction_id = request.transaction_id
            raise

    def handle_bytes(
        self, data: bytes, now: float, *, host: str | None = None
    ) -> tuple[int, bytes]:
        """Decode, handle and encode one request body: ``(HTTP status, answer body)``.

        ``host`` as for :meth:`handle`.  Never raises a protocol error: decode and handling
        errors become the error answer of Table 2, and an answer that cannot be encoded (the
        PeerState gave a value the wire cannot carry) becomes 500 ``INTERNAL ERROR``.  A large
        message whose host spent its parse budget (:class:`~.senders.ParseBudget`) is answered
        503 ``TEMPORARILY OVERLOADED`` unparsed.
        """
        transaction_id: str | None = None
        try:
            if len(data) <= MAX_MESSAGE_BYTES and not self.parse_budget.admit(host, len(data), now):
                raise TemporarilyOverloaded("large messages from this host: parsed later")
            request = decode_request(data)
            transaction_id = request.transaction_id
            answer: PeerResponse = self.handle(request, now, host=host)
            return response_status(answer), encode_response(answer)
        except PeerProtocolError as exc:
            error = ErrorResponse.from_error(exc)
        except LocalProtocolError as exc:
            error = ErrorResponse.from_error(
                PeerInternalError(str(exc)), transaction_id=transaction_id
            )
        return error.status, encode_response(error)

    def _find(self, request: FindRequest, now: float) -> FindResponse:
        scope = _scope(request)
        excluded = {request.peer_id, self.state.peer_id}
        ranked: list[tuple[bool, int, PeerInfo]] = []
        for known in self.state.known_peers(request.swarm_id):
            info = known.info
            if info.peer_id in excluded or not info.addresses:
                continue
            held = 0
            if scope is not None and known.chunk_map is not None and not known.seed:
                held = _held(known.chunk_map, scope)
            if request.method is PeerMethod.FIND_CHUNK and not known.seed and held == 0:
                continue
            ranked.append((known.seed, held, info))
        if scope is not None:
            # Stable: among equals the PeerState's own order of preference is kept.
            ranked.sort(key=lambda item: (not item[0], -item[1]))
        if request.method is PeerMethod.FIND_CHUNK and not ranked:
            raise ObjectNotFound("no known peer holds the chunks asked for")
        limit = self.max_peers
        if request.peer_num is not None and request.peer_num.count:
            limit = min(limit, request.peer_num.count)
        return FindResponse(
            transaction_id=request.transaction_id,
            method=request.method,
            peer_id=self.state.peer_id,
            swarm_id=request.swarm_id,
            chunk_ids=request.chunk_ids,
            peers=tuple(replace(info, swarm_id=request.swarm_id) for _, _, info in ranked[:limit]),
        )

    def _chunk_availability(
        self, request: ChunkAvailabilityRequest, now: float, sender: Sender, host: str | None
    ) -> ChunkAvailabilityResponse | OkResponse:
        if request.chunk_map is not None:
            if sender is Sender.FORGED:
                self.forged_refused += 1
                raise MessageForbidden("a chunk map in another peer's name")
            if sender is Sender.SELF:
                self.state.store_peer_map(request.swarm_id, request.peer_id, request.chunk_map, now)
            elif not self.gate.admit(host, now):
                raise TemporarilyOverloaded("too many messages from unknown peers of this host")
            elif self.gate.lookup_due(request.swarm_id, now):
                # Nothing is believed of a stranger; who the swarm's peers are is asked, at
                # most once per lookup interval and swarm whoever pushes.
                self.state.learn_peers(request.swarm_id)
            return OkResponse(transaction_id=request.transaction_id, peer_id=self.state.peer_id)
        return ChunkAvailabilityResponse(
            transaction_id=request.transaction_id,
            peer_id=self.state.peer_id,
            swarm_id=request.swarm_id,
            chunk_map=self.state.chunk_map(request.swarm_id),
        )

    def _property_query(
        self, request: PropertyQueryRequest, now: float, sender: Sender
    ) -> PropertyQueryResponse:
        values = self.state.property_values(request.swarm_id, now)
        partner = sender is Sender.SELF and self.state.exchanges_chunks(
            request.swarm_id, request.peer_id
        )
        if not (self.disclose_stats or partner):
            values = {name: v for name, v in values.items() if name.lower() in SWARM_PROPERTIES}
        if request.properties:
            by_name = {name.lower(): value for name, value in values.items()}
            seen: set[str] = set()
            stats: list[Stat] = []
            for name in request.properties:
                key = name.lower()
                if key in by_name and key not in seen:
                    seen.add(key)
                    stats.append(Stat(property=name, value=by_name[key].strip()))
        else:
            stats = [Stat(property=name, value=value.strip()) for name, value in values.items()]
        return PropertyQueryResponse(
            transaction_id=request.transaction_id,
            peer_id=self.state.peer_id,
            swarm_id=request.swarm_id,
            stats=tuple(stats),
        )

    def _transport_negotiation(
        self, request: TransportNegotiationRequest, now: float
    ) -> TransportNegotiationResponse:
        served = {offer.type.upper(): offer for offer in self.state.transports(request.swarm_id)}
        if HTTP not in served:
            raise PeerInternalError("the mandatory HTTP transport is not configured")
        chosen: list[TransportOffer] = []
        for kind in dict.fromkeys(kind.upper() for kind in request.transports):
            if kind in served:
                chosen.append(TransportOffer(type=kind, uri=served[kind].uri))
        if not chosen:
            raise ObjectNotFound("no transport in common")
        return TransportNegotiationResponse(
            transaction_id=request.transaction_id,
            peer_id=self.state.peer_id,
            swarm_id=request.swarm_id,
            transports=tuple(chosen),
        )


# --------------------------------------------------------------------------------------------
# Asking side.

_ANSWER_TYPES: dict[tuple[PeerMethod, bool], tuple[type, ...]] = {
    (PeerMethod.FIND, False): (FindResponse,),
    (PeerMethod.FIND_CHUNK, False): (FindResponse,),
    (PeerMethod.CHUNK_AVAILABILITY, False): (ChunkAvailabilityResponse,),
    (PeerMethod.CHUNK_AVAILABILITY, True): (OkResponse, ChunkAvailabilityResponse),
    (PeerMethod.PROPERTY_QUERY, False): (PropertyQueryResponse,),
    (PeerMethod.TRANSPORT_NEGOTIATION, False): (TransportNegotiationResponse,),
}
"""Which success answers each (method, is PUSH) may get; an ErrorResponse is always possible."""


def _is_push(request: PeerRequest) -> bool:
    return isinstance(request, ChunkAvailabilityRequest) and request.is_push


def _offered(request: PeerRequest, answer: TransportNegotiationResponse) -> bool:
    """Whether the answer designates at least one transport, each one offered in the request."""
    offered = request.transports if isinstance(request, TransportNegotiationRequest) else ()
    return bool(answer.transports) and all(offer.type in offered for offer in answer.transports)


class PeerProtocolClient:
    """Builds requests for one peer and matches the answers to them.

    Transaction IDs are 64-bit decimal integers, consecutive from a random start (the draft
    asks for random ones; a counter from a random start is just as unpredictable to others and
    unique per sender until it wraps after 2**64 requests).  Outstanding requests are kept
    with their deadlines until answered or expired.
    """

    def __init__(
        self,
        peer_id: str,
        *,
        first_transaction_id: int | None = None,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.peer_id = peer_id
        self.timeout = timeout
        start = secrets.randbits(63) if first_transaction_id is None else first_transaction_id
        self._next_id = start % (1 << 64)
        self._pending: dict[str, tuple[PeerRequest, float]] = {}

    def next_transaction_id(self) -> str:
        """A transaction ID never used before by this client."""
        value = self._next_id
        self._next_id = (value + 1) % (1 << 64)
        return str(value)

    def find(
        self,
        swarm_id: str,
        *,
        chunk_ids: Sequence[int] = (),
        content_group: Sequence[RepresentationScope] = (),
        peer_num: PeerNum | None = None,
    ) -> FindRequest:
        """A FIND: peers of the swarm (ChunkID *n*: holding chunks *n* and higher)."""
        return FindRequest(
            transaction_id=self.next_transaction_id(),
            peer_id=self.peer_id,
            swarm_id=swarm_id,
            method=PeerMethod.FIND,
            chunk_ids=tuple(chunk_ids),
            content_group=tuple(content_group),
            peer_num=peer_num,
        )

    def find_chunk(
        self,
        swarm_id: str,
        *,
        chunk_ids: Sequence[int] = (),
        content_group: Sequence[RepresentationScope] = (),
        peer_num: PeerNum | None = None,
    ) -> FindRequest:
        """A FIND_CHUNK: peers holding the named chunks or chunk ranges."""
        return replace(
            self.find(
                swarm_id, chunk_ids=chunk_ids, content_group=content_group, peer_num=peer_num
            ),
            method=PeerMethod.FIND_CHUNK,
        )

    def pull_chunk_map(self, swarm_id: str) -> ChunkAvailabilityRequest:
        """A CHUNK_AVAILABILITY PULL: ask for the remote peer's chunk map."""
        return ChunkAvailabilityRequest(
            transaction_id=self.next_transaction_id(), peer_id=self.peer_id, swarm_id=swarm_id
        )

    def push_chunk_map(
        self, swarm_id: str, chunk_map: Sequence[RepresentationMap]
    ) -> ChunkAvailabilityRequest:
        """A CHUNK_AVAILABILITY PUSH: publish this peer's chunk map."""
        return ChunkAvailabilityRequest(
            transaction_id=self.next_transaction_id(),
            peer_id=self.peer_id,
            swarm_id=swarm_id,
            chunk_map=tuple(chunk_map),
        )

    def property_query(
        self, swarm_id: str, properties: Sequence[str | Property] = ()
    ) -> PropertyQueryRequest:
        """A PROPERTY_QUERY for the named properties (none: every property the peer knows)."""
        return PropertyQueryRequest(
            transaction_id=self.next_transaction_id(),
            peer_id=self.peer_id,
            swarm_id=swarm_id,
            properties=tuple(str(name) for name in properties),
        )

    def transport_negotiation(
        self, swarm_id: str, transports: Sequence[str] = (HTTP,)
    ) -> TransportNegotiationRequest:
        """A TRANSPORT_NEGOTIATION, most preferred first; HTTP (mandatory) is added if absent."""
        kinds = list(dict.fromkeys(kind.upper() for kind in transports))
        if HTTP not in kinds:
            kinds.append(HTTP)
        return TransportNegotiationRequest(
            transaction_id=self.next_transaction_id(),
            peer_id=self.peer_id,
            swarm_id=swarm_id,
            transports=tuple(kinds),
        )

    def send(self, request: PeerRequest, now: float) -> bytes:
        """Encode ``request`` and record it as outstanding until ``now + timeout``."""
        if request.transaction_id in self._pending:
            raise LocalProtocolError(f"transaction {request.transaction_id} is already pending")
        data = encode_request(request)
        self._pending[request.transaction_id] = (request, now + self.timeout)
        return data

    def receive(self, request: PeerRequest, data: bytes, status: int = 200) -> PeerResponse:
        """Decode the answer to outstanding ``request`` and check that it fits it.

        Returns an :class:`ErrorResponse` as it is (``to_error()`` gives the exception); raises
        InvalidSyntax when the answer is malformed, echoes another transaction ID, or does not
        answer this method (or, for TRANSPORT_NEGOTIATION, designates a transport that was not
        offered).
        """
        pending = self._pending.get(request.transaction_id)
        if pending is None or pending[0] != request:
            raise LocalProtocolError(f"transaction {request.transaction_id} is not pending")
        del self._pending[request.transaction_id]
        answer = decode_response(data, status, answering=request.method)
        if answer.transaction_id not in (None, request.transaction_id):
            raise InvalidSyntax("answer echoes another TransactionID")
        if isinstance(answer, ErrorResponse):
            return answer
        if not isinstance(answer, _ANSWER_TYPES[(request.method, _is_push(request))]):
            raise InvalidSyntax(f"{type(answer).__name__} does not answer {request.method.value}")
        if isinstance(answer, TransportNegotiationResponse) and not _offered(request, answer):
            raise InvalidSyntax("answer designates a transport that was not offered")
        return answer

    @property
    def pending(self) -> tuple[PeerRequest, ...]:
        """Requests sent and not yet answered or expired."""
        return tuple(request for request, _ in self._pending.values())

    def next_deadline(self) -> float | None:
        """When the earliest outstanding request times out; None when none is outstanding."""
        return min((deadline for _, deadline in self._pending.values()), default=None)

    def expire(self, now: float) -> tuple[PeerRequest, ...]:
        """Drop and return the requests whose deadline is at or before ``now``."""
        expired = [tid for tid, (_, deadline) in self._pending.items() if deadline <= now]
        return tuple(self._pending.pop(tid)[0] for tid in expired)
