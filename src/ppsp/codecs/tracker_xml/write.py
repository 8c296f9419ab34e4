"""The element-tree writer of tracker XML: every request, and the reference writer of answers.

Elements are written in the order of the drafts' generic template, in the default namespace
:data:`~ppsp.codecs.tracker_xml.values.NAMESPACE`, after an XML declaration with UTF-8.  Every
value is checked by the rules the readers apply (:mod:`.values`), so a message that would not
decode back to itself raises :class:`~ppsp.errors.LocalProtocolError`.  Answers are normally
written from string templates (:mod:`.templates`); :func:`encode_response_tree` is the writer
they are checked against, and the one that reports a message they refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lxml import etree

from ppsp.codecs.tracker_xml.tree import Element
from ppsp.codecs.tracker_xml.values import (
    ERROR_TEXT,
    METHODS_BY_VERSION,
    NAMESPACE,
    ROOT,
    STAT_CONTENT_MAP,
    STAT_CORRUPT_PEER,
    STAT_STREAM,
    SUCCESS_TEXT,
    XML_DECLARATION,
    actions_of,
    check_integer,
    check_ip,
    check_swarm,
    check_token,
    clear_action_ids,
    is_requester,
    status_phrase,
)
from ppsp.errors import LocalProtocolError
from ppsp.wire import fields
from ppsp.wire.common import PeerAddress, PeerInfo, PeerNum, RepresentationScope
from ppsp.wire.fields import (
    ALL_SWARMS,
    MAX_ADVERTISED_ADDRESSES,
    MAX_CORRUPT_REPORTS,
    MAX_EXTRA_STATISTICS,
    MAX_LISTED_PEERS,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_PORT,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_SWARM_ACTIONS,
    MIN_PORT,
    NO_SWARM,
    distinct_scope,
    is_extra_statistic_name,
)
from ppsp.wire.tracker import (
    ActionResult,
    AnyRequest,
    ConnectRequest,
    ContentMap,
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

_NSMAP: dict[Any, str] = {None: NAMESPACE}
"""The root's namespace map: lxml takes None as the default namespace's prefix (its type
stubs allow only text)."""


def _qname(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _new_root(version: ProtocolVersion) -> Element:
    if not isinstance(version, ProtocolVersion):
        raise LocalProtocolError(f"unknown protocol version {version!r}")
    root = etree.Element(_qname(ROOT), nsmap=_NSMAP)
    root.set("version", version.value)
    return root


def _sub(parent: Element, name: str, text: str | None = None, **attrs: str | None) -> Element:
    element = etree.SubElement(parent, _qname(name))
    for key, value in attrs.items():
        if value is not None:
            element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _local_token(value: str | None, what: str) -> str | None:
    return None if value is None else check_token(value, what, LocalProtocolError)


def _local_swarm(value: str | None, what: str) -> str | None:
    return None if value is None else check_swarm(value, what, LocalProtocolError)


def _serialize(root: Element) -> bytes:
    return bounded_body(
        XML_DECLARATION
        + etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    )


def bounded_body(data: bytes) -> bytes:
    """``data``, unless it is over the bound every reader of this codec enforces."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise LocalProtocolError(f"a message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
    return data


def _bounded(items: Sequence[object], limit: int, what: str) -> None:
    if len(items) > limit:
        raise LocalProtocolError(f"more than {limit} {what}")


def _encode_address(parent: Element, address: PeerAddress) -> None:
    ip = check_token(address.ip, "PeerAddress ip", LocalProtocolError)
    check_ip(ip, address.family, LocalProtocolError)
    _sub(
        parent,
        "PeerAddress",
        addrType=address.family.value,
        ip=ip,
        port=check_integer(address.port, "port", MAX_PORT, MIN_PORT),
        priority=None if address.priority is None else check_integer(address.priority, "priority"),
        type=None if address.type is None else address.type.value,
        connection=_local_token(address.connection, "connection"),
        asn=_local_token(address.asn, "asn"),
        peerProtocol=_local_token(address.peer_protocol, "peer_protocol"),
    )


def _encode_peer_info(
    parent: Element, info: PeerInfo, swarm_id: str | None, *, listed: bool = False
) -> None:
    _bounded(info.addresses, MAX_PEER_ADDRESSES, "addresses in a PeerInfo")
    if listed and (info.peer_id is None or not info.addresses):
        raise LocalProtocolError("a listed peer needs a peer ID and an address")
    element = _sub(parent, "PeerInfo", swarmID=_local_swarm(swarm_id, "PeerInfo swarm_id"))
    if info.peer_id is not None:
        _sub(element, "PeerID", _local_token(info.peer_id, "PeerInfo peer_id"))
    for address in info.addresses:
        _encode_address(element, address)


