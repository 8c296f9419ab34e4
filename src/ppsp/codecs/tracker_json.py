"""JSON encoding of the tracker protocol: RFC 7846 (``"version": 1``) and its 1.1 extension (``2``).

Bytes in, typed messages out (:mod:`ppsp.wire.tracker`) and back; no I/O.  Decoding validates
everything: a message that comes out of :func:`decode_request` or :func:`decode_response` is
well formed, and anything else raises a :class:`~ppsp.errors.TrackerProtocolError` subclass
(:class:`~ppsp.errors.BadRequest`, :class:`~ppsp.errors.UnsupportedVersion` or
:class:`~ppsp.errors.PayloadTooLarge`) carrying the message's ``transaction_id`` when it could
be read.  Encoding raises :class:`~ppsp.errors.LocalProtocolError` for a message the chosen
version cannot express.

Reading (RFC 7846 as printed and as specified)
----------------------------------------------
The draft's examples and its schema disagree in places; the decoder accepts both forms and the
encoder writes the schema's form:

* every member the schema types as an array (``swarm_action``, ``peer_addr``, ``swarm_result``,
  ``peer_info``, ``stat``, ...) may also be a single object;
* every integer may also be written as a string of ASCII decimal digits (``"concurrent_links":
  "5"``), and identifiers typed as strings (``swarm_id``, ``peer_id``, ``transaction_id``,
  ``asn``, ...) may be written as integers;
* ``"Stat"`` is read as ``"stat"``;
* the request data may sit directly in ``PPSPTrackerProtocol`` instead of its ``connect`` /
  ``find`` / ``join`` / ``disconnect`` wrapper (FIND is printed that way);
* members this module does not know are ignored (RFC 7846 section 4.4), except that an unknown
  member of a ``STREAM_STATS`` stat holding an integer or a string is kept in
  :attr:`StreamStatistics.extra <ppsp.wire.tracker.StreamStatistics.extra>`: that is the
  Stat extension of RFC 7846 section 7.1 (``"online_time": 3600``).

Enumerated values match exactly as the RFC spells them; ``peer_mode`` ``"SEEDER"`` is
:attr:`PeerMode.SEED <ppsp.wire.tracker.PeerMode.SEED>` and ``"SEED"`` is accepted too.  IP
addresses are checked against ``address_type`` (inferred from the address when absent) and kept
in their canonical text form (RFC 5952 for IPv6).  ``peer_count`` and ``priority``, which the
schema requires, are optional here.  A LEAVE ``swarm_action`` may omit ``peer_mode``.

Values follow the field rules every codec shares (:mod:`ppsp.wire.fields`), so that whatever
this module reads the XML codecs can write: identifiers and the other string values
(``connection``, ``asn``, ``peer_protocol``, ``peer_num`` selectors) are *tokens* of 1 to 256
characters without whitespace or control characters; a swarm ID is never ``"ALL"`` or
``"nil"``; a swarm is named once per request.  A ``swarm_action`` member a request type does not
use is dropped as the XML drops it (``action`` of a JOIN, ``action`` and ``peer_mode`` of a
DISCONNECT).  Extension members of a stat are kept only with a name of
:data:`~ppsp.wire.fields.EXTRA_STATISTIC_NAME_RE` and an integer or token value.

Peer lists (RFC 7846 section 3.2.4): a ``peer_info`` is ``{peer_id, peer_addr}`` with one
address; a peer with several addresses is listed as one ``peer_info`` per address.  The reader
merges the entries of one peer ID under one swarm into one peer
(:func:`~ppsp.wire.tracker.merge_listed_peers`) and also reads a ``peer_addr`` array in an
entry (earlier releases wrote it).  A ``peer_info`` needs ``peer_id`` and ``peer_addr``.

Bounds: a body over :data:`MAX_JSON_BYTES` is :class:`~ppsp.errors.PayloadTooLarge`; nesting
deeper than :data:`MAX_DEPTH`, arrays longer than the ``MAX_*`` constants below, integers
outside ``0 .. 2**63 - 1`` (ports ``1 .. 65535``), strings longer than :data:`MAX_TEXT_CHARS`,
control characters in strings, floats, booleans where numbers belong, NaN and infinities are
all :class:`~ppsp.errors.BadRequest`.

Writing
-------
Requests and responses are written compactly in the schema's form: arrays for ``swarm_action``,
request ``peer_addr``, ``swarm_result`` and ``peer_info``; integers as JSON numbers; ``stat``;
FIND inside its ``find`` wrapper.  A ``peer_addr`` that stands for one peer is a single object as
the schema says: a listed peer with several addresses gets one ``peer_info`` per address, in
order; the requester's top-level ``peer_addr`` (``[ppsp_tp_peer_addr_t peer_addr;]``, RFC 7846
section 3.3.4) is its REFLEXIVE address (else its first), and an array found there (earlier
releases wrote one) is read as that one address.  A success response
always carries ``"error_code": 0``; an error response is ``{"version", "response_type": 1,
"error_code", "transaction_id"}`` and nothing else (RFC 7846 section 4.3), with
``transaction_id`` left out when it is not known.  A ``swarm_result`` whose
:class:`~ppsp.wire.tracker.ActionResult` has no ``swarm_id`` is written without one.  Peers
of a :class:`~ppsp.wire.tracker.TrackerResponse` are listed under the ``swarm_result`` of
their ``swarm_id``; a peer whose swarm has no result gets a ``swarm_result`` of its own with
``"result": 0``.  The encoder decodes what it wrote before returning it, so it never emits
anything the decoder would refuse.

Extension (version 2)
---------------------
``"version": 2`` is PPSP-TP/1.1 (draft-huang-ppsp-extended-tracker-protocol-01) carried in JSON
in the style of RFC 7846 section 7.1: everything of version 1 keeps its meaning, and:

* ``request_type`` also takes ``"JOIN"`` and ``"DISCONNECT"``.
* Every ``swarm_action`` may carry ``"transaction_id"``: the per-action transaction ID the XML
  writes as ``@transactionID`` (``"12345.1"``); a ``swarm_result`` echoes it as
  ``"transaction_id"``.  (Version 1 messages may carry it too, as an extension member that
  RFC 7846 peers ignore.)
* CONNECT without ``swarm_action`` (or with an empty one, or without ``connect``) is a
  registration only.  ``connect`` may carry ``content_group`` (the joining point).
* JOIN::

      "join": {"swarm_action": [{"swarm_id": "1111", "peer_mode": "LEECH",
                                 "transaction_id": "12345.1"}],
               "peer_num": {...}, "content_group": [...]}

  ``swarm_action`` holds 1 .. 1000 entries, each with ``swarm_id`` and ``peer_mode``;
  ``action`` may be given and must then be ``"JOIN"``.
* DISCONNECT::

      "disconnect": {"swarm_action": [{"swarm_id": "1111", "transaction_id": "12345.1"}]}
      "disconnect": {"swarm_id": "ALL"}     # every swarm
      "disconnect": {"swarm_id": "nil"}     # the whole system (huang-01 section 4.2)

  Also read: ``"disconnect": "ALL"`` and ``"nil"``, ``"disconnect": {"swarm_id": "1111"}`` and
  ``{"swarm_id": ["1111", "2222"]}``, a ``swarm_action`` whose only entry is ``"ALL"`` or
  ``"nil"``, and, for the system, the forms earlier releases wrote: ``"disconnect": {}``, an
  empty ``swarm_action`` or no ``disconnect`` member.  A ``swarm_action`` may give ``"action":
  "LEAVE"``; ``"ALL"`` or ``"nil"`` mixed with other swarm IDs is a bad request.
* A content group, in CONNECT, JOIN and FIND::

      "content_group": [{"representation_id": "tag4", "start_index": 110, "end_index": 150}]

  ``end_index`` is optional (open-ended) and, when given, not below ``start_index``.  A FIND
  with a content group asks for peers holding chunks of that scope.
* STAT_REPORT: ``stat_report`` is a list of stat groups (a single group object is read too),
  each ``{"type": ..., "stat": [...]}``.  Type ``"STREAM_STATS"`` is RFC 7846's; type
  ``"CONTENT_MAP"`` has stats of the form::

      {"swarm_id": "1111",
       "representation": [{"id": "tag0",
                           "segment_info": [{"start_index": 0, "end_index": 24,
                                             "chunkmap_size": 25, "chunkmap": "<Base64>"}]}]}

  ``chunkmap`` is the Base64 bit string of PROFILE.md (bit *i*, most significant bit first, is
  chunk ``start_index + i``), ``chunkmap_size`` counts its bits and equals ``end_index -
  start_index + 1`` (it may be left out and is then computed), at most
  :data:`MAX_CHUNKMAP_BITS`.  A content map has at least one representation and each
  representation at least one segment.  Stat groups of other types are ignored (an extension
  this module does not know), and so is ``CONTENT_MAP`` in a version 1 message.  A STAT_REPORT
  without ``stat_report``, or with an empty one, is a keep-alive; the encoder leaves the member
  out.

Any other ``version`` is :class:`~ppsp.errors.UnsupportedVersion` (``error_code`` 2), and so is
``2`` for a decoder limited to ``max_version=ProtocolVersion.V1_0``: the answer of a tracker
that knows only RFC 7846, on which a 1.1 peer falls back to version 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Final, TypeVar

import orjson

from ppsp.errors import (
    BadRequest,
    LocalProtocolError,
    PayloadTooLarge,
    RemoteTrackerError,
    TrackerErrorCode,
    UnsupportedVersion,
)
from ppsp.wire import fields
from ppsp.wire.fields import (
    MAX_ADVERTISED_ADDRESSES,
    MAX_CHUNKMAP_BITS,
    MAX_LISTED_PEERS,
    MAX_REPRESENTATIONS,
    MAX_SEGMENTS,
    MAX_STATS,
    MAX_SWARM_ACTIONS,
    NO_SWARM,
    RESERVED_SWARM_IDS,
    is_extra_statistic_name,
    is_token,
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
    "MAX_ADDRESSES",
    "MAX_ADVERTISED_ADDRESSES",
    "MAX_CHUNKMAP_BITS",
    "MAX_DEPTH",
    "MAX_EXTRA_STATS",
    "MAX_JSON_BYTES",
    "MAX_PEERS",
    "MAX_REPRESENTATIONS",
    "MAX_SEGMENTS",
    "MAX_STATS",
    "MAX_SWARM_ACTIONS",
    "MAX_TEXT_CHARS",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

# Decoded messages are built by writing their slots (see positional_builder): the fields in
# declaration order, every one given.
_build_swarm_action = positional_builder(SwarmAction)
_build_connect = positional_builder(ConnectRequest)
_build_join = positional_builder(JoinRequest)
_build_disconnect = positional_builder(DisconnectRequest)
_build_find = positional_builder(FindRequest)
_build_stream_statistics = positional_builder(StreamStatistics)
_build_segment = positional_builder(SegmentMap)
_build_representation = positional_builder(RepresentationMap)
_build_content_map = positional_builder(ContentMap)
_build_report = positional_builder(StatReportRequest)

MAX_JSON_BYTES: Final = 1 << 20
"""Default upper bound on a JSON body, checked before parsing."""

MAX_DEPTH: Final = 32
"""Deepest nesting of arrays and objects accepted (PPSP-TP messages need 10)."""

# The bounds are the shared ones of ppsp.wire.fields: MAX_SWARM_ACTIONS (``swarm_action``
# entries of a request, ``swarm_result`` entries of a response), MAX_ADVERTISED_ADDRESSES
# (``peer_addr`` entries of a request), MAX_STATS (stat groups, and stats over all groups, of a
# STAT_REPORT), MAX_REPRESENTATIONS (of a content group or a content map), MAX_SEGMENTS
# (``segment_info`` entries over all content maps of a STAT_REPORT) and MAX_CHUNKMAP_BITS are
# imported from there; these names are this module's own.

MAX_ADDRESSES: Final = fields.MAX_PEER_ADDRESSES
"""Most addresses of one listed peer (over all its ``peer_info`` entries) or of the requester."""

MAX_PEERS: Final = MAX_LISTED_PEERS
"""Most peers listed in one response (over all its ``swarm_result`` entries)."""

MAX_EXTRA_STATS: Final = fields.MAX_EXTRA_STATISTICS
"""Most extension members kept from one ``STREAM_STATS`` stat."""

MAX_TEXT_CHARS: Final = 512
"""Longest string accepted for a text member that is not a token (``type``, ...)."""

_MAX_PEER_ENTRIES: Final = MAX_PEERS * MAX_ADDRESSES
"""Most ``peer_info`` entries in one ``swarm_result`` (one per address of each peer)."""

_MAX_UINT: Final = 2**63 - 1
_MIN_INT: Final = -(2**63)
_ROOT: Final = "PPSPTrackerProtocol"
_VERSIONS: Final = {1: ProtocolVersion.V1_0, 2: ProtocolVersion.V1_1}
_VERSION_NUMBER: Final = {v: n for n, v in _VERSIONS.items()}
_VERSION_ORDER: Final = (ProtocolVersion.V1_0, ProtocolVersion.V1_1)
_STREAM_STATS: Final = "STREAM_STATS"
_CONTENT_MAP: Final = "CONTENT_MAP"

_PEER_MODES: Final = {"SEEDER": PeerMode.SEED, "SEED": PeerMode.SEED, "LEECH": PeerMode.LEECH}
_PEER_MODE_TEXT: Final = {PeerMode.SEED: "SEEDER", PeerMode.LEECH: "LEECH"}
_ACTIONS: Final = {a.value: a for a in SwarmActionType}
_FAMILIES: Final = {f.value: f for f in AddressFamily}
_ADDRESS_TYPES: Final = {t.value: t for t in AddressType}
_STAT_FIELDS: Final = (
    "uploaded_bytes",
    "downloaded_bytes",
    "available_bandwidth",
    "concurrent_links",
)
_PEER_NUM_SELECTORS: Final = ("ability_nat", "concurrent_links", "online_time", "upload_bandwidth")

_DIGITS: Final = re.compile(r"[0-9]{1,19}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# A JSON string, written so that the regex engine never backtracks into it.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS_TO_PARENS: Final = bytes.maketrans(b"[]{}", b"()()")

# HTTP status of a non-JSON error answer -> the error it stands for.
_HTTP_ERRORS: Final = {
    400: TrackerErrorCode.BAD_REQUEST,
    401: TrackerErrorCode.AUTHENTICATION_REQUIRED,
    403: TrackerErrorCode.FORBIDDEN,
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
    500: TrackerErrorCode.INTERNAL_ERROR,
    503: TrackerErrorCode.SERVICE_UNAVAILABLE,
}


_T = TypeVar("_T")


class _Malformed(ValueError):
    """Internal: the message is malformed; becomes BadRequest with the transaction ID."""


# ---------------------------------------------------------------------------------------------
# Decoding: generic readers.  JSON values are typed ``object`` and narrowed here, once.


def _load_root(data: bytes, max_bytes: int) -> dict[str, object]:
    """Parse ``data`` and return the ``PPSPTrackerProtocol`` object."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"JSON body of {len(data)} bytes exceeds {max_bytes}")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not valid JSON: {exc}") from None
    if _too_deep(data):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    if not isinstance(document, dict):
        raise BadRequest("a PPSP-TP message is a JSON object")
    root = document.get(_ROOT)
    if not isinstance(root, dict):
        raise BadRequest(f"no {_ROOT} object")
    return root


