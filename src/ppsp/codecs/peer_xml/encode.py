"""Encoding peer protocol requests and answers, each checked by decoding it again.

A message that would not come back equal (non-canonical text, out-of-range numbers, an
inconsistent bitmap) raises :class:`~ppsp.errors.LocalProtocolError`, so that what is sent is
always what the peer reads.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from ppsp.codecs.peer_xml.decode import decode_request, decode_response
from ppsp.codecs.peer_xml.read import ROOT, Element
from ppsp.errors import PEER_ERROR_CLASSES, LocalProtocolError, PeerProtocolError
from ppsp.wire import fields
from ppsp.wire.common import PeerInfo, PeerNum, RepresentationMap
from ppsp.wire.peer import (
    ChunkAvailabilityRequest,
    ChunkAvailabilityResponse,
    ErrorResponse,
    FindRequest,
    FindResponse,
    OkResponse,
    PeerRequest,
    PeerResponse,
    PropertyQueryRequest,
    PropertyQueryResponse,
)


def _sub(parent: Element, name: str, text: str | None = None, **attrs: str) -> Element:
    element = etree.SubElement(parent, name, attrs)
    if text is not None:
        element.text = text
    return element


def _header(version: str, kind: str, value: str, transaction_id: str | None) -> Element:
    root = etree.Element(ROOT, version=version)
    _sub(root, kind, value)
    if transaction_id is not None:
        _sub(root, "TransactionID", transaction_id)
    return root


def _encode_peer_num(parent: Element, peer_num: PeerNum) -> None:
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


def _encode_chunk_map(parent: Element, chunk_map: tuple[RepresentationMap, ...]) -> None:
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


def _encode_peers(parent: Element, peers: tuple[PeerInfo, ...]) -> None:
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


def _build_request(msg: PeerRequest) -> Element:
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


def _build_response(msg: PeerResponse) -> Element:
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


def _serialize(build: Callable[[], Element]) -> bytes:
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
