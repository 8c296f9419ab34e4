"""The requests the codec writes, read from their bytes without building JSON objects.

The server's most frequent documents are the ones ``encode_request`` writes (compact, members
in its order): a FIND, a STAT_REPORT with stream statistics and content maps, a CONNECT without
addresses or swarms, a JOIN of one swarm, a DISCONNECT of ``nil`` or ``ALL``, each of version 2
(PPSP-TP/1.1).  :func:`scan_request` recognises exactly those shapes with a few regular
expressions and gives up (None) at the first byte it does not expect; the document then goes to
the full decoder (:mod:`.decode`), which alone decides every refusal.

What makes the shortcut safe is how little it accepts:

- the whole document is matched, from its first byte to its last but trailing JSON whitespace;
  member names and their order are literals of the pattern, and no whitespace is allowed
  inside, so no member can be repeated, added or left out unseen;
- strings hold printable ASCII but quotes and backslashes: no escape, no control character and
  no byte of another character can appear, so the bytes are the string, and each is a token
  (:func:`~ppsp.wire.fields.is_token`); numbers are JSON integers without sign, fraction or
  exponent (no leading zero, as JSON itself requires);
- every bound of the full decoder on what such a document holds (statistics, representations,
  segments, chunk-map bits, integers) is checked as it checks it, chunk maps by the same
  function (:func:`~ppsp.wire.fields.chunkmap_bytes`), and a value it would refuse (a reserved
  swarm ID, an integer over the bound) sends the document to it.

So whatever :func:`scan_request` returns is what the full decoder returns for the same bytes
(tests/codec/test_tracker_json_scan.py checks it on generated, edited and mangled documents).
"""

from __future__ import annotations

import re
from typing import Final

