"""The requests the codec writes, read from their bytes without building an element tree.

The server's most frequent documents are the ones ``encode_request`` writes: a FIND, a
STAT_REPORT with stream statistics and content maps, a CONNECT without addresses or swarms, a
JOIN of one swarm, a DISCONNECT of ``nil`` or ``ALL``.  :func:`scan_request` recognises exactly
those shapes, byte for byte, with a few regular expressions over a narrow alphabet, and gives up
(None) at the first byte it does not expect; the document then goes to the hardened parser and
the one-pass reader of the tree (:mod:`.plain`), and from there to the full decoder (:mod:`.read`),
which alone decides every refusal.

What makes the shortcut safe is how little it accepts:

- the whole document is matched, from the XML declaration (one of the UTF-8 forms
  ``safexml`` knows, or none) to the end tag of the root and trailing XML whitespace;
- element and attribute names, their order, the default namespace and the root's attributes are
  literals of the pattern; between elements only XML whitespace (space, tab, CR, LF);
- text and attribute values are drawn from printable ASCII without ``<``, ``>``, ``&``, quotes,
  ``]``, ``!`` and ``?``: no entity, no character reference, no CDATA, no comment, no processing
  instruction and no byte of another encoding can appear, so the bytes are the text the parser
  would give, and every value is a token (:data:`~ppsp.wire.fields.TOKEN_RE`) or decimal digits;
- every bound of the full decoder on what such a document holds (statistics, representations,
  segments, chunk-map bits, integers, token length) is checked the way :mod:`.plain` checks it,
  and a value the full decoder would refuse (a reserved swarm ID, a JOIN in a 1.0 document, a
  1.0 CONNECT without a swarm) sends the document to it.

So whatever :func:`scan_request` returns is what the full decoder returns for the same bytes
(tests/codec/test_tracker_xml_scan.py checks it on generated, edited and mangled documents).
"""

from __future__ import annotations

import binascii
import re
from typing import Final

from ppsp.codecs.tracker_xml.values import NAMESPACE
from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, RepresentationMap, SegmentMap
from ppsp.wire.fields import (
    MAX_CHUNKMAP_BITS,
    MAX_INTEGER,
    MAX_MESSAGE_BYTES,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_TOKEN_LENGTH,
    RESERVED_SWARM_IDS,
)
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
)

__all__ = ["scan_request"]

_build_find = keyword_builder(FindRequest)
_build_report = keyword_builder(StatReportRequest)
_build_connect = keyword_builder(ConnectRequest)
_build_join = keyword_builder(JoinRequest)
_build_disconnect = keyword_builder(DisconnectRequest)
_build_swarm_action = keyword_builder(SwarmAction)
_build_stream_statistics = keyword_builder(StreamStatistics)
_build_content_map = keyword_builder(ContentMap)
_build_representation = keyword_builder(RepresentationMap)
_build_segment = keyword_builder(SegmentMap)

# A token's bytes: printable ASCII but the bytes markup, references and CDATA ends are made of
# (and quotes, so that the same class serves attribute values).
_TOKEN: Final = rb'([^\x00-\x20\x7f-\xff<>&"\'\]!?]{1,%d})' % MAX_TOKEN_LENGTH
_DIGITS: Final = rb"([0-9]{1,19})"
_WS: Final = rb"[ \t\r\n]*"

_HEAD: Final = re.compile(
    rb'(?:<\?xml version="1\.0"(?: encoding="(?:UTF|utf)-8")?\?>' + _WS + rb")?"
    rb'<PPSPTrackerProtocol xmlns="'
    + NAMESPACE.encode("ascii")
    + rb'" version="(1\.[01])">'
    + _WS
    + rb"<Request>(FIND|STAT_REPORT|CONNECT|JOIN|DISCONNECT)</Request>"
    + _WS
    + rb"<TransactionID>"
    + _TOKEN
    + rb"</TransactionID>"
    + _WS
    + rb"<PeerID>"
    + _TOKEN
    + rb"</PeerID>"
    + _WS
)
"""Declaration, root, method, transaction ID and PeerID, in the order the codec writes them."""

