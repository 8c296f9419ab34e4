"""Signed live chunks: the :class:`ChunkEnvelope` wire format and its verification.

Content integrity for live streams follows RFC 7574 section 6.1.1, "Sign All": the source signs
every chunk, and a peer checks the signature before it stores, plays or serves the chunk.  (The
"Unified Merkle Tree" of section 6.1.2 saves signatures, but chunks here travel one per HTTP
request anyway, so one Ed25519 signature of 64 bytes per chunk, about a second of media, costs
nothing worth amortising.)

The source signs, with the key that the swarm ID certifies::

    b"ppsp-live-chunk/2\\x00" || swarm ID (32 raw bytes) || start_ms (u64) || index (u64)
        || timestamp_ms (u64) || flags (u8) || SHA-256(payload)

all integers big-endian.  The swarm ID binds the chunk to one stream (a chunk of another swarm
never verifies), ``start_ms`` (the description's start reference) to one session of that
stream's key, so chunks of an earlier session with the same numbers cannot be replayed into the
current one.  ``timestamp_ms`` is the source's wall clock, Unix time in milliseconds, when the
chunk's first byte reached the source.  The flags are signed too, so that no relay can
mark a chunk as a place to start playing or as the end of the stream:

- :data:`FLAG_START` (0x01): a player can start with this chunk's first byte (for MPEG-TS, the
  program tables and then a key frame of the video come first, see :mod:`ppsp.peer.live.ts`);
- :data:`FLAG_END` (0x02): the stream's last chunk; no chunk follows it.

An envelope on the wire (the body of an HTTP chunk GET for a live swarm) is an 88-byte header
and the payload::

    offset size  field
         0    2  magic  b"LV"
         2    1  version 2
         3    1  flags (FLAG_START, FLAG_END; other bits refused)
         4    8  index (u64)
        12    8  timestamp_ms (u64)
        20   64  Ed25519 signature
        84    4  payload length (u32), at most ``max_payload``
        88    n  payload

The length must account for every byte: nothing may follow the payload.

:func:`verify_envelope` also rejects chunks outside the live window: older than the window
(replay of an old chunk) and further ahead than the source can have produced (a source that cuts
a chunk every ``chunk_ms``, at most :attr:`LivePolicy.burst` times faster when its size cap cuts
early, plus :attr:`LivePolicy.future_slack_chunks`).  Those cheap checks run before the
signature check.  Times ``now`` are Unix times in seconds (``time.time()``): they are compared
with the source's clock, within :attr:`LivePolicy.clock_skew_s`.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Final, Protocol

from ppsp.errors import ForgedChunk, FutureChunk, InvalidEnvelope, StaleChunk
from ppsp.peer.live.identity import SIGNATURE_SIZE, LiveDescription

__all__ = [
    "DEFAULT_POLICY",
    "ENVELOPE_HEADER_SIZE",
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "FLAG_END",
    "FLAG_START",
    "MAX_CHUNK_PAYLOAD",
    "MAX_INDEX",
    "ChunkEnvelope",
    "HasFloor",
    "LivePolicy",
    "max_index_at",
    "signing_message",
    "verify_envelope",
]

ENVELOPE_MAGIC: Final = b"LV"
"""First two bytes of every envelope."""

ENVELOPE_VERSION: Final = 2
"""The envelope format version this module reads and writes (2: signed flags)."""

FLAG_START: Final = 0x01
"""Envelope flag: a player can start playing at this chunk's first byte."""

FLAG_END: Final = 0x02
"""Envelope flag: the last chunk of the stream."""

KNOWN_FLAGS: Final = FLAG_START | FLAG_END

MAX_CHUNK_PAYLOAD: Final = 8 * 1024 * 1024
"""Largest payload an envelope may carry (8 MiB: a second of 64 Mbit/s video)."""

MAX_INDEX: Final = (1 << 63) - 1
"""Largest chunk index (and timestamp) accepted: fits a signed 64-bit integer."""

_HEADER: Final = struct.Struct(">2sBBQQ64sI")
ENVELOPE_HEADER_SIZE: Final = _HEADER.size
"""Size of the fixed envelope header, 88 bytes."""

_CHUNK_DOMAIN: Final = b"ppsp-live-chunk/2\x00"
_SIGNED_NUMBERS: Final = struct.Struct(">QQQB")


