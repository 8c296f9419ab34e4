"""Field rules shared by every wire codec: one definition of what a value may be.

The tracker protocol travels in XML (:mod:`ppsp.codecs.tracker_xml`) and JSON
(:mod:`ppsp.codecs.tracker_json`); peers speak their own XML (:mod:`ppsp.codecs.peer_xml`).  Values
cross between them: a peer list a JSON tracker answer carried is written again in an XML answer
listing the same peers, a peer passes the peers the tracker gave it on to other peers in the
peer protocol, and a chunk map goes to the tracker and to other peers.  So each kind of value has
one rule here, and every codec reads and writes by it: whatever one codec accepts, every other
codec can write, and what it writes reads back as the same value.

The rules, in short (docs/PROTOCOL.md, "Field rules", has the reasons):

* **Tokens** (peer, swarm, transaction and representation IDs, attribute values, ``asn``,
  ``connection``, ``peer_protocol``, PeerNum selectors, extra statistic values): 1 to
  :data:`MAX_TOKEN_LENGTH` characters, none of them whitespace, a control character (C0 or C1)
  or a code point XML cannot carry.
* **Swarm IDs** are tokens other than :data:`ALL_SWARMS` and :data:`NO_SWARM`, which only a
  DISCONNECT uses, with their special meanings.
* **Integers**: 0 to :data:`MAX_INTEGER`, written as 1 to 19 ASCII digits where text carries
  them (:data:`DECIMAL_RE`); ports :data:`MIN_PORT` to :data:`MAX_PORT`.
* **IP addresses** in canonical text (dotted quad; RFC 5952 for IPv6, IPv4-mapped ones in its
  mixed notation ``::ffff:192.0.2.1``), without a zone index.
* **Chunk maps**: Base64 (RFC 4648) of exactly ``ceil(size / 8)`` bytes for ``size`` bits, at
  most :data:`MAX_CHUNKMAP_BITS`; the bits past ``size`` are cleared when read and must be clear
  when written.
* **Extra statistic names**: :data:`EXTRA_STATISTIC_NAME_RE` (ASCII, usable as an XML element
  name and a JSON member name), other than a standard statistic's name in either encoding.
* **Per-action transaction IDs** (``12345.1``) may end in ``.0`` only when the request's own
  transaction ID does (or is the same): an XML answer's root ID is its first ID ending in ``.0``
  (huang-01), so any other request could not be answered (:func:`clear_action_ids`).
* **Chunk scopes** (a tracker request's ContentGroup) are read without repeated ranges, and
  hold at most :data:`MAX_SCOPE_ITEMS` distinct ones (:func:`distinct_scope`).
* **Counts and sizes** (``MAX_*`` below) bound the repetitions of a message and the size of a
  body, the same in every codec.  Every bound of the wire is defined here and nowhere else.

Pure functions and constants; no I/O.  The functions raise ValueError with a short reason, which
each codec turns into its own protocol error.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Hashable, Iterable
from typing import Final, Protocol, TypeGuard, TypeVar

__all__ = [
    "ALL_SWARMS",
    "DECIMAL_RE",
    "EXTRA_STATISTIC_NAME_RE",
    "MAX_ADVERTISED_ADDRESSES",
    "MAX_CHUNKMAP_BITS",
    "MAX_CHUNK_IDS",
    "MAX_CHUNK_LINE_BYTES",
    "MAX_CONTENT_LENGTH",
    "MAX_CORRUPT_REPORTS",
    "MAX_EXTRA_STATISTICS",
    "MAX_HEADER_FIELDS",
    "MAX_HEAD_BYTES",
    "MAX_INTEGER",
    "MAX_JSON_DEPTH",
    "MAX_LAYOUTS",
    "MAX_LISTED_PEERS",
    "MAX_MESSAGE_BYTES",
    "MAX_PEER_ADDRESSES",
    "MAX_PEER_ELEMENTS",
    "MAX_PORT",
    "MAX_PROPERTIES",
    "MAX_PROPERTY_VALUE_LENGTH",
    "MAX_REPRESENTATIONS",
    "MAX_REQUEST_LINE_BYTES",
    "MAX_SCOPE_ITEMS",
    "MAX_SEGMENTS",
    "MAX_SHAPES",
    "MAX_STATS",
    "MAX_SWARM_ACTIONS",
    "MAX_TEXT_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MAX_TRANSPORTS",
    "MAX_URI_LENGTH",
    "MAX_XML_DEPTH",
    "MIN_PORT",
    "MIN_SIGNED_INTEGER",
    "NO_SWARM",
    "RESERVED_STATISTIC_NAMES",
    "RESERVED_SWARM_IDS",
    "TOKEN_RE",
    "SwarmActionLike",
    "canonical_ip",
    "chunkmap_bytes",
    "chunkmap_text",
    "clear_action_ids",
    "distinct_scope",
    "is_canonical_ipv4",
    "is_extra_statistic_name",
    "is_swarm_id",
    "is_token",
]

MAX_TOKEN_LENGTH: Final = 256
"""Longest token (identifier or attribute value), in characters."""

TOKEN_RE: Final = re.compile(
    f"[^\\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]{{1,{MAX_TOKEN_LENGTH}}}"
)
"""A whole token (use ``fullmatch``): no whitespace, no C0/C1 control, nothing XML cannot carry."""

ALL_SWARMS: Final = "ALL"
"""The SwarmID of a DISCONNECT that leaves every joined swarm (huang-01 section 4.2)."""

NO_SWARM: Final = "nil"
"""The SwarmID of a DISCONNECT that leaves the system: every swarm and the registration."""

RESERVED_SWARM_IDS: Final = frozenset({ALL_SWARMS, NO_SWARM})
"""Tokens that are never a swarm's own ID."""

