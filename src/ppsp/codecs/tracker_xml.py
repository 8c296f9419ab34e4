"""XML codec of the tracker protocol: PPSP-TP/1.0 and PPSP-TP/1.1 message bodies.

Sources: draft-huang-ppsp-extended-tracker-protocol-01 section 3.3 and 4 (1.1),
draft-ietf-ppsp-base-tracker-protocol-02 and draft-cruz-ppsp-base-tracker-protocol-00 (1.0).

The codec turns bytes into the typed model of :mod:`ppsp.wire.tracker` and back.  It is
the only place where tracker XML is validated: a decoded message is a valid message.

Decoding rules, in short (docs/PROTOCOL.md has the reasoning):

* Elements and attributes are matched by local name; the drafts' ``xmlns="TBD"``, any other
  namespace or none are all accepted.  Unknown elements and attributes are ignored (the drafts'
  extension rule), and so are known elements a method does not use.  A known element that may
  occur once and occurs twice is a bad request.
* Values follow the field rules every codec shares (:mod:`ppsp.wire.fields`): identifiers and
  attribute values are *tokens* (1 to 256 characters, no whitespace or control characters;
  surrounding whitespace is stripped here), swarm IDs are tokens other than ``ALL`` and ``nil``,
  integers are plain ASCII decimal in ``0 .. 2**63 - 1`` (ports 1-65535), IP addresses are kept
  in canonical form, chunk maps hold at most 2**20 bits.
* A listed peer (a PeerInfo of an answer other than the requester's) has a PeerID and at least
  one PeerAddress; PeerInfo entries naming the same peer for the same swarm are read as one peer
  holding the addresses of all of them (:func:`~ppsp.wire.tracker.merge_listed_peers`).
* DISCONNECT takes the named swarms, ``<SwarmID>ALL</SwarmID>`` (every swarm) or
  ``<SwarmID>nil</SwarmID>`` (the system, huang-01 section 4.2); a DISCONNECT without SwarmID
  is read as ``nil`` too (draft-huang-...-04 prints it so, and earlier releases wrote it).
* Repetition is bounded per message (``MAX_*`` below); a body over
  :data:`ppsp.codecs.safexml.MAX_XML_BYTES` is refused with :class:`PayloadTooLarge` before parsing.
* Every failure is a :class:`~ppsp.errors.TrackerProtocolError` (nearly always
  :class:`BadRequest`) carrying the message's transaction ID when it could be read.

Encoding writes the XML declaration with UTF-8, the default namespace :data:`NAMESPACE`, the
elements in the order of the drafts' generic template, and validates the message with the same
rules, raising :class:`~ppsp.errors.LocalProtocolError` for a message that would not decode back
to itself.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import TypeVar

from lxml import etree

from ppsp.codecs.safexml import MAX_XML_BYTES, XMLRejected, parse_xml
from ppsp.errors import (
    BadRequest,
    LocalProtocolError,
    PayloadTooLarge,
    TrackerErrorCode,
    TrackerProtocolError,
    UnsupportedVersion,
)
from ppsp.wire import fields
from ppsp.wire.fields import (
    MAX_ADVERTISED_ADDRESSES,
    MAX_CHUNKMAP_BITS,
    MAX_EXTRA_STATISTICS,
    MAX_INTEGER,
    MAX_LISTED_PEERS,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_SWARM_ACTIONS,
    MAX_TOKEN_LENGTH,
    MIN_PORT,
    NO_SWARM,
    RESERVED_SWARM_IDS,
    TOKEN_RE,
    is_extra_statistic_name,
)
from ppsp.wire.tracker import (
    ALL_SWARMS,
    ActionResult,
    AddressFamily,
    AddressType,
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    EncodedForms,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    Method,
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
    merge_listed_peers,
    positional_builder,
)

__all__ = [
    "ERROR_TEXT",
    "MAX_ADVERTISED_ADDRESSES",
    "MAX_CONTENT_SCOPES",
    "MAX_EXTRA_STATISTICS",
    "MAX_INTEGER",
    "MAX_PEER_ADDRESSES",
    "MAX_PEER_INFOS",
    "MAX_RESULTS",
    "MAX_SEGMENTS",
    "MAX_STATS",
    "MAX_SWARM_IDS",
    "MAX_TOKEN_LENGTH",
    "METHODS_BY_VERSION",
    "NAMESPACE",
    "SUCCESS_TEXT",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

NAMESPACE = "urn:ietf:params:xml:ns:ppsp-tracker"
"""Default namespace written on encoding (the drafts leave it "TBD"; decoding ignores it)."""

SUCCESS_TEXT = "SUCCESSFUL"
"""``<Response>`` text of a successful answer.  ``OK`` is accepted too when decoding."""

ERROR_TEXT: dict[TrackerErrorCode, str] = {
    TrackerErrorCode.BAD_REQUEST: "BAD REQUEST",
    TrackerErrorCode.UNSUPPORTED_VERSION: "UNSUPPORTED VERSION NUMBER",
    TrackerErrorCode.FORBIDDEN: "FORBIDDEN",
    TrackerErrorCode.INTERNAL_ERROR: "INTERNAL SERVER ERROR",
    TrackerErrorCode.SERVICE_UNAVAILABLE: "SERVICE UNAVAILABLE",
    TrackerErrorCode.AUTHENTICATION_REQUIRED: "AUTHENTICATION REQUIRED",
    TrackerErrorCode.NOT_FOUND: "NOT FOUND",
    TrackerErrorCode.PAYLOAD_TOO_LARGE: "PAYLOAD TOO LARGE",
}
"""``<Response>`` text of an error answer body, per code (the drafts name only the 401 one)."""

METHODS_BY_VERSION: dict[ProtocolVersion, frozenset[Method]] = {
    # JOIN exists only in huang-01 (1.1).  DISCONNECT is a 1.1 message too, but
    # draft-huang-...-04 prints it (and ContentGroup) in version="1.0" examples, so a 1.0
    # DISCONNECT is accepted; whether a tracker honours it is the tracker's decision.
    ProtocolVersion.V1_0: frozenset(
        {Method.CONNECT, Method.FIND, Method.STAT_REPORT, Method.DISCONNECT}
    ),
    ProtocolVersion.V1_1: frozenset(Method),
}
"""Request methods the codec accepts in each protocol version."""

# The bounds are the shared ones of ppsp.wire.fields (MAX_ADVERTISED_ADDRESSES, MAX_STATS,
# MAX_EXTRA_STATISTICS, MAX_SEGMENTS, MAX_TOKEN_LENGTH and MAX_INTEGER are imported from there),
# under the names of this module's elements where they differ.
MAX_SWARM_IDS = MAX_SWARM_ACTIONS
"""Most SwarmID elements in one request."""
MAX_PEER_ADDRESSES = fields.MAX_PEER_ADDRESSES
"""Most PeerAddress elements per PeerInfo in a response (a request carries at most
:data:`MAX_ADVERTISED_ADDRESSES`)."""
MAX_PEER_INFOS = MAX_LISTED_PEERS + 1
"""Most PeerInfo elements in one response: the listed peers and the requester."""
MAX_CONTENT_SCOPES = MAX_REPRESENTATIONS
"""Most Representation elements in one ContentGroup or one ContentMap Stat."""
MAX_RESULTS = MAX_SWARM_ACTIONS + 1
"""Most Result elements in one response TransactionID (a root plus MAX_SWARM_IDS actions)."""

_MAX_PORT = fields.MAX_PORT
_ROOT = "PPSPTrackerProtocol"
_SUCCESS_TEXTS = frozenset({SUCCESS_TEXT, "OK"})
_ERROR_CODES_BY_TEXT = {text: code for code, text in ERROR_TEXT.items()}
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_STAT_STREAM = "StreamStatistics"
_STAT_CONTENT_MAP = "ContentMap"
_STANDARD_STATISTICS = frozenset(
    {"SwarmID", "UploadedBytes", "DownloadedBytes", "AvailBandwidth", "ConcurrentLinks"}
)
_SINGLETONS = (
    "Request",
    "Response",
    "TransactionID",
    "PeerID",
    "PeerNum",
    "PeerGroup",
    "ContentGroup",
    "StatisticsGroup",
)

# A token: no whitespace, no C0/C1 controls, no code points XML cannot carry (fields.TOKEN_RE).
_TOKEN_RE = TOKEN_RE
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_RESULT_RE = re.compile(r"([1-5][0-9][0-9])(?:\s.*)?", re.DOTALL)
_VERSION_REASON_RE = re.compile(r"version.*\d+\.\d+", re.IGNORECASE | re.DOTALL)

_Element = etree._Element
_Error = Callable[[str], Exception]
_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Field validation, shared by the decoder (raising BadRequest) and the encoder (raising
# LocalProtocolError), so that whatever encodes also decodes to the same value.


def _token(value: str | None, what: str, error: _Error) -> str:
    if value is None:
        raise error(f"{what} is missing")
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise error(f"{what} is not a valid token: {str(value)[:40]!r}")
    return value


def _swarm(value: str | None, what: str, error: _Error) -> str:
    """A swarm's own ID: a token other than ``ALL`` and ``nil`` (fields.is_swarm_id)."""
    token = _token(value, what, error)
    if token in RESERVED_SWARM_IDS:
        raise error(f"{what} {token!r} is not a swarm's ID (it has a meaning in DISCONNECT)")
    return token