def _too_deep(data: bytes) -> bool:
    """Whether valid JSON ``data`` nests arrays/objects deeper than :data:`MAX_DEPTH`.

    Strings are cut out, every bracket becomes ``(`` or ``)``, and each pass of
    ``replace(b"()", b"")`` removes one level from the bottom: a pair that is innermost now is
    removed in this pass, its parent becomes innermost for the next.  Depth ``d`` needs exactly
    ``d`` passes, each a C-speed scan, so deep or huge input costs at most MAX_DEPTH scans.
    """
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    if len(brackets) <= 2 * MAX_DEPTH:
        return False
    parens = brackets.translate(_BRACKETS_TO_PARENS)
    for _ in range(MAX_DEPTH):
        parens = parens.replace(b"()", b"")
        if not parens:
            return False
    return True


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} must be an object")
    return value


def _items(value: object, where: str, limit: int) -> list[object]:
    """An array member that the printed examples also write as a single value; None is []."""
    if value is None:
        return []
    if isinstance(value, list):
        if len(value) > limit:
            raise _Malformed(f"{where} has more than {limit} entries")
        return value
    return [value]


def _objects(value: object, where: str, limit: int) -> list[dict[str, object]]:
    return [_object(item, where) for item in _items(value, where, limit)]


def _int(value: object, where: str, low: int = 0, high: int = _MAX_UINT) -> int:
    """An integer, also written as a decimal string, within ``[low, high]``."""
    if isinstance(value, bool):
        raise _Malformed(f"{where} must be an integer")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise _Malformed(f"{where} must be an integer")
        value = int(value)
    if not isinstance(value, int):
        raise _Malformed(f"{where} must be an integer")
    if not low <= value <= high:
        raise _Malformed(f"{where} must be in {low}..{high}")
    return value


