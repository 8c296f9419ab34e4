"""The tracker XML codec: explicit decoding, error and encoding cases."""

from __future__ import annotations

import pytest
from lxml import etree

from ppsp.codecs.tracker_xml import (
    ERROR_TEXT,
    NAMESPACE,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import (
    BadRequest,
    LocalProtocolError,
    PayloadTooLarge,
    TrackerErrorCode,
    TrackerProtocolError,
    UnsupportedVersion,
)
from ppsp.wire.fields import (
    MAX_ADVERTISED_ADDRESSES,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_STATS,
    MAX_SWARM_ACTIONS,
)
from ppsp.wire.tracker import (
    ActionResult,
    AddressFamily,
    AddressType,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1


def request(body: str, *, version: str = "1.1", method: str = "FIND", tid: str = "7") -> bytes:
    """A request document with the usual envelope around ``body``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<PPSPTrackerProtocol xmlns="TBD" version="{version}">'
        f"<Request>{method}</Request><PeerID>p1</PeerID>"
        f"<TransactionID>{tid}</TransactionID>{body}</PPSPTrackerProtocol>"
    ).encode()


def response(body: str, *, version: str = "1.1", tid: str = "7") -> bytes:
    """A response document with ``body`` after the TransactionID."""
    return (
        f'<PPSPTrackerProtocol version="{version}"><Response>SUCCESSFUL</Response>'
        f"<TransactionID>{tid}</TransactionID>{body}</PPSPTrackerProtocol>"
    ).encode()


def bad(data: bytes, *, tid: str | None = "7") -> BadRequest:
    """Decode ``data`` as a request, expecting BadRequest carrying ``tid``."""
    with pytest.raises(BadRequest) as info:
        decode_request(data)
    assert info.value.transaction_id == tid
    assert info.value.code is TrackerErrorCode.BAD_REQUEST
    return info.value


# ---------------------------------------------------------------------------- names, versions


def test_any_namespace_or_none_and_prefixed_names() -> None:
    plain = decode_request(request("<SwarmID>s</SwarmID>"))
    other = decode_request(
        b'<p:PPSPTrackerProtocol xmlns:p="urn:x" p:version="1.1"><p:Request>FIND</p:Request>'
        b"<p:PeerID>p1</p:PeerID><p:TransactionID>7</p:TransactionID>"
        b"<p:SwarmID>s</p:SwarmID></p:PPSPTrackerProtocol>"
    )
    assert (
        plain == other == FindRequest(version=V11, transaction_id="7", peer_id="p1", swarm_id="s")
    )


def test_no_xml_declaration_needed_and_comments_ignored() -> None:
    data = request("<!-- hello --><SwarmID>s<!-- x --></SwarmID>")
    assert isinstance(decode_request(data.split(b"\n", 1)[1]), FindRequest)


def test_unsupported_version_carries_transaction_id() -> None:
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(request("<SwarmID>s</SwarmID>", version="2.0", tid="42"))
    assert info.value.transaction_id == "42"
    assert info.value.code is TrackerErrorCode.UNSUPPORTED_VERSION
    assert info.value.http_status == 400
    assert info.value.reason.startswith("PPSP version")


def test_missing_version_is_bad_request() -> None:
    bad(request("<SwarmID>s</SwarmID>").replace(b' version="1.1"', b""))


def test_join_is_not_a_10_method() -> None:
    error = bad(request('<SwarmID peerMode="SEED">s</SwarmID>', version="1.0", method="JOIN"))
    assert "JOIN" in str(error)


def test_join_in_11() -> None:
    join = decode_request(request('<SwarmID peerMode="SEED">s</SwarmID>', method="JOIN"))
    assert isinstance(join, JoinRequest)
    assert join.swarms == (SwarmAction(swarm_id="s", peer_mode=PeerMode.SEED),)


@pytest.mark.parametrize("method", ["HELLO", "find", "", "CONNECT FIND"])
def test_unknown_method(method: str) -> None:
    bad(request("<SwarmID>s</SwarmID>", method=method))


def test_wrong_root_and_response_as_request() -> None:
    bad(b"<Tracker version='1.1'><Request>FIND</Request></Tracker>", tid=None)
    bad(response(""))
    with pytest.raises(BadRequest):
        decode_response(request("<SwarmID>s</SwarmID>"))


# ---------------------------------------------------------------------------- field rules


@pytest.mark.parametrize(
    "body",
    [
        "",  # FIND without SwarmID
        "<SwarmID>a</SwarmID><SwarmID>b</SwarmID>",  # FIND with two
        "<SwarmID></SwarmID>",
        "<SwarmID>a b</SwarmID>",
        "<SwarmID>" + "x" * 257 + "</SwarmID>",
        "<SwarmID><x/></SwarmID>",
        "<SwarmID>s</SwarmID><PeerNum>-1</PeerNum>",
        "<SwarmID>s</SwarmID><PeerNum>abc</PeerNum>",
        "<SwarmID>s</SwarmID><PeerNum>+5</PeerNum>",
        "<SwarmID>s</SwarmID><PeerNum>\u0665</PeerNum>",  # an Arabic-Indic digit
        "<SwarmID>s</SwarmID><PeerNum>99999999999999999999</PeerNum>",
        "<SwarmID>s</SwarmID><PeerNum>1</PeerNum><PeerNum>2</PeerNum>",
        "<SwarmID>s</SwarmID><ContentGroup><Representation id='r'/></ContentGroup>",
        "<SwarmID>s</SwarmID><ContentGroup><Representation><SegmentInfo startIndex='1'/>"
        "</Representation></ContentGroup>",
        "<SwarmID>s</SwarmID><ContentGroup><Representation id='r'>"
        "<SegmentInfo startIndex='5' endIndex='4'/></Representation></ContentGroup>",
        "<SwarmID>s</SwarmID><ContentGroup><Representation id='r'>"
        "<SegmentInfo endIndex='4'/></Representation></ContentGroup>",
        "<SwarmID>s</SwarmID>junk",
        "<SwarmID>s</SwarmID><PeerID>p2</PeerID>",
    ],
)
def test_find_field_errors(body: str) -> None:
    bad(request(body))


def test_missing_peer_id_and_transaction_id() -> None:
    bad(request("<SwarmID>s</SwarmID>").replace(b"<PeerID>p1</PeerID>", b""))
    bad(request("<SwarmID>s</SwarmID>", tid=""), tid=None)
    bad(request("<SwarmID>s</SwarmID>").replace(b"<TransactionID>7</TransactionID>", b""), tid=None)


def test_whitespace_around_values_is_stripped() -> None:
    find = decode_request(request("<SwarmID>\n  s \n</SwarmID><PeerNum> 5 </PeerNum>"))
    assert isinstance(find, FindRequest)
    assert find.swarm_id == "s"
    assert find.peer_num is not None and find.peer_num.count == 5


def test_unknown_elements_and_attributes_are_ignored() -> None:
    find = decode_request(request("<SwarmID color='red'>s</SwarmID><Future><X/></Future>"))
    assert find == FindRequest(version=V11, transaction_id="7", peer_id="p1", swarm_id="s")


def connect(body: str, version: str = "1.1") -> bytes:
    return request(body, version=version, method="CONNECT")


ADDRESS = '<PeerGroup><PeerInfo><PeerAddress addrType="ipv4" ip="192.0.2.1" port="{port}"/>'
ADDRESS += "</PeerInfo></PeerGroup>"


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "", "1.5", "0x10", "0", "00"])
def test_bad_ports(port: str) -> None:
    # Port 0 reaches nothing, and the JSON and peer codecs never accepted it.
    bad(connect(ADDRESS.format(port=port)))


@pytest.mark.parametrize("port", ["1", "65535", "080"])
def test_good_ports(port: str) -> None:
    message = decode_request(connect(ADDRESS.format(port=port)))
    assert message.addresses[0].port == int(port)


@pytest.mark.parametrize(
    "attrs",
    [
        'addrType="ipv4" ip="2001:db8::1" port="1"',
        'addrType="ipv6" ip="192.0.2.1" port="1"',
        'addrType="ipv5" ip="192.0.2.1" port="1"',
        'addrType="ipv4" ip="300.1.1.1" port="1"',
        'addrType="ipv4" ip="example.com" port="1"',
        'addrType="ipv4" port="1"',
        'addrType="ipv4" ip="192.0.2.1"',
        'addrType="ipv4" ip="192.0.2.1" port="1" type="NAT"',
        'addrType="ipv4" ip="192.0.2.1" port="1" priority="high"',
        'ip="fe80::1%eth0" port="1"',  # a zone index means nothing to another host
        'ip="192.0.2.1" port="1" asn="has space"',
    ],
)
def test_bad_addresses(attrs: str) -> None:
    bad(connect(f"<PeerGroup><PeerInfo><PeerAddress {attrs}/></PeerInfo></PeerGroup>"))


def test_address_family_inferred_and_ipv6_normalised() -> None:
    message = decode_request(
        connect(
            '<PeerGroup><PeerInfo><PeerAddress ip="2001:DB8:0::1" port="1" type="PROXY"/>'
            "</PeerInfo></PeerGroup>"
        )
    )
    (address,) = message.addresses
    assert (address.ip, address.family, address.type) == (
        "2001:db8::1",
        AddressFamily.IPV6,
        AddressType.PROXY,
    )


def test_too_many_addresses() -> None:
    # A request advertises one address fewer than a listed peer may have: the tracker adds the
    # address it observes, and the peer's entry must still be writable in every answer.
    assert MAX_ADVERTISED_ADDRESSES == MAX_PEER_ADDRESSES - 1
    one = '<PeerAddress addrType="ipv4" ip="192.0.2.1" port="1"/>'
    ok = connect(f"<PeerGroup><PeerInfo>{one * MAX_ADVERTISED_ADDRESSES}</PeerInfo></PeerGroup>")
    assert len(decode_request(ok).addresses) == MAX_ADVERTISED_ADDRESSES
    # Over the bound, in one PeerInfo or spread over several.
    over = one * (MAX_ADVERTISED_ADDRESSES + 1)
    bad(connect(f"<PeerGroup><PeerInfo>{over}</PeerInfo></PeerGroup>"))
    half = f"<PeerInfo>{one * 8}</PeerInfo>"
    bad(connect(f"<PeerGroup>{half}{half}</PeerGroup>"))


def test_connect_rules() -> None:
    registration = decode_request(connect(""))
    assert isinstance(registration, ConnectRequest) and registration.swarm_actions == ()
    bad(connect("", version="1.0"))  # 1.0 CONNECT must carry a swarm action
    bad(connect("<SwarmID peerMode='SEED'>s</SwarmID>"))  # no action
    bad(connect("<SwarmID action='JOIN'>s</SwarmID>"))  # joining needs a mode
    bad(connect("<SwarmID action='STAY' peerMode='SEED'>s</SwarmID>"))
    bad(connect("<SwarmID action='JOIN' peerMode='SEEDER'>s</SwarmID>"))
    bad(
        connect(
            "<SwarmID action='JOIN' peerMode='SEED'>s</SwarmID><SwarmID action='LEAVE'>s</SwarmID>"
        )
    )
    leave = decode_request(connect("<SwarmID action='LEAVE'>s</SwarmID>", version="1.0"))
    assert isinstance(leave, ConnectRequest)
    assert leave.swarm_actions == (SwarmAction(swarm_id="s", action=SwarmActionType.LEAVE),)


def test_disconnect_scopes() -> None:
    def disconnect(body: str) -> DisconnectRequest:
        message = decode_request(request(body, method="DISCONNECT"))
        assert isinstance(message, DisconnectRequest)
        return message

    assert disconnect("").scope is DisconnectScope.SYSTEM  # huang-04 and earlier releases
    assert disconnect("<SwarmID>nil</SwarmID>").scope is DisconnectScope.SYSTEM  # huang-01 4.2
    assert disconnect("<SwarmID> nil </SwarmID>").swarms == ()
    assert disconnect("<SwarmID>ALL</SwarmID>").scope is DisconnectScope.ALL_SWARMS
    named = disconnect("<SwarmID peerMode='SEED' action='LEAVE'>a</SwarmID><SwarmID>b</SwarmID>")
    assert named.scope is DisconnectScope.SWARMS
    assert named.swarms == (SwarmAction(swarm_id="a"), SwarmAction(swarm_id="b"))
    bad(request("<SwarmID>ALL</SwarmID><SwarmID>b</SwarmID>", method="DISCONNECT"))
    bad(request("<SwarmID>b</SwarmID><SwarmID>b</SwarmID>", method="DISCONNECT"))
    bad(request("<SwarmID>b</SwarmID><SwarmID>nil</SwarmID>", method="DISCONNECT"))
    bad(request("<SwarmID>nil</SwarmID><SwarmID>nil</SwarmID>", method="DISCONNECT"))
    bad(request("<SwarmID>nil</SwarmID><SwarmID>ALL</SwarmID>", method="DISCONNECT"))


def test_disconnect_from_the_system_is_written_as_nil() -> None:
    message = DisconnectRequest(
        version=V11, transaction_id="1", peer_id="p", scope=DisconnectScope.SYSTEM
    )
    data = encode_request(message)
    assert b"<SwarmID>nil</SwarmID>" in data
    assert decode_request(data) == message


@pytest.mark.parametrize("word", ["ALL", "nil"])
@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("FIND", "<SwarmID>{}</SwarmID>"),
        ("JOIN", "<SwarmID peerMode='SEED'>{}</SwarmID>"),
        ("CONNECT", "<SwarmID action='JOIN' peerMode='SEED'>{}</SwarmID>"),
        (
            "STAT_REPORT",
            "<StatisticsGroup><Stat property='StreamStatistics'><SwarmID>{}</SwarmID></Stat>"
            "</StatisticsGroup>",
        ),
        (
            "STAT_REPORT",
            "<StatisticsGroup><Stat property='ContentMap'><SwarmID>{}</SwarmID>"
            "<Representation id='r'><SegmentInfo startIndex='0' endIndex='7' chunkmapSize='8'>"
            "gA==</SegmentInfo></Representation></Stat></StatisticsGroup>",
        ),
    ],
)
def test_all_and_nil_are_never_a_swarm_id(word: str, method: str, body: str) -> None:
    bad(request(body.format(word), method=method))


def test_reserved_swarm_ids_are_never_written() -> None:
    for word in ("ALL", "nil"):
        with pytest.raises(LocalProtocolError):
            encode_request(FindRequest(version=V11, transaction_id="1", peer_id="p", swarm_id=word))
        with pytest.raises(LocalProtocolError):
            encode_request(
                DisconnectRequest(
                    version=V11,
                    transaction_id="1",
                    peer_id="p",
                    scope=DisconnectScope.SWARMS,
                    swarms=(SwarmAction(swarm_id=word),),
                )
            )
        peer = PeerInfo(
            peer_id="o", addresses=(PeerAddress(ip="198.51.100.2", port=80),), swarm_id=word
        )
        with pytest.raises(LocalProtocolError):
            encode_response(TrackerResponse(version=V11, transaction_id="1", peers=(peer,)))


def test_too_many_swarm_ids() -> None:
    def disconnect(count: int) -> bytes:
        body = "".join(f"<SwarmID>s{i}</SwarmID>" for i in range(count))
        return request(body, method="DISCONNECT")

    message = decode_request(disconnect(MAX_SWARM_ACTIONS))
    assert isinstance(message, DisconnectRequest) and len(message.swarms) == MAX_SWARM_ACTIONS
    bad(disconnect(10_000))


# ---------------------------------------------------------------------------- STAT_REPORT


def stat_report(stats: str) -> bytes:
    return request(f"<StatisticsGroup>{stats}</StatisticsGroup>", method="STAT_REPORT")


def segment(start: int, end: int, size: int, text: str) -> str:
    attrs = f'startIndex="{start}" endIndex="{end}" chunkmapSize="{size}"'
    return f"<SegmentInfo {attrs}>{text}</SegmentInfo>"


def content_map(segments: str) -> str:
    inner = f'<SwarmID>s</SwarmID><Representation id="r">{segments}</Representation>'
    return f'<Stat property="ContentMap">{inner}</Stat>'


def test_keep_alive() -> None:
    for data in (
        request("", method="STAT_REPORT"),
        request("<StatisticsGroup/>", method="STAT_REPORT"),
    ):
        message = decode_request(data)
        assert message == StatReportRequest(version=V11, transaction_id="7", peer_id="p1")


def test_stream_statistics_with_extras() -> None:
    message = decode_request(
        stat_report(
            '<Stat property="StreamStatistics"><UploadedBytes>1</UploadedBytes>'
            "<ConcurrentLinks>3</ConcurrentLinks><OnlineTime>3600</OnlineTime>"
            "<StallCount>2</StallCount></Stat>"
            '<Stat property="SomethingNew"><X>1</X></Stat>'
        )
    )
    assert isinstance(message, StatReportRequest)
    assert message.stream_stats == (
        StreamStatistics(
            uploaded_bytes=1,
            concurrent_links=3,
            extra=(("OnlineTime", "3600"), ("StallCount", "2")),
        ),
    )
    assert decode_request(encode_request(message)) == message


@pytest.mark.parametrize(
    "stats",
    [
        '<Stat property="StreamStatistics"><UploadedBytes>x</UploadedBytes></Stat>',
        '<Stat property="StreamStatistics"><UploadedBytes>1</UploadedBytes>'
        "<UploadedBytes>2</UploadedBytes></Stat>",
        '<Stat property="StreamStatistics"><Extra><Deep/></Extra></Stat>',
        "<Stat><UploadedBytes>1</UploadedBytes></Stat>",
        content_map(segment(0, 7, 8, "/w=")),  # bad padding
        content_map(segment(0, 7, 8, "//8=")),  # 2 bytes for 8 bits
        content_map(segment(0, 7, 8, "")),
        content_map(segment(0, 7, 9, "/w==")),  # size disagrees with the range
        content_map(segment(5, 4, 0, "")),
        content_map('<SegmentInfo startIndex="0" chunkmapSize="8">/w==</SegmentInfo>'),
        content_map(""),
        '<Stat property="ContentMap"><Representation id="r">'
        + segment(0, 7, 8, "/w==")
        + "</Representation></Stat>",
        '<Stat property="ContentMap"><SwarmID>s</SwarmID></Stat>',
        # One value per extra statistic, as a JSON object holds it.
        '<Stat property="StreamStatistics"><OnlineTime>1</OnlineTime>'
        "<OnlineTime>2</OnlineTime></Stat>",
        # More bits than any content has chunks (the bound the JSON and peer codecs share).
        content_map(segment(0, 2**20, 2**20 + 1, "A" * (4 * (2**20 // 24 + 1)))),
    ],
)
def test_stat_errors(stats: str) -> None:
    bad(stat_report(stats))


def test_extra_statistics_other_encodings_cannot_carry_are_ignored() -> None:
    message = decode_request(
        stat_report(
            '<Stat property="StreamStatistics"><uploaded_bytes>5</uploaded_bytes>'
            "<Durée>3</Durée><OnlineTime>9</OnlineTime></Stat>"
        )
    )
    assert isinstance(message, StatReportRequest)
    assert message.stream_stats == (StreamStatistics(extra=(("OnlineTime", "9"),)),)


def test_content_map_base64_with_whitespace() -> None:
    message = decode_request(stat_report(content_map(segment(8, 23, 16, "\n  8P\n  8=\n"))))
    assert isinstance(message, StatReportRequest)
    assert message.content_maps == (
        ContentMap(
            swarm_id="s",
            representations=(
                RepresentationMap(
                    representation_id="r",
                    segments=(
                        SegmentMap(
                            start_index=8, end_index=23, chunkmap_size=16, bitmap=b"\xf0\xff"
                        ),
                    ),
                ),
            ),
        ),
    )


def test_too_many_stats() -> None:
    one = '<Stat property="StreamStatistics"><UploadedBytes>1</UploadedBytes></Stat>'
    message = decode_request(stat_report(one * MAX_STATS))
    assert isinstance(message, StatReportRequest) and len(message.stream_stats) == MAX_STATS
    bad(stat_report(one * (MAX_STATS + 1)))


# ---------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<PPSPTrackerProtocol version="1.1"><Request>FIND</Request><PeerID>&lol4;</PeerID>
<TransactionID>1</TransactionID><SwarmID>s</SwarmID></PPSPTrackerProtocol>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<PPSPTrackerProtocol version="1.1"><Request>FIND</Request><PeerID>&xxe;</PeerID>
<TransactionID>1</TransactionID><SwarmID>s</SwarmID></PPSPTrackerProtocol>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE PPSPTrackerProtocol SYSTEM "http://127.0.0.1:1/ppsp.dtd">
<PPSPTrackerProtocol version="1.1"><Request>FIND</Request><PeerID>p</PeerID>
<TransactionID>1</TransactionID><SwarmID>s</SwarmID></PPSPTrackerProtocol>"""

UNDEFINED_ENTITY = request("<SwarmID>&xxe;</SwarmID>")


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, UNDEFINED_ENTITY, b"", b"   ", b"\x00"]
)
def test_hostile_documents_are_bad_requests(data: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_request(data)
    with pytest.raises(BadRequest):
        decode_response(data)


def test_utf16_doctype_is_refused() -> None:
    with pytest.raises(BadRequest):
        decode_request(
            EXTERNAL_ENTITY.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16")
        )


def test_deep_nesting() -> None:
    for depth in (20, 300, 5000):
        inner = "<X>" * depth + "</X>" * depth
        bad(request(f"<SwarmID>s</SwarmID>{inner}"), tid=None)


def test_oversized_body() -> None:
    data = request("<SwarmID>s</SwarmID>" + " " * MAX_MESSAGE_BYTES)
    with pytest.raises(PayloadTooLarge):
        decode_request(data)


def test_truncated_documents() -> None:
    data = decode_request  # keep the name short below
    whole = request(
        "<SwarmID>s</SwarmID><PeerNum abilityNAT='STUN'>5</PeerNum><ContentGroup>"
        "<Representation id='r'><SegmentInfo startIndex='1'/></Representation></ContentGroup>"
    )
    assert isinstance(data(whole), FindRequest)
    for cut in range(len(whole) - 1):
        with pytest.raises(BadRequest):
            data(whole[:cut])


def test_result_in_request_transaction_id() -> None:
    bad(
        request("<SwarmID>s</SwarmID>").replace(
            b"<TransactionID>7</TransactionID>",
            b'<TransactionID><Result transactionID="7.0">200 OK</Result></TransactionID>',
        ),
        tid="7.0",
    )


def test_errors_are_tracker_protocol_errors() -> None:
    assert issubclass(BadRequest, TrackerProtocolError)
    assert issubclass(UnsupportedVersion, TrackerProtocolError)
    assert issubclass(PayloadTooLarge, TrackerProtocolError)


# ---------------------------------------------------------------------------- responses

REFLEXIVE = '<PeerAddress addrType="ipv4" ip="198.51.100.1" port="80" type="REFLEXIVE"/>'
HOST = '<PeerAddress addrType="ipv4" ip="198.51.100.2" port="81"/>'


def test_requester_is_first_reflexive_entry_without_swarm_id() -> None:
    decoded = decode_response(
        response(
            "<PeerGroup>"
            f"<PeerInfo><PeerID>a</PeerID>{HOST}</PeerInfo>"
            f"<PeerInfo swarmID='s'><PeerID>b</PeerID>{REFLEXIVE}</PeerInfo>"
            f"<PeerInfo><PeerID>me</PeerID>{HOST}{REFLEXIVE}</PeerInfo>"
            f"<PeerInfo><PeerID>c</PeerID>{REFLEXIVE}</PeerInfo>"
            "</PeerGroup>"
        )
    )
    assert isinstance(decoded, TrackerResponse)
    assert decoded.requester is not None and decoded.requester.peer_id == "me"
    assert [(p.peer_id, p.swarm_id) for p in decoded.peers] == [
        ("a", None),
        ("b", "s"),
        ("c", None),
    ]


def test_results_root_rule() -> None:
    def results(inner: str) -> TrackerResponse:
        decoded = decode_response(
            response("").replace(b"<TransactionID>7</TransactionID>", inner.encode())
        )
        assert isinstance(decoded, TrackerResponse)
        return decoded

    no_zero = results(
        '<TransactionID><Result transactionID="9.1">200 OK</Result>'
        '<Result transactionID="9.2">403 Forbidden</Result></TransactionID>'
    )
    assert no_zero.transaction_id == "9.1"
    assert [r.ok for r in no_zero.results] == [True, False]
    zero_later = results(
        '<TransactionID><Result>200 OK</Result><Result transactionID="9.1">200</Result>'
        '<Result transactionID="9.0" swarmID="s">200 OK</Result></TransactionID>'
    )
    assert zero_later.transaction_id == "9.0"
    assert zero_later.results[2] == ActionResult(transaction_id="9.0", swarm_id="s", status=200)
    for broken in (
        "<TransactionID><Result>200 OK</Result></TransactionID>",
        '<TransactionID><Result transactionID="1">OK</Result></TransactionID>',
        '<TransactionID><Result transactionID="1">2000 OK</Result></TransactionID>',
        '<TransactionID>1<Result transactionID="1">200 OK</Result></TransactionID>',
        "<TransactionID><Other/></TransactionID>",
    ):
        with pytest.raises(BadRequest):
            results(broken)


def test_success_response_needs_known_text() -> None:
    ok = response("").replace(b"SUCCESSFUL", b"OK")
    assert isinstance(decode_response(ok), TrackerResponse)
    with pytest.raises(BadRequest):
        decode_response(response("").replace(b"SUCCESSFUL", b"MAYBE"))
    auth = decode_response(response("").replace(b"SUCCESSFUL", b"AUTHENTICATION REQUIRED"))
    assert isinstance(auth, ErrorResponse)
    assert auth.code is TrackerErrorCode.AUTHENTICATION_REQUIRED
    with pytest.raises(BadRequest):
        decode_response(b"")
    with pytest.raises(UnsupportedVersion) as info:
        decode_response(response("", version="1.2", tid="55"))
    assert info.value.transaction_id == "55"


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (400, "Bad Request", TrackerErrorCode.BAD_REQUEST),
        (400, "PPSP version 1.0", TrackerErrorCode.UNSUPPORTED_VERSION),
        (400, "ppsp Version 1.0", TrackerErrorCode.UNSUPPORTED_VERSION),
        (400, "Supported versions: 1.0, 1.1", TrackerErrorCode.UNSUPPORTED_VERSION),
        (401, "Unauthorized", TrackerErrorCode.AUTHENTICATION_REQUIRED),
        (403, "Action not allowed", TrackerErrorCode.FORBIDDEN),
        (404, "", TrackerErrorCode.NOT_FOUND),
        (408, "Request Timeout", TrackerErrorCode.BAD_REQUEST),
        (413, "", TrackerErrorCode.PAYLOAD_TOO_LARGE),
        (500, "", TrackerErrorCode.INTERNAL_ERROR),
        (502, "", TrackerErrorCode.INTERNAL_ERROR),
        (503, "", TrackerErrorCode.SERVICE_UNAVAILABLE),
    ],
)
def test_error_statuses_with_empty_body(status: int, reason: str, code: TrackerErrorCode) -> None:
    decoded = decode_response(b"", status, reason)
    assert decoded == ErrorResponse(
        version=V10, transaction_id=None, code=code, reason=reason or None
    )


