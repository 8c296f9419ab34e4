"""Each refusal says why, over real HTTP (docs/PROTOCOL.md, "Refusals and their reasons"): the
HTTP reason phrase (both encodings) and the tracker's debug log line name the cause; a reason
quoting the request is bounded and printable.  Peers on 127.0.0.2 and 127.0.0.3."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
)
from tracker.net.loopback import Answer, post_from, served_tracker

PEER, OTHER = "127.0.0.2", "127.0.0.3"
V11 = ProtocolVersion.V1_1
CODECS = {Encoding.XML: xml_codec, Encoding.JSON: json_codec}


@pytest.fixture(params=["memory", "redis"])
async def tracker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with served_tracker(request.param) as url:
        yield url


def join(peer_id: str, *swarms: str) -> JoinRequest:
    actions = tuple(SwarmAction(swarm_id=s, peer_mode=PeerMode.LEECH) for s in swarms)
    return JoinRequest(version=V11, transaction_id="7", peer_id=peer_id, swarms=actions)


def find(peer_id: str, swarm: str) -> FindRequest:
    return FindRequest(version=V11, transaction_id="7", peer_id=peer_id, swarm_id=swarm)


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_each_forbidden_request_says_why(
    tracker_url: str, encoding: Encoding, caplog: pytest.LogCaptureFixture
) -> None:
    codec = CODECS[encoding]

    async def send(request: AnyRequest, source: str = PEER) -> Answer:
        body = codec.encode_request(request)
        return await post_from(source, tracker_url, body, encoding.content_type)

    connect = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="p1",
        swarm_actions=(
            SwarmAction(swarm_id="x", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
        ),
    )
    caplog.set_level(logging.DEBUG, logger="ppsp.tracker")
    assert (await send(connect)).status == 200
    causes = {
        "Peer ID registered from another host": await send(find("p1", "x"), OTHER),
        "Swarm already joined": await send(join("p1", "x")),
        "Swarm not joined": await send(find("p1", "y")),
        "Too many swarms for one peer (at most 256)": await send(
            join("p1", *(f"s{i}" for i in range(256)))
        ),
        "Peer ID not registered": await send(find("nobody", "x")),
    }
    for reason, answer in causes.items():
        assert (answer.status, answer.reason) == (403, reason)
        refused = codec.decode_response(answer.body, answer.status, answer.reason)
        assert isinstance(refused, ErrorResponse)
        # The body stays the protocol's own (what other implementations parse).
        assert refused.code.name == "FORBIDDEN"
        assert any(f"-> 403 forbidden: {reason} (" in r.getMessage() for r in caplog.records)
    # The bodies are the same whatever the cause: only the reason phrase tells them apart.
    assert len({answer.body for answer in causes.values()}) == 1


async def test_syntax_errors_say_what_is_wrong_bounded(tracker_url: str) -> None:
    xml = Encoding.XML.content_type

    async def send(body: bytes) -> Answer:
        return await post_from(PEER, tracker_url, body, xml)

    # A swarm named twice (the encoder refuses to write it: edited in).
    body = xml_codec.encode_request(join("p1", "z", "w")).replace(b">w<", b">z<")
    assert body.count(b">z<") == 2
    answers = [
        await send(body),
        await send(
            b"<PPSPTrackerProtocol version='1.1'><Request>NOPE</Request></PPSPTrackerProtocol>"
        ),
        await send(b"not xml at all"),
    ]
    reasons = [answer.reason for answer in answers]
    assert all(answer.status == 400 for answer in answers)
    assert len(set(reasons)) == 3, reasons
    assert reasons[0] == "SwarmID 'z' appears twice"
    # What a reason quotes of a hostile request is cut and kept printable: a method name of
    # 400 characters, half of them not ASCII.
    method = ("\u00e9X" * 200).encode()
    root = b"<PPSPTrackerProtocol version='1.1'>%b</PPSPTrackerProtocol>"
    long = await send(root % (b"<Request>" + method + b"</Request>"))
    assert long.status == 400
    assert long.reason.startswith("unknown method '")
    assert 0 < len(long.reason) <= 100
    assert long.reason.isascii() and long.reason.isprintable()


async def test_an_unsupported_media_type_has_a_reason_phrase(tracker_url: str) -> None:
    answer = await post_from(PEER, tracker_url, b"{}", "text/plain")
    assert (answer.status, answer.reason) == (415, "Unsupported Media Type")
