"""Typed PPSP tracker protocol (PPSP-TP) messages, one model for every version and encoding.

The model covers PPSP-TP/1.1 (draft-huang-ppsp-extended-tracker-protocol-01), PPSP-TP/1.0 in
XML (draft-ietf-ppsp-base-tracker-protocol-02, draft-cruz-...-00) and in JSON (RFC 7846).
Codecs (:mod:`ppsp.codecs.tracker_xml`, :mod:`ppsp.codecs.tracker_json`) turn bytes into these
objects and back; they do all validation, so a message that exists is a valid message and
handlers never re-check syntax.

Every message is a frozen, slotted, keyword-only dataclass.  Sequences are tuples, so messages
are hashable and safe to share.  Encoding-specific spellings (``SEED`` in XML versus ``SEEDER`` in
JSON, ``200 OK`` result strings, ...) live in the codecs, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, TypeVar

from ppsp.errors import TrackerErrorCode
from ppsp.wire.fields import ALL_SWARMS as ALL_SWARMS  # re-exported: DISCONNECT's "ALL"
from ppsp.wire.fields import NO_SWARM as NO_SWARM  # re-exported: DISCONNECT's "nil"


class IdentityEnum(Enum):
    """An enumeration whose members hash by identity.

    ``Enum`` hashes a member by its name in Python code, a function call on every dictionary or
    set look-up; members are singletons compared by identity, so the identity hash agrees with
    ``==`` and costs no call.  Every enumeration of the tracker derives from this one.
    """

    __hash__ = object.__hash__


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


class AddressFamily(IdentityEnum):
    """``@addrType`` / ``address_type``."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class AddressType(IdentityEnum):
    """``@type`` / ``type`` of a peer address, for NAT traversal."""

    HOST = "HOST"
    REFLEXIVE = "REFLEXIVE"
    PROXY = "PROXY"


class DisconnectScope(IdentityEnum):
    """What a DISCONNECT leaves: the named swarms, every swarm (``ALL``), or the system (``nil``).

    On the wire ``ALL`` and ``nil`` are SwarmID values (huang-01 section 4.2), which is why
    neither is ever a swarm's own ID (:data:`~ppsp.wire.fields.RESERVED_SWARM_IDS`).
    """

    SWARMS = "SWARMS"
    ALL_SWARMS = "ALL"
    SYSTEM = "SYSTEM"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAddress:
    """One transport address of a peer (``PeerAddress`` / ``peer_addr``).

    ``asn`` is kept as text: the drafts print it as a string in both encodings.
    """

    ip: str
    port: int
    family: AddressFamily = AddressFamily.IPV4
    priority: int | None = None
    type: AddressType | None = None
    connection: str | None = None
    asn: str | None = None
    peer_protocol: str | None = None


