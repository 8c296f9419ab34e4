"""The byte reader of the codec's own request shapes says exactly what the full decoder says.

``scan.scan_request`` reads the documents ``encode_request`` writes for the server's most frequent
requests straight from their bytes and gives up (None) on anything else, which then goes to the
hardened parser and the full decoder.  Each test holds it to: never a different answer, and the
answer itself for the shapes it is for.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_xml.read import decode_request_root
from ppsp.codecs.tracker_xml.scan import scan_request
from ppsp.codecs.tracker_xml.tree import parse, with_transaction_id
from ppsp.errors import TrackerProtocolError
from ppsp.wire.tracker import (
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
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
from wire.strategies import finds, requests, stat_reports

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V11 = ProtocolVersion.V1_1


def _full(data: bytes) -> object:
    """What the full decoder makes of ``data``: the request, or the error's class and text."""
    try:
        return with_transaction_id(parse(data), decode_request_root)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _served(data: bytes) -> object:
    """What decode_request (byte reader first) makes of ``data``, in the same form."""
    try:
        return xml_codec.decode_request(data)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _agrees(data: bytes) -> None:
    scanned = scan_request(data)
    assert scanned is None or scanned == _full(data)
    assert _served(data) == _full(data)


@PROPERTY
@given(requests())
def test_every_request_decodes_as_the_full_decoder_decodes_it(message: object) -> None:
    data = xml_codec.encode_request(message)  # type: ignore[arg-type]
    scanned = scan_request(data)
    assert scanned is None or scanned == message
    assert _served(data) == _full(data) == message


def _scannable(*tokens: str) -> bool:
    """Whether every token is of the byte reader's alphabet (printable ASCII but markup)."""
    return all(c.isascii() and c.isprintable() and c not in " <>&\"'!?]" for t in tokens for c in t)


@PROPERTY
@given(finds().map(lambda m: replace(m, peer_num=None, content_group=())))
def test_plain_finds_are_read_from_their_bytes(message: FindRequest) -> None:
    scanned = scan_request(xml_codec.encode_request(message))
    if _scannable(message.transaction_id, message.peer_id, message.swarm_id):
        assert scanned == message
    else:
        assert scanned is None


@PROPERTY
@given(
    stat_reports().map(
        lambda m: replace(
            m,
            stream_stats=tuple(replace(s, extra=()) for s in m.stream_stats),
            corrupt_peers=(),
        )
    )
)
def test_stat_reports_read_from_their_bytes_are_the_message(message: StatReportRequest) -> None:
    assert scan_request(xml_codec.encode_request(message)) in (None, message)


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
DOCUMENTS = [xml_codec.encode_request(message) for message in SAMPLES]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_the_sample_documents_are_read_from_their_bytes(message: object) -> None:
    data = xml_codec.encode_request(message)  # type: ignore[arg-type]
    assert scan_request(data) == message == _full(data)


