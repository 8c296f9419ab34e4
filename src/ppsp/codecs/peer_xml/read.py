"""Reading peer protocol documents: the common header, and the parts several messages share.

Every reader raises :class:`~ppsp.errors.InvalidSyntax` with a short reason, and every count,
length and number is bounded (:mod:`ppsp.wire.fields`) before it is used.  Names are matched by
local name, whatever the namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from ppsp.codecs.safexml import XMLRejected, attribute, local_name, parse_xml
from ppsp.errors import InvalidSyntax, PeerProtocolError, VersionNotSupported
from ppsp.wire import fields
from ppsp.wire.common import (
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
from ppsp.wire.fields import (
    DECIMAL_RE,
    MAX_CHUNK_IDS,
    MAX_CHUNKMAP_BITS,
    MAX_INTEGER,
    MAX_LISTED_PEERS,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_PEER_ELEMENTS,
    MAX_PROPERTIES,
    MAX_PROPERTY_VALUE_LENGTH,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_TRANSPORTS,
    MAX_URI_LENGTH,
    TOKEN_RE,
)
from ppsp.wire.peer import PROTOCOL_VERSION, PeerMethod, Stat, TransportOffer

ROOT = "PPSPPeerProtocol"
"""The root element's name."""

_URI_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]+")
_VERSION_RE = re.compile(r"[0-9]{1,2}\.[0-9]")
METHODS = {method.value: method for method in PeerMethod}
PEERS = ("Peers", "PeerGroup")
PEERNUM = ("Peernum", "PeerNum")
STATS = ("StatRequest", "StatsRequest", "Stats")
Element = etree._Element


def bad(reason: str) -> InvalidSyntax:
    """The error of a malformed document, with a short reason."""
    return InvalidSyntax(f"INVALID SYNTAX: {reason}")


class Children:
    """An element's child elements grouped by local name, in document order."""

    __slots__ = ("groups",)

    def __init__(self, parent: Element) -> None:
        self.groups: dict[str, list[Element]] = {}
        for child in parent:
            if isinstance(child.tag, str):
                self.groups.setdefault(local_name(child), []).append(child)

    def all(self, *names: str, limit: int) -> list[Element]:
        """The children of any of ``names``, at most ``limit`` of them."""
        found = [element for name in names for element in self.groups.get(name, ())]
        if len(found) > limit:
            raise bad(f"more than {limit} {names[0]} elements")
        return found

    def one(self, *names: str) -> Element | None:
        """The only child of any of ``names``, or None."""
        found = self.all(*names, limit=1)
        return found[0] if found else None

    def required(self, *names: str) -> Element:
        """The only child of any of ``names``; refused when absent."""
        element = self.one(*names)
        if element is None:
            raise bad(f"missing {names[0]}")
        return element

    def has(self, *names: str) -> bool:
        """Whether any child has one of ``names``."""
        return any(name in self.groups for name in names)


def leaf_text(element: Element) -> str:
    """The stripped text of an element that must hold no elements."""
    if any(isinstance(child.tag, str) for child in element):
        raise bad(f"{local_name(element)} must not contain elements")
    return (element.text or "").strip()


def check_container(element: Element) -> None:
    """Refuse text in an element that holds only elements."""
    if (element.text or "").strip():
        raise bad(f"{local_name(element)} must contain elements only")


def read_token(text: str | None, what: str) -> str:
    """A token (fields.TOKEN_RE)."""
    if text is None:
        raise bad(f"missing {what}")
    if not TOKEN_RE.fullmatch(text):
        raise bad(f"invalid {what}")
    return text


def read_opt_token(text: str | None, what: str) -> str | None:
    """:func:`read_token`, or None when absent."""
    return None if text is None else read_token(text, what)


def read_swarm(text: str | None, what: str) -> str:
    """A swarm's own ID: a token other than ``ALL`` and ``nil`` (fields.is_swarm_id)."""
    token = read_token(text, what)
    if token in fields.RESERVED_SWARM_IDS:
        raise bad(f"{what} {token!r} is not a swarm's ID")
    return token


def read_opt_swarm(text: str | None, what: str) -> str | None:
    """:func:`read_swarm`, or None when absent."""
    return None if text is None else read_swarm(text, what)


def read_uint(text: str | None, what: str, maximum: int) -> int:
    """A decimal integer (1 to 19 digits, surrounding whitespace stripped) up to ``maximum``."""
    if text is None:
        raise bad(f"missing {what}")
    text = text.strip()
    if not DECIMAL_RE.fullmatch(text):
        raise bad(f"{what} is not a decimal number")
    value = int(text)
    if value > maximum:
        raise bad(f"{what} out of range")
    return value


