"""The tracker JSON writer: requests and answers in the schema's form (RFC 7846, version 2).

Requests are written and decoded again before they are returned, so that nothing the decoder
would refuse is sent.  Answers are checked the same way, or (the server's hot path,
``check=False``) each value is checked with the decoder's own readers as it is written and the
document is not parsed again.  What was written for a listed peer is kept in its entry and what
was written for an address by identity (:mod:`ppsp.wire.encoded`); an entry or address that
fails the checks keeps nothing and is refused every time.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from ppsp.codecs.tracker_json.decode import (
    decode_request,
    decode_response_body,
    read_peer_address,
    requester_choice,
)
from ppsp.codecs.tracker_json.read import (
    CONTENT_MAP,
    CORRUPT_PEER,
    PEER_MODE_TEXT,
    PEER_NUM_SELECTORS,
    ROOT,
    STAT_FIELDS,
    STREAM_STATS,
    VERSION_NUMBER,
    Malformed,
    as_items,
    read_ident,
    read_opt_ident,
    read_opt_swarm_ident,
)
from ppsp.errors import LocalProtocolError, RemoteTrackerError
from ppsp.wire import fields
from ppsp.wire.common import (
    PeerAddress,
    PeerInfo,
    PeerNum,
    RepresentationScope,
    SegmentMap,
    keyed_by_value,
    template_shape,
)
from ppsp.wire.encoded import FormSlot, IdentityForms, ShapeForms, claim_form_slot
from ppsp.wire.fields import (
    ALL_SWARMS,
    DECIMAL_RE,
    MAX_INTEGER,
    MAX_LAYOUTS,
    MAX_LISTED_PEERS,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_SWARM_ACTIONS,
    NO_SWARM,
    RESERVED_SWARM_IDS,
    is_extra_statistic_name,
)
from ppsp.wire.packed import (
    Layout,
    PackedPeerInfo,
    layout_forms,
    layout_of,
    packed_fields,
    packed_of,
)
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    TrackerResponse,
)


def _canonical_int(text: str) -> int | None:
    """``text`` as a JSON number when that loses nothing (canonical, non-negative), else None."""
    if DECIMAL_RE.fullmatch(text) and str(int(text)) == text and int(text) <= MAX_INTEGER:
        return int(text)
    return None


def _number_or_text(text: str) -> int | str:
    number = _canonical_int(text)
    return text if number is None else number


def _peer_num_json(num: PeerNum) -> dict[str, object]:
    out: dict[str, object] = {}
    if num.count is not None:
        out["peer_count"] = num.count
    for name in PEER_NUM_SELECTORS:
        value: str | None = getattr(num, name)
        if value is not None:
            out[name] = _number_or_text(value) if name != "ability_nat" else value
    return out


def _address_json(address: PeerAddress) -> dict[str, object]:
    out: dict[str, object] = {
        "ip_address": {"address_type": address.family.value, "address": address.ip},
        "port": address.port,
    }
    if address.priority is not None:
        out["priority"] = address.priority
    if address.type is not None:
        out["type"] = address.type.value
    for name in ("connection", "asn", "peer_protocol"):
        value: str | None = getattr(address, name)
        if value is not None:
            out[name] = value
    return out


_ADDRESSES_KEPT: Final = 16384
_ADDRESS_FORMS: IdentityForms[PeerAddress, dict[str, object]] = IdentityForms(
    _ADDRESSES_KEPT, by_value=keyed_by_value
)
"""The ``peer_addr`` object written for an address, by identity, then by value (never changed
once kept)."""


def _checked_address_json(address: PeerAddress) -> dict[str, object]:
    """``_address_json(address)``, refused (LocalProtocolError) where the decoder would refuse it.

    Kept for the address by :data:`_ADDRESS_FORMS`: callers go through it.
    """
    out = _address_json(address)
    try:
        read_peer_address(out)
    except Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    return out


_SHAPE_RESTS: ShapeForms[PeerAddress, tuple[tuple[str, object], ...]] = ShapeForms(4096)
"""The checked members of each address shape (at most 4,096 shapes)."""


def _shape_rest(address: PeerAddress) -> tuple[tuple[str, object], ...]:
    """The members :func:`_checked_address_json` writes besides ``ip_address`` and ``port``.

    Every field is checked by itself, so an address of this shape that passes says that the
    shape's members are right whatever the (valid) IP address and port."""
    checked = _checked_address_json(address)
    return tuple(item for item in checked.items() if item[0] not in _PLACED)