def _integer(value: str | None, what: str, error: _Error, maximum: int = MAX_INTEGER) -> int:
    if value is None:
        raise error(f"{what} is missing")
    text = value.strip()
    if not _DIGITS_RE.fullmatch(text):
        raise error(f"{what} is not a non-negative decimal integer: {text[:40]!r}")
    number = int(text)
    if number > maximum:
        raise error(f"{what} is larger than {maximum}")
    return number


def _check_integer(value: int, what: str, maximum: int = MAX_INTEGER, minimum: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise LocalProtocolError(
            f"{what} must be an integer in [{minimum}, {maximum}], got {value!r}"
        )
    return str(value)


def _enum(cls: type[_E], value: str | None, what: str) -> _E:
    if value is None:
        raise BadRequest(f"{what} is missing")
    text = value.strip()
    member = _members(cls).get(text)
    if member is None:
        raise BadRequest(f"{what} has an unknown value: {text[:40]!r}")
    return member


_MEMBERS: dict[type[Enum], dict[str, Enum]] = {}


def _members(cls: type[_E]) -> dict[str, _E]:
    """The members of an enumeration of text values, by value."""
    table = _MEMBERS.get(cls)
    if table is None:
        table = _MEMBERS[cls] = {member.value: member for member in cls}
    return table  # type: ignore[return-value]


_VERSIONS_OF: dict[AddressFamily | None, int | None] = {
    None: None,
    AddressFamily.IPV4: 4,
    AddressFamily.IPV6: 6,
}
_FAMILIES_OF = {4: AddressFamily.IPV4, 6: AddressFamily.IPV6}


def _ip(value: str, family: AddressFamily | None, error: _Error) -> tuple[str, AddressFamily]:
    """The canonical form and family of an IP address (fields.canonical_ip)."""
    try:
        text, version = fields.canonical_ip(value, _VERSIONS_OF[family])
    except (ValueError, KeyError) as exc:
        raise error(f"ip: {exc}") from None
    return text, _FAMILIES_OF[version]


def _bitmap(text: str, size: int, error: _Error) -> bytes:
    """The bit string of a Base64 chunk map (fields.chunkmap_bytes)."""
    try:
        return fields.chunkmap_bytes(text, size)
    except ValueError as exc:
        raise error(f"SegmentInfo chunk map: {exc}") from None


# --------------------------------------------------------------------------------------------
# Tree helpers (decoding)


def _elements(element: _Element) -> list[_Element]:
    """Child elements, and a check that the element holds no character data besides them."""
    text = element.text
    if text is not None and text.strip():
        raise BadRequest(f"unexpected text in <{_local_name(element)}>")
    children = []
    for child in element:
        tail = child.tail
        if tail is not None and tail.strip():
            raise BadRequest(f"unexpected text in <{_local_name(element)}>")
        if isinstance(child.tag, str):
            children.append(child)
    return children


def _text(element: _Element) -> str:
    """Stripped text of a leaf element; a leaf with child elements is a bad request."""
    if len(element) and any(isinstance(child.tag, str) for child in element):
        raise BadRequest(f"<{_local_name(element)}> must not contain elements")
    return (element.text or "").strip()


def _group(element: _Element, limits: dict[str, int]) -> dict[str, list[_Element]]:
    """Children by local name; ``limits`` bounds the count of each name it lists.

    The checks of :func:`_elements` come first: text where only elements belong is reported
    before a count over its bound, as if the children had been listed and then grouped.
    """
    text = element.text
    if text is not None and text.strip():
        raise BadRequest(f"unexpected text in <{_local_name(element)}>")
    groups: dict[str, list[_Element]] = {}
    over: str | None = None
    for child in element:
        tail = child.tail
        if tail is not None and tail.strip():
            raise BadRequest(f"unexpected text in <{_local_name(element)}>")
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = _LOCAL_NAMES.get(tag)
        if name is None:
            name = _tag_local_name(tag)
        members = groups.get(name)
        if members is None:
            groups[name] = [child]
        else:
            members.append(child)
            # Every limit is at least 1, so a first member never exceeds its bound.
            if over is None and (limit := limits.get(name)) is not None and len(members) > limit:
                over = name
    if over is not None:
        raise BadRequest(f"more than {limits[over]} <{over}> in <{_local_name(element)}>")
    return groups


def _only(groups: dict[str, list[_Element]], name: str) -> _Element | None:
    members = groups.get(name)
    return members[0] if members else None


def _required(groups: dict[str, list[_Element]], name: str) -> _Element:
    element = _only(groups, name)
    if element is None:
        raise BadRequest(f"<{name}> is missing")
    return element


def _attribute(element: _Element, name: str) -> str | None:
    """:func:`~ppsp.codecs.safexml.attribute`, listing only the names when ``name`` is absent."""
    value = element.get(name)
    if value is not None:
        return value
    suffix = "}" + name
    for key in element.keys():  # noqa: SIM118 (iterating an element yields its children)
        if isinstance(key, str) and key.endswith(suffix):
            return element.get(key)
    return None


def _local_name(element: _Element) -> str:
    """:func:`~ppsp.codecs.safexml.local_name`, without building a QName."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    name = _LOCAL_NAMES.get(tag)
    return name if name is not None else _tag_local_name(tag)


_LOCAL_NAMES: dict[str, str] = {}
"""Local names by qualified tag (``{namespace}name``), for the tags seen most."""
_LOCAL_NAMES_SIZE = 256


def _tag_local_name(tag: str) -> str:
    name = tag.rpartition("}")[2]
    # Bounded: a hostile document may carry any number of distinct tags.
    if len(_LOCAL_NAMES) < _LOCAL_NAMES_SIZE:
        _LOCAL_NAMES[tag] = name
    return name


# The readers below check the common, valid case first and only describe the field (which
# costs more than the check) when they raise.


def _attr_token(element: _Element, name: str, *, required: bool = False) -> str | None:
    value = _attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        value = value.strip()
        if _TOKEN_RE.fullmatch(value):
            return value
    return _token(value, f"@{name} of <{_local_name(element)}>", BadRequest)


def _attr_integer(
    element: _Element, name: str, *, required: bool = False, maximum: int = MAX_INTEGER
) -> int | None:
    value = _attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        text = value.strip()
        if _DIGITS_RE.fullmatch(text) and (number := int(text)) <= maximum:
            return number
    return _integer(value, f"@{name} of <{_local_name(element)}>", BadRequest, maximum)


def _attr_enum(element: _Element, name: str, cls: type[_E], *, required: bool = False) -> _E | None:
    value = _attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        member = _members(cls).get(value.strip())
        if member is not None:
            return member
    return _enum(cls, value, f"@{name} of <{_local_name(element)}>")


def _text_token(element: _Element) -> str:
    text = _text(element)
    if _TOKEN_RE.fullmatch(text):
        return text
    return _token(text, f"<{_local_name(element)}>", BadRequest)


def _text_swarm(element: _Element) -> str:
    """The swarm ID an element holds (a token other than ``ALL`` and ``nil``)."""
    text = _text(element)
    if _TOKEN_RE.fullmatch(text) and text not in RESERVED_SWARM_IDS:
        return text
    return _swarm(text, f"<{_local_name(element)}>", BadRequest)


def _attr_swarm(element: _Element, name: str) -> str | None:
    """The optional swarm ID attribute ``name``."""
    value = _attr_token(element, name)
    if value is None or value not in RESERVED_SWARM_IDS:
        return value
    return _swarm(value, f"@{name} of <{_local_name(element)}>", BadRequest)


# --------------------------------------------------------------------------------------------
# Decoding

# The decoded messages are built by writing their slots (see positional_builder): the fields in
# declaration order, every one given.
_build_connect = positional_builder(ConnectRequest)
_build_join = positional_builder(JoinRequest)
_build_disconnect = positional_builder(DisconnectRequest)
_build_find = positional_builder(FindRequest)
_build_report = positional_builder(StatReportRequest)
_build_stream_statistics = positional_builder(StreamStatistics)
_build_content_map = positional_builder(ContentMap)
_build_representation = positional_builder(RepresentationMap)
_build_segment = positional_builder(SegmentMap)
_build_swarm_action = positional_builder(SwarmAction)


def _parse(data: bytes) -> _Element:
    if len(data) > MAX_XML_BYTES:
        raise PayloadTooLarge(f"message body of {len(data)} bytes exceeds {MAX_XML_BYTES}")
    try:
        # Whitespace-only text is ignored everywhere below; the parser need not keep it.
        root = parse_xml(data, keep_blank_text=False)
    except XMLRejected as exc:
        raise BadRequest(str(exc)) from None
    except (etree.LxmlError, ValueError, TypeError) as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if _local_name(root) != _ROOT:
        raise BadRequest(f"root element is <{_local_name(root)}>, not <{_ROOT}>")
    return root


def _version(root: _Element) -> ProtocolVersion:
    value = _attribute(root, "version")
    if value is None:
        raise BadRequest("@version is missing")
    text = value.strip()
    version = _members(ProtocolVersion).get(text)
    if version is not None:
        return version
    raise UnsupportedVersion(
        f"PPSP-TP version {text[:20]!r} is not supported",
        reason="PPSP version " + ", ".join(v.value for v in ProtocolVersion),
    )


def _results(container: _Element) -> tuple[str, tuple[ActionResult, ...]]:
    """Root transaction ID and per-action results of a response ``<TransactionID>``.

    Plain text is the root ID.  With ``<Result>`` children, the root ID is the first
    ``@transactionID`` that ends in ``.0`` or, failing that, the first ``@transactionID``.
    """
    if not any(isinstance(child.tag, str) for child in container):
        return _text_token(container), ()
    children = _elements(container)
    found = [child for child in children if _local_name(child) == "Result"]
    if len(found) > MAX_RESULTS:
        raise BadRequest(f"more than {MAX_RESULTS} <Result> elements")
    results = []
    for element in found:
        match = _RESULT_RE.fullmatch(_text(element))
        if match is None:
            raise BadRequest("<Result> does not start with a status code")
        results.append(
            ActionResult(
                transaction_id=_attr_token(element, "transactionID"),
                swarm_id=_attr_swarm(element, "swarmID"),
                status=int(match.group(1)),
            )
        )
    ids = [result.transaction_id for result in results if result.transaction_id is not None]
    if not ids:
        raise BadRequest("<TransactionID> holds no transaction ID")
    root = next((tid for tid in ids if tid.endswith(".0")), ids[0])
    return root, tuple(results)


def _peek_transaction_id(root: _Element) -> str | None:
    """The message's transaction ID if it can be read, for error answers."""
    for child in root:
        if isinstance(child.tag, str) and _local_name(child) == "TransactionID":
            try:
                return _results(child)[0]
            except TrackerProtocolError:
                return None
    return None


def _peer_address(element: _Element) -> PeerAddress:
    _text(element)
    family = _attr_enum(element, "addrType", AddressFamily)
    ip_text = _attr_token(element, "ip", required=True)
    assert ip_text is not None
    ip, family = _ip(ip_text, family, BadRequest)
    port = _attr_integer(element, "port", required=True, maximum=_MAX_PORT)
    assert port is not None
    if port < MIN_PORT:
        raise BadRequest(f"@port of <PeerAddress> is below {MIN_PORT}")
    return PeerAddress(
        ip=ip,
        port=port,
        family=family,
        priority=_attr_integer(element, "priority"),
        type=_attr_enum(element, "type", AddressType),
        connection=_attr_token(element, "connection"),
        asn=_attr_token(element, "asn"),
        peer_protocol=_attr_token(element, "peerProtocol"),
    )


def _peer_info(element: _Element) -> PeerInfo:
    groups = _group(element, {"PeerID": 1, "PeerAddress": MAX_PEER_ADDRESSES})
    peer_id = _only(groups, "PeerID")
    return PeerInfo(
        peer_id=None if peer_id is None else _text_token(peer_id),
        addresses=tuple(_peer_address(e) for e in groups.get("PeerAddress", [])),
        swarm_id=_attr_swarm(element, "swarmID"),
    )


def _peer_infos(groups: dict[str, list[_Element]]) -> list[PeerInfo]:
    group = _only(groups, "PeerGroup")
    if group is None:
        return []
    infos = _group(group, {"PeerInfo": MAX_PEER_INFOS}).get("PeerInfo", [])
    return [_peer_info(info) for info in infos]


def _peer_num(groups: dict[str, list[_Element]]) -> PeerNum | None:
    element = _only(groups, "PeerNum")
    if element is None:
        return None
    text = _text(element)
    return PeerNum(
        count=_integer(text, "<PeerNum>", BadRequest) if text else None,
        ability_nat=_attr_token(element, "abilityNAT"),
        concurrent_links=_attr_token(element, "concurrentLinks"),
        online_time=_attr_token(element, "onlineTime"),
        upload_bandwidth=_attr_token(element, "uploadBWlevel"),
    )


def _content_group(groups: dict[str, list[_Element]]) -> tuple[RepresentationScope, ...]:
    group = _only(groups, "ContentGroup")
    if group is None:
        return ()
    scopes = []
    for representation in _group(group, {"Representation": MAX_REPRESENTATIONS}).get(
        "Representation", []
    ):
        segments = _group(representation, {}).get("SegmentInfo", [])
        if len(segments) != 1:
            raise BadRequest("a ContentGroup <Representation> needs exactly one <SegmentInfo>")
        segment = segments[0]
        _text(segment)
        start = _attr_integer(segment, "startIndex", required=True)
        end = _attr_integer(segment, "endIndex")
        assert start is not None
        if end is not None and end < start:
            raise BadRequest("@endIndex is below @startIndex")
        representation_id = _attr_token(representation, "id", required=True)
        assert representation_id is not None
        scopes.append(
            RepresentationScope(
                representation_id=representation_id, start_index=start, end_index=end
            )
        )
    return tuple(scopes)


def _swarm_actions(
    elements: Sequence[_Element], *, action: bool, peer_mode: bool
) -> tuple[SwarmAction, ...]:
    actions = []
    seen: set[str] = set()
    for element in elements:
        swarm_id = _text_swarm(element)
        if swarm_id in seen:
            raise BadRequest(f"SwarmID {swarm_id[:40]!r} appears twice")
        seen.add(swarm_id)
        kind = _attr_enum(element, "action", SwarmActionType, required=True) if action else None
        mode = None
        if peer_mode:
            # Joining needs a mode; leaving may name one (the 1.0 examples do).
            required = kind is not SwarmActionType.LEAVE
            mode = _attr_enum(element, "peerMode", PeerMode, required=required)
        actions.append(
            _build_swarm_action(swarm_id, kind, mode, _attr_token(element, "transactionID"))
        )
    return tuple(actions)


def _decode_connect(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[_Element]]
) -> ConnectRequest:
    swarm_ids = groups.get("SwarmID", [])
    if version is ProtocolVersion.V1_0 and not swarm_ids:
        raise BadRequest("a PPSP-TP/1.0 CONNECT needs at least one <SwarmID>")
    addresses = [address for info in _peer_infos(groups) for address in info.addresses]
    if len(addresses) > MAX_ADVERTISED_ADDRESSES:
        raise BadRequest(f"more than {MAX_ADVERTISED_ADDRESSES} <PeerAddress> in a request")
    actions = _swarm_actions(swarm_ids, action=True, peer_mode=True)
    _clear_action_ids(tid, actions, BadRequest)
    return _build_connect(
        version,
        tid,
        peer_id,
        tuple(addresses),
        actions,
        _peer_num(groups),
        _content_group(groups),
    )


