"""XML codec of the PPSP peer protocol (PPSP-PP/0.1): bytes to messages and back.

Wire form (draft-gu-ppsp-peer-protocol-02, seed slides, PROFILE.md)::

    <PPSPPeerProtocol version="0.1">
      <Method>FIND</Method>                 (or <Response>FIND</Response>)
      <TransactionID>6172839405</TransactionID>
      <PeerID>...</PeerID> <SwarmID>...</SwarmID>
      ...method-specific elements...
    </PPSPPeerProtocol>

All validation lives here.  Decoding never lets anything but a
:class:`~ppsp.errors.PeerProtocolError` escape: hostile or malformed input is
``INVALID SYNTAX`` (400), an unknown ``version`` is ``VERSION NOT SUPPORTED`` and an unknown
method ``MESSAGE NOT SUPPORTED``.  Every count, length and number is bounded before it is used.
Encoding checks its own output by decoding it: a message that would not come back equal
(non-canonical text, out-of-range numbers, an inconsistent bitmap) raises
:class:`~ppsp.errors.LocalProtocolError`, so that what is sent is always what the peer reads.

Values follow the field rules every codec shares (:mod:`ppsp.wire.fields`), so that peer lists
and chunk maps pass between this protocol and the tracker's encodings unchanged: identifiers
and attribute values are tokens of 1 to 256 characters, a SwarmID is never ``ALL`` or ``nil``,
integers are at most ``2**63 - 1`` (ports 1-65535), IP addresses are read into canonical form,
a chunk map segment holds at most 2**20 bits, and the counts of peers, addresses,
representations and segments are those of the tracker's codecs.  A listed peer (``PeerInfo``)
has a PeerID and at least one PeerAddress; entries naming one peer for one swarm are read as one
peer (:func:`~ppsp.wire.tracker.merge_listed_peers`).

Names are matched by local name, whatever the namespace; method and response names and
transport types are case-insensitive.  Accepted alternative spellings: ``PeerNum`` for the
slides' ``Peernum``; ``PeerGroup`` for ``Peers``; ``StatsRequest`` and ``Stats`` for
``StatRequest`` (the slides close ``<StatRequest>`` with ``</StatsRequest>``, which is not
well-formed XML: a document must use one name for both tags).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from ppsp.codecs.safexml import XMLRejected, attribute, local_name, parse_xml
from ppsp.errors import (
    PEER_ERROR_CLASSES,
    InvalidSyntax,
    LocalProtocolError,
    MessageNotSupported,
    PeerProtocolError,
    VersionNotSupported,
)
from ppsp.wire import fields
from ppsp.wire.peer import (
    PROTOCOL_VERSION,
    ChunkAvailabilityRequest,
    ChunkAvailabilityResponse,
    ErrorResponse,
    FindRequest,
    FindResponse,
    OkResponse,
    PeerMethod,
    PeerRequest,
    PeerResponse,
    PropertyQueryRequest,
    PropertyQueryResponse,
    Stat,
    TransportNegotiationRequest,
    TransportNegotiationResponse,
    TransportOffer,
)
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    merge_listed_peers,
)

__all__ = [
    "CONTENT_TYPE",
    "MAX_MESSAGE_BYTES",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "response_status",
]

CONTENT_TYPE = "application/ppsp-peer+xml"
"""Media type of every peer protocol body (PROFILE.md)."""

ROOT = "PPSPPeerProtocol"

# Bounds.  A document over any of them is INVALID SYNTAX; they are generous for real peers
# and small for an attacker.  The bounds of values and lists the tracker protocol shares (peer
# lists, chunk maps, scopes) are those of ppsp.wire.fields, under this module's names.
MAX_MESSAGE_BYTES = 1 << 20
MAX_ELEMENTS = 20_000
MAX_TOKEN_LENGTH = fields.MAX_TOKEN_LENGTH
MAX_ID_LENGTH = MAX_TOKEN_LENGTH
MAX_TRANSACTION_ID_LENGTH = MAX_TOKEN_LENGTH
MAX_CHUNK_IDS = 1024
MAX_SCOPES = fields.MAX_REPRESENTATIONS
MAX_PEERS = fields.MAX_LISTED_PEERS
MAX_ADDRESSES = fields.MAX_PEER_ADDRESSES
MAX_REPRESENTATIONS = fields.MAX_REPRESENTATIONS
MAX_SEGMENTS = fields.MAX_SEGMENTS
MAX_CHUNK_INDEX = fields.MAX_INTEGER
MAX_CHUNKMAP_BITS = fields.MAX_CHUNKMAP_BITS
MAX_STATS = 64
MAX_VALUE_LENGTH = 16_384
MAX_TRANSPORTS = 16
MAX_URI_LENGTH = 2048
MAX_PEER_COUNT = fields.MAX_INTEGER

_TOKEN_RE = fields.TOKEN_RE
_URI_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]+")
_UINT_RE = re.compile(r"[0-9]{1,19}")
_VERSION_RE = re.compile(r"[0-9]{1,2}\.[0-9]")

_METHODS = {method.value: method for method in PeerMethod}
_SUCCESS = frozenset({"OK", "SUCCESSFUL"})

_STATUS_PHRASE = {
    400: "INVALID SYNTAX",
    401: "AUTHENTICATION REQUIRED",
    403: "MESSAGE FORBIDDEN",
    404: "OBJECT NOT FOUND",
    500: "INTERNAL ERROR",
    503: "TEMPORARILY OVERLOADED",
}
"""The phrase an error status stands for when an error answer comes without a body."""

_PEERS = ("Peers", "PeerGroup")
_PEERNUM = ("Peernum", "PeerNum")
_STATS = ("StatRequest", "StatsRequest", "Stats")

_Element = etree._Element


# --------------------------------------------------------------------------------------------
# Reading helpers: each raises InvalidSyntax with a short reason.


def _bad(reason: str) -> InvalidSyntax:
    return InvalidSyntax(f"INVALID SYNTAX: {reason}")


class _Children:
    """An element's child elements grouped by local name, in document order."""

    __slots__ = ("groups",)

    def __init__(self, parent: _Element) -> None:
        self.groups: dict[str, list[_Element]] = {}
        for child in parent:
            if isinstance(child.tag, str):
                self.groups.setdefault(local_name(child), []).append(child)

    def all(self, *names: str, limit: int) -> list[_Element]:
        found = [element for name in names for element in self.groups.get(name, ())]
        if len(found) > limit:
            raise _bad(f"more than {limit} {names[0]} elements")
        return found

    def one(self, *names: str) -> _Element | None:
        found = self.all(*names, limit=1)
        return found[0] if found else None

    def required(self, *names: str) -> _Element:
        element = self.one(*names)
        if element is None:
            raise _bad(f"missing {names[0]}")
        return element

    def has(self, *names: str) -> bool:
        return any(name in self.groups for name in names)


