"""Typed RFC 7574 peer protocol (PPSPP) messages, datagrams and every bound of their UDP form.

A UDP datagram (RFC 7574 section 8) is the destination channel ID followed by messages; a
datagram of the channel ID alone is a keep-alive (section 8.14).  Every message of Table 7 has
a frozen, slotted, keyword-only dataclass here; the HANDSHAKE carries the protocol options of
section 7 as optional fields, in the order their codes sort (the order they go on the wire).

Chunk specifications follow the chunk addressing method (CAM, section 7.8): a
:class:`ChunkRange` (start and end, inclusive) for chunk ranges (CAM 2 and 4) and byte ranges
(CAM 1), a :class:`Bin` for bin numbers (CAM 0 and 3).  Fixed-width fields (hashes, signatures,
the payload of DATA) depend on what the channel negotiated, which :class:`ChannelParameters`
holds; the codec (:mod:`ppsp.codecs.ppspp`) reads and writes with it and does all validation:
a message decoded from the wire is valid, and the encoder refuses one that would not decode
back to itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

from ppsp.errors import PPSPPError
from ppsp.wire.fields import (
    MAX_CHANNEL_ID,
    MAX_DATAGRAM_BYTES,
    MAX_DATAGRAM_MESSAGES,
    MAX_SUPPORTED_MESSAGES_BYTES,
    MAX_SWARM_ID_BYTES,
    MAX_TIMESTAMP,
)

__all__ = [
    "CHANNEL_ID_BYTES",
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHANNEL_ID",
    "MAX_DATAGRAM_BYTES",
    "MAX_DATAGRAM_MESSAGES",
    "MAX_SUPPORTED_MESSAGES_BYTES",
    "MAX_SWARM_ID_BYTES",
    "MAX_TIMESTAMP",
    "PPSPP_VERSION",
    "TIMESTAMP_BYTES",
    "VARIABLE_CHUNK_SIZE",
    "Ack",
    "Bin",
    "Cancel",
    "ChannelParameters",
    "Choke",
    "ChunkAddressing",
    "ChunkRange",
    "ChunkSpec",
    "ContentIntegrity",
    "Data",
    "Datagram",
    "Handshake",
    "Have",
    "Integrity",
    "LiveSignatureAlgorithm",
    "MerkleHashFunction",
    "Message",
    "MessageType",
    "PexReq",
    "PexResCert",
    "PexResV4",
    "PexResV6",
    "ProtocolOption",
    "Request",
    "SignedIntegrity",
    "SupportedMessages",
    "Unchoke",
    "keepalive",
    "signature_length",
]

# --- Sizes (the MAX_* bounds are ppsp.wire.fields', with every other bound) ------------

CHANNEL_ID_BYTES = 4
"""Size of a channel ID (section 8.3)."""

TIMESTAMP_BYTES = 8
"""Size of the timestamps of DATA and SIGNED_INTEGRITY and of ACK's delay sample (64 bits)."""

DEFAULT_CHUNK_SIZE = 1024
"""The recommended chunk size (section 8.1), and libswift's default."""

VARIABLE_CHUNK_SIZE = 0xFFFFFFFF
"""The Chunk Size option's value when chunks vary in size (section 7.11)."""

PPSPP_VERSION = 1
"""The protocol version RFC 7574 describes (Table 3)."""


# --- Registries ---------------------------------------------------------------------------


class MessageType(IntEnum):
    """The message types of Table 7: the first byte of every message."""

    HANDSHAKE = 0
    DATA = 1
    ACK = 2
    HAVE = 3
    INTEGRITY = 4
    PEX_RESV4 = 5
    PEX_REQ = 6
    SIGNED_INTEGRITY = 7
    REQUEST = 8
    CANCEL = 9
    CHOKE = 10
    UNCHOKE = 11
    PEX_RESV6 = 12
    PEX_RESCERT = 13


class ProtocolOption(IntEnum):
    """The HANDSHAKE's protocol option codes (Table 2); a handshake lists them ascending."""

    VERSION = 0
    MIN_VERSION = 1
    SWARM_ID = 2
    CONTENT_INTEGRITY = 3
    MERKLE_HASH = 4
    LIVE_SIGNATURE = 5
    CHUNK_ADDRESSING = 6
    LIVE_DISCARD_WINDOW = 7
    SUPPORTED_MESSAGES = 8
    CHUNK_SIZE = 9
    END = 255