_END: Final = re.compile(rb"</PPSPTrackerProtocol>" + _WS)
_FIND: Final = re.compile(
    rb"<SwarmID>" + _TOKEN + rb"</SwarmID>" + _WS + rb"</PPSPTrackerProtocol>" + _WS
)
_JOIN: Final = re.compile(
    rb'<SwarmID peerMode="(LEECH|SEED)">'
    + _TOKEN
    + rb"</SwarmID>"
    + _WS
    + rb"</PPSPTrackerProtocol>"
    + _WS
)
_DISCONNECT: Final = re.compile(
    rb"(?:<SwarmID>(ALL|nil)</SwarmID>" + _WS + rb")?</PPSPTrackerProtocol>" + _WS
)
_GROUP_START: Final = re.compile(rb"<StatisticsGroup>" + _WS)
_GROUP_END: Final = re.compile(rb"</StatisticsGroup>" + _WS + rb"</PPSPTrackerProtocol>" + _WS)
_STREAM: Final = re.compile(
    rb'<Stat property="StreamStatistics">'
    + _WS
    + rb"<SwarmID>"
    + _TOKEN
    + rb"</SwarmID>"
    + _WS
    + rb"(?:<UploadedBytes>"
    + _DIGITS
    + rb"</UploadedBytes>"
    + _WS
    + rb")?"
    + rb"(?:<DownloadedBytes>"
    + _DIGITS
    + rb"</DownloadedBytes>"
    + _WS
    + rb")?"
    + rb"(?:<AvailBandwidth>"
    + _DIGITS
    + rb"</AvailBandwidth>"
    + _WS
    + rb")?"
    + rb"(?:<ConcurrentLinks>"
    + _DIGITS
    + rb"</ConcurrentLinks>"
    + _WS
    + rb")?"
    + rb"</Stat>"
    + _WS
)
_MAP_START: Final = re.compile(
    rb'<Stat property="ContentMap">' + _WS + rb"<SwarmID>" + _TOKEN + rb"</SwarmID>" + _WS
)
_REPRESENTATION_START: Final = re.compile(rb'<Representation id="' + _TOKEN + rb'">' + _WS)
_SEGMENT: Final = re.compile(
    rb'<SegmentInfo startIndex="'
    + _DIGITS
    + rb'" endIndex="'
    + _DIGITS
    + rb'" chunkmapSize="'
    + _DIGITS
    + rb'">([A-Za-z0-9+/=]+)</SegmentInfo>'
    + _WS
)
_REPRESENTATION_END: Final = re.compile(rb"</Representation>" + _WS)
_MAP_END: Final = re.compile(rb"</Stat>" + _WS)

_VERSIONS: Final = {b"1.0": ProtocolVersion.V1_0, b"1.1": ProtocolVersion.V1_1}
_MODES: Final = {b"LEECH": PeerMode.LEECH, b"SEED": PeerMode.SEED}
_RESERVED: Final = frozenset(swarm.encode("ascii") for swarm in RESERVED_SWARM_IDS)


def scan_request(data: bytes) -> AnyRequest | None:
    """The request of a document in one of the codec's own shapes (see above), else None."""
    if len(data) > MAX_MESSAGE_BYTES:
        return None  # the parser's refusal, with its error
    head = _HEAD.match(data)
    if head is None:
        return None
    raw_version, method, raw_tid, raw_peer = head.groups()
    version = _VERSIONS[raw_version]
    tid = raw_tid.decode("ascii")
    peer_id = raw_peer.decode("ascii")
    at = head.end()
    if method == b"FIND":
        found = _FIND.fullmatch(data, at)
        if found is None or (swarm := found[1]) in _RESERVED:
            return None
        return _build_find(
            version=version, transaction_id=tid, peer_id=peer_id, swarm_id=swarm.decode("ascii")
        )
    if method == b"STAT_REPORT":
        return _scan_report(data, at, version, tid, peer_id)
    if method == b"JOIN":
        found = _JOIN.fullmatch(data, at)
        # JOIN exists in 1.1 only: a 1.0 one is the full decoder's to refuse.
        if found is None or version is not ProtocolVersion.V1_1 or found[2] in _RESERVED:
            return None
        action = _build_swarm_action(swarm_id=found[2].decode("ascii"), peer_mode=_MODES[found[1]])
        return _build_join(version=version, transaction_id=tid, peer_id=peer_id, swarms=(action,))
    if method == b"CONNECT":
        # A 1.0 CONNECT needs a swarm: the full decoder's to refuse.
        if version is not ProtocolVersion.V1_1 or _END.fullmatch(data, at) is None:
            return None
        return _build_connect(version=version, transaction_id=tid, peer_id=peer_id)
    found = _DISCONNECT.fullmatch(data, at)  # DISCONNECT, the only method left
    if found is None:
        return None
    # No SwarmID: the older form of leaving the system, as the full decoder reads it.
    scope = DisconnectScope.ALL_SWARMS if found[1] == b"ALL" else DisconnectScope.SYSTEM
    return _build_disconnect(version=version, transaction_id=tid, peer_id=peer_id, scope=scope)


