"""The live source: cut the incoming stream into chunks and sign each one.

:class:`LiveSource` holds the key and the description and numbers the chunks from 0.
:class:`LiveChunker` takes the stream's bytes as they arrive (``feed(data, now)``) and cuts a
chunk when

- ``chunk_ms`` of wall time has passed since the chunk's first byte arrived (checked on every
  :meth:`~LiveChunker.feed` and :meth:`~LiveChunker.poll`; the bytes fed at the moment of the
  cut belong to the next chunk), or
- a key frame arrives (MPEG-TS, below), or
- the pending bytes reach the size cap ``max_chunk_bytes`` (several chunks at once for a large
  write), or
- the stream ends (:meth:`~LiveChunker.flush`): the last chunk carries the END flag, even when
  it is empty, so that viewers know the stream is over.

A chunk's timestamp is the arrival time of its first byte, so a viewer's "delay behind the
source" counts from when the media entered the source.

**Start points.**  Every chunk says, in its signed START flag, whether a player can start
playing with its first byte.  Any chunk of a stream that is not MPEG-TS is one.  MPEG transport
streams (ISO/IEC 13818-1: 188-byte packets, each starting with the sync byte 0x47) are cut only
at packet boundaries, and :class:`~ppsp.peer.live.ts.TransportStreamScanner` finds the key
frames of the video (the random access points, see :mod:`ppsp.peer.live.ts`).  A TS chunk is a
start point when the first packet of the video in it starts a key frame; when the program tables
(PAT and PMT) do not come before that packet within the chunk, copies of the latest ones are put
at the chunk's start, so a player that starts there can demultiplex the stream at once.  Until
a PMT is known no TS chunk is a start point, except in a stream that shows no PMT in its first
:data:`NO_TABLES_FALLBACK_S` seconds and :data:`NO_TABLES_FALLBACK_PACKETS` packets: it is then
treated as a stream that is not TS.

**Cutting at key frames.**  So that start points are frequent, a key frame starts a new chunk
(a "key" cut) when the chunk before it is at least half a ``chunk_ms`` old and the next key
frame, expected one key-frame interval later, would come after that chunk's time cut; a time
cut that falls due while the next key frame is expected within half a ``chunk_ms`` waits for
it, up to a quarter of a ``chunk_ms`` after it was expected; and a time cut due when a write
arrives is made at that write's first key frame, if it has one.  So a video with a key frame
every second, cut in 500 ms chunks, starts every other chunk with a key frame, and a stream
whose every audio frame is a random access point (audio only) is cut at one near each time cut.
Chunks therefore last between half and about 1.75 times ``chunk_ms``; viewers time playback by
the chunks' timestamps, not their numbers.

The chunker detects TS from the stream's first bytes: not TS as soon as the first byte is not
0x47; TS once three packets' worth of bytes all carry the sync byte at every 188th position (or,
at the first cut, as many as there are, at least one packet).  A partial packet waits for its
remainder; only :meth:`~LiveChunker.flush` emits one.  Alignment counts bytes from the start of
the stream: the chunker does not resynchronise a damaged stream.

Sans-I/O: the caller passes ``now`` (Unix time, seconds) and arms one timer for
:meth:`~LiveChunker.next_timer`, calling :meth:`~LiveChunker.poll` when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import LiveError
from ppsp.peer.live.envelope import (
    FLAG_END,
    FLAG_START,
    MAX_CHUNK_PAYLOAD,
    MAX_INDEX,
    ChunkEnvelope,
    signing_message,
)
from ppsp.peer.live.identity import LiveDescription, public_key_bytes
from ppsp.peer.live.ts import TS_PACKET_SIZE, TS_SYNC_BYTE, PacketInfo, TransportStreamScanner

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "NO_TABLES_FALLBACK_PACKETS",
    "NO_TABLES_FALLBACK_S",
    "TS_PACKET_SIZE",
    "TS_SYNC_BYTE",
    "LiveChunk",
    "LiveChunker",
    "LiveSource",
    "looks_like_transport_stream",
]

TS_DETECT_PACKETS: Final = 3
"""Packets whose sync bytes the detector wants to see before deciding on TS."""

DEFAULT_MAX_CHUNK_BYTES: Final = 2 * 1024 * 1024
"""Default size cap of one chunk (2 MiB)."""

NO_TABLES_FALLBACK_S: Final = 5.0
NO_TABLES_FALLBACK_PACKETS: Final = 100
"""A transport stream that shows no PMT for ``NO_TABLES_FALLBACK_S`` seconds and
``NO_TABLES_FALLBACK_PACKETS`` packets has every chunk marked as a start point."""

CutReason = Literal["time", "size", "key", "flush"]


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

    def sign(self, payload: bytes, timestamp_ms: int, *, flags: int = FLAG_START) -> ChunkEnvelope:
        """Number and sign the next chunk, stamped ``timestamp_ms`` (Unix ms), with ``flags``."""
        if len(payload) > MAX_CHUNK_PAYLOAD:
            raise LiveError(f"a chunk holds at most {MAX_CHUNK_PAYLOAD} bytes")
        timestamp_ms = max(timestamp_ms, self._last_timestamp_ms, 0)
        index = self.next_index
        message = signing_message(
            self.description.swarm_id,
            self.description.start_ms,
            index,
            timestamp_ms,
            payload,
            flags=flags,
        )
        envelope = ChunkEnvelope(
            index=index,
            timestamp_ms=timestamp_ms,
            signature=self._key.sign(message),
            payload=bytes(payload),
            flags=flags,
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
    reason: CutReason
    """Why it was cut: ``"time"``, ``"size"``, ``"key"`` (a key frame follows) or ``"flush"``."""

    @property
    def index(self) -> int:
        """The chunk index."""
        return self.envelope.index

    @property
    def payload(self) -> bytes:
        """The chunk's bytes."""
        return self.envelope.payload

    @property
    def start(self) -> bool:
        """Whether a player can start playing with this chunk."""
        return self.envelope.start

    @property
    def end(self) -> bool:
        """Whether this is the stream's last chunk."""
        return self.envelope.end


