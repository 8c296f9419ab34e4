"""Live content over RFC 7574: the Unified Merkle Tree with signed munro hashes (section 6.1.2).

Sans-I/O: pure functions and immutable records; the serving engine is
:mod:`ppsp.peer.ppspp.live_server`, the receiving one :mod:`ppsp.peer.ppspp.live_receiver`.

**One live chunk, one munro.**  A live chunk (the signed envelope of
:mod:`ppsp.peer.live.envelope`, at most a few MiB) is cut into PPSPP chunks of
:data:`LIVE_CHUNK_SIZE` bytes (the last one shorter), which are the leaves of a subtree
:data:`MUNRO_CHUNKS` chunks wide (``NCHUNKS_PER_SIG``, a fixed power of two, section 6.1.2.1):
live chunk ``i`` is PPSPP chunks ``i * MUNRO_CHUNKS`` to ``(i + 1) * MUNRO_CHUNKS - 1``, the
leaves past its last chunk empty (zero hashes, section 5.1's padding; the parent of two empty
hashes is empty).  The root of that subtree is the live chunk's *munro*; the source signs its
hash once per live chunk, and every chunk of it verifies against the signed munro hash with
its uncle hashes, as stored content verifies against a root hash.  So the viewer's policy,
which asks for live chunks, maps each onto one PPSPP range, and a receiver knows a live chunk
is whole when its verified leaves, padded, rebuild the signed munro hash.

**The signature** (section 6.1.2.2) is over the munro's chunk specification as it goes on the
wire (32-bit chunk ranges: start and end, 4 bytes each), the 64-bit NTP timestamp of the
signing (RFC 5905: seconds since 1900 in the high 32 bits, the fraction in the low 32) and the
munro hash, in that order: 48 bytes.  The algorithm is Ed25519 (DNSSEC number 15, RFC 8080,
64-byte signatures), the live source's key (:mod:`ppsp.peer.live.identity`); the swarm ID of a
live stream over PPSPP is that key as a DNSSEC DNSKEY (section 6.1): the algorithm byte 15
and the 32 raw key bytes.  The source's other signatures (chunk envelopes, the description)
are over messages that start with an ASCII domain prefix and are longer than 48 bytes, so no
signature of one kind is valid for another.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ppsp.errors import IntegrityError, PPSPPError
from ppsp.peer.content.merkle import parent_hash
from ppsp.peer.live.identity import DNSSEC_ALGORITHM_ED25519, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ppsp.wire.ppspp import ChunkRange

__all__ = [
    "EMPTY",
    "LIVE_CHUNK_SIZE",
    "MAX_LIVE_CHUNK_BYTES",
    "MAX_LIVE_INDEX",
    "MUNRO_CHUNKS",
    "MUNRO_LEVEL",
    "NTP_EPOCH_OFFSET",
    "LiveChunkRecord",
    "SignedMunro",
    "from_ntp",
    "live_index_of",
    "live_ppspp_swarm_id",
    "munro_hash_of_leaves",
    "munro_message",
    "munro_range",
    "public_key_of",
    "to_ntp",
    "verify_munro_signature",
]

LIVE_CHUNK_SIZE: Final = 8192
"""Bytes per PPSPP chunk on a live channel (option 9): the chunk transport's size, one
datagram per chunk on loopback (section "PPSPP as a chunk transport" of docs/PROTOCOL.md)."""

MUNRO_LEVEL: Final = 9
"""Height of a munro's subtree above its leaves."""

MUNRO_CHUNKS: Final = 1 << MUNRO_LEVEL
"""PPSPP chunks per munro (``NCHUNKS_PER_SIG``): 512, so one live chunk spans at most 4 MiB."""

MAX_LIVE_CHUNK_BYTES: Final = MUNRO_CHUNKS * LIVE_CHUNK_SIZE
"""The largest live chunk a munro holds (4 MiB; the source cuts at 2 MiB)."""

MAX_LIVE_INDEX: Final = (1 << 32) // MUNRO_CHUNKS - 1
"""The last live chunk 32-bit chunk ranges can address (8,388,607: 48 days of 500 ms chunks)."""

EMPTY: Final = bytes(32)
"""The SHA-256 hash of an empty leaf or subtree (section 5.1)."""

NTP_EPOCH_OFFSET: Final = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

_HASH = "sha256"


def live_ppspp_swarm_id(public_key: bytes) -> bytes:
    """The PPSPP swarm ID of a live stream: its Ed25519 public key as a DNSKEY (section 6.1)."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes")
    return bytes((DNSSEC_ALGORITHM_ED25519,)) + public_key


def public_key_of(swarm_id: bytes) -> bytes:
    """The raw Ed25519 key of a live PPSPP swarm ID; PPSPPError (``unsupported``) for another
    algorithm or length."""
    if len(swarm_id) != 1 + PUBLIC_KEY_SIZE or swarm_id[0] != DNSSEC_ALGORITHM_ED25519:
        raise PPSPPError("not an Ed25519 live swarm ID", code="unsupported")
    return swarm_id[1:]


def munro_range(index: int) -> ChunkRange:
    """The PPSPP chunks of live chunk ``index``'s munro."""
    if not 0 <= index <= MAX_LIVE_INDEX:
        raise ValueError(f"live chunk {index} outside 0-{MAX_LIVE_INDEX}")
    start = index * MUNRO_CHUNKS
    return ChunkRange(start=start, end=start + MUNRO_CHUNKS - 1)


def live_index_of(chunks: ChunkRange) -> int | None:
    """The live chunk whose munro is exactly ``chunks``, or None."""
    if chunks.start % MUNRO_CHUNKS or chunks.count != MUNRO_CHUNKS:
        return None
    return chunks.start // MUNRO_CHUNKS


