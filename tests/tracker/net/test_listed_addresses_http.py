"""Whose addresses a peer list carries, over real HTTP (docs/PROTOCOL.md, "Whose addresses a
peer list carries"): a served tracker (memory and Redis storage), a peer on 127.0.0.2
advertising addresses of other hosts, a peer on 127.0.0.3 listing it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    Encoding,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)
from tracker.net.loopback import post_from, served_tracker

LIAR, HONEST = "127.0.0.2", "127.0.0.3"
CODECS = {Encoding.XML: xml_codec, Encoding.JSON: json_codec}


@pytest.fixture(params=["memory", "redis"])
async def tracker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with served_tracker(request.param) as url:
        yield url


def connect(
    peer_id: str, *addresses: PeerAddress, mode: PeerMode = PeerMode.SEED
) -> ConnectRequest:
    return ConnectRequest(
        version=ProtocolVersion.V1_1,
        transaction_id="1",
        peer_id=peer_id,
        peer_addresses=addresses,
        swarm_actions=(SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=mode),),
    )


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_a_peer_list_carries_no_address_of_another_host(
    tracker_url: str, encoding: Encoding
) -> None:
    codec = CODECS[encoding]
    port = int(tracker_url.rsplit(":", 1)[1])
    victims = (
        PeerAddress(ip="127.0.0.99", port=22, type=AddressType.HOST),
        PeerAddress(ip="127.0.0.1", port=port, type=AddressType.PROXY),  # the tracker itself
        PeerAddress(ip="10.0.0.1", port=53, type=AddressType.REFLEXIVE),
        *(PeerAddress(ip="127.0.0.99", port=1000 + i) for i in range(11)),
    )
    own = PeerAddress(ip=LIAR, port=7000)
    body = codec.encode_request(connect("liar", own, *victims))
    liar = await post_from(LIAR, tracker_url, body, encoding.content_type)
    assert liar.status == 200, liar.body
    honest = await post_from(
        HONEST,
        tracker_url,
        codec.encode_request(
            connect("honest", PeerAddress(ip=HONEST, port=7000), mode=PeerMode.LEECH)
        ),
        encoding.content_type,
    )
    assert honest.status == 200, honest.body
    answer = codec.decode_response(honest.body)
    assert isinstance(answer, TrackerResponse)
    (listed,) = answer.peers
    assert listed.peer_id == "liar"
    assert listed.addresses[0] == own
    assert listed.addresses[1].type is AddressType.REFLEXIVE
    assert [a.ip for a in listed.addresses] == [LIAR, LIAR]
