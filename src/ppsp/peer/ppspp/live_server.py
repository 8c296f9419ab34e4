"""Serving a live stream over RFC 7574 with signed munros (sections 6.1.2 and 6.2), sans-I/O.

:class:`LiveServer` serves the live chunks it holds, each a :class:`~.live.LiveChunkRecord`
under a signed munro: the source's (:meth:`LiveServer.append` cuts, hashes and signs) or, on a
viewer, those its receiving channels verified (:meth:`LiveServer.add`, re-served with the
source's signature, which a viewer cannot make).  Datagrams and the Unix time ``now`` in;
``(address, bytes)`` and :meth:`LiveServer.next_deadline` out; it reads no clock.

- **Handshake** (3.1.1, 7): answered only when the swarm ID is ours (the source's key as a
  DNSKEY), the version 1 within the peer's range, CIPM 3 (Unified Merkle Tree), live signature
  algorithm 15 (Ed25519), 32-bit chunk ranges, a live discard window, and a chunk size, when
  announced, of :data:`~.live.LIVE_CHUNK_SIZE`; otherwise dropped unanswered, counted, as is
  an opening datagram of more than ``max_opening_messages`` messages besides its HANDSHAKE.
  The reply carries every option the strict RFC 7574 profile requires, our discard window
  (the live chunks kept, in PPSPP chunks), then a HAVE per live chunk held, the newest first
  as many as keep the answer within ``answer_factor`` times the opening datagram (13.1.1:
  the address has not shown it receives); the rest once the peer confirmed the channel.  The
  same handshake again is answered again at most every ``answer_interval`` (the seeder's
  bounds, :mod:`.opening`).
- **HAVE**: a new live chunk is announced on every established channel (6.1.2.3: only once its
  munro is signed, which :meth:`LiveServer.append` does before it is held), with its signed
  munro (the right-most one, 6.1.2.4); a newly confirmed channel gets the right-most signed
  munro held (secure tune-in).  Live chunks that leave the discard window are forgotten: the
  peer's own discard-window filter tells it so.
- **DATA** (6.1.2.3): per requested PPSPP chunk one datagram: INTEGRITY of the munro and
  SIGNED_INTEGRITY of its signature (unless the peer acknowledged a chunk of that munro, by ACK
  or HAVE), INTEGRITY of every uncle up to the munro (all of them: each datagram verifies on
  its own, so a lost datagram costs only itself; 9 hashes, 369 bytes), then the DATA, last.
  Requests for chunks not held are dropped (counted), as are requests for chunks in flight or
  that the peer acknowledged (unless it gave their live chunk up: a CANCEL, or a REQUEST
  starting at a chunk it acknowledged).
- **Pace** (RFC 6817, 8.7): as the seeder's (:mod:`.sending`): per channel a LEDBAT window of
  DATA in flight fed by the ACKs' one-way delay samples, a DATA unacknowledged after the
  retransmission timeout lost (the window halves; the chunk is sent again first while its live
  chunk is held and the peer has not announced it); under the upload cap (``pacer``, HTTP's
  bucket too) ``send_slots`` channels at a time (:mod:`.live_slots`), their hosts in turn, one
  DATA each.  :attr:`LiveServer.on_data` is told of each DATA (the I/O layer attributes it).
- **Channels**: 32-bit random IDs, bound to the address that opened them; at most
  ``max_channels``, ``max_channels_per_host`` per host (an IPv4 address, an IPv6 /64), a new
  one beyond evicting by :mod:`.admission`'s rule; a closing HANDSHAKE forgets one;
  keep-alives after 30 s of silence from us; forgotten after 180 s of silence from the peer
  (10 s while half open).  Anything that does not parse, a datagram of more than
  ``max_messages_per_datagram`` messages (the codec reads no further: nor past an opening
  datagram's bound), or a DATA (we ask for nothing), closes the channel;
  a receiver's own right-most signed munro is only counted.  A HAVE or ACK costs the live
  chunks it names that are held and not yet acknowledged whole, never the whole window.
"""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ppsp.codecs.ppspp import decode_datagram, encode_datagram, peek_channel
from ppsp.errors import LocalProtocolError, PPSPPError, TooManyMessages
from ppsp.peer.live.identity import DNSSEC_ALGORITHM_ED25519, SIGNATURE_SIZE
from ppsp.peer.ppspp import opening as bounds
from ppsp.peer.ppspp.admission import ChannelRoom, host_of
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.ledbat import Ledbat
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, MAX_LIVE_INDEX, MUNRO_CHUNKS, LiveChunkRecord
from ppsp.peer.ppspp.live_config import LiveServerConfig
from ppsp.peer.ppspp.live_slots import SendSlots
from ppsp.peer.ppspp.sending import (
    SendTurns,
    acked_in_flight,
    acknowledge,
    flight_deadline,
    take_expired,
)
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import (
    PPSPP_VERSION,
    Ack,
    Cancel,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    MessageType,
    PexReq,
    Request,
    SignedIntegrity,
    SupportedMessages,
    keepalive,
)

