"""Hypothesis strategies shared by every codec test: the values and messages of the wire model.

Two kinds, one definition each:

* **Valid** values and messages (:func:`addresses`, :func:`requests`, :func:`peer_requests`, ...):
  what the model allows, which the codec of every encoding that carries the message writes and
  reads back unchanged.  Where an encoding carries less than the model, the strategy takes the
  encoding and draws only what it carries: ``Encoding.JSON`` at version 1.0 is RFC 7846 (no
  JOIN, DISCONNECT, content group or content map), and a JSON answer carries one address of the
  requester and per-action results that only succeed or fail.
* **Loose** values (``raw_*``, :data:`loose_texts`, ...): inside, at and beyond the edges of the
  field rules (reserved swarm IDs, whitespace, control characters, long identifiers, port 0,
  non-canonical and zoned IP addresses, bits past a chunk map's size, ...), for the properties
  that build documents of every codec from the same values, and the document mutations of the
  robustness tests (:func:`mutated`, :data:`json_values`).
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from hypothesis import strategies as st

from ppsp.errors import PEER_ERROR_CLASSES, TrackerErrorCode
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.common import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
)
from ppsp.wire.fields import (
    MAX_INTEGER,
    RESERVED_STATISTIC_NAMES,
    RESERVED_SWARM_IDS,
    canonical_ip,
)
from ppsp.wire.peer import (
    ChunkAvailabilityRequest,
    ChunkAvailabilityResponse,
    FindResponse,
    OkResponse,
    PeerMethod,
    PeerRequest,
    PeerResponse,
    Property,
    PropertyQueryRequest,
    PropertyQueryResponse,
    Stat,
    TransportNegotiationRequest,
    TransportNegotiationResponse,
    TransportOffer,
)
from ppsp.wire.peer import ErrorResponse as PeerErrorResponse
from ppsp.wire.peer import FindRequest as PeerFindRequest
from ppsp.wire.tracker import (
    ActionResult,
    AnyRequest,
    ConnectRequest,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

_T = TypeVar("_T")
V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1


def optional(strategy: st.SearchStrategy[_T]) -> st.SearchStrategy[_T | None]:
    """``strategy`` or None."""
    return st.none() | strategy


# ============================================================================================
# Valid values
# ============================================================================================

tokens = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12)
"""Tokens (ppsp.wire.fields): letters, digits, punctuation and symbols of all of Unicode, so
markup characters (``< & " '``) and non-ASCII text are exercised; never whitespace or controls."""

swarm_ids = tokens.filter(lambda t: t not in RESERVED_SWARM_IDS)
"""A swarm's own ID: never ``ALL`` or ``nil`` (they are DISCONNECT scopes)."""

action_tids = tokens.filter(lambda t: not t.endswith(".0"))
"""Per-action transaction IDs: ending in ``.0`` is for the root (fields.clear_action_ids)."""

transaction_ids = st.one_of(tokens, st.integers(0, 2**64 - 1).map(str))
"""Transaction IDs as peers write them: tokens, often long decimal numbers."""

small_ints = st.integers(0, 2**20)
integers = st.one_of(small_ints, st.integers(0, MAX_INTEGER))
"""Integers of the wire: 0 to 2**63 - 1, small ones more often."""

decimal_texts = st.one_of(st.integers(0, 10**9).map(str), st.sampled_from(["05", "-3", "0"]))
"""Decimal text, canonical or not (JSON writes canonical decimals as numbers, the rest as text)."""

selectors = st.one_of(tokens, decimal_texts, st.sampled_from(["HIGH", "NORMAL", "LOW", "NO_NAT"]))
"""PeerNum capability selectors: the XML drafts' levels, RFC 7846's numbers, any token."""

versions = st.sampled_from(ProtocolVersion)

extra_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda name: name not in RESERVED_STATISTIC_NAMES
)
"""Extra statistic names every encoding can carry (not a standard statistic's, in either)."""

any_address_type = optional(st.sampled_from(AddressType))
non_reflexive = optional(st.sampled_from([AddressType.HOST, AddressType.PROXY]))


