"""The byte reader of the JSON codec's own request shapes says exactly what the full decoder says.

``scan.scan_request`` reads the documents ``encode_request`` writes for the server's most frequent
requests straight from their bytes and gives up (None) on anything else, which then goes to the
full decoder (``decode_request_objects``).  Each test holds it to: never a different answer, and
the answer itself for the shapes it is for.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs.tracker_json.decode import decode_request_objects
from ppsp.codecs.tracker_json.scan import scan_request
from ppsp.errors import TrackerProtocolError
from ppsp.wire.tracker import (
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
)
from wire.strategies import finds, mutated, requests, stat_reports

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V10 = ProtocolVersion.V1_0
V11 = ProtocolVersion.V1_1


def _full(data: bytes, max_version: ProtocolVersion = V11) -> object:
    """What the full decoder makes of ``data``: the request, or the error's class and text."""
    try:
        return decode_request_objects(data, max_version=max_version)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _served(data: bytes, max_version: ProtocolVersion = V11) -> object:
    """What decode_request (byte reader first) makes of ``data``, in the same form."""
    try:
        return json_codec.decode_request(data, max_version=max_version)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _agrees(data: bytes) -> None:
    scanned = scan_request(data)
    assert scanned is None or scanned == _full(data)
    assert _served(data) == _full(data)
    assert _served(data, V10) == _full(data, V10)


def _scannable(*tokens: str) -> bool:
    """Whether every token is of the byte reader's alphabet (printable ASCII but quote and
    backslash)."""
    return all(c.isascii() and c.isprintable() and c not in ' "\\' for t in tokens for c in t)


@PROPERTY
@given(requests(encoding=Encoding.JSON))
def test_every_request_decodes_as_the_full_decoder_decodes_it(message: object) -> None:
    data = json_codec.encode_request(message)  # type: ignore[arg-type]
    scanned = scan_request(data)
    assert scanned is None or scanned == message
    assert _served(data) == _full(data) == message


@PROPERTY
@given(finds(V11, Encoding.JSON).map(lambda m: replace(m, peer_num=None, content_group=())))
def test_plain_finds_are_read_from_their_bytes(message: FindRequest) -> None:
    scanned = scan_request(json_codec.encode_request(message))
    if _scannable(message.transaction_id, message.peer_id, message.swarm_id):
        assert scanned == message
    else:
        assert scanned is None


@PROPERTY
@given(
    stat_reports(V11, Encoding.JSON).map(
        lambda m: replace(
            m,
            stream_stats=tuple(replace(s, extra=()) for s in m.stream_stats),
            corrupt_peers=(),
        )
    )
)
def test_stat_reports_read_from_their_bytes_are_the_message(message: StatReportRequest) -> None:
    assert scan_request(json_codec.encode_request(message)) in (None, message)


REPORT_MESSAGE = StatReportRequest(
    version=V11,
    transaction_id="7",
    peer_id="peer",
    stream_stats=(
        StreamStatistics(swarm_id="s", uploaded_bytes=1, downloaded_bytes=2, available_bandwidth=3),
    ),
    content_maps=(
        ContentMap(
            swarm_id="s",
            representations=(
                RepresentationMap(
                    representation_id="video",
                    segments=(
                        SegmentMap(
                            start_index=0, end_index=11, chunkmap_size=12, bitmap=b"\xf0\x30"
                        ),
                    ),
                ),
            ),
        ),
    ),
)
SAMPLES = [
    REPORT_MESSAGE,
    FindRequest(version=V11, transaction_id="8", peer_id="peer", swarm_id="s"),
    ConnectRequest(version=V11, transaction_id="9", peer_id="peer"),
    JoinRequest(
        version=V11,
        transaction_id="10",
        peer_id="peer",
        swarms=(SwarmAction(swarm_id="s", peer_mode=PeerMode.LEECH),),
    ),
    DisconnectRequest(
        version=V11, transaction_id="11", peer_id="peer", scope=DisconnectScope.SYSTEM
    ),
    DisconnectRequest(
        version=V11, transaction_id="12", peer_id="peer", scope=DisconnectScope.ALL_SWARMS
    ),
]
DOCUMENTS = [json_codec.encode_request(message) for message in SAMPLES]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_the_sample_documents_are_read_from_their_bytes(message: object) -> None:
    data = json_codec.encode_request(message)  # type: ignore[arg-type]
    assert scan_request(data) == message == _full(data)