from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, RepresentationMap, SegmentMap
from ppsp.wire.fields import (
    MAX_INTEGER,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_TOKEN_LENGTH,
    RESERVED_SWARM_IDS,
    chunkmap_bytes,
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

_V11 = ProtocolVersion.V1_1
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

# A string holding a token: printable ASCII but the quote and the backslash.
_TOKEN: Final = rb'"([^\x00-\x20\x7f-\xff"\\]{1,%d})"' % MAX_TOKEN_LENGTH
# A JSON integer of at most 19 digits (no sign, fraction or exponent).
_INT: Final = rb"(0|[1-9][0-9]{0,18})"
_TAIL: Final = rb"}}[ \t\r\n]*"

_HEAD: Final = re.compile(
    rb'{"PPSPTrackerProtocol":{"version":2,"request_type":"'
    rb'(FIND|STAT_REPORT|CONNECT|JOIN|DISCONNECT)",'
    rb'"transaction_id":' + _TOKEN + rb',"peer_id":' + _TOKEN
)
"""The root, version 2, method, transaction ID and PeerID, in the order the codec writes them."""

_FIND: Final = re.compile(rb',"find":{"swarm_id":' + _TOKEN + rb"}" + _TAIL)
_CONNECT: Final = re.compile(rb',"connect":{}' + _TAIL)
_JOIN: Final = re.compile(
    rb',"join":{"swarm_action":\[{"swarm_id":'
    + _TOKEN
    + rb',"peer_mode":"(LEECH|SEEDER|SEED)"}\]}'
    + _TAIL
)
_DISCONNECT: Final = re.compile(rb',"disconnect":{"swarm_id":"(ALL|nil)"}' + _TAIL)
_REPORT_END: Final = re.compile(_TAIL)
_REPORT_START: Final = re.compile(rb',"stat_report":\[')
_STREAM: Final = re.compile(
    rb'{"type":"STREAM_STATS","stat":\[{"swarm_id":'
    + _TOKEN
    + rb'(?:,"uploaded_bytes":'
    + _INT
    + rb")?"
    + rb'(?:,"downloaded_bytes":'
    + _INT
    + rb")?"
    + rb'(?:,"available_bandwidth":'
    + _INT
    + rb")?"
    + rb'(?:,"concurrent_links":'
    + _INT
    + rb")?"
    + rb"}\]}"
)
_MAP_START: Final = re.compile(
    rb'{"type":"CONTENT_MAP","stat":\[{"swarm_id":' + _TOKEN + rb',"representation":\['
)
_REPRESENTATION_START: Final = re.compile(rb'{"id":' + _TOKEN + rb',"segment_info":\[')
_SEGMENT: Final = re.compile(
    rb'{"start_index":'
    + _INT
    + rb',"end_index":'
    + _INT
    + rb',"chunkmap_size":'
    + _INT
    + rb',"chunkmap":"([A-Za-z0-9+/=]*)"}'
)
_MAP_END: Final = b"]}]}"
_GROUP_END: Final = re.compile(rb"\]" + _TAIL)

_MODES: Final = {b"LEECH": PeerMode.LEECH, b"SEEDER": PeerMode.SEED, b"SEED": PeerMode.SEED}
_RESERVED: Final = frozenset(swarm.encode("ascii") for swarm in RESERVED_SWARM_IDS)


def scan_request(data: bytes) -> AnyRequest | None:
    """The request of a document in one of the codec's own shapes (see above), else None.

    The caller has checked the body's size and that version 2 is served.
    """
    head = _HEAD.match(data)
    if head is None:
        return None
    method, raw_tid, raw_peer = head.groups()
    tid = raw_tid.decode("ascii")
    peer_id = raw_peer.decode("ascii")
    at = head.end()
    if method == b"FIND":
        found = _FIND.fullmatch(data, at)
        if found is None or found[1] in _RESERVED:
            return None
        swarm_id = found[1].decode("ascii")
        return _build_find(version=_V11, transaction_id=tid, peer_id=peer_id, swarm_id=swarm_id)
    if method == b"STAT_REPORT":
        return _scan_report(data, at, tid, peer_id)
    if method == b"JOIN":
        found = _JOIN.fullmatch(data, at)
        if found is None or found[1] in _RESERVED:
            return None
        action = _build_swarm_action(swarm_id=found[1].decode("ascii"), peer_mode=_MODES[found[2]])
        return _build_join(version=_V11, transaction_id=tid, peer_id=peer_id, swarms=(action,))
    if method == b"CONNECT":
        if _CONNECT.fullmatch(data, at) is None:
            return None
        return _build_connect(version=_V11, transaction_id=tid, peer_id=peer_id)
    found = _DISCONNECT.fullmatch(data, at)  # DISCONNECT, the only method left
    if found is None:
        return None
    scope = DisconnectScope.ALL_SWARMS if found[1] == b"ALL" else DisconnectScope.SYSTEM
    return _build_disconnect(version=_V11, transaction_id=tid, peer_id=peer_id, scope=scope)


def _number(digits: bytes | None) -> int | None:
    """The value of a matched integer (None stays None); -1 over the bound (a refusal)."""
    if digits is None:
        return None
    number = int(digits)
    return number if number <= MAX_INTEGER else -1


def _scan_report(data: bytes, at: int, tid: str, peer_id: str) -> StatReportRequest | None:
    """A STAT_REPORT's statistics from ``at`` on (after the PeerID)."""
    if _REPORT_END.fullmatch(data, at) is not None:
        return _build_report(version=_V11, transaction_id=tid, peer_id=peer_id)
    start = _REPORT_START.match(data, at)
    if start is None:
        return None
    at = start.end()
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    budget = MAX_SEGMENTS
    while True:
        if len(stream_stats) + len(content_maps) >= MAX_STATS:
            return None  # one more would be over the bound: the full decoder's to refuse
        stream = _STREAM.match(data, at)
        if stream is not None:
            swarm, uploaded, downloaded, bandwidth, links = stream.groups()
            numbers = (_number(uploaded), _number(downloaded), _number(bandwidth), _number(links))
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
        else:
            scanned = _scan_content_map(data, at, budget)
            if scanned is None:
                return None
            content_map, at, budget = scanned
            content_maps.append(content_map)
        if _GROUP_END.fullmatch(data, at) is not None:
            break
        if data[at : at + 1] != b",":
            return None
        at += 1
    return _build_report(
        version=_V11,
        transaction_id=tid,
        peer_id=peer_id,
        stream_stats=tuple(stream_stats),
        content_maps=tuple(content_maps),
    )


def _scan_content_map(data: bytes, at: int, budget: int) -> tuple[ContentMap, int, int] | None:
    """One ``CONTENT_MAP`` group of one stat from ``at``: the map, where it ends, the segments
    still allowed."""
    start = _MAP_START.match(data, at)
    if start is None or (swarm := start[1]) in _RESERVED:
        return None
    at = start.end()
    representations: list[RepresentationMap] = []
    while True:
        if len(representations) >= MAX_REPRESENTATIONS:
            return None
        opened = _REPRESENTATION_START.match(data, at)
        if opened is None:
            return None
        at = opened.end()
        segments: list[SegmentMap] = []
        while True:
            segment = _SEGMENT.match(data, at)
            budget -= 1
            if segment is None or budget < 0:
                return None
            at = segment.end()
            first, last, size = _number(segment[1]), _number(segment[2]), _number(segment[3])
            assert first is not None and last is not None and size is not None  # matched
            if first < 0 or last < first or size != last - first + 1:
                return None
            try:
                bitmap = chunkmap_bytes(segment[4].decode("ascii"), size)
            except ValueError:
                return None
            segments.append(
                _build_segment(start_index=first, end_index=last, chunkmap_size=size, bitmap=bitmap)
            )
            if data.startswith(b"]}", at):
                at += 2
                break
            if data[at : at + 1] != b",":
                return None
            at += 1
        representations.append(
            _build_representation(
                representation_id=opened[1].decode("ascii"), segments=tuple(segments)
            )
        )
        if data.startswith(_MAP_END, at):
            at += len(_MAP_END)
            break
        if data[at : at + 1] != b",":
            return None
        at += 1
    content_map = _build_content_map(
        swarm_id=swarm.decode("ascii"), representations=tuple(representations)
    )
    return content_map, at, budget
