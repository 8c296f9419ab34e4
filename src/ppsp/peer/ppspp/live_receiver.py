"""Receiving a live stream over RFC 7574 with signed munros, one channel to one peer, sans-I/O.

:class:`LiveReceiver` opens a channel to a peer serving a live stream (the source or another
viewer: :class:`~.live_server.LiveServer`), asks for live chunks (one REQUEST of a live chunk's
munro range) and hands out the ones that verified, as :class:`~.live.LiveChunkRecord` (which
the viewer re-serves with the source's signature).  Datagrams and the Unix time ``now`` in;
datagrams, verified live chunks and :meth:`LiveReceiver.next_deadline` out.

**Nothing unverified leaves it.**  A SIGNED_INTEGRITY is checked before anything that depends
on it (section 6.1.2.1: a peer MUST check the signature before forwarding): its range must be
one munro, the INTEGRITY of that munro must come before it in the datagram, its timestamp
within the live window of now (section 6.1.2.4: a too old one MUST be discarded) and not ahead
by more than the clock skew, its live chunk within the discard window behind the newest munro
verified (section 6.2), and the Ed25519 signature must verify under the swarm ID's key.  Then
each DATA is hashed up to its munro with the INTEGRITY hashes received (candidates until they
rebuild the signed hash) and kept only when it does; a live chunk is whole when its verified
pieces, padded with empty leaves, rebuild the munro hash.  Every refusal is counted by reason
in :attr:`LiveReceiver.stats`: ``forged_signature``, ``bad_hash``, ``outside_window``,
``stale_munro``, ``future_munro``, ``unsigned`` (DATA of a munro no valid signature came for),
``missing_hashes``, ``bad_munro_range``, ``too_many_signatures`` (more than
:attr:`LiveReceiverConfig.max_signatures_per_datagram` checks in one datagram), ``malformed``,
...; :attr:`LiveReceiver.forged` counts what only a lying peer sends (a bad signature, a chunk
that does not match a signed munro), which also ends the channel (section 3: communication
with a misbehaving peer SHOULD stop; the caller bans the peer).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from ppsp.codecs.ppspp import decode_datagram, encode_datagram, peek_channel
from ppsp.errors import IntegrityError, PPSPPError, TooManyMessages
from ppsp.peer.content.merkle import parent_hash
from ppsp.peer.ppspp.live import (
    LIVE_CHUNK_SIZE,
    MAX_LIVE_INDEX,
    MUNRO_CHUNKS,
    MUNRO_LEVEL,
    LiveChunkRecord,
    SignedMunro,
    from_ntp,
    live_index_of,
    munro_range,
    public_key_of,
    verify_munro_signature,
)
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS, handshake_refusal, live_handshake
from ppsp.peer.ppspp.opening import MAX_MESSAGES_PER_DATAGRAM
from ppsp.wire.ppspp import (
    Ack,
    Cancel,
    Choke,
    ChunkRange,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    Message,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    SignedIntegrity,
    Unchoke,
    keepalive,
)

__all__ = ["LiveReceiver", "LiveReceiverConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveReceiverConfig:
    """A live channel's tolerances and timers (seconds; times are Unix times)."""

    window_s: float
    """The live window: a signed munro older than this (plus the skew) is stale."""
    window_chunks: int
    """Live chunks kept: our discard window, and how far behind the newest munro one may be."""
    clock_skew_s: float = 5.0
    """How far the source's clock may be from ours."""
    handshake_interval: float = 1.0
    """The opening handshake is sent again this often while unanswered."""
    handshake_timeout: float = 5.0
    """An opening handshake unanswered this long fails the channel."""
    request_timeout: float = 0.5
    """A live chunk asked for and not whole this long is asked again (its missing pieces)."""
    idle_timeout: float = 30.0
    """A channel whose peer sent nothing this long is closed."""
    keepalive_interval: float = 10.0
    max_candidates: int = 4096
    """INTEGRITY hashes kept unverified."""
    max_signatures_per_datagram: int = 4
    """Signature checks one datagram may cost (each about 0.2 ms); the rest are dropped."""


@dataclass(slots=True, eq=False)
class _Assembly:
    """A live chunk being received: its verified pieces."""

    pieces: dict[int, bytes] = field(default_factory=dict)
    asked_at: float = 0.0


