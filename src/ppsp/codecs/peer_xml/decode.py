"""Decoding peer protocol requests and answers; nothing but a PeerProtocolError escapes.

Hostile or malformed input is ``INVALID SYNTAX`` (400), an unknown ``version`` is ``VERSION NOT
SUPPORTED`` and an unknown method ``MESSAGE NOT SUPPORTED``.  An error carries the message's
transaction ID whenever it could be read, so that the error answer can echo it.
"""

from __future__ import annotations

from collections.abc import Callable

from ppsp.codecs.peer_xml.read import (
    METHODS,
    PEERNUM,
    PEERS,
    STATS,
    Head,
    bad,
    decode_chunk_ids,
    decode_chunk_map,
    decode_content_group,
    decode_peer_num,
    decode_peers,
    decode_stats,
    decode_transports,
    id_element,
    leaf_text,
    open_document,
    read_swarm,
    read_token,
)
from ppsp.errors import PEER_ERROR_CLASSES, MessageNotSupported, PeerProtocolError
from ppsp.wire.peer import (
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
    TransportNegotiationRequest,
    TransportNegotiationResponse,
)

_SUCCESS = frozenset({"OK", "SUCCESSFUL"})
"""Response texts of a success answered as such (rather than under the method's name)."""

_STATUS_PHRASE = {
    400: "INVALID SYNTAX",
    401: "AUTHENTICATION REQUIRED",
    403: "MESSAGE FORBIDDEN",
    404: "OBJECT NOT FOUND",
    500: "INTERNAL ERROR",
    503: "TEMPORARILY OVERLOADED",
}
"""The phrase an error status stands for when an error answer comes without a body."""


def _common(head: Head) -> tuple[str, str, str]:
    if head.transaction_id is None:
        raise bad("missing TransactionID")
    peer_id = read_token(leaf_text(head.children.required("PeerID")), "PeerID")
    swarm_id = read_swarm(leaf_text(head.children.required("SwarmID")), "SwarmID")
    return head.transaction_id, peer_id, swarm_id


def _find_request(head: Head, method: PeerMethod) -> FindRequest:
    tid, peer_id, swarm_id = _common(head)
    group = head.children.one("ContentGroup")
    content_group = () if group is None else decode_content_group(group)
    chunk_ids = decode_chunk_ids(head.children)
    if method is PeerMethod.FIND_CHUNK and not chunk_ids and not content_group:
        raise bad("FIND_CHUNK names no chunk")
    peer_num = head.children.one(*PEERNUM)
    return FindRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        method=method,
        chunk_ids=chunk_ids,
        content_group=content_group,
        peer_num=None if peer_num is None else decode_peer_num(peer_num),
    )


def _chunk_availability_request(head: Head, method: PeerMethod) -> ChunkAvailabilityRequest:
    tid, peer_id, swarm_id = _common(head)
    chunk = head.children.one("CHUNK")
    return ChunkAvailabilityRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_map=None if chunk is None else decode_chunk_map(chunk),
    )


def _property_query_request(head: Head, method: PeerMethod) -> PropertyQueryRequest:
    tid, peer_id, swarm_id = _common(head)
    stats = head.children.one(*STATS)
    names = () if stats is None else decode_stats(stats, with_values=False)
    return PropertyQueryRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        properties=tuple(stat.property for stat in names),
    )


def _transport_request(head: Head, method: PeerMethod) -> TransportNegotiationRequest:
    tid, peer_id, swarm_id = _common(head)
    offers = decode_transports(head.children.required("TransProt"), with_uri=False)
    if not offers:
        raise bad("TransProt lists no transport")
    return TransportNegotiationRequest(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        transports=tuple(offer.type for offer in offers),
    )


