"""The tracker JSON decoder: requests and answers, read by the generic readers of :mod:`.read`.

Reading follows RFC 7846 as printed and as specified (the package's docstring lists the forms
accepted); every failure is a :class:`~ppsp.errors.TrackerProtocolError` subclass carrying the
message's transaction ID when it could be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Final

from ppsp.codecs.tracker_json.read import (
    ACTIONS,
    ADDRESS_TYPES,
    CONTENT_MAP,
    CORRUPT_PEER,
    FAMILIES,
    PEER_MODES,
    STREAM_STATS,
    Malformed,
    as_items,
    as_object,
    as_objects,
    load_root,
    peek_transaction_id,
    read_ident,
    read_int,
    read_opt_choice,
    read_opt_ident,
    read_opt_int,
    read_opt_swarm_ident,
    read_opt_token,
    read_selector,
    read_swarm_ident,
    read_text,
    read_token,
    read_version,
)
from ppsp.codecs.tracker_json.scan import scan_request
from ppsp.errors import BadRequest, RemoteTrackerError, TrackerErrorCode
from ppsp.wire import fields
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
    MAX_ADVERTISED_ADDRESSES,
    MAX_CHUNKMAP_BITS,
    MAX_CORRUPT_REPORTS,
    MAX_EXTRA_STATISTICS,
    MAX_LISTED_PEERS,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_SWARM_ACTIONS,
    MIN_SIGNED_INTEGER,
    NO_SWARM,
    distinct_scope,
    is_extra_statistic_name,
)
from ppsp.wire.tracker import (
    ActionResult,
    AnyRequest,
    ConnectRequest,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

# Messages are built by writing their slots (ppsp.wire.builder), from keyword arguments.
_build_swarm_action = keyword_builder(SwarmAction)
_build_connect = keyword_builder(ConnectRequest)
_build_join = keyword_builder(JoinRequest)
_build_disconnect = keyword_builder(DisconnectRequest)
_build_find = keyword_builder(FindRequest)
_build_stream_statistics = keyword_builder(StreamStatistics)
_build_segment = keyword_builder(SegmentMap)
_build_representation = keyword_builder(RepresentationMap)
_build_content_map = keyword_builder(ContentMap)
_build_report = keyword_builder(StatReportRequest)
_build_corrupt_peer = keyword_builder(CorruptPeerReport)
# HTTP status of a non-JSON error answer -> the error it stands for.
_HTTP_ERRORS: Final = {
    400: TrackerErrorCode.BAD_REQUEST,
    401: TrackerErrorCode.AUTHENTICATION_REQUIRED,
    403: TrackerErrorCode.FORBIDDEN,
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
    500: TrackerErrorCode.INTERNAL_ERROR,
    503: TrackerErrorCode.SERVICE_UNAVAILABLE,
}


def _peer_num(value: object) -> PeerNum | None:
    if value is None:
        return None
    obj = as_object(value, "peer_num")
    return PeerNum(
        count=read_opt_int(obj.get("peer_count"), "peer_num.peer_count"),
        ability_nat=read_selector(obj.get("ability_nat"), "peer_num.ability_nat"),
        concurrent_links=read_selector(obj.get("concurrent_links"), "peer_num.concurrent_links"),
        online_time=read_selector(obj.get("online_time"), "peer_num.online_time"),
        upload_bandwidth=read_selector(obj.get("upload_bandwidth"), "peer_num.upload_bandwidth"),
    )


def read_peer_address(obj: Mapping[str, object]) -> PeerAddress:
    """A ``peer_addr`` object: its IP address canonical and of its family."""
    where = "peer_addr"
    ip_obj = as_object(obj.get("ip_address"), f"{where}.ip_address")
    text = read_text(ip_obj.get("address"), f"{where}.ip_address.address", empty=False)
    family = read_opt_choice(ip_obj.get("address_type"), f"{where}.address_type", FAMILIES)
    try:
        ip, version = fields.canonical_ip(text, None if family is None else _VERSION_OF[family])
    except ValueError as exc:
        raise Malformed(f"{where}.ip_address.address: {exc}") from None
    return PeerAddress(
        ip=ip,
        port=read_int(obj.get("port"), f"{where}.port", fields.MIN_PORT, fields.MAX_PORT),
        family=AddressFamily.IPV4 if version == 4 else AddressFamily.IPV6,
        priority=read_opt_int(obj.get("priority"), f"{where}.priority"),
        type=read_opt_choice(obj.get("type"), f"{where}.type", ADDRESS_TYPES),
        connection=read_opt_token(obj.get("connection"), f"{where}.connection"),
        asn=read_opt_token(obj.get("asn"), f"{where}.asn", numbers=True),
        peer_protocol=read_opt_token(obj.get("peer_protocol"), f"{where}.peer_protocol"),
    )


_VERSION_OF: Final = {AddressFamily.IPV4: 4, AddressFamily.IPV6: 6}


def _peer_addresses(value: object, limit: int = MAX_PEER_ADDRESSES) -> tuple[PeerAddress, ...]:
    return tuple(read_peer_address(o) for o in as_objects(value, "peer_addr", limit))


def _content_group(value: object) -> tuple[RepresentationScope, ...]:
    scopes = []
    for obj in as_objects(value, "content_group", MAX_REPRESENTATIONS):
        start = read_int(obj.get("start_index"), "content_group.start_index")
        end = read_opt_int(obj.get("end_index"), "content_group.end_index")
        if end is not None and end < start:
            raise Malformed("content_group.end_index is below start_index")
        scopes.append(
            RepresentationScope(
                representation_id=read_ident(
                    obj.get("representation_id"), "content_group.representation_id"
                ),
                start_index=start,
                end_index=end,
            )
        )
    try:
        return distinct_scope(scopes)  # a range given twice counts once
    except ValueError as exc:
        raise Malformed(str(exc)) from None


def _swarm_action(
    obj: Mapping[str, object],
    *,
    actions: Mapping[str, SwarmActionType],
    need_action: bool,
    need_mode: bool,
    keep: bool = True,
    reserved: bool = False,
) -> SwarmAction:
    """A ``swarm_action``; without ``keep`` only its swarm and transaction IDs are kept (the
    action and mode were checked and mean nothing to the request); with ``reserved`` its swarm
    ID may be ``ALL`` or ``nil`` (DISCONNECT)."""
    where = "swarm_action"
    action = read_opt_choice(obj.get("action"), f"{where}.action", actions)
    if action is None and need_action:
        raise Malformed(f"{where}.action is missing")
    mode = read_opt_choice(obj.get("peer_mode"), f"{where}.peer_mode", PEER_MODES)
    if mode is None and (need_mode or action is SwarmActionType.JOIN):
        raise Malformed(f"{where}.peer_mode is missing")
    read_swarm = read_ident if reserved else read_swarm_ident
    return _build_swarm_action(
        swarm_id=read_swarm(obj.get("swarm_id"), f"{where}.swarm_id"),
        action=action if keep else None,
        peer_mode=mode if keep or need_mode else None,
        transaction_id=read_opt_ident(obj.get("transaction_id"), f"{where}.transaction_id"),
    )


def _once_each(actions: tuple[SwarmAction, ...], transaction_id: str) -> tuple[SwarmAction, ...]:
    """``actions``, refused when they name a swarm twice (as the XML codec refuses it) or when
    a per-action transaction ID would make an XML answer's root ambiguous (fields rule)."""
    if len(actions) > 1 and len({action.swarm_id for action in actions}) != len(actions):
        raise Malformed("swarm_action names a swarm twice")
    if not fields.clear_action_ids(transaction_id, actions):
        raise Malformed("a swarm_action's transaction_id ends in '.0' but the request's does not")
    return actions