def _address_template(address: PeerAddress) -> dict[str, object] | None:
    """:func:`_checked_address_json` of a canonical IPv4 address with an integer port: its
    ``ip_address`` and ``port``, then the members of its shape (the fields besides its IP
    address and port), checked once per shape and kept; None for any other address (written
    by :func:`_checked_address_json`)."""
    shape = template_shape(address)
    if shape is None:
        return None
    rest = _SHAPE_RESTS.form(shape, address, _shape_rest)
    if rest is None:
        return None
    ip, port = address.ip, address.port
    out: dict[str, object] = {"ip_address": {"address_type": "ipv4", "address": ip}, "port": port}
    if rest:
        out.update(rest)
    return out


_PLACED: Final = frozenset({"ip_address", "port"})


def _requester_address(addresses: Sequence[PeerAddress]) -> dict[str, object]:
    """The requester's top-level ``peer_addr``: one object (RFC 7846 section 3.3.4), the
    address the tracker observed (REFLEXIVE) when there is one, else the first."""
    if len(addresses) == 1:
        return _ADDRESS_FORMS.form(addresses[0], _checked_address_json)
    if len(addresses) > MAX_PEER_ADDRESSES:
        raise LocalProtocolError(
            f"cannot encode response: more than {MAX_PEER_ADDRESSES} addresses"
        )
    return _ADDRESS_FORMS.form(requester_choice(addresses), _checked_address_json)


def _swarm_action_json(
    action: SwarmAction, *, with_action: bool = True, with_mode: bool = True
) -> dict[str, object]:
    """A ``swarm_action``, with the members its request type uses (as the XML codec writes)."""
    out: dict[str, object] = {"swarm_id": action.swarm_id}
    if with_action and action.action is not None:
        out["action"] = action.action.value
    if with_mode and action.peer_mode is not None:
        out["peer_mode"] = PEER_MODE_TEXT[action.peer_mode]
    if action.transaction_id is not None:
        out["transaction_id"] = action.transaction_id
    return out


def _content_group_json(scopes: Sequence[RepresentationScope]) -> list[dict[str, object]]:
    out = []
    try:
        distinct = fields.distinct_scope(scopes)  # as the decoder reads them: each range once
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from None
    for scope in distinct:
        item: dict[str, object] = {
            "representation_id": scope.representation_id,
            "start_index": scope.start_index,
        }
        if scope.end_index is not None:
            item["end_index"] = scope.end_index
        out.append(item)
    return out


def _stream_stat_json(stat: StreamStatistics) -> dict[str, object]:
    out: dict[str, object] = {}
    if stat.swarm_id is not None:
        out["swarm_id"] = stat.swarm_id
    for name in STAT_FIELDS:
        value: int | None = getattr(stat, name)
        if value is not None:
            out[name] = value
    for name, text in stat.extra:
        if name in out or not is_extra_statistic_name(name):
            raise LocalProtocolError(
                f"extra statistic {name!r} is reserved, invalid or given twice"
            )
        out[name] = _number_or_text(text)
    return out


def _chunkmap_text(segment: SegmentMap) -> str:
    try:
        return fields.chunkmap_text(segment.bitmap, segment.chunkmap_size)
    except ValueError as exc:
        raise LocalProtocolError(f"segment chunk map: {exc}") from None


def _content_map_json(content_map: ContentMap) -> dict[str, object]:
    return {
        "swarm_id": content_map.swarm_id,
        "representation": [
            {
                "id": rep.representation_id,
                "segment_info": [
                    {
                        "start_index": seg.start_index,
                        "end_index": seg.end_index,
                        "chunkmap_size": seg.chunkmap_size,
                        "chunkmap": _chunkmap_text(seg),
                    }
                    for seg in rep.segments
                ],
            }
            for rep in content_map.representations
        ],
    }


