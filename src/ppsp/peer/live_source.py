"""The live source: cut the incoming stream into chunks and sign each one.

:class:`LiveSource` holds the key and the description and numbers the chunks from 0.
:class:`LiveChunker` takes the stream's bytes as they arrive (``feed(data, now)``) and cuts a
chunk when

- ``chunk_ms`` of wall time has passed since the chunk's first byte arrived (checked on every
  :meth:`~LiveChunker.feed` and :meth:`~LiveChunker.poll`; the bytes fed at the moment of the
  cut belong to the next chunk), or
- the pending bytes reach the size cap ``max_chunk_bytes`` (several chunks at once for a large
  write), or
- the stream ends (:meth:`~LiveChunker.flush`).

A chunk's timestamp is the arrival time of its first byte, so a viewer's "delay behind the
source" counts from when the media entered the source.

MPEG transport streams (ISO/IEC 13818-1: 188-byte packets, each starting with the sync byte
0x47) are cut only at packet boundaries, so every chunk is a whole number of packets that a
player can start on.  The chunker detects TS from the stream's first bytes: not TS as soon as
the first byte is not 0x47; TS once three packets' worth of bytes all carry the sync byte at
every 188th position (or, at the first cut, as many as there are, at least one packet).  A
partial packet waits for its remainder; only :meth:`~LiveChunker.flush` emits one.  Alignment
counts bytes from the start of the stream: the chunker does not resynchronise a damaged stream.

Sans-I/O: the caller passes ``now`` (Unix time, seconds) and arms one timer for
:meth:`~LiveChunker.next_timer`, calling :meth:`~LiveChunker.poll` when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import LiveError
from ppsp.peer.live_envelope import MAX_CHUNK_PAYLOAD, MAX_INDEX, ChunkEnvelope, signing_message
from ppsp.peer.live_identity import LiveDescription, public_key_bytes

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "TS_PACKET_SIZE",
    "TS_SYNC_BYTE",
    "LiveChunk",
    "LiveChunker",
    "LiveSource",
    "looks_like_transport_stream",
]

TS_PACKET_SIZE: Final = 188
"""Size of an MPEG transport stream packet."""

TS_SYNC_BYTE: Final = 0x47
"""The byte every MPEG-TS packet starts with."""

TS_DETECT_PACKETS: Final = 3
"""Packets whose sync bytes the detector wants to see before deciding on TS."""

DEFAULT_MAX_CHUNK_BYTES: Final = 2 * 1024 * 1024
"""Default size cap of one chunk (2 MiB)."""


def looks_like_transport_stream(data: bytes) -> bool:
    """Whether ``data`` (a stream's first bytes, at least one packet) is MPEG-TS aligned at 0."""
    if len(data) < TS_PACKET_SIZE:
        return False
    return all(data[k] == TS_SYNC_BYTE for k in range(0, len(data), TS_PACKET_SIZE))


class LiveSource:
    """The stream's signer: holds the private key and numbers the chunks.

    ``description`` must name ``key``'s public key.  ``next_index`` lets a restarted source
    continue its numbering (with the same description).  Timestamps never go backwards: one
    earlier than the previous chunk's (a wall clock stepped back) is raised to it.
    """

    __slots__ = ("_key", "_last_timestamp_ms", "description", "next_index")

    def __init__(
        self, key: Ed25519PrivateKey, description: LiveDescription, *, next_index: int = 0
    ) -> None:
        if public_key_bytes(key) != description.public_key:
            raise LiveError("the key does not match the description's public key")
        if not 0 <= next_index <= MAX_INDEX:
            raise LiveError("next_index out of range")
        self._key = key
        self.description = description
        self.next_index = next_index
        self._last_timestamp_ms = 0

    @classmethod
    def start(
        cls,
        key: Ed25519PrivateKey,
        *,
        now: float,
        name: str,
        media_type: str = "video/mp2t",
        chunk_ms: int = 1000,
        window_s: int = 30,
    ) -> LiveSource:
        """Start a new stream at ``now``: describe and sign it, numbering from chunk 0."""
        description = LiveDescription.create(
            key,
            name=name,
            media_type=media_type,
            chunk_ms=chunk_ms,
            window_s=window_s,
            start_ms=_ms(now),
        )
        return cls(key, description)

    @property
    def swarm_id(self) -> str:
        """The stream's swarm ID."""
        return self.description.swarm_id

    def sign(self, payload: bytes, timestamp_ms: int) -> ChunkEnvelope:
        """Number and sign the next chunk, stamped ``timestamp_ms`` (Unix ms)."""
        if len(payload) > MAX_CHUNK_PAYLOAD:
            raise LiveError(f"a chunk holds at most {MAX_CHUNK_PAYLOAD} bytes")
        timestamp_ms = max(timestamp_ms, self._last_timestamp_ms, 0)
        index = self.next_index
        message = signing_message(
            self.description.swarm_id, self.description.start_ms, index, timestamp_ms, payload
        )
        envelope = ChunkEnvelope(
            index=index,
            timestamp_ms=timestamp_ms,
            signature=self._key.sign(message),
            payload=bytes(payload),
        )
        self.next_index = index + 1
        self._last_timestamp_ms = timestamp_ms
        return envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveChunk:
    """A chunk the chunker cut and the source signed."""

    envelope: ChunkEnvelope
    """The signed chunk, ready to announce and serve."""
    started: float
    """When its first byte arrived (its timestamp, in seconds)."""
    cut: float
    """When it was cut (the ``now`` of the call that emitted it)."""
    reason: Literal["time", "size", "flush"]
    """Why it was cut: ``"time"``, ``"size"`` or ``"flush"``."""

    @property
    def index(self) -> int:
        """The chunk index."""
        return self.envelope.index

    @property
    def payload(self) -> bytes:
        """The chunk's bytes."""
        return self.envelope.payload


def _ms(now: float) -> int:
    return max(0, round(now * 1000))


class LiveChunker:
    """Cuts a live byte stream into signed chunks by time and size (see the module docstring).

    ``transport_stream`` forces packet alignment on (True) or off (False); None detects it.
    """

    __slots__ = ("_buffer", "_started_ms", "_ts", "max_chunk_bytes", "source")

    def __init__(
        self,
        source: LiveSource,
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        transport_stream: bool | None = None,
    ) -> None:
        if not TS_PACKET_SIZE <= max_chunk_bytes <= MAX_CHUNK_PAYLOAD:
            raise ValueError(f"max_chunk_bytes must be in [{TS_PACKET_SIZE}, {MAX_CHUNK_PAYLOAD}]")
        self.source = source
        self.max_chunk_bytes = max_chunk_bytes
        self._ts = transport_stream
        self._buffer = bytearray()
        self._started_ms: int | None = None

    @property
    def transport_stream(self) -> bool | None:
        """Whether the input is MPEG-TS (None while undecided)."""
        return self._ts

    @property
    def pending(self) -> int:
        """Bytes received and not yet cut into a chunk."""
        return len(self._buffer)

    @property
    def chunk_ms(self) -> int:
        """The chunk duration from the description."""
        return self.source.description.chunk_ms

    def next_timer(self) -> float | None:
        """When :meth:`poll` should run next (None: no time-based cut can happen yet)."""
        if self._started_ms is None or not self._cuttable():
            return None
        return (self._started_ms + self.chunk_ms) / 1000

    def feed(self, data: bytes, now: float) -> list[LiveChunk]:
        """Take bytes that arrived at ``now``; returns the chunks cut, in order."""
        now_ms = _ms(now)
        out = self._cut_if_due(now, now_ms)
        if data:
            if not self._buffer:
                self._started_ms = now_ms
            self._buffer += data
            self._detect(final=False)
            if len(self._buffer) >= self.max_chunk_bytes:
                self._decide()
            cap = self._cap()
            while len(self._buffer) >= cap:
                out.append(self._emit(cap, now, "size"))
                self._started_ms = now_ms if self._buffer else None
            out.extend(self._cut_if_due(now, now_ms))
        return out

    def poll(self, now: float) -> list[LiveChunk]:
        """Cut the pending chunk if its time is up (the timer of :meth:`next_timer` fired)."""
        return self._cut_if_due(now, _ms(now))

    def flush(self, now: float) -> list[LiveChunk]:
        """The stream ended: cut everything pending, a partial TS packet included."""
        if not self._buffer:
            return []
        if self._ts is None:
            self._detect(final=True)
        out = [self._emit(len(self._buffer), now, "flush")]
        self._started_ms = None
        return out

    # ------------------------------------------------------------------ internals

    def _cap(self) -> int:
        if self._ts is None:
            return MAX_CHUNK_PAYLOAD + 1  # undecided (under 188 bytes): no size cut yet
        if self._ts:
            return max(TS_PACKET_SIZE, self.max_chunk_bytes - self.max_chunk_bytes % TS_PACKET_SIZE)
        return self.max_chunk_bytes

    def _detect(self, *, final: bool) -> None:
        # Runs while undecided; the buffer then still holds the stream's first bytes.
        if self._ts is not None or not self._buffer:
            return
        if self._buffer[0] != TS_SYNC_BYTE:
            self._ts = False
        elif len(self._buffer) >= TS_DETECT_PACKETS * TS_PACKET_SIZE or final:
            sample = bytes(self._buffer[: TS_DETECT_PACKETS * TS_PACKET_SIZE])
            self._ts = looks_like_transport_stream(sample)

    def _decide(self) -> None:
        # A cut is due before three packets arrived: decide on what there is (>= 1 packet).
        if self._ts is None and len(self._buffer) >= TS_PACKET_SIZE:
            sample = bytes(self._buffer[: TS_DETECT_PACKETS * TS_PACKET_SIZE])
            self._ts = looks_like_transport_stream(sample)

    def _cuttable(self) -> bool:
        return self._cut_length() > 0

    def _cut_length(self) -> int:
        size = len(self._buffer)
        if self._ts is False:
            return size
        # TS, or undecided with a leading sync byte: whole packets only.
        return size - size % TS_PACKET_SIZE

    def _cut_if_due(self, now: float, now_ms: int) -> list[LiveChunk]:
        if self._started_ms is None or now_ms - self._started_ms < self.chunk_ms:
            return []
        self._decide()
        length = self._cut_length()
        if not length:
            return []  # a partial TS packet: wait for its remainder
        chunk = self._emit(length, now, "time")
        # Bytes left over (the start of a packet) arrived before now; the next chunk starts now.
        self._started_ms = now_ms if self._buffer else None
        return [chunk]

    def _emit(self, length: int, now: float, reason: Literal["time", "size", "flush"]) -> LiveChunk:
        assert self._started_ms is not None
        payload = bytes(self._buffer[:length])
        del self._buffer[:length]
        started_ms = self._started_ms
        envelope = self.source.sign(payload, started_ms)
        return LiveChunk(envelope=envelope, started=started_ms / 1000, cut=now, reason=reason)