@st.composite
def addresses(
    draw: st.DrawFn, types: st.SearchStrategy[AddressType | None] = any_address_type
) -> PeerAddress:
    """A peer address in the form every reader gives (canonical IP, family of the IP)."""
    family = draw(st.sampled_from(AddressFamily))
    ip = draw(st.ip_addresses(v=4 if family is AddressFamily.IPV4 else 6))
    return PeerAddress(
        ip=canonical_ip(str(ip))[0],
        port=draw(st.integers(1, 65535)),
        family=family,
        priority=draw(optional(integers)),
        type=draw(types),
        connection=draw(optional(tokens)),
        asn=draw(optional(st.one_of(tokens, st.integers(0, 2**32).map(str)))),
        peer_protocol=draw(optional(st.one_of(st.just("PPSP-PP/0.1"), tokens))),
    )


peer_nums = st.builds(
    PeerNum,
    count=optional(integers),
    ability_nat=optional(selectors),
    concurrent_links=optional(selectors),
    online_time=optional(selectors),
    upload_bandwidth=optional(selectors),
)


@st.composite
def scopes(draw: st.DrawFn) -> RepresentationScope:
    """One chunk range of a content group, open-ended or not."""
    start = draw(integers)
    end = draw(optional(st.integers(start, MAX_INTEGER)))
    return RepresentationScope(representation_id=draw(tokens), start_index=start, end_index=end)


content_groups = st.lists(scopes(), max_size=3, unique=True).map(tuple)
"""A ContentGroup: distinct ranges (the codecs read a repeated one once)."""


@st.composite
def segments(draw: st.DrawFn) -> SegmentMap:
    """A chunk map segment, the bits past its size clear (as every reader gives it)."""
    start = draw(integers.filter(lambda n: n < MAX_INTEGER - 200))
    size = draw(st.integers(1, 200))
    raw = draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8))
    bitmap = ChunkBitmap(size, start, raw).to_bytes()
    return SegmentMap(
        start_index=start, end_index=start + size - 1, chunkmap_size=size, bitmap=bitmap
    )


representation_maps = st.builds(
    RepresentationMap,
    representation_id=tokens,
    segments=st.lists(segments(), min_size=1, max_size=3).map(tuple),
)

chunk_maps = st.lists(representation_maps, max_size=3).map(tuple)
"""A chunk map as the peer protocol's CHUNK carries it (possibly empty)."""

content_maps = st.builds(
    ContentMap,
    swarm_id=swarm_ids,
    representations=st.lists(representation_maps, min_size=1, max_size=3).map(tuple),
)
"""A tracker content map: at least one representation."""


@st.composite
def peer_infos(draw: st.DrawFn, *, reflexive_without_swarm: bool = False) -> PeerInfo:
    """A listed peer: an ID and one to three addresses.

    Without a swarm ID, no REFLEXIVE address unless ``reflexive_without_swarm`` (in a tracker
    XML answer such an entry reads as the requester; the peer protocol has no requester).
    """
    swarm_id = draw(optional(swarm_ids))
    types = any_address_type if swarm_id is not None or reflexive_without_swarm else non_reflexive
    return PeerInfo(
        peer_id=draw(tokens),
        addresses=tuple(draw(st.lists(addresses(types), min_size=1, max_size=3))),
        swarm_id=swarm_id,
    )


def peer_lists(*, reflexive_without_swarm: bool = False) -> st.SearchStrategy[tuple[PeerInfo, ...]]:
    """A peer list naming each peer once per swarm (a repeated one reads as one peer)."""
    return st.lists(
        peer_infos(reflexive_without_swarm=reflexive_without_swarm),
        max_size=4,
        unique_by=lambda p: (p.swarm_id, p.peer_id),
    ).map(tuple)


# ============================================================================================
# Tracker messages
# ============================================================================================

stream_stats = st.builds(
    StreamStatistics,
    swarm_id=optional(swarm_ids),
    uploaded_bytes=optional(integers),
    downloaded_bytes=optional(integers),
    available_bandwidth=optional(integers),
    concurrent_links=optional(integers),
    extra=st.lists(
        st.tuples(extra_names, st.one_of(tokens, decimal_texts)),
        max_size=3,
        unique_by=lambda item: item[0],
    ).map(tuple),
)

_swarm_id_lists = st.lists(swarm_ids, min_size=1, max_size=4, unique=True)


def _rfc7846(version: ProtocolVersion, encoding: Encoding) -> bool:
    return encoding is Encoding.JSON and version is V10


