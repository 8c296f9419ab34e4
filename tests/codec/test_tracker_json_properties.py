"""Property tests of the JSON tracker codec: round trips of every message, and fuzzing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.tracker_json import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import TrackerErrorCode, TrackerProtocolError
from ppsp.wire.fields import RESERVED_STATISTIC_NAMES, RESERVED_SWARM_IDS, canonical_ip
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

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "data" / "tracker-examples").glob("draft12-*.json")
)
V1 = ProtocolVersion.V1_0
V2 = ProtocolVersion.V1_1
# PPSP_JSON_EXAMPLES raises the number of examples for a long fuzzing run.
SETTINGS = settings(
    max_examples=int(os.environ.get("PPSP_JSON_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- strategies of valid messages --------------------------------------------------------------

# Identifiers and other string values are tokens (ppsp.wire.fields): letters, digits,
# punctuation and symbols of all of Unicode, never whitespace or controls.
text = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12)
ident = text
swarm_id = ident.filter(lambda s: s not in RESERVED_SWARM_IDS)
# Per-action transaction IDs: ending in ".0" is for the root (ppsp.wire.fields.clear_action_ids).
action_tid = ident.filter(lambda t: not t.endswith(".0"))
uint = st.integers(0, 2**63 - 1)
small = st.integers(0, 10**9)
decimal_or_text = st.one_of(small.map(str), text, st.sampled_from(["HIGH", "NORMAL", "05", "-3"]))


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def peer_addresses(draw: st.DrawFn) -> PeerAddress:
    v6 = draw(st.booleans())
    ip = draw(st.ip_addresses(v=6 if v6 else 4))
    return PeerAddress(
        ip=canonical_ip(str(ip))[0],  # the form every reader gives
        port=draw(st.integers(1, 65535)),
        family=AddressFamily.IPV6 if v6 else AddressFamily.IPV4,
        priority=draw(optional(small)),
        type=draw(optional(st.sampled_from(AddressType))),
        connection=draw(optional(text)),
        asn=draw(optional(st.one_of(small.map(str), text))),
        peer_protocol=draw(optional(text)),
    )


peer_nums = st.builds(
    PeerNum,
    count=optional(st.integers(0, 100)),
    ability_nat=optional(st.sampled_from(["NO_NAT", "STUN", "TURN", "5"])),
    concurrent_links=optional(decimal_or_text),
    online_time=optional(decimal_or_text),
    upload_bandwidth=optional(decimal_or_text),
)


@st.composite
def scopes(draw: st.DrawFn) -> RepresentationScope:
    start = draw(small)
    end = draw(optional(st.integers(start, start + 1000)))
    return RepresentationScope(representation_id=draw(ident), start_index=start, end_index=end)


content_groups = st.lists(scopes(), max_size=3).map(tuple)


@st.composite
def connect_actions(draw: st.DrawFn) -> SwarmAction:
    action = draw(st.sampled_from(SwarmActionType))
    mode = draw(st.sampled_from(PeerMode))
    if action is SwarmActionType.LEAVE:
        mode = draw(optional(st.just(mode)))
    return SwarmAction(
        swarm_id=draw(swarm_id),
        action=action,
        peer_mode=mode,
        transaction_id=draw(optional(action_tid)),
    )


# The members a request type uses (a JOIN's action and a DISCONNECT's action and mode are
# neither written nor kept, as in the XML codec); a swarm is named once per request.
join_actions = st.builds(
    SwarmAction,
    swarm_id=swarm_id,
    peer_mode=st.sampled_from(PeerMode),
    transaction_id=optional(action_tid),
)
leave_actions = st.builds(SwarmAction, swarm_id=swarm_id, transaction_id=optional(action_tid))


def _swarm(action: SwarmAction) -> str:
    return action.swarm_id


# Names every encoding can carry (ppsp.wire.fields.EXTRA_STATISTIC_NAME_RE, not reserved).
extra_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda name: name not in RESERVED_STATISTIC_NAMES
)
stream_stats = st.builds(
    StreamStatistics,
    swarm_id=optional(swarm_id),
    uploaded_bytes=optional(uint),
    downloaded_bytes=optional(uint),
    available_bandwidth=optional(uint),
    concurrent_links=optional(uint),
    extra=st.lists(
        st.tuples(extra_names, decimal_or_text),
        max_size=3,
        unique_by=lambda item: item[0],
    ).map(tuple),
)


@st.composite
def segments(draw: st.DrawFn) -> SegmentMap:
    start = draw(small)
    size = draw(st.integers(1, 70))
    raw = bytearray(draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8)))
    if size % 8:
        raw[-1] &= (0xFF << (8 - size % 8)) & 0xFF
    return SegmentMap(
        start_index=start, end_index=start + size - 1, chunkmap_size=size, bitmap=bytes(raw)
    )


content_maps = st.builds(
    ContentMap,
    swarm_id=swarm_id,
    representations=st.lists(
        st.builds(
            RepresentationMap,
            representation_id=ident,
            segments=st.lists(segments(), min_size=1, max_size=3).map(tuple),
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
)


def ids(version: ProtocolVersion) -> dict[str, Any]:
    return {"version": st.just(version), "transaction_id": ident, "peer_id": ident}


def requests_of(version: ProtocolVersion) -> st.SearchStrategy[AnyRequest]:
    """Every request the given version can express."""
    v2 = version is V2
    connect = st.builds(
        ConnectRequest,
        peer_addresses=st.lists(peer_addresses(), max_size=3).map(tuple),
        swarm_actions=st.lists(
            connect_actions(), min_size=0 if v2 else 1, max_size=4, unique_by=_swarm
        ).map(tuple),
        peer_num=optional(peer_nums),
        content_group=content_groups if v2 else st.just(()),
        **ids(version),
    )
    find = st.builds(
        FindRequest,
        swarm_id=swarm_id,
        peer_num=optional(peer_nums),
        content_group=content_groups if v2 else st.just(()),
        **ids(version),
    )
    stat_report = st.builds(
        StatReportRequest,
        stream_stats=st.lists(stream_stats, max_size=3).map(tuple),
        content_maps=st.lists(content_maps, max_size=2).map(tuple) if v2 else st.just(()),
        **ids(version),
    )
    if not v2:
        return st.one_of(connect, find, stat_report)
    join = st.builds(
        JoinRequest,
        swarms=st.lists(join_actions, min_size=1, max_size=4, unique_by=_swarm).map(tuple),
        peer_num=optional(peer_nums),
        content_group=content_groups,
        **ids(version),
    )
    disconnect = st.one_of(
        st.builds(
            DisconnectRequest,
            scope=st.just(DisconnectScope.SWARMS),
            swarms=st.lists(leave_actions, min_size=1, max_size=4, unique_by=_swarm).map(tuple),
            **ids(version),
        ),
        st.builds(
            DisconnectRequest,
            scope=st.sampled_from([DisconnectScope.ALL_SWARMS, DisconnectScope.SYSTEM]),
            **ids(version),
        ),
    )
    return st.one_of(connect, join, disconnect, find, stat_report)


@st.composite
def tracker_responses(draw: st.DrawFn) -> TrackerResponse:
    results = draw(
        st.lists(
            st.builds(
                ActionResult,
                transaction_id=optional(ident),
                swarm_id=optional(swarm_id),
                status=st.sampled_from([200, 400]),
            ),
            max_size=4,
            unique_by=lambda r: r.swarm_id,
        )
    )
    peers: list[PeerInfo] = []
    for result in results:
        # A listed peer has an ID and one or more addresses, and is listed once per swarm.
        for peer_id in draw(st.lists(ident, max_size=3, unique=True)):
            peers.append(
                PeerInfo(
                    peer_id=peer_id,
                    addresses=tuple(draw(st.lists(peer_addresses(), min_size=1, max_size=2))),
                    swarm_id=result.swarm_id,
                )
            )
    # The requester's top-level peer_addr is one address (RFC 7846 section 3.3.4).
    requester = draw(optional(st.lists(peer_addresses(), min_size=1, max_size=1).map(tuple)))
    return TrackerResponse(
        version=draw(st.sampled_from(ProtocolVersion)),
        transaction_id=draw(ident),
        results=tuple(results),
        requester=None if requester is None else PeerInfo(addresses=requester),
        peers=tuple(peers),
    )


error_responses = st.builds(
    ErrorResponse,
    version=st.sampled_from(ProtocolVersion),
    transaction_id=optional(ident),
    code=st.sampled_from([c for c in TrackerErrorCode if c.json_code == int(c)]),
)


# --- round trips -------------------------------------------------------------------------------


@SETTINGS
@given(requests_of(V1))
def test_v1_requests_round_trip(msg: AnyRequest) -> None:
    data = encode_request(msg)
    assert orjson.loads(data)["PPSPTrackerProtocol"]["version"] == 1
    assert decode_request(data) == msg


@SETTINGS
@given(requests_of(V2))
def test_v2_requests_round_trip(msg: AnyRequest) -> None:
    data = encode_request(msg)
    assert orjson.loads(data)["PPSPTrackerProtocol"]["version"] == 2
    assert decode_request(data) == msg


@SETTINGS
@given(st.one_of(tracker_responses(), error_responses))
def test_responses_round_trip(msg: TrackerResponse | ErrorResponse) -> None:
    assert decode_response(encode_response(msg)) == msg


# --- fuzzing: only the protocol's own errors escape, and what decodes re-encodes ---------------


def check(data: bytes) -> None:
    """Decode ``data`` both ways; a decoded message must survive encode/decode unchanged."""
    try:
        request = decode_request(data)
    except TrackerProtocolError:
        pass
    else:
        assert decode_request(encode_request(request)) == request
    for status in (200, 400):
        try:
            response = decode_response(data, status, "Bad Request")
        except TrackerProtocolError:
            continue
        if isinstance(response, ErrorResponse):
            response = ErrorResponse(
                version=response.version,
                transaction_id=response.transaction_id,
                code=TrackerErrorCode(response.code.json_code),
            )
        assert decode_response(encode_response(response)) == response


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["JOIN", "LEAVE", "SEEDER", "LEECH", "ALL", "CONTENT_MAP", "STREAM_STATS"]),
)
MEMBER_NAMES = [
    "version",
    "request_type",
    "response_type",
    "error_code",
    "transaction_id",
    "peer_id",
    "connect",
    "join",
    "disconnect",
    "find",
    "stat_report",
    "swarm_action",
    "swarm_id",
    "action",
    "peer_mode",
    "peer_num",
    "peer_count",
    "peer_addr",
    "ip_address",
    "address",
    "address_type",
    "port",
    "type",
    "stat",
    "Stat",
    "representation",
    "segment_info",
    "start_index",
    "end_index",
    "chunkmap_size",
    "chunkmap",
    "content_group",
    "representation_id",
    "swarm_result",
    "result",
    "peer_group",
    "peer_info",
    "id",
]
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(MEMBER_NAMES) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=30,
)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@SETTINGS
@given(json_values)
def test_arbitrary_json_values(value: object) -> None:
    check(orjson.dumps(value))
    check(orjson.dumps({"PPSPTrackerProtocol": value}))


@SETTINGS
@given(
    st.sampled_from([1, 2, 3, "1"]),
    st.sampled_from(["CONNECT", "JOIN", "DISCONNECT", "FIND", "STAT_REPORT", None]),
    st.dictionaries(st.sampled_from(MEMBER_NAMES), json_values, max_size=6),
)
def test_arbitrary_message_bodies(version: object, request_type: object, body: Any) -> None:
    body.update(version=version, request_type=request_type, transaction_id="t", peer_id="p")
    check(orjson.dumps({"PPSPTrackerProtocol": body}))
    body.pop("request_type")
    body["response_type"] = 0
    check(orjson.dumps({"PPSPTrackerProtocol": body}))


def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a sub-value of a JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@SETTINGS
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_examples(example: Path, data: st.DataObject) -> None:
    document = orjson.loads(example.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(document)))
        document = replaced(document, path, data.draw(json_values))
    check(orjson.dumps(document))


@SETTINGS
@given(st.sampled_from(EXAMPLES), st.data())
def test_byte_mutated_examples(example: Path, data: st.DataObject) -> None:
    raw = bytearray(example.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if kind == "flip":
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "delete":
            del raw[position : position + data.draw(st.integers(1, 8))]
        else:
            raw[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    check(bytes(raw))


def test_examples_pass_the_fuzz_check() -> None:
    for example in EXAMPLES:
        check(example.read_bytes())
