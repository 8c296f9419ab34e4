"""Generic readers of the tracker JSON codec: parsing, and JSON values narrowed to typed ones.

JSON values are typed ``object`` and narrowed here, once.  A reader raises :class:`Malformed`
with a short reason; the decoder turns it into :class:`~ppsp.errors.BadRequest` carrying the
message's transaction ID.  The writer validates what it writes with the same readers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeVar

import orjson

from ppsp.errors import BadRequest, PayloadTooLarge, UnsupportedVersion
from ppsp.wire.common import AddressFamily, AddressType
from ppsp.wire.fields import (
    DECIMAL_RE,
    MAX_INTEGER,
    MAX_JSON_DEPTH,
    MAX_TEXT_LENGTH,
    MAX_TOKEN_LENGTH,
    MIN_SIGNED_INTEGER,
    RESERVED_SWARM_IDS,
    is_token,
)
from ppsp.wire.tracker import PeerMode, ProtocolVersion, SwarmActionType

ROOT: Final = "PPSPTrackerProtocol"
VERSIONS: Final = {1: ProtocolVersion.V1_0, 2: ProtocolVersion.V1_1}
VERSION_NUMBER: Final = {v: n for n, v in VERSIONS.items()}
_VERSION_ORDER: Final = (ProtocolVersion.V1_0, ProtocolVersion.V1_1)
STREAM_STATS: Final = "STREAM_STATS"
CONTENT_MAP: Final = "CONTENT_MAP"
CORRUPT_PEER: Final = "CORRUPT_PEER"
"""The stat group ``type`` of the corrupt-peer report extension (docs/PROTOCOL.md)."""
PEER_MODES: Final = {"SEEDER": PeerMode.SEED, "SEED": PeerMode.SEED, "LEECH": PeerMode.LEECH}
PEER_MODE_TEXT: Final = {PeerMode.SEED: "SEEDER", PeerMode.LEECH: "LEECH"}
ACTIONS: Final = {a.value: a for a in SwarmActionType}
FAMILIES: Final = {f.value: f for f in AddressFamily}
ADDRESS_TYPES: Final = {t.value: t for t in AddressType}
STAT_FIELDS: Final = (
    "uploaded_bytes",
    "downloaded_bytes",
    "available_bandwidth",
    "concurrent_links",
)
PEER_NUM_SELECTORS: Final = ("ability_nat", "concurrent_links", "online_time", "upload_bandwidth")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# A JSON string, written so that the regex engine never backtracks into it.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS_TO_PARENS: Final = bytes.maketrans(b"[]{}", b"()()")
_T = TypeVar("_T")


class Malformed(ValueError):
    """Internal: the message is malformed; becomes BadRequest with the transaction ID."""


def load_root(data: bytes, max_bytes: int) -> dict[str, object]:
    """Parse ``data`` and return the ``PPSPTrackerProtocol`` object."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"JSON body of {len(data)} bytes exceeds {max_bytes}")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not valid JSON: {exc}") from None
    if _too_deep(data):
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if _repeats_a_member(data, document):
        raise BadRequest("a member named twice in one JSON object")
    if not isinstance(document, dict):
        raise BadRequest("a PPSP-TP message is a JSON object")
    root = document.get(ROOT)
    if not isinstance(root, dict):
        raise BadRequest(f"no {ROOT} object")
    return root


def _too_deep(data: bytes) -> bool:
    """Whether valid JSON ``data`` nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`.

    Strings are cut out, every bracket becomes ``(`` or ``)``, and each pass of
    ``replace(b"()", b"")`` removes one level from the bottom: a pair that is innermost now is
    removed in this pass, its parent becomes innermost for the next.  Depth ``d`` needs exactly
    ``d`` passes, each a C-speed scan, so deep or huge input costs at most MAX_JSON_DEPTH scans.
    """
    # Each level opens with a bracket: a document with few of them, strings included, is not
    # too deep (every request the codec writes, at the cost of two byte counts).
    if data.count(b"{") + data.count(b"[") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    if len(brackets) <= 2 * MAX_JSON_DEPTH:
        return False
    parens = brackets.translate(_BRACKETS_TO_PARENS)
    for _ in range(MAX_JSON_DEPTH):
        parens = parens.replace(b"()", b"")
        if not parens:
            return False
    return True


def _repeats_a_member(data: bytes, document: object) -> bool:
    """Whether valid JSON ``data``, parsed as ``document``, names a member twice in one object.

    A parser keeps one member of each name (orjson the last, others the first), so two readers
    of one document could read two different requests: such documents are refused, as I-JSON
    (RFC 7493 section 2.3) requires and as the XML codec refuses a repeated element.  Outside
    strings a colon only ends a member's name, so the document names as many members as it has
    colons outside strings, and repeats one when the parsed objects hold fewer.  The colons are
    first counted with the strings in (the strings of most requests hold none), the strings cut
    out only when that count differs.  The document is at most :data:`MAX_JSON_DEPTH` deep (the
    caller checked), so the walk over its containers is bounded by its size.
    """
    colons = data.count(b":")
    if not colons:
        return False
    members = 0
    containers: list[object] = [document]
    while containers:
        value = containers.pop()
        if isinstance(value, dict):
            members += len(value)
            containers.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            containers.extend(v for v in value if isinstance(v, dict | list))
    if colons == members:
        return False
    return _JSON_STRING.sub(b"", data).count(b":") != members


def as_object(value: object, where: str) -> dict[str, object]:
    """``value`` if it is an object."""
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be an object")
    return value