def test_error_body_gives_transaction_id_version_and_flavour() -> None:
    body = encode_response(
        ErrorResponse(version=V11, transaction_id="12.0", code=TrackerErrorCode.UNSUPPORTED_VERSION)
    )
    assert b"<Response>UNSUPPORTED VERSION NUMBER</Response>" in body
    decoded = decode_response(body, 400, "Bad Request")
    assert decoded == ErrorResponse(
        version=V11,
        transaction_id="12.0",
        code=TrackerErrorCode.UNSUPPORTED_VERSION,
        reason="Bad Request",
    )
    # An unreadable error body is ignored: the status decides.
    junk = decode_response(b"<html>oops", 503, "Service Unavailable")
    assert isinstance(junk, ErrorResponse)
    assert junk.code is TrackerErrorCode.SERVICE_UNAVAILABLE


@pytest.mark.parametrize("status", [0, 100, 204, 302, 600, -1])
def test_unexpected_statuses(status: int) -> None:
    with pytest.raises(BadRequest):
        decode_response(b"", status)


# ---------------------------------------------------------------------------- encoding


def test_encoded_form() -> None:
    data = encode_request(FindRequest(version=V11, transaction_id="7", peer_id="p1", swarm_id="s"))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = etree.fromstring(data)
    assert root.tag == f"{{{NAMESPACE}}}PPSPTrackerProtocol"
    assert root.get("version") == "1.1"
    assert [etree.QName(child).localname for child in root] == [
        "Request",
        "TransactionID",
        "PeerID",
        "SwarmID",
    ]


