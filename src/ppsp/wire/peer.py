"""Typed PPSP peer protocol (PPSP-PP/0.1, XML) messages.

The model follows the seed slides and draft-gu-ppsp-peer-protocol-02 as profiled by PROFILE.md:
five request methods (FIND, FIND_CHUNK, CHUNK_AVAILABILITY, PROPERTY_QUERY,
TRANSPORT_NEGOTIATION), their answers, a generic ``OK`` acknowledgement (the answer to a PUSH)
and the error answer of Table 2.  Peer lists and chunk maps are the types the tracker protocol
carries too (:class:`~ppsp.wire.common.PeerInfo`, :class:`~ppsp.wire.common.RepresentationMap`,
defined once in :mod:`ppsp.wire.common`), as the slides ask ("consistent with Tracker protocol
... Peerlist description").

Every message is a frozen, slotted, keyword-only dataclass; sequences are tuples.  The codec
(:mod:`ppsp.codecs.peer_xml`) does all validation: a message decoded from the wire is valid, and the
encoder refuses a message that would not decode back to itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from urllib.parse import quote

from ppsp.errors import PEER_ERROR_CLASSES, PeerProtocolError
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.common import (
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
)

__all__ = [
    "HTTP",
    "PROTOCOL_VERSION",
    "ChunkAvailabilityRequest",
    "ChunkAvailabilityResponse",
    "ErrorResponse",
    "FindRequest",
    "FindResponse",
    "OkResponse",
    "PeerInfo",
    "PeerMessage",
    "PeerMethod",
    "PeerNum",
    "PeerRequest",
    "PeerResponse",
    "Property",
    "PropertyQueryRequest",
    "PropertyQueryResponse",
    "RepresentationMap",
    "RepresentationScope",
    "SegmentMap",
    "Stat",
    "TransportNegotiationRequest",
    "TransportNegotiationResponse",
    "TransportOffer",
    "bitmaps_from_chunk_map",
    "chunk_map_from_bitmaps",
    "format_property_value",
]

PROTOCOL_VERSION = "0.1"
"""The only peer protocol version this implementation speaks (draft-gu-...-02, PROFILE.md)."""

HTTP = "HTTP"
"""The mandatory transport (PROFILE.md): chunk data over HTTP GET on the peer's own port."""


class PeerMethod(Enum):
    """Request methods of Table 1 (case-insensitive on the wire, upper case here)."""

    FIND = "FIND"
    FIND_CHUNK = "FIND_CHUNK"
    CHUNK_AVAILABILITY = "CHUNK_AVAILABILITY"
    PROPERTY_QUERY = "PROPERTY_QUERY"
    TRANSPORT_NEGOTIATION = "TRANSPORT_NEGOTIATION"


class Property(StrEnum):
    """Property names a peer can be asked for in PROPERTY_QUERY.

    The first block is the draft's Table 3; the rest are this implementation's additions:
    upload rate in bytes/s, online time in seconds, the number of chunks held in the swarm, and
    live quality-of-experience figures (startup delay and delay behind the source in seconds,
    continuity index as a fraction in [0, 1], chunks skipped as a count).  The wire accepts any
    property name; unknown names are simply not answered.
    """

    CACHING_SIZE = "CachingSize"
    BANDWIDTH = "Bandwidth"
    LINK_NUMBER = "LinkNumber"
    CERTIFICATE = "Certificate"
    NAT = "NAT"
    STUN = "STUN"
    TURN = "TURN"
    SUM_BYTES = "SumBytes"
    ACCESS_MODE = "AccessMode"
    END_DEVICE = "EndDevice"
    AVAILABLE_BATTERY = "AvailableBattery"
    UPLOAD_RATE = "UploadRate"
    ONLINE_TIME = "OnlineTime"
    CHUNK_COUNT = "ChunkCount"
    STARTUP_DELAY = "StartupDelay"
    CONTINUITY_INDEX = "ContinuityIndex"
    CHUNKS_SKIPPED = "ChunksSkipped"
    DELAY_BEHIND_SOURCE = "DelayBehindSource"