MAX_INTEGER: Final = 2**63 - 1
"""Largest integer value (counters, indexes, priorities, peer counts, chunk indexes)."""

MIN_SIGNED_INTEGER: Final = -(2**63)
"""Smallest integer a JSON member may hold where text is expected and a number is given (an
identifier, an extra statistic): it is kept as its decimal text."""

DECIMAL_RE: Final = re.compile(r"[0-9]{1,19}")
"""An integer written as text (use ``fullmatch``): ASCII digits only, no sign, at most 19 of
them (:data:`MAX_INTEGER` has 19); the value must still be checked against its bound."""

MIN_PORT: Final = 1
"""Smallest port of a peer address (port 0 reaches nothing)."""

MAX_PORT: Final = 65535
"""Largest port of a peer address."""

MAX_SWARM_ACTIONS: Final = 1000
"""Most swarms one request names, and most per-action results in one answer."""

MAX_PEER_ADDRESSES: Final = 16
"""Most addresses of one listed peer (or of the requester in an answer)."""

MAX_ADVERTISED_ADDRESSES: Final = MAX_PEER_ADDRESSES - 1
"""Most addresses a peer advertises in one request: the tracker adds the one it observes."""

MAX_SHAPES: Final = 4096
"""Most distinct address shapes one process packs (:mod:`ppsp.wire.packed`: a packed address
names its shape by index, so the table is never emptied; addresses of further shapes are kept
unpacked)."""

MAX_LAYOUTS: Final = 4096
"""Most distinct layouts (sequences of shapes) one process packs (:mod:`ppsp.wire.packed`);
peers of further layouts are kept unpacked."""

MAX_LISTED_PEERS: Final = 1000
"""Most peers listed in one answer (the requester not counted)."""

MAX_REPRESENTATIONS: Final = 256
"""Most representations in one content group (scope) or in one chunk map."""

