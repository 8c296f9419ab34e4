"""The seeding side of RFC 7574 (PPSPP), sans-I/O: datagrams and time in, datagrams out.

The I/O layer calls :meth:`Seeder.datagram_received` with each datagram, its sender and the
time, :meth:`Seeder.handle_timer` when :meth:`Seeder.next_deadline` comes, and sends what
:meth:`Seeder.datagrams_to_send` returns.  Nothing here reads a clock or touches a socket.

What it does, section by section of RFC 7574:

* **Handshake** (3.1.1, 7, 8.4): a HANDSHAKE on channel 0 naming a swarm we seed, with options
  we can speak, opens a half-open channel under a random channel ID (13.1) and is answered by
  one datagram: our HANDSHAKE and one HAVE per peak of the tree (what libswift sends and
  expects), or of a partial content's held ranges as many as keep the answer within
  ``answer_factor`` times the opening datagram (13.1.1: the address has not shown it
  receives; the rest once established).  A peer that announces its Chunk Size (option 9)
  speaks RFC 7574 and gets a strict handshake (with options 8 and 9); one that does not is
  taken for libswift, whose parser drops a handshake carrying option 9 and misreads option 8,
  and gets neither.  A handshake failing any check, or an opening datagram of more than
  ``max_opening_messages`` messages besides it, is dropped unanswered (3.1.1 step 2: it may be
  spoofed); the same handshake again is answered again at most every ``answer_interval``.
* **Channels** (13.1): at most ``max_channels``, ``max_channels_per_host`` per host (an IPv4
  address, an IPv6 /64); a new one beyond evicts by :mod:`.admission`'s rule.  What the peer
  holds is kept as ranges (:mod:`.channel`): nothing per chunk, whatever the content's size.
* **Requests** (3.7, 3.8): REQUESTs queue in order; CANCEL and HAVE (an implicit CANCEL) take
  chunks off the queue.  A request wholly past the content's end is an invalid message; one
  reaching past it is clipped.
* **DATA** (5.3-5.6, 8.6): a datagram of INTEGRITY messages, top-down, then the DATA with our
  timestamp; the peaks go with every DATA until the peer acknowledges a chunk, the uncle
  hashes are those the peer cannot derive from what it acknowledged.  DATA flows only once the
  peer has echoed our channel ID (3.1.1 step 7), paced by a LEDBAT window (:mod:`.ledbat`)
  and, under the peer's upload cap, by an :class:`~ppsp.peer.upload.pacing.UploadPacer`: the
  bucket HTTP uploads draw from too, the channels' hosts taking turns, one DATA each.
* **ACK** (8.7): frees the window, feeds LEDBAT its delay sample and the round-trip estimate
  (the flight, ACK and pacing bookkeeping is :mod:`.sending`'s, shared with the live server).
* **Keep-alives and timeouts** (3.12): a keep-alive when we have sent nothing for a while to
  a peer that still talks to us; a channel whose peer is silent for ``idle_timeout`` is
  dropped, a half-open one sooner, and one whose peer asks for nothing (no REQUEST) within
  ``request_timeout`` of its establishment is closed.
* **CHOKE/UNCHOKE** (3.9): a peer asking for more than ``max_request_ranges`` ranges is
  choked (CHOKE, its queue discarded, nothing sent) and unchoked ``choke_time`` later once
  nothing is in flight.
* **PEX** (3.10, 13.2): a PEX_REQ on an established channel is answered with at most
  ``pex_max_addresses`` other live peers of the swarm (PEX_RESv4/v6), at most once per
  ``pex_min_interval``; PEX_RES (never asked for: libswift's reverse PEX) is ignored.
* **Errors** (3, 12.1): nothing is ever answered with an error.  A datagram that does not
  parse, or an event the channel's state table (:data:`.channel.TRANSITIONS`) does not list,
  drops the rest of the datagram and closes the channel (with a closing HANDSHAKE when it was
  established), as does a datagram of more than ``max_messages_per_datagram`` messages.  The
  codec reads a datagram no further than its bound (that, or ``max_opening_messages`` and the
  HANDSHAKE of an opening one).  Every drop is counted in :attr:`Seeder.stats`.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram, peek_channel
from ppsp.errors import PPSPPError, TooManyMessages
from ppsp.peer.ppspp import admission, opening, packing, pex
from ppsp.peer.ppspp.admission import ChannelRoom, host_of
from ppsp.peer.ppspp.channel import (
    TRANSITIONS,
    Address,
    Channel,
    ChannelState,
    Event,
    event_of,
)
from ppsp.peer.ppspp.content import SeededContent, ServedContent, bin_range
from ppsp.peer.ppspp.ledbat import LedbatParameters
from ppsp.peer.ppspp.opening import SUPPORTED_ADDRESSING, SUPPORTED_MESSAGES
from ppsp.peer.ppspp.partial import PartialContent
from ppsp.peer.ppspp.sending import (
    SendTurns,
    acked_in_flight,
    acknowledge,
    flight_deadline,
    take_expired,
)
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import (
    CHANNEL_ID_BYTES,
    MAX_TIMESTAMP,
    Ack,
    Bin,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkRange,
    ChunkSpec,
    Datagram,
    Handshake,
    Have,
    Message,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    Unchoke,
    keepalive,
)

__all__ = ["SUPPORTED_ADDRESSING", "SUPPORTED_MESSAGES", "Seeder", "SeederConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeederConfig:
    """The seeder's bounds and timers (seconds)."""

    max_channels: int = admission.MAX_CHANNELS
    """Channels kept in all (:data:`.admission.MAX_CHANNELS`)."""
    max_channels_per_host: int = admission.MAX_CHANNELS_PER_HOST
    """Channels one host may hold (:data:`.admission.MAX_CHANNELS_PER_HOST`)."""
    evict_idle: float = admission.EVICT_IDLE
    """Idle time before a channel may give its place (:data:`.admission.EVICT_IDLE`)."""
    request_timeout: float = 30.0
    """An established channel whose peer sends no REQUEST within this long is closed: it asks
    us for nothing and only holds a place."""
    max_opening_messages: int = opening.MAX_OPENING_MESSAGES
    """Messages an opening datagram may carry besides its HANDSHAKE (HAVE, REQUEST: minor
    payload, section 3.1.1; libswift sends at most about ten); more and it is dropped
    unanswered, as it may be spoofed and each message costs work."""
    max_peer_ranges: int = 1024
    """Disjoint chunk ranges of what a channel's peer acknowledged kept (ACK, HAVE); a range
    beyond is not kept: the peer may then be sent hashes it holds (counted
    ``have_ranges_dropped``)."""
    answer_factor: int = opening.ANSWER_FACTOR
    """The answer to an opening datagram stays within this many times its bytes (section
    13.1.1: the address has not shown that it receives): a partial content's HAVEs beyond go
    once the channel is established.  A complete content's peaks always go (libswift wants
    them there; at most one per bit of the chunk count)."""
    answer_interval: float = opening.ANSWER_INTERVAL
    """The same opening handshake again (our answer lost, or a spoofed copy) is answered at
    most once in this many seconds; the others are dropped and counted."""
    max_request_ranges: int = 256
    """Queued request ranges per channel; further REQUESTs are dropped (and counted)."""
    max_messages_per_datagram: int = opening.MAX_MESSAGES_PER_DATAGRAM
    """A datagram carrying more messages is taken for an attack on our time (each message
    costs work): dropped, and its channel closed."""
    half_open_timeout: float = 10.0
    """A channel whose peer never echoes our channel ID is forgotten after this."""
    idle_timeout: float = 180.0
    """A channel whose peer sends nothing for this long is dead (RFC 7574 section 3.12)."""
    keepalive_interval: float = 30.0
    """A keep-alive goes out when nothing else was sent to a live peer for this long."""
    max_datagram_bytes: int = 1472
    """INTEGRITY messages that would push a DATA datagram that fits this past it go ahead on
    their own (section 5.4); a DATA larger than this alone (fragmented anyway) carries its
    INTEGRITY in its datagram, up to the largest UDP payload."""
    ledbat: LedbatParameters = field(default_factory=LedbatParameters)
    pex_max_addresses: int = 8
    """Addresses in one answer to a PEX_REQ (0: PEX_REQ is never answered).  Eight fit one
    small datagram (8 x 19 bytes for IPv6), enough to find a swarm's other peers over a few
    answers, and keep what one peer can learn of the swarm, or be fed, per second small."""
    pex_min_interval: float = 1.0
    """A channel's PEX_REQ is answered at most once in this many seconds; the others are
    dropped and counted (libswift asks every 1.1 s while downloading)."""
    pex_liveness: float = 60.0
    """Only peers heard from within this many seconds are named (RFC 7574 section 3.10.1)."""
    choke_time: float = 2.0
    """A channel choked for asking too much (its request queue full) is unchoked after this,
    once the DATA in flight to it is acknowledged or lost."""

    def __post_init__(self) -> None:
        if self.pex_max_addresses < 0 or self.pex_min_interval < 0 or self.choke_time < 0:
            raise ValueError("PEX and choke bounds are not negative")
        if self.max_channels < 1 or self.max_channels_per_host < 1:
            raise ValueError("a seeder keeps at least one channel")
        if self.max_request_ranges < 1 or self.max_messages_per_datagram < 1:
            raise ValueError("a channel queues at least one request range and reads a message")
        if self.max_opening_messages < 0 or self.max_peer_ranges < 1 or self.answer_factor < 1:
            raise ValueError("opening messages, peer ranges and the answer's factor are bounds")
        if self.evict_idle < 0 or self.request_timeout < 0 or self.answer_interval < 0:
            raise ValueError("timers are not negative")