def as_items(value: object, where: str, limit: int) -> list[object]:
    """An array member that the printed examples also write as a single value; None is []."""
    if value is None:
        return []
    if isinstance(value, list):
        if len(value) > limit:
            raise Malformed(f"{where} has more than {limit} entries")
        return value
    return [value]


def as_objects(value: object, where: str, limit: int) -> list[dict[str, object]]:
    """An array member of objects (a single object is read as an array of one)."""
    return [as_object(item, where) for item in as_items(value, where, limit)]


def read_int(value: object, where: str, low: int = 0, high: int = MAX_INTEGER) -> int:
    """An integer, also written as a decimal string, within ``[low, high]``."""
    if isinstance(value, bool):
        raise Malformed(f"{where} must be an integer")
    if isinstance(value, str):
        if not DECIMAL_RE.fullmatch(value):
            raise Malformed(f"{where} must be an integer")
        value = int(value)
    if not isinstance(value, int):
        raise Malformed(f"{where} must be an integer")
    if not low <= value <= high:
        raise Malformed(f"{where} must be in {low}..{high}")
    return value


def read_opt_int(value: object, where: str, low: int = 0, high: int = MAX_INTEGER) -> int | None:
    """:func:`read_int`, or None when absent."""
    return None if value is None else read_int(value, where, low, high)


def read_text(value: object, where: str, *, numbers: bool = False, empty: bool = True) -> str:
    """A string of at most MAX_TEXT_LENGTH without control characters.

    ``numbers`` admits an integer for a member the schema types as a string (IDs, ``asn``).
    """
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        if not MIN_SIGNED_INTEGER <= value <= MAX_INTEGER:
            raise Malformed(f"{where} is out of range")
        value = str(value)
    if not isinstance(value, str):
        raise Malformed(f"{where} must be a string")
    if len(value) > MAX_TEXT_LENGTH:
        raise Malformed(f"{where} is longer than {MAX_TEXT_LENGTH} characters")
    if not empty and not value:
        raise Malformed(f"{where} must not be empty")
    if _CONTROL.search(value):
        raise Malformed(f"{where} contains control characters")
    return value


def read_token(value: object, where: str, *, numbers: bool = False) -> str:
    """A token (:data:`ppsp.wire.fields.TOKEN_RE`): 1 to 256 characters, no whitespace or controls.

    ``numbers`` admits an integer for a member the schema types as a string (IDs, ``asn``).
    """
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        if not MIN_SIGNED_INTEGER <= value <= MAX_INTEGER:
            raise Malformed(f"{where} is out of range")
        value = str(value)
    if not is_token(value):
        if not isinstance(value, str):
            raise Malformed(f"{where} must be a string")
        raise Malformed(
            f"{where} must be 1 to {MAX_TOKEN_LENGTH} characters without whitespace"
            " or control characters"
        )
    return value


def read_opt_token(value: object, where: str, *, numbers: bool = False) -> str | None:
    """:func:`read_token`, or None when absent."""
    return None if value is None else read_token(value, where, numbers=numbers)


def read_ident(value: object, where: str) -> str:
    """An identifier (peer, swarm, transaction, representation): a token, or an integer."""
    if value is None:
        raise Malformed(f"{where} is missing")
    return read_token(value, where, numbers=True)


def read_opt_ident(value: object, where: str) -> str | None:
    """:func:`read_ident`, or None when absent."""
    return None if value is None else read_ident(value, where)


def read_swarm_ident(value: object, where: str) -> str:
    """A swarm's own ID: an identifier other than ``"ALL"`` and ``"nil"``."""
    swarm_id = read_ident(value, where)
    if swarm_id in RESERVED_SWARM_IDS:
        raise Malformed(
            f"{where} {swarm_id!r} is not a swarm's ID (it has a meaning in DISCONNECT)"
        )
    return swarm_id


def read_opt_swarm_ident(value: object, where: str) -> str | None:
    """:func:`read_swarm_ident`, or None when absent."""
    return None if value is None else read_swarm_ident(value, where)


def read_choice(value: object, where: str, table: Mapping[str, _T]) -> _T:
    """The value ``table`` has for the text ``value``."""
    if value is None:
        raise Malformed(f"{where} is missing")
    if not isinstance(value, str) or value not in table:
        raise Malformed(f"{where} must be one of {', '.join(table)}")
    return table[value]


def read_opt_choice(value: object, where: str, table: Mapping[str, _T]) -> _T | None:
    """:func:`read_choice`, or None when absent."""
    return None if value is None else read_choice(value, where, table)


def read_selector(value: object, where: str) -> str | None:
    """A ``peer_num`` capability selector: RFC 7846 integers or the XML drafts' levels, as text."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(read_int(value, where))
    return read_token(value, where)


def peek_transaction_id(root: Mapping[str, object]) -> str | None:
    """The message's transaction ID if it is readable, for error answers."""
    try:
        return read_opt_ident(root.get("transaction_id"), "transaction_id")
    except Malformed:
        return None


def read_version(
    root: Mapping[str, object], transaction_id: str | None, max_version: ProtocolVersion
) -> ProtocolVersion:
    """The message's version, refused (UnsupportedVersion) above ``max_version``."""
    try:
        number = read_int(root.get("version"), "version", MIN_SIGNED_INTEGER)
    except Malformed as exc:
        raise BadRequest(str(exc), transaction_id=transaction_id) from None
    supported = [
        n
        for n, v in VERSIONS.items()
        if _VERSION_ORDER.index(v) <= _VERSION_ORDER.index(max_version)
    ]
    if number not in supported:
        raise UnsupportedVersion(
            f"PPSP-TP JSON version {number} is not supported (supported: {supported})",
            transaction_id=transaction_id,
        )
    return VERSIONS[number]