def _leaf_text(element: _Element) -> str:
    if any(isinstance(child.tag, str) for child in element):
        raise _bad(f"{local_name(element)} must not contain elements")
    return (element.text or "").strip()


def _check_container(element: _Element) -> None:
    if (element.text or "").strip():
        raise _bad(f"{local_name(element)} must contain elements only")


def _token(text: str | None, what: str) -> str:
    """A token (fields.TOKEN_RE)."""
    if text is None:
        raise _bad(f"missing {what}")
    if not _TOKEN_RE.fullmatch(text):
        raise _bad(f"invalid {what}")
    return text


def _opt_token(text: str | None, what: str) -> str | None:
    return None if text is None else _token(text, what)


def _swarm(text: str | None, what: str) -> str:
    """A swarm's own ID: a token other than ``ALL`` and ``nil`` (fields.is_swarm_id)."""
    token = _token(text, what)
    if token in fields.RESERVED_SWARM_IDS:
        raise _bad(f"{what} {token!r} is not a swarm's ID")
    return token


def _opt_swarm(text: str | None, what: str) -> str | None:
    return None if text is None else _swarm(text, what)


def _uint(text: str | None, what: str, maximum: int) -> int:
    if text is None:
        raise _bad(f"missing {what}")
    text = text.strip()
    if not _UINT_RE.fullmatch(text):
        raise _bad(f"{what} is not a decimal number")
    value = int(text)
    if value > maximum:
        raise _bad(f"{what} out of range")
    return value