@st.composite
def connects(draw: st.DrawFn, version: ProtocolVersion, encoding: Encoding) -> ConnectRequest:
    """A CONNECT: swarm actions (at least one in 1.0), advertised addresses, a joining point."""
    names = draw(
        _swarm_id_lists if version is V10 else st.lists(swarm_ids, max_size=4, unique=True)
    )
    actions = []
    for swarm_id in names:
        action = draw(st.sampled_from(SwarmActionType))
        # Joining needs a mode; leaving may name one.
        modes = st.sampled_from(PeerMode)
        mode = draw(modes if action is SwarmActionType.JOIN else optional(modes))
        actions.append(
            SwarmAction(
                swarm_id=swarm_id,
                action=action,
                peer_mode=mode,
                transaction_id=draw(optional(action_tids)),
            )
        )
    return ConnectRequest(
        version=version,
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        peer_addresses=tuple(draw(st.lists(addresses(), max_size=3))),
        swarm_actions=tuple(actions),
        peer_num=draw(optional(peer_nums)),
        content_group=() if _rfc7846(version, encoding) else draw(content_groups),
    )


@st.composite
def joins(draw: st.DrawFn) -> JoinRequest:
    """A JOIN (1.1 only): each swarm once, with a mode."""
    swarms = tuple(
        SwarmAction(
            swarm_id=swarm_id,
            peer_mode=draw(st.sampled_from(PeerMode)),
            transaction_id=draw(optional(action_tids)),
        )
        for swarm_id in draw(_swarm_id_lists)
    )
    return JoinRequest(
        version=V11,
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        swarms=swarms,
        peer_num=draw(optional(peer_nums)),
        content_group=draw(content_groups),
    )


@st.composite
def disconnects(draw: st.DrawFn, version: ProtocolVersion) -> DisconnectRequest:
    """A DISCONNECT of named swarms, of every swarm, or of the system."""
    scope = draw(st.sampled_from(DisconnectScope))
    swarms: tuple[SwarmAction, ...] = ()
    if scope is DisconnectScope.SWARMS:
        swarms = tuple(
            SwarmAction(swarm_id=name, transaction_id=draw(optional(action_tids)))
            for name in draw(_swarm_id_lists)
        )
    return DisconnectRequest(
        version=version,
        transaction_id=draw(tokens),
        peer_id=draw(tokens),
        scope=scope,
        swarms=swarms,
    )


def finds(
    version: ProtocolVersion | None = None, encoding: Encoding = Encoding.XML
) -> st.SearchStrategy[FindRequest]:
    """A FIND of ``version`` (either when None) as ``encoding`` carries it."""
    if version is None:
        return st.one_of(finds(V10, encoding), finds(V11, encoding))
    return st.builds(
        FindRequest,
        version=st.just(version),
        transaction_id=tokens,
        peer_id=tokens,
        swarm_id=swarm_ids,
        peer_num=optional(peer_nums),
        content_group=st.just(()) if _rfc7846(version, encoding) else content_groups,
    )


