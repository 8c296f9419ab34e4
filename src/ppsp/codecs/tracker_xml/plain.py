"""The plain form of the two most frequent requests, read in one pass (the server's hot path).

A FIND or STAT_REPORT as the codec writes it (``encode_request``): every element in the
namespace, each expected element at most once, no text where elements belong, no extension,
every value exactly a token or a decimal integer.  :func:`plain_request` reads such a document
with a few attribute reads per element and no grouping; at the first thing it does not expect it
gives up (None) and the full decoder (:mod:`.read`) reads the document from the start, so that
it alone decides every refusal and every unusual form.  Whatever :func:`plain_request` returns
is what the full decoder returns (tests/codec/test_tracker_xml_plain_path.py checks it on
generated and on mangled documents).
"""

from __future__ import annotations

import binascii

from ppsp.codecs.tracker_xml.tree import Element
from ppsp.codecs.tracker_xml.values import NAMESPACE, STAT_CONTENT_MAP, STAT_STREAM
from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, RepresentationMap, SegmentMap
from ppsp.wire.fields import (
    MAX_CHUNKMAP_BITS,
    MAX_INTEGER,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    RESERVED_SWARM_IDS,
    TOKEN_RE,
)
from ppsp.wire.tracker import FindRequest, ProtocolVersion, StatReportRequest, StreamStatistics

_build_find = keyword_builder(FindRequest)
_build_report = keyword_builder(StatReportRequest)
_build_stream_statistics = keyword_builder(StreamStatistics)
_build_content_map = keyword_builder(ContentMap)
_build_representation = keyword_builder(RepresentationMap)
_build_segment = keyword_builder(SegmentMap)

_Q = "{" + NAMESPACE + "}"
_PLAIN_TOP = {
    _Q + name: index
    for index, name in enumerate(
        ["Request", "TransactionID", "PeerID", "SwarmID", "StatisticsGroup"]
    )
}
_PLAIN_VERSIONS = {version.value: version for version in ProtocolVersion}
_PLAIN_STREAM_FIELDS = {
    _Q + name: index
    for index, name in enumerate(
        ["SwarmID", "UploadedBytes", "DownloadedBytes", "AvailBandwidth", "ConcurrentLinks"]
    )
}
_Q_STAT = _Q + "Stat"
_Q_SWARM_ID = _Q + "SwarmID"
_Q_REPRESENTATION = _Q + "Representation"
_Q_SEGMENT_INFO = _Q + "SegmentInfo"


def _plain_leaf(element: Element) -> str | None:
    """The stripped text of an element without children or tail, else None."""
    if len(element) or element.tail is not None:
        return None
    text = element.text
    return "" if text is None else text.strip()


def _plain_token(element: Element | None) -> str | None:
    if element is None:
        return None
    text = _plain_leaf(element)
    return text if text is not None and TOKEN_RE.fullmatch(text) else None