def _request_data(root: dict[str, object], name: str) -> dict[str, object]:
    """The request's wrapper object, or the root itself when the wrapper is left out."""
    if name in root:
        return as_object(root[name], name)
    return root


_Common = tuple[ProtocolVersion, str, str]


def _read_connect(root: dict[str, object], common: _Common) -> ConnectRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "connect")
    actions = _once_each(
        tuple(
            _swarm_action(o, actions=ACTIONS, need_action=True, need_mode=False)
            for o in as_objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
        ),
        transaction_id,
    )
    if version is ProtocolVersion.V1_0 and not actions:
        raise Malformed("an RFC 7846 CONNECT needs at least one swarm_action")
    return _build_connect(
        version=version,
        transaction_id=transaction_id,
        peer_id=peer_id,
        peer_addresses=_peer_addresses(data.get("peer_addr"), MAX_ADVERTISED_ADDRESSES),
        swarm_actions=actions,
        peer_num=_peer_num(data.get("peer_num")),
        content_group=(
            _content_group(data.get("content_group")) if version is ProtocolVersion.V1_1 else ()
        ),
    )


def _read_join(root: dict[str, object], common: _Common) -> JoinRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "join")
    swarms = _once_each(
        tuple(
            _swarm_action(
                o,
                actions={"JOIN": SwarmActionType.JOIN},
                need_action=False,
                need_mode=True,
                keep=False,
            )
            for o in as_objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
        ),
        transaction_id,
    )
    if not swarms:
        raise Malformed("JOIN needs at least one swarm_action")
    return _build_join(
        version=version,
        transaction_id=transaction_id,
        peer_id=peer_id,
        swarms=swarms,
        peer_num=_peer_num(data.get("peer_num")),
        content_group=_content_group(data.get("content_group")),
    )


