"""Typed PPSP tracker protocol (PPSP-TP) messages, one model for every version and encoding.

The model covers PPSP-TP/1.1 (draft-huang-ppsp-extended-tracker-protocol-01), PPSP-TP/1.0 in
XML (draft-ietf-ppsp-base-tracker-protocol-02, draft-cruz-...-00) and in JSON (RFC 7846).
Codecs (:mod:`ppsp.codecs.tracker_xml`, :mod:`ppsp.codecs.tracker_json`) turn bytes into these
objects and back; they do all validation, so a message that exists is a valid message and
handlers never re-check syntax.

Only what the tracker protocol alone carries is defined here; the types it shares with the peer
protocol (peers, addresses, scopes, chunk maps) live in :mod:`ppsp.wire.common` and are
re-exported for the modules that read every tracker type from one place.

Every message is a frozen, slotted, keyword-only dataclass.  Sequences are tuples, so messages
are hashable and safe to share.  Encoding-specific spellings (``SEED`` in XML versus ``SEEDER`` in
JSON, ``200 OK`` result strings, ...) live in the codecs, never here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppsp.errors import TrackerErrorCode
from ppsp.wire.common import (
    AddressFamily,
    AddressType,
    ContentMap,
    IdentityEnum,
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    merge_listed_peers,
)
from ppsp.wire.fields import ALL_SWARMS, NO_SWARM

__all__ = [
    "ALL_SWARMS",
    "CONTENT_TYPES",
    "NO_SWARM",
    "ActionResult",
    "AddressFamily",
    "AddressType",
    "AnyRequest",
    "ConnectRequest",
    "ContentMap",
    "CorruptPeerReport",
    "DisconnectRequest",
    "DisconnectScope",
    "Encoding",
    "ErrorResponse",
    "FindRequest",
    "IdentityEnum",
    "JoinRequest",
    "Method",
    "PeerAddress",
    "PeerInfo",
    "PeerMode",
    "PeerNum",
    "ProtocolVersion",
    "RepresentationMap",
    "RepresentationScope",
    "SegmentMap",
    "StatReportRequest",
    "StreamStatistics",
    "SwarmAction",
    "SwarmActionType",
    "TrackerMessage",
    "TrackerRequest",
    "TrackerResponse",
    "merge_listed_peers",
]


class ProtocolVersion(IdentityEnum):
    """PPSP-TP version.  JSON ``"version": 1`` is 1.0 (RFC 7846); ``"version": 2`` is 1.1."""

    V1_0 = "1.0"
    V1_1 = "1.1"


class Encoding(IdentityEnum):
    """Wire encoding of a tracker message, chosen by the HTTP Content-Type."""

    XML = "xml"
    JSON = "json"

    @property
    def content_type(self) -> str:
        """The media type a message in this encoding is sent with."""
        return CONTENT_TYPES[self]


CONTENT_TYPES: dict[Encoding, str] = {
    Encoding.XML: "application/ppsp-tracker+xml",
    Encoding.JSON: "application/ppsp-tracker+json",
}


class Method(IdentityEnum):
    """Request methods: CONNECT, FIND, STAT_REPORT (1.0) plus JOIN and DISCONNECT (1.1)."""

    CONNECT = "CONNECT"
    JOIN = "JOIN"
    DISCONNECT = "DISCONNECT"
    FIND = "FIND"
    STAT_REPORT = "STAT_REPORT"


class PeerMode(IdentityEnum):
    """How a peer takes part in a swarm (XML ``SEED``/``LEECH``; JSON ``SEEDER``/``LEECH``)."""

    SEED = "SEED"
    LEECH = "LEECH"


class SwarmActionType(IdentityEnum):
    """The ``@action`` of a SwarmID in a CONNECT request."""

    JOIN = "JOIN"
    LEAVE = "LEAVE"


class DisconnectScope(IdentityEnum):
    """What a DISCONNECT leaves: the named swarms, every swarm (``ALL``), or the system (``nil``).

    On the wire ``ALL`` and ``nil`` are SwarmID values (huang-01 section 4.2), which is why
    neither is ever a swarm's own ID (:data:`~ppsp.wire.fields.RESERVED_SWARM_IDS`).
    """

    SWARMS = "SWARMS"
    ALL_SWARMS = "ALL"
    SYSTEM = "SYSTEM"


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmAction:
    """A SwarmID of a request, with its optional action, peer mode and per-action transaction ID.

    CONNECT uses ``action`` and ``peer_mode``; JOIN uses ``peer_mode``; DISCONNECT uses neither.
    """

    swarm_id: str
    action: SwarmActionType | None = None
    peer_mode: PeerMode | None = None
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatistics:
    """``Stat property="StreamStatistics"`` / ``STREAM_STATS`` for one swarm.

    ``extra`` holds further statistics as (name, decimal text) pairs, the extension form the XML
    drafts show (``<OnlineTime>3600</OnlineTime>``) and that live viewers use to report their
    quality of experience.
    """

    swarm_id: str | None = None
    uploaded_bytes: int | None = None
    downloaded_bytes: int | None = None
    available_bandwidth: int | None = None
    concurrent_links: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CorruptPeerReport:
    """A peer that served corrupt data (an extension of STAT_REPORT, docs/PROTOCOL.md).

    ``peer_id`` served ``corrupt_chunks`` chunks (or live envelopes) of ``swarm_id`` that
    failed their hash (or signature), from the address ``ip``:``port`` it was reached at
    (``ip`` in canonical text).  XML writes it as ``<Stat property="CorruptPeer">``, JSON as a
    stat of a ``CORRUPT_PEER`` group; readers that do not know it ignore it.
    """

    swarm_id: str
    peer_id: str
    ip: str
    port: int
    corrupt_chunks: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerRequest:
    """Fields every request has."""

    version: ProtocolVersion
    transaction_id: str
    peer_id: str

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """Addresses the peer advertised in this request (empty for most methods)."""
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest(TrackerRequest):
    """CONNECT: registration only (no swarm actions, 1.1) or fast CONNECT with swarm actions.

    ``content_group`` is the 1.1 joining point that a fast CONNECT may carry (huang-04 form).
    """

    peer_addresses: tuple[PeerAddress, ...] = ()
    swarm_actions: tuple[SwarmAction, ...] = ()
    peer_num: PeerNum | None = None
    content_group: tuple[RepresentationScope, ...] = ()

    @property
    def method(self) -> Method:
        """Always CONNECT."""
        return Method.CONNECT

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The peer's advertised addresses (PeerGroup)."""
        return self.peer_addresses


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRequest(TrackerRequest):
    """JOIN (1.1): enter one or more swarms as SEED or LEECH, optionally from a joining point."""

    swarms: tuple[SwarmAction, ...]
    peer_num: PeerNum | None = None
    content_group: tuple[RepresentationScope, ...] = ()

    @property
    def method(self) -> Method:
        """Always JOIN."""
        return Method.JOIN


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectRequest(TrackerRequest):
    """DISCONNECT (1.1): leave named swarms, all swarms (``ALL``) or the system (``nil``)."""

    scope: DisconnectScope
    swarms: tuple[SwarmAction, ...] = ()

    @property
    def method(self) -> Method:
        """Always DISCONNECT."""
        return Method.DISCONNECT