_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def format_property_value(value: bool | int | float | str) -> str:
    """The wire text of a property value: ``true``/``false``, decimal integers, ``repr`` floats.

    Non-finite floats have no meaningful wire form and raise ValueError.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("property values must be finite")
        return repr(value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Stat:
    """One ``<Stat property="...">value</Stat>``; ``value`` is None in a request (no value).

    Values are text on the wire; the ``as_*`` helpers read them as typed values and return None
    when the text is absent or does not have that type (values from other peers are untrusted).
    """

    property: str
    value: str | None = None

    def as_int(self) -> int | None:
        """The value as a decimal integer, or None."""
        text = (self.value or "").strip()
        return int(text) if _INT_RE.fullmatch(text) else None

    def as_float(self) -> float | None:
        """The value as a finite number, or None."""
        try:
            number = float((self.value or "").strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None

    def as_bool(self) -> bool | None:
        """The value as a Boolean (``true``/``false``, ``yes``/``no``, ``1``/``0``), or None."""
        text = (self.value or "").strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportOffer:
    """A ``<TProt type="..." uri="..."/>``: a transport protocol and where it is served.

    In a request only ``type`` is set (the draft: "NO VALUE is presented").  In an answer the
    HTTP entry carries a URL template (PROFILE.md) in which ``{chunk}`` is the chunk index and
    ``{representation}`` the Representation id.
    """

    type: str
    uri: str | None = None

    def chunk_url(self, chunk: int, representation: str | None = None) -> str:
        """Expand the URI template for one chunk; ValueError when there is no template."""
        if self.uri is None:
            raise ValueError(f"transport {self.type} offers no URI")
        url = self.uri.replace("{chunk}", str(chunk))
        if representation is not None:
            url = url.replace("{representation}", quote(representation, safe=""))
        return url


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRequestBase:
    """Fields every request has (PROFILE.md): version, transaction ID, sender, swarm."""

    transaction_id: str
    peer_id: str
    swarm_id: str
    version: str = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class FindRequest(PeerRequestBase):
    """FIND or FIND_CHUNK: ask a peer for further peers of a swarm.

    ``chunk_ids`` are the ``ChunkID`` elements.  In FIND a ChunkID *n* asks for peers holding
    chunks *n* and higher, and 0 means any chunk (draft section 4.2.1.3.1); in FIND_CHUNK each
    ChunkID names one chunk.  ``content_group`` gives chunk ranges per Representation in the
    tracker's ``ContentGroup`` form.  ``peer_num`` is the tracker's ``PeerNum``: how many peers
    are wanted and the requester's property preferences.
    """

    method: PeerMethod = PeerMethod.FIND
    chunk_ids: tuple[int, ...] = ()
    content_group: tuple[RepresentationScope, ...] = ()
    peer_num: PeerNum | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkAvailabilityRequest(PeerRequestBase):
    """CHUNK_AVAILABILITY: PULL (``chunk_map`` None: send me your map) or PUSH (carries mine).

    A request that carries a ``CHUNK`` element is a PUSH, even when the element is empty (the
    sender holds nothing yet).
    """

    chunk_map: tuple[RepresentationMap, ...] | None = None

    @property
    def method(self) -> PeerMethod:
        """Always CHUNK_AVAILABILITY."""
        return PeerMethod.CHUNK_AVAILABILITY

    @property
    def is_push(self) -> bool:
        """Whether this request publishes the sender's chunk map."""
        return self.chunk_map is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertyQueryRequest(PeerRequestBase):
    """PROPERTY_QUERY: the ``Stat`` property names asked for (empty: every known property)."""

    properties: tuple[str, ...] = ()

    @property
    def method(self) -> PeerMethod:
        """Always PROPERTY_QUERY."""
        return PeerMethod.PROPERTY_QUERY


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportNegotiationRequest(PeerRequestBase):
    """TRANSPORT_NEGOTIATION: transport types the requester supports, most preferred first."""

    transports: tuple[str, ...]

    @property
    def method(self) -> PeerMethod:
        """Always TRANSPORT_NEGOTIATION."""
        return PeerMethod.TRANSPORT_NEGOTIATION


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerResponseBase:
    """Fields every answer has; ``transaction_id`` echoes the request's."""

    transaction_id: str | None
    version: str = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class FindResponse(PeerResponseBase):
    """Answer to FIND / FIND_CHUNK: the swarm, the chunk IDs echoed, and a peer list."""

    method: PeerMethod = PeerMethod.FIND
    peer_id: str | None = None
    swarm_id: str | None = None
    chunk_ids: tuple[int, ...] = ()
    peers: tuple[PeerInfo, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkAvailabilityResponse(PeerResponseBase):
    """Answer to a PULL: the answering peer's chunk map for the swarm."""

    peer_id: str | None = None
    swarm_id: str | None = None
    chunk_map: tuple[RepresentationMap, ...] = ()

    @property
    def method(self) -> PeerMethod:
        """Always CHUNK_AVAILABILITY."""
        return PeerMethod.CHUNK_AVAILABILITY


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertyQueryResponse(PeerResponseBase):
    """Answer to PROPERTY_QUERY: one ``Stat`` with a value per property the peer knows."""

    peer_id: str | None = None
    swarm_id: str | None = None
    stats: tuple[Stat, ...] = ()

    @property
    def method(self) -> PeerMethod:
        """Always PROPERTY_QUERY."""
        return PeerMethod.PROPERTY_QUERY

    def get(self, name: str) -> Stat | None:
        """The Stat answering property ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for stat in self.stats:
            if stat.property.lower() == wanted:
                return stat
        return None

    def as_dict(self) -> dict[str, str]:
        """Property name to value text, for every answered property."""
        return {stat.property: stat.value or "" for stat in self.stats}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportNegotiationResponse(PeerResponseBase):
    """Answer to TRANSPORT_NEGOTIATION: the common transports, in the requester's order."""

    peer_id: str | None = None
    swarm_id: str | None = None
    transports: tuple[TransportOffer, ...] = ()

    @property
    def method(self) -> PeerMethod:
        """Always TRANSPORT_NEGOTIATION."""
        return PeerMethod.TRANSPORT_NEGOTIATION

    def offer(self, transport: str) -> TransportOffer | None:
        """The offer of transport type ``transport`` (case-insensitive), or None."""
        wanted = transport.upper()
        for offer in self.transports:
            if offer.type.upper() == wanted:
                return offer
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class OkResponse(PeerResponseBase):
    """A bare success, ``<Response>OK</Response>``: the acknowledgement of a PUSH."""

    peer_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResponse(PeerResponseBase):
    """An error answer: the HTTP ``status`` and the Table 2 ``response`` phrase."""

    status: int
    response: str

    @classmethod
    def from_error(
        cls, error: PeerProtocolError, transaction_id: str | None = None
    ) -> ErrorResponse:
        """The answer that reports ``error`` (its own transaction ID unless one is given)."""
        return cls(
            transaction_id=transaction_id if transaction_id is not None else error.transaction_id,
            status=error.status,
            response=error.response,
        )

    def to_error(self) -> PeerProtocolError:
        """The exception of the Table 2 row this answer reports."""
        error_class = PEER_ERROR_CLASSES.get(self.response, PeerProtocolError)
        return error_class(
            f"peer answered {self.status} {self.response}", transaction_id=self.transaction_id
        )


PeerRequest = (
    FindRequest | ChunkAvailabilityRequest | PropertyQueryRequest | TransportNegotiationRequest
)
"""Any peer protocol request."""

PeerResponse = (
    FindResponse
    | ChunkAvailabilityResponse
    | PropertyQueryResponse
    | TransportNegotiationResponse
    | OkResponse
    | ErrorResponse
)
"""Any peer protocol answer."""

PeerMessage = PeerRequest | PeerResponse
"""Any peer protocol message."""


def chunk_map_from_bitmaps(
    bitmaps: Mapping[str, Sequence[ChunkBitmap]],
) -> tuple[RepresentationMap, ...]:
    """The wire chunk map of per-Representation bitmaps (empty bitmaps ranges are left out)."""
    representations: list[RepresentationMap] = []
    for representation_id, segments in bitmaps.items():
        maps = tuple(
            SegmentMap(
                start_index=bitmap.start,
                end_index=bitmap.end,
                chunkmap_size=bitmap.size,
                bitmap=bitmap.to_bytes(),
            )
            for bitmap in segments
            if bitmap.size > 0
        )
        if maps:
            representations.append(
                RepresentationMap(representation_id=representation_id, segments=maps)
            )
    return tuple(representations)


def bitmaps_from_chunk_map(
    chunk_map: Iterable[RepresentationMap],
) -> dict[str, list[ChunkBitmap]]:
    """Per-Representation bitmaps of a wire chunk map (as decoded, so always consistent)."""
    result: dict[str, list[ChunkBitmap]] = {}
    for representation in chunk_map:
        result.setdefault(representation.representation_id, []).extend(
            ChunkBitmap(segment.chunkmap_size, segment.start_index, segment.bitmap)
            for segment in representation.segments
        )
    return result