_DISCONNECT_WORDS: Final = {
    ALL_SWARMS: DisconnectScope.ALL_SWARMS,
    NO_SWARM: DisconnectScope.SYSTEM,
}


def _read_disconnect(root: dict[str, object], common: _Common) -> DisconnectRequest:
    version, transaction_id, peer_id = common
    value = root.get("disconnect", root)
    swarms: tuple[SwarmAction, ...] = ()
    if isinstance(value, str) and value in _DISCONNECT_WORDS:
        scope = _DISCONNECT_WORDS[value]
    else:
        data = {} if value is None or value == [] else as_object(value, "disconnect")
        if "swarm_id" in data and "swarm_action" in data:
            raise Malformed("disconnect has both swarm_id and swarm_action")
        if "swarm_id" in data:
            swarms = tuple(
                SwarmAction(swarm_id=read_ident(item, "disconnect.swarm_id"))
                for item in as_items(data["swarm_id"], "disconnect.swarm_id", MAX_SWARM_ACTIONS)
            )
        else:
            swarms = tuple(
                _swarm_action(
                    o,
                    actions={"LEAVE": SwarmActionType.LEAVE},
                    need_action=False,
                    need_mode=False,
                    keep=False,
                    reserved=True,
                )
                for o in as_objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
            )
        words = [s.swarm_id for s in swarms if s.swarm_id in _DISCONNECT_WORDS]
        if not swarms:
            # The form of earlier releases (and of an empty list): leaving the system.
            scope = DisconnectScope.SYSTEM
        elif words:
            if len(swarms) > 1:
                raise Malformed(f"disconnect mixes {words[0]} with swarm IDs")
            scope, swarms = _DISCONNECT_WORDS[words[0]], ()
        else:
            scope = DisconnectScope.SWARMS
            _once_each(swarms, transaction_id)
    return _build_disconnect(
        version=version, transaction_id=transaction_id, peer_id=peer_id, scope=scope, swarms=swarms
    )


def _read_find(root: dict[str, object], common: _Common) -> FindRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "find")
    return _build_find(
        version=version,
        transaction_id=transaction_id,
        peer_id=peer_id,
        swarm_id=read_swarm_ident(data.get("swarm_id"), "find.swarm_id"),
        peer_num=_peer_num(data.get("peer_num")),
        content_group=(
            _content_group(data.get("content_group")) if version is ProtocolVersion.V1_1 else ()
        ),
    )


def _extra_stat(name: str, value: object) -> tuple[str, str] | None:
    """An extension member of a stat as (name, text), or None for one this codec cannot pass on:
    a name other than :data:`~ppsp.wire.fields.EXTRA_STATISTIC_NAME_RE` (or a standard
    statistic's, in either encoding), a value other than an integer or a token."""
    if not is_extra_statistic_name(name):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        if isinstance(value, int):
            return name, str(read_int(value, "value", MIN_SIGNED_INTEGER))
        return name, read_token(value, "value")
    except Malformed:
        return None


def _stream_stat(obj: Mapping[str, object]) -> StreamStatistics:
    where = "stat"
    extra: list[tuple[str, str]] = []
    for name, value in obj.items():
        item = _extra_stat(name, value)
        if item is not None:
            if len(extra) == MAX_EXTRA_STATISTICS:
                raise Malformed(f"{where} has more than {MAX_EXTRA_STATISTICS} extension members")
            extra.append(item)
    return _build_stream_statistics(
        swarm_id=read_opt_swarm_ident(obj.get("swarm_id"), "stat.swarm_id"),
        uploaded_bytes=read_opt_int(obj.get("uploaded_bytes"), "stat.uploaded_bytes"),
        downloaded_bytes=read_opt_int(obj.get("downloaded_bytes"), "stat.downloaded_bytes"),
        available_bandwidth=read_opt_int(
            obj.get("available_bandwidth"), "stat.available_bandwidth"
        ),
        concurrent_links=read_opt_int(obj.get("concurrent_links"), "stat.concurrent_links"),
        extra=tuple(extra),
    )


