"""The JSON tracker codec against RFC 7846's examples and its explicit edge cases."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import orjson
import pytest

from ppsp.codecs.tracker_json import (
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
    UnsupportedVersion,
)
from ppsp.wire import fields
from ppsp.wire.tracker import (
    ActionResult,
    AddressFamily,
    AddressType,
    AnyRequest,
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
    PeerNum,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "tracker-examples"
V1 = ProtocolVersion.V1_0
V2 = ProtocolVersion.V1_1
V2_IDS: Final[dict[str, Any]] = {"version": V2, "transaction_id": "t", "peer_id": "p"}


def example(name: str) -> bytes:
    data = (EXAMPLES / name).read_bytes()
    if name.endswith(".http"):
        _, _, data = data.partition(b"\n\n")
    return data


def root(**members: object) -> bytes:
    return orjson.dumps({"PPSPTrackerProtocol": members})


def request(version: int = 1, request_type: str = "FIND", **members: object) -> bytes:
    base: dict[str, object] = {
        "version": version,
        "request_type": request_type,
        "transaction_id": "t1",
        "peer_id": "p1",
    }
    base.update(members)
    return root(**base)


def find_v1(**find: object) -> bytes:
    return request(1, "FIND", find={"swarm_id": "1111", **find})


REQUEST_EXAMPLES = [
    "draft12-connect-request-leave-join.json",
    "draft12-connect-request-leech.json",
    "draft12-connect-request-seeder.json",
    "draft12-connect-request-seeder.http",
    "draft12-find-request.json",
    "draft12-stat-report-request.json",
]
RESPONSE_EXAMPLES = [
    "draft12-connect-response.json",
    "draft12-connect-response.http",
    "draft12-find-response.json",
    "draft12-stat-report-response.json",
]


def test_every_example_is_listed() -> None:
    names = {p.name for p in EXAMPLES.glob("draft12-*")}
    assert names == set(REQUEST_EXAMPLES) | set(RESPONSE_EXAMPLES)


@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_request_examples_round_trip(name: str) -> None:
    message = decode_request(example(name))
    assert message.version is V1
    assert decode_request(encode_request(message)) == message


@pytest.mark.parametrize("name", RESPONSE_EXAMPLES)
def test_response_examples_round_trip(name: str) -> None:
    message = decode_response(example(name))
    assert isinstance(message, TrackerResponse)
    assert decode_response(encode_response(message)) == message


def test_http_sample_headers_match_body() -> None:
    head, _, _ = (EXAMPLES / "draft12-connect-request-seeder.http").read_bytes().partition(b"\n\n")
    assert b"Content-Type: application/ppsp-tracker+json" in head
    assert decode_request(example("draft12-connect-request-seeder.http")) == decode_request(
        example("draft12-connect-request-seeder.json")
    )


def test_seeder_connect_example_content() -> None:
    msg = decode_request(example("draft12-connect-request-seeder.json"))
    assert isinstance(msg, ConnectRequest)
    assert msg.transaction_id == "12345"
    assert msg.peer_id == "656164657220"
    assert msg.peer_addresses == (
        PeerAddress(
            ip="192.0.2.2",
            port=80,
            family=AddressFamily.IPV4,
            priority=1,
            type=AddressType.HOST,
            connection="wired",
            asn="45645",
        ),
    )
    assert msg.swarm_actions == (
        SwarmAction(swarm_id="1111", action=SwarmActionType.JOIN, peer_mode=PeerMode.SEED),
        SwarmAction(swarm_id="2222", action=SwarmActionType.JOIN, peer_mode=PeerMode.SEED),
    )


def test_leech_example_object_swarm_action_and_string_numbers() -> None:
    msg = decode_request(example("draft12-connect-request-leech.json"))
    assert isinstance(msg, ConnectRequest)
    assert msg.peer_num == PeerNum(
        count=5, ability_nat="STUN", concurrent_links="5", online_time="200", upload_bandwidth="600"
    )
    assert [a.family for a in msg.peer_addresses] == [AddressFamily.IPV4, AddressFamily.IPV6]
    assert msg.peer_addresses[1].peer_protocol == "PPSP-PP"
    assert msg.swarm_actions == (
        SwarmAction(swarm_id="1111", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
    )


def test_connect_response_example_content() -> None:
    msg = decode_response(example("draft12-connect-response.json"))
    assert isinstance(msg, TrackerResponse)
    assert msg.requester is not None
    assert msg.requester.addresses[0].ip == "198.51.100.1"
    assert msg.requester.addresses[0].type is None
    assert msg.results == (ActionResult(swarm_id="2222", status=200),)
    assert [p.peer_id for p in msg.peers] == ["956264622298", "3332001256741"]
    assert {p.swarm_id for p in msg.peers} == {"2222"}


def test_find_example_without_wrapper() -> None:
    msg = decode_request(example("draft12-find-request.json"))
    assert isinstance(msg, FindRequest)
    assert msg.swarm_id == "1111"
    assert msg.peer_num is not None and msg.peer_num.count == 5


def test_stat_report_example_capital_stat() -> None:
    msg = decode_request(example("draft12-stat-report-request.json"))
    assert isinstance(msg, StatReportRequest)
    assert msg.stream_stats == (
        StreamStatistics(
            swarm_id="1111",
            uploaded_bytes=512,
            downloaded_bytes=768,
            available_bandwidth=1024000,
            concurrent_links=5,
        ),
    )


# --- the schema's form is what the encoder writes ---------------------------------------------


def test_encoder_writes_schema_form() -> None:
    msg = decode_request(example("draft12-connect-request-leech.json"))
    body = orjson.loads(encode_request(msg))["PPSPTrackerProtocol"]
    assert isinstance(body["connect"]["swarm_action"], list)
    assert isinstance(body["connect"]["peer_addr"], list)
    assert body["connect"]["peer_num"]["concurrent_links"] == 5
    stat = orjson.loads(encode_request(decode_request(example("draft12-stat-report-request.json"))))
    group = stat["PPSPTrackerProtocol"]["stat_report"]
    assert "stat" in group and "Stat" not in group and isinstance(group["stat"], list)
    find = orjson.loads(encode_request(decode_request(example("draft12-find-request.json"))))
    assert find["PPSPTrackerProtocol"]["find"]["swarm_id"] == "1111"
    assert "swarm_id" not in find["PPSPTrackerProtocol"]
    resp = orjson.loads(encode_response(decode_response(example("draft12-find-response.json"))))
    results = resp["PPSPTrackerProtocol"]["swarm_result"]
    assert isinstance(results, list) and isinstance(results[0]["peer_group"]["peer_info"], list)
    assert seeder_mode(example("draft12-connect-request-seeder.json")) == "SEEDER"


def seeder_mode(data: bytes) -> str:
    body = orjson.loads(encode_request(decode_request(data)))["PPSPTrackerProtocol"]
    mode: str = body["connect"]["swarm_action"][0]["peer_mode"]
    return mode


def test_peer_num_numbers_as_strings_and_integers_agree() -> None:
    as_text = decode_request(find_v1(peer_num={"peer_count": "7", "online_time": "200"}))
    as_int = decode_request(find_v1(peer_num={"peer_count": 7, "online_time": 200}))
    assert as_text == as_int
    assert isinstance(as_text, FindRequest) and as_text.peer_num == PeerNum(
        count=7, online_time="200"
    )


def test_non_decimal_selector_text_is_kept() -> None:
    msg = decode_request(find_v1(peer_num={"peer_count": 5, "concurrent_links": "HIGH"}))
    assert isinstance(msg, FindRequest) and msg.peer_num is not None
    assert msg.peer_num.concurrent_links == "HIGH"
    assert decode_request(encode_request(msg)) == msg


@pytest.mark.parametrize("bad", ["5x", "-5", " 5", "\u0665", "1" * 25, 5.0, True, [5], {"n": 5}])
def test_bad_integers_rejected(bad: object) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(find_v1(peer_num={"peer_count": bad}))
    assert info.value.transaction_id == "t1"


def test_object_and_array_forms_agree() -> None:
    action = {"swarm_id": "1111", "action": "JOIN", "peer_mode": "LEECH"}
    addr = {"ip_address": {"address_type": "ipv4", "address": "192.0.2.9"}, "port": 7000}
    one = request(1, "CONNECT", connect={"swarm_action": action, "peer_addr": addr})
    many = request(1, "CONNECT", connect={"swarm_action": [action], "peer_addr": [addr]})
    assert decode_request(one) == decode_request(many)


def test_find_with_and_without_wrapper_agree() -> None:
    wrapped = request(1, "FIND", find={"swarm_id": "9"})
    flat = request(1, "FIND", swarm_id="9")
    assert decode_request(wrapped) == decode_request(flat)


def test_stat_and_capital_stat_agree() -> None:
    stat = {"swarm_id": "1", "uploaded_bytes": 1}
    lower = request(1, "STAT_REPORT", stat_report={"type": "STREAM_STATS", "stat": [stat]})
    upper = request(1, "STAT_REPORT", stat_report={"type": "STREAM_STATS", "Stat": stat})
    assert decode_request(lower) == decode_request(upper)


def test_seed_spelling_accepted() -> None:
    action = {"swarm_id": "1", "action": "JOIN", "peer_mode": "SEED"}
    msg = decode_request(request(1, "CONNECT", connect={"swarm_action": [action]}))
    assert isinstance(msg, ConnectRequest)
    assert msg.swarm_actions[0].peer_mode is PeerMode.SEED


def test_unknown_members_ignored() -> None:
    msg = decode_request(
        request(
            1,
            "FIND",
            extension={"anything": [1, 2, {"x": None}]},
            find={"swarm_id": "1", "future": True},
        )
    )
    assert msg == decode_request(find_v1(swarm_id="1"))


def test_stat_extension_members_kept() -> None:
    stat = {"swarm_id": "1", "online_time": 3600, "note": "ok", "ignored": [1], "flag": True}
    msg = decode_request(
        request(1, "STAT_REPORT", stat_report={"type": "STREAM_STATS", "stat": [stat]})
    )
    assert isinstance(msg, StatReportRequest)
    assert msg.stream_stats[0].extra == (("online_time", "3600"), ("note", "ok"))
    assert decode_request(encode_request(msg)) == msg


def test_keep_alive_forms() -> None:
    expected = StatReportRequest(version=V1, transaction_id="t1", peer_id="p1")
    members: dict[str, Any]
    for members in ({}, {"stat_report": {}}, {"stat_report": []}, {"stat_report": None}):
        assert decode_request(request(1, "STAT_REPORT", **members)) == expected
    body = orjson.loads(encode_request(expected))["PPSPTrackerProtocol"]
    assert "stat_report" not in body


# --- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 3, 255, -1, "3"])
def test_unsupported_version(version: object) -> None:
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(request(version=version))  # type: ignore[arg-type]
    assert info.value.code is TrackerErrorCode.UNSUPPORTED_VERSION
    assert info.value.code.json_code == 2
    assert info.value.transaction_id == "t1"


@pytest.mark.parametrize("version", [None, 1.0, "1.0", True, [1]])
def test_unreadable_version_is_bad_request(version: object) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(version=version))  # type: ignore[arg-type]


def test_version_two_refused_by_rfc_only_decoder() -> None:
    data = request(2, "FIND", find={"swarm_id": "1"})
    assert decode_request(data).version is V2
    with pytest.raises(UnsupportedVersion):
        decode_request(data, max_version=V1)


def test_v1_connect_without_swarm_action_is_bad_request() -> None:
    connects: list[dict[str, Any]] = [{}, {"swarm_action": []}, {"peer_num": {"peer_count": 1}}]
    for connect in connects:
        with pytest.raises(BadRequest) as info:
            decode_request(request(1, "CONNECT", connect=connect))
        assert info.value.transaction_id == "t1"


def test_v1_has_no_join_or_disconnect() -> None:
    for request_type in ("JOIN", "DISCONNECT"):
        with pytest.raises(BadRequest):
            decode_request(request(1, request_type))


@pytest.mark.parametrize("request_type", ["connect", "HELLO", "", 7, None])
def test_unknown_request_type(request_type: object) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(2, request_type))  # type: ignore[arg-type]


def test_v1_action_needs_action_and_join_needs_mode() -> None:
    for action in ({"swarm_id": "1", "peer_mode": "LEECH"}, {"swarm_id": "1", "action": "JOIN"}):
        with pytest.raises(BadRequest):
            decode_request(request(1, "CONNECT", connect={"swarm_action": [action]}))
    leave = {"swarm_id": "1", "action": "LEAVE"}
    msg = decode_request(request(1, "CONNECT", connect={"swarm_action": [leave]}))
    assert isinstance(msg, ConnectRequest) and msg.swarm_actions[0].peer_mode is None


# --- version 2 extension -----------------------------------------------------------------------


def test_v2_registration_connect() -> None:
    addr = {"ip_address": {"address_type": "ipv6", "address": "2001:DB8:0::1"}, "port": 80}
    msg = decode_request(request(2, "CONNECT", connect={"peer_addr": addr}))
    assert isinstance(msg, ConnectRequest)
    assert msg.swarm_actions == ()
    assert msg.peer_addresses[0].ip == "2001:db8::1"
    assert decode_request(request(2, "CONNECT")) == ConnectRequest(
        version=V2, transaction_id="t1", peer_id="p1"
    )


def test_v2_join() -> None:
    msg = decode_request(
        request(
            2,
            "JOIN",
            join={
                "swarm_action": [
                    {"swarm_id": "1111", "peer_mode": "SEEDER", "transaction_id": "12345.1"},
                    {"swarm_id": "2222", "peer_mode": "LEECH", "action": "JOIN"},
                ],
                "peer_num": {"peer_count": 5},
                "content_group": [
                    {"representation_id": "tag0", "start_index": 20},
                    {"representation_id": "tag6", "start_index": "20", "end_index": 30},
                ],
            },
        )
    )
    assert msg == JoinRequest(
        version=V2,
        transaction_id="t1",
        peer_id="p1",
        swarms=(
            SwarmAction(swarm_id="1111", peer_mode=PeerMode.SEED, transaction_id="12345.1"),
            # "action": "JOIN" means nothing in a JOIN: dropped, as the XML codec drops it.
            SwarmAction(swarm_id="2222", peer_mode=PeerMode.LEECH),
        ),
        peer_num=PeerNum(count=5),
        content_group=(
            RepresentationScope(representation_id="tag0", start_index=20),
            RepresentationScope(representation_id="tag6", start_index=20, end_index=30),
        ),
    )
    assert decode_request(encode_request(msg)) == msg


@pytest.mark.parametrize(
    "join",
    [
        {},
        {"swarm_action": []},
        {"swarm_action": [{"swarm_id": "1"}]},
        {"swarm_action": [{"swarm_id": "1", "peer_mode": "LEECH", "action": "LEAVE"}]},
        {"swarm_action": [{"swarm_id": "1", "peer_mode": "LEECH"}], "content_group": [{}]},
        {
            "swarm_action": [{"swarm_id": "1", "peer_mode": "LEECH"}],
            "content_group": {"representation_id": "a", "start_index": 5, "end_index": 4},
        },
    ],
)
def test_v2_bad_join(join: object) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(2, "JOIN", join=join))


@pytest.mark.parametrize(
    ("members", "scope", "swarm_ids"),
    [
        ({}, DisconnectScope.SYSTEM, []),
        ({"disconnect": {}}, DisconnectScope.SYSTEM, []),
        ({"disconnect": None}, DisconnectScope.SYSTEM, []),
        ({"disconnect": {"swarm_action": []}}, DisconnectScope.SYSTEM, []),
        ({"disconnect": "ALL"}, DisconnectScope.ALL_SWARMS, []),
        ({"disconnect": {"swarm_id": "ALL"}}, DisconnectScope.ALL_SWARMS, []),
        ({"disconnect": {"swarm_action": {"swarm_id": "ALL"}}}, DisconnectScope.ALL_SWARMS, []),
        ({"disconnect": {"swarm_id": "1111"}}, DisconnectScope.SWARMS, ["1111"]),
        ({"disconnect": {"swarm_id": ["1", "2"]}}, DisconnectScope.SWARMS, ["1", "2"]),
        ({"swarm_id": "ALL"}, DisconnectScope.ALL_SWARMS, []),
        # "nil", as huang-01 section 4.2 names leaving the system, in every form ALL has.
        ({"disconnect": {"swarm_id": "nil"}}, DisconnectScope.SYSTEM, []),
        ({"disconnect": "nil"}, DisconnectScope.SYSTEM, []),
        ({"disconnect": {"swarm_id": ["nil"]}}, DisconnectScope.SYSTEM, []),
        ({"disconnect": {"swarm_action": [{"swarm_id": "nil"}]}}, DisconnectScope.SYSTEM, []),
        ({"swarm_id": "nil"}, DisconnectScope.SYSTEM, []),
    ],
)
def test_v2_disconnect_forms(
    members: dict[str, object], scope: DisconnectScope, swarm_ids: list[str]
) -> None:
    msg = decode_request(request(2, "DISCONNECT", **members))
    assert isinstance(msg, DisconnectRequest)
    assert msg.scope is scope
    assert [s.swarm_id for s in msg.swarms] == swarm_ids
    assert decode_request(encode_request(msg)) == msg


def test_v2_disconnect_per_swarm_transaction_ids() -> None:
    actions = [
        {"swarm_id": "1111", "transaction_id": "12345.1"},
        {"swarm_id": "2222", "transaction_id": "12345.2", "action": "LEAVE"},
    ]
    msg = decode_request(request(2, "DISCONNECT", disconnect={"swarm_action": actions}))
    assert isinstance(msg, DisconnectRequest)
    assert [s.transaction_id for s in msg.swarms] == ["12345.1", "12345.2"]
    # "action": "LEAVE" means nothing in a DISCONNECT: dropped, as the XML codec drops it.
    assert msg.swarms[1] == SwarmAction(swarm_id="2222", transaction_id="12345.2")


def test_v2_disconnect_from_the_system_is_written_as_nil() -> None:
    msg = DisconnectRequest(scope=DisconnectScope.SYSTEM, **V2_IDS)
    body = orjson.loads(encode_request(msg))["PPSPTrackerProtocol"]
    assert body["disconnect"] == {"swarm_id": "nil"}
    everything = DisconnectRequest(scope=DisconnectScope.ALL_SWARMS, **V2_IDS)
    assert orjson.loads(encode_request(everything))["PPSPTrackerProtocol"]["disconnect"] == {
        "swarm_id": "ALL"
    }
    named = DisconnectRequest(
        scope=DisconnectScope.SWARMS,
        swarms=(SwarmAction(swarm_id="s", peer_mode=PeerMode.SEED),),
        **V2_IDS,
    )
    assert orjson.loads(encode_request(named))["PPSPTrackerProtocol"]["disconnect"] == {
        "swarm_action": [{"swarm_id": "s"}]
    }


@pytest.mark.parametrize(
    "disconnect",
    [
        {"swarm_id": ["ALL", "1"]},
        {"swarm_id": ["1", "nil"]},
        {"swarm_id": ["nil", "ALL"]},
        {"swarm_action": [{"swarm_id": "nil"}, {"swarm_id": "1"}]},
        {"swarm_id": ["1", "1"]},
        {"swarm_id": "1", "swarm_action": [{"swarm_id": "2"}]},
        {"swarm_action": [{"swarm_id": "1", "action": "JOIN"}]},
        "SOME",
        7,
    ],
)
def test_v2_bad_disconnect(disconnect: object) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(2, "DISCONNECT", disconnect=disconnect))


def content_map_stat(bits: str = "1011", start: int = 10) -> dict[str, object]:
    size = len(bits)
    raw = int(bits.ljust((size + 7) // 8 * 8, "0"), 2).to_bytes((size + 7) // 8, "big")
    return {
        "swarm_id": "1111",
        "representation": [
            {
                "id": "tag0",
                "segment_info": [
                    {
                        "start_index": start,
                        "end_index": start + size - 1,
                        "chunkmap_size": size,
                        "chunkmap": base64.b64encode(raw).decode(),
                    }
                ],
            }
        ],
    }


def test_v2_content_map() -> None:
    groups = [
        {"type": "STREAM_STATS", "stat": {"swarm_id": "1111", "uploaded_bytes": 1}},
        {"type": "CONTENT_MAP", "stat": [content_map_stat()]},
    ]
    msg = decode_request(request(2, "STAT_REPORT", stat_report=groups))
    assert isinstance(msg, StatReportRequest)
    assert msg.content_maps == (
        ContentMap(
            swarm_id="1111",
            representations=(
                RepresentationMap(
                    representation_id="tag0",
                    segments=(
                        SegmentMap(start_index=10, end_index=13, chunkmap_size=4, bitmap=b"\xb0"),
                    ),
                ),
            ),
        ),
    )
    assert msg.stream_stats[0].uploaded_bytes == 1
    assert decode_request(encode_request(msg)) == msg
    # A single group object is read as well as a list.
    single = request(
        2, "STAT_REPORT", stat_report={"type": "CONTENT_MAP", "stat": content_map_stat()}
    )
    assert isinstance(m := decode_request(single), StatReportRequest)
    assert m.content_maps == msg.content_maps


def test_content_map_ignored_in_v1_and_unknown_groups_ignored() -> None:
    groups = [
        {"type": "CONTENT_MAP", "stat": [content_map_stat()]},
        {"type": "LINK_STATUS", "stat": [{"up": True}]},
    ]
    msg = decode_request(request(1, "STAT_REPORT", stat_report=groups))
    assert msg == StatReportRequest(version=V1, transaction_id="t1", peer_id="p1")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(chunkmap_size=5),
        lambda s: s.update(chunkmap="!!!"),
        lambda s: s.update(chunkmap="AAAA"),
        lambda s: s.update(end_index=1),
        lambda s: s.update(end_index=fields.MAX_CHUNKMAP_BITS + 10),
        lambda s: s.pop("chunkmap"),
        lambda s: s.update(chunkmap=7),
    ],
)
def test_bad_segment(mutate: object) -> None:
    stat = content_map_stat()
    segment = stat["representation"][0]["segment_info"][0]  # type: ignore[index]
    mutate(segment)  # type: ignore[operator]
    data = request(2, "STAT_REPORT", stat_report=[{"type": "CONTENT_MAP", "stat": [stat]}])
    with pytest.raises(BadRequest):
        decode_request(data)


def test_chunkmap_size_may_be_left_out() -> None:
    stat = content_map_stat()
    del stat["representation"][0]["segment_info"][0]["chunkmap_size"]  # type: ignore[index]
    msg = decode_request(
        request(2, "STAT_REPORT", stat_report=[{"type": "CONTENT_MAP", "stat": stat}])
    )
    assert isinstance(msg, StatReportRequest)
    assert msg.content_maps[0].representations[0].segments[0].chunkmap_size == 4


def test_v2_find_with_content_group() -> None:
    scope = {"representation_id": "tag4", "start_index": 110, "end_index": 150}
    msg = decode_request(request(2, "FIND", find={"swarm_id": "1111", "content_group": scope}))
    assert isinstance(msg, FindRequest)
    assert msg.content_group == (
        RepresentationScope(representation_id="tag4", start_index=110, end_index=150),
    )
    # Version 1 has no content group: the member is unknown there and ignored.
    v1 = decode_request(request(1, "FIND", find={"swarm_id": "1111", "content_group": scope}))
    assert isinstance(v1, FindRequest) and v1.content_group == ()


# --- encoding what version 1 cannot say --------------------------------------------------------


def test_v1_cannot_encode_extension_messages() -> None:
    scope = (RepresentationScope(representation_id="a", start_index=0),)
    segment = SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=b"\xff")
    content_map = ContentMap(
        swarm_id="s",
        representations=(RepresentationMap(representation_id="a", segments=(segment,)),),
    )
    join = SwarmAction(swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH)
    impossible: list[AnyRequest] = [
        JoinRequest(swarms=(SwarmAction(swarm_id="s", peer_mode=PeerMode.SEED),), **V2_IDS),
        DisconnectRequest(scope=DisconnectScope.SYSTEM, **V2_IDS),
        ConnectRequest(**V2_IDS),
        ConnectRequest(swarm_actions=(join,), content_group=scope, **V2_IDS),
        FindRequest(swarm_id="s", content_group=scope, **V2_IDS),
        StatReportRequest(content_maps=(content_map,), **V2_IDS),
    ]
    for msg in impossible:
        # Fine as version 2, impossible as version 1.
        assert decode_request(encode_request(msg)) == msg
        with pytest.raises(LocalProtocolError):
            encode_request(replace(msg, version=V1))


def test_encoder_refuses_invalid_fields() -> None:
    bad: list[AnyRequest] = [
        FindRequest(swarm_id="", **V2_IDS),
        FindRequest(swarm_id="a\nb", **V2_IDS),
        ConnectRequest(
            peer_addresses=(PeerAddress(ip="999.1.1.1", port=80),),
            **V2_IDS,
        ),
        ConnectRequest(
            peer_addresses=(PeerAddress(ip="10.0.0.1", port=0),),
            **V2_IDS,
        ),
        DisconnectRequest(scope=DisconnectScope.SWARMS, **V2_IDS),
        DisconnectRequest(
            scope=DisconnectScope.SWARMS,
            swarms=(SwarmAction(swarm_id="ALL"),),
            **V2_IDS,
        ),
        StatReportRequest(
            stream_stats=(StreamStatistics(uploaded_bytes=1, extra=(("uploaded_bytes", "2"),)),),
            **V2_IDS,
        ),
        StatReportRequest(
            content_maps=(
                ContentMap(
                    swarm_id="s",
                    representations=(
                        RepresentationMap(
                            representation_id="r",
                            segments=(
                                SegmentMap(
                                    start_index=0, end_index=7, chunkmap_size=9, bitmap=b"\xff"
                                ),
                            ),
                        ),
                    ),
                ),
            ),
            **V2_IDS,
        ),
    ]
    for msg in bad:
        with pytest.raises(LocalProtocolError):
            encode_request(msg)


# --- responses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [c for c in TrackerErrorCode if c.json_code == int(c)])
def test_error_response_round_trip(code: TrackerErrorCode) -> None:
    msg = ErrorResponse(version=V1, transaction_id="12345", code=code)
    body = orjson.loads(encode_response(msg))
    assert body == {
        "PPSPTrackerProtocol": {
            "version": 1,
            "response_type": 1,
            "error_code": int(code),
            "transaction_id": "12345",
        }
    }
    assert decode_response(encode_response(msg)) == msg


def test_error_codes_without_json_code_become_bad_request() -> None:
    msg = ErrorResponse(version=V2, transaction_id=None, code=TrackerErrorCode.NOT_FOUND)
    body = orjson.loads(encode_response(msg))["PPSPTrackerProtocol"]
    assert body == {"version": 2, "response_type": 1, "error_code": 1}
    decoded = decode_response(encode_response(msg))
    assert isinstance(decoded, ErrorResponse) and decoded.code is TrackerErrorCode.BAD_REQUEST
    assert decoded.transaction_id is None


@pytest.mark.parametrize("error_code", [0, 7, None, "x"])
def test_bad_error_code(error_code: object) -> None:
    with pytest.raises(BadRequest):
        decode_response(root(version=1, response_type=1, error_code=error_code))


def test_success_with_error_code_is_bad() -> None:
    with pytest.raises(BadRequest):
        decode_response(root(version=1, response_type=0, error_code=3, transaction_id="1"))


def test_non_json_error_statuses() -> None:
    cases = {
        400: TrackerErrorCode.BAD_REQUEST,
        401: TrackerErrorCode.AUTHENTICATION_REQUIRED,
        403: TrackerErrorCode.FORBIDDEN,
        404: TrackerErrorCode.NOT_FOUND,
        413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
        418: TrackerErrorCode.BAD_REQUEST,
        500: TrackerErrorCode.INTERNAL_ERROR,
        502: TrackerErrorCode.INTERNAL_ERROR,
        503: TrackerErrorCode.SERVICE_UNAVAILABLE,
    }
    for status, code in cases.items():
        msg = decode_response(b"<html>nope</html>", status, "Reason")
        assert msg == ErrorResponse(version=V1, transaction_id=None, code=code, reason="Reason")
    msg = decode_response(b"", 400, "PPSP version 1.0")
    assert isinstance(msg, ErrorResponse) and msg.code is TrackerErrorCode.UNSUPPORTED_VERSION


def test_json_error_body_with_http_error_status() -> None:
    body = root(version=1, response_type=1, error_code=3, transaction_id="9")
    msg = decode_response(body, 403, "Forbidden")
    assert msg == ErrorResponse(
        version=V1, transaction_id="9", code=TrackerErrorCode.FORBIDDEN, reason="Forbidden"
    )
    # A success body under an error status: the status wins.
    success = example("draft12-stat-report-response.json")
    assert isinstance(decode_response(success, 500, ""), ErrorResponse)


def test_non_json_body_with_200_is_bad() -> None:
    with pytest.raises(BadRequest):
        decode_response(b"<html/>", 200, "OK")


def test_peers_grouped_under_their_results_and_synthesized() -> None:
    addr = (PeerAddress(ip="192.0.2.1", port=1),)
    msg = TrackerResponse(
        version=V2,
        transaction_id="t",
        results=(
            ActionResult(swarm_id="a", transaction_id="t.1"),
            ActionResult(swarm_id="b", status=400),
            ActionResult(transaction_id="t.0"),
        ),
        requester=PeerInfo(peer_id="me", addresses=addr * 2),
        peers=(
            PeerInfo(peer_id="1", addresses=addr, swarm_id="a"),
            PeerInfo(peer_id="2", addresses=addr, swarm_id="c"),
            PeerInfo(peer_id="3", addresses=addr, swarm_id="a"),
        ),
    )
    body = orjson.loads(encode_response(msg))["PPSPTrackerProtocol"]
    # The requester's peer_addr is one object (RFC 7846 3.3.4): without a REFLEXIVE one, the first.
    assert body["peer_addr"] == {
        "ip_address": {"address_type": "ipv4", "address": "192.0.2.1"},
        "port": 1,
    }
    results = body["swarm_result"]
    assert [r.get("swarm_id") for r in results] == ["a", "b", None, "c"]
    assert [r["result"] for r in results] == [0, 1, 0, 0]
    assert results[0]["transaction_id"] == "t.1"
    assert [p["peer_id"] for p in results[0]["peer_group"]["peer_info"]] == ["1", "3"]
    assert isinstance(results[0]["peer_group"]["peer_info"][0]["peer_addr"], dict)
    decoded = decode_response(encode_response(msg))
    assert isinstance(decoded, TrackerResponse)
    assert decoded.requester == PeerInfo(addresses=addr)
    assert [p.peer_id for p in decoded.peers] == ["1", "3", "2"]
    assert decoded.results[3] == ActionResult(swarm_id="c")


def test_response_bad_result_and_peer() -> None:
    for result in (
        {"swarm_id": "1", "result": 2},
        {"swarm_id": "1"},
        {"swarm_id": 1.5, "result": 0},
    ):
        with pytest.raises(BadRequest) as info:
            decode_response(
                root(version=1, response_type=0, transaction_id="x", swarm_result=result)
            )
        assert info.value.transaction_id == "x"
    bad_peer = {"swarm_id": "1", "result": 0, "peer_group": {"peer_info": [{"peer_addr": 5}]}}
    with pytest.raises(BadRequest):
        decode_response(root(version=1, response_type=0, transaction_id="x", swarm_result=bad_peer))


@pytest.mark.parametrize("version", [3, 0])
def test_response_unsupported_version(version: int) -> None:
    with pytest.raises(UnsupportedVersion):
        decode_response(root(version=version, response_type=0, transaction_id="x"))


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        {"ip_address": {"address_type": "ipv4", "address": "2001:db8::1"}, "port": 80},
        {"ip_address": {"address_type": "ipv6", "address": "192.0.2.1"}, "port": 80},
        {"ip_address": {"address_type": "ipv5", "address": "192.0.2.1"}, "port": 80},
        {"ip_address": {"address": "example.com"}, "port": 80},
        {"ip_address": {"address": "fe80::1%eth0"}, "port": 80},
        {"ip_address": {"address": "192.0.2.1"}, "port": 0},
        {"ip_address": {"address": "192.0.2.1"}, "port": 65536},
        {"ip_address": {"address": "192.0.2.1"}},
        {"ip_address": "192.0.2.1", "port": 80},
        {"ip_address": {"address": "192.0.2.1"}, "port": 80, "type": "host"},
    ],
)
def test_bad_addresses(addr: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(2, "CONNECT", connect={"peer_addr": addr}))


def test_address_type_inferred_and_asn_number() -> None:
    addr = {"ip_address": {"address": "2001:db8::7"}, "port": "8080", "asn": 64496}
    msg = decode_request(request(2, "CONNECT", connect={"peer_addr": addr}))
    assert isinstance(msg, ConnectRequest)
    assert msg.peer_addresses == (
        PeerAddress(ip="2001:db8::7", port=8080, family=AddressFamily.IPV6, asn="64496"),
    )


# --- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b'{"PPSPTrackerProtocol": {"version": 1, "peer_id": "\xc3\x28"}}',
        b"\xef\xbb\xbf{}",
        b"null",
        b"[]",
        b'"PPSPTrackerProtocol"',
        b"{}",
        b'{"PPSPTrackerProtocol": []}',
        b'{"PPSPTrackerProtocol": {"version": NaN}}',
        b'{"PPSPTrackerProtocol": {"version": 1e999}}',
        b'{"PPSPTrackerProtocol": {"version": 99999999999999999999999}}',
        b'{"PPSPTrackerProtocol": {"version": 1, "request_type": "FIND"',
        b'{"PPSPTrackerProtocol": {"version": 1, "x": "\\ud800"}}',
    ],
)
def test_garbage_is_bad_request(data: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_request(data)
    with pytest.raises(BadRequest):
        decode_response(data)


def test_huge_integers_rejected() -> None:
    template = (
        b'{"PPSPTrackerProtocol": {"version": 1, "request_type": "FIND", "transaction_id": "t1",'
        b' "peer_id": "p", "find": {"swarm_id": "1", "peer_num": {"peer_count": %b}}}}'
    )
    assert decode_request(template % str(2**63 - 1).encode())
    for value in (b"9223372036854775808", b"18446744073709551615", b"1" * 40, b"-1", b"1.5"):
        with pytest.raises(BadRequest) as info:
            decode_request(template % value)
        assert info.value.transaction_id == "t1"


def test_invalid_utf8_carries_no_traceback_detail() -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(b'{"PPSPTrackerProtocol": {"version": 1, "peer_id": "\xff"}}')
    assert info.value.code.json_code == 1


def test_control_characters_and_long_strings() -> None:
    with pytest.raises(BadRequest):
        decode_request(find_v1(swarm_id="a\u0000b"))
    with pytest.raises(BadRequest):
        decode_request(find_v1(swarm_id="x" * (fields.MAX_TOKEN_LENGTH + 1)))
    assert decode_request(find_v1(swarm_id="x" * fields.MAX_TOKEN_LENGTH))


def test_a_member_named_twice_is_refused() -> None:
    # Two parsers keeping different members of a name would read two different requests.
    for data in (
        b'{"PPSPTrackerProtocol": {"version": 1, "version": 2, "request_type": "FIND"}}',
        request(1, "FIND", find={"swarm_id": "1111"})[:-2] + b', "peer_id": "p2"}}',
        find_v1().replace(b'"1111"', b'"1111", "swarm_id": "2"'),
        # Colons inside strings (IPv6 addresses, escapes) are not members.
        b'{"PPSPTrackerProtocol": {"version": 1, "x": "a:b\\":", "x": 1}}',
    ):
        with pytest.raises(BadRequest, match="named twice"):
            decode_request(data)
    addr = {"ip_address": {"address_type": "ipv6", "address": "2001:db8::1:2"}, "port": 80}
    connect = request(2, "CONNECT", connect={"peer_addr": addr, "x": "a:b:c"})
    assert decode_request(connect)
    assert decode_request(connect[:-2] + b', "y": "\\":"}}')


def test_deep_nesting() -> None:
    for depth in (fields.MAX_JSON_DEPTH, 500, 1023, 5000, 100_000):
        nested = b"[" * depth + b"]" * depth
        data = b'{"PPSPTrackerProtocol": {"version": 1, "x": ' + nested + b"}}"
        with pytest.raises(BadRequest):
            decode_request(data)
    # Brackets inside strings are not nesting.
    assert decode_request(find_v1(swarm_id="[" * 100))
    # Nesting up to the bound is fine in an unknown member.
    nested = b"[" * (fields.MAX_JSON_DEPTH - 3) + b"]" * (fields.MAX_JSON_DEPTH - 3)
    ok = request(1, "FIND", find={"swarm_id": "1"})[:-2] + b',"x":' + nested + b"}}"
    assert decode_request(ok)


def test_nesting_bound_is_exact_whether_or_not_brackets_are_counted_first() -> None:
    # A document with at most MAX_JSON_DEPTH brackets is passed without looking for its depth;
    # one with more is measured.  At the bound it is accepted, one level deeper refused.
    base = request(1, "FIND", find={"swarm_id": "1"})[:-2]  # "x" goes in at depth 2
    brackets = base.count(b"{") + base.count(b"[")
    bound = fields.MAX_JSON_DEPTH
    for extra in (bound - brackets, bound - brackets + 1, bound - 2, bound - 1):
        data = base + b',"x":' + b"[" * extra + b"]" * extra + b"}}"
        if 2 + extra <= bound:
            assert decode_request(data)
        else:
            with pytest.raises(BadRequest):
                decode_request(data)
    # Brackets in strings count for the first look, not for the depth.
    assert decode_request(request(1, "FIND", find={"swarm_id": "[" * 100}))


def test_million_element_arrays_rejected_fast() -> None:
    actions = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"
    data = (
        b'{"PPSPTrackerProtocol": {"version": 1, "request_type": "CONNECT",'
        b' "transaction_id": "t", "peer_id": "p", "connect": {"swarm_action": ' + actions + b"}}}"
    )
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge):
        decode_request(data)
    with pytest.raises(BadRequest) as info:
        decode_request(data, max_bytes=len(data))
    assert "more than" in str(info.value)
    assert info.value.transaction_id == "t"
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("member", "limit"),
    [
        ("swarm_action", fields.MAX_SWARM_ACTIONS),
        ("peer_addr", fields.MAX_ADVERTISED_ADDRESSES),
    ],
)
def test_bounds(member: str, limit: int) -> None:
    def items(count: int) -> list[object]:
        if member == "swarm_action":
            return [{"swarm_id": str(i), "action": "LEAVE"} for i in range(count)]
        return [{"ip_address": {"address": "192.0.2.1"}, "port": 1}] * count

    connect: dict[str, object] = {"swarm_action": [{"swarm_id": "1", "action": "LEAVE"}]}
    connect[member] = items(limit)
    assert decode_request(request(1, "CONNECT", connect=connect))
    connect[member] = items(limit + 1)
    with pytest.raises(BadRequest):
        decode_request(request(1, "CONNECT", connect=connect))


def test_stat_bound_over_groups() -> None:
    stat = {"swarm_id": "1"}
    half = fields.MAX_STATS // 2 + 1
    group = {"type": "STREAM_STATS", "stat": [stat] * half}
    with pytest.raises(BadRequest):
        decode_request(request(1, "STAT_REPORT", stat_report=[group, group]))


def test_too_many_stat_extensions() -> None:
    stat = {f"x{i}": i for i in range(fields.MAX_EXTRA_STATISTICS + 1)}
    with pytest.raises(BadRequest):
        decode_request(
            request(1, "STAT_REPORT", stat_report={"type": "STREAM_STATS", "stat": stat})
        )


def test_transaction_id_on_errors_only_when_readable() -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(request(1, "FIND", transaction_id={"no": 1}))
    assert info.value.transaction_id is None
    with pytest.raises(BadRequest) as info:
        decode_request(request(1, "FIND", transaction_id=12345))
    assert info.value.transaction_id == "12345"


# --- peer lists as RFC 7846 types them, and the field rules shared with the XML codecs ---------

HOST_ADDR = PeerAddress(ip="192.0.2.1", port=1, type=AddressType.HOST)
V6_ADDR = PeerAddress(ip="2001:db8::1", port=2, family=AddressFamily.IPV6)
REFLEXIVE_ADDR = PeerAddress(ip="198.51.100.9", port=3, type=AddressType.REFLEXIVE)


def test_a_peer_with_two_addresses_is_two_peer_info_entries() -> None:
    """RFC 7846 3.2.4: ppsp_tp_peer_info_t is {peer_id, peer_addr} with one peer_addr."""
    peer = PeerInfo(peer_id="two", addresses=(HOST_ADDR, V6_ADDR), swarm_id="s")
    msg = TrackerResponse(
        version=V1,
        transaction_id="t",
        results=(ActionResult(swarm_id="s"),),
        requester=PeerInfo(peer_id="me", addresses=(HOST_ADDR, REFLEXIVE_ADDR)),
        peers=(peer, PeerInfo(peer_id="one", addresses=(HOST_ADDR,), swarm_id="s")),
    )
    for check in (True, False):
        body = orjson.loads(encode_response(msg, check=check))["PPSPTrackerProtocol"]
        entries = body["swarm_result"][0]["peer_group"]["peer_info"]
        assert [e["peer_id"] for e in entries] == ["two", "two", "one"]
        assert all(isinstance(e["peer_addr"], dict) for e in entries)
        assert [e["peer_addr"]["port"] for e in entries] == [1, 2, 1]
        # The requester's top-level peer_addr is one object: the address the tracker saw.
        assert body["peer_addr"]["type"] == "REFLEXIVE"
    decoded = decode_response(encode_response(msg))
    assert isinstance(decoded, TrackerResponse)
    assert decoded.peers == msg.peers  # the entries of one peer merge back into one
    assert decoded.requester == PeerInfo(addresses=(REFLEXIVE_ADDR,))


def test_peer_lists_of_earlier_releases_are_still_read() -> None:
    addr = {"ip_address": {"address_type": "ipv4", "address": "192.0.2.1"}, "port": 1}
    addr6 = {"ip_address": {"address_type": "ipv6", "address": "2001:db8::1"}, "port": 2}
    result = {
        "swarm_id": "s",
        "result": 0,
        "peer_group": {"peer_info": [{"peer_id": "a", "peer_addr": [addr, addr6]}]},
    }
    data = root(
        version=2,
        response_type=0,
        error_code=0,
        transaction_id="t",
        peer_addr=[addr, addr6],
        swarm_result=result,
    )
    decoded = decode_response(data)
    assert isinstance(decoded, TrackerResponse)
    assert [len(p.addresses) for p in decoded.peers] == [2]
    # The requester is one address: of an array, the REFLEXIVE one, else the first.
    assert decoded.requester is not None
    assert [a.ip for a in decoded.requester.addresses] == ["192.0.2.1"]


def test_entries_of_one_peer_merge_only_within_their_swarm() -> None:
    addr = {"ip_address": {"address": "192.0.2.1"}, "port": 1}
    other = {"ip_address": {"address": "192.0.2.2"}, "port": 2}
    results = [
        {
            "swarm_id": "s",
            "result": 0,
            "peer_group": {
                "peer_info": [
                    {"peer_id": "a", "peer_addr": addr},
                    {"peer_id": "b", "peer_addr": addr},
                    {"peer_id": "a", "peer_addr": other},
                ]
            },
        },
        {
            "swarm_id": "t",
            "result": 0,
            "peer_group": {"peer_info": {"peer_id": "a", "peer_addr": addr}},
        },
    ]
    decoded = decode_response(
        root(version=1, response_type=0, transaction_id="x", swarm_result=results)
    )
    assert isinstance(decoded, TrackerResponse)
    assert [(p.peer_id, p.swarm_id, len(p.addresses)) for p in decoded.peers] == [
        ("a", "s", 2),
        ("b", "s", 1),
        ("a", "t", 1),
    ]


@pytest.mark.parametrize(
    "entries",
    [
        [{"peer_addr": {"ip_address": {"address": "192.0.2.1"}, "port": 1}}],  # no peer_id
        [{"peer_id": "a"}],  # no peer_addr
        [{"peer_id": "a", "peer_addr": []}],
        # 17 addresses for one peer once its entries are merged.
        [{"peer_id": "a", "peer_addr": {"ip_address": {"address": "192.0.2.1"}, "port": 1}}]
        * (fields.MAX_PEER_ADDRESSES + 1),
    ],
)
def test_bad_peer_info_entries(entries: list[object]) -> None:
    result = {"swarm_id": "s", "result": 0, "peer_group": {"peer_info": entries}}
    with pytest.raises(BadRequest):
        decode_response(root(version=1, response_type=0, transaction_id="x", swarm_result=result))


def test_listed_peer_count_counts_peers_not_entries() -> None:
    def entries(peer: int) -> list[dict[str, object]]:
        return [
            {
                "peer_id": str(peer),
                "peer_addr": {"ip_address": {"address": f"192.0.2.{k}"}, "port": 1},
            }
            for k in range(2)
        ]

    def answer(peers: int) -> bytes:
        listed = [e for peer in range(peers) for e in entries(peer)]
        result = {"swarm_id": "s", "result": 0, "peer_group": {"peer_info": listed}}
        return root(version=1, response_type=0, transaction_id="x", swarm_result=result)

    decoded = decode_response(answer(fields.MAX_LISTED_PEERS), max_bytes=1 << 22)
    assert isinstance(decoded, TrackerResponse) and len(decoded.peers) == fields.MAX_LISTED_PEERS
    with pytest.raises(BadRequest):
        decode_response(answer(fields.MAX_LISTED_PEERS + 1), max_bytes=1 << 22)
    addresses = (HOST_ADDR, V6_ADDR)
    too_many = tuple(
        PeerInfo(peer_id=str(i), addresses=addresses, swarm_id="s")
        for i in range(fields.MAX_LISTED_PEERS + 1)
    )
    for check in (True, False):
        with pytest.raises(LocalProtocolError):
            encode_response(
                TrackerResponse(version=V1, transaction_id="t", peers=too_many), check=check
            )


@pytest.mark.parametrize("word", ["ALL", "nil"])
@pytest.mark.parametrize(
    ("version", "request_type", "members"),
    [
        (1, "FIND", {"find": {"swarm_id": "{}"}}),
        (2, "JOIN", {"join": {"swarm_action": [{"swarm_id": "{}", "peer_mode": "LEECH"}]}}),
        (1, "CONNECT", {"connect": {"swarm_action": [{"swarm_id": "{}", "action": "LEAVE"}]}}),
        (1, "STAT_REPORT", {"stat_report": {"type": "STREAM_STATS", "stat": {"swarm_id": "{}"}}}),
        (
            2,
            "STAT_REPORT",
            {
                "stat_report": {
                    "type": "CONTENT_MAP",
                    "stat": {
                        "swarm_id": "{}",
                        "representation": {
                            "id": "r",
                            "segment_info": {"start_index": 0, "end_index": 7, "chunkmap": "gA=="},
                        },
                    },
                }
            },
        ),
    ],
)
def test_all_and_nil_are_never_a_swarm_id(
    word: str, version: int, request_type: str, members: dict[str, object]
) -> None:
    body = orjson.loads(orjson.dumps(members).replace(b"{}", word.encode()))
    with pytest.raises(BadRequest):
        decode_request(request(version, request_type, **body))


def test_reserved_swarm_ids_in_answers_are_refused() -> None:
    result = {"swarm_id": "ALL", "result": 0}
    with pytest.raises(BadRequest):
        decode_response(root(version=1, response_type=0, transaction_id="x", swarm_result=result))
    peer = PeerInfo(peer_id="a", addresses=(HOST_ADDR,), swarm_id="nil")
    for check in (True, False):
        with pytest.raises(LocalProtocolError):
            encode_response(
                TrackerResponse(version=V1, transaction_id="t", peers=(peer,)), check=check
            )


@pytest.mark.parametrize(
    "peer_id",
    [
        "x" * 300,  # accepted up to 512 before: then no XML answer could list this peer
        "a b",
        "tab\there",
        "",
        "\u0085",  # C1 control (NEXT LINE)
        "\ufffe",  # not a character XML can carry
    ],
)
def test_identifiers_follow_the_shared_token_rule(peer_id: str) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(1, "FIND", peer_id=peer_id, find={"swarm_id": "s"}))


def test_other_string_members_follow_the_shared_token_rule() -> None:
    addr: dict[str, object] = {"ip_address": {"address": "192.0.2.1"}, "port": 1}
    action = {"swarm_id": "s", "action": "JOIN", "peer_mode": "LEECH"}
    for member, value in (
        ("asn", "AS 1"),
        ("connection", ""),
        ("peer_protocol", "x" * 257),
    ):
        connect = {"swarm_action": [action], "peer_addr": [{**addr, member: value}]}
        with pytest.raises(BadRequest):
            decode_request(request(1, "CONNECT", connect=connect))
    with pytest.raises(BadRequest):
        decode_request(find_v1(peer_num={"concurrent_links": "a lot"}))


def test_a_swarm_named_twice_is_a_bad_request() -> None:
    """As in the XML codec, which could not write such a request."""
    action = {"swarm_id": "s", "action": "JOIN", "peer_mode": "LEECH"}
    with pytest.raises(BadRequest):
        decode_request(request(1, "CONNECT", connect={"swarm_action": [action, action]}))
    join = {"swarm_action": [{"swarm_id": "s", "peer_mode": "SEEDER"}] * 2}
    with pytest.raises(BadRequest):
        decode_request(request(2, "JOIN", join=join))
    with pytest.raises(BadRequest):
        decode_request(
            request(2, "DISCONNECT", disconnect={"swarm_action": [{"swarm_id": "s"}] * 2})
        )


def test_extension_stats_other_encodings_cannot_carry_are_ignored() -> None:
    stat = {
        "swarm_id": "s",
        "online_time": 5,
        "UploadedBytes": 3,  # the XML name of a standard statistic
        "not a name": 1,
        "Durée": 2,
        "label": "two words",
        "ok": "token",
    }
    msg = decode_request(
        request(1, "STAT_REPORT", stat_report={"type": "STREAM_STATS", "stat": stat})
    )
    assert isinstance(msg, StatReportRequest)
    assert msg.stream_stats == (
        StreamStatistics(swarm_id="s", extra=(("online_time", "5"), ("ok", "token"))),
    )


@pytest.mark.parametrize(
    "stat",
    [
        {"swarm_id": "s", "representation": []},
        {"swarm_id": "s"},
        {"swarm_id": "s", "representation": {"id": "r", "segment_info": []}},
        {"swarm_id": "s", "representation": {"id": "r"}},
    ],
)
def test_empty_content_maps_are_bad_requests(stat: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        decode_request(request(2, "STAT_REPORT", stat_report={"type": "CONTENT_MAP", "stat": stat}))


def test_segment_bound_counts_the_whole_report() -> None:
    segment = {"start_index": 0, "end_index": 7, "chunkmap": "gA=="}
    half = fields.MAX_SEGMENTS // 2 + 1
    stat = {"swarm_id": "s", "representation": [{"id": "r", "segment_info": [segment] * half}]}
    group = {"type": "CONTENT_MAP", "stat": [stat, {**stat, "swarm_id": "t"}]}
    with pytest.raises(BadRequest):
        decode_request(request(2, "STAT_REPORT", stat_report=group), max_bytes=1 << 22)
    ok = {"type": "CONTENT_MAP", "stat": [stat]}
    assert decode_request(request(2, "STAT_REPORT", stat_report=ok), max_bytes=1 << 22)


def test_chunk_maps_with_bits_set_past_their_size_are_not_written() -> None:
    segment = SegmentMap(start_index=0, end_index=3, chunkmap_size=4, bitmap=b"\xff")
    msg = StatReportRequest(
        content_maps=(
            ContentMap(
                swarm_id="s",
                representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
            ),
        ),
        **V2_IDS,
    )
    with pytest.raises(LocalProtocolError):
        encode_request(msg)


def test_action_transaction_ids_must_leave_the_root_recognisable() -> None:
    """As in XML (whose answers could not carry them), whatever the answer's encoding."""
    join = {"swarm_action": [{"swarm_id": "s", "peer_mode": "LEECH", "transaction_id": "1.0"}]}
    with pytest.raises(BadRequest):
        decode_request(request(2, "JOIN", join=join))
    ok = decode_request(request(2, "JOIN", transaction_id="1.0", join=join))
    assert isinstance(ok, JoinRequest)