def _connect_json(msg: ConnectRequest) -> dict[str, object]:
    if msg.version is ProtocolVersion.V1_0:
        if not msg.swarm_actions:
            raise LocalProtocolError("an RFC 7846 CONNECT needs swarm actions; use version 2")
        if msg.content_group:
            raise LocalProtocolError("RFC 7846 CONNECT has no content_group; use version 2")
    out: dict[str, object] = {}
    if msg.peer_num is not None:
        out["peer_num"] = _peer_num_json(msg.peer_num)
    if msg.peer_addresses:
        out["peer_addr"] = [_address_json(a) for a in msg.peer_addresses]
    if msg.swarm_actions:
        out["swarm_action"] = [_swarm_action_json(a) for a in msg.swarm_actions]
    if msg.content_group:
        out["content_group"] = _content_group_json(msg.content_group)
    return {"connect": out}


def _join_json(msg: JoinRequest) -> dict[str, object]:
    out: dict[str, object] = {
        "swarm_action": [_swarm_action_json(a, with_action=False) for a in msg.swarms]
    }
    if msg.peer_num is not None:
        out["peer_num"] = _peer_num_json(msg.peer_num)
    if msg.content_group:
        out["content_group"] = _content_group_json(msg.content_group)
    return {"join": out}


def _disconnect_json(msg: DisconnectRequest) -> dict[str, object]:
    if msg.scope is not DisconnectScope.SWARMS:
        if msg.swarms:
            raise LocalProtocolError(f"a {msg.scope.value} DISCONNECT names no swarms")
        word = ALL_SWARMS if msg.scope is DisconnectScope.ALL_SWARMS else NO_SWARM
        return {"disconnect": {"swarm_id": word}}
    if not msg.swarms:
        raise LocalProtocolError("DISCONNECT of named swarms names none")
    if any(s.swarm_id in RESERVED_SWARM_IDS for s in msg.swarms):
        raise LocalProtocolError("ALL and nil are DISCONNECT scopes, not swarm IDs")
    actions = [_swarm_action_json(a, with_action=False, with_mode=False) for a in msg.swarms]
    return {"disconnect": {"swarm_action": actions}}


def _find_json(msg: FindRequest) -> dict[str, object]:
    if msg.content_group and msg.version is ProtocolVersion.V1_0:
        raise LocalProtocolError("RFC 7846 FIND has no content_group; use version 2")
    out: dict[str, object] = {"swarm_id": msg.swarm_id}
    if msg.peer_num is not None:
        out["peer_num"] = _peer_num_json(msg.peer_num)
    if msg.content_group:
        out["content_group"] = _content_group_json(msg.content_group)
    return {"find": out}


def _corrupt_peer_json(report: CorruptPeerReport) -> dict[str, object]:
    try:
        canonical, version = fields.canonical_ip(report.ip)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"corrupt-peer report ip: {exc}") from None
    if canonical != report.ip:
        raise LocalProtocolError(f"report ip {report.ip[:40]!r} is not in canonical form")
    family = "ipv6" if version == 6 else "ipv4"
    return {
        "swarm_id": report.swarm_id,
        "peer_id": report.peer_id,
        "peer_addr": {
            "ip_address": {"address_type": family, "address": report.ip},
            "port": report.port,
        },
        "corrupt_chunks": report.corrupt_chunks,
    }


def _stat_report_json(msg: StatReportRequest) -> dict[str, object]:
    groups: list[dict[str, object]] = []
    if msg.stream_stats:
        groups.append(
            {"type": STREAM_STATS, "stat": [_stream_stat_json(s) for s in msg.stream_stats]}
        )
    if msg.content_maps:
        if msg.version is ProtocolVersion.V1_0:
            raise LocalProtocolError("RFC 7846 STAT_REPORT has no content maps; use version 2")
        groups.append(
            {"type": CONTENT_MAP, "stat": [_content_map_json(m) for m in msg.content_maps]}
        )
    if msg.corrupt_peers:
        # An extension group (RFC 7846 section 7.1), in either version.
        groups.append(
            {"type": CORRUPT_PEER, "stat": [_corrupt_peer_json(r) for r in msg.corrupt_peers]}
        )
    if not groups:
        return {}
    if len(groups) == 1 and msg.version is ProtocolVersion.V1_0:
        return {"stat_report": groups[0]}  # RFC 7846 prints one stat group per report
    return {"stat_report": groups}


