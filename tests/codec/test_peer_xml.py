"""Peer protocol codec: round trips, the seed slides' shapes, hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.peer_xml import (
    CONTENT_TYPE,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    response_status,
)
from ppsp.errors import (
    PEER_ERROR_CLASSES,
    InvalidSyntax,
    LocalProtocolError,
    MessageNotSupported,
    ObjectNotFound,
    PeerProtocolError,
    VersionNotSupported,
)
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.fields import (
    MAX_CHUNK_IDS,
    MAX_CHUNKMAP_BITS,
    MAX_MESSAGE_BYTES,
)
from ppsp.wire.peer import (
    ChunkAvailabilityRequest,
    ChunkAvailabilityResponse,
    ErrorResponse,
    FindRequest,
    FindResponse,
    OkResponse,
    PeerMethod,
    PeerRequest,
    PeerResponse,
    PropertyQueryRequest,
    PropertyQueryResponse,
    Stat,
    TransportNegotiationRequest,
    TransportNegotiationResponse,
    TransportOffer,
    bitmaps_from_chunk_map,
    chunk_map_from_bitmaps,
    format_property_value,
)
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
)
from wire.strategies import mutated, peer_requests, peer_responses

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# Round trips.


@FAST
@given(peer_requests)
def test_request_round_trip(msg: PeerRequest) -> None:
    assert decode_request(encode_request(msg)) == msg


@FAST
@given(peer_responses)
def test_response_round_trip(msg: PeerResponse) -> None:
    assert decode_response(encode_response(msg), response_status(msg)) == msg


BITMAP = ChunkBitmap.from_indexes([0, 3, 9, 24], 25)
CHUNK_MAP = chunk_map_from_bitmaps({"tag0": [BITMAP], "tag1": [ChunkBitmap.full(5, 20)]})
PEER = PeerInfo(
    peer_id="956264622298",
    addresses=(
        PeerAddress(ip="198.51.100.22", port=7001, peer_protocol="PPSP-PP/0.1"),
        PeerAddress(ip="2001:db8::7", port=7001, family=AddressFamily.IPV6, type=AddressType.HOST),
    ),
    swarm_id="1111",
)

EXAMPLES: list[PeerRequest | PeerResponse] = [
    FindRequest(transaction_id="1", peer_id="p", swarm_id="s"),
    FindRequest(
        transaction_id="2",
        peer_id="p",
        swarm_id="s",
        method=PeerMethod.FIND_CHUNK,
        chunk_ids=(7, 8),
        content_group=(RepresentationScope(representation_id="tag0", start_index=3),),
        peer_num=PeerNum(count=5, ability_nat="STUN", upload_bandwidth="HIGH"),
    ),
    ChunkAvailabilityRequest(transaction_id="3", peer_id="p", swarm_id="s"),
    ChunkAvailabilityRequest(transaction_id="4", peer_id="p", swarm_id="s", chunk_map=CHUNK_MAP),
    ChunkAvailabilityRequest(transaction_id="5", peer_id="p", swarm_id="s", chunk_map=()),
    PropertyQueryRequest(
        transaction_id="6", peer_id="p", swarm_id="s", properties=("UploadRate", "NAT")
    ),
    TransportNegotiationRequest(
        transaction_id="7", peer_id="p", swarm_id="s", transports=("RTP", "HTTP")
    ),
    FindResponse(transaction_id="1", peer_id="q", swarm_id="s", chunk_ids=(0,), peers=(PEER,)),
    ChunkAvailabilityResponse(transaction_id="3", peer_id="q", swarm_id="s", chunk_map=CHUNK_MAP),
    PropertyQueryResponse(
        transaction_id="6",
        peer_id="q",
        stats=(Stat(property="UploadRate", value="125000"), Stat(property="NAT", value="false")),
    ),
    TransportNegotiationResponse(
        transaction_id="7",
        peer_id="q",
        transports=(TransportOffer(type="HTTP", uri="http://198.51.100.7:7001/swarm/s/{chunk}"),),
    ),
    OkResponse(transaction_id="4", peer_id="q"),
    ErrorResponse(transaction_id="9", status=404, response="OBJECT NOT FOUND"),
    ErrorResponse(transaction_id=None, status=400, response="INVALID SYNTAX"),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_example_round_trip(msg: PeerRequest | PeerResponse) -> None:
    if isinstance(msg, PeerRequest):
        data = encode_request(msg)
        assert decode_request(data) == msg
    else:
        data = encode_response(msg)
        assert decode_response(data, response_status(msg)) == msg
    assert data.startswith(b"<?xml") and b'<PPSPPeerProtocol version="0.1">' in data


def test_content_type() -> None:
    assert CONTENT_TYPE == "application/ppsp-peer+xml"


def test_push_is_a_request_with_chunk() -> None:
    assert not EXAMPLES[2].is_push  # type: ignore[union-attr]
    assert EXAMPLES[3].is_push and EXAMPLES[4].is_push  # type: ignore[union-attr]
    assert b"<CHUNK/>" in encode_request(EXAMPLES[4])  # type: ignore[arg-type]


def test_bitmap_helpers_round_trip() -> None:
    back = bitmaps_from_chunk_map(CHUNK_MAP)
    assert back["tag0"] == [BITMAP]
    assert list(back["tag1"][0]) == [20, 21, 22, 23, 24]


def test_property_value_helpers() -> None:
    assert format_property_value(True) == "true"
    assert format_property_value(12) == "12"
    assert format_property_value(0.25) == "0.25"
    with pytest.raises(ValueError):
        format_property_value(float("nan"))
    assert Stat(property="NAT", value="TRUE").as_bool() is True
    assert Stat(property="NAT", value="0").as_bool() is False
    assert Stat(property="NAT", value="maybe").as_bool() is None
    assert Stat(property="UploadRate", value=" 42 ").as_int() == 42
    assert Stat(property="UploadRate", value="4.2").as_int() is None
    assert Stat(property="ContinuityIndex", value="0.98").as_float() == 0.98
    assert Stat(property="ContinuityIndex", value="inf").as_float() is None
    answer = EXAMPLES[9]
    assert isinstance(answer, PropertyQueryResponse)
    stat = answer.get("uploadrate")
    assert stat is not None and stat.as_int() == 125000
    assert answer.as_dict() == {"UploadRate": "125000", "NAT": "false"}


def test_transport_offer_url_template() -> None:
    offer = TransportOffer(type="HTTP", uri="http://198.51.100.7:7001/s/{representation}/{chunk}")
    assert offer.chunk_url(12, "tag 0") == "http://198.51.100.7:7001/s/tag%200/12"
    with pytest.raises(ValueError):
        TransportOffer(type="RTP").chunk_url(1)


def test_error_response_maps_to_exception() -> None:
    answer = ErrorResponse.from_error(ObjectNotFound(transaction_id="5"))
    assert (answer.status, answer.response, answer.transaction_id) == (
        404,
        "OBJECT NOT FOUND",
        "5",
    )
    error = answer.to_error()
    assert isinstance(error, ObjectNotFound) and error.transaction_id == "5"


@pytest.mark.parametrize(
    ("phrase", "status"),
    [
        ("INVALID SYNTAX", 400),
        ("VERSION NOT SUPPORTED", 400),
        ("MESSAGE NOT SUPPORTED", 403),
        ("TEMPORARILY OVERLOADED", 503),
        ("INTERNAL ERROR", 500),
        ("MESSAGE FORBIDDEN", 403),
        ("OBJECT NOT FOUND", 404),
        ("AUTHENTICATION REQUIRED", 401),
    ],
)
def test_table_2(phrase: str, status: int) -> None:
    error_class = PEER_ERROR_CLASSES[phrase]
    assert error_class.status == status and issubclass(error_class, PeerProtocolError)
    body = f'<PPSPPeerProtocol version="0.1"><Response>{phrase.lower()}</Response>'
    body += "<TransactionID>77</TransactionID></PPSPPeerProtocol>"
    answer = decode_response(body.encode(), 200)
    assert answer == ErrorResponse(transaction_id="77", status=status, response=phrase)


# --------------------------------------------------------------------------------------------
# The seed slides' shapes, *** filled in, and the draft's spellings.


def _doc(body: str, version: str = "0.1") -> bytes:
    return f'<PPSPPeerProtocol version="{version}">{body}</PPSPPeerProtocol>'.encode()


def test_slide_find() -> None:
    msg = decode_request(
        _doc(
            """
     <Method>FIND</Method>
     <TransactionID>12345</TransactionID>
     <PeerID>656164657221</PeerID>
     <SwarmID>1111</SwarmID>
     <ChunkID>0</ChunkID>
     <Peernum>5</Peernum>