class LiveReceiver:
    """One channel fetching live chunks from one peer (see the module)."""

    def __init__(
        self,
        swarm_id: bytes,
        *,
        channel_id: int,
        config: LiveReceiverConfig,
        now: float,
        tune_in: SignedMunro | None = None,
    ) -> None:
        if channel_id == 0:
            raise ValueError("channel 0 is the handshake's")
        self.swarm_id = swarm_id
        self.public_key = public_key_of(swarm_id)
        self.local_id = channel_id
        self.config = config
        self.remote_id: int | None = None
        self.closed: str | None = None
        """Why the channel ended (None while open)."""
        self.stats: Counter[str] = Counter()
        self.forged = 0
        """Refusals only a lying peer causes (a forged signature, a chunk off its munro)."""
        self.peer_window: int | None = None
        """The peer's Live Discard Window, in PPSPP chunks."""
        self._created = now
        self._last_handshake = -math.inf
        self._last_received = now
        self._last_sent = now
        self._peer_held: dict[int, int] = {}
        """Live chunks the peer announced, with the PPSPP chunks of each it announced."""
        self._peer_newest_end = -1
        self._munros: OrderedDict[int, SignedMunro] = OrderedDict()
        self._newest_munro = -1
        self._candidates: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._wanted: dict[int, _Assembly] = {}
        self._completed: list[LiveChunkRecord] = []
        self._out: list[bytes] = []
        self._pending: list[Message] = []
        self._signature_budget = config.max_signatures_per_datagram
        self._now = now
        self._tune_in = tune_in
        """Our right-most signed munro, sent in the third datagram (6.1.2.4), or None."""
        self.choked = False
        """Whether the peer chokes us (section 3.9): no REQUEST goes out until its UNCHOKE,
        when every live chunk still wanted is asked for again."""
        self._send_handshake(now)

    # --- what the peer holds -------------------------------------------------------------

    @property
    def answered(self) -> bool:
        """Whether the peer answered the handshake."""
        return self.remote_id is not None

    def peer_has(self, index: int) -> bool:
        """Whether the peer announced live chunk ``index`` and it is inside the peer's discard
        window behind the newest chunk it announced (section 6.2)."""
        if index not in self._peer_held:
            return False
        window = self.peer_window
        return window is None or index * MUNRO_CHUNKS > self._peer_newest_end - window

    @property
    def peer_newest(self) -> int | None:
        """The newest live chunk the peer announced."""
        return None if self._peer_newest_end < 0 else self._peer_newest_end // MUNRO_CHUNKS

    # --- the caller's interface ------------------------------------------------------------

    def request(self, index: int, now: float) -> None:
        """Ask for live chunk ``index`` (its whole munro range; the peer sends what it holds)."""
        if self.closed is not None or not 0 <= index <= MAX_LIVE_INDEX:
            return
        assembly = self._wanted.setdefault(index, _Assembly())
        assembly.asked_at = now
        if self.answered and not self.choked:
            self._queue(Request(chunk=self._missing(index, assembly)))
            self._flush(now)

    def cancel(self, index: int, now: float) -> None:
        """No longer want live chunk ``index``."""
        if self._wanted.pop(index, None) is not None and self.answered and self.closed is None:
            self._queue(Cancel(chunk=munro_range(index)))
            self._flush(now)

    def take_completed(self) -> list[LiveChunkRecord]:
        """The live chunks that verified whole since the last call (handed over)."""
        out, self._completed = self._completed, []
        return out

    def datagrams_to_send(self) -> list[bytes]:
        """The datagrams to send to the peer now (handed over)."""
        out, self._out = self._out, []
        return out

    def close(self, now: float) -> None:
        """Close the channel (a closing HANDSHAKE when the peer answered)."""
        if self.closed is None:
            if self.remote_id is not None:
                self._send((Handshake(source_channel=0),), now)
            self.closed = "closed"

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next (None: closed)."""
        if self.closed is not None:
            return None
        config = self.config
        if not self.answered:
            return min(
                self._last_handshake + config.handshake_interval,
                self._created + config.handshake_timeout,
            )
        times = [
            self._last_received + config.idle_timeout,
            self._last_sent + config.keepalive_interval,
        ]
        times += [a.asked_at + config.request_timeout for a in self._wanted.values()]
        return min(times)

    def handle_timer(self, now: float) -> None:
        """Resend the handshake, ask again for late chunks, keep alive, time out."""
        if self.closed is not None:
            return
        config = self.config
        if not self.answered:
            if now >= self._created + config.handshake_timeout:
                self.closed = "no answer"
            elif now >= self._last_handshake + config.handshake_interval:
                self._send_handshake(now)
            return
        if now >= self._last_received + config.idle_timeout:
            self.closed = "silent"
            return
        for index, assembly in self._wanted.items():
            if self.choked:
                break  # asked again on UNCHOKE
            if now >= assembly.asked_at + config.request_timeout:
                assembly.asked_at = now
                self.stats["requested_again"] += 1
                self._queue(Request(chunk=self._missing(index, assembly)))
        self._flush(now)
        if now >= self._last_sent + config.keepalive_interval:
            assert self.remote_id is not None
            self._out.append(encode_datagram(keepalive(self.remote_id), LIVE_PARAMETERS))
            self._last_sent = now

    def datagram_received(self, data: bytes, now: float) -> None:
        """Handle one datagram from the peer; never raises for its content."""
        if self.closed is not None:
            return
        self._now = now
        try:
            if peek_channel(data) != self.local_id:
                self.stats["other_channel"] += 1
                return
            datagram = decode_datagram(
                data, LIVE_PARAMETERS, max_messages=MAX_MESSAGES_PER_DATAGRAM
            )
        except PPSPPError as error:
            # Read no further than the serving engines' bound (the peer is no more trusted).
            over = isinstance(error, TooManyMessages)
            self.stats["too_many_messages" if over else "malformed"] += 1
            return
        messages = datagram.messages
        if not self.answered:
            if not messages or not isinstance(messages[0], Handshake):
                self.stats["before_handshake"] += 1
                return
            if not self._answer(messages[0], now):
                return
            messages = messages[1:]
            # The third datagram confirms the channel (3.1.1): DATA flows after it, and the
            # peer announces new chunks only on confirmed channels.  It carries our right-most
            # signed munro (secure tune-in, 6.1.2.4), else the pending requests, else nothing.
            tune_in = self._tune_in
            if tune_in is not None and not self._peer_knows(tune_in.index, messages):
                chunks = tune_in.chunks
                self._pending[:0] = [
                    Integrity(chunk=chunks, hash=tune_in.hash),
                    SignedIntegrity(
                        chunk=chunks, timestamp=tune_in.timestamp, signature=tune_in.signature
                    ),
                ]
            if not self._pending:
                assert self.remote_id is not None
                self._out.append(encode_datagram(keepalive(self.remote_id), LIVE_PARAMETERS))
                self._last_sent = now
        self._last_received = now
        # INTEGRITY hashes are read with the datagram they came in: the munro's first, then
        # its SIGNED_INTEGRITY, then the uncles and the DATA they verify.
        integrity: dict[tuple[int, int], bytes] = {}
        self._signature_budget = self.config.max_signatures_per_datagram
        for message in messages:
            if self.closed is not None:  # a forgery closed it: nothing more is read
                return
            if isinstance(message, Integrity):
                chunk = message.chunk
                assert isinstance(chunk, ChunkRange)
                integrity[(chunk.start, chunk.end)] = message.hash
                self._remember((chunk.start, chunk.end), message.hash)
            elif isinstance(message, SignedIntegrity):
                self._signed(message, integrity, now)
            elif isinstance(message, Data):
                self._data(message, now)
            elif isinstance(message, Have):
                self._have(message)
            elif isinstance(message, Handshake) and message.source_channel == 0:
                self.closed = "closed by the peer"
                return
            elif isinstance(message, Choke):
                self.stats["choked"] += not self.choked
                self.choked = True  # the peer discards our requests (3.9)
            elif isinstance(message, Unchoke):
                if self.choked:
                    self.choked = False
                    self.stats["unchoked"] += 1
                    for index, assembly in self._wanted.items():  # asked for again at once
                        assembly.asked_at = now
                        self._queue(Request(chunk=self._missing(index, assembly)))
            elif isinstance(message, PexResV4 | PexResV6 | PexResCert):
                self.stats["pex_res_unsolicited"] += 1  # we never ask (section 13.2.3)
            # ACK, REQUEST, CANCEL, PEX_REQ: a server's business, not ours.
        self._flush(now)

    # --- inside -------------------------------------------------------------------------------

    def _send_handshake(self, now: float) -> None:
        opening = live_handshake(
            self.local_id,
            discard_window=self.config.window_chunks * MUNRO_CHUNKS,
            swarm_id=self.swarm_id,
        )
        self._out.append(encode_datagram(Datagram(channel=0, messages=(opening,)), LIVE_PARAMETERS))
        self._last_handshake = now
        self._last_sent = now

    def _answer(self, reply: Handshake, now: float) -> bool:
        refusal = handshake_refusal(reply)
        if reply.source_channel == 0:
            refusal = "closed"
        if refusal is not None:
            self.stats[f"refused:{refusal}"] += 1
            self.closed = f"the peer's handshake: {refusal}"
            return False
        self.remote_id = reply.source_channel
        self.peer_window = reply.live_discard_window
        for index, assembly in self._wanted.items():
            assembly.asked_at = now
            self._queue(Request(chunk=self._missing(index, assembly)))
        return True

    @staticmethod
    def _peer_knows(index: int, messages: tuple[Message, ...]) -> bool:
        """Whether the peer's HAVEs in ``messages`` name live chunk ``index`` or a later one."""
        return any(
            isinstance(m, Have)
            and isinstance(m.chunk, ChunkRange)
            and m.chunk.end >= index * MUNRO_CHUNKS
            for m in messages
        )

    def _missing(self, index: int, assembly: _Assembly) -> ChunkRange:
        """What to ask for: the munro range from the first piece not held."""
        first = 0
        while first in assembly.pieces:
            first += 1
        chunks = munro_range(index)
        return ChunkRange(start=chunks.start + first, end=chunks.end)

    def _have(self, message: Have) -> None:
        chunk = message.chunk
        assert isinstance(chunk, ChunkRange)
        first, last = chunk.start // MUNRO_CHUNKS, chunk.end // MUNRO_CHUNKS
        if last - first >= self.config.window_chunks or last > MAX_LIVE_INDEX:
            # More live chunks than a window in one HAVE: count it, keep the newest window.
            self.stats["have_clipped"] += 1
            first = max(first, last - self.config.window_chunks + 1)
        for index in range(first, last + 1):
            base = index * MUNRO_CHUNKS
            count = min(chunk.end, base + MUNRO_CHUNKS - 1) - max(chunk.start, base) + 1
            if chunk.start <= base:  # counts from the munro's first chunk only
                self._peer_held[index] = max(self._peer_held.get(index, 0), count)
            else:
                self._peer_held.setdefault(index, 0)
        self._peer_newest_end = max(self._peer_newest_end, chunk.end)
        floor = self._peer_newest_end // MUNRO_CHUNKS - 2 * self.config.window_chunks
        if len(self._peer_held) > 2 * self.config.window_chunks:
            self._peer_held = {i: n for i, n in self._peer_held.items() if i > floor}

    def _remember(self, key: tuple[int, int], digest: bytes) -> None:
        self._candidates[key] = digest
        self._candidates.move_to_end(key)
        while len(self._candidates) > self.config.max_candidates:
            self._candidates.popitem(last=False)

    def _refuse(self, reason: str, *, forged: bool = False) -> None:
        self.stats[reason] += 1
        if forged:
            # Only a liar sends these: the channel ends (section 3: communication with a
            # misbehaving peer SHOULD stop), and the caller bans the peer.
            self.forged += 1
            self.close(self._now)
            self.closed = f"forged ({reason})"

    def _signed(
        self, message: SignedIntegrity, integrity: dict[tuple[int, int], bytes], now: float
    ) -> None:
        chunk = message.chunk
        assert isinstance(chunk, ChunkRange)
        index = live_index_of(chunk)
        if index is None:
            self._refuse("bad_munro_range")
            return
        known = self._munros.get(index)
        digest = integrity.get((chunk.start, chunk.end))
        if digest is None:
            self._refuse("signature_without_hash")  # no INTEGRITY of the munro before it
            return
        if known is not None and known.hash == digest and known.signature == message.signature:
            return  # already verified
        config = self.config
        when = from_ntp(message.timestamp)
        if when > now + config.clock_skew_s:
            self._refuse("future_munro")
            return
        if when < now - config.window_s - config.clock_skew_s:
            self._refuse("stale_munro")
            return
        if index <= self._newest_munro - config.window_chunks:
            self._refuse("outside_window")
            return
        if self._signature_budget <= 0:
            self._refuse("too_many_signatures")
            return
        self._signature_budget -= 1
        if not verify_munro_signature(
            self.public_key, index, message.timestamp, digest, message.signature
        ):
            self._refuse("forged_signature", forged=True)
            return
        self._munros[index] = SignedMunro(
            index=index, hash=digest, timestamp=message.timestamp, signature=message.signature
        )
        if index > self._newest_munro:
            self._newest_munro = index
        floor = self._newest_munro - config.window_chunks
        while self._munros and next(iter(self._munros)) <= floor:
            self._munros.popitem(last=False)
        self._munros = OrderedDict(sorted(self._munros.items()))
        self.stats["munros_verified"] += 1

    def _data(self, message: Data, now: float) -> None:
        chunk = message.chunk
        assert isinstance(chunk, ChunkRange)
        number = chunk.start
        index, offset = divmod(number, MUNRO_CHUNKS)
        munro = self._munros.get(index)
        if munro is None:
            self._refuse("unsigned")
            return
        payload = message.data
        # Hash up from the leaf to the munro with the hashes received.
        node = hashlib.sha256(payload).digest()
        base = index * MUNRO_CHUNKS
        for level in range(MUNRO_LEVEL):
            position = (offset >> level) ^ 1
            first = base + (position << level)
            sibling = self._candidates.get((first, first + (1 << level) - 1))
            if sibling is None:
                self._refuse("missing_hashes")
                return
            node = parent_hash(sibling, node) if offset >> level & 1 else parent_hash(node, sibling)
        if not hmac.compare_digest(node, munro.hash):
            self._refuse("bad_hash", forged=True)
            return
        self._queue(Ack(chunk=ChunkRange(start=number, end=number), delay=_delay(now, message)))
        assembly = self._wanted.get(index)
        if assembly is None:
            self.stats["data_not_wanted"] += 1
            return
        assembly.pieces[offset] = payload
        self.stats["pieces_verified"] += 1
        self._complete(index, assembly, munro)

    def _complete(self, index: int, assembly: _Assembly, munro: SignedMunro) -> None:
        """Hand out the live chunk when its verified pieces, padded, rebuild its munro: when
        the first ``count`` pieces are held and the last of them is short, or ``count`` is
        what the peer's HAVE of it announced."""
        count = 0
        while count in assembly.pieces:
            count += 1
        if not count:
            return
        short = len(assembly.pieces[count - 1]) < LIVE_CHUNK_SIZE
        if not short and count not in (MUNRO_CHUNKS, self._peer_held.get(index)):
            return
        data = b"".join(assembly.pieces[i] for i in range(count))
        try:
            record = LiveChunkRecord.build(data, munro)
        except IntegrityError:
            if short:
                # Pieces that verified but do not end the chunk where the short one ends:
                # only the key's holder can make those.
                self._refuse("bad_length", forged=True)
                del self._wanted[index]
            return
        del self._wanted[index]
        self._queue(Have(chunk=record.held))
        self._completed.append(record)
        self.stats["chunks_completed"] += 1

    def _queue(self, message: Message) -> None:
        self._pending.append(message)

    def _flush(self, now: float) -> None:
        if not self._pending or self.remote_id is None or self.closed is not None:
            return
        messages, self._pending = self._pending, []
        for start in range(0, len(messages), 100):
            self._send(tuple(messages[start : start + 100]), now)

    def _send(self, messages: tuple[Message, ...], now: float) -> None:
        assert self.remote_id is not None
        datagram = Datagram(channel=self.remote_id, messages=messages)
        self._out.append(encode_datagram(datagram, LIVE_PARAMETERS))
        self._last_sent = now


def _delay(now: float, message: Data) -> int:
    """The ACK's one-way delay sample: our clock at arrival minus the DATA's timestamp (us)."""
    return (int(now * 1_000_000) - message.timestamp) % (1 << 64)