@dataclass(frozen=True, slots=True, kw_only=True)
class FindRequest(TrackerRequest):
    """FIND: peers of a swarm, optionally only those holding chunks of a ContentGroup scope."""

    swarm_id: str
    peer_num: PeerNum | None = None
    content_group: tuple[RepresentationScope, ...] = ()

    @property
    def method(self) -> Method:
        """Always FIND."""
        return Method.FIND


@dataclass(frozen=True, slots=True, kw_only=True)
class StatReportRequest(TrackerRequest):
    """STAT_REPORT: statistics, content maps, or nothing at all (a keep-alive).

    ``corrupt_peers``: peers this one banned for corrupt data (the extension of
    :class:`CorruptPeerReport`), at most :data:`~ppsp.wire.fields.MAX_CORRUPT_REPORTS`.
    """

    stream_stats: tuple[StreamStatistics, ...] = ()
    content_maps: tuple[ContentMap, ...] = ()
    corrupt_peers: tuple[CorruptPeerReport, ...] = ()

    @property
    def method(self) -> Method:
        """Always STAT_REPORT."""
        return Method.STAT_REPORT


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    """The outcome of one swarm action of a request.

    XML writes it as ``<Result transactionID="12345.1">200 OK</Result>``; JSON as a
    ``swarm_result`` with ``swarm_id`` and ``result`` (0 success, 1 failure).  ``status`` is the
    HTTP-style status of the action (200 on success).
    """

    transaction_id: str | None = None
    swarm_id: str | None = None
    status: int = 200

    @property
    def ok(self) -> bool:
        """Whether the action succeeded."""
        return self.status == 200


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerResponse:
    """A successful answer (``SUCCESSFUL`` / ``response_type`` 0).

    ``requester`` is the requesting peer as the tracker sees it (its REFLEXIVE address);
    ``peers`` is the peer list, each entry tagged with the swarm it was returned for.
    ``results`` holds per-action results where the request used hierarchical transaction IDs
    (XML) or where JSON reports a ``swarm_result``.
    """

    version: ProtocolVersion
    transaction_id: str
    results: tuple[ActionResult, ...] = ()
    requester: PeerInfo | None = None
    peers: tuple[PeerInfo, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResponse:
    """A failed answer: XML HTTP status plus reason phrase, or JSON ``response_type`` 1."""

    version: ProtocolVersion
    transaction_id: str | None
    code: TrackerErrorCode
    reason: str | None = None


TrackerMessage = (
    ConnectRequest
    | JoinRequest
    | DisconnectRequest
    | FindRequest
    | StatReportRequest
    | TrackerResponse
    | ErrorResponse
)
"""Any PPSP-TP message."""

AnyRequest = ConnectRequest | JoinRequest | DisconnectRequest | FindRequest | StatReportRequest
"""Any PPSP-TP request."""