"""
        )
    )
    assert msg == FindRequest(
        transaction_id="12345",
        peer_id="656164657221",
        swarm_id="1111",
        chunk_ids=(0,),
        peer_num=PeerNum(count=5),
    )


def test_slide_find_response() -> None:
    msg = decode_response(
        _doc(
            """
     <Response>FIND</Response>
     <TransactionID>12345</TransactionID>
     <SwarmID>1111</SwarmID>
     <ChunkID>0</ChunkID>
     <Peers>
       <PeerInfo>
         <PeerID>956264622298</PeerID>
         <PeerAddress addrType="ipv4" ip="198.51.100.22" port="80" asn="64496"
                      peerProtocol="PPSP-PP" />
       </PeerInfo>
     </Peers>
"""
        )
    )
    assert isinstance(msg, FindResponse)
    assert msg.swarm_id == "1111" and msg.chunk_ids == (0,)
    assert msg.peers[0].peer_id == "956264622298"
    assert msg.peers[0].addresses[0] == PeerAddress(
        ip="198.51.100.22", port=80, asn="64496", peer_protocol="PPSP-PP"
    )


def test_slide_chunk_availability_request_needs_swarm_id() -> None:
    slide = "<Method>CHUNK_AVAILABILITY</Method><TransactionID>1</TransactionID>"
    slide += "<PeerID>656164657221</PeerID>"
    # As on the slide (no SwarmID): PROFILE.md makes SwarmID mandatory in every request.
    with pytest.raises(InvalidSyntax) as info:
        decode_request(_doc(slide))
    assert info.value.transaction_id == "1"
    msg = decode_request(_doc(slide + "<SwarmID>1111</SwarmID>"))
    assert msg == ChunkAvailabilityRequest(
        transaction_id="1", peer_id="656164657221", swarm_id="1111"
    )


def test_slide_chunk_availability_response() -> None:
    msg = decode_response(
        _doc(
            f"""
          <Response>CHUNK_AVAILABILITY</Response>
          <TransactionID>1</TransactionID>
          <PeerID>956264622298</PeerID>
          <CHUNK>
            <Representation id="tag0">
              <SegmentInfo startIndex="0" endIndex="24" chunkmapSize="25">
                {BITMAP.to_base64()}
              </SegmentInfo>
            </Representation>
          </CHUNK>
