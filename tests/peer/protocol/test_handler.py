"""Peer protocol handler and client, exchanged in memory through the codec (no sockets)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer.protocol.doubles import MemoryPeerState, PeerPair
from ppsp.codecs.peer_xml import decode_response, encode_response
from ppsp.errors import (
    InvalidSyntax,
    LocalProtocolError,
    MessageForbidden,
    MessageNotSupported,
    ObjectNotFound,
    PeerInternalError,
    PeerProtocolError,
    TemporarilyOverloaded,
)
from ppsp.peer.protocol.handler import (
    PeerProtocolClient,
    PeerProtocolHandler,
)
from ppsp.peer.protocol.senders import StrangerGate
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import (
    HTTP,
    ChunkAvailabilityResponse,
    ErrorResponse,
    FindResponse,
    OkResponse,
    PeerMethod,
    PeerRequest,
    Property,
    PropertyQueryResponse,
    TransportNegotiationResponse,
    TransportOffer,
    bitmaps_from_chunk_map,
    chunk_map_from_bitmaps,
    format_property_value,
)
from ppsp.wire.tracker import (
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
)
from wire.strategies import peer_requests as requests

SWARM = "c0ffee"
HTTP_URI = "http://198.51.100.7:7001/swarm/c0ffee/{chunk}"


def _peer(number: int) -> PeerInfo:
    return PeerInfo(
        peer_id=f"peer{number}",
        addresses=(PeerAddress(ip=f"198.51.100.{number}", port=7000 + number),),
    )


def _map(*indexes: int, size: int = 40) -> tuple[RepresentationMap, ...]:
    return chunk_map_from_bitmaps({"v": [ChunkBitmap.from_indexes(indexes, size)]})


MY_MAP = _map(0, 1, 2, 3)


def _state() -> MemoryPeerState:
    state = MemoryPeerState("server", started_at=100.0)
    state.add_swarm(
        SWARM,
        chunk_map=MY_MAP,
        transports=(
            TransportOffer(type=HTTP, uri=HTTP_URI),
            TransportOffer(type="RTP", uri="rtp://198.51.100.7:7002"),
        ),
    )
    state.add_peer(SWARM, _peer(1))  # map unknown
    state.add_peer(SWARM, _peer(2), chunk_map=_map(10, 11))
    state.add_peer(SWARM, _peer(3), chunk_map=_map(10, 11, 12, 30))
    state.add_peer(SWARM, _peer(4), seed=True)
    state.add_peer(SWARM, _peer(5), chunk_map=_map(1))
    state.add_peer(SWARM, PeerInfo(peer_id="client", addresses=_peer(9).addresses))
    state.add_peer(SWARM, PeerInfo(peer_id="noaddr"))
    state.set_property(Property.UPLOAD_RATE, format_property_value(125_000))
    state.set_property(Property.NAT, format_property_value(False))
    state.set_property(Property.CONTINUITY_INDEX, format_property_value(0.97))
    return state


@pytest.fixture
def state() -> MemoryPeerState:
    return _state()


@pytest.fixture
def pair(state: MemoryPeerState) -> PeerPair:
    # "client" is a known peer of the swarm (198.51.100.9) writing from its own address.
    return PeerPair(
        PeerProtocolClient("client", first_transaction_id=1000),
        PeerProtocolHandler(state),
        host="198.51.100.9",
    )


def _ids(answer: object) -> list[str | None]:
    assert isinstance(answer, FindResponse)
    return [peer.peer_id for peer in answer.peers]


# --------------------------------------------------------------------------------------------
# FIND / FIND_CHUNK


def test_find_lists_known_peers_except_requester(pair: PeerPair) -> None:
    request = pair.client.find(SWARM)
    answer = pair.exchange(request)
    assert isinstance(answer, FindResponse)
    assert answer.transaction_id == request.transaction_id == "1000"
    assert answer.method is PeerMethod.FIND and answer.swarm_id == SWARM
    assert answer.peer_id == "server"
    assert _ids(answer) == ["peer1", "peer2", "peer3", "peer4", "peer5"]
    assert all(peer.swarm_id == SWARM for peer in answer.peers)


def test_find_chunk_id_zero_means_any(pair: PeerPair) -> None:
    answer = pair.exchange(pair.client.find(SWARM, chunk_ids=[0]))
    assert _ids(answer) == ["peer1", "peer2", "peer3", "peer4", "peer5"]


def test_find_prefers_peers_holding_chunks_from_id(pair: PeerPair) -> None:
    answer = pair.exchange(pair.client.find(SWARM, chunk_ids=[10]))
    # Seeds first, then by chunks held from 10 up; the rest keep the state's order.
    assert _ids(answer) == ["peer4", "peer3", "peer2", "peer1", "peer5"]


def test_find_chunk_returns_holders_only(pair: PeerPair) -> None:
    answer = pair.exchange(pair.client.find_chunk(SWARM, chunk_ids=[11, 12]))
    assert isinstance(answer, FindResponse) and answer.method is PeerMethod.FIND_CHUNK
    assert answer.chunk_ids == (11, 12)
    assert _ids(answer) == ["peer4", "peer3", "peer2"]


def test_find_chunk_by_content_group(pair: PeerPair) -> None:
    scope = RepresentationScope(representation_id="v", start_index=25, end_index=35)
    answer = pair.exchange(pair.client.find_chunk(SWARM, content_group=[scope]))
    assert _ids(answer) == ["peer4", "peer3"]
    other = RepresentationScope(representation_id="audio", start_index=0)
    answer = pair.exchange(pair.client.find_chunk(SWARM, content_group=[other]))
    assert _ids(answer) == ["peer4"]


def test_find_respects_peernum(pair: PeerPair) -> None:
    answer = pair.exchange(pair.client.find(SWARM, peer_num=PeerNum(count=2)))
    assert _ids(answer) == ["peer1", "peer2"]
    answer = pair.exchange(pair.client.find(SWARM, peer_num=PeerNum(count=0)))
    assert len(_ids(answer)) == 5  # 0: no preference


def test_find_max_peers(state: MemoryPeerState) -> None:
    pair = PeerPair(PeerProtocolClient("client"), PeerProtocolHandler(state, max_peers=3))
    answer = pair.exchange(pair.client.find(SWARM, peer_num=PeerNum(count=10)))
    assert len(_ids(answer)) == 3


def test_find_chunk_nobody_holds_is_404() -> None:
    state = MemoryPeerState("server")
    state.add_swarm(SWARM, transports=(TransportOffer(type=HTTP, uri=HTTP_URI),))
    state.add_peer(SWARM, _peer(1), chunk_map=_map(1, 2))
    state.add_peer(SWARM, _peer(2))
    pair = PeerPair(PeerProtocolClient("client"), PeerProtocolHandler(state))
    assert _ids(pair.exchange(pair.client.find_chunk(SWARM, chunk_ids=[2]))) == ["peer1"]
    request = pair.client.find_chunk(SWARM, chunk_ids=[39])
    answer = pair.exchange(request)
    assert answer == ErrorResponse(
        transaction_id=request.transaction_id, status=404, response="OBJECT NOT FOUND"
    )
    assert isinstance(answer.to_error(), ObjectNotFound)


# --------------------------------------------------------------------------------------------
# CHUNK_AVAILABILITY


def test_pull_returns_my_map(pair: PeerPair) -> None:
    answer = pair.exchange(pair.client.pull_chunk_map(SWARM))
    assert isinstance(answer, ChunkAvailabilityResponse)
    assert answer.chunk_map == MY_MAP and answer.swarm_id == SWARM
    assert list(bitmaps_from_chunk_map(answer.chunk_map)["v"][0]) == [0, 1, 2, 3]


def test_push_is_stored_and_acknowledged(pair: PeerPair, state: MemoryPeerState) -> None:
    pushed = _map(38, 39)
    request = pair.client.push_chunk_map(SWARM, pushed)
    answer = pair.exchange(request, now=123.5)
    assert answer == OkResponse(transaction_id=request.transaction_id, peer_id="server")
    assert state.pushed[(SWARM, "client")] == (pushed, 123.5)
    # A peer that pushed its map becomes a FIND_CHUNK candidate for a third peer.
    third = PeerPair(PeerProtocolClient("third"), pair.handler)
    assert _ids(third.exchange(third.client.find_chunk(SWARM, chunk_ids=[39]))) == [
        "peer4",
        "client",
    ]


def test_push_of_empty_map(pair: PeerPair, state: MemoryPeerState) -> None:
    answer = pair.exchange(pair.client.push_chunk_map(SWARM, ()))
    assert isinstance(answer, OkResponse)
    assert state.pushed[(SWARM, "client")][0] == ()


# --------------------------------------------------------------------------------------------
# PROPERTY_QUERY


def test_property_query(pair: PeerPair, state: MemoryPeerState) -> None:
    state.partners.add((SWARM, "client"))
    request = pair.client.property_query(
        SWARM, [Property.UPLOAD_RATE, "onlinetime", "Unknown", Property.NAT, "UploadRate"]
    )
    answer = pair.exchange(request, now=160.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert [stat.property for stat in answer.stats] == ["UploadRate", "onlinetime", "NAT"]
    rate, online, nat = (answer.get(name) for name in ("UploadRate", "OnlineTime", "NAT"))
    assert rate is not None and rate.as_int() == 125_000
    assert online is not None and online.as_int() == 60
    assert nat is not None and nat.as_bool() is False


def test_property_query_without_names_reports_all(pair: PeerPair, state: MemoryPeerState) -> None:
    state.partners.add((SWARM, "client"))
    answer = pair.exchange(pair.client.property_query(SWARM), now=100.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.as_dict() == {
        "UploadRate": "125000",
        "NAT": "false",
        "ContinuityIndex": "0.97",
        "OnlineTime": "0",
        "ChunkCount": "4",
    }


# --------------------------------------------------------------------------------------------
# Whom a message comes from, and what is disclosed (senders.py)


def _forger(state: MemoryPeerState, name: str, host: str | None) -> PeerPair:
    return PeerPair(PeerProtocolClient(name), PeerProtocolHandler(state), host=host)


def test_push_in_a_known_peers_name_from_another_host_is_forbidden(
    state: MemoryPeerState,
) -> None:
    forger = _forger(state, "peer4", "203.0.113.66")  # peer4 is listed at 198.51.100.4
    answer = forger.exchange(forger.client.push_chunk_map(SWARM, ()))
    assert isinstance(answer, ErrorResponse)
    assert (answer.status, answer.response) == (403, "MESSAGE FORBIDDEN")
    assert isinstance(answer.to_error(), MessageForbidden)
    assert state.pushed == {} and state.lookups == []  # nothing believed, no tracker request
    assert forger.handler.forged_refused == 1


def test_push_without_an_observed_host_or_in_our_own_name_is_forbidden(
    state: MemoryPeerState,
) -> None:
    for forger in (_forger(state, "peer4", None), _forger(state, "server", "198.51.100.4")):
        answer = forger.exchange(forger.client.push_chunk_map(SWARM, MY_MAP))
        assert isinstance(answer, ErrorResponse) and answer.status == 403
    assert state.pushed == {} and state.lookups == []


def test_push_from_the_named_peers_own_host_is_believed(state: MemoryPeerState) -> None:
    # An IPv4 client seen by a server bound to "::" is an IPv4-mapped address.
    peer = _forger(state, "peer4", "::ffff:198.51.100.4")
    answer = peer.exchange(peer.client.push_chunk_map(SWARM, _map(7)), now=5.0)
    assert answer == OkResponse(transaction_id=answer.transaction_id, peer_id="server")
    assert state.pushed[(SWARM, "peer4")] == (_map(7), 5.0)


def test_pushes_of_unknown_peers_are_bounded_per_host_and_lookups_per_swarm(
    state: MemoryPeerState,
) -> None:
    handler = PeerProtocolHandler(
        state, gate=StrangerGate(rate=1.0, burst=3.0, lookup_interval=10.0)
    )
    statuses = []
    for number in range(6):
        stranger = PeerPair(PeerProtocolClient(f"new{number}"), handler, host="203.0.113.5")
        answer = stranger.exchange(stranger.client.push_chunk_map(SWARM, ()), now=1.0)
        statuses.append(answer.status if isinstance(answer, ErrorResponse) else 200)
        if isinstance(answer, OkResponse):
            assert answer.peer_id is None  # a stranger is not told our PeerID
    assert statuses == [200, 200, 200, 503, 503, 503]
    assert state.pushed == {}  # a stranger's map is not believed
    assert state.lookups == [SWARM]  # one lookup, however many strangers
    other = PeerPair(PeerProtocolClient("new9"), handler, host="203.0.113.6")
    assert isinstance(other.exchange(other.client.push_chunk_map(SWARM, ())), OkResponse)
    answer = stranger.exchange(stranger.client.push_chunk_map(SWARM, ()), now=2.5)
    assert isinstance(answer, OkResponse)  # the host's bucket refilled
    assert state.lookups == [SWARM]
    late = PeerPair(PeerProtocolClient("new10"), handler, host="203.0.113.7")
    late.exchange(late.client.push_chunk_map(SWARM, ()), now=11.0)
    assert state.lookups == [SWARM, SWARM]
    with pytest.raises(TemporarilyOverloaded):
        for _ in range(10):
            handler.handle(stranger.client.push_chunk_map(SWARM, ()), 11.0, host="203.0.113.5")


def _big_map() -> tuple[RepresentationMap, ...]:
    """A chunk map of 3,600 segments of 1,096 chunks each: a PUSH of almost 1 MiB."""
    bits = 1096
    segments = [ChunkBitmap(bits, k * 2 * bits, b"\xff" * (bits // 8)) for k in range(3600)]
    return chunk_map_from_bitmaps({"v": segments})


def test_large_messages_are_paid_for_per_host_before_they_are_parsed(
    state: MemoryPeerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing a PUSH of 1 MiB costs the event loop about 0.1 s before whose it is is known:
    one host's large messages are parsed within its budget, the others answered 503 unparsed;
    small messages and other hosts are not held back."""
    from ppsp.peer.protocol import handler as handler_module
    from ppsp.peer.protocol.senders import LARGE_MESSAGE_BYTES, PARSE_BURST, PARSE_RATE

    parsed: list[int] = []
    decode = handler_module.decode_request

    def counting_decode(data: bytes) -> PeerRequest:
        parsed.append(len(data))
        return decode(data)

    monkeypatch.setattr(handler_module, "decode_request", counting_decode)
    handler = PeerProtocolHandler(state)
    client = PeerProtocolClient("stranger")
    body = client.send(client.push_chunk_map(SWARM, _big_map()), 0.0)
    assert LARGE_MESSAGE_BYTES < len(body) <= 1 << 20
    statuses = [handler.handle_bytes(body, 1.0, host="203.0.113.5")[0] for _ in range(16)]
    fit = int(PARSE_BURST // len(body))
    assert statuses == [200] * fit + [503] * (16 - fit)
    assert len(parsed) == fit  # the refused ones were never parsed
    # Small messages of that host, and large ones of another, are parsed as before.
    small = client.send(client.push_chunk_map(SWARM, ()), 1.0)
    assert handler.handle_bytes(small, 1.0, host="203.0.113.5")[0] == 200
    assert handler.handle_bytes(body, 1.0, host="203.0.113.6")[0] == 200
    # The budget refills at its rate.
    later = 1.0 + len(body) / PARSE_RATE
    assert handler.handle_bytes(body, later, host="203.0.113.5")[0] == 200
    assert handler.parse_budget.refused == 16 - fit


def test_statistics_only_to_peers_we_exchange_chunks_with(state: MemoryPeerState) -> None:
    state.set_property(Property.BANDWIDTH, "500000")
    state.set_property("LiveSource", "1")
    swarm_part = {"Bandwidth": "500000", "LiveSource": "1", "ChunkCount": "4"}
    stranger = _forger(state, "nobody", "203.0.113.5")
    answer = stranger.exchange(stranger.client.property_query(SWARM), now=150.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.as_dict() == swarm_part and answer.peer_id is None
    asked = stranger.client.property_query(SWARM, ["OnlineTime", "UploadRate", "Bandwidth"])
    answer = stranger.exchange(asked, now=150.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.as_dict() == {"Bandwidth": "500000"}
    # A known peer we exchange no chunks with: the swarm's part, and our PeerID.
    known = _forger(state, "peer2", "198.51.100.2")
    answer = known.exchange(known.client.property_query(SWARM), now=150.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.as_dict() == swarm_part and answer.peer_id == "server"
    # Chunks went between us: everything.  In its name from another host: the swarm's part.
    state.partners.add((SWARM, "peer2"))
    answer = known.exchange(known.client.property_query(SWARM), now=150.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.get("OnlineTime") is not None and answer.get("UploadRate") is not None
    impostor = _forger(state, "peer2", "203.0.113.5")
    answer = impostor.exchange(impostor.client.property_query(SWARM), now=150.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.as_dict() == swarm_part and answer.peer_id is None


def test_disclose_stats_answers_everything_to_anyone(state: MemoryPeerState) -> None:
    pair = PeerPair(
        PeerProtocolClient("nobody"),
        PeerProtocolHandler(state, disclose_stats=True),
        host="203.0.113.5",
    )
    answer = pair.exchange(pair.client.property_query(SWARM), now=160.0)
    assert isinstance(answer, PropertyQueryResponse)
    assert answer.get("OnlineTime") is not None and answer.get("UploadRate") is not None
    assert answer.peer_id is None  # the flag discloses statistics, never our PeerID


def test_answers_to_strangers_name_no_sender(state: MemoryPeerState) -> None:
    stranger = _forger(state, "nobody", "203.0.113.5")
    client = stranger.client
    for request in (
        client.find(SWARM),
        client.pull_chunk_map(SWARM),
        client.transport_negotiation(SWARM),
    ):
        answer = stranger.exchange(request)
        assert not isinstance(answer, ErrorResponse)
        assert answer.peer_id is None
    answer = stranger.exchange(client.find(SWARM))
    assert isinstance(answer, FindResponse) and "nobody" not in _ids(answer)


# --------------------------------------------------------------------------------------------
# TRANSPORT_NEGOTIATION


def test_transport_negotiation_in_requester_order(pair: PeerPair) -> None:
    request = pair.client.transport_negotiation(SWARM, ["webrtc", "rtp", "http"])
    assert request.transports == ("WEBRTC", "RTP", "HTTP")
    answer = pair.exchange(request)
    assert isinstance(answer, TransportNegotiationResponse)
    assert [offer.type for offer in answer.transports] == ["RTP", "HTTP"]
    http = answer.offer(HTTP)
    assert http is not None
    assert http.chunk_url(17) == "http://198.51.100.7:7001/swarm/c0ffee/17"


def test_transport_negotiation_always_offers_http(pair: PeerPair) -> None:
    request = pair.client.transport_negotiation(SWARM, ["WEBRTC"])
    assert request.transports == ("WEBRTC", "HTTP")
    answer = pair.exchange(request)
    assert isinstance(answer, TransportNegotiationResponse)
    assert [offer.type for offer in answer.transports] == ["HTTP"]


def test_transport_negotiation_nothing_in_common_is_404(pair: PeerPair) -> None:
    request = replace(pair.client.transport_negotiation(SWARM), transports=("SIP", "WEBRTC"))
    answer = pair.exchange(request)
    assert answer == ErrorResponse(
        transaction_id=request.transaction_id, status=404, response="OBJECT NOT FOUND"
    )


def test_transport_negotiation_without_http_is_internal_error(state: MemoryPeerState) -> None:
    state.add_swarm("rtp-only", transports=(TransportOffer(type="RTP", uri="rtp://x"),))
    handler = PeerProtocolHandler(state)
    request = PeerProtocolClient("client").transport_negotiation("rtp-only", ["RTP"])
    with pytest.raises(PeerInternalError) as info:
        handler.handle(request, 0.0)
    assert info.value.transaction_id == request.transaction_id


# --------------------------------------------------------------------------------------------
# Errors and the byte-level handler


def test_every_method_answers_404_for_unknown_swarm(pair: PeerPair) -> None:
    client = pair.client
    for request in (
        client.find("nope"),
        client.find_chunk("nope", chunk_ids=[1]),
        client.pull_chunk_map("nope"),
        client.push_chunk_map("nope", MY_MAP),
        client.property_query("nope"),
        client.transport_negotiation("nope"),
    ):
        answer = pair.exchange(request)
        assert isinstance(answer, ErrorResponse)
        assert (answer.status, answer.response) == (404, "OBJECT NOT FOUND")
        assert answer.transaction_id == request.transaction_id


def test_handle_raises_table_2_errors(state: MemoryPeerState) -> None:
    handler = PeerProtocolHandler(state)
    with pytest.raises(ObjectNotFound):
        handler.handle(PeerProtocolClient("c").find("nope"), 0.0)


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        (b"garbage", 400, "INVALID SYNTAX"),
        (
            b'<PPSPPeerProtocol version="9.9"><Method>FIND</Method></PPSPPeerProtocol>',
            400,
            "VERSION NOT SUPPORTED",
        ),
        (
            b'<PPSPPeerProtocol version="0.1"><Method>JOIN</Method>'
            b"<TransactionID>5</TransactionID></PPSPPeerProtocol>",
            403,
            "MESSAGE NOT SUPPORTED",
        ),
    ],
)
def test_handle_bytes_errors(state: MemoryPeerState, body: bytes, status: int, phrase: str) -> None:
    got_status, answer = PeerProtocolHandler(state).handle_bytes(body, 0.0)
    assert got_status == status
    decoded = decode_response(answer, got_status)
    assert isinstance(decoded, ErrorResponse) and decoded.response == phrase
    if phrase == "MESSAGE NOT SUPPORTED":
        assert decoded.transaction_id == "5"
        assert isinstance(decoded.to_error(), MessageNotSupported)


def test_unencodable_state_value_is_500(state: MemoryPeerState) -> None:
    state.set_property("Bad", "nul\x00byte")
    client = PeerProtocolClient("client")
    request = client.property_query(SWARM, ["Bad"])
    handler = PeerProtocolHandler(state, disclose_stats=True)
    status, body = handler.handle_bytes(client.send(request, 0.0), 0.0)
    assert status == 500
    answer = client.receive(request, body, status)
    assert answer == ErrorResponse(
        transaction_id=request.transaction_id, status=500, response="INTERNAL ERROR"
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, known=st.booleans())
def test_handler_on_any_request(request: PeerRequest, known: bool) -> None:
    state = _state()
    if known:
        state.add_swarm(request.swarm_id, chunk_map=MY_MAP, transports=_state().transports(SWARM))
    handler = PeerProtocolHandler(state)
    try:
        answer = handler.handle(request, 1.0)
    except PeerProtocolError as exc:
        assert exc.transaction_id == request.transaction_id
        # A PUSH in a known peer's name from no observed host is forged; a stranger's may be
        # over its host's bound.
        refusals = (ObjectNotFound, MessageForbidden, TemporarilyOverloaded)
        assert not known or isinstance(exc, refusals)
    else:
        assert known and answer.transaction_id == request.transaction_id
        encode_response(answer)


# --------------------------------------------------------------------------------------------
# Client bookkeeping


def test_transaction_ids_are_unique_per_sender() -> None:
    client = PeerProtocolClient("c", first_transaction_id=2**64 - 2)
    ids = [client.find(SWARM).transaction_id for _ in range(4)]
    assert ids == [str(2**64 - 2), str(2**64 - 1), "0", "1"]
    random_start = PeerProtocolClient("c")
    seen = {random_start.next_transaction_id() for _ in range(100)}
    assert len(seen) == 100


def test_send_twice_and_unknown_answers_are_local_errors() -> None:
    client = PeerProtocolClient("c")
    request = client.find(SWARM)
    client.send(request, 0.0)
    with pytest.raises(LocalProtocolError):
        client.send(request, 0.0)
    with pytest.raises(LocalProtocolError):
        client.receive(client.find(SWARM), b"", 404)


def test_answer_with_other_transaction_id_is_refused() -> None:
    client = PeerProtocolClient("c")
    request = client.find(SWARM)
    client.send(request, 0.0)
    body = encode_response(FindResponse(transaction_id="other"))
    with pytest.raises(InvalidSyntax):
        client.receive(request, body)
    assert client.pending == ()


def test_answer_of_wrong_kind_is_refused() -> None:
    client = PeerProtocolClient("c")
    request = client.pull_chunk_map(SWARM)
    client.send(request, 0.0)
    with pytest.raises(InvalidSyntax):
        client.receive(request, encode_response(OkResponse(transaction_id=request.transaction_id)))


def test_transport_not_offered_is_refused() -> None:
    client = PeerProtocolClient("c")
    request = client.transport_negotiation(SWARM, ["HTTP"])
    client.send(request, 0.0)
    body = encode_response(
        TransportNegotiationResponse(
            transaction_id=request.transaction_id, transports=(TransportOffer(type="RTP"),)
        )
    )
    with pytest.raises(InvalidSyntax):
        client.receive(request, body)


def test_error_without_body_is_accepted() -> None:
    client = PeerProtocolClient("c")
    request = client.property_query(SWARM)
    client.send(request, 0.0)
    answer = client.receive(request, b"", 503)
    assert answer == ErrorResponse(
        transaction_id=None, status=503, response="TEMPORARILY OVERLOADED"
    )


def test_timeouts() -> None:
    client = PeerProtocolClient("c", timeout=5.0)
    assert client.next_deadline() is None
    first, second = client.find(SWARM), client.pull_chunk_map(SWARM)
    client.send(first, 10.0)
    client.send(second, 12.0)
    assert client.next_deadline() == 15.0
    assert client.expire(14.9) == ()
    assert client.expire(15.0) == (first,)
    assert client.pending == (second,)
    assert client.next_deadline() == 17.0
    assert client.expire(100.0) == (second,)
    with pytest.raises(LocalProtocolError):
        client.receive(second, b"", 404)
