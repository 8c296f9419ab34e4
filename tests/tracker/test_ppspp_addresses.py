"""A peer's PPSPP socket addresses (``peerProtocol`` ``PPSPP``, HOST and REFLEXIVE) go
through the tracker whole: decoded from its CONNECT, stored, listed in FIND answers and
encoded again, in XML and in JSON (docs/PROTOCOL.md, "NAT traversal")."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.peer.net.node import PEER_PROTOCOL
from ppsp.peer.protocol.addressing import PPSPP_PEER_PROTOCOL
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.storage import Storage
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    FindRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
HTTP = PeerAddress(ip="192.0.2.10", port=7000, peer_protocol=PEER_PROTOCOL)
PPSPP_HOST = PeerAddress(
    ip="192.0.2.10", port=6778, type=AddressType.HOST, peer_protocol=PPSPP_PEER_PROTOCOL
)
PPSPP_REFLEXIVE = PeerAddress(
    ip="203.0.113.5", port=41234, type=AddressType.REFLEXIVE, peer_protocol=PPSPP_PEER_PROTOCOL
)
Codec = tuple[Callable[..., bytes], Callable[..., Any], Callable[..., bytes], Callable[..., Any]]
CODECS: list[Codec] = [
    (xml_codec.encode_request, xml_codec.decode_request, xml_codec.encode_response,
     xml_codec.decode_response),
    (json_codec.encode_request, json_codec.decode_request, json_codec.encode_response,
     json_codec.decode_response),
]  # fmt: skip
HTTP_SEEN = ("192.0.2.10", 40000)
"""Where the tracker sees the seeder's requests come from."""


def test_the_ppspp_token() -> None:
    # The peerProtocol of a PPSPP socket is the transport's TRANSPORT_NEGOTIATION type.
    assert PPSPP_PEER_PROTOCOL == "PPSPP"


NAT_SEEN = ("203.0.113.5", 40000)
"""Where a tracker on the internet sees a seeder behind NAT: its router's address (where STUN
saw its PPSPP socket too), its HTTP port forwarded there."""
FORWARDED_HTTP = PeerAddress(ip="203.0.113.5", port=7000, peer_protocol=PEER_PROTOCOL)


async def _listed_to(
    tracker: Tracker, codec: Codec, peer_id: str, seen: tuple[str, int]
) -> tuple[PeerAddress, ...]:
    """The seeder's addresses in the FIND answer of a leecher ``peer_id`` seen at ``seen``."""
    encode_request, decode_request, encode_response, decode_response = codec
    leecher = ConnectRequest(
        version=V11,
        transaction_id="2",
        peer_id=peer_id,
        peer_addresses=(PeerAddress(ip=seen[0], port=7001, peer_protocol=PEER_PROTOCOL),),
        swarm_actions=(
            SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
        ),
    )
    await tracker.handle(decode_request(encode_request(leecher)), observed=seen, now=0.0)
    find = FindRequest(version=V11, transaction_id="3", peer_id=peer_id, swarm_id="s")
    answer = await tracker.handle(decode_request(encode_request(find)), observed=seen, now=1.0)
    decoded = decode_response(encode_response(answer))
    assert isinstance(decoded, TrackerResponse)
    (listed,) = [info for info in decoded.peers if info.peer_id == "seeder"]
    return listed.addresses


@pytest.mark.parametrize("codec", CODECS, ids=["xml", "json"])
async def test_ppspp_addresses_round_trip_through_the_tracker(
    storage: Storage, codec: Codec
) -> None:
    encode_request, decode_request, _, _ = codec
    tracker = Tracker(storage, TrackerConfig(), rng=random.Random(1))
    seeder = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="seeder",
        peer_addresses=(FORWARDED_HTTP, PPSPP_HOST, PPSPP_REFLEXIVE),
        swarm_actions=(
            SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.SEED),
        ),
    )
    await tracker.handle(decode_request(encode_request(seeder)), observed=NAT_SEEN, now=0.0)
    # Listed in the advertised order, the observed (REFLEXIVE, HTTP's source) address last;
    # the LAN address (another host's) is not kept (docs/PROTOCOL.md, "Whose addresses a peer
    # list carries"), not even for a peer behind the same NAT.
    for peer_id, seen in (("leecher", ("198.51.100.20", 5)), ("neighbour", ("203.0.113.5", 1))):
        listed = await _listed_to(tracker, codec, peer_id, seen)
        assert listed[:2] == (FORWARDED_HTTP, PPSPP_REFLEXIVE)
        assert (listed[2].ip, listed[2].port) == NAT_SEEN
        assert listed[2].type is AddressType.REFLEXIVE and listed[2].peer_protocol is None
        assert len(listed) == 3


def test_a_ppspp_address_is_never_taken_for_the_http_endpoint() -> None:
    from ppsp.peer.net.peer_urls import base_url
    from ppsp.wire.tracker import PeerInfo

    # Listed first (another client's order), the PPSPP HOST address is still skipped.
    info = PeerInfo(peer_id="seeder", addresses=(PPSPP_HOST, PPSPP_REFLEXIVE, HTTP))
    assert base_url(info) == "http://192.0.2.10:7000"
    assert base_url(PeerInfo(peer_id="udp-only", addresses=(PPSPP_HOST,))) is None