# Edits that the byte reader must leave to the full decoder (or read exactly as it does).
EDITS = [
    (b'"version":2', b'"version":1'),
    (b'"version":2', b'"version":3'),
    (b'"version":2', b'"version":2.0'),
    (b'"version":2', b'"version":"2"'),
    (b'{"PPSPTrackerProtocol":', b'{"PPSPTrackerProtocol" :'),
    (b'{"PPSPTrackerProtocol":', b'{"x":1,"PPSPTrackerProtocol":'),
    (b'"peer_id":"peer"', b'"peer_id":"pe er"'),
    (b'"peer_id":"peer"', b'"peer_id":"p\\u0065er"'),
    (b'"peer_id":"peer"', b'"peer_id":"p\\"er"'),
    (b'"peer_id":"peer"', b'"peer_id":"\xc3\xa9"'),
    (b'"peer_id":"peer"', b'"peer_id":7'),
    (b'"peer_id":"peer"', b'"peer_id":""'),
    (b'"peer_id":"peer"', b'"peer_id":"' + b"p" * 257 + b'"'),
    (b'"peer_id":"peer"', b'"peer_id":"' + b"p" * 256 + b'"'),
    (b'"peer_id":"peer"', b'"peer_id":"peer","peer_id":"other"'),
    (b'"peer_id":"peer"', b'"peer_id":"peer","extra":1'),
    (b'"transaction_id":"', b'"transaction_id":"x'),
    (b'"request_type":"FIND"', b'"request_type":"STAT_REPORT"'),
    (b'"request_type":"FIND"', b'"request_type":"JOIN"'),
    (b'"request_type":"CONNECT"', b'"request_type":"FIND"'),
    (b'"request_type":"JOIN"', b'"request_type":"CONNECT"'),
    (b'"request_type":"DISCONNECT"', b'"request_type":"JOIN"'),
    (b'"request_type":"STAT_REPORT"', b'"request_type":"FIND"'),
    (b'"swarm_id":"s"', b'"swarm_id":"ALL"'),
    (b'"swarm_id":"s"', b'"swarm_id":"nil"'),
    (b'"swarm_id":"s"', b'"swarm_id":1'),
    (b'"swarm_id":"nil"', b'"swarm_id":"ALL"'),
    (b'"swarm_id":"nil"', b'"swarm_id":"s"'),
    (b'"swarm_id":"nil"', b'"swarm_id":["nil"]'),
    (b'"find":{', b'"find":{"peer_num":{"peer_count":3},'),
    (b'"connect":{}', b'"connect":{"peer_num":{"peer_count":3}}'),
    (b'"connect":{}', b'"connect":[]'),
    (b'"peer_mode":"LEECH"', b'"peer_mode":"SEEDER"'),
    (b'"peer_mode":"LEECH"', b'"peer_mode":"SEED"'),
    (b'"peer_mode":"LEECH"', b'"peer_mode":"leech"'),
    (b'"peer_mode":"LEECH"', b'"peer_mode":"LEECH","transaction_id":"10.1"'),
    (b"}]}}}", b"},{}]}}}"),
    (b"}}}", b"}}} "),
    (b"}}}", b"}}}\n"),
    (b"}}}", b"}}}x"),
    (b"}}}", b"}}"),
    (b'"uploaded_bytes":1', b""),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":01'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":-1'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":1.0'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":"1"'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":9223372036854775807'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":9223372036854775808'),
    (b'"uploaded_bytes":1', b'"uploaded_bytes":1,"online_time":5'),
    (b'"uploaded_bytes":1', b'"concurrent_links":4'),
    (b'"downloaded_bytes":2,', b""),
    (b'"available_bandwidth":3', b'"available_bandwidth":3,"concurrent_links":4'),
    (b'"type":"STREAM_STATS"', b'"type":"OTHER"'),
    (b'"type":"CONTENT_MAP"', b'"type":"OTHER"'),
    (b'"stat":[', b'"Stat":['),
    (b'"start_index":0', b'"start_index":00'),
    (b'"start_index":0', b'"start_index":12'),
    (
        b'"start_index":0,"end_index":11',
        b'"start_index":9223372036854775800,"end_index":9223372036854775811',
    ),
    (b'"chunkmap_size":12', b'"chunkmap_size":13'),
    (b'"chunkmap_size":12,', b""),
    (b'"8DA="', b'"8D=="'),
    (b'"8DA="', b'"8D8="'),  # a bit past the end set: cleared by the full decoder
    (b'"8DA="', b'"8D A="'),
    (b'"8DA="', b'"8DA"'),
    (b'"8DA="', b'"8DA=="'),
    (b'"8DA="', b'""'),
    (b'"8DA="', b'"8D\\nA="'),
    (b'"id":"video"', b'"id":"vi deo"'),
    (b'"id":"video"', b'"id":7'),
    (
        b'"segment_info":[{',
        b'"segment_info":[{"start_index":12,"end_index":12,"chunkmap":"gA=="},{',
    ),
    (
        b'"8DA="}]',
        b'"8DA="},{"start_index":12,"end_index":19,"chunkmap_size":8,"chunkmap":"/w=="}]',
    ),
    (b'"8DA="}]}', b'"8DA="}]},{"id":"audio","segment_info":[]}'),
    (
        b'"8DA="}]}',
        b'"8DA="}]},{"id":"a","segment_info":[{"start_index":0,"end_index":7,"chunkmap_size":8,"chunkmap":"AA=="}]}',
    ),
    (b'"8DA="}]}]}]', b'"8DA="}]}]}]},{"swarm_id":"t","representation":[]}]'),
    (b'"stat_report":[', b'"stat_report":[{},'),
    (b'"stat_report":[', b'"stat_report":{"type":"STREAM_STATS","stat":[]},"x":['),
]