MAX_SCOPE_ITEMS: Final = 16
"""Most distinct chunk ranges (``Representation`` with its ``SegmentInfo``; JSON
``content_group`` items) in the ContentGroup of one tracker request: a chunk-scoped FIND, or
the joining point of a CONNECT or JOIN.  A content has at most 16 representations
(:mod:`ppsp.peer.content.description`) and a peer names one range of each; repeated ranges
are read as one (:func:`distinct_scope`).  The cost of a chunk-scoped peer list grows with
this number, for every member it ranks."""

MAX_SEGMENTS: Final = 4096
"""Most segments over all chunk maps of one message."""

MAX_CHUNKMAP_BITS: Final = 1 << 20
"""Largest chunk map of one segment, in bits (the most chunks a content may have)."""

MAX_STATS: Final = 1000
"""Most statistics and content maps in one STAT_REPORT."""

MAX_EXTRA_STATISTICS: Final = 64
"""Most extra (non-standard) statistics in one set of stream statistics."""

MAX_CORRUPT_REPORTS: Final = 16
"""Most corrupt-peer reports (the ``CorruptPeer`` / ``CORRUPT_PEER`` extension) in one
STAT_REPORT; a peer keeps the rest for its next reports."""

# -- Sizes of whole messages ------------------------------------------------------------------

MAX_MESSAGE_BYTES: Final = 1 << 20
"""Largest message body, read or written, in every encoding (tracker XML and JSON, peer XML):
checked before any parsing."""

MAX_XML_DEPTH: Final = 16
"""Deepest nesting of XML elements (no PPSP message nests deeper)."""

MAX_JSON_DEPTH: Final = 32
"""Deepest nesting of JSON arrays and objects (PPSP-TP messages need 10)."""

MAX_TEXT_LENGTH: Final = 512
"""Longest JSON string member that is not a token (a stat group's ``type``, an IP address's
text before it is read), in characters."""

# -- Peer protocol ----------------------------------------------------------------------------

MAX_PEER_ELEMENTS: Final = 20_000
"""Most elements in one peer protocol document."""

MAX_CHUNK_IDS: Final = 1024
"""Most ChunkID elements in one FIND, FIND_CHUNK or answer."""

MAX_PROPERTIES: Final = 64
"""Most Stat elements (properties) in one PROPERTY_QUERY or its answer."""

MAX_PROPERTY_VALUE_LENGTH: Final = 16_384
"""Longest property value in a PROPERTY_QUERY answer, in characters."""

MAX_TRANSPORTS: Final = 16
"""Most TProt elements in one TRANSPORT_NEGOTIATION or its answer."""

MAX_URI_LENGTH: Final = 2048
"""Longest chunk URL template of a transport offer, in characters."""

# -- HTTP heads (:mod:`ppsp.codecs.httphead`: the chunk client's responses, the server's requests)

MAX_HEAD_BYTES: Final = 16384
"""Bound on a response or request head, its first line and fields included."""

MAX_REQUEST_LINE_BYTES: Final = 8192
"""Bound on a request line (method, target, version; RFC 9112 section 3 recommends at least
8000 octets); a longer one is answered 414."""

MAX_HEADER_FIELDS: Final = 100
"""Bound on the number of header fields in one head."""

MAX_CONTENT_LENGTH: Final = 1 << 40
"""Bound on a ``Content-Length`` value; anything larger is refused as malformed."""

MAX_CHUNK_LINE_BYTES: Final = 4096
"""Bound on one chunk-size line of a body in the chunked coding (:mod:`ppsp.codecs.httpchunked`),
its extensions and CRLF included; the trailer section is bounded like a head."""

# -- PPSPP datagrams (RFC 7574 over UDP: :mod:`ppsp.wire.ppspp`, :mod:`ppsp.codecs.ppspp`)

MAX_DATAGRAM_BYTES: Final = 65507
"""The largest PPSPP datagram read or written: the largest UDP payload over IPv4 (65535 - 8 -
20).  Section 8.1 wants datagrams to fit the path MTU; that is the sender's choice of chunk
size."""