__all__ = [
    "LIVE_PARAMETERS",
    "LIVE_SUPPORTED_MESSAGES",
    "LiveServer",
    "LiveServerConfig",
    "live_handshake",
]

LIVE_PARAMETERS = ChannelParameters(
    chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    merkle_hash=MerkleHashFunction.SHA256,
    chunk_size=LIVE_CHUNK_SIZE,
    signature_length=SIGNATURE_SIZE,
)
"""How every datagram of a live channel is read and written (channel 0's included)."""

LIVE_SUPPORTED_MESSAGES = SupportedMessages.from_types(
    (
        MessageType.HANDSHAKE,
        MessageType.DATA,
        MessageType.ACK,
        MessageType.HAVE,
        MessageType.INTEGRITY,
        MessageType.SIGNED_INTEGRITY,
        MessageType.REQUEST,
        MessageType.CANCEL,
    )
)
"""What live channels announce in the Supported Messages option."""


_HAVE_BYTES = 1 + 2 * 4
"""One HAVE of a 32-bit chunk range."""


def live_handshake(
    source_channel: int, *, discard_window: int, swarm_id: bytes | None = None
) -> Handshake:
    """A live channel's HANDSHAKE: with ``swarm_id`` an opening one, else a reply."""
    return Handshake(
        source_channel=source_channel,
        version=PPSPP_VERSION,
        min_version=PPSPP_VERSION,
        swarm_id=swarm_id,
        content_integrity=ContentIntegrity.UNIFIED_MERKLE,
        merkle_hash=MerkleHashFunction.SHA256,
        live_signature=DNSSEC_ALGORITHM_ED25519,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        live_discard_window=discard_window,
        supported_messages=LIVE_SUPPORTED_MESSAGES,
        chunk_size=LIVE_CHUNK_SIZE,
    )


def handshake_refusal(handshake: Handshake) -> str | None:
    """Why a live channel's HANDSHAKE (opening or reply) cannot be used, or None."""
    version, minimum = handshake.version, handshake.min_version or 1
    if version is None or not minimum <= PPSPP_VERSION <= max(version, PPSPP_VERSION):
        return "version"
    if version < PPSPP_VERSION:
        return "version"
    if handshake.content_integrity is not ContentIntegrity.UNIFIED_MERKLE:
        return "integrity_method"
    if handshake.live_signature != DNSSEC_ALGORITHM_ED25519:
        return "signature_algorithm"
    if handshake.merkle_hash not in (None, MerkleHashFunction.SHA256):
        return "hash_function"
    if handshake.chunk_addressing is not ChunkAddressing.CHUNK_RANGE_32:
        return "chunk_addressing"
    if handshake.live_discard_window is None:
        return "discard_window"
    if handshake.chunk_size not in (None, LIVE_CHUNK_SIZE):
        return "chunk_size"
    return None