def _ms(now: float) -> int:
    return max(0, round(now * 1000))


@dataclass(slots=True)
class _Lead:
    """How the chunk being built begins (MPEG-TS): what precedes its first video packet."""

    tables: tuple[bytes, ...] = ()
    """The program tables as they were when the chunk's first packet came (for copies)."""
    pat: bool = False
    pmt: bool = False
    """A PAT / a PMT came before the first packet of the key stream."""
    seen: bool = False
    """A packet of the key stream has come."""
    key: bool = False
    """That first packet of the key stream starts a key frame."""


class LiveChunker:
    """Cuts a live byte stream into signed chunks (see the module docstring).

    ``transport_stream`` forces packet alignment on (True) or off (False); None detects it.
    """

    __slots__ = (
        "_chunk",
        "_ended",
        "_first_ms",
        "_key_interval_ms",
        "_last_key_ms",
        "_lead",
        "_packets",
        "_pending",
        "_scanner",
        "_started_ms",
        "_ts",
        "max_chunk_bytes",
        "source",
    )

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
        # _chunk: the chunk being built (TS: whole packets, already scanned);
        # _pending: bytes not in it yet (TS: a partial packet; undecided: everything).
        self._chunk = bytearray()
        self._pending = bytearray()
        self._started_ms: int | None = None  # arrival of the first byte of _chunk + _pending
        self._first_ms: int | None = None  # arrival of the stream's first byte
        self._scanner = TransportStreamScanner()
        self._lead = _Lead()
        self._packets = 0  # TS packets scanned
        self._last_key_ms: int | None = None
        self._key_interval_ms: int | None = None
        self._ended = False

    @property
    def transport_stream(self) -> bool | None:
        """Whether the input is MPEG-TS (None while undecided)."""
        return self._ts

    @property
    def pending(self) -> int:
        """Bytes received and not yet cut into a chunk."""
        return len(self._chunk) + len(self._pending)

    @property
    def chunk_ms(self) -> int:
        """The chunk duration from the description."""
        return self.source.description.chunk_ms

    @property
    def ended(self) -> bool:
        """Whether :meth:`flush` has cut the last chunk."""
        return self._ended

    @property
    def scanner(self) -> TransportStreamScanner:
        """The transport stream scanner (what it learnt of the stream's programs)."""
        return self._scanner

    def next_timer(self) -> float | None:
        """When :meth:`poll` should run next (None: no time-based cut can happen yet)."""
        if self._started_ms is None or not self._cuttable():
            return None
        due = self._started_ms + self.chunk_ms
        hold = self._hold_until_ms()
        return (due if hold is None else max(due, hold)) / 1000

    def feed(self, data: bytes, now: float) -> list[LiveChunk]:
        """Take bytes that arrived at ``now``; returns the chunks cut, in order."""
        if self._ended:
            raise LiveError("the stream has ended")
        now_ms = _ms(now)
        if not data:
            return self.poll(now)
        out: list[LiveChunk] = []
        due = self._time_due(now_ms)
        if self._ts is None and due:
            # Undecided: what was pending before this write is cut on time as one piece.
            self._decide()
            out += self._cut_undecided(now, now_ms)
            due = False
        if self._started_ms is None:
            self._started_ms = now_ms
        if self._first_ms is None:
            self._first_ms = now_ms
        self._pending += data
        if self._ts is None:
            self._detect(final=False)
            if self._ts is None and len(self._pending) >= self.max_chunk_bytes:
                self._decide()
            if self._ts is None:
                return out
        if self._ts:
            out += self._take_packets(now, now_ms, due)
        else:
            out += self._take_bytes(now, now_ms, due)
        return out

    def poll(self, now: float) -> list[LiveChunk]:
        """Cut the pending chunk if its time is up (the timer of :meth:`next_timer` fired)."""
        if self._ended:
            return []
        now_ms = _ms(now)
        if not self._time_due(now_ms):
            return []
        if self._ts is None:
            self._decide()
            return self._cut_undecided(now, now_ms)
        if not self._chunk:
            return []
        chunk = self._emit(now, now_ms, "time")
        if self._pending:
            self._started_ms = now_ms  # the rest of a packet: it belongs to the next chunk
        return [chunk]

    def flush(self, now: float) -> list[LiveChunk]:
        """The stream ended: cut everything pending, a partial TS packet included, as the last
        chunk (flagged END, empty when nothing is pending).  Later calls return nothing."""
        if self._ended:
            return []
        now_ms = _ms(now)
        if self._ts is None and self._pending:
            self._detect(final=True)
            self._decide()
        out: list[LiveChunk] = []
        if self._ts and self._pending:
            out += self._take_packets(now, now_ms, due=False)
        self._chunk += self._pending  # a partial packet, or anything undecided
        self._pending.clear()
        if self._started_ms is None:
            self._started_ms = now_ms
        out.append(self._emit(now, now_ms, "flush", end=True))
        self._ended = True
        return out

    # ------------------------------------------------------------------ detection

    def _detect(self, *, final: bool) -> None:
        # Runs while undecided; _pending then still holds the stream's first bytes.
        if self._ts is not None or not self._pending:
            return
        if self._pending[0] != TS_SYNC_BYTE:
            self._ts = False
        elif len(self._pending) >= TS_DETECT_PACKETS * TS_PACKET_SIZE or final:
            sample = bytes(self._pending[: TS_DETECT_PACKETS * TS_PACKET_SIZE])
            self._ts = looks_like_transport_stream(sample)

    def _decide(self) -> None:
        # A cut is due before three packets arrived: decide on what there is (>= 1 packet).
        if self._ts is None and len(self._pending) >= TS_PACKET_SIZE:
            sample = bytes(self._pending[: TS_DETECT_PACKETS * TS_PACKET_SIZE])
            self._ts = looks_like_transport_stream(sample)

    def _cut_undecided(self, now: float, now_ms: int) -> list[LiveChunk]:
        """A time cut right after :meth:`_decide`: whatever is pending, as its kind allows."""
        if self._ts is None:
            return []  # under one packet, starting with a sync byte: wait for more
        if self._ts:
            return self._take_packets(now, now_ms, due=True, cut_all=True)
        return self._take_bytes(now, now_ms, due=False, cut_all=True)

    # ------------------------------------------------------------------ cutting

    def _cuttable(self) -> bool:
        if self._ts is False or (self._ts is None and self._pending[:1] != b"\x47"):
            return bool(self._chunk or self._pending)
        return bool(self._chunk) or len(self._pending) >= TS_PACKET_SIZE

    def _time_due(self, now_ms: int) -> bool:
        if self._started_ms is None or now_ms - self._started_ms < self.chunk_ms:
            return False
        if not self._cuttable():
            return False  # a partial TS packet: wait for its remainder
        hold = self._hold_until_ms()
        return hold is None or now_ms >= hold

    def _hold_until_ms(self) -> int | None:
        """Until when a due time cut waits for the next key frame (None: it does not wait)."""
        if not self._ts or self._last_key_ms is None or self._key_interval_ms is None:
            return None
        assert self._started_ms is not None
        expected = self._last_key_ms + self._key_interval_ms
        chunk_ms = self.chunk_ms
        if expected - self._started_ms > chunk_ms + chunk_ms // 2:
            return None  # far off: cut on time
        return expected + chunk_ms // 4

    def _key_cut_wanted(self, now_ms: int) -> bool:
        """Whether a key frame arriving now starts a new chunk (see the module docstring)."""
        if not self._chunk or self._started_ms is None:
            return False
        age = now_ms - self._started_ms
        if age < self.chunk_ms // 2:
            return False
        interval = self._key_interval_ms
        return interval is None or age + interval >= self.chunk_ms

    def _note_key(self, now_ms: int) -> None:
        last = self._last_key_ms
        if last is not None and now_ms > last:
            self._key_interval_ms = now_ms - last
        if last is None or now_ms > last:
            self._last_key_ms = now_ms

    def _take_bytes(
        self, now: float, now_ms: int, due: bool, *, cut_all: bool = False
    ) -> list[LiveChunk]:
        """Not TS: a due cut comes before this write's bytes; then the size cap."""
        out: list[LiveChunk] = []
        if cut_all:
            self._chunk += self._pending
            self._pending.clear()
            return [self._emit(now, now_ms, "time")] if self._chunk else []
        if due and self._chunk:
            out.append(self._emit(now, now_ms, "time"))
            self._started_ms = now_ms
        self._chunk += self._pending
        self._pending.clear()
        while len(self._chunk) >= self.max_chunk_bytes:
            rest = bytes(self._chunk[self.max_chunk_bytes :])
            del self._chunk[self.max_chunk_bytes :]
            out.append(self._emit(now, now_ms, "size"))
            self._chunk += rest
            self._started_ms = now_ms if rest else None
        return out

    def _take_packets(
        self, now: float, now_ms: int, due: bool, *, cut_all: bool = False
    ) -> list[LiveChunk]:
        """TS: scan the whole packets pending and cut before key frames, on time and by size."""
        whole = len(self._pending) - len(self._pending) % TS_PACKET_SIZE
        data = bytes(self._pending[:whole])
        del self._pending[:whole]
        scanner = self._scanner
        scanned: list[tuple[PacketInfo, tuple[bytes, ...]]] = []
        for offset in range(0, whole, TS_PACKET_SIZE):
            tables = scanner.program_tables()  # as they were before this packet
            scanned.append((scanner.scan(data[offset : offset + TS_PACKET_SIZE]), tables))
        self._packets += len(scanned)
        out: list[LiveChunk] = []
        if cut_all:
            # A time cut after detection: every whole packet belongs to the chunk being cut.
            for k, (info, tables) in enumerate(scanned):
                packet = data[k * TS_PACKET_SIZE : (k + 1) * TS_PACKET_SIZE]
                self._append(packet, info, tables, now_ms)
                if info.key:
                    self._note_key(now_ms)
            if self._chunk:
                out.append(self._emit(now, now_ms, "time"))
            if self._pending:
                self._started_ms = now_ms
            return out
        if due and self._chunk and not any(info.key for info, _ in scanned):
            out.append(self._emit(now, now_ms, "time"))  # the write starts the next chunk
            self._started_ms = now_ms
        cap = self.max_chunk_bytes - self.max_chunk_bytes % TS_PACKET_SIZE
        for k, (info, tables) in enumerate(scanned):
            packet = data[k * TS_PACKET_SIZE : (k + 1) * TS_PACKET_SIZE]
            if info.key:
                if self._key_cut_wanted(now_ms):
                    out.append(self._emit(now, now_ms, "key"))
                    self._started_ms = now_ms
                self._note_key(now_ms)
            if self._chunk and self._size_with(tables) + TS_PACKET_SIZE > cap:
                out.append(self._emit(now, now_ms, "size"))
                self._started_ms = now_ms
            self._append(packet, info, tables, now_ms)
        if self._time_due(now_ms):
            # A chunk that became whole only now (a packet completed) and is overdue.
            out.append(self._emit(now, now_ms, "time"))
            if self._pending:
                self._started_ms = now_ms
        return out

    def _size_with(self, tables: tuple[bytes, ...]) -> int:
        """The payload size of the chunk being built, table copies included."""
        lead = self._lead if self._chunk else _Lead(tables=tables)
        extra = 0 if lead.pat and lead.pmt else sum(len(t) for t in lead.tables)
        return len(self._chunk) + extra

    def _append(
        self, packet: bytes, info: PacketInfo, tables: tuple[bytes, ...], now_ms: int
    ) -> None:
        if not self._chunk:
            self._lead = _Lead(tables=tables)
            if self._started_ms is None:
                self._started_ms = now_ms
        lead = self._lead
        if not lead.seen:
            if info.table:
                if info.pid == 0:
                    lead.pat = True
                else:
                    lead.pmt = True
            elif info.key_stream:
                lead.seen = True
                lead.key = info.key
        self._chunk += packet

    # ------------------------------------------------------------------ emitting

    def _emit(self, now: float, now_ms: int, reason: CutReason, *, end: bool = False) -> LiveChunk:
        payload, start = self._finish_payload(now_ms)
        self._chunk.clear()
        started_ms = self._started_ms if self._started_ms is not None else now_ms
        self._started_ms = None
        flags = (FLAG_START if start else 0) | (FLAG_END if end else 0)
        envelope = self.source.sign(payload, started_ms, flags=flags)
        return LiveChunk(envelope=envelope, started=started_ms / 1000, cut=now, reason=reason)

    def _finish_payload(self, now_ms: int) -> tuple[bytes, bool]:
        """The chunk's bytes (with copies of the program tables where needed), and whether it
        is a start point."""
        body = bytes(self._chunk)
        if not body:
            return body, False
        if not self._ts:
            return body, True
        scanner = self._scanner
        if not scanner.tables_known:
            # No PMT (yet): after a while, treat the stream as one we cannot look into.
            first = self._first_ms if self._first_ms is not None else now_ms
            waited = now_ms - first >= NO_TABLES_FALLBACK_S * 1000
            return body, waited and self._packets >= NO_TABLES_FALLBACK_PACKETS
        if scanner.key_pid is None:
            return body, True  # neither video nor audio: any packet will do
        lead = self._lead
        if not lead.seen or not lead.key:
            return body, False
        if lead.pat and lead.pmt:
            return body, True
        if not lead.tables or sum(map(len, lead.tables)) + len(body) > self.max_chunk_bytes:
            return body, False
        return b"".join(lead.tables) + body, True