def _segment(obj: Mapping[str, object]) -> SegmentMap:
    where = "segment_info"
    start = read_int(obj.get("start_index"), "segment_info.start_index")
    end = read_int(obj.get("end_index"), "segment_info.end_index")
    if end < start:
        raise Malformed(f"{where}.end_index is below start_index")
    size = end - start + 1
    if size > MAX_CHUNKMAP_BITS:
        raise Malformed(f"{where} covers more than {MAX_CHUNKMAP_BITS} chunks")
    declared = read_opt_int(obj.get("chunkmap_size"), "segment_info.chunkmap_size")
    if declared is not None and declared != size:
        raise Malformed(f"{where}.chunkmap_size must be end_index - start_index + 1")
    text = obj.get("chunkmap")
    if not isinstance(text, str):
        raise Malformed(f"{where}.chunkmap must be a Base64 string")
    try:
        bitmap = fields.chunkmap_bytes(text, size)
    except ValueError as exc:
        raise Malformed(f"{where}.chunkmap: {exc}") from None
    return _build_segment(start_index=start, end_index=end, chunkmap_size=size, bitmap=bitmap)


def _content_map(obj: Mapping[str, object], budget: list[int]) -> ContentMap:
    """A ``CONTENT_MAP`` stat; ``budget`` holds the segments the message may still have."""
    representations = []
    for rep in as_objects(obj.get("representation"), "representation", MAX_REPRESENTATIONS):
        segments = as_objects(rep.get("segment_info"), "segment_info", MAX_SEGMENTS)
        budget[0] -= len(segments)
        if budget[0] < 0:
            raise Malformed(f"stat_report has more than {MAX_SEGMENTS} segment_info entries")
        if not segments:
            raise Malformed("a representation of a content map needs a segment_info")
        representations.append(
            _build_representation(
                representation_id=read_ident(rep.get("id"), "representation.id"),
                segments=tuple(_segment(seg) for seg in segments),
            )
        )
    if not representations:
        raise Malformed("a content map needs a representation")
    return _build_content_map(
        swarm_id=read_swarm_ident(obj.get("swarm_id"), "stat.swarm_id"),
        representations=tuple(representations),
    )


def _corrupt_peer(obj: Mapping[str, object]) -> CorruptPeerReport:
    """A ``CORRUPT_PEER`` stat: ``swarm_id``, ``peer_id``, one ``peer_addr``, ``corrupt_chunks``."""
    address = read_peer_address(as_object(obj.get("peer_addr"), "stat.peer_addr"))
    return _build_corrupt_peer(
        swarm_id=read_swarm_ident(obj.get("swarm_id"), "stat.swarm_id"),
        peer_id=read_ident(obj.get("peer_id"), "stat.peer_id"),
        ip=address.ip,
        port=address.port,
        corrupt_chunks=read_int(obj.get("corrupt_chunks"), "stat.corrupt_chunks", 1),
    )


def _read_stat_report(root: dict[str, object], common: _Common) -> StatReportRequest:
    version, transaction_id, peer_id = common
    value = root.get("stat_report")
    groups = as_objects(value, "stat_report", MAX_STATS)
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    corrupt_peers: list[CorruptPeerReport] = []
    budget = [MAX_SEGMENTS]
    for group in groups:
        if not group:
            continue  # {} is an empty report: a keep-alive
        kind = read_text(group.get("type"), "stat_report.type")
        stats = as_objects(group.get("stat", group.get("Stat")), "stat", MAX_STATS)
        if len(stream_stats) + len(content_maps) + len(corrupt_peers) + len(stats) > MAX_STATS:
            raise Malformed(f"stat_report has more than {MAX_STATS} stats")
        if kind == STREAM_STATS:
            stream_stats.extend(_stream_stat(s) for s in stats)
        elif kind == CONTENT_MAP and version is ProtocolVersion.V1_1:
            content_maps.extend(_content_map(s, budget) for s in stats)
        elif kind == CORRUPT_PEER:
            # An extension stat (RFC 7846 section 7.1) in either version: readers that do not
            # know it ignore it.
            if len(corrupt_peers) + len(stats) > MAX_CORRUPT_REPORTS:
                raise Malformed(f"stat_report has more than {MAX_CORRUPT_REPORTS} corrupt peers")
            corrupt_peers.extend(_corrupt_peer(s) for s in stats)
    return _build_report(
        version=version,
        transaction_id=transaction_id,
        peer_id=peer_id,
        stream_stats=tuple(stream_stats),
        content_maps=tuple(content_maps),
        corrupt_peers=tuple(corrupt_peers),
    )