def _opt_int(value: object, where: str, low: int = 0, high: int = _MAX_UINT) -> int | None:
    return None if value is None else _int(value, where, low, high)


def _text(value: object, where: str, *, numbers: bool = False, empty: bool = True) -> str:
    """A string of at most MAX_TEXT_CHARS without control characters.

    ``numbers`` admits an integer for a member the schema types as a string (IDs, ``asn``).
    """
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        if not _MIN_INT <= value <= _MAX_UINT:
            raise _Malformed(f"{where} is out of range")
        value = str(value)
    if not isinstance(value, str):
        raise _Malformed(f"{where} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise _Malformed(f"{where} is longer than {MAX_TEXT_CHARS} characters")
    if not empty and not value:
        raise _Malformed(f"{where} must not be empty")
    if _CONTROL.search(value):
        raise _Malformed(f"{where} contains control characters")
    return value


def _token(value: object, where: str, *, numbers: bool = False) -> str:
    """A token (:data:`ppsp.wire.fields.TOKEN_RE`): 1 to 256 characters, no whitespace or controls.

    ``numbers`` admits an integer for a member the schema types as a string (IDs, ``asn``).
    """
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        if not _MIN_INT <= value <= _MAX_UINT:
            raise _Malformed(f"{where} is out of range")
        value = str(value)
    if not is_token(value):
        if not isinstance(value, str):
            raise _Malformed(f"{where} must be a string")
        raise _Malformed(
            f"{where} must be 1 to {fields.MAX_TOKEN_LENGTH} characters without whitespace"
            " or control characters"
        )
    return value


def _opt_token(value: object, where: str, *, numbers: bool = False) -> str | None:
    return None if value is None else _token(value, where, numbers=numbers)


def _ident(value: object, where: str) -> str:
    """An identifier (peer, swarm, transaction, representation): a token, or an integer."""
    if value is None:
        raise _Malformed(f"{where} is missing")
    return _token(value, where, numbers=True)


def _opt_ident(value: object, where: str) -> str | None:
    return None if value is None else _ident(value, where)


def _swarm_ident(value: object, where: str) -> str:
    """A swarm's own ID: an identifier other than ``"ALL"`` and ``"nil"``."""
    swarm_id = _ident(value, where)
    if swarm_id in RESERVED_SWARM_IDS:
        raise _Malformed(
            f"{where} {swarm_id!r} is not a swarm's ID (it has a meaning in DISCONNECT)"
        )
    return swarm_id


def _opt_swarm_ident(value: object, where: str) -> str | None:
    return None if value is None else _swarm_ident(value, where)


def _choice(value: object, where: str, table: Mapping[str, _T]) -> _T:
    if value is None:
        raise _Malformed(f"{where} is missing")
    if not isinstance(value, str) or value not in table:
        raise _Malformed(f"{where} must be one of {', '.join(table)}")
    return table[value]


def _opt_choice(value: object, where: str, table: Mapping[str, _T]) -> _T | None:
    return None if value is None else _choice(value, where, table)


def _selector(value: object, where: str) -> str | None:
    """A ``peer_num`` capability selector: RFC 7846 integers or the XML drafts' levels, as text."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(_int(value, where))
    return _token(value, where)


def _peek_transaction_id(root: Mapping[str, object]) -> str | None:
    """The message's transaction ID if it is readable, for error answers."""
    try:
        return _opt_ident(root.get("transaction_id"), "transaction_id")
    except _Malformed:
        return None


def _version(
    root: Mapping[str, object], transaction_id: str | None, max_version: ProtocolVersion
) -> ProtocolVersion:
    try:
        number = _int(root.get("version"), "version", _MIN_INT)
    except _Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None
    supported = [
        n
        for n, v in _VERSIONS.items()
        if _VERSION_ORDER.index(v) <= _VERSION_ORDER.index(max_version)
    ]
    if number not in supported:
        raise UnsupportedVersion(
            f"PPSP-TP JSON version {number} is not supported (supported: {supported})",
            transaction_id=transaction_id,
        )
    return _VERSIONS[number]


# ---------------------------------------------------------------------------------------------
# Decoding: protocol elements.


def _peer_num(value: object) -> PeerNum | None:
    if value is None:
        return None
    obj = _object(value, "peer_num")
    return PeerNum(
        count=_opt_int(obj.get("peer_count"), "peer_num.peer_count"),
        ability_nat=_selector(obj.get("ability_nat"), "peer_num.ability_nat"),
        concurrent_links=_selector(obj.get("concurrent_links"), "peer_num.concurrent_links"),
        online_time=_selector(obj.get("online_time"), "peer_num.online_time"),
        upload_bandwidth=_selector(obj.get("upload_bandwidth"), "peer_num.upload_bandwidth"),
    )


def _peer_address(obj: Mapping[str, object]) -> PeerAddress:
    where = "peer_addr"
    ip_obj = _object(obj.get("ip_address"), f"{where}.ip_address")
    text = _text(ip_obj.get("address"), f"{where}.ip_address.address", empty=False)
    family = _opt_choice(ip_obj.get("address_type"), f"{where}.address_type", _FAMILIES)
    try:
        ip, version = fields.canonical_ip(text, None if family is None else _VERSION_OF[family])
    except ValueError as exc:
        raise _Malformed(f"{where}.ip_address.address: {exc}") from None
    return PeerAddress(
        ip=ip,
        port=_int(obj.get("port"), f"{where}.port", fields.MIN_PORT, fields.MAX_PORT),
        family=AddressFamily.IPV4 if version == 4 else AddressFamily.IPV6,
        priority=_opt_int(obj.get("priority"), f"{where}.priority"),
        type=_opt_choice(obj.get("type"), f"{where}.type", _ADDRESS_TYPES),
        connection=_opt_token(obj.get("connection"), f"{where}.connection"),
        asn=_opt_token(obj.get("asn"), f"{where}.asn", numbers=True),
        peer_protocol=_opt_token(obj.get("peer_protocol"), f"{where}.peer_protocol"),
    )


_VERSION_OF: Final = {AddressFamily.IPV4: 4, AddressFamily.IPV6: 6}


def _peer_addresses(value: object, limit: int = MAX_ADDRESSES) -> tuple[PeerAddress, ...]:
    return tuple(_peer_address(o) for o in _objects(value, "peer_addr", limit))


def _content_group(value: object) -> tuple[RepresentationScope, ...]:
    scopes = []
    for obj in _objects(value, "content_group", MAX_REPRESENTATIONS):
        start = _int(obj.get("start_index"), "content_group.start_index")
        end = _opt_int(obj.get("end_index"), "content_group.end_index")
        if end is not None and end < start:
            raise _Malformed("content_group.end_index is below start_index")
        scopes.append(
            RepresentationScope(
                representation_id=_ident(
                    obj.get("representation_id"), "content_group.representation_id"
                ),
                start_index=start,
                end_index=end,
            )
        )
    return tuple(scopes)


def _swarm_action(
    obj: Mapping[str, object],
    *,
    actions: Mapping[str, SwarmActionType],
    need_action: bool,
    need_mode: bool,
    keep: bool = True,
    reserved: bool = False,
) -> SwarmAction:
    """A ``swarm_action``; without ``keep`` only its swarm and transaction IDs are kept (the
    action and mode were checked and mean nothing to the request); with ``reserved`` its swarm
    ID may be ``ALL`` or ``nil`` (DISCONNECT)."""
    where = "swarm_action"
    action = _opt_choice(obj.get("action"), f"{where}.action", actions)
    if action is None and need_action:
        raise _Malformed(f"{where}.action is missing")
    mode = _opt_choice(obj.get("peer_mode"), f"{where}.peer_mode", _PEER_MODES)
    if mode is None and (need_mode or action is SwarmActionType.JOIN):
        raise _Malformed(f"{where}.peer_mode is missing")
    read_swarm = _ident if reserved else _swarm_ident
    return _build_swarm_action(
        read_swarm(obj.get("swarm_id"), f"{where}.swarm_id"),
        action if keep else None,
        mode if keep or need_mode else None,
        _opt_ident(obj.get("transaction_id"), f"{where}.transaction_id"),
    )


def _once_each(actions: tuple[SwarmAction, ...], transaction_id: str) -> tuple[SwarmAction, ...]:
    """``actions``, refused when they name a swarm twice (as the XML codec refuses it) or when
    a per-action transaction ID would make an XML answer's root ambiguous (fields rule)."""
    if len(actions) > 1 and len({action.swarm_id for action in actions}) != len(actions):
        raise _Malformed("swarm_action names a swarm twice")
    if not fields.clear_action_ids(transaction_id, actions):
        raise _Malformed("a swarm_action's transaction_id ends in '.0' but the request's does not")
    return actions


def _request_data(root: dict[str, object], name: str) -> dict[str, object]:
    """The request's wrapper object, or the root itself when the wrapper is left out."""
    if name in root:
        return _object(root[name], name)
    return root


_Common = tuple[ProtocolVersion, str, str]


def _read_connect(root: dict[str, object], common: _Common) -> ConnectRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "connect")
    actions = _once_each(
        tuple(
            _swarm_action(o, actions=_ACTIONS, need_action=True, need_mode=False)
            for o in _objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
        ),
        transaction_id,
    )
    if version is ProtocolVersion.V1_0 and not actions:
        raise _Malformed("an RFC 7846 CONNECT needs at least one swarm_action")
    return _build_connect(
        version,
        transaction_id,
        peer_id,
        _peer_addresses(data.get("peer_addr"), MAX_ADVERTISED_ADDRESSES),
        actions,
        _peer_num(data.get("peer_num")),
        _content_group(data.get("content_group")) if version is ProtocolVersion.V1_1 else (),
    )