@dataclass(frozen=True, slots=True, kw_only=True)
class LivePolicy:
    """Tolerances of live chunk verification; every field has a working default."""

    clock_skew_s: float = 5.0
    """How far the source's clock may be ahead of or behind ours, in seconds."""
    burst: float = 4.0
    """How many times the nominal chunk rate the source may produce (size-capped cuts)."""
    future_slack_chunks: int = 8
    """Chunks beyond the rate bound still accepted."""
    max_payload: int = MAX_CHUNK_PAYLOAD
    """Largest payload accepted, in bytes."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clock_skew_s) and self.clock_skew_s >= 0):
            raise ValueError("clock_skew_s must be finite and >= 0")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError("burst must be finite and >= 1")
        if self.future_slack_chunks < 0 or not 0 < self.max_payload <= MAX_CHUNK_PAYLOAD:
            raise ValueError("future_slack_chunks must be >= 0, max_payload in [1, 8 MiB]")


DEFAULT_POLICY: Final = LivePolicy()
"""The default verification tolerances."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkEnvelope:
    """One signed live chunk: what travels between peers (see the module docstring).

    The constructor checks ranges and sizes (raising :class:`~ppsp.errors.InvalidEnvelope`),
    not the signature: that is :func:`verify_envelope`'s job.
    """

    index: int
    """Chunk index, numbered by the source from 0."""
    timestamp_ms: int
    """Source wall clock (Unix ms) when the chunk's first byte reached the source."""
    signature: bytes
    """The source's Ed25519 signature (:func:`signing_message`)."""
    payload: bytes
    """The chunk's media bytes."""
    flags: int = 0
    """:data:`FLAG_START` and :data:`FLAG_END`, signed with the rest."""

    def __post_init__(self) -> None:
        if type(self.index) is not int or not 0 <= self.index <= MAX_INDEX:
            raise InvalidEnvelope(f"chunk index out of range: {self.index!r}")
        if type(self.timestamp_ms) is not int or not 0 <= self.timestamp_ms <= MAX_INDEX:
            raise InvalidEnvelope(f"timestamp out of range: {self.timestamp_ms!r}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidEnvelope(f"signature must be {SIGNATURE_SIZE} bytes")
        if not isinstance(self.payload, bytes) or len(self.payload) > MAX_CHUNK_PAYLOAD:
            raise InvalidEnvelope(f"payload must be bytes, at most {MAX_CHUNK_PAYLOAD}")
        if type(self.flags) is not int or self.flags & ~KNOWN_FLAGS or self.flags < 0:
            raise InvalidEnvelope(f"unknown envelope flags {self.flags!r}")

    @property
    def start(self) -> bool:
        """Whether a player can start playing at this chunk (:data:`FLAG_START`)."""
        return bool(self.flags & FLAG_START)

    @property
    def end(self) -> bool:
        """Whether this is the stream's last chunk (:data:`FLAG_END`)."""
        return bool(self.flags & FLAG_END)

    @property
    def timestamp(self) -> float:
        """The source timestamp in seconds (Unix time)."""
        return self.timestamp_ms / 1000

    def encode(self) -> bytes:
        """The wire form: header and payload."""
        header = _HEADER.pack(
            ENVELOPE_MAGIC,
            ENVELOPE_VERSION,
            self.flags,
            self.index,
            self.timestamp_ms,
            self.signature,
            len(self.payload),
        )
        return header + self.payload

    @classmethod
    def decode(
        cls, data: bytes | bytearray | memoryview, *, max_payload: int = MAX_CHUNK_PAYLOAD
    ) -> ChunkEnvelope:
        """Parse an envelope from an untrusted peer; raises only InvalidEnvelope.

        The length field is checked against ``max_payload`` before anything is copied, and the
        data must end exactly where the payload does.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidEnvelope("envelope must be bytes")
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            raise InvalidEnvelope("envelope must be a flat byte buffer")
        if len(view) < ENVELOPE_HEADER_SIZE:
            raise InvalidEnvelope(f"envelope of {len(view)} bytes is shorter than its header")
        magic, version, flags, index, timestamp_ms, signature, length = _HEADER.unpack_from(view)
        if magic != ENVELOPE_MAGIC:
            raise InvalidEnvelope("not a live chunk envelope (bad magic)")
        if version != ENVELOPE_VERSION:
            raise InvalidEnvelope(f"unsupported envelope version {version}")
        if flags & ~KNOWN_FLAGS:
            raise InvalidEnvelope(f"unknown envelope flags {flags:#04x}")
        if length > min(max_payload, MAX_CHUNK_PAYLOAD):
            raise InvalidEnvelope(f"payload of {length} bytes over the bound")
        if len(view) != ENVELOPE_HEADER_SIZE + length:
            raise InvalidEnvelope(
                f"envelope has {len(view) - ENVELOPE_HEADER_SIZE} payload bytes, header says"
                f" {length}"
            )
        return cls(
            index=index,
            timestamp_ms=timestamp_ms,
            signature=bytes(signature),
            payload=bytes(view[ENVELOPE_HEADER_SIZE:]),
            flags=flags,
        )


def signing_message(
    swarm_id: str,
    start_ms: int,
    index: int,
    timestamp_ms: int,
    payload: bytes,
    *,
    flags: int = 0,
) -> bytes:
    """The bytes the source signs for one chunk (see the module docstring)."""
    return (
        _CHUNK_DOMAIN
        + bytes.fromhex(swarm_id)
        + _SIGNED_NUMBERS.pack(start_ms, index, timestamp_ms, flags)
        + hashlib.sha256(payload).digest()
    )


class HasFloor(Protocol):
    """Anything with a live window floor (a :class:`~ppsp.peer.live.window.LiveWindow`)."""

    @property
    def floor(self) -> int:
        """Lowest chunk index still in the window."""
        ...


def max_index_at(
    description: LiveDescription, now: float, policy: LivePolicy = DEFAULT_POLICY
) -> int:
    """The highest chunk index accepted at ``now``: what the source can have produced, plus slack.

    The source cuts a chunk every ``chunk_ms`` from ``start_ms`` on; a size cap lets it cut up
    to ``burst`` times faster.  ``clock_skew_s`` is added to ``now``.
    """
    elapsed_ms = max(0.0, (now + policy.clock_skew_s) * 1000 - description.start_ms)
    produced = math.floor(elapsed_ms * policy.burst / description.chunk_ms) + 1
    return produced + policy.future_slack_chunks


def verify_envelope(
    description: LiveDescription,
    envelope: ChunkEnvelope,
    now: float,
    window: HasFloor | None = None,
    policy: LivePolicy = DEFAULT_POLICY,
) -> None:
    """Check a received live chunk before it is stored, played or served.

    Raises, in the order checked:

    - :class:`~ppsp.errors.InvalidEnvelope`: payload over ``policy.max_payload``;
    - :class:`~ppsp.errors.FutureChunk`: a timestamp after ``now`` (beyond the clock skew) or an
      index beyond :func:`max_index_at`;
    - :class:`~ppsp.errors.StaleChunk`: an index below ``window.floor`` or a timestamp older
      than the live window (``window_s`` plus the clock skew) before ``now``: a replay;
    - :class:`~ppsp.errors.ForgedChunk`: a signature that does not verify for this swarm and
      session (forged, altered, or signed for another swarm).
    """
    if len(envelope.payload) > policy.max_payload:
        raise InvalidEnvelope(f"payload of {len(envelope.payload)} bytes over the bound")
    now_ms = now * 1000
    skew_ms = policy.clock_skew_s * 1000
    if envelope.timestamp_ms > now_ms + skew_ms:
        raise FutureChunk(
            f"chunk {envelope.index} is stamped {envelope.timestamp_ms - now_ms:.0f} ms ahead"
        )
    limit = max_index_at(description, now, policy)
    if envelope.index > limit:
        raise FutureChunk(f"chunk {envelope.index} is beyond {limit}, the most produced by now")
    if window is not None and envelope.index < window.floor:
        raise StaleChunk(f"chunk {envelope.index} is below the window floor {window.floor}")
    if envelope.timestamp_ms < now_ms - description.window_s * 1000 - skew_ms:
        raise StaleChunk(f"chunk {envelope.index} is older than the live window")
    message = signing_message(
        description.swarm_id,
        description.start_ms,
        envelope.index,
        envelope.timestamp_ms,
        envelope.payload,
        flags=envelope.flags,
    )
    # Imported here, not with the module: a stored download loads this module's types but never
    # verifies a chunk, and should not load cryptography (a live description already has).
    from cryptography.exceptions import InvalidSignature

    try:
        description.verifier.verify(envelope.signature, message)
    except InvalidSignature:
        raise ForgedChunk(f"chunk {envelope.index}: signature does not verify") from None