"""
        )
    )
    assert isinstance(msg, ChunkAvailabilityResponse)
    assert bitmaps_from_chunk_map(msg.chunk_map) == {"tag0": [BITMAP]}


PROPERTY_QUERY_SLIDE = """
     <Method>PROPERTY_QUERY</Method>
     <TransactionID>2</TransactionID>
     <PeerID>656164657221</PeerID>
     <SwarmID>1111</SwarmID>
     <StatRequest>
       <Stat property="UploadRate"></Stat>
       <Stat property="OnlineTime"></Stat>
     </StatsRequest>
"""


def test_slide_property_query_typo_is_malformed() -> None:
    # The slides close <StatRequest> with </StatsRequest>: not well-formed XML.
    with pytest.raises(InvalidSyntax):
        decode_request(_doc(PROPERTY_QUERY_SLIDE))


@pytest.mark.parametrize("name", ["StatRequest", "StatsRequest"])
def test_slide_property_query_corrected(name: str) -> None:
    body = PROPERTY_QUERY_SLIDE.replace("<StatRequest>", f"<{name}>").replace(
        "</StatsRequest>", f"</{name}>"
    )
    msg = decode_request(_doc(body))
    assert msg == PropertyQueryRequest(
        transaction_id="2",
        peer_id="656164657221",
        swarm_id="1111",
        properties=("UploadRate", "OnlineTime"),
    )


@pytest.mark.parametrize("name", ["StatRequest", "Stats"])
def test_slide_and_draft_property_query_response(name: str) -> None:
    msg = decode_response(
        _doc(
            f"""
     <Response>PROPERTY_QUERY</Response>
     <TransactionID>2</TransactionID>
     <PeerID>956264622298</PeerID>
     <{name}>
       <Stat property="UploadRate">125000</Stat>
       <Stat property="OnlineTime">3600</Stat>
     </{name}>