MAX_DATAGRAM_MESSAGES: Final = 4096
"""The most messages one PPSPP datagram may carry.  A datagram of the path MTU holds a few
dozen (libswift's reach ten); this bounds the objects a datagram of one-byte messages (CHOKE,
PEX_REQ, ...) would make a decoder build."""

MAX_CHANNEL_ID: Final = 0xFFFFFFFF
"""The largest PPSPP channel ID (32 bits); 0 addresses a peer that has not picked one yet."""

MAX_TIMESTAMP: Final = (1 << 64) - 1
"""The largest 64-bit PPSPP timestamp (DATA, SIGNED_INTEGRITY) or ACK delay sample."""

MAX_SWARM_ID_BYTES: Final = 0xFFFF
"""The longest swarm ID a PPSPP HANDSHAKE's 16-bit Swarm ID Length can announce."""

MAX_SUPPORTED_MESSAGES_BYTES: Final = 32
"""The longest Supported Messages bitmap: one bit for each of the 256 message types."""

EXTRA_STATISTIC_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
"""An extra statistic's name (use ``fullmatch``): an XML element name and a plain JSON member."""

RESERVED_STATISTIC_NAMES: Final = frozenset(
    {
        # XML (the drafts' StreamStatistics children)
        "SwarmID",
        "UploadedBytes",
        "DownloadedBytes",
        "AvailBandwidth",
        "ConcurrentLinks",
        # JSON (RFC 7846 STREAM_STATS members)
        "swarm_id",
        "uploaded_bytes",
        "downloaded_bytes",
        "available_bandwidth",
        "concurrent_links",
    }
)
"""Names of the standard statistics in either encoding: never an extra statistic's name."""

_MAX_IP_TEXT = 64
"""Longer text is not an IP address (the longest IPv6 form has 45 characters)."""

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4_RE = re.compile(f"{_OCTET}(?:\\.{_OCTET}){{3}}")
"""Dotted-quad IPv4 text exactly as :mod:`ipaddress` writes it (no leading zeros)."""


def is_canonical_ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address in canonical dotted text (no leading zeros)."""
    return _CANONICAL_IPV4_RE.fullmatch(text) is not None


def is_token(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a token (see the module docstring): :data:`TOKEN_RE`, with a faster
    path for ASCII text (printable ASCII is a token but for the space)."""
    if type(value) is str and value.isascii():
        return 0 < len(value) <= MAX_TOKEN_LENGTH and value.isprintable() and " " not in value
    return isinstance(value, str) and TOKEN_RE.fullmatch(value) is not None