def _read_join(root: dict[str, object], common: _Common) -> JoinRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "join")
    swarms = _once_each(
        tuple(
            _swarm_action(
                o,
                actions={"JOIN": SwarmActionType.JOIN},
                need_action=False,
                need_mode=True,
                keep=False,
            )
            for o in _objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
        ),
        transaction_id,
    )
    if not swarms:
        raise _Malformed("JOIN needs at least one swarm_action")
    return _build_join(
        version,
        transaction_id,
        peer_id,
        swarms,
        _peer_num(data.get("peer_num")),
        _content_group(data.get("content_group")),
    )


_DISCONNECT_WORDS: Final = {
    ALL_SWARMS: DisconnectScope.ALL_SWARMS,
    NO_SWARM: DisconnectScope.SYSTEM,
}


def _read_disconnect(root: dict[str, object], common: _Common) -> DisconnectRequest:
    version, transaction_id, peer_id = common
    value = root.get("disconnect", root)
    swarms: tuple[SwarmAction, ...] = ()
    if isinstance(value, str) and value in _DISCONNECT_WORDS:
        scope = _DISCONNECT_WORDS[value]
    else:
        data = {} if value is None or value == [] else _object(value, "disconnect")
        if "swarm_id" in data and "swarm_action" in data:
            raise _Malformed("disconnect has both swarm_id and swarm_action")
        if "swarm_id" in data:
            swarms = tuple(
                SwarmAction(swarm_id=_ident(item, "disconnect.swarm_id"))
                for item in _items(data["swarm_id"], "disconnect.swarm_id", MAX_SWARM_ACTIONS)
            )
        else:
            swarms = tuple(
                _swarm_action(
                    o,
                    actions={"LEAVE": SwarmActionType.LEAVE},
                    need_action=False,
                    need_mode=False,
                    keep=False,
                    reserved=True,
                )
                for o in _objects(data.get("swarm_action"), "swarm_action", MAX_SWARM_ACTIONS)
            )
        words = [s.swarm_id for s in swarms if s.swarm_id in _DISCONNECT_WORDS]
        if not swarms:
            # The form of earlier releases (and of an empty list): leaving the system.
            scope = DisconnectScope.SYSTEM
        elif words:
            if len(swarms) > 1:
                raise _Malformed(f"disconnect mixes {words[0]} with swarm IDs")
            scope, swarms = _DISCONNECT_WORDS[words[0]], ()
        else:
            scope = DisconnectScope.SWARMS
            _once_each(swarms, transaction_id)
    return _build_disconnect(version, transaction_id, peer_id, scope, swarms)