"""
        )
    )
    assert isinstance(msg, PropertyQueryResponse)
    assert msg.as_dict() == {"UploadRate": "125000", "OnlineTime": "3600"}


def test_slide_transport_negotiation() -> None:
    request = decode_request(
        _doc(
            """
    <Method>TRANSPORT_NEGOTIATION</Method>
     <TransactionID>3</TransactionID>
     <PeerID>656164657221</PeerID>
     <SwarmID>1111</SwarmID>
     <TransProt>
       <TProt type="rtp"></TProt>
       <TProt type="HTTP"></TProt>
     </TransProt>
"""
        )
    )
    assert isinstance(request, TransportNegotiationRequest)
    assert request.transports == ("RTP", "HTTP")
    answer = decode_response(
        _doc(
            """
    <Response>TRANSPORT_NEGOTIATION</Response>
     <TransactionID>3</TransactionID>
     <PeerID>956264622298</PeerID>
     <TransProt>
       <TProt type="HTTP" uri="http://198.51.100.7:7001/swarm/1111/{chunk}"></TProt>
     </TransProt>
"""
        )
    )
    assert isinstance(answer, TransportNegotiationResponse)
    offer = answer.offer("http")
    assert offer is not None and offer.chunk_url(5) == "http://198.51.100.7:7001/swarm/1111/5"


@pytest.mark.parametrize("phrase", ["OK", "SUCCESSFUL", "successful"])
def test_ok_and_successful_are_success(phrase: str) -> None:
    peers = (
        "<Peers><PeerInfo><PeerID>a</PeerID>"
        '<PeerAddress ip="198.51.100.1" port="1"/></PeerInfo></Peers>'
    )
    body = f"<Response>{phrase}</Response><TransactionID>5</TransactionID>"
    assert decode_response(_doc(body)) == OkResponse(transaction_id="5")
    found = decode_response(_doc(body + peers))
    assert isinstance(found, FindResponse) and found.method is PeerMethod.FIND
    chunk = decode_response(_doc(body + peers), answering=PeerMethod.FIND_CHUNK)
    assert isinstance(chunk, FindResponse) and chunk.method is PeerMethod.FIND_CHUNK
    pushed = decode_response(_doc(body), answering=PeerMethod.CHUNK_AVAILABILITY)
    assert pushed == OkResponse(transaction_id="5")


def test_names_are_case_insensitive_and_namespaces_ignored() -> None:
    data = (
        b'<p:PPSPPeerProtocol xmlns:p="TBD" version="0.1"><p:Method>find_chunk</p:Method>'
        b"<p:TransactionID>9</p:TransactionID><p:PeerID>a</p:PeerID><p:SwarmID>b</p:SwarmID>"
        b"<p:ChunkID>4</p:ChunkID><p:PeerNum>2</p:PeerNum></p:PPSPPeerProtocol>"
    )
    msg = decode_request(data)
    assert isinstance(msg, FindRequest) and msg.method is PeerMethod.FIND_CHUNK
    assert msg.peer_num == PeerNum(count=2)


def test_error_status_without_body() -> None:
    assert decode_response(b"", 404) == ErrorResponse(
        transaction_id=None, status=404, response="OBJECT NOT FOUND"
    )
    with pytest.raises(InvalidSyntax):
        decode_response(b"", 418)
    with pytest.raises(InvalidSyntax):
        decode_response(b"", 302)


def test_answer_checks() -> None:
    ok = _doc("<Response>OK</Response><TransactionID>1</TransactionID>")
    with pytest.raises(InvalidSyntax):
        decode_response(ok, 404)  # success phrase with an error status
    named = _doc("<Response>FIND</Response><TransactionID>1</TransactionID>")
    with pytest.raises(InvalidSyntax):
        decode_response(named, answering=PeerMethod.PROPERTY_QUERY)
    with pytest.raises(InvalidSyntax):
        decode_response(_doc("<Response>FIND</Response>"))  # no TransactionID
    with pytest.raises(InvalidSyntax):
        decode_response(_doc("<Response>MAYBE</Response><TransactionID>1</TransactionID>"))
    mixed = "<Response>OK</Response><TransactionID>1</TransactionID><CHUNK/><TransProt/>"
    with pytest.raises(InvalidSyntax):
        decode_response(_doc(mixed))


# --------------------------------------------------------------------------------------------
# Hostile and malformed input.

HEAD = "<Method>FIND</Method><TransactionID>42</TransactionID><PeerID>p</PeerID>"
HEAD += "<SwarmID>s</SwarmID>"
CA_HEAD = HEAD.replace("FIND", "CHUNK_AVAILABILITY")


def _segment(attrs: str, text: str) -> bytes:
    return _doc(
        f'{CA_HEAD}<CHUNK><Representation id="r"><SegmentInfo {attrs}>{text}'
        "</SegmentInfo></Representation></CHUNK>"
    )


HOSTILE: dict[str, bytes] = {
    "dtd": b'<!DOCTYPE x [<!ELEMENT x ANY>]><PPSPPeerProtocol version="0.1"/>',
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b'<PPSPPeerProtocol version="0.1"><Method>&lol3;</Method></PPSPPeerProtocol>'
    ),
    "external entity": (
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<PPSPPeerProtocol version="0.1"><PeerID>&e;</PeerID></PPSPPeerProtocol>'
    ),
    "undefined entity": _doc(HEAD.replace("<PeerID>p", "<PeerID>&e;")),
    "utf16 dtd": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]>'
    '<PPSPPeerProtocol version="0.1"/>'.encode("utf-16"),
    "oversized": _doc(HEAD + "<Pad>" + "x" * MAX_MESSAGE_BYTES + "</Pad>"),
    "too many chunk ids": _doc(HEAD + "<ChunkID>1</ChunkID>" * (MAX_CHUNK_IDS + 1)),
    "too many elements": _doc(HEAD + "<X/>" * 20_001),
    "deep nesting": _doc(HEAD + "<X>" * 40 + "</X>" * 40),
    "huge chunk id": _doc(HEAD + "<ChunkID>" + "9" * 40 + "</ChunkID>"),
    "negative chunk id": _doc(HEAD + "<ChunkID>-1</ChunkID>"),
    "unicode digits": _doc(HEAD + "<ChunkID>\u0663</ChunkID>"),
    "bad base64": _segment('startIndex="0" endIndex="7" chunkmapSize="8"', "!!!!"),
    "base64 too long": _segment('startIndex="0" endIndex="7" chunkmapSize="8"', "AAAA"),
    "chunkmapSize mismatch": _segment('startIndex="0" endIndex="7" chunkmapSize="9"', "gA=="),
    "end before start": _segment('startIndex="8" endIndex="7"', "gA=="),
    "huge chunk map": _segment(f'startIndex="0" endIndex="{2**40}"', "gA=="),
    "chunk map over the shared bound": _segment(
        f'startIndex="0" endIndex="{MAX_CHUNKMAP_BITS}"', "A" * (4 * (MAX_CHUNKMAP_BITS // 24 + 1))
    ),
    "representation without segments": _doc(CA_HEAD + '<CHUNK><Representation id="r"/></CHUNK>'),
    "swarm ALL": _doc(HEAD.replace("<SwarmID>s</SwarmID>", "<SwarmID>ALL</SwarmID>")),
    "swarm nil": _doc(HEAD.replace("<SwarmID>s</SwarmID>", "<SwarmID> nil </SwarmID>")),
    "missing endIndex": _segment('startIndex="0"', "gA=="),
    "text in CHUNK": _doc(CA_HEAD + "<CHUNK>gA==</CHUNK>"),
    "not xml": b"\x00\xff garbage",
    "empty": b"",
    "wrong root": b'<PPSPTrackerProtocol version="0.1"/>',
    "no version": _doc(HEAD).replace(b' version="0.1"', b""),
    "malformed version": _doc(HEAD, version="zero"),
    "method and response": _doc(HEAD + "<Response>OK</Response>"),
    "no transaction id": _doc(HEAD.replace("<TransactionID>42</TransactionID>", "")),
    "two transaction ids": _doc(HEAD + "<TransactionID>43</TransactionID>"),
    "two peer ids": _doc(HEAD + "<PeerID>q</PeerID>"),
    "no peer id": _doc(HEAD.replace("<PeerID>p</PeerID>", "")),
    "blank swarm id": _doc(HEAD.replace("<SwarmID>s</SwarmID>", "<SwarmID> </SwarmID>")),
    "id with space": _doc(HEAD.replace("<PeerID>p</PeerID>", "<PeerID>a b</PeerID>")),
    "element in id": _doc(HEAD.replace("<PeerID>p</PeerID>", "<PeerID><X/></PeerID>")),
    "long id": _doc(HEAD.replace("<PeerID>p</PeerID>", f"<PeerID>{'p' * 300}</PeerID>")),
    "find_chunk without chunks": _doc(HEAD.replace("FIND", "FIND_CHUNK")),
    "stat with value": _doc(
        HEAD.replace("FIND", "PROPERTY_QUERY") + '<StatRequest><Stat property="NAT">1</Stat>'
        "</StatRequest>"
    ),
    "stat without property": _doc(
        HEAD.replace("FIND", "PROPERTY_QUERY") + "<StatRequest><Stat/></StatRequest>"
    ),
    "empty transprot": _doc(HEAD.replace("FIND", "TRANSPORT_NEGOTIATION") + "<TransProt/>"),
    "no transprot": _doc(HEAD.replace("FIND", "TRANSPORT_NEGOTIATION")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_request_is_invalid_syntax(name: str) -> None:
    with pytest.raises(InvalidSyntax):
        decode_request(HOSTILE[name])


def test_errors_carry_the_transaction_id() -> None:
    with pytest.raises(InvalidSyntax) as info:
        decode_request(HOSTILE["bad base64"])
    assert info.value.transaction_id == "42"
    assert info.value.status == 400 and info.value.response == "INVALID SYNTAX"


def test_unknown_version() -> None:
    with pytest.raises(VersionNotSupported) as info:
        decode_request(_doc(HEAD, version="1.0"))
    assert (info.value.status, info.value.response) == (400, "VERSION NOT SUPPORTED")
    assert info.value.transaction_id == "42"


def test_unknown_method() -> None:
    with pytest.raises(MessageNotSupported) as info:
        decode_request(_doc(HEAD.replace("FIND", "CONNECT")))
    assert (info.value.status, info.value.response) == (403, "MESSAGE NOT SUPPORTED")
    assert info.value.transaction_id == "42"


def test_a_response_is_not_a_request() -> None:
    with pytest.raises(InvalidSyntax):
        decode_request(encode_response(OkResponse(transaction_id="1")))
    with pytest.raises(InvalidSyntax):
        decode_response(encode_request(EXAMPLES[0]))  # type: ignore[arg-type]


PEERS_HEAD = "<Response>FIND</Response><TransactionID>1</TransactionID><Peers><PeerInfo>"


@pytest.mark.parametrize(
    "address",
    [
        "",  # no PeerAddress at all
        '<PeerAddress ip="198.51.100.300" port="80"/>',
        '<PeerAddress ip="198.51.100.3" port="0"/>',
        '<PeerAddress ip="198.51.100.3" port="65536"/>',
        '<PeerAddress ip="198.51.100.3"/>',
        '<PeerAddress addrType="ipv6" ip="198.51.100.3" port="80"/>',
        '<PeerAddress ip="198.51.100.3" port="80" type="NOPE"/>',
        '<PeerAddress ip="198.51.100.3" port="80"/>' * 17,
        '<PeerAddress ip="fe80::1%eth0" port="80"/>',
    ],
)
def test_bad_peer_list(address: str) -> None:
    peer_id = "<PeerID>a</PeerID>"
    with pytest.raises(InvalidSyntax):
        decode_response(_doc(PEERS_HEAD + peer_id + address + "</PeerInfo></Peers>"))


@pytest.mark.parametrize(
    "info",
    [
        '<PeerAddress ip="198.51.100.3" port="80"/>',  # no PeerID: a listed peer needs one
        '<PeerID>a</PeerID><PeerAddress ip="198.51.100.3" port="80"/></PeerInfo>'
        '<PeerInfo swarmID="ALL"><PeerID>b</PeerID><PeerAddress ip="198.51.100.4" port="80"/>',
        # One peer listed twice for its swarm: more than 16 addresses once merged.
        "<PeerID>a</PeerID>" + '<PeerAddress ip="198.51.100.3" port="80"/>' * 9 + "</PeerInfo>"
        "<PeerInfo><PeerID>a</PeerID>" + '<PeerAddress ip="198.51.100.4" port="80"/>' * 9,
    ],
)
def test_bad_listed_peers(info: str) -> None:
    with pytest.raises(InvalidSyntax):
        decode_response(_doc(PEERS_HEAD + info + "</PeerInfo></Peers>"))


def test_peer_list_read_by_the_shared_rules() -> None:
    """IP addresses come out canonical, ICE priorities above 2**31 fit, and the entries of one
    peer for one swarm are one peer (what the tracker's JSON lists carry)."""
    body = (
        PEERS_HEAD + '<PeerID>a</PeerID><PeerAddress ip="2001:DB8:0::7" port="80"'
        ' priority="4294967295"/></PeerInfo><PeerInfo swarmID="s"><PeerID>b</PeerID>'
        '<PeerAddress ip="198.51.100.4" port="81"/></PeerInfo><PeerInfo><PeerID>a</PeerID>'
        '<PeerAddress ip="198.51.100.3" port="82"/></PeerInfo></Peers>'
    )
    answer = decode_response(_doc(body))
    assert isinstance(answer, FindResponse)
    assert [(p.peer_id, p.swarm_id, [a.ip for a in p.addresses]) for p in answer.peers] == [
        ("a", None, ["2001:db8::7", "198.51.100.3"]),
        ("b", "s", ["198.51.100.4"]),
    ]
    assert answer.peers[0].addresses[0].priority == 2**32 - 1


@pytest.mark.parametrize(
    "msg",
    [
        FindRequest(transaction_id="1", peer_id="p q", swarm_id="s"),
        FindRequest(transaction_id="1", peer_id="", swarm_id="s"),
        FindRequest(transaction_id="1", peer_id="p", swarm_id="s", version="0.2"),
        FindRequest(transaction_id="1", peer_id="p", swarm_id="s", chunk_ids=(-1,)),
        FindRequest(transaction_id="1", peer_id="p\x00", swarm_id="s"),
        FindRequest(transaction_id="1", peer_id="p", swarm_id="s", method=PeerMethod.FIND_CHUNK),
        FindRequest(transaction_id="1", peer_id="p", swarm_id="nil"),
        ChunkAvailabilityRequest(
            transaction_id="1",
            peer_id="p",
            swarm_id="s",
            chunk_map=(RepresentationMap(representation_id="r", segments=()),),
        ),
        TransportNegotiationRequest(transaction_id="1", peer_id="p", swarm_id="s", transports=()),
        TransportNegotiationRequest(
            transaction_id="1", peer_id="p", swarm_id="s", transports=("http",)
        ),
        ChunkAvailabilityRequest(
            transaction_id="1",
            peer_id="p",
            swarm_id="s",
            chunk_map=(
                RepresentationMap(
                    representation_id="r",
                    segments=(
                        SegmentMap(start_index=0, end_index=7, chunkmap_size=9, bitmap=b"\0"),
                    ),
                ),
            ),
        ),
    ],
)
def test_encoder_refuses_invalid_requests(msg: PeerRequest) -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(msg)


@pytest.mark.parametrize(
    "msg",
    [
        ErrorResponse(transaction_id="1", status=404, response="NOT A PHRASE"),
        ErrorResponse(transaction_id="1", status=200, response="OBJECT NOT FOUND"),
        PropertyQueryResponse(transaction_id="1", stats=(Stat(property="X", value=" pad "),)),
        FindResponse(transaction_id=None),
        FindResponse(transaction_id="1", peers=(PeerInfo(addresses=PEER.addresses),)),
        FindResponse(transaction_id="1", peers=(PEER, PEER)),  # reads back as one peer
        FindResponse(
            transaction_id="1",
            peers=(PeerInfo(peer_id="a", addresses=(PeerAddress(ip="::0:1", port=1),)),),
        ),
    ],
)
def test_encoder_refuses_invalid_responses(msg: PeerResponse) -> None:
    with pytest.raises(LocalProtocolError):
        encode_response(msg)


# --------------------------------------------------------------------------------------------
# Fuzz properties: nothing but PeerProtocolError escapes the decoders.


def _decode_both(data: bytes) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(PeerProtocolError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _decode_both(data)


def _encoded(msg: PeerRequest | PeerResponse) -> bytes:
    return encode_request(msg) if isinstance(msg, PeerRequest) else encode_response(msg)


mutated_documents = mutated(
    st.one_of(peer_requests, peer_responses).map(_encoded),
    st.sampled_from([b"<", b">", b"&", b"/", b'"', b"<X>", b"</X>", b"\xff", b"-1"])
    | st.binary(max_size=8),
    edits=4,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents)
def test_fuzz_mutated_documents(data: bytes) -> None:
    _decode_both(data)


def test_fuzz_harness_runs() -> None:
    from fuzz_targets import load_target

    module = load_target("fuzz_peer_xml")
    assert module.run_random(iterations=300, seed=7) == 300 + len(module.SEEDS)
