"""The plain XML path (FIND and STAT_REPORT in one pass) says exactly what the full decoder says.

``plain.plain_request`` reads the plain form of the two most frequent requests and gives up (None)
on anything else, so that the full decoder (``read.decode_request_root``) reads it and alone
decides every refusal.  Each test holds the plain path to: never a different answer, and the
answer itself for the plain documents the package writes.
"""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_xml.plain import plain_request
from ppsp.codecs.tracker_xml.read import decode_request_root
from ppsp.codecs.tracker_xml.tree import parse, with_transaction_id
from ppsp.errors import TrackerProtocolError
from ppsp.wire.tracker import (
    ContentMap,
    FindRequest,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
)
from wire.strategies import finds, requests, stat_reports

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _full(data: bytes) -> object:
    """What the full decoder makes of ``data``: the request, or the error's class and text."""
    try:
        root = parse(data)
        return with_transaction_id(root, decode_request_root)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _served(data: bytes) -> object:
    """What decode_request (plain path first) makes of ``data``, in the same form."""
    try:
        return xml_codec.decode_request(data)
    except TrackerProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.transaction_id)


def _plain(data: bytes) -> object:
    try:
        root = parse(data)
    except TrackerProtocolError:
        return None
    return plain_request(root)


@PROPERTY
@given(requests())
def test_every_request_decodes_as_the_full_decoder_decodes_it(message: object) -> None:
    data = xml_codec.encode_request(message)  # type: ignore[arg-type]
    plain = _plain(data)
    assert plain is None or plain == _full(data)
    assert _served(data) == _full(data) == message


@PROPERTY
@given(finds().map(lambda m: replace(m, peer_num=None, content_group=())))
def test_plain_finds_take_the_plain_path(message: FindRequest) -> None:
    assert _plain(xml_codec.encode_request(message)) == message


@PROPERTY
@given(
    stat_reports().map(
        lambda m: replace(
            m,
            stream_stats=tuple(replace(s, extra=()) for s in m.stream_stats),
            corrupt_peers=(),  # the extension is read by the full decoder (it is rare)
        )
    )
)
def test_plain_stat_reports_take_the_plain_path(message: StatReportRequest) -> None:
    assert _plain(xml_codec.encode_request(message)) == message