def _request_data_json(msg: AnyRequest) -> dict[str, object]:
    """The request-data member of ``msg`` (``connect``, ``find``, ...), as a dict to merge."""
    if isinstance(msg, ConnectRequest):
        return _connect_json(msg)
    if isinstance(msg, JoinRequest):
        return _join_json(msg)
    if isinstance(msg, DisconnectRequest):
        return _disconnect_json(msg)
    if isinstance(msg, FindRequest):
        return _find_json(msg)
    return _stat_report_json(msg)


_V1_1_ONLY: Final = (JoinRequest, DisconnectRequest)


def encode_request(msg: AnyRequest) -> bytes:
    """Encode a tracker request as JSON, in the schema's form.

    A ``V1_0`` request is written as RFC 7846 ``"version": 1`` and must be expressible there
    (no JOIN, DISCONNECT, registration-only CONNECT, content group or content map); a ``V1_1``
    request as the ``"version": 2`` extension.  Raises
    :class:`~ppsp.errors.LocalProtocolError` for a message that cannot be sent.
    """
    if msg.version is ProtocolVersion.V1_0 and isinstance(msg, _V1_1_ONLY):
        raise LocalProtocolError(f"RFC 7846 has no {msg.method.value}; use version 2")
    root: dict[str, object] = {
        "version": VERSION_NUMBER[msg.version],
        "request_type": msg.method.value,
        "transaction_id": msg.transaction_id,
        "peer_id": msg.peer_id,
    }
    root.update(_request_data_json(msg))
    data = orjson.dumps({ROOT: root})
    try:
        decode_request(data)
    except RemoteTrackerError as exc:
        raise LocalProtocolError(f"cannot encode {msg.method.value}: {exc}") from None
    return data


def _peer_info_json(peer: PeerInfo) -> list[dict[str, object]]:
    """The ``peer_info`` entries of a listed peer: one per address, in order (RFC 7846 section
    3.2.4 gives a ``peer_info`` one ``peer_addr``), each address validated (see
    :func:`_checked_address_json`); the decoder merges them back into one peer."""
    try:
        peer_id = read_ident(peer.peer_id, "peer_info.peer_id")
    except Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    if not peer.addresses:
        raise LocalProtocolError("cannot encode response: a listed peer needs an address")
    if len(peer.addresses) > MAX_PEER_ADDRESSES:
        raise LocalProtocolError(
            f"cannot encode response: more than {MAX_PEER_ADDRESSES} addresses"
        )
    return [{"peer_id": peer_id, "peer_addr": _address_form(address)} for address in peer.addresses]


def _address_form(address: PeerAddress) -> dict[str, object]:
    """A listed address's checked ``peer_addr`` object: kept by identity, else from its shape's
    template (a listed peer's address, built from the storage's packed form when its entry is
    not kept), else the general writer.  LocalProtocolError for an invalid address."""
    return _ADDRESS_FORMS.templated(address, _address_template, _checked_address_json)


_ENTRY_FORMS: FormSlot[PeerInfo, orjson.Fragment] = claim_form_slot("tracker JSON")
"""The serialised ``peer_info`` entries written for a listed peer, kept in the entry."""


_PLAIN_ID = re.compile(f"[!#-\\[\\]-~]{{1,{fields.MAX_TOKEN_LENGTH}}}").fullmatch
"""A peer ID of printable ASCII without the space, ``"`` and ``\\``: a token (what
:func:`~ppsp.codecs.tracker_json.read.read_ident` takes) that ``orjson`` writes as it is
between quotes."""