@dataclass(slots=True, eq=False)
class _Channel:
    """One served channel: the peer, its channel, what it acknowledged, what it asked for."""

    address: Address
    local_id: int
    remote_id: int
    created: float
    last_received: float
    last_sent: float
    host: str = ""
    """The address's host (:func:`.admission.host_of`): what the per-host bound counts."""
    last_asked: float = 0.0
    """When the peer last sent a REQUEST or acknowledged DATA in flight (its channel's
    establishment, or opening, before that): what eviction calls idle."""
    established: bool = False
    acknowledged: set[int] = field(default_factory=set)
    """Live chunks the peer acknowledged a chunk of (its munro is known to it)."""
    queue: deque[int] = field(default_factory=deque)
    """PPSPP chunks to send, in order."""
    queued: set[int] = field(default_factory=set)
    ledbat: Ledbat = field(default_factory=Ledbat)
    flight: dict[int, float] = field(default_factory=dict)
    """DATA sent and not acknowledged: PPSPP chunk -> when sent (oldest first)."""
    pieces: dict[int, set[int]] = field(default_factory=dict)
    """Of each live chunk held, the pieces (offsets) the peer acknowledged (ACK or HAVE)."""
    whole: set[int] = field(default_factory=set)
    """Live chunks held whose every piece the peer acknowledged (nothing more to mark)."""
    answered_at: float = float("-inf")
    """When its opening handshake was last answered."""
    answered: frozenset[int] = frozenset()
    """The live chunks whose HAVE went in that answer."""