def _encode_peer_num(root: Element, peer_num: PeerNum | None) -> None:
    if peer_num is None:
        return
    _sub(
        root,
        "PeerNum",
        None if peer_num.count is None else check_integer(peer_num.count, "PeerNum count"),
        abilityNAT=_local_token(peer_num.ability_nat, "ability_nat"),
        concurrentLinks=_local_token(peer_num.concurrent_links, "concurrent_links"),
        onlineTime=_local_token(peer_num.online_time, "online_time"),
        uploadBWlevel=_local_token(peer_num.upload_bandwidth, "upload_bandwidth"),
    )


def _encode_content_group(root: Element, scopes: tuple[RepresentationScope, ...]) -> None:
    if not scopes:
        return
    try:
        scopes = distinct_scope(scopes)  # as the reader reads them: each range once
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from None
    group = _sub(root, "ContentGroup")
    for scope in scopes:
        start = check_integer(scope.start_index, "start_index")
        end = None
        if scope.end_index is not None:
            end = check_integer(scope.end_index, "end_index")
            if scope.end_index < scope.start_index:
                raise LocalProtocolError("end_index is below start_index")
        representation = _sub(
            group, "Representation", id=_local_token(scope.representation_id, "representation")
        )
        _sub(representation, "SegmentInfo", startIndex=start, endIndex=end)


def _encode_swarm_ids(
    root: Element, actions: Iterable[SwarmAction], *, action: bool, peer_mode: bool
) -> None:
    seen: set[str] = set()
    for swarm in actions:
        swarm_id = check_swarm(swarm.swarm_id, "swarm_id", LocalProtocolError)
        if swarm_id in seen:
            raise LocalProtocolError(f"swarm {swarm_id!r} appears twice")
        seen.add(swarm_id)
        if action and swarm.action is None:
            raise LocalProtocolError("a CONNECT swarm action needs an action")
        joining = not action or swarm.action is SwarmActionType.JOIN
        if peer_mode and joining and swarm.peer_mode is None:
            raise LocalProtocolError("joining a swarm needs a peer mode")
        _sub(
            root,
            "SwarmID",
            swarm_id,
            action=swarm.action.value if action and swarm.action is not None else None,
            peerMode=swarm.peer_mode.value if peer_mode and swarm.peer_mode is not None else None,
            transactionID=_local_token(swarm.transaction_id, "transaction_id"),
        )


def _encode_connect(root: Element, msg: ConnectRequest) -> None:
    if msg.version is ProtocolVersion.V1_0 and not msg.swarm_actions:
        raise LocalProtocolError("a PPSP-TP/1.0 CONNECT needs at least one swarm action")
    _bounded(msg.swarm_actions, MAX_SWARM_ACTIONS, "swarm actions")
    _bounded(msg.peer_addresses, MAX_ADVERTISED_ADDRESSES, "peer addresses")
    _encode_swarm_ids(root, msg.swarm_actions, action=True, peer_mode=True)
    _encode_peer_num(root, msg.peer_num)
    if msg.peer_addresses:
        _encode_peer_info(_sub(root, "PeerGroup"), PeerInfo(addresses=msg.peer_addresses), None)
    _encode_content_group(root, msg.content_group)


def _encode_join(root: Element, msg: JoinRequest) -> None:
    if not msg.swarms:
        raise LocalProtocolError("JOIN needs at least one swarm")
    _bounded(msg.swarms, MAX_SWARM_ACTIONS, "swarms")
    _encode_swarm_ids(root, msg.swarms, action=False, peer_mode=True)
    _encode_peer_num(root, msg.peer_num)
    _encode_content_group(root, msg.content_group)


def _encode_disconnect(root: Element, msg: DisconnectRequest) -> None:
    if msg.scope is DisconnectScope.SWARMS:
        if not msg.swarms:
            raise LocalProtocolError("DISCONNECT from named swarms needs at least one swarm")
        _bounded(msg.swarms, MAX_SWARM_ACTIONS, "swarms")
        # ALL and nil are refused as swarm IDs (their scopes say them).
        _encode_swarm_ids(root, msg.swarms, action=False, peer_mode=False)
        return
    if msg.swarms:
        raise LocalProtocolError(f"a {msg.scope.value} DISCONNECT names no swarms")
    if msg.scope is DisconnectScope.ALL_SWARMS:
        _sub(root, "SwarmID", ALL_SWARMS)
    elif msg.scope is DisconnectScope.SYSTEM:
        # As huang-01 section 4.2 writes it (readers also take a DISCONNECT without SwarmID).
        _sub(root, "SwarmID", NO_SWARM)
    else:
        raise LocalProtocolError(f"unknown DISCONNECT scope {msg.scope!r}")