@st.composite
def corrupt_reports(draw: st.DrawFn) -> CorruptPeerReport:
    """A corrupt-peer report (the STAT_REPORT extension) as every reader gives it."""
    ip = draw(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
    return CorruptPeerReport(
        swarm_id=draw(swarm_ids),
        peer_id=draw(tokens),
        ip=canonical_ip(str(ip))[0],
        port=draw(st.integers(1, 65535)),
        corrupt_chunks=draw(st.one_of(st.integers(1, 100), st.integers(1, MAX_INTEGER))),
    )


def stat_reports(
    version: ProtocolVersion | None = None, encoding: Encoding = Encoding.XML
) -> st.SearchStrategy[StatReportRequest]:
    """A STAT_REPORT of ``version`` (either when None) as ``encoding`` carries it."""
    if version is None:
        return st.one_of(stat_reports(V10, encoding), stat_reports(V11, encoding))
    return st.builds(
        StatReportRequest,
        version=st.just(version),
        transaction_id=tokens,
        peer_id=tokens,
        stream_stats=st.lists(stream_stats, max_size=3).map(tuple),
        content_maps=(
            st.just(())
            if _rfc7846(version, encoding)
            else st.lists(content_maps, max_size=2).map(tuple)
        ),
        # An extension of either version, in either encoding.
        corrupt_peers=st.lists(corrupt_reports(), max_size=3).map(tuple),
    )


def requests(
    version: ProtocolVersion | None = None, encoding: Encoding = Encoding.XML
) -> st.SearchStrategy[AnyRequest]:
    """Every request PPSP-TP ``version`` (either when None) carries in ``encoding``.

    XML carries the whole model, DISCONNECT in 1.0 too; JSON 1.0 is RFC 7846 (CONNECT with
    swarm actions, FIND and STAT_REPORT, without content groups or maps); JSON 1.1 carries all.
    """
    if version is None:
        return st.one_of(requests(V10, encoding), requests(V11, encoding))
    parts: list[st.SearchStrategy[AnyRequest]] = [
        connects(version, encoding),
        finds(version, encoding),
        stat_reports(version, encoding),
    ]
    if version is V11:
        parts.append(joins())
    if not _rfc7846(version, encoding):
        parts.append(disconnects(version))
    return st.one_of(parts)


@st.composite
def requesters(draw: st.DrawFn) -> PeerInfo:
    """The requester of an XML answer: an optional ID, a REFLEXIVE address among others."""
    own = draw(addresses(st.just(AddressType.REFLEXIVE)))
    others = draw(st.lists(addresses(), max_size=2))
    position = draw(st.integers(0, len(others)))
    return PeerInfo(
        peer_id=draw(optional(tokens)), addresses=(*others[:position], own, *others[position:])
    )


@st.composite
def _xml_responses(draw: st.DrawFn) -> TrackerResponse:
    base = draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True))
    results: tuple[ActionResult, ...] = ()
    if draw(st.booleans()):
        tid = base + ".0"
        statuses = st.integers(100, 599)
        root = ActionResult(
            transaction_id=tid, swarm_id=draw(optional(swarm_ids)), status=draw(statuses)
        )
        count = draw(st.integers(0, 4))
        results = (
            root,
            *(
                ActionResult(
                    transaction_id=draw(optional(st.just(f"{base}.{i + 1}"))),
                    swarm_id=draw(optional(swarm_ids)),
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
        requester=draw(optional(requesters())),
        peers=draw(peer_lists()),
    )


@st.composite
def _json_responses(draw: st.DrawFn) -> TrackerResponse:
    results = draw(
        st.lists(
            st.builds(
                ActionResult,
                transaction_id=optional(tokens),
                swarm_id=optional(swarm_ids),
                status=st.sampled_from([200, 400]),
            ),
            max_size=4,
            unique_by=lambda r: r.swarm_id,
        )
    )
    peers: list[PeerInfo] = []
    for result in results:
        # A peer listed under its swarm's result, once per swarm.
        for peer_id in draw(st.lists(tokens, max_size=3, unique=True)):
            listed = tuple(draw(st.lists(addresses(), min_size=1, max_size=2)))
            peers.append(PeerInfo(peer_id=peer_id, addresses=listed, swarm_id=result.swarm_id))
    # The requester's top-level peer_addr is one address (RFC 7846 section 3.3.4).
    requester = draw(optional(addresses()))
    return TrackerResponse(
        version=draw(versions),
        transaction_id=draw(tokens),
        results=tuple(results),
        requester=None if requester is None else PeerInfo(addresses=(requester,)),
        peers=tuple(peers),
    )


def tracker_responses(encoding: Encoding = Encoding.XML) -> st.SearchStrategy[TrackerResponse]:
    """Successful answers ``encoding`` carries.

    XML: hierarchical transaction IDs with results of any status, a requester with an ID and a
    REFLEXIVE address among others, peers of any swarm.  JSON: one result per swarm that
    succeeds or fails, peers listed under their swarm's result, a requester of one address.
    """
    return _xml_responses() if encoding is Encoding.XML else _json_responses()


def error_responses(encoding: Encoding = Encoding.XML) -> st.SearchStrategy[ErrorResponse]:
    """Error answers ``encoding`` carries (JSON: RFC 7846's error codes, no reason phrase)."""
    if encoding is Encoding.XML:
        return st.builds(
            ErrorResponse,
            version=versions,
            transaction_id=optional(tokens),
            code=st.sampled_from(TrackerErrorCode),
            reason=optional(st.sampled_from(["Bad Request", "Action not allowed", "Try later"])),
        )
    return st.builds(
        ErrorResponse,
        version=versions,
        transaction_id=optional(tokens),
        code=st.sampled_from([c for c in TrackerErrorCode if c.json_code == int(c)]),
    )


# ============================================================================================
# Peer protocol messages
# ============================================================================================

transport_types = st.sampled_from(["HTTP", "RTP", "SIP", "WEBRTC", "QUIC"])
property_values = st.text(st.sampled_from("abcXYZ019 ._-:/ü€"), max_size=20).map(str.strip)
chunk_indexes = st.integers(0, MAX_INTEGER)
uris = optional(
    st.from_regex(
        r"http://198\.51\.100\.[0-9]{1,2}:[0-9]{2,4}/s/[a-f0-9]{4}/\{chunk\}", fullmatch=True
    )
)


def _peer_request_fields() -> dict[str, st.SearchStrategy[str]]:
    return {"transaction_id": transaction_ids, "peer_id": tokens, "swarm_id": swarm_ids}


peer_find_requests = st.builds(
    PeerFindRequest,
    method=st.sampled_from([PeerMethod.FIND, PeerMethod.FIND_CHUNK]),
    chunk_ids=st.lists(chunk_indexes, max_size=4).map(tuple),
    content_group=content_groups,
    peer_num=optional(peer_nums),
    **_peer_request_fields(),
).filter(lambda m: m.method is PeerMethod.FIND or m.chunk_ids or m.content_group)
"""FIND and FIND_CHUNK (which names at least one chunk)."""

peer_requests: st.SearchStrategy[PeerRequest] = st.one_of(
    peer_find_requests,
    st.builds(ChunkAvailabilityRequest, chunk_map=optional(chunk_maps), **_peer_request_fields()),
    st.builds(
        PropertyQueryRequest,
        properties=st.lists(st.sampled_from(Property).map(str) | tokens, max_size=5).map(tuple),
        **_peer_request_fields(),
    ),
    st.builds(
        TransportNegotiationRequest,
        transports=st.lists(transport_types, min_size=1, max_size=4).map(tuple),
        **_peer_request_fields(),
    ),
)


@st.composite
def peer_error_responses(draw: st.DrawFn) -> PeerErrorResponse:
    """An error answer of Table 2, with its own status or another error status."""
    phrase = draw(st.sampled_from(sorted(PEER_ERROR_CLASSES)))
    status = draw(st.just(PEER_ERROR_CLASSES[phrase].status) | st.integers(400, 599))
    return PeerErrorResponse(
        transaction_id=draw(optional(transaction_ids)), status=status, response=phrase
    )


peer_responses: st.SearchStrategy[PeerResponse] = st.one_of(
    st.builds(
        FindResponse,
        transaction_id=transaction_ids,
        method=st.sampled_from([PeerMethod.FIND, PeerMethod.FIND_CHUNK]),
        peer_id=optional(tokens),
        swarm_id=optional(swarm_ids),
        chunk_ids=st.lists(chunk_indexes, max_size=3).map(tuple),
        peers=peer_lists(reflexive_without_swarm=True),
    ),
    st.builds(
        ChunkAvailabilityResponse,
        transaction_id=transaction_ids,
        peer_id=optional(tokens),
        swarm_id=optional(swarm_ids),
        chunk_map=chunk_maps,
    ),
    st.builds(
        PropertyQueryResponse,
        transaction_id=transaction_ids,
        peer_id=optional(tokens),
        swarm_id=optional(swarm_ids),
        stats=st.lists(st.builds(Stat, property=tokens, value=property_values), max_size=5).map(
            tuple
        ),
    ),
    st.builds(
        TransportNegotiationResponse,
        transaction_id=transaction_ids,
        peer_id=optional(tokens),
        swarm_id=optional(swarm_ids),
        transports=st.lists(
            st.builds(TransportOffer, type=transport_types, uri=uris), max_size=3
        ).map(tuple),
    ),
    st.builds(OkResponse, transaction_id=transaction_ids, peer_id=optional(tokens)),
    peer_error_responses(),
)


# ============================================================================================
# Loose values: inside, at and beyond the edges of the field rules
# ============================================================================================

EDGE_TEXTS = [
    "ALL",
    "nil",
    "a",
    " a",
    "a b",
    "a\tb",
    "\u0085",
    "x\u00a0y",
    "\u2028",
    "é",
    "&<>\"'",
    "x" * 256,
    "y" * 257,
    "z" * 300,
    "-3",
    "05",
    "",
    "HIGH",
    "PPSP-PP/0.1",
]
short_tokens = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=6)
loose_texts = st.one_of(short_tokens, st.sampled_from(EDGE_TEXTS), st.text(max_size=6))
EDGE_INTS = [0, 1, 7, 65535, 65536, 2**31, 2**32 - 1, 2**63 - 1, 2**63, -1]
loose_ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(0, 10**6))
good_ips = st.ip_addresses().map(lambda ip: canonical_ip(str(ip))[0])
loose_ips = st.one_of(
    good_ips,
    st.sampled_from(
        [
            "::0001",
            "2001:DB8::1",
            "fe80::1%eth0",
            "01.2.3.4",
            "::ffff:1.2.3.4",
            "256.1.1.1",
            "1.2.3.4 ",
            "0.0.0.0",
        ]
    ),
)
loose_families = optional(st.sampled_from(["ipv4", "ipv6"]))
loose_address_types = optional(st.sampled_from(["HOST", "REFLEXIVE", "PROXY"]))
loose_stat_names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True),
    st.sampled_from(
        ["UploadedBytes", "uploaded_bytes", "swarm_id", "SwarmID", "Durée", "x" * 70, "OnlineTime"]
    ),
)
swarm_texts = st.one_of(short_tokens, short_tokens, loose_texts)
"""A swarm ID, valid more often than not."""