def id_element(children: Children, name: str) -> str | None:
    """The token (a swarm ID for ``SwarmID``) an optional child element holds."""
    element = children.one(name)
    if element is None:
        return None
    text = leaf_text(element)
    return read_swarm(text, name) if name == "SwarmID" else read_token(text, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """What the common header says: method or response, transaction ID, the children."""

    method: str | None
    response: str | None
    transaction_id: str | None
    children: Children


def open_document(data: bytes) -> Head:
    """Parse and check everything the common header decides; fill transaction IDs in errors."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise bad("body is not bytes")
    try:
        root = parse_xml(bytes(data), max_bytes=MAX_MESSAGE_BYTES)
    except XMLRejected as exc:
        raise bad(str(exc)) from None
    if local_name(root) != ROOT:
        raise bad(f"root element is not {ROOT}")
    for count, _ in enumerate(root.iter(), start=1):
        if count > MAX_PEER_ELEMENTS:
            raise bad(f"more than {MAX_PEER_ELEMENTS} elements")
    children = Children(root)
    check_container(root)
    transaction_id = _lenient_transaction_id(children)
    try:
        version = attribute(root, "version")
        if version is None:
            raise bad("missing version")
        version = version.strip()
        if version != PROTOCOL_VERSION:
            if _VERSION_RE.fullmatch(version):
                raise VersionNotSupported(f"version {version} not supported")
            raise bad("malformed version")
        method = children.one("Method")
        response = children.one("Response")
        if method is not None and response is not None:
            raise bad("both Method and Response")
        tid = children.one("TransactionID")
        if tid is not None and transaction_id is None:
            raise bad("invalid TransactionID")
        return Head(
            method=None if method is None else " ".join(leaf_text(method).split()).upper(),
            response=None if response is None else " ".join(leaf_text(response).split()).upper(),
            transaction_id=transaction_id,
            children=children,
        )
    except PeerProtocolError as exc:
        exc.transaction_id = transaction_id
        raise


def _lenient_transaction_id(children: Children) -> str | None:
    found = children.groups.get("TransactionID", [])
    if len(found) != 1:
        return None
    element = found[0]
    if any(isinstance(child.tag, str) for child in element):
        return None
    text = (element.text or "").strip()
    if not TOKEN_RE.fullmatch(text):
        return None
    return text


# --------------------------------------------------------------------------------------------
# Parts several messages share: peer lists, chunk maps, scopes.


def decode_peer_num(element: Element) -> PeerNum:
    """A ``Peernum`` element: the count and the capability selectors."""
    text = leaf_text(element)
    return PeerNum(
        count=read_uint(text, "Peernum", MAX_INTEGER) if text else None,
        ability_nat=read_opt_token(attribute(element, "abilityNAT"), "abilityNAT"),
        concurrent_links=read_opt_token(attribute(element, "concurrentLinks"), "concurrentLinks"),
        online_time=read_opt_token(attribute(element, "onlineTime"), "onlineTime"),
        upload_bandwidth=read_opt_token(attribute(element, "uploadBWlevel"), "uploadBWlevel"),
    )


def decode_chunk_ids(children: Children) -> tuple[int, ...]:
    """The ``ChunkID`` children."""
    return tuple(
        read_uint(leaf_text(element), "ChunkID", MAX_INTEGER)
        for element in children.all("ChunkID", limit=MAX_CHUNK_IDS)
    )


def decode_content_group(element: Element) -> tuple[RepresentationScope, ...]:
    """A ``ContentGroup``: chunk ranges per Representation."""
    check_container(element)
    scopes: list[RepresentationScope] = []
    for representation in Children(element).all("Representation", limit=MAX_REPRESENTATIONS):
        check_container(representation)
        rep_id = read_token(attribute(representation, "id"), "Representation id")
        segments = Children(representation).all("SegmentInfo", limit=MAX_REPRESENTATIONS)
        if not segments:
            scopes.append(RepresentationScope(representation_id=rep_id, start_index=0))
        for segment in segments:
            start = read_uint(attribute(segment, "startIndex"), "startIndex", MAX_INTEGER)
            end_text = attribute(segment, "endIndex")
            end = None if end_text is None else read_uint(end_text, "endIndex", MAX_INTEGER)
            if end is not None and end < start:
                raise bad("endIndex before startIndex")
            scopes.append(
                RepresentationScope(representation_id=rep_id, start_index=start, end_index=end)
            )
        if len(scopes) > MAX_REPRESENTATIONS:
            raise bad(f"more than {MAX_REPRESENTATIONS} chunk ranges")
    return tuple(scopes)


def decode_chunk_map(element: Element) -> tuple[RepresentationMap, ...]:
    """A ``CHUNK`` element: the segments held per Representation."""
    check_container(element)
    total = 0
    representations: list[RepresentationMap] = []
    for representation in Children(element).all("Representation", limit=MAX_REPRESENTATIONS):
        check_container(representation)
        rep_id = read_token(attribute(representation, "id"), "Representation id")
        segments: list[SegmentMap] = []
        for segment in Children(representation).all("SegmentInfo", limit=MAX_SEGMENTS):
            total += 1
            if total > MAX_SEGMENTS:
                raise bad(f"more than {MAX_SEGMENTS} SegmentInfo elements")
            segments.append(_decode_segment(segment))
        if not segments:
            raise bad("a CHUNK Representation needs a SegmentInfo")
        representations.append(
            RepresentationMap(representation_id=rep_id, segments=tuple(segments))
        )
    return tuple(representations)


def _decode_segment(segment: Element) -> SegmentMap:
    start = read_uint(attribute(segment, "startIndex"), "startIndex", MAX_INTEGER)
    end = read_uint(attribute(segment, "endIndex"), "endIndex", MAX_INTEGER)
    if end < start:
        raise bad("endIndex before startIndex")
    size = end - start + 1
    if size > MAX_CHUNKMAP_BITS:
        raise bad(f"chunk map of more than {MAX_CHUNKMAP_BITS} chunks")
    declared = attribute(segment, "chunkmapSize")
    if declared is not None and read_uint(declared, "chunkmapSize", MAX_INTEGER) != size:
        raise bad("chunkmapSize does not match startIndex..endIndex")
    try:
        bitmap = fields.chunkmap_bytes(leaf_text(segment), size)
    except ValueError as exc:
        raise bad(str(exc)) from None
    return SegmentMap(start_index=start, end_index=end, chunkmap_size=size, bitmap=bitmap)


def decode_peers(element: Element) -> tuple[PeerInfo, ...]:
    """A peer list (``Peers``); entries of one peer for one swarm are merged."""
    check_container(element)
    peers: list[PeerInfo] = []
    for info in Children(element).all("PeerInfo", limit=MAX_LISTED_PEERS):
        check_container(info)
        children = Children(info)
        addresses = tuple(
            _decode_address(address)
            for address in children.all("PeerAddress", limit=MAX_PEER_ADDRESSES)
        )
        if not addresses:
            raise bad("PeerInfo without PeerAddress")
        peer_id = id_element(children, "PeerID")
        if peer_id is None:
            raise bad("PeerInfo without PeerID")
        peers.append(
            PeerInfo(
                peer_id=peer_id,
                addresses=addresses,
                swarm_id=read_opt_swarm(attribute(info, "swarmID"), "swarmID"),
            )
        )
    merged = merge_listed_peers(peers)
    if any(len(peer.addresses) > MAX_PEER_ADDRESSES for peer in merged):
        raise bad(f"a peer with more than {MAX_PEER_ADDRESSES} addresses")
    return tuple(merged)


def _decode_address(element: Element) -> PeerAddress:
    try:
        ip, version = fields.canonical_ip(read_token(attribute(element, "ip"), "ip"))
    except ValueError:
        raise bad("invalid ip") from None
    family = AddressFamily.IPV4 if version == 4 else AddressFamily.IPV6
    declared = attribute(element, "addrType")
    if declared is not None and declared.strip().lower() != family.value:
        raise bad("addrType does not match ip")
    port = read_uint(attribute(element, "port"), "port", fields.MAX_PORT)
    if port < fields.MIN_PORT:
        raise bad(f"port below {fields.MIN_PORT}")
    priority = attribute(element, "priority")
    kind = attribute(element, "type")
    try:
        address_type = None if kind is None else AddressType(kind.strip().upper())
    except ValueError:
        raise bad("invalid address type") from None
    return PeerAddress(
        ip=ip,
        port=port,
        family=family,
        priority=None if priority is None else read_uint(priority, "priority", MAX_INTEGER),
        type=address_type,
        connection=read_opt_token(attribute(element, "connection"), "connection"),
        asn=read_opt_token(attribute(element, "asn"), "asn"),
        peer_protocol=read_opt_token(attribute(element, "peerProtocol"), "peerProtocol"),
    )


def decode_stats(element: Element, *, with_values: bool) -> tuple[Stat, ...]:
    """``Stat`` children: names only in a request, names and values in an answer."""
    check_container(element)
    stats: list[Stat] = []
    for stat in Children(element).all("Stat", limit=MAX_PROPERTIES):
        name = read_token(attribute(stat, "property"), "Stat property")
        text = leaf_text(stat)
        if len(text) > MAX_PROPERTY_VALUE_LENGTH:
            raise bad("Stat value too long")
        if not with_values and text:
            raise bad("a Stat in a request has no value")
        stats.append(Stat(property=name, value=text if with_values else None))
    return tuple(stats)


def decode_transports(element: Element, *, with_uri: bool) -> tuple[TransportOffer, ...]:
    """``TProt`` children: types only in a request, with URIs in an answer."""
    check_container(element)
    offers: list[TransportOffer] = []
    for tprot in Children(element).all("TProt", limit=MAX_TRANSPORTS):
        if leaf_text(tprot):
            raise bad("TProt has no value")
        kind = read_token(attribute(tprot, "type"), "TProt type").upper()
        uri = attribute(tprot, "uri")
        if uri is not None and (len(uri) > MAX_URI_LENGTH or not _URI_RE.fullmatch(uri)):
            raise bad("invalid TProt uri")
        offers.append(TransportOffer(type=kind, uri=uri if with_uri else None))
    return tuple(offers)