def _read_find(root: dict[str, object], common: _Common) -> FindRequest:
    version, transaction_id, peer_id = common
    data = _request_data(root, "find")
    return _build_find(
        version,
        transaction_id,
        peer_id,
        _swarm_ident(data.get("swarm_id"), "find.swarm_id"),
        _peer_num(data.get("peer_num")),
        _content_group(data.get("content_group")) if version is ProtocolVersion.V1_1 else (),
    )


def _extra_stat(name: str, value: object) -> tuple[str, str] | None:
    """An extension member of a stat as (name, text), or None for one this codec cannot pass on:
    a name other than :data:`~ppsp.wire.fields.EXTRA_STATISTIC_NAME_RE` (or a standard
    statistic's, in either encoding), a value other than an integer or a token."""
    if not is_extra_statistic_name(name):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        if isinstance(value, int):
            return name, str(_int(value, "value", _MIN_INT))
        return name, _token(value, "value")
    except _Malformed:
        return None


def _stream_stat(obj: Mapping[str, object]) -> StreamStatistics:
    where = "stat"
    extra: list[tuple[str, str]] = []
    for name, value in obj.items():
        item = _extra_stat(name, value)
        if item is not None:
            if len(extra) == MAX_EXTRA_STATS:
                raise _Malformed(f"{where} has more than {MAX_EXTRA_STATS} extension members")
            extra.append(item)
    return _build_stream_statistics(
        _opt_swarm_ident(obj.get("swarm_id"), "stat.swarm_id"),
        _opt_int(obj.get("uploaded_bytes"), "stat.uploaded_bytes"),
        _opt_int(obj.get("downloaded_bytes"), "stat.downloaded_bytes"),
        _opt_int(obj.get("available_bandwidth"), "stat.available_bandwidth"),
        _opt_int(obj.get("concurrent_links"), "stat.concurrent_links"),
        tuple(extra),
    )


