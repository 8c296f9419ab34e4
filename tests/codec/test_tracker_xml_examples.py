"""Every XML example of the tracker drafts (specs/examples/xml*.xml) against the XML codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppsp.codecs.tracker_xml import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import BadRequest
from ppsp.wire.tracker import (
    ActionResult,
    AddressFamily,
    AddressType,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    RepresentationScope,
    StatReportRequest,
    SwarmActionType,
    TrackerResponse,
)

# A verbatim copy of shared/specs/examples (the drafts' example messages, Simplified BSD).
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "tracker-examples"

# Not well-formed as printed (specs/examples/README.md).
NOT_WELL_FORMED = {
    "xml10-ietf02-find-response.xml",
    "xml11-huang01-connect-registration-request.xml",
    "xml11-huang01-disconnect-all-response.xml",
    "xml11-huang01-disconnect-specific-swarms-response.xml",
    "xml11-huang01-join-seeder-response.xml",
    "xml11-huang04-disconnect-response.xml",
}
# Well-formed but not valid messages: the generic templates have empty <Request>/<Response>
# and <TransactionID> (no method, no transaction ID), and the 1.1 STAT_REPORT example's chunk
# maps are a truncated placeholder ("A/8D/wP/..../....") that is neither Base64 nor as long as
# chunkmapSize says.
INVALID_AS_PRINTED = {
    "xml11-huang01-generic-request-template.xml",
    "xml11-huang01-generic-response-template.xml",
    "xml11-huang01-stat-report-request.xml",
}

ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("xml*.xml"))
GOOD_EXAMPLES = [n for n in ALL_EXAMPLES if n not in NOT_WELL_FORMED | INVALID_AS_PRINTED]


def _read(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def _is_response(name: str) -> bool:
    return "response" in name


def test_example_inventory() -> None:
    assert len(ALL_EXAMPLES) == 37
    assert set(ALL_EXAMPLES) >= NOT_WELL_FORMED | INVALID_AS_PRINTED
    assert len(GOOD_EXAMPLES) == 28


@pytest.mark.parametrize("name", GOOD_EXAMPLES)
def test_example_decodes_and_round_trips(name: str) -> None:
    data = _read(name)
    if _is_response(name):
        response = decode_response(data)
        assert isinstance(response, TrackerResponse)
        assert decode_response(encode_response(response)) == response
    else:
        request = decode_request(data)
        assert decode_request(encode_request(request)) == request


@pytest.mark.parametrize("name", sorted(NOT_WELL_FORMED | INVALID_AS_PRINTED))
def test_example_as_printed_is_rejected(name: str) -> None:
    decode = decode_response if _is_response(name) else decode_request
    with pytest.raises(BadRequest):
        decode(_read(name))


# The broken examples, corrected with the smallest change that makes them well-formed.
CORRECTED: dict[str, tuple[str, str]] = {
    "xml10-ietf02-find-response.xml": (
        'xmlns="TBD"schemaLocation="TBD"version="1.0"',
        'xmlns="TBD" schemaLocation="TBD" version="1.0"',
    ),
    "xml11-huang01-connect-registration-request.xml": ('priority="2 ', 'priority="2" '),
    "xml11-huang01-disconnect-all-response.xml": (
        "</TransactionID>\n<PPSPTrackerProtocol>",
        "</TransactionID>\n</PPSPTrackerProtocol>",
    ),
    "xml11-huang01-disconnect-specific-swarms-response.xml": (
        "  <TransactionID>\n<PPSPTrackerProtocol>",
        "  </TransactionID>\n</PPSPTrackerProtocol>",
    ),
    "xml11-huang01-join-seeder-response.xml": (
        "  <TransactionID>\n<PPSPTrackerProtocol>",
        "  </TransactionID>\n</PPSPTrackerProtocol>",
    ),
    "xml11-huang04-disconnect-response.xml": (
        "</TransactionID>\n<PPSPTrackerProtocol>",
        "</TransactionID>\n</PPSPTrackerProtocol>",
    ),
}


def _corrected(name: str) -> bytes:
    old, new = CORRECTED[name]
    text = _read(name).decode()
    assert text.count(old) == 1
    return text.replace(old, new).encode()


def test_every_broken_example_has_a_correction() -> None:
    assert set(CORRECTED) == NOT_WELL_FORMED


@pytest.mark.parametrize("name", sorted(CORRECTED))
def test_corrected_example_decodes_and_round_trips(name: str) -> None:
    data = _corrected(name)
    if _is_response(name):
        response = decode_response(data)
        assert isinstance(response, TrackerResponse)
        assert decode_response(encode_response(response)) == response
    else:
        request = decode_request(data)
        assert decode_request(encode_request(request)) == request


def test_corrected_registration_connect() -> None:
    request = decode_request(_corrected("xml11-huang01-connect-registration-request.xml"))
    assert isinstance(request, ConnectRequest)
    assert request.version is ProtocolVersion.V1_1
    assert request.swarm_actions == ()
    assert [(a.ip, a.family, a.priority, a.type, a.peer_protocol) for a in request.addresses] == [
        ("192.0.2.1", AddressFamily.IPV4, 1, AddressType.HOST, "PPSP-PP"),
        ("2001:db8::1", AddressFamily.IPV6, 2, AddressType.HOST, "PPSP-PP"),
    ]


def test_corrected_disconnect_specific_response_results() -> None:
    # The inner, stray <TransactionID> is an unknown child of the results block: ignored.
    response = decode_response(_corrected("xml11-huang01-disconnect-specific-swarms-response.xml"))
    assert isinstance(response, TrackerResponse)
    assert response.transaction_id == "12345.0"
    assert [r.transaction_id for r in response.results] == ["12345.0", "12345.1", "12345.2"]
    assert all(r.ok for r in response.results)


def test_corrected_find_response_has_no_requester() -> None:
    response = decode_response(_corrected("xml10-ietf02-find-response.xml"))
    assert isinstance(response, TrackerResponse)
    assert response.requester is None
    assert [p.swarm_id for p in response.peers] == ["1111", "1111"]


STAT_REPORT_11_FIXED = """<?xml version="1.0" encoding="UTF-8"?>
<PPSPTrackerProtocol xmlns="TBD" schemaLocation="TBD" version="1.1">
  <Request>STAT_REPORT</Request>
  <PeerID>656164657221</PeerID>
  <TransactionID>12345</TransactionID>
  <StatisticsGroup>
    <Stat property="StreamStatistics">
      <SwarmID>1111</SwarmID>
      <UploadedBytes>512</UploadedBytes>
      <DownloadedBytes>768</DownloadedBytes>
      <AvailBandwidth>1024000</AvailBandwidth>
    </Stat>
    <Stat property="StreamStatistics">
      <SwarmID>2222</SwarmID>
      <UploadedBytes>1024</UploadedBytes>
      <DownloadedBytes>2048</DownloadedBytes>
      <AvailBandwidth>512000</AvailBandwidth>
    </Stat>
    <Stat property="ContentMap">
      <SwarmID>1111</SwarmID>
      <Representation id="tag0">
        <SegmentInfo startIndex="0" endIndex="24" chunkmapSize="25">
          A/8D/w==
        </SegmentInfo>
      </Representation>
      <Representation id="tag1">
        <SegmentInfo startIndex="0" endIndex="14" chunkmapSize="15">A/8=</SegmentInfo>
        <SegmentInfo startIndex="20" endIndex="24" chunkmapSize="5">+A==</SegmentInfo>
      </Representation>
    </Stat>
    <Stat property="ContentMap">
      <SwarmID>2222</SwarmID>
      <Representation id="tag5">
        <SegmentInfo startIndex="0" endIndex="4" chunkmapSize="5">Aw==</SegmentInfo>
      </Representation>
      <Representation id="tag6">
        <SegmentInfo startIndex="0" endIndex="4" chunkmapSize="5">8A==</SegmentInfo>
      </Representation>
    </Stat>
  </StatisticsGroup>