# Edits that the byte reader must leave to the full decoder (or read exactly as it does):
# refusals, unusual but valid forms, and extensions.
EDITS = [
    (b'version="1.1"', b'version=" 1.1"'),
    (b'version="1.1"', b'version="1.0"'),
    (b'version="1.1"', b'version="2.0"'),
    (b'version="1.1"', b'version="1.1" other="x"'),
    (b'<?xml version="1.0" encoding="UTF-8"?>', b""),
    (b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0" encoding="latin-1"?>'),
    (b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0"?><!DOCTYPE x>'),
    (b'encoding="UTF-8"?>', b'encoding="UTF-8"?><!-- c -->'),
    (b'encoding="UTF-8"?>', b'encoding="UTF-8"?><?pi x?>'),
    (b"\n</PPSPTrackerProtocol>", b"\n</PPSPTrackerProtocol><!-- c -->"),
    (b"\n</PPSPTrackerProtocol>", b"\n</PPSPTrackerProtocol>x"),
    (b"\n</PPSPTrackerProtocol>", b"\n</PPSPTrackerProtocol><x/>"),
    (b"\n</PPSPTrackerProtocol>", b"\n"),
    (b"urn:ietf:params:xml:ns:ppsp-tracker", b"urn:other"),
    (b"<PeerID>peer</PeerID>", b"<PeerID> peer </PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>pe er</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><PeerID>peer</PeerID>"),
    (b"<PeerID>peer</PeerID>", b""),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer<X/></PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID>tail"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><Extension/>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><PeerNum>3</PeerNum>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><Response>SUCCESSFUL</Response>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>p&#101;er</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>p&amp;er</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID><![CDATA[peer]]></PeerID>"),
    (b"<PeerID>peer</PeerID>", b'<PeerID xmlns="urn:other">peer</PeerID>'),
    (b"<PeerID>peer</PeerID>", b"<PeerID>\xc3\xa9</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>" + b"p" * 257 + b"</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>" + b"p" * 256 + b"</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>pe]]>er</PeerID>"),
    (b"<TransactionID>", b"<TransactionID >"),
    (b"<Request>STAT_REPORT</Request>", b"<Request>FIND</Request>"),
    (b"<Request>FIND</Request>", b"<Request>STAT_REPORT</Request>"),
    (b"<Request>FIND</Request>", b"<Request>JOIN</Request>"),
    (b"<Request>FIND</Request>", b"<Request>CONNECT</Request>"),
    (b"<Request>FIND</Request>", b"<Request>DISCONNECT</Request>"),
    (b"<Request>FIND</Request>", b"<Request> FIND </Request>"),
    (b"<Request>CONNECT</Request>", b"<Request>JOIN</Request>"),
    (b"<Request>CONNECT</Request>", b"<Request>DISCONNECT</Request>"),
    (b"<Request>JOIN</Request>", b"<Request>CONNECT</Request>"),
    (b"<Request>JOIN</Request>", b"<Request>FIND</Request>"),
    (b"<Request>DISCONNECT</Request>", b"<Request>FIND</Request>"),
    (b"<Request>DISCONNECT</Request>", b"<Request>JOIN</Request>"),
    (b"<SwarmID>s</SwarmID>\n</PPSP", b"<SwarmID>s</SwarmID><SwarmID>t</SwarmID></PPSP"),
    (b"<SwarmID>s</SwarmID>\n</PPSP", b"<SwarmID>s</SwarmID><PeerNum>3</PeerNum></PPSP"),
    (b'<SwarmID peerMode="LEECH">', b'<SwarmID peerMode="SEED">'),
    (b'<SwarmID peerMode="LEECH">', b'<SwarmID peerMode="OTHER">'),
    (b'<SwarmID peerMode="LEECH">', b"<SwarmID>"),
    (b'<SwarmID peerMode="LEECH">', b'<SwarmID peerMode="LEECH" transactionID="10.1">'),
    (b"<SwarmID>nil</SwarmID>", b"<SwarmID>ALL</SwarmID>"),
    (b"<SwarmID>nil</SwarmID>", b""),
    (b"<SwarmID>nil</SwarmID>", b"<SwarmID>s</SwarmID>"),
    (b"<SwarmID>nil</SwarmID>", b"<SwarmID>nil</SwarmID><SwarmID>s</SwarmID>"),
    (b"<SwarmID>ALL</SwarmID>", b"<SwarmID>nil</SwarmID>"),
    (b'property="StreamStatistics"', b'property="Other"'),
    (b'property="StreamStatistics"', b'property=" StreamStatistics"'),
    (b'property="ContentMap"', b""),
    (b"<UploadedBytes>1</UploadedBytes>", b""),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes> 1 </UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>01</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>\xc2\xb2</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>-1</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>9223372036854775807</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>9223372036854775808</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>1</UploadedBytes><Extra>x</Extra>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>1</UploadedBytes>" * 2),
    (b"<UploadedBytes>1</UploadedBytes>", b"<ConcurrentLinks>4</ConcurrentLinks>"),
    (b"<DownloadedBytes>2</DownloadedBytes>", b""),
    (b"<AvailBandwidth>3</AvailBandwidth>", b"<AvailBandwidth>3</AvailBandwidth>" * 2),
    (b"<Stat property", b"<Stat  property"),
    (b'startIndex="0"', b'startIndex=" 0"'),
    (b'startIndex="0"', b'startIndex="00"'),
    (
        b'startIndex="0" endIndex="11" chunkmapSize="12"',
        b'startIndex="12" endIndex="11" chunkmapSize="0"',
    ),
    (
        b'startIndex="0" endIndex="11" chunkmapSize="12"',
        b'startIndex="9223372036854775800" endIndex="9223372036854775811" chunkmapSize="12"',
    ),
    (b'chunkmapSize="12"', b'chunkmapSize="13"'),
    (b'chunkmapSize="12"', b""),
    (b"8DA=", b"8D=="),
    (b"8DA=", b"8D8="),  # a bit past the end set: cleared by the full decoder
    (b"8DA=", b"8D A="),
    (b"8DA=", b" 8DA= "),
    (b"8DA=", b"8DA"),
    (b"8DA=", b"8DA=="),
    (b"8DA=", b"8DAA"),
    (b"8DA=", b"8D\xc3\xa9="),
    (b"8DA=", b"8DA=<X/>"),
    (b"8DA=", b""),
    (b'id="video"', b'id="vi deo"'),
    (b'id="video"', b'id="vi&amp;deo"'),
    (b'id="video"', b""),
    (b"<SegmentInfo", b"<Other/><SegmentInfo"),
    (b"</SegmentInfo>", b'</SegmentInfo></Representation><Representation id="audio">'),
    (b"</SegmentInfo>", b'</SegmentInfo></Representation><Representation id="a"></Representation>'),
    (
        b"</Representation>",
        b'</Representation></Stat><Stat property="ContentMap"><SwarmID>t</SwarmID>',
    ),
    (b"<Representation", b"<SwarmID>t</SwarmID><Representation"),
    (b"<StatisticsGroup>", b"<StatisticsGroup>text"),
    (b"<StatisticsGroup>", b"<StatisticsGroup><Other/>"),
    (b"<StatisticsGroup>", b"<StatisticsGroup></StatisticsGroup><StatisticsGroup>"),
    (b"<SwarmID>s</SwarmID>", b"<SwarmID>ALL</SwarmID>"),
    (b"<SwarmID>s</SwarmID>", b"<SwarmID>nil</SwarmID>"),
    (b"<SwarmID>s</SwarmID>", b"<SwarmID></SwarmID>"),
    (b">s</SwarmID>", b">nil</SwarmID>"),
    (
        b'startIndex="0" endIndex="11" chunkmapSize="12">8DA=',
        b'startIndex="0" endIndex="1048576" chunkmapSize="1048577">'
        + b"A" * (4 * (2**20 // 24 + 1)),
    ),
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
    data = xml_codec.encode_request(replace(REPORT_MESSAGE, stream_stats=(stat,) * 40))
    _agrees(data)
    many = replace(
        REPORT_MESSAGE,
        content_maps=(),
        stream_stats=tuple(replace(stat, swarm_id=f"s{i}") for i in range(300)),
    )
    _agrees(xml_codec.encode_request(many))


PIECES = [
    b"<",
    b">",
    b"</",
    b"/>",
    b" ",
    b"\n",
    b"\t",
    b'"',
    b"'",
    b"=",
    b"&#49;",
    b"&amp;",
    b"Stat",
    b"SwarmID",
    b"SegmentInfo",
    b"Representation",
    b'property="ContentMap"',
    b'peerMode="SEED"',
    b"nil",
    b"ALL",
    b"0",
    b"9",
    b"A",
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