def _segment(obj: Mapping[str, object]) -> SegmentMap:
    where = "segment_info"
    start = _int(obj.get("start_index"), "segment_info.start_index")
    end = _int(obj.get("end_index"), "segment_info.end_index")
    if end < start:
        raise _Malformed(f"{where}.end_index is below start_index")
    size = end - start + 1
    if size > MAX_CHUNKMAP_BITS:
        raise _Malformed(f"{where} covers more than {MAX_CHUNKMAP_BITS} chunks")
    declared = _opt_int(obj.get("chunkmap_size"), "segment_info.chunkmap_size")
    if declared is not None and declared != size:
        raise _Malformed(f"{where}.chunkmap_size must be end_index - start_index + 1")
    text = obj.get("chunkmap")
    if not isinstance(text, str):
        raise _Malformed(f"{where}.chunkmap must be a Base64 string")
    try:
        bitmap = fields.chunkmap_bytes(text, size)
    except ValueError as exc:
        raise _Malformed(f"{where}.chunkmap: {exc}") from None
    return _build_segment(start, end, size, bitmap)


def _content_map(obj: Mapping[str, object], budget: list[int]) -> ContentMap:
    """A ``CONTENT_MAP`` stat; ``budget`` holds the segments the message may still have."""
    representations = []
    for rep in _objects(obj.get("representation"), "representation", MAX_REPRESENTATIONS):
        segments = _objects(rep.get("segment_info"), "segment_info", MAX_SEGMENTS)
        budget[0] -= len(segments)
        if budget[0] < 0:
            raise _Malformed(f"stat_report has more than {MAX_SEGMENTS} segment_info entries")
        if not segments:
            raise _Malformed("a representation of a content map needs a segment_info")
        representations.append(
            _build_representation(
                _ident(rep.get("id"), "representation.id"),
                tuple(_segment(seg) for seg in segments),
            )
        )
    if not representations:
        raise _Malformed("a content map needs a representation")
    return _build_content_map(
        _swarm_ident(obj.get("swarm_id"), "stat.swarm_id"), tuple(representations)
    )


def _read_stat_report(root: dict[str, object], common: _Common) -> StatReportRequest:
    version, transaction_id, peer_id = common
    value = root.get("stat_report")
    groups = _objects(value, "stat_report", MAX_STATS)
    stream_stats: list[StreamStatistics] = []
    content_maps: list[ContentMap] = []
    budget = [MAX_SEGMENTS]
    for group in groups:
        if not group:
            continue  # {} is an empty report: a keep-alive
        kind = _text(group.get("type"), "stat_report.type")
        stats = _objects(group.get("stat", group.get("Stat")), "stat", MAX_STATS)
        if len(stream_stats) + len(content_maps) + len(stats) > MAX_STATS:
            raise _Malformed(f"stat_report has more than {MAX_STATS} stats")
        if kind == _STREAM_STATS:
            stream_stats.extend(_stream_stat(s) for s in stats)
        elif kind == _CONTENT_MAP and version is ProtocolVersion.V1_1:
            content_maps.extend(_content_map(s, budget) for s in stats)
    return _build_report(version, transaction_id, peer_id, tuple(stream_stats), tuple(content_maps))


_RequestReader = Callable[[dict[str, object], _Common], AnyRequest]

_REQUEST_READERS: Final[dict[ProtocolVersion, dict[str, _RequestReader]]] = {
    ProtocolVersion.V1_0: {
        "CONNECT": _read_connect,
        "FIND": _read_find,
        "STAT_REPORT": _read_stat_report,
    },
    ProtocolVersion.V1_1: {
        "CONNECT": _read_connect,
        "JOIN": _read_join,
        "DISCONNECT": _read_disconnect,
        "FIND": _read_find,
        "STAT_REPORT": _read_stat_report,
    },
}
"""request_type -> reader, per version: the requests each version has."""


def decode_request(
    data: bytes,
    *,
    max_version: ProtocolVersion = ProtocolVersion.V1_1,
    max_bytes: int = MAX_JSON_BYTES,
) -> AnyRequest:
    """Decode a JSON tracker request.

    ``"version": 1`` gives a :attr:`~ppsp.wire.tracker.ProtocolVersion.V1_0` request as
    RFC 7846 defines it; ``"version": 2`` a ``V1_1`` request of the extension described in this
    module's docstring.  Raises :class:`~ppsp.errors.UnsupportedVersion` for any other version
    (or for 2 when ``max_version`` is ``V1_0``), :class:`~ppsp.errors.PayloadTooLarge` for a
    body over ``max_bytes``, and :class:`~ppsp.errors.BadRequest` for anything malformed; the
    errors carry the request's transaction ID when it could be read.
    """
    root = _load_root(data, max_bytes)
    transaction_id = _peek_transaction_id(root)
    version = _version(root, transaction_id, max_version)
    try:
        request_type = root.get("request_type")
        reader = (
            _REQUEST_READERS[version].get(request_type) if isinstance(request_type, str) else None
        )
        if reader is None:
            raise _Malformed(f"request_type must be one of {', '.join(_REQUEST_READERS[version])}")
        common = (
            version,
            _ident(root.get("transaction_id"), "transaction_id"),
            _ident(root.get("peer_id"), "peer_id"),
        )
        return reader(root, common)
    except _Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None


# ---------------------------------------------------------------------------------------------
# Decoding responses.


def _peer_info(obj: Mapping[str, object], swarm_id: str | None) -> PeerInfo:
    """One ``peer_info`` entry: a peer ID and its address (or, as earlier releases wrote, an
    array of its addresses)."""
    addresses = _peer_addresses(obj.get("peer_addr"))
    if not addresses:
        raise _Malformed("peer_info.peer_addr is missing")
    return PeerInfo(
        peer_id=_ident(obj.get("peer_id"), "peer_info.peer_id"),
        addresses=addresses,
        swarm_id=swarm_id,
    )