def _edge(draw: st.DrawFn, names: list[str]) -> str | None:
    """The one field of a value to draw from the loose strategies (None: all drawn valid), so
    that most documents are accepted by some codec and each edge is tried on its own."""
    return draw(st.sampled_from([None, None, *names]))


@st.composite
def raw_addresses(draw: st.DrawFn) -> dict[str, Any]:
    """An address's fields as text and numbers, one of them perhaps at or past an edge."""
    edge = _edge(draw, ["ip", "port", "priority", "connection", "asn", "peer_protocol"])
    ip = draw(loose_ips if edge == "ip" else good_ips)
    family = "ipv6" if ":" in ip else "ipv4"
    texts = optional(loose_texts)
    return {
        "ip": ip,
        "port": draw(loose_ints if edge == "port" else st.integers(1, 65535)),
        "family": draw(loose_families if edge == "ip" else optional(st.just(family))),
        "priority": draw(
            optional(loose_ints) if edge == "priority" else optional(st.integers(0, 2**40))
        ),
        "type": draw(loose_address_types),
        "connection": draw(texts if edge == "connection" else optional(short_tokens)),
        "asn": draw(texts if edge == "asn" else optional(short_tokens)),
        "peer_protocol": draw(texts if edge == "peer_protocol" else optional(short_tokens)),
    }