_RequestReader = Callable[[dict[str, object], _Common], AnyRequest]
_REQUEST_READERS: Final[dict[ProtocolVersion, dict[str, _RequestReader]]] = {
    ProtocolVersion.V1_0: {
        "CONNECT": _read_connect,
        "FIND": _read_find,
        "STAT_REPORT": _read_stat_report,
    },
    ProtocolVersion.V1_1: {
        "CONNECT": _read_connect,
        "JOIN": _read_join,
        "DISCONNECT": _read_disconnect,
        "FIND": _read_find,
        "STAT_REPORT": _read_stat_report,
    },
}
"""request_type -> reader, per version: the requests each version has."""


def decode_request(
    data: bytes,
    *,
    max_version: ProtocolVersion = ProtocolVersion.V1_1,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> AnyRequest:
    """Decode a JSON tracker request.

    ``"version": 1`` gives a :attr:`~ppsp.wire.tracker.ProtocolVersion.V1_0` request as
    RFC 7846 defines it; ``"version": 2`` a ``V1_1`` request of the extension described in this
    module's docstring.  Raises :class:`~ppsp.errors.UnsupportedVersion` for any other version
    (or for 2 when ``max_version`` is ``V1_0``), :class:`~ppsp.errors.PayloadTooLarge` for a
    body over ``max_bytes``, and :class:`~ppsp.errors.BadRequest` for anything malformed; the
    errors carry the request's transaction ID when it could be read.
    """
    if max_version is ProtocolVersion.V1_1 and len(data) <= max_bytes:
        # The codec's own shapes are read from the bytes (.scan); the full decoder reads
        # everything else and decides every refusal.
        scanned = scan_request(data)
        if scanned is not None:
            return scanned
    return decode_request_objects(data, max_version=max_version, max_bytes=max_bytes)


def decode_request_objects(
    data: bytes,
    *,
    max_version: ProtocolVersion = ProtocolVersion.V1_1,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> AnyRequest:
    """:func:`decode_request` by the full decoder alone: the document parsed into JSON objects,
    each member read and checked (what every document the byte reader passes over gets)."""
    root = load_root(data, max_bytes)
    transaction_id = peek_transaction_id(root)
    version = read_version(root, transaction_id, max_version)
    try:
        request_type = root.get("request_type")
        reader = (
            _REQUEST_READERS[version].get(request_type) if isinstance(request_type, str) else None
        )
        if reader is None:
            raise Malformed(f"request_type must be one of {', '.join(_REQUEST_READERS[version])}")
        common = (
            version,
            read_ident(root.get("transaction_id"), "transaction_id"),
            read_ident(root.get("peer_id"), "peer_id"),
        )
        return reader(root, common)
    except Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None


# ---------------------------------------------------------------------------------------------
# Answers


def _peer_info(obj: Mapping[str, object], swarm_id: str | None) -> PeerInfo:
    """One ``peer_info`` entry: a peer ID and its address (or, as earlier releases wrote, an
    array of its addresses)."""
    addresses = _peer_addresses(obj.get("peer_addr"))
    if not addresses:
        raise Malformed("peer_info.peer_addr is missing")
    return PeerInfo(
        peer_id=read_ident(obj.get("peer_id"), "peer_info.peer_id"),
        addresses=addresses,
        swarm_id=swarm_id,
    )


def _read_success(root: Mapping[str, object], version: ProtocolVersion) -> TrackerResponse:
    if read_opt_int(root.get("error_code"), "error_code") not in (None, 0):
        raise Malformed("a SUCCESSFUL response has error_code 0")
    results: list[ActionResult] = []
    peers: list[PeerInfo] = []
    for obj in as_objects(root.get("swarm_result"), "swarm_result", MAX_SWARM_ACTIONS):
        swarm_id = read_opt_swarm_ident(obj.get("swarm_id"), "swarm_result.swarm_id")
        result = read_int(obj.get("result"), "swarm_result.result", 0, 1)
        results.append(
            ActionResult(
                transaction_id=read_opt_ident(
                    obj.get("transaction_id"), "swarm_result.transaction_id"
                ),
                swarm_id=swarm_id,
                status=200 if result == 0 else 400,
            )
        )
        group = obj.get("peer_group")
        if group is not None:
            infos = as_object(group, "peer_group").get("peer_info")
            # At most one entry per address of each listed peer.
            entries = as_objects(infos, "peer_info", MAX_LISTED_PEERS * MAX_PEER_ADDRESSES)
            peers.extend(_peer_info(o, swarm_id) for o in entries)
    # One peer_info per address (RFC 7846): the entries of one peer become one peer again.
    listed = merge_listed_peers(peers)
    if len(listed) > MAX_LISTED_PEERS:
        raise Malformed(f"more than {MAX_LISTED_PEERS} peers listed")
    if any(len(peer.addresses) > MAX_PEER_ADDRESSES for peer in listed):
        raise Malformed(f"a listed peer with more than {MAX_PEER_ADDRESSES} addresses")
    # One address (RFC 7846 section 3.3.4); of an array, as earlier releases wrote, the one
    # the encoder would write.
    requester = _peer_addresses(root.get("peer_addr"))
    if len(requester) > 1:
        requester = (requester_choice(requester),)
    return TrackerResponse(
        version=version,
        transaction_id=read_ident(root.get("transaction_id"), "transaction_id"),
        results=tuple(results),
        requester=PeerInfo(addresses=requester) if requester else None,
        peers=tuple(listed),
    )


def requester_choice(addresses: Sequence[PeerAddress]) -> PeerAddress:
    """The requester's address a response carries: the REFLEXIVE one, else the first."""
    return next((a for a in addresses if a.type is AddressType.REFLEXIVE), addresses[0])


def decode_response_body(data: bytes, max_bytes: int) -> TrackerResponse | ErrorResponse:
    """Decode a response body (any status), bounded by ``max_bytes``."""
    root = load_root(data, max_bytes)
    transaction_id = peek_transaction_id(root)
    version = read_version(root, transaction_id, ProtocolVersion.V1_1)
    try:
        if read_int(root.get("response_type"), "response_type", 0, 1) == 0:
            return _read_success(root, version)
        code = read_int(root.get("error_code"), "error_code", 1, 6)
        return ErrorResponse(
            version=version, transaction_id=transaction_id, code=TrackerErrorCode(code)
        )
    except Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None


def _error_from_status(status: int, reason: str) -> ErrorResponse:
    code = _HTTP_ERRORS.get(status)
    if code is None:
        code = TrackerErrorCode.INTERNAL_ERROR if status >= 500 else TrackerErrorCode.BAD_REQUEST
    if code is TrackerErrorCode.BAD_REQUEST and "version" in reason.lower():
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    return ErrorResponse(
        version=ProtocolVersion.V1_0, transaction_id=None, code=code, reason=reason or None
    )


def decode_response(
    data: bytes, status: int = 200, reason: str = "", *, max_bytes: int = MAX_MESSAGE_BYTES
) -> TrackerResponse | ErrorResponse:
    """Decode a JSON tracker response received with HTTP ``status`` and ``reason`` phrase.

    ``response_type`` 0 gives a :class:`~ppsp.wire.tracker.TrackerResponse` (top-level
    ``peer_addr`` is its ``requester``; each ``swarm_result`` an
    :class:`~ppsp.wire.tracker.ActionResult`, status 200 for result 0 and 400 for 1, whose
    ``peer_info`` entries become ``peers`` tagged with that ``swarm_id``, the entries of one
    peer ID merged into one peer); ``response_type`` 1
    an :class:`~ppsp.wire.tracker.ErrorResponse` with the ``error_code``.

    With a status outside 2xx, an error body is returned with ``reason`` attached; a body that
    is not a valid PPSP-TP error (HTML, empty, a success body) gives an ``ErrorResponse`` made
    from the status: 400 bad request (unsupported version when the reason phrase mentions a
    version), 401, 403, 404, 413, 500, 503 as in :class:`~ppsp.errors.TrackerErrorCode`, other
    4xx bad request and other 5xx internal error.  With a 2xx status an invalid body raises
    :class:`~ppsp.errors.BadRequest` (or another :class:`~ppsp.errors.RemoteTrackerError`).
    """
    if 200 <= status < 300:
        return decode_response_body(data, max_bytes)
    try:
        message = decode_response_body(data, max_bytes)
    except RemoteTrackerError:
        return _error_from_status(status, reason)
    if isinstance(message, ErrorResponse):
        return replace(message, reason=reason or None)
    return _error_from_status(status, reason)