def _decode_join(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[_Element]]
) -> JoinRequest:
    swarm_ids = groups.get("SwarmID", [])
    if not swarm_ids:
        raise BadRequest("JOIN needs at least one <SwarmID>")
    actions = _swarm_actions(swarm_ids, action=False, peer_mode=True)
    _clear_action_ids(tid, actions, BadRequest)
    return _build_join(
        version,
        tid,
        peer_id,
        actions,
        _peer_num(groups),
        _content_group(groups),
    )


def _decode_disconnect(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[_Element]]
) -> DisconnectRequest:
    elements = groups.get("SwarmID", [])
    texts = [_text(element) for element in elements]
    swarms: tuple[SwarmAction, ...] = ()
    if not elements:
        # The form of draft-huang-...-04 and of earlier releases: leaving the system.
        scope = DisconnectScope.SYSTEM
    elif ALL_SWARMS in texts or NO_SWARM in texts:
        word = ALL_SWARMS if ALL_SWARMS in texts else NO_SWARM
        if len(elements) > 1:
            raise BadRequest(f"<SwarmID>{word}</SwarmID> must stand alone")
        scope = DisconnectScope.ALL_SWARMS if word == ALL_SWARMS else DisconnectScope.SYSTEM
    else:
        scope = DisconnectScope.SWARMS
        swarms = tuple(
            SwarmAction(swarm_id=action.swarm_id, transaction_id=action.transaction_id)
            for action in _swarm_actions(elements, action=False, peer_mode=False)
        )
        _clear_action_ids(tid, swarms, BadRequest)
    return _build_disconnect(version, tid, peer_id, scope, swarms)


def _decode_find(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[_Element]]
) -> FindRequest:
    swarm_ids = groups.get("SwarmID", [])
    if len(swarm_ids) != 1:
        raise BadRequest("FIND needs exactly one <SwarmID>")
    return _build_find(
        version, tid, peer_id, _text_swarm(swarm_ids[0]), _peer_num(groups), _content_group(groups)
    )