def _id_element(children: _Children, name: str) -> str | None:
    element = children.one(name)
    if element is None:
        return None
    text = _leaf_text(element)
    return _swarm(text, name) if name == "SwarmID" else _token(text, name)


# --------------------------------------------------------------------------------------------
# The common header.


@dataclass(frozen=True, slots=True, kw_only=True)
class _Head:
    method: str | None
    response: str | None
    transaction_id: str | None
    children: _Children


def _open(data: bytes) -> _Head:
    """Parse and check everything the common header decides; fill transaction IDs in errors."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _bad("body is not bytes")
    try:
        root = parse_xml(bytes(data), max_bytes=MAX_MESSAGE_BYTES)
    except XMLRejected as exc:
        raise _bad(str(exc)) from None
    if local_name(root) != ROOT:
        raise _bad(f"root element is not {ROOT}")
    for count, _ in enumerate(root.iter(), start=1):
        if count > MAX_ELEMENTS:
            raise _bad(f"more than {MAX_ELEMENTS} elements")
    children = _Children(root)
    _check_container(root)
    transaction_id = _lenient_transaction_id(children)
    try:
        version = attribute(root, "version")
        if version is None:
            raise _bad("missing version")
        version = version.strip()
        if version != PROTOCOL_VERSION:
            if _VERSION_RE.fullmatch(version):
                raise VersionNotSupported(f"version {version} not supported")
            raise _bad("malformed version")
        method = children.one("Method")
        response = children.one("Response")
        if method is not None and response is not None:
            raise _bad("both Method and Response")
        tid = children.one("TransactionID")
        if tid is not None and transaction_id is None:
            raise _bad("invalid TransactionID")
        return _Head(
            method=None if method is None else " ".join(_leaf_text(method).split()).upper(),
            response=None if response is None else " ".join(_leaf_text(response).split()).upper(),
            transaction_id=transaction_id,
            children=children,
        )
    except PeerProtocolError as exc:
        exc.transaction_id = transaction_id
        raise


def _lenient_transaction_id(children: _Children) -> str | None:
    found = children.groups.get("TransactionID", [])
    if len(found) != 1:
        return None
    element = found[0]
    if any(isinstance(child.tag, str) for child in element):
        return None
    text = (element.text or "").strip()
    if not _TOKEN_RE.fullmatch(text):
        return None
    return text


# --------------------------------------------------------------------------------------------
# Shared parts: peer lists, chunk maps, scopes.


def _decode_peer_num(element: _Element) -> PeerNum:
    text = _leaf_text(element)
    return PeerNum(
        count=_uint(text, "Peernum", MAX_PEER_COUNT) if text else None,
        ability_nat=_opt_token(attribute(element, "abilityNAT"), "abilityNAT"),
        concurrent_links=_opt_token(attribute(element, "concurrentLinks"), "concurrentLinks"),
        online_time=_opt_token(attribute(element, "onlineTime"), "onlineTime"),
        upload_bandwidth=_opt_token(attribute(element, "uploadBWlevel"), "uploadBWlevel"),
    )


def _decode_chunk_ids(children: _Children) -> tuple[int, ...]:
    return tuple(
        _uint(_leaf_text(element), "ChunkID", MAX_CHUNK_INDEX)
        for element in children.all("ChunkID", limit=MAX_CHUNK_IDS)
    )


def _decode_content_group(element: _Element) -> tuple[RepresentationScope, ...]:
    _check_container(element)
    scopes: list[RepresentationScope] = []
    for representation in _Children(element).all("Representation", limit=MAX_SCOPES):
        _check_container(representation)
        rep_id = _token(attribute(representation, "id"), "Representation id")
        segments = _Children(representation).all("SegmentInfo", limit=MAX_SCOPES)
        if not segments:
            scopes.append(RepresentationScope(representation_id=rep_id, start_index=0))
        for segment in segments:
            start = _uint(attribute(segment, "startIndex"), "startIndex", MAX_CHUNK_INDEX)
            end_text = attribute(segment, "endIndex")
            end = None if end_text is None else _uint(end_text, "endIndex", MAX_CHUNK_INDEX)
            if end is not None and end < start:
                raise _bad("endIndex before startIndex")
            scopes.append(
                RepresentationScope(representation_id=rep_id, start_index=start, end_index=end)
            )
        if len(scopes) > MAX_SCOPES:
            raise _bad(f"more than {MAX_SCOPES} chunk ranges")
    return tuple(scopes)


def _decode_chunk_map(element: _Element) -> tuple[RepresentationMap, ...]:
    _check_container(element)
    total = 0
    representations: list[RepresentationMap] = []
    for representation in _Children(element).all("Representation", limit=MAX_REPRESENTATIONS):
        _check_container(representation)
        rep_id = _token(attribute(representation, "id"), "Representation id")
        segments: list[SegmentMap] = []
        for segment in _Children(representation).all("SegmentInfo", limit=MAX_SEGMENTS):
            total += 1
            if total > MAX_SEGMENTS:
                raise _bad(f"more than {MAX_SEGMENTS} SegmentInfo elements")
            segments.append(_decode_segment(segment))
        if not segments:
            raise _bad("a CHUNK Representation needs a SegmentInfo")
        representations.append(
            RepresentationMap(representation_id=rep_id, segments=tuple(segments))
        )
    return tuple(representations)


def _decode_segment(segment: _Element) -> SegmentMap:
    start = _uint(attribute(segment, "startIndex"), "startIndex", MAX_CHUNK_INDEX)
    end = _uint(attribute(segment, "endIndex"), "endIndex", MAX_CHUNK_INDEX)
    if end < start:
        raise _bad("endIndex before startIndex")
    size = end - start + 1
    if size > MAX_CHUNKMAP_BITS:
        raise _bad(f"chunk map of more than {MAX_CHUNKMAP_BITS} chunks")
    declared = attribute(segment, "chunkmapSize")
    if declared is not None and _uint(declared, "chunkmapSize", MAX_CHUNK_INDEX) != size:
        raise _bad("chunkmapSize does not match startIndex..endIndex")
    try:
        bitmap = fields.chunkmap_bytes(_leaf_text(segment), size)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return SegmentMap(start_index=start, end_index=end, chunkmap_size=size, bitmap=bitmap)


def _decode_peers(element: _Element) -> tuple[PeerInfo, ...]:
    _check_container(element)
    peers: list[PeerInfo] = []
    for info in _Children(element).all("PeerInfo", limit=MAX_PEERS):
        _check_container(info)
        children = _Children(info)
        addresses = tuple(
            _decode_address(address) for address in children.all("PeerAddress", limit=MAX_ADDRESSES)
        )
        if not addresses:
            raise _bad("PeerInfo without PeerAddress")
        peer_id = _id_element(children, "PeerID")
        if peer_id is None:
            raise _bad("PeerInfo without PeerID")
        peers.append(
            PeerInfo(
                peer_id=peer_id,
                addresses=addresses,
                swarm_id=_opt_swarm(attribute(info, "swarmID"), "swarmID"),
            )
        )
    merged = merge_listed_peers(peers)
    if any(len(peer.addresses) > MAX_ADDRESSES for peer in merged):
        raise _bad(f"a peer with more than {MAX_ADDRESSES} addresses")
    return tuple(merged)


def _decode_address(element: _Element) -> PeerAddress:
    try:
        ip, version = fields.canonical_ip(_token(attribute(element, "ip"), "ip"))
    except ValueError:
        raise _bad("invalid ip") from None
    family = AddressFamily.IPV4 if version == 4 else AddressFamily.IPV6
    declared = attribute(element, "addrType")
    if declared is not None and declared.strip().lower() != family.value:
        raise _bad("addrType does not match ip")
    port = _uint(attribute(element, "port"), "port", fields.MAX_PORT)
    if port < fields.MIN_PORT:
        raise _bad(f"port below {fields.MIN_PORT}")
    priority = attribute(element, "priority")
    kind = attribute(element, "type")
    try:
        address_type = None if kind is None else AddressType(kind.strip().upper())
    except ValueError:
        raise _bad("invalid address type") from None
    return PeerAddress(
        ip=ip,
        port=port,
        family=family,
        priority=None if priority is None else _uint(priority, "priority", MAX_PEER_COUNT),
        type=address_type,
        connection=_opt_token(attribute(element, "connection"), "connection"),
        asn=_opt_token(attribute(element, "asn"), "asn"),
        peer_protocol=_opt_token(attribute(element, "peerProtocol"), "peerProtocol"),
    )


def _decode_stats(element: _Element, *, with_values: bool) -> tuple[Stat, ...]:
    _check_container(element)
    stats: list[Stat] = []
    for stat in _Children(element).all("Stat", limit=MAX_STATS):
        name = _token(attribute(stat, "property"), "Stat property")
        text = _leaf_text(stat)
        if len(text) > MAX_VALUE_LENGTH:
            raise _bad("Stat value too long")
        if not with_values and text:
            raise _bad("a Stat in a request has no value")
        stats.append(Stat(property=name, value=text if with_values else None))
    return tuple(stats)


def _decode_transports(element: _Element, *, with_uri: bool) -> tuple[TransportOffer, ...]:
    _check_container(element)
    offers: list[TransportOffer] = []
    for tprot in _Children(element).all("TProt", limit=MAX_TRANSPORTS):
        if _leaf_text(tprot):
            raise _bad("TProt has no value")
        kind = _token(attribute(tprot, "type"), "TProt type").upper()
        uri = attribute(tprot, "uri")
        if uri is not None and (len(uri) > MAX_URI_LENGTH or not _URI_RE.fullmatch(uri)):
            raise _bad("invalid TProt uri")
        offers.append(TransportOffer(type=kind, uri=uri if with_uri else None))
    return tuple(offers)


# --------------------------------------------------------------------------------------------
# Requests.


def _common(head: _Head) -> tuple[str, str, str]:
    if head.transaction_id is None:
        raise _bad("missing TransactionID")
    peer_id = _token(_leaf_text(head.children.required("PeerID")), "PeerID")
    swarm_id = _swarm(_leaf_text(head.children.required("SwarmID")), "SwarmID")
    return head.transaction_id, peer_id, swarm_id


def _find_request(head: _Head, method: PeerMethod) -> FindRequest:
    tid, peer_id, swarm_id = _common(head)
    group = head.children.one("ContentGroup")
    content_group = () if group is None else _decode_content_group(group)
    chunk_ids = _decode_chunk_ids(head.children)
    if method is PeerMethod.FIND_CHUNK and not chunk_ids and not content_group:
        raise _bad("FIND_CHUNK names no chunk")
    peer_num = head.children.one(*_PEERNUM)
    return FindRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        method=method,
        chunk_ids=chunk_ids,
        content_group=content_group,
        peer_num=None if peer_num is None else _decode_peer_num(peer_num),
    )


def _chunk_availability_request(head: _Head, method: PeerMethod) -> ChunkAvailabilityRequest:
    tid, peer_id, swarm_id = _common(head)
    chunk = head.children.one("CHUNK")
    return ChunkAvailabilityRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_map=None if chunk is None else _decode_chunk_map(chunk),
    )


def _property_query_request(head: _Head, method: PeerMethod) -> PropertyQueryRequest:
    tid, peer_id, swarm_id = _common(head)
    stats = head.children.one(*_STATS)
    names = () if stats is None else _decode_stats(stats, with_values=False)
    return PropertyQueryRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        properties=tuple(stat.property for stat in names),
    )


def _transport_request(head: _Head, method: PeerMethod) -> TransportNegotiationRequest:
    tid, peer_id, swarm_id = _common(head)
    offers = _decode_transports(head.children.required("TransProt"), with_uri=False)
    if not offers:
        raise _bad("TransProt lists no transport")
    return TransportNegotiationRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        transports=tuple(offer.type for offer in offers),
    )


_REQUEST_DECODERS: dict[PeerMethod, Callable[[_Head, PeerMethod], PeerRequest]] = {
    PeerMethod.FIND: _find_request,
    PeerMethod.FIND_CHUNK: _find_request,
    PeerMethod.CHUNK_AVAILABILITY: _chunk_availability_request,
    PeerMethod.PROPERTY_QUERY: _property_query_request,
    PeerMethod.TRANSPORT_NEGOTIATION: _transport_request,
}


def decode_request(data: bytes) -> PeerRequest:
    """Decode a request body; raises :class:`~ppsp.errors.PeerProtocolError` and nothing else.

    The error carries the request's transaction ID whenever it could be read, so that the
    error answer can echo it.
    """
    head = _open(data)
    try:
        if head.response is not None or head.method is None:
            raise _bad("a request has a Method and no Response")
        method = _METHODS.get(head.method)
        if method is None:
            raise MessageNotSupported(f"method {head.method[:40]!r} not supported")
        return _REQUEST_DECODERS[method](head, method)
    except PeerProtocolError as exc:
        exc.transaction_id = head.transaction_id
        raise


# --------------------------------------------------------------------------------------------
# Responses.


def _response_ids(head: _Head) -> tuple[str | None, str | None]:
    return (
        _id_element(head.children, "PeerID"),
        _id_element(head.children, "SwarmID"),
    )


def _find_response(head: _Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    peers = head.children.one(*_PEERS)
    return FindResponse(
        transaction_id=tid,
        method=method,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_ids=_decode_chunk_ids(head.children),
        peers=() if peers is None else _decode_peers(peers),
    )


def _chunk_availability_response(head: _Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    chunk = head.children.one("CHUNK")
    if chunk is None:
        # A PUSH acknowledged under the method's name rather than OK.
        return OkResponse(transaction_id=tid, peer_id=peer_id)
    return ChunkAvailabilityResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_map=_decode_chunk_map(chunk),
    )


def _property_query_response(head: _Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    stats = head.children.one(*_STATS)
    return PropertyQueryResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        stats=() if stats is None else _decode_stats(stats, with_values=True),
    )


def _transport_response(head: _Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    offers = head.children.one("TransProt")
    return TransportNegotiationResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        transports=() if offers is None else _decode_transports(offers, with_uri=True),
    )


_RESPONSE_DECODERS: dict[PeerMethod, Callable[[_Head, PeerMethod, str], PeerResponse]] = {
    PeerMethod.FIND: _find_response,
    PeerMethod.FIND_CHUNK: _find_response,
    PeerMethod.CHUNK_AVAILABILITY: _chunk_availability_response,
    PeerMethod.PROPERTY_QUERY: _property_query_response,
    PeerMethod.TRANSPORT_NEGOTIATION: _transport_response,
}

_BODY_SHAPES: tuple[tuple[tuple[str, ...], PeerMethod], ...] = (
    (_PEERS, PeerMethod.FIND),
    (("CHUNK",), PeerMethod.CHUNK_AVAILABILITY),
    (_STATS, PeerMethod.PROPERTY_QUERY),
    (("TransProt",), PeerMethod.TRANSPORT_NEGOTIATION),
)


def _infer_method(head: _Head) -> PeerMethod | None:
    """The method an ``OK`` answer answers, from its body; None for a bare acknowledgement."""
    shapes = [method for names, method in _BODY_SHAPES if head.children.has(*names)]
    if len(shapes) > 1:
        raise _bad("answer body mixes several methods")
    return shapes[0] if shapes else None


def decode_response(
    data: bytes, status: int = 200, *, answering: PeerMethod | None = None
) -> PeerResponse:
    """Decode an answer received with HTTP ``status``; raises only PeerProtocolError.

    ``answering`` is the method of the request this answers, when the caller knows it: it
    tells FIND from FIND_CHUNK in an ``OK``/``SUCCESSFUL`` answer, and an answer naming another
    method is refused.  Without it the method of an ``OK`` answer is read from its body.  An
    error status with an empty body becomes the :class:`ErrorResponse` of that status.
    """
    if not isinstance(status, int) or not (status == 200 or 400 <= status <= 599):
        raise _bad(f"unexpected HTTP status {status!r}")
    if status != 200 and isinstance(data, bytes | bytearray) and not bytes(data).strip():
        phrase = _STATUS_PHRASE.get(status)
        if phrase is None:
            raise _bad(f"HTTP status {status} without a PPSP body")
        return ErrorResponse(transaction_id=None, status=status, response=phrase)
    head = _open(data)
    try:
        return _decode_response(head, status, answering)
    except PeerProtocolError as exc:
        exc.transaction_id = head.transaction_id
        raise


def _decode_response(head: _Head, status: int, answering: PeerMethod | None) -> PeerResponse:
    if head.method is not None or head.response is None:
        raise _bad("an answer has a Response and no Method")
    phrase = head.response
    error_class = PEER_ERROR_CLASSES.get(phrase)
    if error_class is not None:
        return ErrorResponse(
            transaction_id=head.transaction_id,
            status=error_class.status if status == 200 else status,
            response=phrase,
        )
    if status != 200:
        raise _bad(f"success answer {phrase[:40]!r} with HTTP status {status}")
    if head.transaction_id is None:
        raise _bad("missing TransactionID")
    if phrase in _SUCCESS:
        method = answering if answering is not None else _infer_method(head)
        if method is None:
            peer_id = _id_element(head.children, "PeerID")
            return OkResponse(transaction_id=head.transaction_id, peer_id=peer_id)
    else:
        named = _METHODS.get(phrase)
        if named is None:
            raise _bad(f"unknown Response {phrase[:40]!r}")
        if answering is not None and named is not answering:
            raise _bad(f"answer to {answering.value} names {named.value}")
        method = named
    return _RESPONSE_DECODERS[method](head, method, head.transaction_id)


# --------------------------------------------------------------------------------------------
# Encoding.


def _sub(parent: _Element, name: str, text: str | None = None, **attrs: str) -> _Element:
    element = etree.SubElement(parent, name, attrs)
    if text is not None:
        element.text = text
    return element


def _header(version: str, kind: str, value: str, transaction_id: str | None) -> _Element:
    root = etree.Element(ROOT, version=version)
    _sub(root, kind, value)
    if transaction_id is not None:
        _sub(root, "TransactionID", transaction_id)
    return root


def _encode_peer_num(parent: _Element, peer_num: PeerNum) -> None:
    attrs = {
        name: value
        for name, value in (
            ("abilityNAT", peer_num.ability_nat),
            ("concurrentLinks", peer_num.concurrent_links),
            ("onlineTime", peer_num.online_time),
            ("uploadBWlevel", peer_num.upload_bandwidth),
        )
        if value is not None
    }
    _sub(parent, "Peernum", None if peer_num.count is None else str(peer_num.count), **attrs)


def _encode_chunk_map(parent: _Element, chunk_map: tuple[RepresentationMap, ...]) -> None:
    chunk = _sub(parent, "CHUNK")
    for representation in chunk_map:
        rep = _sub(chunk, "Representation", id=representation.representation_id)
        for segment in representation.segments:
            _sub(
                rep,
                "SegmentInfo",
                fields.chunkmap_text(segment.bitmap, segment.chunkmap_size),
                startIndex=str(segment.start_index),
                endIndex=str(segment.end_index),
                chunkmapSize=str(segment.chunkmap_size),
            )


def _encode_peers(parent: _Element, peers: tuple[PeerInfo, ...]) -> None:
    group = _sub(parent, "Peers")
    for peer in peers:
        info = _sub(group, "PeerInfo")
        if peer.swarm_id is not None:
            info.set("swarmID", peer.swarm_id)
        if peer.peer_id is not None:
            _sub(info, "PeerID", peer.peer_id)
        for address in peer.addresses:
            attrs = {"addrType": address.family.value, "ip": address.ip, "port": str(address.port)}
            optional = (
                ("priority", None if address.priority is None else str(address.priority)),
                ("type", None if address.type is None else address.type.value),
                ("connection", address.connection),
                ("asn", address.asn),
                ("peerProtocol", address.peer_protocol),
            )
            attrs.update((name, value) for name, value in optional if value is not None)
            _sub(info, "PeerAddress", **attrs)


def _build_request(msg: PeerRequest) -> _Element:
    method = msg.method
    root = _header(msg.version, "Method", method.value, msg.transaction_id)
    _sub(root, "PeerID", msg.peer_id)
    _sub(root, "SwarmID", msg.swarm_id)
    if isinstance(msg, FindRequest):
        for chunk_id in msg.chunk_ids:
            _sub(root, "ChunkID", str(chunk_id))
        if msg.content_group:
            group = _sub(root, "ContentGroup")
            for scope in msg.content_group:
                rep = _sub(group, "Representation", id=scope.representation_id)
                segment = _sub(rep, "SegmentInfo", startIndex=str(scope.start_index))
                if scope.end_index is not None:
                    segment.set("endIndex", str(scope.end_index))
        if msg.peer_num is not None:
            _encode_peer_num(root, msg.peer_num)
    elif isinstance(msg, ChunkAvailabilityRequest):
        if msg.chunk_map is not None:
            _encode_chunk_map(root, msg.chunk_map)
    elif isinstance(msg, PropertyQueryRequest):
        stats = _sub(root, "StatRequest")
        for name in msg.properties:
            _sub(stats, "Stat", property=name)
    else:
        transports = _sub(root, "TransProt")
        for kind in msg.transports:
            _sub(transports, "TProt", type=kind)
    return root


def _build_response(msg: PeerResponse) -> _Element:
    if isinstance(msg, ErrorResponse):
        return _header(msg.version, "Response", msg.response, msg.transaction_id)
    if isinstance(msg, OkResponse):
        root = _header(msg.version, "Response", "OK", msg.transaction_id)
        if msg.peer_id is not None:
            _sub(root, "PeerID", msg.peer_id)
        return root
    root = _header(msg.version, "Response", msg.method.value, msg.transaction_id)
    if msg.peer_id is not None:
        _sub(root, "PeerID", msg.peer_id)
    if msg.swarm_id is not None:
        _sub(root, "SwarmID", msg.swarm_id)
    if isinstance(msg, FindResponse):
        for chunk_id in msg.chunk_ids:
            _sub(root, "ChunkID", str(chunk_id))
        _encode_peers(root, msg.peers)
    elif isinstance(msg, ChunkAvailabilityResponse):
        _encode_chunk_map(root, msg.chunk_map)
    elif isinstance(msg, PropertyQueryResponse):
        stats = _sub(root, "Stats")
        for stat in msg.stats:
            _sub(stats, "Stat", stat.value, property=stat.property)
    else:
        transports = _sub(root, "TransProt")
        for offer in msg.transports:
            tprot = _sub(transports, "TProt", type=offer.type)
            if offer.uri is not None:
                tprot.set("uri", offer.uri)
    return root


def _serialize(build: Callable[[], _Element]) -> bytes:
    try:
        root = build()
        data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise LocalProtocolError(f"cannot encode message: {exc}") from exc
    return data


def encode_request(msg: PeerRequest) -> bytes:
    """Encode a request; LocalProtocolError when it is not a valid, canonical request."""
    data = _serialize(lambda: _build_request(msg))
    try:
        back = decode_request(data)
    except PeerProtocolError as exc:
        raise LocalProtocolError(f"invalid request: {exc}") from exc
    if back != msg:
        raise LocalProtocolError("request does not survive encoding (non-canonical field)")
    return data


def encode_response(msg: PeerResponse) -> bytes:
    """Encode an answer; LocalProtocolError when it is not a valid, canonical answer.

    Send it with HTTP status :func:`response_status` and Content-Type :data:`CONTENT_TYPE`.
    """
    if isinstance(msg, ErrorResponse) and msg.response not in PEER_ERROR_CLASSES:
        raise LocalProtocolError(f"{msg.response!r} is not a Table 2 error response")
    data = _serialize(lambda: _build_response(msg))
    try:
        back = decode_response(data, response_status(msg))
    except PeerProtocolError as exc:
        raise LocalProtocolError(f"invalid answer: {exc}") from exc
    if back != msg:
        raise LocalProtocolError("answer does not survive encoding (non-canonical field)")
    return data


def response_status(msg: PeerResponse) -> int:
    """The HTTP status an answer is sent with: 200, or the error's own status."""
    return msg.status if isinstance(msg, ErrorResponse) else 200