</PPSPTrackerProtocol>
"""


def test_corrected_stat_report_11() -> None:
    request = decode_request(STAT_REPORT_11_FIXED.encode())
    assert isinstance(request, StatReportRequest)
    assert [s.swarm_id for s in request.stream_stats] == ["1111", "2222"]
    assert request.stream_stats[1].available_bandwidth == 512000
    first, second = request.content_maps
    assert first.swarm_id == "1111"
    tag0 = first.representations[0].segments[0]
    assert (tag0.start_index, tag0.end_index, tag0.chunkmap_size) == (0, 24, 25)
    # 25 bits of 03 FF 03 FF: the 25th bit (MSB of the last byte) is kept, the rest cleared.
    assert tag0.bitmap == bytes([0x03, 0xFF, 0x03, 0x80])
    late = first.representations[1].segments[1]
    assert (late.start_index, late.bitmap) == (20, bytes([0xF8]))
    assert second.representations[1].segments[0].bitmap == bytes([0xF0])
    assert decode_request(encode_request(request)) == request


def test_fast_connect_mixed_modes() -> None:
    request = decode_request(_read("xml11-huang01-connect-fast-request-seed-and-leech.xml"))
    assert isinstance(request, ConnectRequest)
    assert request.transaction_id == "12345.0"
    assert [
        (s.swarm_id, s.action, s.peer_mode, s.transaction_id) for s in request.swarm_actions
    ] == [
        ("1111", SwarmActionType.JOIN, PeerMode.SEED, "12345.1"),
        ("2222", SwarmActionType.JOIN, PeerMode.SEED, "12345.2"),
        ("3333", SwarmActionType.JOIN, PeerMode.LEECH, "12345.3"),
    ]


def test_leave_join_connect_10() -> None:
    request = decode_request(_read("xml10-cruz00-connect-request-leave-join.xml"))
    assert isinstance(request, ConnectRequest)
    assert request.version is ProtocolVersion.V1_0
    assert [s.action for s in request.swarm_actions] == [
        SwarmActionType.LEAVE,
        SwarmActionType.JOIN,
    ]
    assert request.peer_num is not None and request.peer_num.count == 5
    assert request.peer_num.ability_nat == "STUN"
    assert request.addresses[1].connection == "3G"


def test_connect_response_results_and_requester() -> None:
    response = decode_response(_read("xml10-ietf02-connect-response.xml"))
    assert isinstance(response, TrackerResponse)
    assert response.transaction_id == "12345.0"
    assert response.results == (
        ActionResult(transaction_id="12345.0", status=200),
        ActionResult(transaction_id="12345.1", status=200),
        ActionResult(transaction_id="12345.2", status=200),
    )
    assert response.requester is not None
    assert response.requester.peer_id == "656164657221"
    assert response.requester.addresses[0].type is AddressType.REFLEXIVE
    assert response.requester.addresses[0].asn == "64496"
    assert [(p.peer_id, p.swarm_id) for p in response.peers] == [
        ("956264622298", "2222"),
        ("3332001256741", "2222"),
    ]


def test_find_response_with_reflexive_11_peers_without_swarm() -> None:
    response = decode_response(_read("xml11-huang01-find-response-with-reflexive.xml"))
    assert isinstance(response, TrackerResponse)
    assert response.requester is not None and response.requester.peer_id == "656164657221"
    assert [p.swarm_id for p in response.peers] == [None, None]
    assert response.results == ()


def test_registration_response_requester_without_peer_id() -> None:
    response = decode_response(_read("xml11-huang01-connect-registration-response.xml"))
    assert isinstance(response, TrackerResponse)
    assert response.requester is not None
    assert response.requester.peer_id is None
    assert response.requester.addresses[0].connection == "ADSL"
    assert response.peers == ()


def test_disconnect_examples() -> None:
    everything = decode_request(_read("xml11-huang01-disconnect-all-request.xml"))
    assert isinstance(everything, DisconnectRequest)
    assert (everything.scope, everything.swarms) == (DisconnectScope.ALL_SWARMS, ())
    named = decode_request(_read("xml11-huang01-disconnect-specific-swarms-request.xml"))
    assert isinstance(named, DisconnectRequest)
    assert named.scope is DisconnectScope.SWARMS
    assert [(s.swarm_id, s.transaction_id) for s in named.swarms] == [
        ("1111", "12345.1"),
        ("2222", "12345.2"),
    ]
    system = decode_request(_read("xml11-huang04-disconnect-request.xml"))
    assert isinstance(system, DisconnectRequest)
    assert (system.scope, system.version) == (DisconnectScope.SYSTEM, ProtocolVersion.V1_0)


def test_join_examples() -> None:
    seeder = decode_request(_read("xml11-huang01-join-seeder-request.xml"))
    assert isinstance(seeder, JoinRequest)
    # Both SwarmIDs carry transactionID 12345.1 as printed: duplicate action IDs are kept.
    assert [(s.swarm_id, s.peer_mode, s.transaction_id) for s in seeder.swarms] == [
        ("1111", PeerMode.SEED, "12345.1"),
        ("2222", PeerMode.SEED, "12345.1"),
    ]
    leecher = decode_request(_read("xml11-huang01-join-leecher-request.xml"))
    assert isinstance(leecher, JoinRequest)
    assert leecher.content_group == (
        RepresentationScope(representation_id="tag0", start_index=20),
        RepresentationScope(representation_id="tag6", start_index=20),
    )
    assert leecher.peer_num is not None
    assert leecher.peer_num.upload_bandwidth == "NORMAL"


def test_find_examples() -> None:
    find_10 = decode_request(_read("xml10-ietf02-find-request.xml"))
    assert isinstance(find_10, FindRequest)
    assert (find_10.swarm_id, find_10.content_group) == ("1111", ())
    assert find_10.peer_num is not None and find_10.peer_num.concurrent_links == "HIGH"
    find_11 = decode_request(_read("xml11-huang01-find-request.xml"))
    assert isinstance(find_11, FindRequest)
    assert find_11.content_group == (
        RepresentationScope(representation_id="tag4", start_index=110, end_index=150),
    )


def test_stat_report_10() -> None:
    request = decode_request(_read("xml10-ietf02-stat-report-request.xml"))
    assert isinstance(request, StatReportRequest)
    (stats,) = request.stream_stats
    assert (stats.swarm_id, stats.uploaded_bytes, stats.downloaded_bytes) == ("1111", 512, 768)
    assert stats.available_bandwidth == 1024000
    assert request.content_maps == ()


def test_extended_connect_huang04_carries_content_group_and_peer_group() -> None:
    request = decode_request(_read("xml11-huang04-connect-extended-request.xml"))
    assert isinstance(request, ConnectRequest)
    assert request.version is ProtocolVersion.V1_0
    assert len(request.content_group) == 2
    assert len(request.peer_addresses) == 2