def _encode_find(root: Element, msg: FindRequest) -> None:
    _sub(root, "SwarmID", check_swarm(msg.swarm_id, "swarm_id", LocalProtocolError))
    _encode_peer_num(root, msg.peer_num)
    _encode_content_group(root, msg.content_group)


def _encode_stream_statistics(group: Element, stats: StreamStatistics) -> None:
    stat = _sub(group, "Stat", property=STAT_STREAM)
    if stats.swarm_id is not None:
        _sub(stat, "SwarmID", _local_swarm(stats.swarm_id, "statistics swarm_id"))
    for name, value in (
        ("UploadedBytes", stats.uploaded_bytes),
        ("DownloadedBytes", stats.downloaded_bytes),
        ("AvailBandwidth", stats.available_bandwidth),
        ("ConcurrentLinks", stats.concurrent_links),
    ):
        if value is not None:
            _sub(stat, name, check_integer(value, name))
    _bounded(stats.extra, MAX_EXTRA_STATISTICS, "extra statistics")
    names: set[str] = set()
    for extra_name, extra_value in stats.extra:
        if not is_extra_statistic_name(extra_name) or extra_name in names:
            raise LocalProtocolError(
                f"extra statistic name {extra_name!r} is reserved, invalid or given twice"
            )
        names.add(extra_name)
        text = check_token(extra_value, f"statistic {extra_name}", LocalProtocolError)
        _sub(stat, extra_name, text)


def _encode_content_map(group: Element, content_map: ContentMap, budget: list[int]) -> None:
    if not content_map.representations:
        raise LocalProtocolError("a content map needs at least one representation")
    _bounded(content_map.representations, MAX_REPRESENTATIONS, "representations in a map")
    stat = _sub(group, "Stat", property=STAT_CONTENT_MAP)
    _sub(
        stat,
        "SwarmID",
        check_swarm(content_map.swarm_id, "content map swarm_id", LocalProtocolError),
    )
    for representation in content_map.representations:
        if not representation.segments:
            raise LocalProtocolError("a content map representation needs at least one segment")
        element = _sub(
            stat,
            "Representation",
            id=_local_token(representation.representation_id, "representation"),
        )
        for segment in representation.segments:
            budget[0] -= 1
            if budget[0] < 0:
                raise LocalProtocolError(f"more than {MAX_SEGMENTS} segments")
            start = check_integer(segment.start_index, "start_index")
            end = check_integer(segment.end_index, "end_index")
            size = check_integer(segment.chunkmap_size, "chunkmap_size")
            if segment.chunkmap_size != segment.end_index - segment.start_index + 1:
                raise LocalProtocolError("chunkmap_size must be end_index - start_index + 1")
            try:
                text = fields.chunkmap_text(segment.bitmap, segment.chunkmap_size)
            except ValueError as exc:
                raise LocalProtocolError(f"segment bitmap: {exc}") from None
            _sub(
                element,
                "SegmentInfo",
                text,
                startIndex=start,
                endIndex=end,
                chunkmapSize=size,
            )


def _encode_corrupt_peer(group: Element, report: CorruptPeerReport) -> None:
    stat = _sub(group, "Stat", property=STAT_CORRUPT_PEER)
    _sub(stat, "SwarmID", check_swarm(report.swarm_id, "report swarm_id", LocalProtocolError))
    _sub(stat, "PeerID", check_token(report.peer_id, "report peer_id", LocalProtocolError))
    ip = check_token(report.ip, "report ip", LocalProtocolError)
    canonical, family = check_ip(ip, None, LocalProtocolError)
    if canonical != ip:
        raise LocalProtocolError(f"report ip {ip[:40]!r} is not in canonical form")
    _sub(
        stat,
        "PeerAddress",
        addrType=family.value,
        ip=ip,
        port=check_integer(report.port, "report port", MAX_PORT, MIN_PORT),
    )
    _sub(stat, "CorruptChunks", check_integer(report.corrupt_chunks, "corrupt_chunks", minimum=1))