def _plain_integer(value: str | None) -> int | None:
    # fields.DECIMAL_RE.fullmatch, without a regular expression: 1 to 19 ASCII digits.
    if value is None or not (0 < len(value) <= 19 and value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number <= MAX_INTEGER else None


def plain_request(root: Element) -> FindRequest | StatReportRequest | None:
    """A plain FIND or STAT_REPORT (see above), or None for the full decoder to read."""
    version = _PLAIN_VERSIONS.get(root.get("version", ""))
    if version is None or root.text is not None:
        return None
    found: list[Element | None] = [None, None, None, None, None]
    for child in root:
        index = _PLAIN_TOP.get(child.tag)
        if index is None or found[index] is not None or child.tail is not None:
            return None
        found[index] = child
    request, tid_element, peer_element, swarm_element, group = found
    if request is None:
        return None
    method = _plain_leaf(request)
    tid = _plain_token(tid_element)
    peer_id = _plain_token(peer_element)
    if tid is None or peer_id is None:
        return None
    if method == "FIND":
        swarm_id = _plain_token(swarm_element)
        if swarm_id is None or group is not None or swarm_id in RESERVED_SWARM_IDS:
            return None
        return _build_find(version=version, transaction_id=tid, peer_id=peer_id, swarm_id=swarm_id)
    if method != "STAT_REPORT" or swarm_element is not None:
        return None
    if group is None:
        return _build_report(version=version, transaction_id=tid, peer_id=peer_id)
    if group.text is not None or len(group) > MAX_STATS:
        return None
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    budget = MAX_SEGMENTS
    for stat in group:
        if stat.tag != _Q_STAT or stat.tail is not None or stat.text is not None:
            return None
        kind = stat.get("property")
        if kind == STAT_STREAM:
            stream = _plain_stream_statistics(stat)
            if stream is None:
                return None
            stream_stats.append(stream)
        elif kind == STAT_CONTENT_MAP:
            content_map, budget = _plain_content_map(stat, budget)
            if content_map is None:
                return None
            content_maps.append(content_map)
        else:
            return None
    return _build_report(
        version=version,
        transaction_id=tid,
        peer_id=peer_id,
        stream_stats=tuple(stream_stats),
        content_maps=tuple(content_maps),
    )


def _plain_stream_statistics(stat: Element) -> StreamStatistics | None:
    swarm_id: str | None = None
    numbers: list[int | None] = [None, None, None, None]
    for child in stat:
        index = _PLAIN_STREAM_FIELDS.get(child.tag)
        if index is None or len(child) or child.tail is not None:
            return None
        text = child.text
        text = "" if text is None else text.strip()
        if index == 0:
            if swarm_id is not None or not TOKEN_RE.fullmatch(text) or text in RESERVED_SWARM_IDS:
                return None
            swarm_id = text
        else:
            number = _plain_integer(text)
            if number is None or numbers[index - 1] is not None:
                return None
            numbers[index - 1] = number
    uploaded, downloaded, bandwidth, links = numbers
    return _build_stream_statistics(
        swarm_id=swarm_id,
        uploaded_bytes=uploaded,
        downloaded_bytes=downloaded,
        available_bandwidth=bandwidth,
        concurrent_links=links,
    )


def _plain_content_map(stat: Element, budget: int) -> tuple[ContentMap | None, int]:
    swarm_id: str | None = None
    representations: list[RepresentationMap] = []
    for child in stat:
        tag = child.tag
        if tag == _Q_SWARM_ID:
            if swarm_id is not None:
                return None, budget
            swarm_id = _plain_token(child)
            if swarm_id is None or swarm_id in RESERVED_SWARM_IDS:
                return None, budget
            continue
        if tag != _Q_REPRESENTATION or child.tail is not None or child.text is not None:
            return None, budget
        representation_id = child.get("id")
        if representation_id is None or not TOKEN_RE.fullmatch(representation_id):
            return None, budget
        segments: list[SegmentMap] = []
        for segment in child:
            budget -= 1
            if segment.tag != _Q_SEGMENT_INFO or budget < 0:
                return None, budget
            text = _plain_leaf(segment)
            start = _plain_integer(segment.get("startIndex"))
            end = _plain_integer(segment.get("endIndex"))
            size = _plain_integer(segment.get("chunkmapSize"))
            if text is None or start is None or end is None or end < start:
                return None, budget
            if size != end - start + 1 or size > MAX_CHUNKMAP_BITS:
                return None, budget
            try:
                # What chunkmap_bytes's b64decode(..., validate=True) calls, less the whitespace
                # removal.
                raw = binascii.a2b_base64(text, strict_mode=True)
            except ValueError:  # binascii.Error, or text that is not ASCII
                return None, budget
            # The bits past ``size`` must already be clear: no rewriting here (see read_bitmap).
            if len(raw) != (size + 7) // 8 or (size % 8 and raw[-1] & (0xFF >> size % 8)):
                return None, budget
            segments.append(
                _build_segment(start_index=start, end_index=end, chunkmap_size=size, bitmap=raw)
            )
        if not segments:
            return None, budget
        representations.append(
            _build_representation(representation_id=representation_id, segments=tuple(segments))
        )
    if swarm_id is None or not representations or len(representations) > MAX_REPRESENTATIONS:
        return None, budget
    return _build_content_map(swarm_id=swarm_id, representations=tuple(representations)), budget
