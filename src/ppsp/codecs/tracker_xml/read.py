"""The full decoder of tracker XML: every request and answer, and every refusal.

:func:`~ppsp.codecs.tracker_xml.requests.decode_request` first offers a request's bytes to the
reader of the codec's own shapes (:mod:`.scan`), then its tree to the one-pass reader of plain
FIND and STAT_REPORT requests (:mod:`.plain`); anything else, and anything that reader does not
expect, is read here (:func:`decode_request_root`), which alone decides every refusal.  Answers
are read here (:func:`decode_response`): a peer, which only reads answers, loads neither reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ppsp.codecs.tracker_xml.tree import (
    Element,
    attr_enum,
    attr_integer,
    attr_swarm,
    attr_token,
    child_elements,
    children_by_name,
    leaf_text,
    local_name,
    only_child,
    parse,
    peek_transaction_id,
    read_results,
    read_version,
    required_child,
    required_token,
    text_swarm,
    text_token,
    top_level,
    with_transaction_id,
)
from ppsp.codecs.tracker_xml.values import (
    ERROR_CODES_BY_TEXT,
    ERROR_TEXT,
    METHODS_BY_VERSION,
    STANDARD_STATISTICS,
    STAT_CONTENT_MAP,
    STAT_CORRUPT_PEER,
    STAT_STREAM,
    SUCCESS_TEXTS,
    check_ip,
    check_swarm,
    clear_action_ids,
    is_requester,
    members,
    parse_integer,
    read_bitmap,
)
from ppsp.errors import BadRequest, TrackerErrorCode, TrackerProtocolError
from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    merge_listed_peers,
)
from ppsp.wire.fields import (
    ALL_SWARMS,
    DECIMAL_RE,
    MAX_ADVERTISED_ADDRESSES,
    MAX_CORRUPT_REPORTS,
    MAX_EXTRA_STATISTICS,
    MAX_INTEGER,
    MAX_LISTED_PEERS,
    MAX_PEER_ADDRESSES,
    MAX_PORT,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MIN_PORT,
    NO_SWARM,
    RESERVED_SWARM_IDS,
    distinct_scope,
    is_extra_statistic_name,
)
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    Method,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

# Messages are built by writing their slots (ppsp.wire.builder), from keyword arguments.
_build_connect = keyword_builder(ConnectRequest)
_build_join = keyword_builder(JoinRequest)
_build_disconnect = keyword_builder(DisconnectRequest)
_build_find = keyword_builder(FindRequest)
_build_report = keyword_builder(StatReportRequest)
_build_stream_statistics = keyword_builder(StreamStatistics)
_build_content_map = keyword_builder(ContentMap)
_build_representation = keyword_builder(RepresentationMap)
_build_segment = keyword_builder(SegmentMap)
_build_swarm_action = keyword_builder(SwarmAction)
_build_corrupt_peer = keyword_builder(CorruptPeerReport)

_VERSION_REASON_RE = re.compile(r"version.*\d+\.\d+", re.IGNORECASE | re.DOTALL)
_METHODS = members(Method)


def _peer_address(element: Element) -> PeerAddress:
    leaf_text(element)
    family = attr_enum(element, "addrType", AddressFamily)
    ip_text = attr_token(element, "ip", required=True)
    assert ip_text is not None
    ip, family = check_ip(ip_text, family, BadRequest)
    port = attr_integer(element, "port", required=True, maximum=MAX_PORT)
    assert port is not None
    if port < MIN_PORT:
        raise BadRequest(f"@port of <PeerAddress> is below {MIN_PORT}")
    return PeerAddress(
        ip=ip,
        port=port,
        family=family,
        priority=attr_integer(element, "priority"),
        type=attr_enum(element, "type", AddressType),
        connection=attr_token(element, "connection"),
        asn=attr_token(element, "asn"),
        peer_protocol=attr_token(element, "peerProtocol"),
    )


def _peer_info(element: Element) -> PeerInfo:
    groups = children_by_name(element, {"PeerID": 1, "PeerAddress": MAX_PEER_ADDRESSES})
    peer_id = only_child(groups, "PeerID")
    return PeerInfo(
        peer_id=None if peer_id is None else text_token(peer_id),
        addresses=tuple(_peer_address(e) for e in groups.get("PeerAddress", [])),
        swarm_id=attr_swarm(element, "swarmID"),
    )


def _peer_infos(groups: dict[str, list[Element]]) -> list[PeerInfo]:
    group = only_child(groups, "PeerGroup")
    if group is None:
        return []
    # The listed peers and the requester.
    infos = children_by_name(group, {"PeerInfo": MAX_LISTED_PEERS + 1}).get("PeerInfo", [])
    return [_peer_info(info) for info in infos]


def _peer_num(groups: dict[str, list[Element]]) -> PeerNum | None:
    element = only_child(groups, "PeerNum")
    if element is None:
        return None
    text = leaf_text(element)
    return PeerNum(
        count=parse_integer(text, "<PeerNum>", BadRequest) if text else None,
        ability_nat=attr_token(element, "abilityNAT"),
        concurrent_links=attr_token(element, "concurrentLinks"),
        online_time=attr_token(element, "onlineTime"),
        upload_bandwidth=attr_token(element, "uploadBWlevel"),
    )


def _content_group(groups: dict[str, list[Element]]) -> tuple[RepresentationScope, ...]:
    group = only_child(groups, "ContentGroup")
    if group is None:
        return ()
    scopes = []
    for representation in children_by_name(group, {"Representation": MAX_REPRESENTATIONS}).get(
        "Representation", []
    ):
        segments = children_by_name(representation, {}).get("SegmentInfo", [])
        if len(segments) != 1:
            raise BadRequest("a ContentGroup <Representation> needs exactly one <SegmentInfo>")
        segment = segments[0]
        leaf_text(segment)
        start = attr_integer(segment, "startIndex", required=True)
        end = attr_integer(segment, "endIndex")
        assert start is not None
        if end is not None and end < start:
            raise BadRequest("@endIndex is below @startIndex")
        representation_id = attr_token(representation, "id", required=True)
        assert representation_id is not None
        scopes.append(
            RepresentationScope(
                representation_id=representation_id, start_index=start, end_index=end
            )
        )
    try:
        return distinct_scope(scopes)  # a range given twice counts once
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _swarm_actions(
    elements: Sequence[Element], *, action: bool, peer_mode: bool
) -> tuple[SwarmAction, ...]:
    actions = []
    seen: set[str] = set()
    for element in elements:
        swarm_id = text_swarm(element)
        if swarm_id in seen:
            raise BadRequest(f"SwarmID {swarm_id[:40]!r} appears twice")
        seen.add(swarm_id)
        kind = attr_enum(element, "action", SwarmActionType, required=True) if action else None
        mode = None
        if peer_mode:
            # Joining needs a mode; leaving may name one (the 1.0 examples do).
            required = kind is not SwarmActionType.LEAVE
            mode = attr_enum(element, "peerMode", PeerMode, required=required)
        actions.append(
            _build_swarm_action(
                swarm_id=swarm_id,
                action=kind,
                peer_mode=mode,
                transaction_id=attr_token(element, "transactionID"),
            )
        )
    return tuple(actions)


def _decode_connect(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[Element]]
) -> ConnectRequest:
    swarm_ids = groups.get("SwarmID", [])
    if version is ProtocolVersion.V1_0 and not swarm_ids:
        raise BadRequest("a PPSP-TP/1.0 CONNECT needs at least one <SwarmID>")
    addresses = [address for info in _peer_infos(groups) for address in info.addresses]
    if len(addresses) > MAX_ADVERTISED_ADDRESSES:
        raise BadRequest(f"more than {MAX_ADVERTISED_ADDRESSES} <PeerAddress> in a request")
    actions = _swarm_actions(swarm_ids, action=True, peer_mode=True)
    clear_action_ids(tid, actions, BadRequest)
    return _build_connect(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        peer_addresses=tuple(addresses),
        swarm_actions=actions,
        peer_num=_peer_num(groups),
        content_group=_content_group(groups),
    )


def _decode_join(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[Element]]
) -> JoinRequest:
    swarm_ids = groups.get("SwarmID", [])
    if not swarm_ids:
        raise BadRequest("JOIN needs at least one <SwarmID>")
    actions = _swarm_actions(swarm_ids, action=False, peer_mode=True)
    clear_action_ids(tid, actions, BadRequest)
    return _build_join(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        swarms=actions,
        peer_num=_peer_num(groups),
        content_group=_content_group(groups),
    )


def _decode_disconnect(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[Element]]
) -> DisconnectRequest:
    elements = groups.get("SwarmID", [])
    texts = [leaf_text(element) for element in elements]
    swarms: tuple[SwarmAction, ...] = ()
    if not elements:
        # The form of draft-huang-...-04 and of earlier releases: leaving the system.
        scope = DisconnectScope.SYSTEM
    elif ALL_SWARMS in texts or NO_SWARM in texts:
        word = ALL_SWARMS if ALL_SWARMS in texts else NO_SWARM
        if len(elements) > 1:
            raise BadRequest(f"<SwarmID>{word}</SwarmID> must stand alone")
        scope = DisconnectScope.ALL_SWARMS if word == ALL_SWARMS else DisconnectScope.SYSTEM
    else:
        scope = DisconnectScope.SWARMS
        swarms = tuple(
            SwarmAction(swarm_id=action.swarm_id, transaction_id=action.transaction_id)
            for action in _swarm_actions(elements, action=False, peer_mode=False)
        )
        clear_action_ids(tid, swarms, BadRequest)
    return _build_disconnect(
        version=version, transaction_id=tid, peer_id=peer_id, scope=scope, swarms=swarms
    )


def _decode_find(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[Element]]
) -> FindRequest:
    swarm_ids = groups.get("SwarmID", [])
    if len(swarm_ids) != 1:
        raise BadRequest("FIND needs exactly one <SwarmID>")
    return _build_find(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        swarm_id=text_swarm(swarm_ids[0]),
        peer_num=_peer_num(groups),
        content_group=_content_group(groups),
    )


def _stream_statistics(element: Element) -> StreamStatistics:
    values: dict[str, int] = {}
    swarm_id: str | None = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for child in child_elements(element):
        name = local_name(child)
        if name in STANDARD_STATISTICS:
            if name in seen:
                raise BadRequest(f"<{name}> appears twice in a Stat")
            seen.add(name)
            if name == "SwarmID":
                swarm_id = text_swarm(child)
            else:
                text = leaf_text(child)
                if DECIMAL_RE.fullmatch(text) and (number := int(text)) <= MAX_INTEGER:
                    values[name] = number
                else:
                    values[name] = parse_integer(text, f"<{name}>", BadRequest)
        elif is_extra_statistic_name(name):
            # One value per name, as a JSON object has it.
            if name in seen:
                raise BadRequest(f"<{name}> appears twice in a Stat")
            seen.add(name)
            if len(extra) >= MAX_EXTRA_STATISTICS:
                raise BadRequest(f"more than {MAX_EXTRA_STATISTICS} extra statistics")
            extra.append((name, text_token(child)))
        # Other names (a standard statistic's JSON name, a name JSON could not carry as a plain
        # member) are extensions this codec cannot pass on: ignored.
    return _build_stream_statistics(
        swarm_id=swarm_id,
        uploaded_bytes=values.get("UploadedBytes"),
        downloaded_bytes=values.get("DownloadedBytes"),
        available_bandwidth=values.get("AvailBandwidth"),
        concurrent_links=values.get("ConcurrentLinks"),
        extra=tuple(extra),
    )


def _content_map(element: Element, budget: list[int]) -> ContentMap:
    groups = children_by_name(element, {"SwarmID": 1, "Representation": MAX_REPRESENTATIONS})
    representations = []
    for representation in groups.get("Representation", []):
        segments = []
        for segment in children_by_name(representation, {}).get("SegmentInfo", []):
            budget[0] -= 1
            if budget[0] < 0:
                raise BadRequest(f"more than {MAX_SEGMENTS} <SegmentInfo> in a STAT_REPORT")
            start = attr_integer(segment, "startIndex", required=True)
            end = attr_integer(segment, "endIndex", required=True)
            size = attr_integer(segment, "chunkmapSize", required=True)
            assert start is not None and end is not None and size is not None
            if end < start or size != end - start + 1:
                raise BadRequest("SegmentInfo needs chunkmapSize = endIndex - startIndex + 1")
            bitmap = read_bitmap(leaf_text(segment), size, BadRequest)
            segments.append(
                _build_segment(start_index=start, end_index=end, chunkmap_size=size, bitmap=bitmap)
            )
        if not segments:
            raise BadRequest("a ContentMap <Representation> needs at least one <SegmentInfo>")
        representation_id = attr_token(representation, "id", required=True)
        assert representation_id is not None
        representations.append(
            _build_representation(representation_id=representation_id, segments=tuple(segments))
        )
    if not representations:
        raise BadRequest("a ContentMap Stat needs at least one <Representation>")
    swarm_id = required_token(groups, "SwarmID")
    if swarm_id in RESERVED_SWARM_IDS:
        check_swarm(swarm_id, "<SwarmID>", BadRequest)
    return _build_content_map(swarm_id=swarm_id, representations=tuple(representations))


def _corrupt_peer(element: Element) -> CorruptPeerReport:
    """A ``<Stat property="CorruptPeer">``: SwarmID, PeerID, one PeerAddress, CorruptChunks."""
    groups = children_by_name(
        element, {"SwarmID": 1, "PeerID": 1, "PeerAddress": 1, "CorruptChunks": 1}
    )
    address = only_child(groups, "PeerAddress")
    if address is None:
        raise BadRequest("a CorruptPeer Stat needs a <PeerAddress>")
    peer_address = _peer_address(address)
    chunks = parse_integer(
        leaf_text(required_child(groups, "CorruptChunks")), "<CorruptChunks>", BadRequest
    )
    if chunks < 1:
        raise BadRequest("<CorruptChunks> must be at least 1")
    return _build_corrupt_peer(
        swarm_id=text_swarm(required_child(groups, "SwarmID")),
        peer_id=required_token(groups, "PeerID"),
        ip=peer_address.ip,
        port=peer_address.port,
        corrupt_chunks=chunks,
    )


def _decode_stat_report(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[Element]]
) -> StatReportRequest:
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    corrupt_peers: list[CorruptPeerReport] = []
    group = only_child(groups, "StatisticsGroup")
    if group is not None:
        budget = [MAX_SEGMENTS]
        for stat in children_by_name(group, {"Stat": MAX_STATS}).get("Stat", []):
            prop = attr_token(stat, "property", required=True)
            if prop == STAT_STREAM:
                stream_stats.append(_stream_statistics(stat))
            elif prop == STAT_CONTENT_MAP:
                content_maps.append(_content_map(stat, budget))
            elif prop == STAT_CORRUPT_PEER:
                if len(corrupt_peers) >= MAX_CORRUPT_REPORTS:
                    raise BadRequest(f"more than {MAX_CORRUPT_REPORTS} CorruptPeer Stats")
                corrupt_peers.append(_corrupt_peer(stat))
            # Other properties are extensions this tracker does not know: ignored.
    return _build_report(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        stream_stats=tuple(stream_stats),
        content_maps=tuple(content_maps),
        corrupt_peers=tuple(corrupt_peers),
    )


_Decoder = Callable[[ProtocolVersion, str, str, dict[str, list[Element]]], AnyRequest]
_REQUEST_DECODERS: dict[Method, _Decoder] = {
    Method.CONNECT: _decode_connect,
    Method.JOIN: _decode_join,
    Method.DISCONNECT: _decode_disconnect,
    Method.FIND: _decode_find,
    Method.STAT_REPORT: _decode_stat_report,
}


def decode_request_root(root: Element) -> AnyRequest:
    """The request a parsed document holds (the full decoder)."""
    version = read_version(root)
    groups = top_level(root)
    if "Response" in groups:
        raise BadRequest("a response where a request was expected")
    method_text = leaf_text(required_child(groups, "Request"))
    method = _METHODS.get(method_text)
    if method is None:
        raise BadRequest(f"unknown method {method_text[:40]!r}")
    if method not in METHODS_BY_VERSION[version]:
        raise BadRequest(f"{method.value} is not a PPSP-TP/{version.value} method")
    tid = required_token(groups, "TransactionID")
    peer_id = required_token(groups, "PeerID")
    return _REQUEST_DECODERS[method](version, tid, peer_id, groups)


# --------------------------------------------------------------------------------------------
# Answers


def _requester_and_peers(infos: list[PeerInfo]) -> tuple[PeerInfo | None, tuple[PeerInfo, ...]]:
    """The requester and the listed peers of an answer's PeerInfo elements.

    A listed peer needs a PeerID and an address; entries naming one peer for one swarm are one
    peer (:func:`~ppsp.wire.tracker.merge_listed_peers`).
    """
    requester = None
    for index, info in enumerate(infos):
        if is_requester(info):
            requester = info
            infos = infos[:index] + infos[index + 1 :]
            break
    for info in infos:
        if info.peer_id is None or not info.addresses:
            raise BadRequest("a listed <PeerInfo> needs a <PeerID> and a <PeerAddress>")
    peers = merge_listed_peers(infos)
    if peers is not infos and any(len(peer.addresses) > MAX_PEER_ADDRESSES for peer in peers):
        raise BadRequest(f"a listed peer with more than {MAX_PEER_ADDRESSES} addresses")
    if len(peers) > MAX_LISTED_PEERS:
        raise BadRequest(f"more than {MAX_LISTED_PEERS} listed peers")
    return requester, tuple(peers)


def decode_response_root(root: Element) -> TrackerResponse | ErrorResponse:
    """The answer a parsed document holds."""
    version = read_version(root)
    groups = top_level(root)
    if "Request" in groups:
        raise BadRequest("a request where a response was expected")
    text = leaf_text(required_child(groups, "Response"))
    tid, results = read_results(required_child(groups, "TransactionID"))
    if text not in SUCCESS_TEXTS:
        code = ERROR_CODES_BY_TEXT.get(text)
        if code is None:
            raise BadRequest(f"unknown response {text[:40]!r}")
        return ErrorResponse(version=version, transaction_id=tid, code=code)
    requester, peers = _requester_and_peers(_peer_infos(groups))
    return TrackerResponse(
        version=version, transaction_id=tid, results=results, requester=requester, peers=peers
    )


_STATUS_CODES: dict[int, TrackerErrorCode] = {
    400: TrackerErrorCode.BAD_REQUEST,
    401: TrackerErrorCode.AUTHENTICATION_REQUIRED,
    403: TrackerErrorCode.FORBIDDEN,
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
    500: TrackerErrorCode.INTERNAL_ERROR,
    503: TrackerErrorCode.SERVICE_UNAVAILABLE,
}


def _error_code(status: int, reason: str, body_text: str | None) -> TrackerErrorCode:
    code = _STATUS_CODES.get(status)
    if code is None:
        if 400 <= status <= 499:
            code = TrackerErrorCode.BAD_REQUEST
        elif 500 <= status <= 599:
            code = TrackerErrorCode.INTERNAL_ERROR
        else:
            raise BadRequest(f"unexpected HTTP status {status} from the tracker")
    if code is TrackerErrorCode.BAD_REQUEST and (
        reason.strip().lower().startswith("ppsp version")
        or _VERSION_REASON_RE.search(reason) is not None
        or body_text == ERROR_TEXT[TrackerErrorCode.UNSUPPORTED_VERSION]
    ):
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    return code


def _decode_error(data: bytes, status: int, reason: str) -> ErrorResponse:
    # The status line decides; the body (often empty, maybe not even XML) only adds the
    # transaction ID, the version and the 400 flavour, when it can be read.
    version = ProtocolVersion.V1_0
    tid: str | None = None
    body_text: str | None = None
    if data.strip():
        try:
            root = parse(data)
            tid = peek_transaction_id(root)
            version = read_version(root)
            response = only_child(top_level(root), "Response")
            body_text = None if response is None else leaf_text(response)
        except TrackerProtocolError:
            pass
    return ErrorResponse(
        version=version,
        transaction_id=tid,
        code=_error_code(status, reason, body_text),
        reason=reason or None,
    )


def decode_response(
    data: bytes, status: int = 200, reason: str = ""
) -> TrackerResponse | ErrorResponse:
    """Decode a tracker's XML answer, given the HTTP ``status`` and ``reason`` phrase.

    Status 200 needs a full body: ``SUCCESSFUL`` gives a :class:`TrackerResponse` (an error
    text such as ``AUTHENTICATION REQUIRED`` gives an :class:`ErrorResponse`).  Any 4xx/5xx
    status gives an :class:`ErrorResponse` whose code comes from the status (400 with a reason
    phrase starting ``PPSP version`` or naming versions, or a body saying ``UNSUPPORTED VERSION
    NUMBER``, is UNSUPPORTED_VERSION); its body may be empty or unreadable.  Raises
    :class:`BadRequest` (or :class:`UnsupportedVersion`) for an invalid answer.
    """
    if status != 200:
        return _decode_error(data, status, reason)
    return with_transaction_id(parse(data), decode_response_root)