def _stream_statistics(element: _Element) -> StreamStatistics:
    values: dict[str, int] = {}
    swarm_id: str | None = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for child in _elements(element):
        name = _local_name(child)
        if name in _STANDARD_STATISTICS:
            if name in seen:
                raise BadRequest(f"<{name}> appears twice in a Stat")
            seen.add(name)
            if name == "SwarmID":
                swarm_id = _text_swarm(child)
            else:
                text = _text(child)
                if _DIGITS_RE.fullmatch(text) and (number := int(text)) <= MAX_INTEGER:
                    values[name] = number
                else:
                    values[name] = _integer(text, f"<{name}>", BadRequest)
        elif is_extra_statistic_name(name):
            # One value per name, as a JSON object has it.
            if name in seen:
                raise BadRequest(f"<{name}> appears twice in a Stat")
            seen.add(name)
            if len(extra) >= MAX_EXTRA_STATISTICS:
                raise BadRequest(f"more than {MAX_EXTRA_STATISTICS} extra statistics")
            extra.append((name, _text_token(child)))
        # Other names (a standard statistic's JSON name, a name JSON could not carry as a plain
        # member) are extensions this codec cannot pass on: ignored.
    return _build_stream_statistics(
        swarm_id,
        values.get("UploadedBytes"),
        values.get("DownloadedBytes"),
        values.get("AvailBandwidth"),
        values.get("ConcurrentLinks"),
        tuple(extra),
    )


def _content_map(element: _Element, budget: list[int]) -> ContentMap:
    groups = _group(element, {"SwarmID": 1, "Representation": MAX_REPRESENTATIONS})
    representations = []
    for representation in groups.get("Representation", []):
        segments = []
        for segment in _group(representation, {}).get("SegmentInfo", []):
            budget[0] -= 1
            if budget[0] < 0:
                raise BadRequest(f"more than {MAX_SEGMENTS} <SegmentInfo> in a STAT_REPORT")
            start = _attr_integer(segment, "startIndex", required=True)
            end = _attr_integer(segment, "endIndex", required=True)
            size = _attr_integer(segment, "chunkmapSize", required=True)
            assert start is not None and end is not None and size is not None
            if end < start or size != end - start + 1:
                raise BadRequest("SegmentInfo needs chunkmapSize = endIndex - startIndex + 1")
            bitmap = _bitmap(_text(segment), size, BadRequest)
            segments.append(_build_segment(start, end, size, bitmap))
        if not segments:
            raise BadRequest("a ContentMap <Representation> needs at least one <SegmentInfo>")
        representation_id = _attr_token(representation, "id", required=True)
        assert representation_id is not None
        representations.append(_build_representation(representation_id, tuple(segments)))
    if not representations:
        raise BadRequest("a ContentMap Stat needs at least one <Representation>")
    swarm_id = _required_token(groups, "SwarmID")
    if swarm_id in RESERVED_SWARM_IDS:
        _swarm(swarm_id, "<SwarmID>", BadRequest)
    return _build_content_map(swarm_id, tuple(representations))


def _decode_stat_report(
    version: ProtocolVersion, tid: str, peer_id: str, groups: dict[str, list[_Element]]
) -> StatReportRequest:
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    group = _only(groups, "StatisticsGroup")
    if group is not None:
        budget = [MAX_SEGMENTS]
        for stat in _group(group, {"Stat": MAX_STATS}).get("Stat", []):
            prop = _attr_token(stat, "property", required=True)
            if prop == _STAT_STREAM:
                stream_stats.append(_stream_statistics(stat))
            elif prop == _STAT_CONTENT_MAP:
                content_maps.append(_content_map(stat, budget))
            # Other properties are extensions this tracker does not know: ignored.
    return _build_report(version, tid, peer_id, tuple(stream_stats), tuple(content_maps))


_Decoder = Callable[[ProtocolVersion, str, str, dict[str, list[_Element]]], AnyRequest]

_REQUEST_DECODERS: dict[Method, _Decoder] = {
    Method.CONNECT: _decode_connect,
    Method.JOIN: _decode_join,
    Method.DISCONNECT: _decode_disconnect,
    Method.FIND: _decode_find,
    Method.STAT_REPORT: _decode_stat_report,
}


_TOP_LIMITS = {**dict.fromkeys(_SINGLETONS, 1), "SwarmID": MAX_SWARM_IDS}


def _top_level(root: _Element) -> dict[str, list[_Element]]:
    return _group(root, _TOP_LIMITS)


def _decode_request_root(root: _Element) -> AnyRequest:
    version = _version(root)
    groups = _top_level(root)
    if "Response" in groups:
        raise BadRequest("a response where a request was expected")
    method_text = _text(_required(groups, "Request"))
    method = _METHODS.get(method_text)
    if method is None:
        raise BadRequest(f"unknown method {method_text[:40]!r}")
    if method not in METHODS_BY_VERSION[version]:
        raise BadRequest(f"{method.value} is not a PPSP-TP/{version.value} method")
    tid = _required_token(groups, "TransactionID")
    peer_id = _required_token(groups, "PeerID")
    return _REQUEST_DECODERS[method](version, tid, peer_id, groups)


def _actions_of(request: AnyRequest) -> tuple[SwarmAction, ...]:
    """The swarm actions of a request (none for FIND and STAT_REPORT)."""
    if isinstance(request, ConnectRequest):
        return request.swarm_actions
    if isinstance(request, JoinRequest | DisconnectRequest):
        return request.swarms
    return ()


def _clear_action_ids(tid: str, actions: tuple[SwarmAction, ...], error: _Error) -> None:
    """Refuse per-action IDs that would make an answer's root ID ambiguous (fields rule)."""
    if not fields.clear_action_ids(tid, actions):
        raise error(f"a swarm's transaction ID ends in '.0' but the request's {tid!r} does not")


_METHODS = _members(Method)


def _required_token(groups: dict[str, list[_Element]], name: str) -> str:
    """``_text_token(_required(groups, name))``, in one call."""
    members = groups.get(name)
    if not members:
        raise BadRequest(f"<{name}> is missing")
    text = _text(members[0])
    if _TOKEN_RE.fullmatch(text):
        return text
    return _token(text, f"<{_local_name(members[0])}>", BadRequest)


def _with_transaction_id(root: _Element, decode: Callable[[_Element], _T]) -> _T:
    try:
        return decode(root)
    except TrackerProtocolError as exc:
        if exc.transaction_id is None:
            exc.transaction_id = _peek_transaction_id(root)
        raise


def decode_request(data: bytes) -> AnyRequest:
    """Decode a PPSP-TP/1.0 or 1.1 XML request body.

    Raises :class:`BadRequest` for anything malformed, truncated, mistyped, incomplete, over a
    bound, or a method that is unknown or not part of the message's version;
    :class:`UnsupportedVersion` for a version other than 1.0 and 1.1; :class:`PayloadTooLarge`
    for a body over :data:`~ppsp.codecs.safexml.MAX_XML_BYTES`.  The error carries the request's
    transaction ID whenever the document parsed far enough to read it.
    """
    root = _parse(data)
    request = _plain_request(root)
    if request is not None:
        return request
    return _with_transaction_id(root, _decode_request_root)


# --------------------------------------------------------------------------------------------
# The plain form of the two most frequent requests, read in one pass (the server's hot path)
#
# A FIND or STAT_REPORT as this package writes it (encode_request): every element in the
# namespace, each expected element at most once, no text where elements belong, no extension,
# every value exactly a token or a decimal integer.  _plain_request reads such a document with
# a few attribute reads per element and no grouping; at the first thing it does not expect it
# gives up (None) and the full decoder reads the document from the start, so that it alone
# decides every refusal and every unusual form.  Whatever _plain_request returns is what the
# full decoder returns (tests/codec/test_tracker_xml_plain_path.py checks it on generated and on
# mangled documents).

_Q = "{" + NAMESPACE + "}"
_PLAIN_TOP = {
    _Q + name: index
    for index, name in enumerate(
        ["Request", "TransactionID", "PeerID", "SwarmID", "StatisticsGroup"]
    )
}
_PLAIN_VERSIONS = {version.value: version for version in ProtocolVersion}
_PLAIN_STREAM_FIELDS = {
    _Q + name: index
    for index, name in enumerate(
        ["SwarmID", "UploadedBytes", "DownloadedBytes", "AvailBandwidth", "ConcurrentLinks"]
    )
}
_Q_STAT = _Q + "Stat"
_Q_SWARM_ID = _Q + "SwarmID"
_Q_REPRESENTATION = _Q + "Representation"
_Q_SEGMENT_INFO = _Q + "SegmentInfo"


def _plain_leaf(element: _Element) -> str | None:
    """The stripped text of an element without children or tail, else None."""
    if len(element) or element.tail is not None:
        return None
    text = element.text
    return "" if text is None else text.strip()