@st.composite
def raw_peers(draw: st.DrawFn) -> dict[str, Any]:
    """A listed peer's fields, one of them perhaps at or past an edge."""
    edge = _edge(draw, ["peer_id", "swarm_id", "addresses"])
    return {
        "peer_id": draw(
            optional(loose_texts)
            if edge == "peer_id"
            else st.sampled_from(["a", "b"]) | short_tokens
        ),
        "swarm_id": draw(optional(loose_texts) if edge == "swarm_id" else optional(st.just("s"))),
        "addresses": draw(st.lists(raw_addresses(), min_size=0 if edge else 1, max_size=3)),
    }


@st.composite
def raw_segments(draw: st.DrawFn) -> dict[str, Any]:
    """A segment's fields, its Base64 perhaps malformed or its end off by one."""
    start = draw(st.sampled_from([0, 5, 2**63 - 41]) | st.integers(0, 1000))
    size = draw(st.integers(1, 40))
    raw = draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8))
    text = base64.b64encode(raw).decode()  # bits past the size may be set: readers clear them
    end = start + size - 1
    if _edge(draw, ["text", "end"]) == "text":
        text = draw(st.sampled_from([text + "=", " " + text + "\n", text[:-1], "!!"]))
    elif _edge(draw, ["end"]) == "end":
        end += 1
    return {"start": start, "end": end, "size": size, "text": text}