def _random_channel_id() -> int:
    return secrets.randbits(8 * CHANNEL_ID_BYTES)


class _ProtocolError(Exception):
    """An invalid message on a channel (internal: the channel is closed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Seeder:
    """A PPSPP seeder of stored content over any number of channels and swarms.

    ``timestamp_offset`` turns the monotonic ``now`` into the wall clock DATA timestamps carry
    (microseconds since 1970, what libswift computes its delay samples against): the I/O
    layer passes ``time.time() - its monotonic clock``.  ``channel_ids`` draws channel IDs
    (random 32-bit numbers by default; tests pass their own).  ``pacer`` (the peer's upload
    cap, shared with its HTTP uploads; its bucket on the same clock as ``now``) says when a
    DATA may go and whose turn it is; without one DATA goes whenever LEDBAT allows.
    ``rng`` picks the peers a PEX answer names (tests pass a seeded one).
    """

    def __init__(
        self,
        contents: ServedContent | Iterable[ServedContent],
        *,
        config: SeederConfig | None = None,
        timestamp_offset: float = 0.0,
        channel_ids: Callable[[], int] = _random_channel_id,
        pacer: UploadPacer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.pacer = pacer
        self._rng = rng or random.Random(secrets.randbits(64))
        self.on_data: Callable[[bytes, Address, int], None] | None = None
        """Told of each DATA sent: the content's root hash, the channel's address and the
        chunk's bytes (the I/O layer attributes them to a PeerID for ``--report``)."""
        served: Iterable[ServedContent] = (
            (contents,)
            if isinstance(contents, SeededContent | PartialContent)
            else cast("Iterable[ServedContent]", contents)
        )
        self._contents: dict[bytes, ServedContent] = {
            content.swarm_id: content for content in served
        }
        self._announcements: Counter[bytes] = Counter()
        """HAVE announcements made, by content (:meth:`announce`)."""
        self.config = config or SeederConfig()
        self.timestamp_offset = timestamp_offset
        self._channel_ids = channel_ids
        self._channels: dict[int, Channel] = {}
        self._by_peer: dict[tuple[Address, int], Channel] = {}
        self._room: ChannelRoom[Channel] = ChannelRoom(
            max_channels=self.config.max_channels,
            max_per_host=self.config.max_channels_per_host,
            evict_idle=self.config.evict_idle,
        )
        self._out: list[tuple[Address, bytes]] = []
        self.stats: Counter[str] = Counter()
        """Counts of what happened: datagrams in and out, DATA sent and lost, and each kind of
        datagram dropped (``malformed``, ``unknown_channel``, ``refused_handshake``, ...)."""
        self._turns = SendTurns(pacer, self._send_on, self.stats)

    # --- the I/O layer's interface ---------------------------------------------------------

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The open channels (read-only use)."""
        return tuple(self._channels.values())

    def datagram_received(self, data: bytes, address: Address, now: float) -> None:
        """Handle one datagram from ``address`` at ``now``; never raises for its content."""
        self.stats["datagrams_in"] += 1
        try:
            channel_id = peek_channel(data)
        except PPSPPError:
            self.stats["malformed"] += 1
            return
        if channel_id == 0:
            if len(data) == 4:
                # A bare keep-alive on channel 0: a NAT punch (peer/nat/punch.py), no message.
                self.stats["punches_in"] += 1
                return
            self._opening(data, address, now)
            return
        channel = self._channels.get(channel_id)
        if channel is None:
            self.stats["unknown_channel"] += 1
            return
        if channel.address != address:
            # Channel IDs are the address's: another sender may not speak on it (13.1).
            self.stats["wrong_address"] += 1
            return
        try:
            # Read no further than the bound: message max_messages_per_datagram + 1 refuses it.
            datagram = decode_datagram(
                data, channel.parameters, max_messages=self.config.max_messages_per_datagram
            )
        except PPSPPError as error:
            over = isinstance(error, TooManyMessages)
            self.stats["too_many_messages" if over else "malformed"] += 1
            self._close(channel, notify=True, now=now)
            return
        channel.last_received = now
        try:
            was_half_open = channel.state is ChannelState.HALF_OPEN
            self._step(channel, Event.CONFIRM)
            if was_half_open:
                self._room.confirm(channel)
                channel.last_asked = now  # idle from its establishment on
                self._catch_up(channel, now)
            if datagram.is_keepalive:
                self.stats["keepalives_in"] += 1
            for message in datagram.messages:
                self._on_message(channel, message, now)
                if channel.state is ChannelState.CLOSED:
                    return
        except _ProtocolError as error:
            self.stats["protocol_error"] += 1
            self.stats[f"protocol_error:{error.reason}"] += 1
            self._close(channel, notify=True, now=now)
            return
        self._pump(channel, now)

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: timeouts, lost DATA, keep-alives."""
        config = self.config
        # Under the upload cap, every channel with something to send joins the turns first,
        # and the turns are served once, on leaving: not the first channel alone.
        with self._turns.collecting(now):
            for channel in list(self._channels.values()):
                if channel.state is ChannelState.HALF_OPEN:
                    if now >= channel.created + config.half_open_timeout:
                        self.stats["half_open_expired"] += 1
                        self._close(channel, notify=False, now=now)
                    continue
                if now >= channel.last_received + config.idle_timeout:
                    self.stats["idle_closed"] += 1
                    self._close(channel, notify=False, now=now)
                    continue
                if not channel.requested and now >= channel.last_asked + config.request_timeout:
                    self.stats["unasked_closed"] += 1
                    self._close(channel, notify=True, now=now)
                    continue
                lost = False
                expired = take_expired(channel.flight, channel.ledbat, now)
                for index in reversed(expired):  # requeued in their original order
                    if channel.choking:
                        # Not sent again: the peer was told not to expect it (section 3.9).
                        self.stats["data_dropped_choking"] += 1
                        continue
                    if channel.has_chunk(index):
                        # libswift answers a DATA it already had with a HAVE, not an ACK (its
                        # HAVE comes before the ACK of a new chunk, so it cannot end the flight).
                        self.stats["data_acked_by_have"] += 1
                        continue
                    lost = True
                    self.stats["data_lost"] += 1
                    channel.requeue(index)
                if lost:
                    channel.ledbat.on_loss(now)
                if channel.choking and now >= channel.choking_until and not channel.flight:
                    self._set_choking(channel, False, now)
                self._pump(channel, now)
                if now >= channel.last_sent + config.keepalive_interval:
                    keepalive_datagram = encode_datagram(
                        keepalive(channel.remote_id), opening.OPENING
                    )
                    self._send(channel, keepalive_datagram, now)
                    self.stats["keepalives_out"] += 1

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next (None: nothing pending)."""
        config = self.config
        deadlines: list[float] = []
        for channel in self._channels.values():
            if channel.state is ChannelState.HALF_OPEN:
                deadlines.append(channel.created + config.half_open_timeout)
                continue
            deadlines.append(channel.last_received + config.idle_timeout)
            deadlines.append(channel.last_sent + config.keepalive_interval)
            if not channel.requested:
                deadlines.append(channel.last_asked + config.request_timeout)
            if (timeout := flight_deadline(channel.flight, channel.ledbat)) is not None:
                deadlines.append(timeout)
            elif channel.choking:
                deadlines.append(channel.choking_until)  # its UNCHOKE
        if (ready := self._turns.ready_at()) is not None:
            deadlines.append(ready)  # a channel waits for the upload cap
        return min(deadlines, default=None)

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        """The datagrams to send now, in order (the list is handed over and emptied)."""
        out, self._out = self._out, []
        return out

    def close_all(self, now: float) -> None:
        """Close every channel, telling established peers (a closing HANDSHAKE each)."""
        for channel in list(self._channels.values()):
            self._close(channel, notify=True, now=now)

    def add_content(self, content: ServedContent) -> None:
        """Serve ``content`` too (from the next handshake naming its root hash on); one
        already served under that root hash is replaced for new channels only."""
        self._contents[content.swarm_id] = content

    @property
    def serving(self) -> bool:
        """Whether any content is served."""
        return bool(self._contents)

    def channel_of(self, channel_id: int, address: Address) -> bool:
        """Whether ``channel_id`` is one of our channels, to ``address``."""
        channel = self._channels.get(channel_id)
        return channel is not None and channel.address == address

    def announce(self, swarm_id: bytes, chunks: ChunkRange, now: float) -> None:
        """Chunks of a partial content newly held: a HAVE of them on each established
        channel of that content whose peer does not hold them all (section 3.2).  Half-open
        channels hear of them once established (a HAVE is not sent to an address that has
        not shown it is the handshake's sender, 3.1.1)."""
        content = self._contents.get(swarm_id)
        if content is None or chunks.start >= content.chunk_count:
            return
        chunks = ChunkRange(start=chunks.start, end=min(chunks.end, content.chunk_count - 1))
        self._announcements[swarm_id] += 1
        for channel in self._channels.values():
            if channel.content is not content or channel.state is not ChannelState.ESTABLISHED:
                continue
            channel.announced = self._announcements[swarm_id]
            if channel.holds_all(chunks):
                continue
            self._send_haves(channel, packing.have_messages(channel, [chunks]), now)
            self.stats["haves_announced"] += 1

    # --- opening handshakes ---------------------------------------------------------------

    def _opening(self, data: bytes, address: Address, now: float) -> None:
        bound = 1 + self.config.max_opening_messages  # the HANDSHAKE and what goes with it
        try:
            datagram = decode_datagram(data, opening.OPENING, max_messages=bound)
            first: object = datagram.messages[0]
            rest, over = datagram.messages[1:], False
        except TooManyMessages as error:
            # Nothing past the bound is read; the handshake's checks come first all the same.
            first, rest, over = error.messages[0], (), True
        except PPSPPError:
            # Also libswift's legacy swift handshake, sent beside its PPSPP ones.
            self.stats["malformed"] += 1
            return
        handshake = first
        assert isinstance(handshake, Handshake)  # the codec checks channel 0 opens with one
        refusal = opening.refusal(handshake, self._contents.get(handshake.swarm_id or b""))
        if refusal is not None:
            self.stats["refused_handshake"] += 1
            self.stats[f"refused_handshake:{refusal}"] += 1
            return
        assert handshake.swarm_id is not None
        existing = self._by_peer.get((address, handshake.source_channel))
        if existing is not None:
            # Our answer was lost (or is late): answer again, on the same channel, not more
            # often than answer_interval (a copy from a spoofed source gets nothing more).
            if not opening.answers_again(existing.answered_at, now, self.config.answer_interval):
                self.stats["handshake_again_limited"] += 1
                return
            self.stats["handshake_again"] += 1
            self._step(existing, Event.HANDSHAKE_AGAIN)
            self._answer(existing, len(data), now)
            return
        if over:
            self.stats["refused_handshake"] += 1
            self.stats["refused_handshake:too_many_messages"] += 1
            return
        events = [event_of(message, handshake.source_channel) for message in rest]
        if any((ChannelState.HALF_OPEN, event) not in TRANSITIONS for event in events):
            self.stats["refused_handshake"] += 1
            self.stats["refused_handshake:payload"] += 1
            return
        host = host_of(address)
        victim, why = self._room.make_room(host, now)
        if victim is not None:
            self.stats["channels_evicted"] += 1
            self.stats[f"channels_evicted:{why}"] += 1
            self._close(victim, notify=True, now=now)  # an established peer is told
        elif why:
            self.stats["refused_handshake"] += 1
            self.stats["refused_handshake:full"] += 1
            return
        content = self._contents[handshake.swarm_id]
        addressing = handshake.chunk_addressing
        assert addressing is not None
        channel = Channel(
            address=address,
            local_id=self._new_channel_id(),
            remote_id=handshake.source_channel,
            content=content,
            parameters=ChannelParameters(
                chunk_addressing=addressing,
                merkle_hash=content.merkle_hash,
                chunk_size=content.chunk_size,
            ),
            profile=(
                EncoderProfile.LIBSWIFT if handshake.chunk_size is None else EncoderProfile.RFC7574
            ),
            now=now,
            ledbat=self.config.ledbat,
            host=host,
            max_ranges=self.config.max_peer_ranges,
        )
        self._channels[channel.local_id] = channel
        self._by_peer[(address, channel.remote_id)] = channel
        self._room.add(channel)
        self.stats["channels_opened"] += 1
        try:
            for message in rest:
                self._on_message(channel, message, now)
        except _ProtocolError:
            # e.g. a request past the content's end in the opening datagram: never answered.
            self.stats["refused_handshake"] += 1
            self.stats["refused_handshake:payload"] += 1
            self._close(channel, notify=False, now=now)
            return
        self._answer(channel, len(data), now)

    def _new_channel_id(self) -> int:
        while True:
            candidate = self._channel_ids() & 0xFFFFFFFF
            if candidate and candidate not in self._channels:
                return candidate

    def _answer(self, channel: Channel, received: int, now: float) -> None:
        """Answer an opening datagram of ``received`` bytes (3.1.1 step 2) with one datagram:
        our HANDSHAKE to the peer's channel ID, and the HAVEs that fit
        (:func:`.packing.answer_haves`: within ``answer_factor`` times ``received``)."""
        content = channel.content
        reply = opening.reply(channel)
        haves = packing.have_messages(channel, content.announced_ranges())
        alone = self._encode(channel, Datagram(channel=channel.remote_id, messages=(reply,)))
        room = opening.answer_room(received, len(alone), self.config.answer_factor)
        taken = packing.answer_haves(channel, haves, room)
        channel.announced = self._announcements[content.swarm_id]
        channel.answered_haves = taken
        channel.answered_at = now
        if taken < len(haves):
            self.stats["answer_haves_deferred"] += len(haves) - taken
        answer = Datagram(channel=channel.remote_id, messages=(reply, *haves[:taken]))
        self._send(channel, self._encode(channel, answer), now)

    def _send_haves(self, channel: Channel, haves: list[Message], now: float) -> None:
        """``haves`` in datagrams of at most ``max_datagram_bytes`` (an established channel)."""
        limit = self.config.max_datagram_bytes
        for datagram in packing.have_datagrams(channel, haves, limit):
            self._send(channel, self._encode(channel, datagram), now)

    def _catch_up(self, channel: Channel, now: float) -> None:
        """A channel just established: the HAVEs the handshake's answer had no room for, or
        all the held ranges again when chunks of its (partial) content were announced since
        (one datagram or a few)."""
        count = self._announcements[channel.content.swarm_id]
        taken = 0 if channel.announced != count else channel.answered_haves
        haves = packing.have_messages(channel, channel.content.announced_ranges())
        if taken < len(haves):
            channel.announced = count
            self._send_haves(channel, haves[taken:], now)
            self.stats["haves_announced"] += 1

    # --- messages on a channel -------------------------------------------------------------

    def _step(self, channel: Channel, event: Event) -> None:
        following = TRANSITIONS.get((channel.state, event))
        if following is None:
            raise _ProtocolError(f"{event.value} when {channel.state.value}")
        channel.state = following

    def _on_message(self, channel: Channel, message: Message, now: float) -> None:
        event = event_of(message, channel.remote_id)
        self._step(channel, event)
        if event is Event.CLOSE:
            self.stats["closed_by_peer"] += 1
            self._forget(channel)
        elif isinstance(message, Request):
            chunks = self._clip(channel, message.chunk, "request")
            channel.requested = True
            channel.last_asked = now
            if channel.choking:
                # Sent before our CHOKE reached the peer, or despite it: not served.
                self.stats["requests_while_choked"] += 1
            elif not channel.add_request(chunks, self.config.max_request_ranges):
                # The peer asks for more than we queue: choked for a while, its requests
                # discarded (it re-asks once unchoked, here or elsewhere).
                self.stats["requests_dropped"] += 1
                self._set_choking(channel, True, now)
        elif isinstance(message, Cancel):
            channel.cancel(self._clip(channel, message.chunk, "cancel"))
        elif isinstance(message, Have):
            chunks = self._clip(channel, message.chunk, "have")
            if not channel.mark_held(chunks):
                self.stats["have_ranges_dropped"] += 1
            channel.cancel(chunks)  # an implicit CANCEL (3.8)
        elif isinstance(message, Ack):
            self._on_ack(channel, message, now)
        elif isinstance(message, Choke):
            channel.peer_choked_us = True  # we request nothing: informational
        elif isinstance(message, Unchoke):
            channel.peer_choked_us = False
        elif isinstance(message, PexReq):
            self._answer_pex(channel, now)
        elif isinstance(message, PexResV4 | PexResV6):
            self.stats["pex_res_unsolicited"] += 1  # we never ask: ignored
        elif isinstance(message, PexResCert):
            self.stats["pex_rescert_ignored"] += 1  # unsupported (no certificate issuer)
        # HANDSHAKE (a repeat) and HANDSHAKE_AGAIN change nothing more.

    def _set_choking(self, channel: Channel, choking: bool, now: float) -> None:
        """CHOKE the peer (its queued requests discarded, section 3.9) or UNCHOKE it."""
        channel.choking = choking
        if choking:
            channel.requests.clear()
            channel.choking_until = now + self.config.choke_time
            message: Message = Choke()
        else:
            message = Unchoke()
        self.stats["chokes_sent" if choking else "unchokes_sent"] += 1
        datagram = Datagram(channel=channel.remote_id, messages=(message,))
        self._send(channel, self._encode(channel, datagram), now)

    def _answer_pex(self, channel: Channel, now: float) -> None:
        """Answer a PEX_REQ (section 3.10): the addresses of at most ``pex_max_addresses``
        other peers of the channel's swarm on established channels heard from within
        ``pex_liveness``, in one datagram; at most once per ``pex_min_interval`` per channel.

        Only a peer on an established channel is answered (it echoed our channel ID: a
        spoofed PEX_REQ gets nothing, section 13.6.11), with addresses of its own family,
        never its own, and private, link-local or loopback ones only to a peer on such an
        address itself (section 8.13).  No peer to name: no answer.
        """
        config = self.config
        if channel.state is not ChannelState.ESTABLISHED or config.pex_max_addresses == 0:
            return
        if now < channel.pex_answered + config.pex_min_interval:
            self.stats["pex_req_limited"] += 1
            return
        channel.pex_answered = now
        others = (
            other.address
            for other in self._channels.values()
            if other is not channel
            and other.content is channel.content
            and other.state is ChannelState.ESTABLISHED
            and now - other.last_received <= config.pex_liveness
        )
        messages = pex.answer(channel.address, others, config.pex_max_addresses, self._rng)
        if not messages:
            self.stats["pex_req_nobody"] += 1
            return
        datagram = Datagram(channel=channel.remote_id, messages=messages)
        self._send(channel, self._encode(channel, datagram), now)
        self.stats["pex_req_answered"] += 1
        self.stats["pex_addresses_sent"] += len(messages)

    def _clip(self, channel: Channel, spec: ChunkSpec, what: str) -> ChunkRange:
        """A message's chunks as a range inside the content; a range wholly past its end is
        an invalid message."""
        chunks = bin_range(spec.number) if isinstance(spec, Bin) else spec
        last = channel.content.chunk_count - 1
        if chunks.start > last:
            raise _ProtocolError(f"{what} past the end")
        if chunks.end > last:
            self.stats[f"{what}_clipped"] += 1
            return ChunkRange(start=chunks.start, end=last)
        return chunks

    def _on_ack(self, channel: Channel, ack: Ack, now: float) -> None:
        chunks = self._clip(channel, ack.chunk, "ack")
        acked = acked_in_flight(channel.flight, chunks.start, chunks.end)
        if acked:
            acknowledge(channel.flight, channel.ledbat, acked, delay_us=ack.delay, now=now)
            self.stats["data_acked"] += len(acked)
            channel.last_asked = now
        if not channel.mark_held(chunks):
            self.stats["have_ranges_dropped"] += 1
        channel.cancel(chunks)

    # --- sending ---------------------------------------------------------------------------

    def _pump(self, channel: Channel, now: float) -> None:
        """Send requested chunks while the window allows (only on an established channel);
        under an upload cap, while the pacer allows too, in the turn of the channel's host."""
        if channel.state is ChannelState.ESTABLISHED:
            self._turns.pump(channel.local_id, channel.address[0], now)

    def _send_on(self, key: int, now: float) -> int | None:
        """:meth:`_send_next` on the channel of ID ``key`` if it is still established."""
        channel = self._channels.get(key)
        if channel is None or channel.state is not ChannelState.ESTABLISHED or channel.choking:
            return None
        return self._send_next(channel, now)

    def _send_next(self, channel: Channel, now: float) -> int | None:
        """Send the next requested chunk the window allows; the bytes of its datagrams, or
        None when none may go (the window is full, nothing is queued, the channel closed)."""
        while channel.ledbat.allows(len(channel.flight)):
            index = channel.next_chunk()
            if index is None:
                return None
            unheld = channel.content.unheld_run(index)
            if unheld is not None:
                # A partial content's chunk not held: the request is dropped (the peer asks
                # again or elsewhere), with the rest of the run at the queue's head.
                self.stats["request_not_held"] += 1 + channel.skip_through(index + 1, unheld)
                continue
            try:
                datagrams = self._data_datagrams(channel, index, now)
            except (OSError, ValueError):
                # The content cannot be read (a file cut short under us): stop serving it here.
                self.stats["read_error"] += 1
                self._close(channel, notify=True, now=now)
                return None
            for data in datagrams:
                self._send(channel, data, now)
            channel.flight[index] = now
            self.stats["data_sent"] += 1
            if self.on_data is not None:
                content = channel.content
                self.on_data(content.swarm_id, channel.address, content.chunk_length(index))
            return sum(len(data) for data in datagrams)
        return None

    def _data_datagrams(self, channel: Channel, index: int, now: float) -> list[bytes]:
        """The encoded datagrams of chunk ``index`` and the hashes the peer needs
        (:func:`.packing.data_datagrams`), timestamped now."""
        timestamp = int((now + self.timestamp_offset) * 1_000_000) & MAX_TIMESTAMP
        limit = self.config.max_datagram_bytes
        return [
            self._encode(channel, datagram)
            for datagram in packing.data_datagrams(channel, index, timestamp, limit)
        ]

    def _encode(self, channel: Channel, datagram: Datagram) -> bytes:
        return encode_datagram(datagram, channel.parameters, profile=channel.profile)

    def _send(self, channel: Channel, data: bytes, now: float) -> None:
        self._out.append((channel.address, data))
        channel.last_sent = now
        self.stats["datagrams_out"] += 1

    def _close(self, channel: Channel, *, notify: bool, now: float) -> None:
        """Close a channel; an established peer gets a closing HANDSHAKE (8.4) if ``notify``."""
        if notify and channel.state is ChannelState.ESTABLISHED:
            closing = Datagram(channel=channel.remote_id, messages=(Handshake(source_channel=0),))
            self._send(channel, self._encode(channel, closing), now)
        self._forget(channel)

    def _forget(self, channel: Channel) -> None:
        channel.state = ChannelState.CLOSED
        self._turns.forget(channel.local_id)
        self._channels.pop(channel.local_id, None)
        self._by_peer.pop((channel.address, channel.remote_id), None)
        self._room.remove(channel)