@pytest.mark.parametrize(("old", "new"), EDITS, ids=lambda e: e.decode("utf-8", "replace")[:60])
def test_edited_documents_decode_as_the_full_decoder_decodes_them(old: bytes, new: bytes) -> None:
    for document in DOCUMENTS:
        _agrees(document.replace(old, new))


def test_every_edit_applies_to_a_sample() -> None:
    for old, _ in EDITS:
        assert any(old in document for document in DOCUMENTS), old


def test_many_statistics_go_to_the_full_decoder() -> None:
    stat = REPORT_MESSAGE.stream_stats[0]
    for count in (39, 40, 41, 300):
        many = replace(
            REPORT_MESSAGE,
            content_maps=(),
            stream_stats=tuple(replace(stat, swarm_id=f"s{i}") for i in range(count)),
        )
        _agrees(json_codec.encode_request(many))


def test_a_body_over_the_bound_is_refused_before_it_is_read() -> None:
    data = DOCUMENTS[1]
    with pytest.raises(TrackerProtocolError):
        json_codec.decode_request(data, max_bytes=len(data) - 1)


PIECES = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\\",
    b" ",
    b"\n",
    b"0",
    b"9",
    b"-",
    b".5",
    b"e3",
    b"null",
    b"true",
    b'"nil"',
    b'"ALL"',
    b'"SEEDER"',
    b"A",
    b"=",
    b"\\u0041",
    b"\xc3\xa9",
    b"\xff",
    b"\x00",
]


@PROPERTY
@given(
    st.sampled_from(DOCUMENTS),
    st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 8), st.sampled_from(PIECES)),
        min_size=1,
        max_size=4,
    ),
)
def test_mangled_documents_decode_as_the_full_decoder_decodes_them(
    document: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = document
    for position, cut, piece in edits:
        position %= len(data) + 1
        data = data[:position] + piece + data[position + cut :]
    _agrees(data)


@PROPERTY
@given(mutated(st.sampled_from(DOCUMENTS)))
def test_mutated_documents_decode_as_the_full_decoder_decodes_them(data: bytes) -> None:
    _agrees(data)
