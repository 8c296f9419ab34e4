"""Property tests of the tracker XML codec: round trips and robustness against any input."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.tracker_xml import (
    MAX_INTEGER,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import TrackerErrorCode, TrackerProtocolError
from ppsp.wire.bitmap import ChunkBitmap
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

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tokens: letters, digits, punctuation and symbols of all of Unicode, so markup characters
# (< & " ') and non-ASCII text are exercised; never whitespace or controls.
tokens = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12)
# A swarm's own ID is never ALL or nil (they are DISCONNECT scopes).
swarm_tokens = tokens.filter(lambda t: t not in RESERVED_SWARM_IDS)
# Per-action transaction IDs: ending in ".0" is for the root (ppsp.wire.fields.clear_action_ids).
action_tids = tokens.filter(lambda t: not t.endswith(".0"))
small_ints = st.integers(min_value=0, max_value=2**20)
big_ints = st.one_of(small_ints, st.integers(min_value=0, max_value=MAX_INTEGER))
versions = st.sampled_from(ProtocolVersion)


@st.composite
def addresses(draw: st.DrawFn, types: st.SearchStrategy[AddressType | None]) -> PeerAddress:
    family = draw(st.sampled_from(AddressFamily))
    ip = draw(st.ip_addresses(v=4 if family is AddressFamily.IPV4 else 6))
    return PeerAddress(
        ip=canonical_ip(str(ip))[0],  # the form every reader gives
        port=draw(st.integers(min_value=1, max_value=65535)),
        family=family,
        priority=draw(st.none() | big_ints),
        type=draw(types),
        connection=draw(st.none() | tokens),
        asn=draw(st.none() | tokens),
        peer_protocol=draw(st.none() | tokens),
    )


any_address_type = st.none() | st.sampled_from(AddressType)
non_reflexive = st.none() | st.sampled_from([AddressType.HOST, AddressType.PROXY])

peer_nums = st.builds(
    PeerNum,
    count=st.none() | big_ints,
    ability_nat=st.none() | tokens,
    concurrent_links=st.none() | tokens,
    online_time=st.none() | tokens,
    upload_bandwidth=st.none() | tokens,
)


@st.composite
def scopes(draw: st.DrawFn) -> RepresentationScope:
    start = draw(big_ints)
    end = draw(st.none() | st.integers(min_value=start, max_value=MAX_INTEGER))
    return RepresentationScope(representation_id=draw(tokens), start_index=start, end_index=end)


content_groups = st.lists(scopes(), max_size=3).map(tuple)
swarm_id_lists = st.lists(swarm_tokens, min_size=1, max_size=4, unique=True)


@st.composite
def connects(draw: st.DrawFn) -> ConnectRequest:
    version = draw(versions)
    swarm_ids = draw(
        swarm_id_lists
        if version is ProtocolVersion.V1_0
        else st.lists(swarm_tokens, max_size=4, unique=True)
    )
    actions = []
    for swarm_id in swarm_ids:
        action = draw(st.sampled_from(SwarmActionType))
        mode = draw(
            st.sampled_from(PeerMode)
            if action is SwarmActionType.JOIN
            else st.none() | st.sampled_from(PeerMode)
        )
        actions.append(
            SwarmAction(
                swarm_id=swarm_id,
                action=action,
                peer_mode=mode,
                transaction_id=draw(st.none() | action_tids),
            )
        )
    return ConnectRequest(
        version=version,
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        peer_addresses=tuple(draw(st.lists(addresses(any_address_type), max_size=3))),
        swarm_actions=tuple(actions),
        peer_num=draw(st.none() | peer_nums),
        content_group=draw(content_groups),
    )


@st.composite
def joins(draw: st.DrawFn) -> JoinRequest:
    swarms = tuple(
        SwarmAction(
            swarm_id=swarm_id,
            peer_mode=draw(st.sampled_from(PeerMode)),
            transaction_id=draw(st.none() | action_tids),
        )
        for swarm_id in draw(swarm_id_lists)
    )
    return JoinRequest(
        version=ProtocolVersion.V1_1,
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        swarms=swarms,
        peer_num=draw(st.none() | peer_nums),
        content_group=draw(content_groups),
    )


@st.composite
def disconnects(draw: st.DrawFn) -> DisconnectRequest:
    scope = draw(st.sampled_from(DisconnectScope))
    swarms: tuple[SwarmAction, ...] = ()
    if scope is DisconnectScope.SWARMS:
        names = draw(swarm_id_lists)
        swarms = tuple(
            SwarmAction(swarm_id=n, transaction_id=draw(st.none() | action_tids)) for n in names
        )
    return DisconnectRequest(
        version=draw(versions),
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        scope=scope,
        swarms=swarms,
    )


finds = st.builds(
    FindRequest,
    version=versions,
    transaction_id=tokens,
    peer_id=tokens,
    swarm_id=swarm_tokens,
    peer_num=st.none() | peer_nums,
    content_group=content_groups,
)

# Names every encoding can carry: not a standard statistic's name in either encoding.
extra_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda name: name not in RESERVED_STATISTIC_NAMES
)
stream_stats = st.builds(
    StreamStatistics,
    swarm_id=st.none() | swarm_tokens,
    uploaded_bytes=st.none() | big_ints,
    downloaded_bytes=st.none() | big_ints,
    available_bandwidth=st.none() | big_ints,
    concurrent_links=st.none() | big_ints,
    extra=st.lists(st.tuples(extra_names, tokens), max_size=3, unique_by=lambda x: x[0]).map(tuple),
)


@st.composite
def segments(draw: st.DrawFn) -> SegmentMap:
    start = draw(big_ints.filter(lambda n: n < MAX_INTEGER - 200))
    size = draw(st.integers(min_value=1, max_value=200))
    raw = draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8))
    bitmap = ChunkBitmap(size, start, raw).to_bytes()  # bits past the end cleared
    return SegmentMap(
        start_index=start, end_index=start + size - 1, chunkmap_size=size, bitmap=bitmap
    )


content_maps = st.builds(
    ContentMap,
    swarm_id=swarm_tokens,
    representations=st.lists(
        st.builds(
            RepresentationMap,
            representation_id=tokens,
            segments=st.lists(segments(), min_size=1, max_size=3).map(tuple),
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
)

stat_reports = st.builds(
    StatReportRequest,
    version=versions,
    transaction_id=tokens,
    peer_id=tokens,
    stream_stats=st.lists(stream_stats, max_size=3).map(tuple),
    content_maps=st.lists(content_maps, max_size=2).map(tuple),
)

requests: st.SearchStrategy[AnyRequest] = st.one_of(
    connects(), joins(), disconnects(), finds, stat_reports
)


@st.composite
def peer_infos(draw: st.DrawFn) -> PeerInfo:
    """A listed peer (an ID, one to three addresses): with a swarm ID anything goes; without
    one, no REFLEXIVE address."""
    swarm_id = draw(st.none() | swarm_tokens)
    types = any_address_type if swarm_id is not None else non_reflexive
    return PeerInfo(
        peer_id=draw(tokens),
        addresses=tuple(draw(st.lists(addresses(types), min_size=1, max_size=3))),
        swarm_id=swarm_id,
    )


@st.composite
def requesters(draw: st.DrawFn) -> PeerInfo:
    own = draw(addresses(st.just(AddressType.REFLEXIVE)))
    others = draw(st.lists(addresses(any_address_type), max_size=2))
    position = draw(st.integers(min_value=0, max_value=len(others)))
    return PeerInfo(
        peer_id=draw(st.none() | tokens),
        addresses=(*others[:position], own, *others[position:]),
    )


@st.composite
def tracker_responses(draw: st.DrawFn) -> TrackerResponse:
    base = draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True))
    results: tuple[ActionResult, ...] = ()
    if draw(st.booleans()):
        tid = base + ".0"
        statuses = st.integers(min_value=100, max_value=599)
        root = ActionResult(
            transaction_id=tid, swarm_id=draw(st.none() | swarm_tokens), status=draw(statuses)
        )
        count = draw(st.integers(min_value=0, max_value=4))
        results = (
            root,
            *(
                ActionResult(
                    transaction_id=draw(st.none() | st.just(f"{base}.{i + 1}")),
                    swarm_id=draw(st.none() | swarm_tokens),
                    status=draw(statuses),
                )
                for i in range(count)
            ),
        )
    else:
        tid = draw(tokens)
    return TrackerResponse(
        version=draw(versions),
        transaction_id=tid,
        results=results,
        requester=draw(st.none() | requesters()),
        # A peer list names each peer once per swarm (a repeated one reads as one peer).
        peers=tuple(
            draw(st.lists(peer_infos(), max_size=4, unique_by=lambda p: (p.swarm_id, p.peer_id)))
        ),
    )


error_responses = st.builds(
    ErrorResponse,
    version=versions,
    transaction_id=st.none() | tokens,
    code=st.sampled_from(TrackerErrorCode),
    reason=st.none() | st.sampled_from(["Bad Request", "Action not allowed", "Try later", "No"]),
)


@PROPERTY
@given(requests)
def test_request_round_trip(message: AnyRequest) -> None:
    assert decode_request(encode_request(message)) == message


@PROPERTY
@given(tracker_responses())
def test_response_round_trip(message: TrackerResponse) -> None:
    assert decode_response(encode_response(message)) == message


@PROPERTY
@given(error_responses)
def test_error_response_round_trip(message: ErrorResponse) -> None:
    data = encode_response(message)
    assert decode_response(data, message.code.http_status, message.reason or "") == message


# ---------------------------------------------------------------------------- robustness

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "data" / "tracker-examples").glob("xml*.xml")
)
SEEDS = [path.read_bytes() for path in EXAMPLES] or [b"<PPSPTrackerProtocol/>"]
statuses = st.sampled_from([200, 400, 401, 403, 404, 413, 500, 503, 302, 999])
reasons = st.sampled_from(["", "PPSP version 1.0", "Bad Request"])


def _decode_everything(data: bytes, status: int, reason: str) -> None:
    with contextlib.suppress(TrackerProtocolError):
        decode_request(data)
    with contextlib.suppress(TrackerProtocolError):
        decode_response(data, status, reason)


@PROPERTY
@given(st.binary(max_size=2048), statuses, reasons)
def test_arbitrary_bytes_only_raise_protocol_errors(data: bytes, status: int, reason: str) -> None:
    _decode_everything(data, status, reason)


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A valid document (an example or a freshly encoded message) with a few random edits."""
    if draw(st.booleans()):
        data = bytearray(draw(st.sampled_from(SEEDS)))
    else:
        message = draw(st.one_of(requests, tracker_responses()))
        encoded = (
            encode_response(message)
            if isinstance(message, TrackerResponse)
            else encode_request(message)
        )
        data = bytearray(encoded)
    fragments = [
        b"<",
        b">",
        b"/",
        b'"',
        b"&",
        b"&amp;",
        b"<SwarmID>",
        b"</PeerInfo>",
        b"ALL",
        b"-1",
        b"\x00",
        b"\xff",
        b"1.0",
        b' version="2.0"',
    ]
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if kind == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=16))]
        elif kind == "insert":
            data[position:position] = draw(st.sampled_from(fragments))
        else:
            data[position:position] = data[
                position : position + draw(st.integers(min_value=1, max_value=64))
            ]
    return bytes(data)


@PROPERTY
@given(mutated_documents(), statuses, reasons)
def test_mutated_documents_only_raise_protocol_errors(
    data: bytes, status: int, reason: str
) -> None:
    _decode_everything(data, status, reason)


@PROPERTY
@given(mutated_documents())
def test_whatever_decodes_round_trips(data: bytes) -> None:
    """Any document the decoder accepts re-encodes to an equal message."""
    try:
        message = decode_request(data)
    except TrackerProtocolError:
        return
    assert decode_request(encode_request(message)) == message