def _number(digits: bytes | None) -> int | None:
    """The value of 1 to 19 digits (None stays None); -1 over the bound (a refusal)."""
    if digits is None:
        return None
    number = int(digits)
    return number if number <= MAX_INTEGER else -1


def _scan_report(
    data: bytes, at: int, version: ProtocolVersion, tid: str, peer_id: str
) -> StatReportRequest | None:
    """A STAT_REPORT's statistics from ``at`` on (after the PeerID)."""
    if _END.fullmatch(data, at) is not None:
        return _build_report(version=version, transaction_id=tid, peer_id=peer_id)
    start = _GROUP_START.match(data, at)
    if start is None:
        return None
    at = start.end()
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    budget = MAX_SEGMENTS
    stats = 0
    while True:
        if _GROUP_END.fullmatch(data, at) is not None:
            break
        stats += 1
        if stats > MAX_STATS:
            return None
        stream = _STREAM.match(data, at)
        if stream is not None:
            swarm, uploaded, downloaded, bandwidth, links = stream.groups()
            numbers = (
                _number(uploaded),
                _number(downloaded),
                _number(bandwidth),
                _number(links),
            )
            if swarm in _RESERVED or -1 in numbers:
                return None
            stream_stats.append(
                _build_stream_statistics(
                    swarm_id=swarm.decode("ascii"),
                    uploaded_bytes=numbers[0],
                    downloaded_bytes=numbers[1],
                    available_bandwidth=numbers[2],
                    concurrent_links=numbers[3],
                )
            )
            at = stream.end()
            continue
        scanned = _scan_content_map(data, at, budget)
        if scanned is None:
            return None
        content_map, at, budget = scanned
        content_maps.append(content_map)
    if not stream_stats and not content_maps:
        return None  # an empty group: the full decoder's reading
    return _build_report(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        stream_stats=tuple(stream_stats),
        content_maps=tuple(content_maps),
    )


def _scan_content_map(data: bytes, at: int, budget: int) -> tuple[ContentMap, int, int] | None:
    """One ``<Stat property="ContentMap">`` from ``at``: the map, where it ends, the segments
    still allowed."""
    start = _MAP_START.match(data, at)
    if start is None or (swarm := start[1]) in _RESERVED:
        return None
    at = start.end()
    representations: list[RepresentationMap] = []
    while True:
        end = _MAP_END.match(data, at)
        if end is not None:
            at = end.end()
            break
        opened = _REPRESENTATION_START.match(data, at)
        if opened is None:
            return None
        at = opened.end()
        segments: list[SegmentMap] = []
        while True:
            closed = _REPRESENTATION_END.match(data, at)
            if closed is not None:
                at = closed.end()
                break
            segment = _SEGMENT.match(data, at)
            budget -= 1
            if segment is None or budget < 0:
                return None
            at = segment.end()
            first, last, size = int(segment[1]), int(segment[2]), int(segment[3])
            if last < first or size != last - first + 1 or size > MAX_CHUNKMAP_BITS:
                return None
            if last > MAX_INTEGER:  # an index over the bound (the other is not above it)
                return None
            try:
                raw = binascii.a2b_base64(segment[4], strict_mode=True)
            except binascii.Error:
                return None
            # The bits past ``size`` must already be clear (see plain._plain_content_map).
            if len(raw) != (size + 7) // 8 or (size % 8 and raw[-1] & (0xFF >> size % 8)):
                return None
            segments.append(
                _build_segment(start_index=first, end_index=last, chunkmap_size=size, bitmap=raw)
            )
        if not segments:
            return None
        representations.append(
            _build_representation(
                representation_id=opened[1].decode("ascii"), segments=tuple(segments)
            )
        )
    if not representations or len(representations) > MAX_REPRESENTATIONS:
        return None
    content_map = _build_content_map(
        swarm_id=swarm.decode("ascii"), representations=tuple(representations)
    )
    return content_map, at, budget