def _plain_token(element: _Element | None) -> str | None:
    if element is None:
        return None
    text = _plain_leaf(element)
    return text if text is not None and _TOKEN_RE.fullmatch(text) else None


def _plain_integer(value: str | None) -> int | None:
    # _DIGITS_RE.fullmatch, without a regular expression: 1 to 20 ASCII digits.
    if value is None or not (0 < len(value) <= 20 and value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number <= MAX_INTEGER else None


def _plain_request(root: _Element) -> FindRequest | StatReportRequest | None:
    """A plain FIND or STAT_REPORT (see above), or None for the full decoder to read."""
    version = _PLAIN_VERSIONS.get(root.get("version", ""))
    if version is None or root.text is not None:
        return None
    found: list[_Element | None] = [None, None, None, None, None]
    for child in root:
        index = _PLAIN_TOP.get(child.tag)
        if index is None or found[index] is not None or child.tail is not None:
            return None
        found[index] = child
    request, tid_element, peer_element, swarm_element, group = found
    if request is None:
        return None
    method = _plain_leaf(request)
    tid = _plain_token(tid_element)
    peer_id = _plain_token(peer_element)
    if tid is None or peer_id is None:
        return None
    if method == "FIND":
        swarm_id = _plain_token(swarm_element)
        if swarm_id is None or group is not None or swarm_id in RESERVED_SWARM_IDS:
            return None
        return _build_find(version, tid, peer_id, swarm_id, None, ())
    if method != "STAT_REPORT" or swarm_element is not None:
        return None
    if group is None:
        return _build_report(version, tid, peer_id, (), ())
    if group.text is not None or len(group) > MAX_STATS:
        return None
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    budget = MAX_SEGMENTS
    for stat in group:
        if stat.tag != _Q_STAT or stat.tail is not None or stat.text is not None:
            return None
        kind = stat.get("property")
        if kind == _STAT_STREAM:
            stream = _plain_stream_statistics(stat)
            if stream is None:
                return None
            stream_stats.append(stream)
        elif kind == _STAT_CONTENT_MAP:
            content_map, budget = _plain_content_map(stat, budget)
            if content_map is None:
                return None
            content_maps.append(content_map)
        else:
            return None
    return _build_report(version, tid, peer_id, tuple(stream_stats), tuple(content_maps))


def _plain_stream_statistics(stat: _Element) -> StreamStatistics | None:
    values: list[str | int | None] = [None, None, None, None, None]
    for child in stat:
        index = _PLAIN_STREAM_FIELDS.get(child.tag)
        if index is None or values[index] is not None or len(child) or child.tail is not None:
            return None
        text = child.text
        text = "" if text is None else text.strip()
        if index == 0:
            if not _TOKEN_RE.fullmatch(text) or text in RESERVED_SWARM_IDS:
                return None
            values[0] = text
        else:
            number = _plain_integer(text)
            if number is None:
                return None
            values[index] = number
    swarm_id, uploaded, downloaded, bandwidth, links = values
    return _build_stream_statistics(swarm_id, uploaded, downloaded, bandwidth, links, ())


def _plain_content_map(stat: _Element, budget: int) -> tuple[ContentMap | None, int]:
    swarm_id: str | None = None
    representations: list[RepresentationMap] = []
    for child in stat:
        tag = child.tag
        if tag == _Q_SWARM_ID:
            if swarm_id is not None:
                return None, budget
            swarm_id = _plain_token(child)
            if swarm_id is None or swarm_id in RESERVED_SWARM_IDS:
                return None, budget
            continue
        if tag != _Q_REPRESENTATION or child.tail is not None or child.text is not None:
            return None, budget
        representation_id = child.get("id")
        if representation_id is None or not _TOKEN_RE.fullmatch(representation_id):
            return None, budget
        segments: list[SegmentMap] = []
        for segment in child:
            budget -= 1
            if segment.tag != _Q_SEGMENT_INFO or budget < 0:
                return None, budget
            text = _plain_leaf(segment)
            start = _plain_integer(segment.get("startIndex"))
            end = _plain_integer(segment.get("endIndex"))
            size = _plain_integer(segment.get("chunkmapSize"))
            if text is None or start is None or end is None or end < start:
                return None, budget
            if size != end - start + 1 or size > MAX_CHUNKMAP_BITS:
                return None, budget
            try:
                # What chunkmap_bytes's b64decode(..., validate=True) calls, less the whitespace
                # removal.
                raw = binascii.a2b_base64(text, strict_mode=True)
            except ValueError:  # binascii.Error, or text that is not ASCII
                return None, budget
            # The bits past ``size`` must already be clear: no rewriting here (see _bitmap).
            if len(raw) != (size + 7) // 8 or (size % 8 and raw[-1] & (0xFF >> size % 8)):
                return None, budget
            segments.append(_build_segment(start, end, size, raw))
        if not segments:
            return None, budget
        representations.append(_build_representation(representation_id, tuple(segments)))
    if swarm_id is None or not representations or len(representations) > MAX_REPRESENTATIONS:
        return None, budget
    return _build_content_map(swarm_id, tuple(representations)), budget


def _requester_and_peers(infos: list[PeerInfo]) -> tuple[PeerInfo | None, tuple[PeerInfo, ...]]:
    """The requester and the listed peers of an answer's PeerInfo elements.

    A listed peer needs a PeerID and an address; entries naming one peer for one swarm are one
    peer (:func:`~ppsp.wire.tracker.merge_listed_peers`).
    """
    requester = None
    for index, info in enumerate(infos):
        if _is_requester(info):
            requester = info
            infos = infos[:index] + infos[index + 1 :]
            break
    for info in infos:
        if info.peer_id is None or not info.addresses:
            raise BadRequest("a listed <PeerInfo> needs a <PeerID> and a <PeerAddress>")
    peers = merge_listed_peers(infos)
    if peers is not infos and any(len(peer.addresses) > MAX_PEER_ADDRESSES for peer in peers):
        raise BadRequest(f"a listed peer with more than {MAX_PEER_ADDRESSES} addresses")
    if len(peers) > MAX_LISTED_PEERS:
        raise BadRequest(f"more than {MAX_LISTED_PEERS} listed peers")
    return requester, tuple(peers)


def _is_requester(info: PeerInfo) -> bool:
    return info.swarm_id is None and any(
        address.type is AddressType.REFLEXIVE for address in info.addresses
    )


def _decode_response_root(root: _Element) -> TrackerResponse | ErrorResponse:
    version = _version(root)
    groups = _top_level(root)
    if "Request" in groups:
        raise BadRequest("a request where a response was expected")
    text = _text(_required(groups, "Response"))
    tid, results = _results(_required(groups, "TransactionID"))
    if text not in _SUCCESS_TEXTS:
        code = _ERROR_CODES_BY_TEXT.get(text)
        if code is None:
            raise BadRequest(f"unknown response {text[:40]!r}")
        return ErrorResponse(version=version, transaction_id=tid, code=code)
    requester, peers = _requester_and_peers(_peer_infos(groups))
    return TrackerResponse(
        version=version, transaction_id=tid, results=results, requester=requester, peers=peers
    )


_STATUS_CODES: dict[int, TrackerErrorCode] = {
    400: TrackerErrorCode.BAD_REQUEST,
    401: TrackerErrorCode.AUTHENTICATION_REQUIRED,
    403: TrackerErrorCode.FORBIDDEN,
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
    500: TrackerErrorCode.INTERNAL_ERROR,
    503: TrackerErrorCode.SERVICE_UNAVAILABLE,
}


def _error_code(status: int, reason: str, body_text: str | None) -> TrackerErrorCode:
    code = _STATUS_CODES.get(status)
    if code is None:
        if 400 <= status <= 499:
            code = TrackerErrorCode.BAD_REQUEST
        elif 500 <= status <= 599:
            code = TrackerErrorCode.INTERNAL_ERROR
        else:
            raise BadRequest(f"unexpected HTTP status {status} from the tracker")
    if code is TrackerErrorCode.BAD_REQUEST and (
        reason.strip().lower().startswith("ppsp version")
        or _VERSION_REASON_RE.search(reason) is not None
        or body_text == ERROR_TEXT[TrackerErrorCode.UNSUPPORTED_VERSION]
    ):
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    return code


def _decode_error(data: bytes, status: int, reason: str) -> ErrorResponse:
    # The status line decides; the body (often empty, maybe not even XML) only adds the
    # transaction ID, the version and the 400 flavour, when it can be read.
    version = ProtocolVersion.V1_0
    tid: str | None = None
    body_text: str | None = None
    if data.strip():
        try:
            root = _parse(data)
            tid = _peek_transaction_id(root)
            version = _version(root)
            response = _only(_top_level(root), "Response")
            body_text = None if response is None else _text(response)
        except TrackerProtocolError:
            pass
    return ErrorResponse(
        version=version,
        transaction_id=tid,
        code=_error_code(status, reason, body_text),
        reason=reason or None,
    )


def decode_response(
    data: bytes, status: int = 200, reason: str = ""
) -> TrackerResponse | ErrorResponse:
    """Decode a tracker's XML answer, given the HTTP ``status`` and ``reason`` phrase.

    Status 200 needs a full body: ``SUCCESSFUL`` gives a :class:`TrackerResponse` (an error
    text such as ``AUTHENTICATION REQUIRED`` gives an :class:`ErrorResponse`).  Any 4xx/5xx
    status gives an :class:`ErrorResponse` whose code comes from the status (400 with a reason
    phrase starting ``PPSP version`` or naming versions, or a body saying ``UNSUPPORTED VERSION
    NUMBER``, is UNSUPPORTED_VERSION); its body may be empty or unreadable.  Raises
    :class:`BadRequest` (or :class:`UnsupportedVersion`) for an invalid answer.
    """
    if status != 200:
        return _decode_error(data, status, reason)
    return _with_transaction_id(_parse(data), _decode_response_root)


# --------------------------------------------------------------------------------------------
# Encoding


def _qname(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _new_root(version: ProtocolVersion) -> _Element:
    if not isinstance(version, ProtocolVersion):
        raise LocalProtocolError(f"unknown protocol version {version!r}")
    root = etree.Element(_qname(_ROOT), nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    root.set("version", version.value)
    return root


def _sub(parent: _Element, name: str, text: str | None = None, **attrs: str | None) -> _Element:
    element = etree.SubElement(parent, _qname(name))
    for key, value in attrs.items():
        if value is not None:
            element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _local_token(value: str | None, what: str) -> str | None:
    return None if value is None else _token(value, what, LocalProtocolError)


def _local_swarm(value: str | None, what: str) -> str | None:
    return None if value is None else _swarm(value, what, LocalProtocolError)


def _serialize(root: _Element) -> bytes:
    return _bounded_body(
        _XML_DECLARATION
        + etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    )


def _bounded_body(data: bytes) -> bytes:
    """``data``, unless it is over the bound every reader of this codec enforces."""
    if len(data) > MAX_XML_BYTES:
        raise LocalProtocolError(f"a message of {len(data)} bytes is over {MAX_XML_BYTES}")
    return data


def _bounded(items: Sequence[object], limit: int, what: str) -> None:
    if len(items) > limit:
        raise LocalProtocolError(f"more than {limit} {what}")


def _encode_address(parent: _Element, address: PeerAddress) -> None:
    ip = _token(address.ip, "PeerAddress ip", LocalProtocolError)
    _ip(ip, address.family, LocalProtocolError)
    _sub(
        parent,
        "PeerAddress",
        addrType=address.family.value,
        ip=ip,
        port=_check_integer(address.port, "port", _MAX_PORT, MIN_PORT),
        priority=None if address.priority is None else _check_integer(address.priority, "priority"),
        type=None if address.type is None else address.type.value,
        connection=_local_token(address.connection, "connection"),
        asn=_local_token(address.asn, "asn"),
        peerProtocol=_local_token(address.peer_protocol, "peer_protocol"),
    )


def _encode_peer_info(
    parent: _Element, info: PeerInfo, swarm_id: str | None, *, listed: bool = False
) -> None:
    _bounded(info.addresses, MAX_PEER_ADDRESSES, "addresses in a PeerInfo")
    if listed and (info.peer_id is None or not info.addresses):
        raise LocalProtocolError("a listed peer needs a peer ID and an address")
    element = _sub(parent, "PeerInfo", swarmID=_local_swarm(swarm_id, "PeerInfo swarm_id"))
    if info.peer_id is not None:
        _sub(element, "PeerID", _local_token(info.peer_id, "PeerInfo peer_id"))
    for address in info.addresses:
        _encode_address(element, address)


def _encode_peer_num(root: _Element, peer_num: PeerNum | None) -> None:
    if peer_num is None:
        return
    _sub(
        root,
        "PeerNum",
        None if peer_num.count is None else _check_integer(peer_num.count, "PeerNum count"),
        abilityNAT=_local_token(peer_num.ability_nat, "ability_nat"),
        concurrentLinks=_local_token(peer_num.concurrent_links, "concurrent_links"),
        onlineTime=_local_token(peer_num.online_time, "online_time"),
        uploadBWlevel=_local_token(peer_num.upload_bandwidth, "upload_bandwidth"),
    )


def _encode_content_group(root: _Element, scopes: tuple[RepresentationScope, ...]) -> None:
    if not scopes:
        return
    _bounded(scopes, MAX_REPRESENTATIONS, "representations in a ContentGroup")
    group = _sub(root, "ContentGroup")
    for scope in scopes:
        start = _check_integer(scope.start_index, "start_index")
        end = None
        if scope.end_index is not None:
            end = _check_integer(scope.end_index, "end_index")
            if scope.end_index < scope.start_index:
                raise LocalProtocolError("end_index is below start_index")
        representation = _sub(
            group, "Representation", id=_local_token(scope.representation_id, "representation")
        )
        _sub(representation, "SegmentInfo", startIndex=start, endIndex=end)


def _encode_swarm_ids(
    root: _Element, actions: Iterable[SwarmAction], *, action: bool, peer_mode: bool
) -> None:
    seen: set[str] = set()
    for swarm in actions:
        swarm_id = _swarm(swarm.swarm_id, "swarm_id", LocalProtocolError)
        if swarm_id in seen:
            raise LocalProtocolError(f"swarm {swarm_id!r} appears twice")
        seen.add(swarm_id)
        if action and swarm.action is None:
            raise LocalProtocolError("a CONNECT swarm action needs an action")
        joining = not action or swarm.action is SwarmActionType.JOIN
        if peer_mode and joining and swarm.peer_mode is None:
            raise LocalProtocolError("joining a swarm needs a peer mode")
        _sub(
            root,
            "SwarmID",
            swarm_id,
            action=swarm.action.value if action and swarm.action is not None else None,
            peerMode=swarm.peer_mode.value if peer_mode and swarm.peer_mode is not None else None,
            transactionID=_local_token(swarm.transaction_id, "transaction_id"),
        )


def _encode_connect(root: _Element, msg: ConnectRequest) -> None:
    if msg.version is ProtocolVersion.V1_0 and not msg.swarm_actions:
        raise LocalProtocolError("a PPSP-TP/1.0 CONNECT needs at least one swarm action")
    _bounded(msg.swarm_actions, MAX_SWARM_IDS, "swarm actions")
    _bounded(msg.peer_addresses, MAX_ADVERTISED_ADDRESSES, "peer addresses")
    _encode_swarm_ids(root, msg.swarm_actions, action=True, peer_mode=True)
    _encode_peer_num(root, msg.peer_num)
    if msg.peer_addresses:
        _encode_peer_info(_sub(root, "PeerGroup"), PeerInfo(addresses=msg.peer_addresses), None)
    _encode_content_group(root, msg.content_group)


def _encode_join(root: _Element, msg: JoinRequest) -> None:
    if not msg.swarms:
        raise LocalProtocolError("JOIN needs at least one swarm")
    _bounded(msg.swarms, MAX_SWARM_IDS, "swarms")
    _encode_swarm_ids(root, msg.swarms, action=False, peer_mode=True)
    _encode_peer_num(root, msg.peer_num)
    _encode_content_group(root, msg.content_group)


def _encode_disconnect(root: _Element, msg: DisconnectRequest) -> None:
    if msg.scope is DisconnectScope.SWARMS:
        if not msg.swarms:
            raise LocalProtocolError("DISCONNECT from named swarms needs at least one swarm")
        _bounded(msg.swarms, MAX_SWARM_IDS, "swarms")
        # ALL and nil are refused as swarm IDs (their scopes say them).
        _encode_swarm_ids(root, msg.swarms, action=False, peer_mode=False)
        return
    if msg.swarms:
        raise LocalProtocolError(f"a {msg.scope.value} DISCONNECT names no swarms")
    if msg.scope is DisconnectScope.ALL_SWARMS:
        _sub(root, "SwarmID", ALL_SWARMS)
    elif msg.scope is DisconnectScope.SYSTEM:
        # As huang-01 section 4.2 writes it (readers also take a DISCONNECT without SwarmID).
        _sub(root, "SwarmID", NO_SWARM)
    else:
        raise LocalProtocolError(f"unknown DISCONNECT scope {msg.scope!r}")


def _encode_find(root: _Element, msg: FindRequest) -> None:
    _sub(root, "SwarmID", _swarm(msg.swarm_id, "swarm_id", LocalProtocolError))
    _encode_peer_num(root, msg.peer_num)
    _encode_content_group(root, msg.content_group)


def _encode_stream_statistics(group: _Element, stats: StreamStatistics) -> None:
    stat = _sub(group, "Stat", property=_STAT_STREAM)
    if stats.swarm_id is not None:
        _sub(stat, "SwarmID", _local_swarm(stats.swarm_id, "statistics swarm_id"))
    for name, value in (
        ("UploadedBytes", stats.uploaded_bytes),
        ("DownloadedBytes", stats.downloaded_bytes),
        ("AvailBandwidth", stats.available_bandwidth),
        ("ConcurrentLinks", stats.concurrent_links),
    ):
        if value is not None:
            _sub(stat, name, _check_integer(value, name))
    _bounded(stats.extra, MAX_EXTRA_STATISTICS, "extra statistics")
    names: set[str] = set()
    for extra_name, extra_value in stats.extra:
        if not is_extra_statistic_name(extra_name) or extra_name in names:
            raise LocalProtocolError(
                f"extra statistic name {extra_name!r} is reserved, invalid or given twice"
            )
        names.add(extra_name)
        text = _token(extra_value, f"statistic {extra_name}", LocalProtocolError)
        _sub(stat, extra_name, text)


def _encode_content_map(group: _Element, content_map: ContentMap, budget: list[int]) -> None:
    if not content_map.representations:
        raise LocalProtocolError("a content map needs at least one representation")
    _bounded(content_map.representations, MAX_REPRESENTATIONS, "representations in a map")
    stat = _sub(group, "Stat", property=_STAT_CONTENT_MAP)
    _sub(stat, "SwarmID", _swarm(content_map.swarm_id, "content map swarm_id", LocalProtocolError))
    for representation in content_map.representations:
        if not representation.segments:
            raise LocalProtocolError("a content map representation needs at least one segment")
        element = _sub(
            stat,
            "Representation",
            id=_local_token(representation.representation_id, "representation"),
        )
        for segment in representation.segments:
            budget[0] -= 1
            if budget[0] < 0:
                raise LocalProtocolError(f"more than {MAX_SEGMENTS} segments")
            start = _check_integer(segment.start_index, "start_index")
            end = _check_integer(segment.end_index, "end_index")
            size = _check_integer(segment.chunkmap_size, "chunkmap_size")
            if segment.chunkmap_size != segment.end_index - segment.start_index + 1:
                raise LocalProtocolError("chunkmap_size must be end_index - start_index + 1")
            try:
                text = fields.chunkmap_text(segment.bitmap, segment.chunkmap_size)
            except ValueError as exc:
                raise LocalProtocolError(f"segment bitmap: {exc}") from None
            _sub(
                element,
                "SegmentInfo",
                text,
                startIndex=start,
                endIndex=end,
                chunkmapSize=size,
            )


def _encode_stat_report(root: _Element, msg: StatReportRequest) -> None:
    if not msg.stream_stats and not msg.content_maps:
        return
    _bounded((*msg.stream_stats, *msg.content_maps), MAX_STATS, "statistics")
    group = _sub(root, "StatisticsGroup")
    for stats in msg.stream_stats:
        _encode_stream_statistics(group, stats)
    budget = [MAX_SEGMENTS]
    for content_map in msg.content_maps:
        _encode_content_map(group, content_map, budget)


def encode_request(msg: AnyRequest) -> bytes:
    """Encode a request as a PPSP-TP XML body in ``msg.version``.

    Raises :class:`LocalProtocolError` when the message cannot be written so that it decodes
    back to itself (a method the version lacks, an invalid token or integer, a CONNECT
    swarm action without action, ...).  Fields a method does not use (``action`` on a JOIN
    swarm, modes on DISCONNECT swarms) are not written.
    """
    method = msg.method
    if method not in METHODS_BY_VERSION.get(msg.version, frozenset()):
        raise LocalProtocolError(f"{method.value} is not a PPSP-TP/{msg.version} method")
    if isinstance(msg.transaction_id, str):
        _clear_action_ids(msg.transaction_id, _actions_of(msg), LocalProtocolError)
    root = _new_root(msg.version)
    _sub(root, "Request", method.value)
    _sub(root, "TransactionID", _token(msg.transaction_id, "transaction_id", LocalProtocolError))
    _sub(root, "PeerID", _token(msg.peer_id, "peer_id", LocalProtocolError))
    if isinstance(msg, ConnectRequest):
        _encode_connect(root, msg)
    elif isinstance(msg, JoinRequest):
        _encode_join(root, msg)
    elif isinstance(msg, DisconnectRequest):
        _encode_disconnect(root, msg)
    elif isinstance(msg, FindRequest):
        _encode_find(root, msg)
    else:
        _encode_stat_report(root, msg)
    return _serialize(root)


def _encode_results(container: _Element, msg: TrackerResponse) -> None:
    tid = _token(msg.transaction_id, "transaction_id", LocalProtocolError)
    if not msg.results:
        container.text = tid
        return
    _bounded(msg.results, MAX_RESULTS - 1, "results")
    # The root transaction ID is written as the first Result; the decoder takes the first
    # ID ending in ".0", else the first ID, so no other result may end in ".0" unless the root does.
    roots = [r for r in msg.results if r.transaction_id == tid]
    others = [r for r in msg.results if r.transaction_id != tid]
    if not tid.endswith(".0") and any(
        r.transaction_id is not None and r.transaction_id.endswith(".0") for r in others
    ):
        raise LocalProtocolError("only the root transaction ID may end in '.0'")
    first = roots[0] if roots else ActionResult(transaction_id=tid)
    for result in (first, *others, *roots[1:]):
        if isinstance(result.status, bool) or not 100 <= result.status <= 599:
            raise LocalProtocolError(f"result status {result.status!r} is not in [100, 599]")
        _sub(
            container,
            "Result",
            f"{result.status} {_status_phrase(result.status)}",
            transactionID=_local_token(result.transaction_id, "result transaction_id"),
            swarmID=_local_swarm(result.swarm_id, "result swarm_id"),
        )


_PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_PHRASES.update({404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"})


def _status_phrase(status: int) -> str:
    return _PHRASES.get(status, "Error" if status >= 400 else "OK")


def encode_response(msg: TrackerResponse | ErrorResponse) -> bytes:
    """Encode a tracker answer body in ``msg.version``.

    A :class:`TrackerResponse` becomes ``<Response>SUCCESSFUL</Response>``, its transaction
    ID (plain, or ``<Result>`` elements when it has per-action results, the root ID first) and
    a PeerGroup: the requester first without ``@swarmID``, then every peer with its swarm ID.
    An :class:`ErrorResponse` becomes a minimal document whose ``<Response>`` is the code's
    :data:`ERROR_TEXT`; the HTTP status (``msg.code.http_status``) and reason phrase are the
    server's to send.  Raises :class:`LocalProtocolError` for a message that would not decode
    back to itself (for example a requester without a REFLEXIVE address).

    The document is written from string templates, with every value validated by the same
    rules as the element-tree writer and escaped; what it writes is byte for byte what
    :func:`_encode_response_tree` writes.  A message that fails validation is handed to the
    element-tree writer, which raises the error (so both report the same one).
    """
    try:
        return _encode_response_fast(msg)
    except LocalProtocolError:
        return _encode_response_tree(msg)


def _encode_response_tree(msg: TrackerResponse | ErrorResponse) -> bytes:
    """:func:`encode_response` through an lxml element tree: the reference writer."""
    root = _new_root(msg.version)
    if isinstance(msg, ErrorResponse):
        _sub(root, "Response", ERROR_TEXT[msg.code])
        if msg.transaction_id is not None:
            _sub(root, "TransactionID", _local_token(msg.transaction_id, "transaction_id"))
        return _serialize(root)
    _sub(root, "Response", SUCCESS_TEXT)
    _encode_results(_sub(root, "TransactionID"), msg)
    if msg.requester is not None and not _is_requester(
        PeerInfo(addresses=msg.requester.addresses)  # its swarm_id is not written
    ):
        raise LocalProtocolError("the requester needs a REFLEXIVE address")
    if msg.requester is None and any(_is_requester(peer) for peer in msg.peers):
        raise LocalProtocolError(
            "a peer without swarm ID holding a REFLEXIVE address would read as the requester"
        )
    _bounded(msg.peers, MAX_LISTED_PEERS, "peers")
    if msg.requester is not None or msg.peers:
        group = _sub(root, "PeerGroup")
        if msg.requester is not None:
            _encode_peer_info(group, msg.requester, None)
        for peer in msg.peers:
            _encode_peer_info(group, peer, peer.swarm_id, listed=True)
    return _serialize(root)


# --------------------------------------------------------------------------------------------
# Encoding responses from string templates (the server's hot path)

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_HEADS = {
    version: (
        _XML_DECLARATION.decode("ascii")
        + f'<{_ROOT} xmlns="{NAMESPACE}" version="{version.value}">\n'
    )
    for version in ProtocolVersion
}
_TAIL = f"</{_ROOT}>\n"
_INFO_INDENT = "\n      "
_ADDRESS_CACHE: dict[PeerAddress, str] = {}
_ADDRESS_BY_ID: dict[int, tuple[PeerAddress, str]] = {}
_ADDRESS_CACHE_SIZE = 16384
"""Most validated ``<PeerAddress>`` fragments kept; the cache is emptied when it is full."""


def _xml_text(value: str) -> str:
    return value.translate(_ESCAPES)


def _xml_attr(value: str) -> str:
    return value.translate(_ATTR_ESCAPES)


def _fast_token(value: str | None, what: str) -> str:
    """A token validated as the tree writer does, escaped for an attribute value or text."""
    return _xml_attr(_token(value, what, LocalProtocolError))


def _address_fragment(address: PeerAddress) -> str:
    """A valid address's indented ``<PeerAddress .../>``, checked as :func:`_encode_address` does.

    Cached by identity first (the storage hands out the same address objects again and again)
    and then by value.  Equal addresses write equal fragments; addresses with a bool or float
    port or priority (equal to an integer, and invalid) never reach the cache.
    """
    entry = _ADDRESS_BY_ID.get(id(address))
    if entry is not None and entry[0] is address:
        return entry[1]
    plain = type(address.port) is int and (
        address.priority is None or type(address.priority) is int
    )
    if plain:
        cached = _ADDRESS_CACHE.get(address)
        if cached is not None:
            _remember_address(address, cached)
            return cached
    ip = _token(address.ip, "PeerAddress ip", LocalProtocolError)
    if not isinstance(address.family, AddressFamily):
        raise LocalProtocolError("PeerAddress family is not an address family")
    _ip(ip, address.family, LocalProtocolError)
    parts = [
        f'{_INFO_INDENT}<PeerAddress addrType="{address.family.value}" ip="{_xml_attr(ip)}"'
        f' port="{_check_integer(address.port, "port", _MAX_PORT, MIN_PORT)}"'
    ]
    if address.priority is not None:
        parts.append(f' priority="{_check_integer(address.priority, "priority")}"')
    if address.type is not None:
        if not isinstance(address.type, AddressType):
            raise LocalProtocolError("PeerAddress type is not an address type")
        parts.append(f' type="{address.type.value}"')
    for name, value in (
        ("connection", address.connection),
        ("asn", address.asn),
        ("peerProtocol", address.peer_protocol),
    ):
        if value is not None:
            parts.append(f' {name}="{_fast_token(value, name)}"')
    parts.append("/>")
    fragment = "".join(parts)
    if plain:
        if len(_ADDRESS_CACHE) >= _ADDRESS_CACHE_SIZE:
            _ADDRESS_CACHE.clear()
        _ADDRESS_CACHE[address] = fragment
        _remember_address(address, fragment)
    return fragment


def _remember_address(address: PeerAddress, fragment: str) -> None:
    # The entry holds the address, so its id cannot be reused while the entry exists.
    if len(_ADDRESS_BY_ID) >= _ADDRESS_CACHE_SIZE:
        _ADDRESS_BY_ID.clear()
    _ADDRESS_BY_ID[id(address)] = (address, fragment)


_TOKEN_CACHE: dict[tuple[str, str], str] = {}
_TOKEN_CACHE_SIZE = 16384
"""Most validated identifiers kept, as ready-made pieces of the document."""
_PEER_INFO_HEAD = "    <PeerInfo"
_PEER_INFO_TAIL = "\n    </PeerInfo>\n"


def _token_piece(
    value: str, what: str, template: str, *, text: bool = False, swarm: bool = False
) -> str:
    """``template`` holding the validated token ``value`` (a swarm ID with ``swarm``), escaped
    for an attribute (or for element content with ``text``), cached by value and template."""
    plain = type(value) is str
    if plain:
        piece = _TOKEN_CACHE.get((template, value))
        if piece is not None:
            return piece
    token = (_swarm if swarm else _token)(value, what, LocalProtocolError)
    piece = template.format(_xml_text(token) if text else _xml_attr(token))
    if plain:
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_SIZE:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[(template, value)] = piece
    return piece


_SET_ENCODED = EncodedForms._encoded_xml.__set__  # type: ignore[attr-defined]
"""Writes an entry's ``_encoded_xml`` slot (a frozen dataclass refuses ``setattr``)."""


def _listed_fragment(info: PeerInfo) -> str:
    """A listed peer's ``<PeerInfo swarmID=...>`` fragment, written once per entry object.

    The entry is immutable, so the fragment kept in it (see :class:`PeerInfo`) stays right;
    an entry that fails validation keeps nothing and raises every time.
    """
    try:
        return info._encoded_xml  # type: ignore[attr-defined,no-any-return]
    except AttributeError:
        pass
    if info.peer_id is None or not info.addresses:
        raise LocalProtocolError("a listed peer needs a peer ID and an address")
    fragment = _render_peer_info(info.addresses, info.peer_id, info.swarm_id)
    if isinstance(info, EncodedForms):
        _SET_ENCODED(info, fragment)
    return fragment


def _render_peer_info(
    addresses: tuple[PeerAddress, ...], peer_id: str | None, swarm_id: str | None
) -> str:
    if len(addresses) > MAX_PEER_ADDRESSES:
        raise LocalProtocolError(f"more than {MAX_PEER_ADDRESSES} addresses in a PeerInfo")
    if swarm_id is None:
        head = _PEER_INFO_HEAD
    else:
        head = _token_piece(swarm_id, "PeerInfo swarm_id", '    <PeerInfo swarmID="{}"', swarm=True)
    if peer_id is None and not addresses:
        return head + "/>\n"
    parts = [head, ">"]
    if peer_id is not None:
        what = "PeerInfo peer_id"
        parts.append(_token_piece(peer_id, what, "\n      <PeerID>{}</PeerID>", text=True))
    for address in addresses:
        parts.append(_address_fragment(address))
    parts.append(_PEER_INFO_TAIL)
    return "".join(parts)


def _results_fragment(parts: list[str], msg: TrackerResponse, tid: str) -> None:
    """The ``<Result>`` lines of :func:`_encode_results`, with its checks."""
    if len(msg.results) > MAX_RESULTS - 1:
        raise LocalProtocolError(f"more than {MAX_RESULTS - 1} results")
    roots = [r for r in msg.results if r.transaction_id == tid]
    others = [r for r in msg.results if r.transaction_id != tid]
    if not tid.endswith(".0") and any(
        r.transaction_id is not None and r.transaction_id.endswith(".0") for r in others
    ):
        raise LocalProtocolError("only the root transaction ID may end in '.0'")
    first = roots[0] if roots else ActionResult(transaction_id=tid)
    for result in (first, *others, *roots[1:]):
        status = result.status
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise LocalProtocolError(f"result status {status!r} is not in [100, 599]")
        parts.append("    <Result")
        if result.transaction_id is not None:
            what = "result transaction_id"
            parts.append(f' transactionID="{_fast_token(result.transaction_id, what)}"')
        if result.swarm_id is not None:
            swarm_id = _swarm(result.swarm_id, "result swarm_id", LocalProtocolError)
            parts.append(f' swarmID="{_xml_attr(swarm_id)}"')
        parts.append(f">{status} {_status_phrase(status)}</Result>\n")


def _encode_response_fast(msg: TrackerResponse | ErrorResponse) -> bytes:
    """:func:`encode_response` from string templates; LocalProtocolError for an invalid one."""
    head = _HEADS.get(msg.version) if isinstance(msg.version, ProtocolVersion) else None
    if head is None:
        raise LocalProtocolError(f"unknown protocol version {msg.version!r}")
    parts = [head]
    if isinstance(msg, ErrorResponse):
        parts.append(f"  <Response>{ERROR_TEXT[msg.code]}</Response>\n")
        if msg.transaction_id is not None:
            tid = _token(msg.transaction_id, "transaction_id", LocalProtocolError)
            parts.append(f"  <TransactionID>{_xml_text(tid)}</TransactionID>\n")
        parts.append(_TAIL)
        return "".join(parts).encode()
    parts.append(f"  <Response>{SUCCESS_TEXT}</Response>\n")
    tid = _token(msg.transaction_id, "transaction_id", LocalProtocolError)
    if msg.results:
        parts.append("  <TransactionID>\n")
        _results_fragment(parts, msg, tid)
        parts.append("  </TransactionID>\n")
    else:
        parts.append(f"  <TransactionID>{_xml_text(tid)}</TransactionID>\n")
    requester = msg.requester
    if requester is not None and not any(
        address.type is AddressType.REFLEXIVE for address in requester.addresses
    ):
        raise LocalProtocolError("the requester needs a REFLEXIVE address")
    if requester is None and any(_is_requester(peer) for peer in msg.peers):
        raise LocalProtocolError(
            "a peer without swarm ID holding a REFLEXIVE address would read as the requester"
        )
    if len(msg.peers) > MAX_LISTED_PEERS:
        raise LocalProtocolError(f"more than {MAX_LISTED_PEERS} peers")
    if requester is not None or msg.peers:
        parts.append("  <PeerGroup>\n")
        if requester is not None:
            parts.append(_render_peer_info(requester.addresses, requester.peer_id, None))
        for peer in msg.peers:
            parts.append(_listed_fragment(peer))
        parts.append("  </PeerGroup>\n")
    parts.append(_TAIL)
    data = "".join(parts).encode()
    if len(data) > MAX_XML_BYTES:
        _bounded_body(data)  # raises
    return data