def _encode_stat_report(root: Element, msg: StatReportRequest) -> None:
    if not msg.stream_stats and not msg.content_maps and not msg.corrupt_peers:
        return
    _bounded((*msg.stream_stats, *msg.content_maps, *msg.corrupt_peers), MAX_STATS, "statistics")
    _bounded(msg.corrupt_peers, MAX_CORRUPT_REPORTS, "corrupt-peer reports")
    group = _sub(root, "StatisticsGroup")
    for stats in msg.stream_stats:
        _encode_stream_statistics(group, stats)
    budget = [MAX_SEGMENTS]
    for content_map in msg.content_maps:
        _encode_content_map(group, content_map, budget)
    for report in msg.corrupt_peers:
        _encode_corrupt_peer(group, report)


def encode_request(msg: AnyRequest) -> bytes:
    """Encode a request as a PPSP-TP XML body in ``msg.version``.

    Raises :class:`LocalProtocolError` when the message cannot be written so that it decodes
    back to itself (a method the version lacks, an invalid token or integer, a CONNECT
    swarm action without action, ...).  Fields a method does not use (``action`` on a JOIN
    swarm, modes on DISCONNECT swarms) are not written.
    """
    method = msg.method
    if method not in METHODS_BY_VERSION.get(msg.version, frozenset()):
        raise LocalProtocolError(f"{method.value} is not a PPSP-TP/{msg.version} method")
    if isinstance(msg.transaction_id, str):
        clear_action_ids(msg.transaction_id, actions_of(msg), LocalProtocolError)
    root = _new_root(msg.version)
    _sub(root, "Request", method.value)
    _sub(
        root, "TransactionID", check_token(msg.transaction_id, "transaction_id", LocalProtocolError)
    )
    _sub(root, "PeerID", check_token(msg.peer_id, "peer_id", LocalProtocolError))
    if isinstance(msg, ConnectRequest):
        _encode_connect(root, msg)
    elif isinstance(msg, JoinRequest):
        _encode_join(root, msg)
    elif isinstance(msg, DisconnectRequest):
        _encode_disconnect(root, msg)
    elif isinstance(msg, FindRequest):
        _encode_find(root, msg)
    else:
        _encode_stat_report(root, msg)
    return _serialize(root)


def _encode_results(container: Element, msg: TrackerResponse) -> None:
    tid = check_token(msg.transaction_id, "transaction_id", LocalProtocolError)
    if not msg.results:
        container.text = tid
        return
    _bounded(msg.results, MAX_SWARM_ACTIONS, "results")
    # The root transaction ID is written as the first Result; the decoder takes the first
    # ID ending in ".0", else the first ID, so no other result may end in ".0" unless the root does.
    roots = [r for r in msg.results if r.transaction_id == tid]
    others = [r for r in msg.results if r.transaction_id != tid]
    if not tid.endswith(".0") and any(
        r.transaction_id is not None and r.transaction_id.endswith(".0") for r in others
    ):
        raise LocalProtocolError("only the root transaction ID may end in '.0'")
    first = roots[0] if roots else ActionResult(transaction_id=tid)
    for result in (first, *others, *roots[1:]):
        if isinstance(result.status, bool) or not 100 <= result.status <= 599:
            raise LocalProtocolError(f"result status {result.status!r} is not in [100, 599]")
        _sub(
            container,
            "Result",
            f"{result.status} {status_phrase(result.status)}",
            transactionID=_local_token(result.transaction_id, "result transaction_id"),
            swarmID=_local_swarm(result.swarm_id, "result swarm_id"),
        )


def encode_response_tree(msg: TrackerResponse | ErrorResponse) -> bytes:
    """:func:`encode_response` through an lxml element tree: the reference writer."""
    root = _new_root(msg.version)
    if isinstance(msg, ErrorResponse):
        _sub(root, "Response", ERROR_TEXT[msg.code])
        if msg.transaction_id is not None:
            _sub(root, "TransactionID", _local_token(msg.transaction_id, "transaction_id"))
        return _serialize(root)
    _sub(root, "Response", SUCCESS_TEXT)
    _encode_results(_sub(root, "TransactionID"), msg)
    if msg.requester is not None and not is_requester(
        PeerInfo(addresses=msg.requester.addresses)  # its swarm_id is not written
    ):
        raise LocalProtocolError("the requester needs a REFLEXIVE address")
    if msg.requester is None and any(is_requester(peer) for peer in msg.peers):
        raise LocalProtocolError(
            "a peer without swarm ID holding a REFLEXIVE address would read as the requester"
        )
    _bounded(msg.peers, MAX_LISTED_PEERS, "peers")
    if msg.requester is not None or msg.peers:
        group = _sub(root, "PeerGroup")
        if msg.requester is not None:
            _encode_peer_info(group, msg.requester, None)
        for peer in msg.peers:
            _encode_peer_info(group, peer, peer.swarm_id, listed=True)
    return _serialize(root)