def is_swarm_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` may be a swarm's own ID: a token other than ``ALL`` and ``nil``."""
    return is_token(value) and value not in RESERVED_SWARM_IDS


def is_extra_statistic_name(name: object) -> bool:
    """Whether ``name`` may name an extra statistic in every encoding."""
    return (
        isinstance(name, str)
        and name not in RESERVED_STATISTIC_NAMES
        and EXTRA_STATISTIC_NAME_RE.fullmatch(name) is not None
    )


class SwarmActionLike(Protocol):
    """Anything with a per-action transaction ID (a swarm action of a request)."""

    @property
    def transaction_id(self) -> str | None:
        """The action's own transaction ID, if any."""
        ...


def clear_action_ids(root: str, actions: Iterable[SwarmActionLike]) -> bool:
    """Whether the per-action transaction IDs of a request can be answered unambiguously.

    An XML answer lists the root and per-action IDs as ``<Result>`` elements, and a reader takes
    the first one ending in ``.0`` as the root (huang-01 section 3.3): so no other action ID
    may end in ``.0`` unless the root's does.
    """
    if root.endswith(".0"):
        return True
    for action in actions:
        tid = action.transaction_id
        if tid is not None and tid.endswith(".0") and tid != root:
            return False
    return True


_Item = TypeVar("_Item", bound=Hashable)


def distinct_scope(items: Iterable[_Item]) -> tuple[_Item, ...]:
    """The chunk ranges of a ContentGroup without repeats, in the order each first appears.

    A range given twice names the same chunks twice, which says nothing more.  Raises
    ValueError when more than :data:`MAX_SCOPE_ITEMS` distinct ranges remain.
    """
    kept = tuple(dict.fromkeys(items))
    if len(kept) > MAX_SCOPE_ITEMS:
        raise ValueError(f"more than {MAX_SCOPE_ITEMS} distinct chunk ranges in a ContentGroup")
    return kept


def canonical_ip(text: str, version: int | None = None) -> tuple[str, int]:
    """``text`` as a canonical IP address and its version (4 or 6).

    ``version``, when given, is the address family the message declares; an address of the
    other family is refused.  Raises ValueError for anything that is not an IP address, and
    for an address with a zone index (``fe80::1%eth0``), which means nothing to another host.
    """
    if not isinstance(text, str) or len(text) > _MAX_IP_TEXT:
        raise ValueError(f"not an IP address: {str(text)[:40]!r}")
    if version != 6 and _CANONICAL_IPV4_RE.fullmatch(text):
        return text, 4  # the common case, without building an address object
    if "%" in text:
        raise ValueError(f"an IP address with a zone index: {text[:40]!r}")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text[:40]!r}") from None
    if version is not None and address.version != version:
        raise ValueError(f"{text[:40]!r} is not an IPv{version} address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # RFC 5952 section 5 (Python before 3.13 writes these in hexadecimal).
        return f"::ffff:{address.ipv4_mapped}", 6
    return str(address), address.version


def _chunkmap_bounds(size: int) -> int:
    """Bytes of a chunk map of ``size`` bits; ValueError when the size is out of bounds."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_CHUNKMAP_BITS:
        raise ValueError(f"a chunk map has 0 to {MAX_CHUNKMAP_BITS} bits, not {size!r}")
    return (size + 7) // 8


def chunkmap_bytes(text: str, size: int) -> bytes:
    """The bit string of the Base64 chunk map ``text`` of ``size`` bits.

    Whitespace inside the Base64 is ignored (line breaks).  The result has exactly
    ``ceil(size / 8)`` bytes, and its bits past ``size`` are cleared: they carry no meaning.
    Raises ValueError for a size out of bounds, text that is not Base64, text far longer than
    the size allows (before decoding it), and a length that does not match the size.
    """
    nbytes = _chunkmap_bounds(size)
    # Base64 of nbytes is 4 * ceil(nbytes / 3) characters; line breaks may double that.
    if len(text) > 2 * (4 * ((nbytes + 2) // 3)) + 64:
        raise ValueError(f"chunk map text is longer than {size} bits allow")
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid Base64 chunk map: {exc}") from None
    if len(raw) != nbytes:
        raise ValueError(f"a chunk map of {size} bits needs {nbytes} bytes, got {len(raw)}")
    spare = size % 8
    if spare and raw[-1] & (0xFF >> spare):
        raw = raw[:-1] + bytes((raw[-1] & (0xFF << (8 - spare)) & 0xFF,))
    return raw


def chunkmap_text(bits: bytes, size: int) -> str:
    """The Base64 text of the chunk map ``bits`` of ``size`` bits: what :func:`chunkmap_bytes`
    reads back as the same bytes.

    Raises ValueError for a size out of bounds, a length that does not match it, and bits set
    past ``size`` (they would not survive reading).
    """
    nbytes = _chunkmap_bounds(size)
    if not isinstance(bits, bytes) or len(bits) != nbytes:
        length = len(bits) if isinstance(bits, bytes | bytearray) else bits
        raise ValueError(f"a chunk map of {size} bits needs {nbytes} bytes, got {length!r}")
    spare = size % 8
    if spare and bits[-1] & (0xFF >> spare):
        raise ValueError(f"bits past the {size} of the chunk map must be clear")
    return base64.b64encode(bits).decode("ascii")