_REQUEST_DECODERS: dict[PeerMethod, Callable[[Head, PeerMethod], PeerRequest]] = {
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
    head = open_document(data)
    try:
        if head.response is not None or head.method is None:
            raise bad("a request has a Method and no Response")
        method = METHODS.get(head.method)
        if method is None:
            raise MessageNotSupported(f"method {head.method[:40]!r} not supported")
        return _REQUEST_DECODERS[method](head, method)
    except PeerProtocolError as exc:
        exc.transaction_id = head.transaction_id
        raise


# --------------------------------------------------------------------------------------------
# Answers.


def _response_ids(head: Head) -> tuple[str | None, str | None]:
    return (
        id_element(head.children, "PeerID"),
        id_element(head.children, "SwarmID"),
    )


def _find_response(head: Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    peers = head.children.one(*PEERS)
    return FindResponse(
        transaction_id=tid,
        method=method,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_ids=decode_chunk_ids(head.children),
        peers=() if peers is None else decode_peers(peers),
    )


def _chunk_availability_response(head: Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    chunk = head.children.one("CHUNK")
    if chunk is None:
        # A PUSH acknowledged under the method's name rather than OK.
        return OkResponse(transaction_id=tid, peer_id=peer_id)
    return ChunkAvailabilityResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        chunk_map=decode_chunk_map(chunk),
    )


def _property_query_response(head: Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    stats = head.children.one(*STATS)
    return PropertyQueryResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        stats=() if stats is None else decode_stats(stats, with_values=True),
    )


def _transport_response(head: Head, method: PeerMethod, tid: str) -> PeerResponse:
    peer_id, swarm_id = _response_ids(head)
    offers = head.children.one("TransProt")
    return TransportNegotiationResponse(
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=swarm_id,
        transports=() if offers is None else decode_transports(offers, with_uri=True),
    )


_RESPONSE_DECODERS: dict[PeerMethod, Callable[[Head, PeerMethod, str], PeerResponse]] = {
    PeerMethod.FIND: _find_response,
    PeerMethod.FIND_CHUNK: _find_response,
    PeerMethod.CHUNK_AVAILABILITY: _chunk_availability_response,
    PeerMethod.PROPERTY_QUERY: _property_query_response,
    PeerMethod.TRANSPORT_NEGOTIATION: _transport_response,
}
_BODY_SHAPES: tuple[tuple[tuple[str, ...], PeerMethod], ...] = (
    (PEERS, PeerMethod.FIND),
    (("CHUNK",), PeerMethod.CHUNK_AVAILABILITY),
    (STATS, PeerMethod.PROPERTY_QUERY),
    (("TransProt",), PeerMethod.TRANSPORT_NEGOTIATION),
)


def _infer_method(head: Head) -> PeerMethod | None:
    """The method an ``OK`` answer answers, from its body; None for a bare acknowledgement."""
    shapes = [method for names, method in _BODY_SHAPES if head.children.has(*names)]
    if len(shapes) > 1:
        raise bad("answer body mixes several methods")
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
        raise bad(f"unexpected HTTP status {status!r}")
    if status != 200 and isinstance(data, bytes | bytearray) and not bytes(data).strip():
        phrase = _STATUS_PHRASE.get(status)
        if phrase is None:
            raise bad(f"HTTP status {status} without a PPSP body")
        return ErrorResponse(transaction_id=None, status=status, response=phrase)
    head = open_document(data)
    try:
        return _decode_response(head, status, answering)
    except PeerProtocolError as exc:
        exc.transaction_id = head.transaction_id
        raise


def _decode_response(head: Head, status: int, answering: PeerMethod | None) -> PeerResponse:
    if head.method is not None or head.response is None:
        raise bad("an answer has a Response and no Method")
    phrase = head.response
    error_class = PEER_ERROR_CLASSES.get(phrase)
    if error_class is not None:
        return ErrorResponse(
            transaction_id=head.transaction_id,
            status=error_class.status if status == 200 else status,
            response=phrase,
        )
    if status != 200:
        raise bad(f"success answer {phrase[:40]!r} with HTTP status {status}")
    if head.transaction_id is None:
        raise bad("missing TransactionID")
    if phrase in _SUCCESS:
        method = answering if answering is not None else _infer_method(head)
        if method is None:
            peer_id = id_element(head.children, "PeerID")
            return OkResponse(transaction_id=head.transaction_id, peer_id=peer_id)
    else:
        named = METHODS.get(phrase)
        if named is None:
            raise bad(f"unknown Response {phrase[:40]!r}")
        if answering is not None and named is not answering:
            raise bad(f"answer to {answering.value} names {named.value}")
        method = named
    return _RESPONSE_DECODERS[method](head, method, head.transaction_id)