class LiveServer:
    """Serves the live chunks it holds over any number of channels (see the module)."""

    def __init__(
        self,
        swarm_id: bytes,
        *,
        window_chunks: int,
        signer: Callable[[bytes], bytes] | None = None,
        config: LiveServerConfig | None = None,
        channel_ids: Callable[[], int] = lambda: secrets.randbits(32),
        pacer: UploadPacer | None = None,
    ) -> None:
        if not 1 <= window_chunks <= MAX_LIVE_INDEX:
            raise ValueError("window_chunks out of range")
        self.pacer = pacer
        """The peer's upload cap (its bucket on the clock of ``now``: Unix time), or None."""
        self.on_data: Callable[[bytes, Any, int], None] | None = None
        """Told of each DATA sent: the swarm ID, the channel's address and the piece's bytes
        (the I/O layer attributes them to a PeerID for ``--report``)."""
        self.swarm_id = swarm_id
        self.window_chunks = window_chunks
        self.signer = signer
        self.config = config or LiveServerConfig()
        self._channel_ids = channel_ids
        self._held: OrderedDict[int, LiveChunkRecord] = OrderedDict()
        self._channels: dict[int, _Channel] = {}
        self._by_peer: dict[tuple[Address, int], _Channel] = {}
        self._room: ChannelRoom[_Channel] = ChannelRoom(
            max_channels=self.config.max_channels,
            max_per_host=self.config.max_channels_per_host,
            evict_idle=self.config.evict_idle,
        )
        self._out: list[tuple[Address, bytes]] = []
        self.stats: Counter[str] = Counter()
        """What happened: datagrams in and out, DATA sent and lost, and every drop by reason."""
        self._turns = SendTurns(pacer, self._send_on, self.stats)
        self._slots = None if pacer is None else SendSlots(self.config.send_slots, self._queued)

    # --- what is held ------------------------------------------------------------------------

    @property
    def discard_window(self) -> int:
        """The Live Discard Window option's value: the PPSPP chunks of the live chunks kept."""
        return self.window_chunks * MUNRO_CHUNKS

    def holds(self, index: int) -> bool:
        """Whether live chunk ``index`` is held."""
        return index in self._held

    def get(self, index: int) -> LiveChunkRecord | None:
        """The record of live chunk ``index``, or None."""
        return self._held.get(index)

    @property
    def newest(self) -> int | None:
        """The newest live chunk held."""
        return next(reversed(self._held), None)

    def append(self, index: int, data: bytes, now: float) -> LiveChunkRecord:
        """(The source) sign live chunk ``index`` of ``data`` at Unix time ``now``, hold it
        and announce it."""
        if self.signer is None:
            raise LocalProtocolError("only the source signs live chunks")
        record = LiveChunkRecord.sign(index, data, now, self.signer)
        self.add(record, now)
        return record

    def add(self, record: LiveChunkRecord, now: float) -> bool:
        """Hold a verified live chunk and announce it (HAVE) on every established channel;
        chunks below the discard window are forgotten.  False when it was held or too old."""
        index = record.index
        newest = self.newest
        if index in self._held or (newest is not None and index <= newest - self.window_chunks):
            return False
        self._held[index] = record
        if newest is not None and index < newest:
            self._held = OrderedDict(sorted(self._held.items()))
        while len(self._held) > self.window_chunks or (
            self._held and next(iter(self._held)) <= (self.newest or 0) - self.window_chunks
        ):
            self._held.popitem(last=False)
        if index not in self._held:
            return False
        # The new right-most signed munro goes with its HAVE (6.1.2.4: a peer's right-most
        # signed munro in every datagram until the other side shows it has it).
        announcement = (*self._signed_munro(record), Have(chunk=record.held))
        for channel in self._channels.values():
            if channel.established and index not in channel.acknowledged:
                self._send(channel, announcement, now)
        self.stats["chunks_held"] += 1
        return True

    # --- the I/O layer's interface -----------------------------------------------------------

    def owns(self, channel_id: int, address: Address) -> bool:
        """Whether a datagram on ``channel_id`` from ``address`` is this server's."""
        if channel_id == 0:
            return True
        channel = self._channels.get(channel_id)
        return channel is not None and channel.address == address

    def datagram_received(self, data: bytes, address: Address, now: float) -> None:
        """Handle one datagram from ``address`` at ``now``; never raises for its content."""
        self.stats["datagrams_in"] += 1
        config, over = self.config, False
        try:
            channel_id = peek_channel(data)
            # Read no further than the bound: the message beyond it refuses the datagram.
            limit = config.max_messages_per_datagram
            if channel_id == 0:
                limit = 1 + config.max_opening_messages  # its HANDSHAKE and what goes with it
            datagram = decode_datagram(data, LIVE_PARAMETERS, max_messages=limit)
        except TooManyMessages as error:
            # Refused below, for the reason reading it whole would have given (an opening
            # datagram's HANDSHAKE, which the codec read, is checked first).
            first = [m for m in error.messages[:1] if isinstance(m, Handshake)]
            datagram, over = Datagram(channel=channel_id, messages=tuple(first)), True
        except PPSPPError:
            self.stats["malformed"] += 1
            channel = self._channels.get(channel_id) if len(data) >= 4 else None
            if channel is not None and channel.address == address:
                self._close(channel, now, notify=True)
            return
        if channel_id == 0:
            self._opening(datagram, address, now, len(data), over)
            return
        channel = self._channels.get(channel_id)
        if channel is None or channel.address != address:
            self.stats["unknown_channel"] += 1
            return
        if over:
            self.stats["too_many_messages"] += 1
            self._close(channel, now, notify=True)
            return
        channel.last_received = now
        confirmed = not channel.established
        if confirmed:
            channel.established = True
            channel.last_asked = now  # idle from its establishment on
            self._room.confirm(channel)
        # Losses due by now first (the timer may not have run yet): a REQUEST in this datagram
        # for a chunk lost in flight then finds it queued again, not in flight.
        self._expire(channel, now)
        for message in datagram.messages:
            if not self._on_message(channel, message, now):
                return
        if confirmed:
            self._catch_up(channel, now)
        self._pump(channel, now)

    def handle_timer(self, now: float) -> None:
        """Time out channels, re-send lost DATA, send what the upload cap now allows and the
        keep-alives due at ``now``."""
        config = self.config
        with self._turns.collecting(now):  # under the cap: every channel's turn, then serve
            for channel in list(self._channels.values()):
                if not channel.established:
                    if now >= channel.created + config.half_open_timeout:
                        self.stats["half_open_expired"] += 1
                        self._forget(channel)
                    continue
                if now >= channel.last_received + config.idle_timeout:
                    self.stats["idle_closed"] += 1
                    self._forget(channel)
                    continue
                self._expire(channel, now)
                self._pump(channel, now)
                if now >= channel.last_sent + config.keepalive_interval:
                    keepalive_datagram = encode_datagram(
                        keepalive(channel.remote_id), LIVE_PARAMETERS
                    )
                    self._send_raw(channel, keepalive_datagram, now)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next (None: no channel)."""
        config = self.config
        times: list[float] = []
        for channel in self._channels.values():
            if not channel.established:
                times.append(channel.created + config.half_open_timeout)
            else:
                times.append(channel.last_received + config.idle_timeout)
                times.append(channel.last_sent + config.keepalive_interval)
                if (timeout := flight_deadline(channel.flight, channel.ledbat)) is not None:
                    times.append(timeout)
        if (ready := self._turns.ready_at()) is not None:
            times.append(ready)  # a channel waits for the upload cap
        return min(times, default=None)

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        """The datagrams to send now, in order (handed over and emptied)."""
        out, self._out = self._out, []
        return out

    def close_all(self, now: float) -> None:
        """Close every channel, telling established peers."""
        for channel in list(self._channels.values()):
            self._close(channel, now, notify=True)

    @property
    def channel_count(self) -> int:
        """The open channels."""
        return len(self._channels)

    # --- handshakes --------------------------------------------------------------------------

    def _opening(
        self, datagram: Datagram, address: Address, now: float, received: int, over: bool
    ) -> None:
        handshake, rest = datagram.messages[0], datagram.messages[1:]
        assert isinstance(handshake, Handshake)  # the codec checked channel 0's first message
        refusal = handshake_refusal(handshake)
        if handshake.source_channel == 0:
            refusal = "closing_on_channel_0"
        elif handshake.swarm_id != self.swarm_id:
            refusal = "swarm_id"
        elif over:  # more than max_opening_messages besides the HANDSHAKE
            refusal = "too_many_messages"
        if refusal is not None:
            self.stats["refused_handshake"] += 1
            self.stats[f"refused:{refusal}"] += 1
            return
        known = self._by_peer.get((address, handshake.source_channel))
        if known is not None:
            # Our reply was lost (or is late): answer again, on the same channel, not more
            # often than answer_interval (a copy from a spoofed source gets nothing more).
            if not bounds.answers_again(known.answered_at, now, self.config.answer_interval):
                self.stats["handshake_again_limited"] += 1
                return
            self.stats["handshake_again"] += 1
            self._answer(known, received, now)
            return
        host = host_of(address)
        victim, why = self._room.make_room(host, now)
        if victim is not None:
            self.stats["evicted"] += 1
            self.stats[f"evicted:{why}"] += 1
            self._close(victim, now, notify=True)  # an established peer is told
        elif why:
            self.stats["refused_handshake"] += 1
            self.stats["refused:channels"] += 1
            return
        local_id = self._channel_ids()
        while local_id == 0 or local_id in self._channels:
            local_id = self._channel_ids()
        channel = _Channel(
            address=address,
            local_id=local_id,
            remote_id=handshake.source_channel,
            created=now,
            last_received=now,
            last_sent=now,
            host=host,
            last_asked=now,
            ledbat=Ledbat(self.config.ledbat),
        )
        self._channels[local_id] = channel
        self._by_peer[(address, handshake.source_channel)] = channel
        self._room.add(channel)
        self.stats["channels_opened"] += 1
        for message in rest:
            if not self._on_message(channel, message, now):
                return
        self._answer(channel, received, now)

    def _answer(self, channel: _Channel, received: int, now: float) -> None:
        """Answer an opening datagram of ``received`` bytes with one datagram: our HANDSHAKE
        and the HAVEs of the newest live chunks held that keep it within ``answer_factor``
        times ``received`` (:func:`.opening.answer_room`); the rest follow once the peer
        confirmed the channel (:meth:`_catch_up`)."""
        reply = live_handshake(channel.local_id, discard_window=self.discard_window)
        alone = encode_datagram(
            Datagram(channel=channel.remote_id, messages=(reply,)), LIVE_PARAMETERS
        )
        room = bounds.answer_room(received, len(alone), self.config.answer_factor)
        fit = min(len(self._held), room // _HAVE_BYTES)
        newest = list(self._held.values())[len(self._held) - fit :] if fit else []
        channel.answered = frozenset(record.index for record in newest)
        channel.answered_at = now
        if fit < len(self._held):
            self.stats["answer_haves_deferred"] += len(self._held) - fit
        self._send(channel, (reply, *(Have(chunk=record.held) for record in newest)), now)

    def _catch_up(self, channel: _Channel, now: float) -> None:
        """The peer confirmed the channel: the HAVEs the reply had no room for, and our
        right-most signed munro (secure tune-in, 6.1.2.4: not in the reply, the second
        datagram, which is no place for heavy payload)."""
        answered = channel.answered
        rest = [Have(chunk=r.held) for i, r in self._held.items() if i not in answered]
        for start in range(0, len(rest), 150):
            self._send(channel, tuple(rest[start : start + 150]), now)
        newest = self.newest
        if newest is not None and newest not in channel.acknowledged:
            self._send(channel, self._signed_munro(self._held[newest]), now)
            self.stats["tune_in_out"] += 1

    @staticmethod
    def _signed_munro(record: LiveChunkRecord) -> tuple[Integrity, SignedIntegrity]:
        """INTEGRITY of a live chunk's munro and SIGNED_INTEGRITY of its signature."""
        munro = record.munro
        return (
            Integrity(chunk=munro.chunks, hash=munro.hash),
            SignedIntegrity(
                chunk=munro.chunks, timestamp=munro.timestamp, signature=munro.signature
            ),
        )

    # --- messages ----------------------------------------------------------------------------

    def _on_message(self, channel: _Channel, message: Message, now: float) -> bool:
        """Apply one message; False when the channel closed."""
        if isinstance(message, Request):
            channel.last_asked = now
            self._request(channel, message.chunk, now)
        elif isinstance(message, Ack | Have):
            chunk = message.chunk
            assert isinstance(chunk, ChunkRange)
            if isinstance(message, Ack):
                # The seeder's ACK handling: the window freed, a one-way delay sample.
                acked = acked_in_flight(channel.flight, chunk.start, chunk.end)
                acknowledge(channel.flight, channel.ledbat, acked, delay_us=message.delay, now=now)
                self.stats["data_acked"] += len(acked)
                if acked:
                    channel.last_asked = now
            self._mark_held(channel, chunk)
            self._drop_queued(channel, chunk)
        elif isinstance(message, Cancel):
            chunk = message.chunk
            assert isinstance(chunk, ChunkRange)
            self._drop_queued(channel, chunk)
            # Not wanted any more: not sent again when their timers run out (no loss either),
            # and what the peer acknowledged of them it may drop (a later REQUEST gets it all).
            for number in acked_in_flight(channel.flight, chunk.start, chunk.end):
                del channel.flight[number]
            first, last = chunk.start // MUNRO_CHUNKS, chunk.end // MUNRO_CHUNKS
            for index in [i for i in channel.pieces if first <= i <= last]:
                del channel.pieces[index]
                channel.whole.discard(index)
        elif isinstance(message, Handshake):
            if message.source_channel == 0:
                self.stats["closed_by_peer"] += 1
                self._forget(channel)
                return False
            if message.source_channel != channel.remote_id:
                return self._violation(channel, "handshake", now)
        elif isinstance(message, Integrity | SignedIntegrity):
            # The peer's right-most signed munro (secure tune-in, 6.1.2.4): a server picks no
            # tune-in point, so it is only counted.
            self.stats["tune_in_in"] += isinstance(message, SignedIntegrity)
        elif isinstance(message, Data):
            return self._violation(channel, "unexpected_message", now)
        elif isinstance(message, PexReq):
            # Not answered: a live source must not help eclipse it (RFC 7574 section
            # 13.2.3, attack E1), and relays keep to the tracker's lists likewise.
            self.stats["pex_req_ignored"] += 1
        # CHOKE, UNCHOKE, PEX_RES: nothing to do for a server that asks for nothing.
        return True

    def _violation(self, channel: _Channel, reason: str, now: float) -> bool:
        self.stats["protocol_error"] += 1
        self.stats[f"protocol_error:{reason}"] += 1
        self._close(channel, now, notify=True)
        return False

    def _mark_held(self, channel: _Channel, chunk: ChunkRange) -> None:
        """The peer acknowledged ``chunk`` (ACK or HAVE): its munros are known to it, and its
        pieces held (never sent again)."""
        held = self._held
        if not held:
            return
        # Over the live chunks held that the range names (a HAVE may name 2^32 chunks): the
        # window at most, nothing for those the peer acknowledged whole already.
        first = max(chunk.start // MUNRO_CHUNKS, next(iter(held)))
        last = min(chunk.end // MUNRO_CHUNKS, next(reversed(held)))
        if first > last or channel.whole.issuperset(range(first, last + 1)):
            return
        for index in range(first, last + 1):
            record = held.get(index)
            if record is None or index in channel.whole:
                continue
            channel.acknowledged.add(index)
            base = index * MUNRO_CHUNKS
            start, end = max(chunk.start - base, 0), min(chunk.end - base, record.pieces - 1)
            if start <= end:
                pieces = channel.pieces.setdefault(index, set())
                pieces.update(range(start, end + 1))
                if len(pieces) >= record.pieces:
                    channel.whole.add(index)
        if len(channel.acknowledged) > 2 * self.window_chunks:
            floor = (self.newest or 0) - self.window_chunks
            channel.acknowledged = {i for i in channel.acknowledged if i > floor}
            channel.pieces = {i: p for i, p in channel.pieces.items() if i > floor}
            channel.whole = {i for i in channel.whole if i > floor}

    def _peer_holds(self, channel: _Channel, number: int) -> bool:
        """Whether the peer acknowledged PPSPP chunk ``number``."""
        index, offset = divmod(number, MUNRO_CHUNKS)
        pieces = channel.pieces.get(index)
        return pieces is not None and offset in pieces

    def _request(self, channel: _Channel, chunks: object, now: float) -> None:
        assert isinstance(chunks, ChunkRange)
        first_index = chunks.start // MUNRO_CHUNKS
        last_index = chunks.end // MUNRO_CHUNKS
        records = [r for i, r in self._held.items() if first_index <= i <= last_index]
        if not records:
            self.stats["request_not_held"] += 1
        for record in records:
            held = record.held
            start = max(chunks.start, held.start)
            if self._peer_holds(channel, start):
                # A receiver asks from its first missing piece on: one it acknowledged is gone
                # from it (it gave the live chunk up and asks again), so is the rest.
                channel.pieces.pop(record.index, None)
                channel.whole.discard(record.index)
            for number in range(start, min(chunks.end, held.end) + 1):
                # Queued, in flight (re-sent once its timer runs out) or acknowledged: not
                # again (a receiver asks again from its first missing piece on).
                if (
                    number in channel.queued
                    or number in channel.flight
                    or self._peer_holds(channel, number)
                ):
                    continue
                if len(channel.queue) >= self.config.max_queue:
                    self.stats["request_dropped"] += 1
                    return
                channel.queue.append(number)
                channel.queued.add(number)

    def _drop_queued(self, channel: _Channel, chunks: ChunkRange) -> None:
        queued = channel.queued
        if not queued:
            return
        # Over the range or the queue, whichever is shorter (a HAVE may name 2^32 chunks).
        if chunks.end - chunks.start < len(queued):
            gone = queued.intersection(range(chunks.start, chunks.end + 1))
        else:
            gone = {n for n in queued if chunks.start <= n <= chunks.end}
        if gone:
            channel.queued -= gone
            channel.queue = deque(n for n in channel.queue if n not in gone)

    def _pump(self, channel: _Channel, now: float) -> None:
        """Send queued chunks while the LEDBAT window allows (only on an established channel);
        under an upload cap, while the pacer allows too, in the turn of the channel's host,
        once the channel holds a send slot (:mod:`.live_slots`)."""
        key, host, slots = channel.local_id, channel.address[0], self._slots
        if not channel.established:
            return
        if slots is not None:
            admitted = slots.want(key, host) if channel.queue else slots.release(key)
            self._start([other for other in admitted if other != key], now)
            if not slots.sending(key):
                return
        self._turns.pump(key, host, now)

    def _queued(self, key: int) -> bool:  # whether channel ``key`` has chunks to send
        return (channel := self._channels.get(key)) is not None and bool(channel.queue)

    def _start(self, keys: list[int], now: float | None) -> None:
        """Channels given a send slot join the turns (served at ``now``, or in turns running)."""
        for key in keys:
            host = self._channels[key].address[0]
            if now is not None:
                self._turns.pump(key, host, now)
            elif self.pacer is not None:
                self.pacer.want(key, host)

    def _send_on(self, key: int, now: float) -> int | None:
        """:meth:`_send_next` on channel ``key`` if it is open and holds a send slot."""
        channel, slots = self._channels.get(key), self._slots
        if channel is None or not channel.established:
            return None
        if slots is not None and not slots.sending(key):
            return None  # it gave its slot up (its queue emptied) and waits for another
        sent = self._send_next(channel, now)
        if slots is not None and (sent is None or not channel.queue):  # its window full, or done
            self._start(slots.release(key), None)
        return sent

    def _send_next(self, channel: _Channel, now: float) -> int | None:
        """Send the next queued chunk still held, in one datagram, when the window allows;
        the datagram's bytes, or None when nothing may go (window full, queue empty)."""
        while channel.queue and channel.ledbat.allows(len(channel.flight)):
            number = channel.queue.popleft()
            channel.queued.discard(number)
            index, offset = divmod(number, MUNRO_CHUNKS)
            record = self._held.get(index)
            if record is None or offset >= record.pieces:
                self.stats["request_expired"] += 1
                continue
            if number in channel.flight or self._peer_holds(channel, number):
                continue
            messages: list[Message] = []
            if index not in channel.acknowledged:
                messages.extend(self._signed_munro(record))
            # Uncles top-down (5.4), each datagram verifiable on its own.
            for chunks, digest in reversed(record.uncles(offset)):
                messages.append(Integrity(chunk=chunks, hash=digest))
            piece = record.piece(offset)
            if self.config.corrupt_data:
                piece = bytes((piece[0] ^ 0xFF,)) + piece[1:]
            messages.append(
                Data(
                    chunk=ChunkRange(start=number, end=number),
                    timestamp=int(now * 1_000_000),
                    data=piece,
                )
            )
            sent = self._send(channel, tuple(messages), now)
            channel.flight[number] = now
            self.stats["data_sent"] += 1
            self.stats["data_bytes"] += len(piece)
            if self.on_data is not None:
                self.on_data(self.swarm_id, channel.address, len(piece))
            return sent
        return None

    def _expire(self, channel: _Channel, now: float) -> None:
        """DATA unacknowledged after the retransmission timeout: lost (LEDBAT's window halves),
        and sent again first while its live chunk is held and the peer has not announced it."""
        lost = False
        expired = take_expired(channel.flight, channel.ledbat, now)
        for number in reversed(expired):  # requeued in their original order
            if self._peer_holds(channel, number):
                self.stats["data_acked_by_have"] += 1
                continue
            lost = True
            self.stats["data_lost"] += 1
            if number // MUNRO_CHUNKS in self._held and number not in channel.queued:
                channel.queue.appendleft(number)
                channel.queued.add(number)
        if lost:
            channel.ledbat.on_loss(now)

    # --- sending and closing -----------------------------------------------------------------

    def _send(self, channel: _Channel, messages: tuple[Message, ...], now: float) -> int:
        """Send ``messages`` in one datagram; its bytes."""
        datagram = Datagram(channel=channel.remote_id, messages=messages)
        return self._send_raw(channel, encode_datagram(datagram, LIVE_PARAMETERS), now)

    def _send_raw(self, channel: _Channel, data: bytes, now: float) -> int:
        channel.last_sent = now
        self._out.append((channel.address, data))
        self.stats["datagrams_out"] += 1
        return len(data)

    def _close(self, channel: _Channel, now: float, *, notify: bool) -> None:
        if notify and channel.established:
            self._send(channel, (Handshake(source_channel=0),), now)
        self._forget(channel)

    def _forget(self, channel: _Channel) -> None:
        self._turns.forget(channel.local_id)
        self._channels.pop(channel.local_id, None)
        if self._slots is not None:
            self._start(self._slots.release(channel.local_id), None)
        self._by_peer.pop((channel.address, channel.remote_id), None)
        self._room.remove(channel)
