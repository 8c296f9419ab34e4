"""Names, constants and field checks of the tracker XML codec, shared by its readers and writers.

The checks apply the field rules every codec shares (:mod:`ppsp.wire.fields`) to XML values;
each takes the error to raise, :class:`~ppsp.errors.BadRequest` when reading and
:class:`~ppsp.errors.LocalProtocolError` when writing, so that whatever is written reads back
as the same value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, TypeVar

from ppsp.errors import BadRequest, LocalProtocolError, TrackerErrorCode
from ppsp.wire import fields
from ppsp.wire.common import AddressFamily, AddressType, PeerInfo
from ppsp.wire.fields import DECIMAL_RE, MAX_INTEGER, RESERVED_SWARM_IDS, TOKEN_RE
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    JoinRequest,
    Method,
    ProtocolVersion,
    SwarmAction,
)

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

ROOT = "PPSPTrackerProtocol"
"""The root element's local name."""

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
STAT_STREAM = "StreamStatistics"
STAT_CONTENT_MAP = "ContentMap"
STAT_CORRUPT_PEER = "CorruptPeer"
"""The ``@property`` of the corrupt-peer report extension (docs/PROTOCOL.md)."""
STANDARD_STATISTICS = frozenset(
    {"SwarmID", "UploadedBytes", "DownloadedBytes", "AvailBandwidth", "ConcurrentLinks"}
)
"""The typed children of a StreamStatistics Stat."""

SUCCESS_TEXTS = frozenset({SUCCESS_TEXT, "OK"})
ERROR_CODES_BY_TEXT = {text: code for code, text in ERROR_TEXT.items()}

Error = Callable[[str], Exception]
"""The error a check raises: BadRequest when reading, LocalProtocolError when writing."""

_E = TypeVar("_E", bound=Enum)


def check_token(value: str | None, what: str, error: Error) -> str:
    """``value`` if it is a token (:data:`~ppsp.wire.fields.TOKEN_RE`), else ``error``."""
    if value is None:
        raise error(f"{what} is missing")
    if not isinstance(value, str) or not TOKEN_RE.fullmatch(value):
        raise error(f"{what} is not a valid token: {str(value)[:40]!r}")
    return value


def check_swarm(value: str | None, what: str, error: Error) -> str:
    """A swarm's own ID: a token other than ``ALL`` and ``nil`` (fields.is_swarm_id)."""
    checked = check_token(value, what, error)
    if checked in RESERVED_SWARM_IDS:
        raise error(f"{what} {checked!r} is not a swarm's ID (it has a meaning in DISCONNECT)")
    return checked


def parse_integer(value: str | None, what: str, error: Error, maximum: int = MAX_INTEGER) -> int:
    """The integer written in ``value`` (surrounding whitespace stripped), at most ``maximum``."""
    if value is None:
        raise error(f"{what} is missing")
    text = value.strip()
    if not DECIMAL_RE.fullmatch(text):
        raise error(f"{what} is not a non-negative decimal integer: {text[:40]!r}")
    number = int(text)
    if number > maximum:
        raise error(f"{what} is larger than {maximum}")
    return number


def check_integer(value: int, what: str, maximum: int = MAX_INTEGER, minimum: int = 0) -> str:
    """The text of an integer to write; LocalProtocolError outside ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise LocalProtocolError(
            f"{what} must be an integer in [{minimum}, {maximum}], got {value!r}"
        )
    return str(value)


_MEMBERS: dict[type[Enum], dict[str, Any]] = {}


def members(cls: type[_E]) -> dict[str, _E]:
    """The members of an enumeration of text values, by value."""
    table = _MEMBERS.get(cls)
    if table is None:
        table = _MEMBERS[cls] = {member.value: member for member in cls}
    return table


def parse_enum(cls: type[_E], value: str | None, what: str) -> _E:
    """The member of ``cls`` whose value ``value`` is (stripped); BadRequest otherwise."""
    if value is None:
        raise BadRequest(f"{what} is missing")
    text = value.strip()
    member = members(cls).get(text)
    if member is None:
        raise BadRequest(f"{what} has an unknown value: {text[:40]!r}")
    return member


_VERSIONS_OF: dict[AddressFamily | None, int | None] = {
    None: None,
    AddressFamily.IPV4: 4,
    AddressFamily.IPV6: 6,
}
_FAMILIES_OF = {4: AddressFamily.IPV4, 6: AddressFamily.IPV6}


def check_ip(value: str, family: AddressFamily | None, error: Error) -> tuple[str, AddressFamily]:
    """The canonical form and family of an IP address (fields.canonical_ip)."""
    try:
        text, version = fields.canonical_ip(value, _VERSIONS_OF[family])
    except (ValueError, KeyError) as exc:
        raise error(f"ip: {exc}") from None
    return text, _FAMILIES_OF[version]


def read_bitmap(text: str, size: int, error: Error) -> bytes:
    """The bit string of a Base64 chunk map (fields.chunkmap_bytes)."""
    try:
        return fields.chunkmap_bytes(text, size)
    except ValueError as exc:
        raise error(f"SegmentInfo chunk map: {exc}") from None


def actions_of(request: AnyRequest) -> tuple[SwarmAction, ...]:
    """The swarm actions of a request (none for FIND and STAT_REPORT)."""
    if isinstance(request, ConnectRequest):
        return request.swarm_actions
    if isinstance(request, JoinRequest | DisconnectRequest):
        return request.swarms
    return ()


def clear_action_ids(tid: str, actions: Iterable[SwarmAction], error: Error) -> None:
    """Refuse per-action IDs that would make an answer's root ID ambiguous (fields rule)."""
    if not fields.clear_action_ids(tid, actions):
        raise error(f"a swarm's transaction ID ends in '.0' but the request's {tid!r} does not")


def is_requester(info: PeerInfo) -> bool:
    """Whether an answer's PeerInfo reads as the requester: no swarm ID, a REFLEXIVE address."""
    return info.swarm_id is None and any(
        address.type is AddressType.REFLEXIVE for address in info.addresses
    )


_PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_PHRASES.update({404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"})

RESULT_RE = re.compile(r"([1-5][0-9][0-9])(?:\s.*)?", re.DOTALL)
"""A ``<Result>`` text: its status code, then anything."""


def status_phrase(status: int) -> str:
    """The phrase written after a ``<Result>``'s status code."""
    return _PHRASES.get(status, "Error" if status >= 400 else "OK")