@pytest.mark.parametrize("code", list(TrackerErrorCode))
def test_error_response_round_trip(code: TrackerErrorCode) -> None:
    message = ErrorResponse(version=V11, transaction_id="3", code=code, reason="Because")
    data = encode_response(message)
    assert f"<Response>{ERROR_TEXT[code]}</Response>".encode() in data
    assert decode_response(data, code.http_status, "Because") == message


def test_response_encoding_writes_requester_first_and_swarm_ids() -> None:
    me = PeerInfo(
        peer_id="me",
        addresses=(PeerAddress(ip="198.51.100.1", port=80, type=AddressType.REFLEXIVE),),
    )
    other = PeerInfo(
        peer_id="o", addresses=(PeerAddress(ip="198.51.100.2", port=80),), swarm_id="s"
    )
    message = TrackerResponse(
        version=V10,
        transaction_id="5.0",
        results=(ActionResult(transaction_id="5.1", swarm_id="s"),),
        requester=me,
        peers=(other,),
    )
    data = encode_response(message)
    root = etree.fromstring(data)
    infos = root.findall(f"{{{NAMESPACE}}}PeerGroup/{{{NAMESPACE}}}PeerInfo")
    assert [info.get("swarmID") for info in infos] == [None, "s"]
    results = root.findall(f"{{{NAMESPACE}}}TransactionID/{{{NAMESPACE}}}Result")
    # The root transaction ID is written as the first result when the message lacks it.
    assert [(r.get("transactionID"), r.text) for r in results] == [
        ("5.0", "200 OK"),
        ("5.1", "200 OK"),
    ]
    decoded = decode_response(data)
    assert isinstance(decoded, TrackerResponse)
    assert decoded.requester == me and decoded.peers == (other,)
    assert decoded.results == (ActionResult(transaction_id="5.0"), *message.results)