def to_ntp(unix_time: float) -> int:
    """A Unix time as a 64-bit NTP timestamp (RFC 5905)."""
    value = round((unix_time + NTP_EPOCH_OFFSET) * (1 << 32))
    return min(max(value, 0), (1 << 64) - 1)


def from_ntp(timestamp: int) -> float:
    """The Unix time of a 64-bit NTP timestamp."""
    return timestamp / (1 << 32) - NTP_EPOCH_OFFSET


def munro_message(index: int, timestamp: int, munro_hash: bytes) -> bytes:
    """What the source signs for live chunk ``index`` (section 6.1.2.2)."""
    chunks = munro_range(index)
    return (
        chunks.start.to_bytes(4, "big")
        + chunks.end.to_bytes(4, "big")
        + timestamp.to_bytes(8, "big")
        + munro_hash
    )


def verify_munro_signature(
    public_key: bytes, index: int, timestamp: int, munro_hash: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` is the source's over live chunk ``index``'s munro."""
    # Imported here: loading cryptography is paid by live channels only.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(signature, munro_message(index, timestamp, munro_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of a munro's subtree over ``leaves`` (padded with empty hashes)."""
    level = list(leaves) + [EMPTY] * (MUNRO_CHUNKS - len(leaves))
    levels = [level]
    for _ in range(MUNRO_LEVEL):
        level = [parent_hash(level[i], level[i + 1], _HASH) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def munro_hash_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """The munro hash of a live chunk whose PPSPP chunks have the leaf hashes ``leaves``."""
    if not 1 <= len(leaves) <= MUNRO_CHUNKS:
        raise ValueError(f"a munro holds 1 to {MUNRO_CHUNKS} chunks")
    return _levels(leaves)[-1][0]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedMunro:
    """A live chunk's munro hash with the source's signature and its NTP timestamp."""

    index: int
    hash: bytes
    timestamp: int
    signature: bytes

    @classmethod
    def sign(
        cls, index: int, munro_hash: bytes, now: float, signer: Callable[[bytes], bytes]
    ) -> SignedMunro:
        """Sign ``munro_hash`` for live chunk ``index`` at Unix time ``now``."""
        timestamp = to_ntp(now)
        signature = signer(munro_message(index, timestamp, munro_hash))
        return cls(index=index, hash=munro_hash, timestamp=timestamp, signature=signature)

    @property
    def chunks(self) -> ChunkRange:
        """The munro's chunk range."""
        return munro_range(self.index)


class LiveChunkRecord:
    """A verified live chunk held for serving: its bytes, pieces, munro subtree and signature.

    Built by the source from a chunk it cut (:meth:`build`, then signed), or by a receiver from
    pieces that verified against a signed munro; either way :meth:`build` checks that the
    bytes rebuild the munro's hash.
    """

    __slots__ = ("_levels", "data", "munro", "pieces")

    def __init__(self, data: bytes, munro: SignedMunro, levels: list[list[bytes]]) -> None:
        self.data = data
        self.munro = munro
        self._levels = levels
        self.pieces = math.ceil(len(data) / LIVE_CHUNK_SIZE)

    @staticmethod
    def leaf_hashes(data: bytes) -> list[bytes]:
        """The leaf hashes of a live chunk's bytes (its PPSPP chunks')."""
        view = memoryview(data)
        return [
            hashlib.sha256(view[start : start + LIVE_CHUNK_SIZE]).digest()
            for start in range(0, len(data), LIVE_CHUNK_SIZE)
        ]

    @classmethod
    def build(cls, data: bytes, munro: SignedMunro) -> LiveChunkRecord:
        """The record of ``data`` under ``munro``; IntegrityError when they do not match."""
        if not 1 <= len(data) <= MAX_LIVE_CHUNK_BYTES:
            raise IntegrityError(f"a live chunk of {len(data)} bytes does not fit a munro")
        levels = _levels(cls.leaf_hashes(data))
        if not hmac.compare_digest(levels[-1][0], munro.hash):
            raise IntegrityError(f"live chunk {munro.index} does not match its munro")
        return cls(data, munro, levels)

    @classmethod
    def sign(
        cls, index: int, data: bytes, now: float, signer: Callable[[bytes], bytes]
    ) -> LiveChunkRecord:
        """The source's record of a chunk it cut: the munro computed and signed at ``now``."""
        if not 1 <= len(data) <= MAX_LIVE_CHUNK_BYTES:
            raise ValueError(f"a live chunk of {len(data)} bytes does not fit a munro")
        levels = _levels(cls.leaf_hashes(data))
        munro = SignedMunro.sign(index, levels[-1][0], now, signer)
        return cls(data, munro, levels)

    @property
    def index(self) -> int:
        """The live chunk's index."""
        return self.munro.index

    @property
    def held(self) -> ChunkRange:
        """The PPSPP chunks of this live chunk (what a HAVE announces)."""
        start = self.index * MUNRO_CHUNKS
        return ChunkRange(start=start, end=start + self.pieces - 1)

    def piece(self, offset: int) -> bytes:
        """PPSPP chunk ``offset`` (from the munro's first) of the live chunk."""
        return self.data[offset * LIVE_CHUNK_SIZE : (offset + 1) * LIVE_CHUNK_SIZE]

    def uncles(self, offset: int) -> list[tuple[ChunkRange, bytes]]:
        """The uncle hashes of piece ``offset`` up to the munro, bottom-up, with their ranges."""
        base = self.index * MUNRO_CHUNKS
        out: list[tuple[ChunkRange, bytes]] = []
        for level in range(MUNRO_LEVEL):
            position = (offset >> level) ^ 1
            first = base + (position << level)
            out.append(
                (
                    ChunkRange(start=first, end=first + (1 << level) - 1),
                    self._levels[level][position],
                )
            )
        return out