class EncodedForms:
    """Two slots where the codecs keep the encoded form of an entry (see :class:`PeerInfo`).

    Not dataclass fields: equality, hashing, ``repr``, ``replace`` and copies ignore them.  An
    unset slot raises AttributeError when read.
    """

    __slots__ = ("_encoded_json", "_encoded_xml")


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerInfo(EncodedForms):
    """A peer in a peer list (``PeerInfo`` / ``peer_info``).

    ``swarm_id`` is the XML ``@swarmID`` attribute (or the JSON ``swarm_result`` the entry was
    listed under): the swarm this peer was returned for.

    The tracker lists the same entry object for as long as the member it stands for is
    unchanged (see :func:`ppsp.tracker.peerlist.to_peer_infos`); each codec writes an entry's
    form once and keeps it in the entry (``_encoded_xml``, ``_encoded_json``).  The object is
    immutable, so what was written for it stays right; nothing else reads those slots.
    """

    peer_id: str | None = None
    addresses: tuple[PeerAddress, ...] = ()
    swarm_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerNum:
    """Scope selector for the size and kind of a returned peer list (``PeerNum`` / ``peer_num``).

    ``count`` is the element text (XML) or ``peer_count`` (JSON).  The capability selectors are
    kept as text: the XML drafts use levels (``HIGH``, ``NORMAL``, ``LOW``) and RFC 7846 uses
    integers (links, seconds, kbps); the JSON codec writes decimal text as integers.
    """

    count: int | None = None
    ability_nat: str | None = None
    concurrent_links: str | None = None
    online_time: str | None = None
    upload_bandwidth: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RepresentationScope:
    """One ``Representation`` of a ``ContentGroup``: a chunk range of one content component.

    ``end_index`` is optional (open-ended scope, for example a live joining point).
    """

    representation_id: str
    start_index: int
    end_index: int | None = None


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
class SegmentMap:
    """A ``SegmentInfo`` of a content map: the chunks of ``[start_index, end_index]`` held.

    ``bitmap`` is the decoded Base64 chunk map: bit *i*, most significant bit of each byte first,
    is chunk ``start_index + i``; ``chunkmap_size`` counts bits (PROFILE.md).
    """

    start_index: int
    end_index: int
    chunkmap_size: int
    bitmap: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RepresentationMap:
    """Content map of one ``Representation``: one or more segment ranges."""

    representation_id: str
    segments: tuple[SegmentMap, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentMap:
    """``Stat property="ContentMap"``: the chunks a peer holds in one swarm (PPSP-TP/1.1)."""

    swarm_id: str
    representations: tuple[RepresentationMap, ...]


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
    """STAT_REPORT: statistics, content maps, or nothing at all (a keep-alive)."""

    stream_stats: tuple[StreamStatistics, ...] = ()
    content_maps: tuple[ContentMap, ...] = ()

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


def merge_listed_peers(peers: list[PeerInfo]) -> list[PeerInfo]:
    """A decoded peer list in which each peer appears once per swarm.

    Entries naming the same peer ID for the same swarm become one entry, at the place of the
    first, holding the addresses of all of them in order: RFC 7846 lists a peer with several
    addresses as one ``peer_info`` per address, and every codec reads every peer list this way
    (docs/PROTOCOL.md), so that a list one codec read is a list every codec writes alike.
    Entries without a peer ID are kept as they are.  The input list is returned when nothing
    merges (the usual case).
    """
    seen: dict[tuple[str | None, str], int] = {}
    merged: list[PeerInfo] | None = None
    for index, peer in enumerate(peers):
        if peer.peer_id is None:
            if merged is not None:
                merged.append(peer)
            continue
        key = (peer.swarm_id, peer.peer_id)
        first = seen.get(key)
        if first is None:
            if merged is not None:
                seen[key] = len(merged)
                merged.append(peer)
            else:
                seen[key] = index
            continue
        if merged is None:
            merged = list(peers[:index])
        kept = merged[first]
        merged[first] = PeerInfo(
            peer_id=kept.peer_id,
            addresses=kept.addresses + peer.addresses,
            swarm_id=kept.swarm_id,
        )
    return peers if merged is None else merged


_D = TypeVar("_D")


def positional_builder(cls: type[_D]) -> Callable[..., _D]:
    """A function building ``cls`` from all its fields, positionally, in declaration order.

    For frozen, slotted dataclasses (these messages, the storage's records): the ``__init__``
    of a frozen class writes each field through ``object.__setattr__``, which costs about twice
    as much as writing the slot directly, as the builder does.  Every field must be given
    (defaults are not applied); no check is skipped (these classes have no ``__post_init__``).
    Meant for the few objects the tracker builds on every request.
    """
    names = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def build({', '.join(names)}):", "    obj = _new(_cls)"]
    for name in names:
        slot = next(vars(klass)[name] for klass in cls.__mro__ if name in vars(klass))
        namespace[f"_set_{name}"] = slot.__set__
        lines.append(f"    _set_{name}(obj, {name})")
    lines.append("    return obj")
    exec("\n".join(lines), namespace)
    builder: Callable[..., _D] = namespace["build"]
    return builder