def _read_success(root: Mapping[str, object], version: ProtocolVersion) -> TrackerResponse:
    if _opt_int(root.get("error_code"), "error_code") not in (None, 0):
        raise _Malformed("a SUCCESSFUL response has error_code 0")
    results: list[ActionResult] = []
    peers: list[PeerInfo] = []
    for obj in _objects(root.get("swarm_result"), "swarm_result", MAX_SWARM_ACTIONS):
        swarm_id = _opt_swarm_ident(obj.get("swarm_id"), "swarm_result.swarm_id")
        result = _int(obj.get("result"), "swarm_result.result", 0, 1)
        results.append(
            ActionResult(
                transaction_id=_opt_ident(obj.get("transaction_id"), "swarm_result.transaction_id"),
                swarm_id=swarm_id,
                status=200 if result == 0 else 400,
            )
        )
        group = obj.get("peer_group")
        if group is not None:
            infos = _object(group, "peer_group").get("peer_info")
            peers.extend(
                _peer_info(o, swarm_id) for o in _objects(infos, "peer_info", _MAX_PEER_ENTRIES)
            )
    # One peer_info per address (RFC 7846): the entries of one peer become one peer again.
    listed = merge_listed_peers(peers)
    if len(listed) > MAX_PEERS:
        raise _Malformed(f"more than {MAX_PEERS} peers listed")
    if any(len(peer.addresses) > MAX_ADDRESSES for peer in listed):
        raise _Malformed(f"a listed peer with more than {MAX_ADDRESSES} addresses")
    # One address (RFC 7846 section 3.3.4); of an array, as earlier releases wrote, the one
    # the encoder would write.
    requester = _peer_addresses(root.get("peer_addr"))
    if len(requester) > 1:
        requester = (_requester_choice(requester),)
    return TrackerResponse(
        version=version,
        transaction_id=_ident(root.get("transaction_id"), "transaction_id"),
        results=tuple(results),
        requester=PeerInfo(addresses=requester) if requester else None,
        peers=tuple(listed),
    )


def _requester_choice(addresses: Sequence[PeerAddress]) -> PeerAddress:
    """The requester's address a response carries: the REFLEXIVE one, else the first."""
    return next((a for a in addresses if a.type is AddressType.REFLEXIVE), addresses[0])


def _decode_response_body(data: bytes, max_bytes: int) -> TrackerResponse | ErrorResponse:
    root = _load_root(data, max_bytes)
    transaction_id = _peek_transaction_id(root)
    version = _version(root, transaction_id, ProtocolVersion.V1_1)
    try:
        if _int(root.get("response_type"), "response_type", 0, 1) == 0:
            return _read_success(root, version)
        code = _int(root.get("error_code"), "error_code", 1, 6)
        return ErrorResponse(
            version=version, transaction_id=transaction_id, code=TrackerErrorCode(code)
        )
    except _Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None


def _error_from_status(status: int, reason: str) -> ErrorResponse:
    code = _HTTP_ERRORS.get(status)
    if code is None:
        code = TrackerErrorCode.INTERNAL_ERROR if status >= 500 else TrackerErrorCode.BAD_REQUEST
    if code is TrackerErrorCode.BAD_REQUEST and "version" in reason.lower():
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    return ErrorResponse(
        version=ProtocolVersion.V1_0, transaction_id=None, code=code, reason=reason or None
    )


def decode_response(
    data: bytes, status: int = 200, reason: str = "", *, max_bytes: int = MAX_JSON_BYTES
) -> TrackerResponse | ErrorResponse:
    """Decode a JSON tracker response received with HTTP ``status`` and ``reason`` phrase.

    ``response_type`` 0 gives a :class:`~ppsp.wire.tracker.TrackerResponse` (top-level
    ``peer_addr`` is its ``requester``; each ``swarm_result`` an
    :class:`~ppsp.wire.tracker.ActionResult`, status 200 for result 0 and 400 for 1, whose
    ``peer_info`` entries become ``peers`` tagged with that ``swarm_id``, the entries of one
    peer ID merged into one peer); ``response_type`` 1
    an :class:`~ppsp.wire.tracker.ErrorResponse` with the ``error_code``.

    With a status outside 2xx, an error body is returned with ``reason`` attached; a body that
    is not a valid PPSP-TP error (HTML, empty, a success body) gives an ``ErrorResponse`` made
    from the status: 400 bad request (unsupported version when the reason phrase mentions a
    version), 401, 403, 404, 413, 500, 503 as in :class:`~ppsp.errors.TrackerErrorCode`, other
    4xx bad request and other 5xx internal error.  With a 2xx status an invalid body raises
    :class:`~ppsp.errors.BadRequest` (or another :class:`~ppsp.errors.RemoteTrackerError`).
    """
    if 200 <= status < 300:
        return _decode_response_body(data, max_bytes)
    try:
        message = _decode_response_body(data, max_bytes)
    except RemoteTrackerError:
        return _error_from_status(status, reason)
    if isinstance(message, ErrorResponse):
        return replace(message, reason=reason or None)
    return _error_from_status(status, reason)


# ---------------------------------------------------------------------------------------------
# Encoding.


def _canonical_int(text: str) -> int | None:
    """``text`` as a JSON number when that loses nothing (canonical, non-negative), else None."""
    if _DIGITS.fullmatch(text) and str(int(text)) == text and int(text) <= _MAX_UINT:
        return int(text)
    return None


def _number_or_text(text: str) -> int | str:
    number = _canonical_int(text)
    return text if number is None else number


def _peer_num_json(num: PeerNum) -> dict[str, object]:
    out: dict[str, object] = {}
    if num.count is not None:
        out["peer_count"] = num.count
    for name in _PEER_NUM_SELECTORS:
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


_ADDRESS_CACHE: dict[PeerAddress, dict[str, object]] = {}
_ADDRESS_BY_ID: dict[int, tuple[PeerAddress, dict[str, object]]] = {}
_ADDRESS_CACHE_SIZE: Final = 16384
"""Most validated ``peer_addr`` objects kept; the cache is emptied when it is full."""


