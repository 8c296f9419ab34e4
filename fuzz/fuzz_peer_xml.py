"""Fuzz harness for the peer protocol XML codec and request handler (h11 ``fuzz/`` style).

Properties checked on every input:

* the decoders raise nothing but :class:`~ppsp.errors.PeerProtocolError`;
* whatever decodes re-encodes, and decodes back to the same message;
* the peer lists, chunk maps, scopes and PeerNum it reads are written by the tracker's XML and
  JSON codecs and read back the same (the field rules every codec shares,
  :mod:`ppsp.wire.fields`);
* the request handler's byte interface never raises and always answers a decodable body.

Run with atheris when it is installed (``python fuzz/fuzz_peer_xml.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over valid seed documents runs
(``python fuzz/fuzz_peer_xml.py [iterations] [seed]``).
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.peer_xml import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    response_status,
)
from ppsp.errors import PeerProtocolError
from ppsp.peer.protocol.handler import PeerProtocolHandler
from ppsp.wire.bitmap import ChunkBitmap
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
    chunk_map_from_bitmaps,
)
from ppsp.wire.tracker import (
    AddressType,
    ContentMap,
    PeerAddress,
    PeerInfo,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StatReportRequest,
    TrackerResponse,
)
from ppsp.wire.tracker import FindRequest as TrackerFindRequest

# The handler runs against the tests' dict-backed PeerState (a test double, kept in tests/).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
MemoryPeerState = importlib.import_module("peer.protocol.doubles").MemoryPeerState

_MAP = chunk_map_from_bitmaps({"tag0": [ChunkBitmap.from_indexes([0, 5, 17], 25)]})
TID, PEER, SWARM = "12345", "656164657221", "1111"

SEED_REQUESTS: tuple[PeerRequest, ...] = (
    FindRequest(
        transaction_id=TID,
        peer_id=PEER,
        swarm_id=SWARM,
        chunk_ids=(0,),
        peer_num=PeerNum(count=5, ability_nat="STUN"),
    ),
    FindRequest(
        transaction_id=TID,
        peer_id=PEER,
        swarm_id=SWARM,
        method=PeerMethod.FIND_CHUNK,
        chunk_ids=(3,),
        content_group=(RepresentationScope(representation_id="tag0", start_index=1, end_index=9),),
    ),
    ChunkAvailabilityRequest(transaction_id=TID, peer_id=PEER, swarm_id=SWARM),
    ChunkAvailabilityRequest(transaction_id=TID, peer_id=PEER, swarm_id=SWARM, chunk_map=_MAP),
    PropertyQueryRequest(
        transaction_id=TID, peer_id=PEER, swarm_id=SWARM, properties=("UploadRate", "NAT")
    ),
    TransportNegotiationRequest(
        transaction_id=TID, peer_id=PEER, swarm_id=SWARM, transports=("RTP", "HTTP")
    ),
)

SEED_RESPONSES: tuple[PeerResponse, ...] = (
    FindResponse(
        transaction_id="12345",
        swarm_id="1111",
        peers=(
            PeerInfo(
                peer_id="956264622298",
                addresses=(PeerAddress(ip="198.51.100.22", port=80, peer_protocol="PPSP-PP/0.1"),),
            ),
        ),
    ),
    ChunkAvailabilityResponse(transaction_id="12345", peer_id="9", chunk_map=_MAP),
    PropertyQueryResponse(transaction_id="12345", stats=(Stat(property="NAT", value="true"),)),
    TransportNegotiationResponse(
        transaction_id="12345",
        transports=(TransportOffer(type="HTTP", uri="http://198.51.100.7:7001/s/{chunk}"),),
    ),
    OkResponse(transaction_id="12345"),
    ErrorResponse(transaction_id="12345", status=404, response="OBJECT NOT FOUND"),
)

SEEDS: tuple[bytes, ...] = tuple(encode_request(m) for m in SEED_REQUESTS) + tuple(
    encode_response(m) for m in SEED_RESPONSES
)
"""Valid documents of every message kind: the corpus the mutation loop starts from."""


def _handler() -> PeerProtocolHandler:
    state = MemoryPeerState("fuzz-peer")
    state.add_swarm(
        "1111", chunk_map=_MAP, transports=(TransportOffer(type="HTTP", uri="http://x/{chunk}"),)
    )
    state.add_peer("1111", SEED_RESPONSES[0].peers[0])  # type: ignore[union-attr]
    return PeerProtocolHandler(state)


_HANDLER = _handler()
_V11 = ProtocolVersion.V1_1
_REQUESTER = PeerInfo(
    addresses=(PeerAddress(ip="198.51.100.1", port=1, type=AddressType.REFLEXIVE),)
)


def _in_tracker_codecs(message: PeerRequest | PeerResponse) -> None:
    """The parts the tracker protocol shares, written by its codecs and read back the same."""
    if isinstance(message, FindRequest):
        find = TrackerFindRequest(
            version=_V11,
            transaction_id="t",
            peer_id="p",
            swarm_id=message.swarm_id,
            peer_num=message.peer_num,
            content_group=message.content_group,
        )
        for codec in (xml_codec, json_codec):
            assert codec.decode_request(codec.encode_request(find)) == find, find
    elif isinstance(message, FindResponse):
        answer = TrackerResponse(
            version=_V11, transaction_id="t", requester=_REQUESTER, peers=message.peers
        )
        in_xml = xml_codec.decode_response(xml_codec.encode_response(answer))
        assert isinstance(in_xml, TrackerResponse) and in_xml.peers == message.peers, answer
        in_json = json_codec.decode_response(json_codec.encode_response(answer))
        assert isinstance(in_json, TrackerResponse), answer
        assert sorted(map(repr, in_json.peers)) == sorted(map(repr, message.peers)), answer
    elif (
        isinstance(message, ChunkAvailabilityRequest | ChunkAvailabilityResponse)
        and message.chunk_map  # a tracker content map holds at least one representation
    ):
        report = StatReportRequest(
            version=_V11,
            transaction_id="t",
            peer_id="p",
            content_maps=(ContentMap(swarm_id="s", representations=message.chunk_map),),
        )
        for codec in (xml_codec, json_codec):
            assert codec.decode_request(codec.encode_request(report)) == report, report


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    try:
        request = decode_request(data)
    except PeerProtocolError:
        pass
    else:
        if decode_request(encode_request(request)) != request:
            raise AssertionError(f"request does not round-trip: {request!r}")
        _in_tracker_codecs(request)
    try:
        response = decode_response(data)
    except PeerProtocolError:
        pass
    else:
        again = decode_response(encode_response(response), response_status(response))
        if again != response:
            raise AssertionError(f"answer does not round-trip: {response!r}")
        _in_tracker_codecs(response)
    status, body = _HANDLER.handle_bytes(data, 0.0)
    decode_response(body, status)


_TOKENS = (
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b'"',
    b"=",
    b"\x00",
    b"\xff",
    b"-1",
    b"99999999999999999999",
    b"<X>",
    b"<!DOCTYPE x>",
    b"]]>",
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits of ``data`` (:func:`harness.mutate` over this target's corpus)."""
    return harness.mutate(data, rng, SEEDS, _TOKENS)


def run_random(iterations: int = 20_000, seed: int = 0) -> int:
    """The fallback fuzzer: the seed corpus, then ``iterations`` mutations of it;
    returns inputs run.  A finding is printed to stderr with its input, then raised."""
    return harness.run_random(test_one_input, SEEDS, _TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 20_000)