def _listed_fragment(peer: PeerInfo) -> orjson.Fragment:
    """A listed peer's serialised ``peer_info`` entries, checked (kept by :data:`_ENTRY_FORMS`).

    The checks are those :func:`~ppsp.codecs.tracker_json.decode.decode_response` makes of an
    entry (its ``peer_id`` and addresses).  ``orjson`` writes a fragment as it is, so the
    document's bytes do not change: a peer with several addresses is one fragment holding its
    entries separated by commas, which stands for that many array elements (and counts as one
    peer where the list's length is bounded).

    A :data:`_PLAIN_ID` peer ID is written around each address's serialised form without
    building the entry objects: at 100,000 peers most listed entries are new ones (issue 16).
    The bytes are those ``orjson.dumps`` writes of the entry objects.
    """
    peer_id = peer.peer_id
    if type(peer) is PackedPeerInfo and type(peer_id) is str and _PLAIN_ID(peer_id):
        fragment = _packed_fragment(peer_id, packed_of(peer))
        if fragment is not None:
            return fragment
    addresses = peer.addresses
    if (
        type(peer_id) is str
        and _PLAIN_ID(peer_id)
        and addresses
        and len(addresses) <= MAX_PEER_ADDRESSES
    ):
        head = b'{"peer_id":"' + peer_id.encode() + b'","peer_addr":'
        dumps = orjson.dumps
        return orjson.Fragment(
            b",".join([head + dumps(_address_form(address)) + b"}" for address in addresses])
        )
    return orjson.Fragment(b",".join(orjson.dumps(entry) for entry in _peer_info_json(peer)))


_LAYOUT_TEMPLATES: IdentityForms[Layout, bytes | None] = IdentityForms(MAX_LAYOUTS)
"""The ``%``-template of a packed entry of each layout, by the layout's identity (one object per
layout while the process lives); None for a layout written by the general writer."""


def _layout_template(layout: Layout) -> bytes | None:
    """The serialised entries of a peer whose addresses have ``layout``, as a ``%``-template of,
    for each address, the peer ID and the address's five :func:`~ppsp.wire.packed.packed_fields`:
    the members after ``port`` checked once for each shape as :func:`_address_template` checks
    them; None when the general writer writes it."""
    ends = layout_forms(layout, _shape_end)
    if ends is None:
        return None
    # Packed IPv4 addresses and ports read back canonical and in range (ppsp.wire.packed):
    # the bytes are what orjson writes of _address_template's object for the address.
    return b",".join(
        b'{"peer_id":"%b","peer_addr":{"ip_address":'
        b'{"address_type":"ipv4","address":"%d.%d.%d.%d"},"port":%d'
        + end.replace(b"%", b"%%")
        + b"}"
        for end in ends
    )


def _shape_end(shape: tuple[object, ...], sample: PeerAddress) -> bytes | None:
    rest = _SHAPE_RESTS.form(shape, sample, _shape_rest)
    if rest is None:
        return None
    return b"," + orjson.dumps(dict(rest))[1:] if rest else b"}"


def _packed_fragment(peer_id: str, packed: bytes) -> orjson.Fragment | None:
    """:func:`_listed_fragment` of an entry whose addresses are packed (:mod:`ppsp.wire.packed`)
    and whose peer ID is :data:`_PLAIN_ID`, written from the bytes by its layout's template:
    the same bytes, without an address object; None when the general path must write it (a
    layout without a template)."""
    template = _LAYOUT_TEMPLATES.form(layout_of(packed), _layout_template) if packed else None
    if template is None:
        return None
    ident = peer_id.encode()
    fields = packed_fields(packed)
    if len(fields) == 10:  # the usual peer: an advertised address and the observed one
        return orjson.Fragment(template % (ident, *fields[:5], ident, *fields[5:]))
    values: list[object] = []
    for at in range(0, len(fields), 5):
        values.append(ident)
        values.extend(fields[at : at + 5])
    return orjson.Fragment(template % tuple(values))


_SWARM_OF = operator.attrgetter("swarm_id")