class ContentIntegrity(IntEnum):
    """Content integrity protection methods (Table 4).

    Value 0, "no integrity protection", is left out: errata 4880 unassigns it (errata 4725 and
    4726 make integrity protection mandatory), so it is neither sent nor accepted.
    """

    MERKLE = 1
    SIGN_ALL = 2
    UNIFIED_MERKLE = 3


class MerkleHashFunction(IntEnum):
    """Merkle hash tree functions (Table 5) with their digest sizes and hashlib names."""

    SHA1 = 0
    SHA224 = 1
    SHA256 = 2
    SHA384 = 3
    SHA512 = 4

    @property
    def digest_size(self) -> int:
        """Length of a hash of this function in bytes (the INTEGRITY message's hash field)."""
        return _DIGEST_SIZES[self]

    @property
    def hashlib_name(self) -> str:
        """The function's name in :mod:`hashlib` (``"sha1"``, ``"sha256"``, ...)."""
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> MerkleHashFunction:
        """The function of a hashlib name such as ``"sha1"`` or ``"SHA-256"``."""
        key = name.replace("-", "").upper()
        try:
            return cls[key]
        except KeyError:
            raise ValueError(f"unknown Merkle hash function {name!r}") from None


_DIGEST_SIZES: dict[MerkleHashFunction, int] = {
    MerkleHashFunction.SHA1: 20,
    MerkleHashFunction.SHA224: 28,
    MerkleHashFunction.SHA256: 32,
    MerkleHashFunction.SHA384: 48,
    MerkleHashFunction.SHA512: 64,
}


class ChunkAddressing(IntEnum):
    """Chunk addressing methods (Table 6)."""

    BIN_32 = 0
    BYTE_RANGE_64 = 1
    CHUNK_RANGE_32 = 2
    BIN_64 = 3
    CHUNK_RANGE_64 = 4

    @property
    def field_bytes(self) -> int:
        """Width of one value (a bin, a range's start or end, the discard window): 4 or 8."""
        return 4 if self in (ChunkAddressing.BIN_32, ChunkAddressing.CHUNK_RANGE_32) else 8

    @property
    def is_bin(self) -> bool:
        """True when chunk specifications are single bin numbers."""
        return self in (ChunkAddressing.BIN_32, ChunkAddressing.BIN_64)

    @property
    def spec_bytes(self) -> int:
        """Size of one chunk specification on the wire."""
        return self.field_bytes if self.is_bin else 2 * self.field_bytes

    @property
    def max_value(self) -> int:
        """The largest value of one field."""
        return (1 << (8 * self.field_bytes)) - 1


class LiveSignatureAlgorithm(IntEnum):
    """The DNSSEC algorithm numbers RFC 7574 section 7.7 names (and Ed25519, RFC 8080).

    The Live Signature Algorithm option may carry any of the 256 DNSSEC numbers; these are the
    ones whose signature length :func:`signature_length` knows.
    """

    RSASHA1 = 5
    RSASHA256 = 8
    ECDSAP256SHA256 = 13
    ECDSAP384SHA384 = 14
    ED25519 = 15


_FIXED_SIGNATURE_LENGTHS: dict[int, int] = {
    LiveSignatureAlgorithm.ECDSAP256SHA256: 64,
    LiveSignatureAlgorithm.ECDSAP384SHA384: 96,
    LiveSignatureAlgorithm.ED25519: 64,
}


def signature_length(algorithm: int, swarm_id: bytes) -> int:
    """Length of a SIGNED_INTEGRITY signature for ``algorithm`` in a live swarm ``swarm_id``.

    Section 8.9: for the elliptic-curve algorithms it is fixed; for RSA it is the modulus
    length, derived from the swarm ID (one algorithm byte, then the RFC 3110 key: an exponent
    length of one byte, or zero and two more bytes, the exponent, the modulus).  Raises
    :class:`~ppsp.errors.PPSPPError` for an unknown algorithm or a malformed RSA swarm ID.
    """
    if algorithm in _FIXED_SIGNATURE_LENGTHS:
        return _FIXED_SIGNATURE_LENGTHS[algorithm]
    if algorithm not in (LiveSignatureAlgorithm.RSASHA1, LiveSignatureAlgorithm.RSASHA256):
        raise PPSPPError(f"unknown live signature algorithm {algorithm}", code="unsupported")
    key = swarm_id[1:]
    if not key:
        raise PPSPPError("RSA swarm ID without a public key")
    header, exponent_length = 1, key[0]
    if exponent_length == 0:
        if len(key) < 3:
            raise PPSPPError("RSA swarm ID cut inside its exponent length")
        header, exponent_length = 3, int.from_bytes(key[1:3], "big")
    modulus = len(key) - header - exponent_length
    if exponent_length == 0 or modulus < 1:
        raise PPSPPError("RSA swarm ID without an exponent or a modulus")
    return modulus