@st.composite
def raw_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A content map's fields, one of them perhaps at or past an edge."""
    edge = _edge(draw, ["swarm_id", "id", "segments"])
    segments_of = st.lists(raw_segments(), min_size=0 if edge == "segments" else 1, max_size=2)
    representation = st.fixed_dictionaries(
        {"id": loose_texts if edge == "id" else short_tokens, "segments": segments_of}
    )
    return {
        "swarm_id": draw(loose_texts if edge == "swarm_id" else st.just("s") | short_tokens),
        "representations": draw(
            st.lists(representation, min_size=0 if edge == "segments" else 1, max_size=2)
        ),
    }


@st.composite
def raw_scope(draw: st.DrawFn) -> dict[str, Any]:
    """A content group scope's fields, one of them perhaps at or past an edge."""
    edge = _edge(draw, ["id", "start", "end"])
    start = draw(loose_ints if edge == "start" else st.integers(0, 10**6))
    end = draw(optional(loose_ints) if edge == "end" else optional(st.integers(start, start + 100)))
    return {"id": draw(loose_texts if edge == "id" else short_tokens), "start": start, "end": end}


@st.composite
def raw_peer_num(draw: st.DrawFn) -> dict[str, Any]:
    """A PeerNum's fields, one of them perhaps at or past an edge."""
    names = ["count", "ability_nat", "concurrent_links", "online_time", "upload_bandwidth"]
    edge = _edge(draw, names)
    num: dict[str, Any] = {
        name: draw(optional(loose_texts) if edge == name else optional(short_tokens))
        for name in names[1:]
    }
    num["count"] = draw(optional(loose_ints) if edge == "count" else optional(st.integers(0, 100)))
    return num


@st.composite
def raw_action(draw: st.DrawFn) -> dict[str, Any]:
    """A swarm action's fields (any action and mode), one perhaps at or past an edge."""
    edge = _edge(draw, ["swarm_id", "tid"])
    return {
        "swarm_id": draw(loose_texts if edge == "swarm_id" else short_tokens),
        "action": draw(optional(st.sampled_from(["JOIN", "LEAVE"]))),
        "mode": draw(optional(st.sampled_from(["SEED", "LEECH"]))),
        "tid": draw(optional(loose_texts) if edge == "tid" else optional(short_tokens)),
    }


@st.composite
def raw_stat(draw: st.DrawFn) -> dict[str, Any]:
    """Stream statistics' fields and extra statistics, one perhaps at or past an edge."""
    edge = _edge(draw, ["swarm_id", "uploaded", "extra"])
    values = loose_texts | loose_ints.map(str) if edge == "extra" else short_tokens
    names = loose_stat_names if edge == "extra" else st.sampled_from(["OnlineTime", "x_1", "Stall"])
    return {
        "swarm_id": draw(optional(loose_texts) if edge == "swarm_id" else optional(short_tokens)),
        "uploaded": draw(
            optional(loose_ints) if edge == "uploaded" else optional(st.integers(0, 10**9))
        ),
        "extra": draw(st.lists(st.tuples(names, values), max_size=3)),
    }


raw_scopes = st.lists(raw_scope(), max_size=2)
raw_peer_nums = optional(raw_peer_num())
raw_actions = st.lists(raw_action(), max_size=3)
raw_stats = st.lists(raw_stat(), max_size=2)


# ============================================================================================
# Documents for the robustness tests
# ============================================================================================


_RANDOM_BYTES = st.binary(min_size=1, max_size=8)


@st.composite
def mutated(
    draw: st.DrawFn,
    documents: st.SearchStrategy[bytes],
    fragments: st.SearchStrategy[bytes] = _RANDOM_BYTES,
    *,
    edits: int = 6,
) -> bytes:
    """A document of ``documents`` with 1 to ``edits`` random edits: a flipped bit, a deleted
    run, an inserted fragment of ``fragments``, or a run of the document copied in."""
    data = bytearray(draw(documents))
    for _ in range(draw(st.integers(1, edits))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "splice"]))
        if kind == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[position:position] = draw(fragments)
        else:
            start = draw(st.one_of(st.just(position), st.integers(0, len(data))))
            data[position:position] = data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["JOIN", "LEAVE", "SEEDER", "LEECH", "ALL", "CONTENT_MAP", "STREAM_STATS"]),
)
JSON_MEMBER_NAMES = [
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
"""Member names of PPSP-TP JSON, so that generated objects often look like messages."""

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(JSON_MEMBER_NAMES) | st.text(max_size=6), children, max_size=5
        ),
    ),
    max_leaves=30,
)
"""Any JSON value, its objects named like PPSP-TP's."""