def _results_json(msg: TrackerResponse, *, fragments: bool = False) -> list[dict[str, object]]:
    """``swarm_result``: each listed peer as an object, or with ``fragments`` as its checked,
    serialised form (:func:`_listed_fragment`, kept in the entry)."""
    if len(msg.peers) > MAX_LISTED_PEERS:
        raise LocalProtocolError(f"cannot encode response: more than {MAX_LISTED_PEERS} peers")
    results: list[dict[str, object]] = []
    for result in msg.results:
        item: dict[str, object] = {}
        if result.swarm_id is not None:
            item["swarm_id"] = result.swarm_id
        item["result"] = 0 if result.ok else 1
        if result.transaction_id is not None:
            item["transaction_id"] = result.transaction_id
        results.append(item)
    peers = msg.peers
    kept = _ENTRY_FORMS.forms(peers, _listed_fragment) if fragments else None
    if kept and not results and len(set(map(_SWARM_OF, peers))) == 1:
        # The usual answer (FIND, a JOIN of one swarm): one swarm's peers and no result of
        # its own, what the loop below makes of it without its work per peer.
        swarm_id = peers[0].swarm_id
        only: dict[str, object] = {} if swarm_id is None else {"swarm_id": swarm_id}
        only["result"] = 0
        only["peer_group"] = {"peer_info": kept}
        return [only]
    swarm_ids = [r.swarm_id for r in msg.results]
    peer_lists: list[list[object]] = [[] for _ in results]
    # Each peer goes under the next result of its swarm from where the previous peer went, so
    # that peers listed result by result (as decoding produces them) keep their order.
    cursor = 0
    for position, peer in enumerate(msg.peers):
        try:
            index = swarm_ids.index(peer.swarm_id, cursor)
        except ValueError:
            if peer.swarm_id in swarm_ids:
                index = swarm_ids.index(peer.swarm_id)
            else:
                index = len(results)
                swarm_ids.append(peer.swarm_id)
                item = {} if peer.swarm_id is None else {"swarm_id": peer.swarm_id}
                item["result"] = 0
                results.append(item)
                peer_lists.append([])
        cursor = index
        if kept is not None:
            peer_lists[index].append(kept[position])
        else:
            peer_lists[index].extend(_peer_info_json(peer))
    for item, infos in zip(results, peer_lists, strict=True):
        if infos:
            item["peer_group"] = {"peer_info": infos}
    return results


def encode_response(msg: TrackerResponse | ErrorResponse, *, check: bool = True) -> bytes:
    """Encode a tracker response as JSON, in the schema's form.

    An :class:`~ppsp.wire.tracker.ErrorResponse` becomes ``response_type`` 1 with the
    code's RFC 7846 ``error_code`` (:attr:`~ppsp.errors.TrackerErrorCode.json_code`) and no
    other member but ``version`` and ``transaction_id``.  A
    :class:`~ppsp.wire.tracker.TrackerResponse` becomes ``response_type`` 0; its
    ``requester`` is the top-level ``peer_addr``, one object: its REFLEXIVE address, else its
    first (its ``peer_id`` and other addresses are not sent: the schema has no place for them).
    Each listed peer is one ``peer_info`` per address.  Raises
    :class:`~ppsp.errors.LocalProtocolError` for a message the decoder would refuse.

    With ``check`` (the default) the written bytes are decoded again before they are returned.
    Without it (the server's hot path) each value is checked with the decoder's own readers as
    it is written, addresses through a cache, and the document is not parsed again: the same
    messages are refused, for a fraction of the cost.
    """
    root: dict[str, object] = {"version": VERSION_NUMBER[msg.version]}
    if isinstance(msg, ErrorResponse):
        root["response_type"] = 1
        root["error_code"] = msg.code.json_code
        if msg.transaction_id is not None:
            root["transaction_id"] = msg.transaction_id
    else:
        root["response_type"] = 0
        root["error_code"] = 0
        root["transaction_id"] = msg.transaction_id
        if msg.requester is not None and msg.requester.addresses:
            root["peer_addr"] = _requester_address(msg.requester.addresses)
        results = _results_json(msg, fragments=not check)
        if results:
            root["swarm_result"] = results
        if not check:
            _check_success(root, results)
    data = orjson.dumps({ROOT: root})
    if not check:
        if len(data) > MAX_MESSAGE_BYTES:
            raise LocalProtocolError(f"cannot encode response: more than {MAX_MESSAGE_BYTES} bytes")
        return data
    try:
        decode_response_body(data, MAX_MESSAGE_BYTES)
    except RemoteTrackerError as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    return data


def _check_success(root: Mapping[str, object], results: Sequence[Mapping[str, object]]) -> None:
    """What :func:`_read_success` checks of a success response, less the cached addresses."""
    try:
        read_ident(root["transaction_id"], "transaction_id")
        as_items(results, "swarm_result", MAX_SWARM_ACTIONS)
        for item in results:
            read_opt_swarm_ident(item.get("swarm_id"), "swarm_result.swarm_id")
            read_opt_ident(item.get("transaction_id"), "swarm_result.transaction_id")
            # The peer_info entries are checked fragments (_listed_fragment) and their number
            # is bounded by _results_json.
    except Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