def join(**kwargs: object) -> JoinRequest:
    fields: dict[str, object] = {
        "version": V11,
        "transaction_id": "1",
        "peer_id": "p",
        "swarms": (SwarmAction(swarm_id="s", peer_mode=PeerMode.LEECH),),
    }
    fields.update(kwargs)
    return JoinRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        join(version=V10),
        join(swarms=()),
        join(swarms=(SwarmAction(swarm_id="s"),)),
        join(transaction_id="a b"),
        join(peer_id=""),
        ConnectRequest(version=V10, transaction_id="1", peer_id="p"),
        ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            swarm_actions=(SwarmAction(swarm_id="s", peer_mode=PeerMode.SEED),),
        ),
        ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            peer_addresses=(PeerAddress(ip="2001:db8::1", port=1),),
        ),
        ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            peer_addresses=(PeerAddress(ip="192.0.2.1", port=70000),),
        ),
        DisconnectRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            scope=DisconnectScope.SYSTEM,
            swarms=(SwarmAction(swarm_id="s"),),
        ),
        DisconnectRequest(
            version=V11, transaction_id="1", peer_id="p", scope=DisconnectScope.SWARMS
        ),
        DisconnectRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            scope=DisconnectScope.SWARMS,
            swarms=(SwarmAction(swarm_id="ALL"),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            stream_stats=(StreamStatistics(extra=(("UploadedBytes", "1"),)),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            stream_stats=(StreamStatistics(extra=(("not a name", "1"),)),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            stream_stats=(StreamStatistics(extra=(("uploaded_bytes", "1"),)),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            stream_stats=(StreamStatistics(extra=(("A", "1"), ("A", "2"))),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            stream_stats=(StreamStatistics(uploaded_bytes=-1),),
        ),
        StatReportRequest(
            version=V11,
            transaction_id="1",
            peer_id="p",
            content_maps=(
                ContentMap(
                    swarm_id="s",
                    representations=(
                        RepresentationMap(
                            representation_id="r",
                            segments=(
                                SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=b""),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ],
)
def test_unencodable_requests(message: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(message)  # type: ignore[arg-type]


def test_unencodable_responses() -> None:
    host_only = PeerInfo(addresses=(PeerAddress(ip="192.0.2.1", port=1),))
    reflexive = PeerInfo(
        addresses=(PeerAddress(ip="192.0.2.1", port=1, type=AddressType.REFLEXIVE),)
    )
    many = tuple(PeerAddress(ip=f"192.0.2.{i}", port=1) for i in range(MAX_PEER_ADDRESSES + 1))
    huge = tuple(
        PeerInfo(peer_id="p" * 250 + str(i), addresses=many[:16], swarm_id="s") for i in range(1000)
    )
    for message in (
        TrackerResponse(version=V11, transaction_id="1", requester=host_only),
        TrackerResponse(version=V11, transaction_id="1", peers=(reflexive,)),
        # A listed peer needs a peer ID and an address, and has at most 16 addresses.
        TrackerResponse(
            version=V11, transaction_id="1", peers=(PeerInfo(addresses=host_only.addresses),)
        ),
        TrackerResponse(
            version=V11, transaction_id="1", peers=(PeerInfo(peer_id="a", swarm_id="s"),)
        ),
        TrackerResponse(
            version=V11,
            transaction_id="1",
            peers=(PeerInfo(peer_id="a", addresses=many, swarm_id="s"),),
        ),
        # Larger than any reader of the codec accepts.
        TrackerResponse(version=V11, transaction_id="1", peers=huge),
        TrackerResponse(
            version=V11, transaction_id="1", results=(ActionResult(transaction_id="1.0"),)
        ),
        TrackerResponse(
            version=V11,
            transaction_id="1.0",
            results=(ActionResult(transaction_id="1.1", status=99),),
        ),
        TrackerResponse(version=V11, transaction_id=""),
    ):
        with pytest.raises(LocalProtocolError):
            encode_response(message)


def listed(body: str) -> bytes:
    return response(f"<PeerGroup>{REFLEXIVE.join(['<PeerInfo>', '</PeerInfo>'])}{body}</PeerGroup>")


@pytest.mark.parametrize(
    "body",
    [
        f"<PeerInfo swarmID='s'>{HOST}</PeerInfo>",  # no PeerID
        "<PeerInfo swarmID='s'><PeerID>a</PeerID></PeerInfo>",  # no address
        f"<PeerInfo swarmID='ALL'><PeerID>a</PeerID>{HOST}</PeerInfo>",
        f"<PeerInfo swarmID='nil'><PeerID>a</PeerID>{HOST}</PeerInfo>",
        # One peer of one swarm listed twice: 18 addresses once merged.
        f"<PeerInfo swarmID='s'><PeerID>a</PeerID>{HOST * 9}</PeerInfo>" * 2,
    ],
)
def test_bad_listed_peers(body: str) -> None:
    with pytest.raises(BadRequest):
        decode_response(listed(body))


def test_a_peer_listed_twice_for_a_swarm_is_one_peer() -> None:
    other = '<PeerAddress addrType="ipv6" ip="2001:DB8::2" port="82"/>'
    decoded = decode_response(
        listed(
            f"<PeerInfo swarmID='s'><PeerID>a</PeerID>{HOST}</PeerInfo>"
            f"<PeerInfo swarmID='t'><PeerID>a</PeerID>{HOST}</PeerInfo>"
            f"<PeerInfo swarmID='s'><PeerID>b</PeerID>{HOST}</PeerInfo>"
            f"<PeerInfo swarmID='s'><PeerID>a</PeerID>{other}</PeerInfo>"
        )
    )
    assert isinstance(decoded, TrackerResponse)
    assert [(p.peer_id, p.swarm_id, [a.ip for a in p.addresses]) for p in decoded.peers] == [
        ("a", "s", ["198.51.100.2", "2001:db8::2"]),
        ("a", "t", ["198.51.100.2"]),
        ("b", "s", ["198.51.100.2"]),
    ]


def test_action_transaction_ids_must_leave_the_root_recognisable() -> None:
    """A per-action ID ending in '.0' under another root could not be answered (the reader
    takes the first '.0' ID of an answer as its root): it was read, and its answer was a 500."""
    join = "<SwarmID peerMode='SEED' transactionID='{}'>s</SwarmID>"
    bad(request(join.format("1.0"), method="JOIN", tid="7"))
    bad(request("<SwarmID action='LEAVE' transactionID='1.0'>s</SwarmID>", method="CONNECT"))
    for root, action in (("7.0", "7.0"), ("7.0", "7.1"), ("7", "7"), ("7", "7.1")):
        message = decode_request(request(join.format(action), method="JOIN", tid=root))
        assert isinstance(message, JoinRequest)
        results = tuple(
            ActionResult(transaction_id=a.transaction_id, swarm_id=a.swarm_id)
            for a in message.swarms
        )
        answer = TrackerResponse(version=V11, transaction_id=root, results=results)
        assert decode_response(encode_response(answer)).transaction_id == root
    refused = JoinRequest(
        version=V11,
        transaction_id="7",
        peer_id="p",
        swarms=(SwarmAction(swarm_id="s", peer_mode=PeerMode.SEED, transaction_id="1.0"),),
    )
    with pytest.raises(LocalProtocolError):
        encode_request(refused)