# --- Chunk specifications -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRange:
    """A range of chunks (CAM 2 and 4) or of bytes (CAM 1), ``start`` to ``end`` inclusive."""

    start: int
    end: int

    @property
    def count(self) -> int:
        """Number of chunks (or bytes) in the range."""
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Bin:
    """A bin number (CAM 0 and 3, section 4.2): leaves are the even numbers ``2 * chunk``."""

    number: int

    @property
    def is_leaf(self) -> bool:
        """True for a bin of a single chunk."""
        return self.number % 2 == 0


ChunkSpec = ChunkRange | Bin
"""A chunk specification, in the form the channel's chunk addressing method gives it."""


# --- Handshake options --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SupportedMessages:
    """The Supported Messages option's compressed bitmap (section 7.10), kept as sent.

    Bit ``X`` (numbered from the most significant bit of the first byte) set means message
    type ``X`` is supported; bytes past the bitmap are zero.  :meth:`from_types` builds the
    canonical form (truncated after the last non-zero byte).
    """

    bitmap: bytes

    @classmethod
    def from_types(cls, types: Iterable[int]) -> SupportedMessages:
        """The canonical bitmap of a set of message types (0-255)."""
        bits = bytearray(MAX_SUPPORTED_MESSAGES_BYTES)
        for kind in types:
            if not 0 <= kind <= 255:
                raise ValueError(f"message type {kind} outside 0-255")
            bits[kind // 8] |= 0x80 >> (kind % 8)
        return cls(bitmap=bytes(bits).rstrip(b"\x00"))

    @property
    def types(self) -> frozenset[int]:
        """The message types the bitmap marks as supported."""
        return frozenset(
            8 * index + bit
            for index, byte in enumerate(self.bitmap)
            for bit in range(8)
            if byte & (0x80 >> bit)
        )

    def supports(self, kind: int) -> bool:
        """True when message type ``kind`` is marked as supported."""
        index = kind // 8
        return index < len(self.bitmap) and bool(self.bitmap[index] & (0x80 >> (kind % 8)))


# --- Messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Handshake:
    """HANDSHAKE (type 0, sections 3.1, 7 and 8.4): the sender's channel ID and its options.

    ``source_channel`` 0 closes the channel.  Each option is None when absent; present ones go
    on the wire in code order, then the End option.  ``live_discard_window`` needs
    ``chunk_addressing`` in the same handshake (its width depends on it).
    """

    source_channel: int
    version: int | None = None
    min_version: int | None = None
    swarm_id: bytes | None = None
    content_integrity: ContentIntegrity | None = None
    merkle_hash: MerkleHashFunction | None = None
    live_signature: int | None = None
    chunk_addressing: ChunkAddressing | None = None
    live_discard_window: int | None = None
    supported_messages: SupportedMessages | None = None
    chunk_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """DATA (type 1, section 8.6): one chunk, its send time (microseconds) and its bytes."""

    chunk: ChunkSpec
    timestamp: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """ACK (type 2, section 8.7): received chunks and a one-way delay sample (microseconds).

    The 64-bit ``delay`` is kept as sent, unsigned.  libswift writes its receive time minus
    the DATA's timestamp, a signed number: a negative sample (clocks apart) arrives as a value
    of 2**63 or more, which :attr:`signed_delay` reads back.
    """

    chunk: ChunkSpec
    delay: int

    @property
    def signed_delay(self) -> int:
        """The delay sample read as a signed (two's complement) 64-bit integer."""
        return self.delay - (1 << 64) if self.delay >= 1 << 63 else self.delay


@dataclass(frozen=True, slots=True, kw_only=True)
class Have:
    """HAVE (type 3, section 8.5): chunks the sender holds and has verified."""

    chunk: ChunkSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Integrity:
    """INTEGRITY (type 4, section 8.8): the Merkle hash of the tree node covering ``chunk``."""

    chunk: ChunkSpec
    hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PexResV4:
    """PEX_RESv4 (type 5, section 8.13): a peer's IPv4 address and UDP port."""

    address: IPv4Address
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PexReq:
    """PEX_REQ (type 6, section 8.13): a request for peer addresses; no payload."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedIntegrity:
    """SIGNED_INTEGRITY (type 7, section 8.9): a signed munro hash's chunk range, its NTP
    timestamp and the signature (its length set by the live signature algorithm)."""

    chunk: ChunkSpec
    timestamp: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """REQUEST (type 8, section 8.10): chunks the sender wants."""

    chunk: ChunkSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """CANCEL (type 9, section 8.11): chunks the sender no longer wants."""

    chunk: ChunkSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Choke:
    """CHOKE (type 10, section 8.12): the sender will not answer requests; no payload."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unchoke:
    """UNCHOKE (type 11, section 8.12): the sender answers requests again; no payload."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PexResV6:
    """PEX_RESv6 (type 12, section 8.13): a peer's IPv6 address and UDP port."""

    address: IPv6Address
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PexResCert:
    """PEX_REScert (type 13, section 8.13): a DER membership certificate (at most 65535
    bytes: its size is a 16-bit field)."""

    certificate: bytes


Message = (
    Handshake
    | Data
    | Ack
    | Have
    | Integrity
    | PexResV4
    | PexReq
    | SignedIntegrity
    | Request
    | Cancel
    | Choke
    | Unchoke
    | PexResV6
    | PexResCert
)
"""Any PPSPP message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Datagram:
    """A UDP datagram: the destination channel ID and its messages, in order.

    A datagram without messages is a keep-alive (section 8.14).
    """

    channel: int
    messages: tuple[Message, ...] = ()

    @property
    def is_keepalive(self) -> bool:
        """True for a keep-alive: the channel ID alone."""
        return not self.messages


def keepalive(channel: int) -> Datagram:
    """The keep-alive datagram to ``channel``."""
    return Datagram(channel=channel)


# --- What a channel negotiated ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelParameters:
    """What the codec needs to know of a channel to read and write its messages.

    ``chunk_addressing`` shapes every chunk specification, ``merkle_hash`` the INTEGRITY hash,
    ``chunk_size`` the DATA payload (:data:`VARIABLE_CHUNK_SIZE`: a DATA runs to the end of the
    datagram), ``signature_length`` the SIGNED_INTEGRITY signature (None: no live signatures
    on this channel, and a SIGNED_INTEGRITY is malformed).  The defaults are RFC 7574's
    (32-bit chunk ranges, SHA-256, 1024-byte chunks); :meth:`libswift` gives libswift's.
    """

    chunk_addressing: ChunkAddressing = ChunkAddressing.CHUNK_RANGE_32
    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA256
    chunk_size: int = DEFAULT_CHUNK_SIZE
    signature_length: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= VARIABLE_CHUNK_SIZE:
            raise ValueError(f"chunk size {self.chunk_size} outside 1-{VARIABLE_CHUNK_SIZE}")
        if self.signature_length is not None and self.signature_length < 1:
            raise ValueError("a signature length is at least 1")

    @classmethod
    def libswift(cls) -> ChannelParameters:
        """libswift's defaults: 32-bit chunk ranges, SHA-1, 1024-byte chunks."""
        return cls(merkle_hash=MerkleHashFunction.SHA1)

    @property
    def hash_length(self) -> int:
        """Length of an INTEGRITY hash."""
        return self.merkle_hash.digest_size

    def with_handshake(self, handshake: Handshake) -> ChannelParameters:
        """These parameters updated with the options a handshake announces.

        The codec reads the messages that follow a HANDSHAKE in the same datagram with them.
        """
        changes: dict[str, object] = {}
        if handshake.chunk_addressing is not None:
            changes["chunk_addressing"] = handshake.chunk_addressing
        if handshake.merkle_hash is not None:
            changes["merkle_hash"] = handshake.merkle_hash
        if handshake.chunk_size is not None:
            changes["chunk_size"] = handshake.chunk_size
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]