REPORT = xml_codec.encode_request(
    StatReportRequest(
        version=ProtocolVersion.V1_1,
        transaction_id="7",
        peer_id="peer",
        stream_stats=(StreamStatistics(swarm_id="s", uploaded_bytes=1, downloaded_bytes=2),),
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
)
FIND = xml_codec.encode_request(
    FindRequest(version=ProtocolVersion.V1_1, transaction_id="8", peer_id="peer", swarm_id="s")
)


def test_the_sample_documents_take_the_plain_path() -> None:
    assert _plain(REPORT) == _full(REPORT)
    assert _plain(FIND) == _full(FIND)


# Edits of the sample documents that the plain path must leave to the full decoder (or read
# exactly as it does): refusals, unusual but valid forms, and extensions.
EDITS = [
    (b'version="1.1"', b'version=" 1.1"'),
    (b'version="1.1"', b'version="2.0"'),
    (b"<PeerID>peer</PeerID>", b"<PeerID> peer </PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>pe er</PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><PeerID>peer</PeerID>"),
    (b"<PeerID>peer</PeerID>", b""),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer<X/></PeerID>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID>tail"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><Extension/>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>peer</PeerID><Response>SUCCESSFUL</Response>"),
    (b"<PeerID>peer</PeerID>", b"<PeerID>p&#101;er</PeerID>"),
    (b"<PeerID>peer</PeerID>", b'<PeerID xmlns="urn:other">peer</PeerID>'),
    (b"<PeerID>peer</PeerID>", b"<PeerID>\xc3\xa9</PeerID>"),
    (b"<Request>STAT_REPORT</Request>", b"<Request>FIND</Request>"),
    (b"<Request>FIND</Request>", b"<Request>STAT_REPORT</Request>"),
    (b"<Request>FIND</Request>", b"<Request>JOIN</Request>"),
    (b"<Request>FIND</Request>", b"<Request> FIND </Request>"),
    (b"<SwarmID>s</SwarmID>\n</PPSP", b"<SwarmID>s</SwarmID><SwarmID>t</SwarmID></PPSP"),
    (b"<SwarmID>s</SwarmID>\n</PPSP", b"<SwarmID>s</SwarmID><PeerNum>3</PeerNum></PPSP"),
    (b'property="StreamStatistics"', b'property="Other"'),
    (b'property="StreamStatistics"', b'property=" StreamStatistics"'),
    (b'property="ContentMap"', b""),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes> 1 </UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>01</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>\xc2\xb2</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>-1</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>9223372036854775808</UploadedBytes>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>1</UploadedBytes><Extra>x</Extra>"),
    (b"<UploadedBytes>1</UploadedBytes>", b"<UploadedBytes>1</UploadedBytes>" * 2),
    (b'startIndex="0"', b'startIndex=" 0"'),
    (
        b'startIndex="0" endIndex="11" chunkmapSize="12"',
        b'startIndex="12" endIndex="11" chunkmapSize="0"',
    ),
    (b'chunkmapSize="12"', b'chunkmapSize="13"'),
    (b'chunkmapSize="12"', b""),
    (b"8DA=", b"8D=="),
    (b"8DA=", b"8D8="),  # a bit past the end set: cleared by the full decoder
    (b"8DA=", b"8D A="),
    (b"8DA=", b" 8DA= "),
    (b"8DA=", b"8DA"),
    (b"8DA=", b"8D\xc3\xa9="),
    (b"8DA=", b"8DA=<X/>"),
    (b'id="video"', b'id="vi deo"'),
    (b'id="video"', b""),
    (b"<SegmentInfo", b"<Other/><SegmentInfo"),
    (b"<Representation", b"<SwarmID>t</SwarmID><Representation"),
    (b"<StatisticsGroup>", b"<StatisticsGroup>text"),
    (b"<StatisticsGroup>", b"<StatisticsGroup><Other/>"),
    # ALL and nil are never a swarm's ID: refused wherever a plain document names a swarm.
    (b"<SwarmID>s</SwarmID>", b"<SwarmID>ALL</SwarmID>"),
    (b"<SwarmID>s</SwarmID>", b"<SwarmID>nil</SwarmID>"),
    # A segment over the bits any content has (the bound every codec shares).
    (
        b'startIndex="0" endIndex="11" chunkmapSize="12">8DA=',
        b'startIndex="0" endIndex="1048576" chunkmapSize="1048577">'
        + b"A" * (4 * (2**20 // 24 + 1)),
    ),
]


@pytest.mark.parametrize(("old", "new"), EDITS, ids=lambda e: e.decode("utf-8", "replace"))
def test_edited_documents_decode_as_the_full_decoder_decodes_them(old: bytes, new: bytes) -> None:
    for document in (REPORT, FIND):
        data = document.replace(old, new)
        plain = _plain(data)
        assert plain is None or plain == _full(data)
        assert _served(data) == _full(data)


def test_the_sample_bitmap_is_the_one_edited() -> None:
    assert base64.b64encode(b"\xf0\x30") == b"8DA="
    assert b"8DA=" in REPORT


PIECES = [
    b"<",
    b">",
    b"</",
    b"/>",
    b" ",
    b"\n",
    b'"',
    b"=",
    b"&#49;",
    b"Stat",
    b"SwarmID",
    b"SegmentInfo",
    b"Representation",
    b'property="ContentMap"',
    b"0",
    b"9",
    b"A",
    b"=",
    b"\xc3\xa9",
]


@PROPERTY
@given(
    st.sampled_from([REPORT, FIND]),
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
    plain = _plain(data)
    assert plain is None or plain == _full(data)
    assert _served(data) == _full(data)