def _checked_address_json(address: PeerAddress) -> dict[str, object]:
    """``_address_json(address)``, refused (LocalProtocolError) where the decoder would refuse it.

    Valid results are cached, by identity first (the storage hands out the same address
    objects again and again) and then by value: equal addresses write equal objects.  Addresses
    with a bool or float port or priority (equal to an integer, and invalid) are never cached.
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
    out = _address_json(address)
    try:
        _peer_address(out)
    except _Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    if plain:
        if len(_ADDRESS_CACHE) >= _ADDRESS_CACHE_SIZE:
            _ADDRESS_CACHE.clear()
        _ADDRESS_CACHE[address] = out
        _remember_address(address, out)
    return out


def _remember_address(address: PeerAddress, out: dict[str, object]) -> None:
    # The entry holds the address, so its id cannot be reused while the entry exists.
    if len(_ADDRESS_BY_ID) >= _ADDRESS_CACHE_SIZE:
        _ADDRESS_BY_ID.clear()
    _ADDRESS_BY_ID[id(address)] = (address, out)


def _requester_address(addresses: Sequence[PeerAddress]) -> dict[str, object]:
    """The requester's top-level ``peer_addr``: one object (RFC 7846 section 3.3.4), the
    address the tracker observed (REFLEXIVE) when there is one, else the first."""
    if len(addresses) == 1:
        return _checked_address_json(addresses[0])
    if len(addresses) > MAX_ADDRESSES:
        raise LocalProtocolError(f"cannot encode response: more than {MAX_ADDRESSES} addresses")
    return _checked_address_json(_requester_choice(addresses))


def _swarm_action_json(
    action: SwarmAction, *, with_action: bool = True, with_mode: bool = True
) -> dict[str, object]:
    """A ``swarm_action``, with the members its request type uses (as the XML codec writes)."""
    out: dict[str, object] = {"swarm_id": action.swarm_id}
    if with_action and action.action is not None:
        out["action"] = action.action.value
    if with_mode and action.peer_mode is not None:
        out["peer_mode"] = _PEER_MODE_TEXT[action.peer_mode]
    if action.transaction_id is not None:
        out["transaction_id"] = action.transaction_id
    return out


def _content_group_json(scopes: Sequence[RepresentationScope]) -> list[dict[str, object]]:
    out = []
    for scope in scopes:
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
    for name in _STAT_FIELDS:
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


def _stat_report_json(msg: StatReportRequest) -> dict[str, object]:
    groups: list[dict[str, object]] = []
    if msg.stream_stats:
        groups.append(
            {"type": _STREAM_STATS, "stat": [_stream_stat_json(s) for s in msg.stream_stats]}
        )
    if msg.content_maps:
        if msg.version is ProtocolVersion.V1_0:
            raise LocalProtocolError("RFC 7846 STAT_REPORT has no content maps; use version 2")
        groups.append(
            {"type": _CONTENT_MAP, "stat": [_content_map_json(m) for m in msg.content_maps]}
        )
    if not groups:
        return {}
    # RFC 7846 has one stat group per report; version 2 writes the list.
    return {"stat_report": groups[0] if msg.version is ProtocolVersion.V1_0 else groups}


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
        "version": _VERSION_NUMBER[msg.version],
        "request_type": msg.method.value,
        "transaction_id": msg.transaction_id,
        "peer_id": msg.peer_id,
    }
    root.update(_request_data_json(msg))
    data = orjson.dumps({_ROOT: root})
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
        peer_id = _ident(peer.peer_id, "peer_info.peer_id")
    except _Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    if not peer.addresses:
        raise LocalProtocolError("cannot encode response: a listed peer needs an address")
    if len(peer.addresses) > MAX_ADDRESSES:
        raise LocalProtocolError(f"cannot encode response: more than {MAX_ADDRESSES} addresses")
    return [
        {"peer_id": peer_id, "peer_addr": _checked_address_json(address)}
        for address in peer.addresses
    ]


_SET_ENCODED = EncodedForms._encoded_json.__set__  # type: ignore[attr-defined]
"""Writes an entry's ``_encoded_json`` slot (a frozen dataclass refuses ``setattr``)."""


def _listed_fragment(peer: PeerInfo) -> orjson.Fragment:
    """A listed peer's serialised ``peer_info`` entries, checked and written once per entry
    object.

    The checks are those :func:`_read_success` makes of an entry (its ``peer_id`` and
    addresses).  The entry is immutable, so the form kept in it (see :class:`PeerInfo`) stays
    right; an entry that fails the checks keeps nothing and raises every time.  ``orjson``
    writes a fragment as it is, so the document's bytes do not change: a peer with several
    addresses is one fragment holding its entries separated by commas, which stands for that
    many array elements (and counts as one peer where the list's length is bounded).
    """
    try:
        return peer._encoded_json  # type: ignore[attr-defined,no-any-return]
    except AttributeError:
        pass
    fragment = orjson.Fragment(b",".join(orjson.dumps(entry) for entry in _peer_info_json(peer)))
    if isinstance(peer, EncodedForms):
        _SET_ENCODED(peer, fragment)
    return fragment


def _results_json(msg: TrackerResponse, *, fragments: bool = False) -> list[dict[str, object]]:
    """``swarm_result``: each listed peer as an object, or with ``fragments`` as its checked,
    serialised form (:func:`_listed_fragment`)."""
    if len(msg.peers) > MAX_PEERS:
        raise LocalProtocolError(f"cannot encode response: more than {MAX_PEERS} peers")
    results: list[dict[str, object]] = []
    for result in msg.results:
        item: dict[str, object] = {}
        if result.swarm_id is not None:
            item["swarm_id"] = result.swarm_id
        item["result"] = 0 if result.ok else 1
        if result.transaction_id is not None:
            item["transaction_id"] = result.transaction_id
        results.append(item)
    swarm_ids = [r.swarm_id for r in msg.results]
    peer_lists: list[list[object]] = [[] for _ in results]
    # Each peer goes under the next result of its swarm from where the previous peer went, so
    # that peers listed result by result (as decoding produces them) keep their order.
    cursor = 0
    for peer in msg.peers:
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
        if fragments:
            peer_lists[index].append(_listed_fragment(peer))
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
    root: dict[str, object] = {"version": _VERSION_NUMBER[msg.version]}
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
    data = orjson.dumps({_ROOT: root})
    if not check:
        if len(data) > MAX_JSON_BYTES:
            raise LocalProtocolError(f"cannot encode response: more than {MAX_JSON_BYTES} bytes")
        return data
    try:
        _decode_response_body(data, MAX_JSON_BYTES)
    except RemoteTrackerError as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
    return data


def _check_success(root: Mapping[str, object], results: Sequence[Mapping[str, object]]) -> None:
    """What :func:`_read_success` checks of a success response, less the cached addresses."""
    try:
        _ident(root["transaction_id"], "transaction_id")
        _items(results, "swarm_result", MAX_SWARM_ACTIONS)
        for item in results:
            _opt_swarm_ident(item.get("swarm_id"), "swarm_result.swarm_id")
            _opt_ident(item.get("transaction_id"), "swarm_result.transaction_id")
            # The peer_info entries are checked fragments (_listed_fragment) and their number
            # is bounded by _results_json.
    except _Malformed as exc:
        raise LocalProtocolError(f"cannot encode response: {exc}") from None
