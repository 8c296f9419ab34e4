"""A PPSPP channel that fetches the chunks it is asked for, sans-I/O: the chunk transport's core.

A :class:`ChannelClient` holds one channel to one peer for one stored content whose Merkle root
hash, chunk count and chunk size are known beforehand (a swarm's content description gives
them: the representation's ``merkle_root`` is an RFC 7574 root over SHA-256 chunk hashes).
Unlike :class:`~ppsp.peer.ppspp.leecher.Leecher`, which downloads a whole content from one
peer, it requests only the chunks it is given (:meth:`ChannelClient.request`), in any order,
and forgets them when told (:meth:`ChannelClient.cancel`): the download policy decides what
to fetch and from whom, this channel only moves and verifies.

The I/O layer sends what :meth:`ChannelClient.datagrams_to_send` returns, feeds the peer's
datagrams to :meth:`ChannelClient.datagram_received` with the time, calls
:meth:`ChannelClient.handle_timer` at :meth:`ChannelClient.next_deadline`, and takes the
outcome of each requested chunk from :meth:`ChannelClient.take_results`: a
:class:`ChunkVerified` (its bytes verified up to the root) or a :class:`ChunkRejected` (bytes
that do not verify).  Nothing here reads a clock or touches a socket; nothing the peer sends
raises (every drop is counted in :attr:`ChannelClient.stats`).

RFC 7574 as it is used here:

* **Handshake** (3.1.1, 7): the strict RFC 7574 profile: options 0, 1, 2 (the root hash), 3
  (Merkle), 4 (the hash function), 6 (32-bit chunk ranges), 8 and 9 (the chunk size, so that
  the peer refuses a channel on another chunk size).  Sent again every ``handshake_interval``
  while unanswered; no answer within ``connect_timeout`` closes the channel.  The answer's
  HAVEs (a seeder's peaks, or a partial holder's ranges) must not pass the content's last
  chunk; HAVEs are kept (:meth:`ChannelClient.peer_has`, at most :data:`MAX_PEER_RANGES`
  disjoint ranges).
* **Requests** (3.7): a REQUEST per chunk asked for (adjacent ones merged in one range); sent
  again after ``request_timeout`` while the chunk has not come (a REQUEST may be lost; our
  seeder resends lost DATA itself).  CANCEL (3.8) when the caller no longer wants a chunk.
* **Verification** (5.1-5.6): only the root hash is trusted.  INTEGRITY hashes are candidates;
  the peak hashes are verified once they rebuild the root; a DATA's chunk hash is combined
  upwards with candidate or verified sibling hashes (an empty hash beyond the content) until a
  verified node, whose hash must match.  Verified hashes are kept (never pruned: the peer
  sends no hash it knows we verified, section 5.3), bounded by the tree's size.
* **ACK** (8.7): each verified chunk, also a DATA no longer wanted that verifies, is acknowledged
  (with the one-way delay sample our seeder's LEDBAT reads), so that the peer stops resending.
  Consecutive chunks verified within ``ack_delay`` of the first share one ACK of their range
  (at most ``max_ack_run`` chunks; the delay sample is the newest chunk's): one datagram for
  a run instead of one per chunk.  A pending ACK also goes out ahead of any other message.
* **Choking** (3.9): a CHOKE moves the channel to CHOKED (:data:`TRANSITIONS`): every chunk
  wanted is handed back as :class:`ChunkChoked` (the peer will not answer: the caller asks
  another peer), and so is any chunk asked for while choked; an UNCHOKE moves it back to OPEN,
  where requests go out again.  A DATA still in flight is acknowledged when it verifies.
* **Peer exchange** (3.10): :meth:`ChannelClient.request_peers` sends a PEX_REQ (at most one
  outstanding, one per ``pex.interval``).  The PEX_RESv4/v6 of the first datagram carrying
  any within ``pex.answer_timeout`` are the answer; others are ignored and counted.  Of an
  answer, at most ``pex.max_per_answer`` unicast addresses are kept, at most
  ``pex.max_candidates`` over the channel's life (:mod:`.pex`): candidates to try
  (:meth:`ChannelClient.take_candidates`), never peers of the swarm until a handshake on its
  swarm ID answers.  PEX_REScert is not supported (ignored and counted).
* **Close** (8.4): a HANDSHAKE with source channel 0 when the caller closes the channel.
* **Errors**: a message :data:`TRANSITIONS` does not list for the channel's state (a
  SIGNED_INTEGRITY: live content) closes the channel (``protocol_error:EVENT`` counted).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import PPSPPError, TooManyMessages
from ppsp.peer.content.merkle import chunk_hash
from ppsp.peer.ppspp.channel import Event, event_of
from ppsp.peer.ppspp.content import bin_of_range, bin_range
from ppsp.peer.ppspp.opening import MAX_MESSAGES_PER_DATAGRAM
from ppsp.peer.ppspp.pex import PexAsking, PexBounds
from ppsp.peer.ppspp.verify import ChunkRanges, TreeHashes
from ppsp.wire.ppspp import (
    MAX_TIMESTAMP,
    PPSPP_VERSION,
    Ack,
    Bin,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ChunkSpec,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    Unchoke,
    keepalive,
)

__all__ = [
    "TRANSITIONS",
    "ChannelClient",
    "ChannelState",
    "ChunkChoked",
    "ChunkRejected",
    "ChunkResult",
    "ChunkVerified",
    "ClientConfig",
]

_MESSAGE_BYTES = 17
"""At most the size of a message we send (a 64-bit range and a delay): for splitting."""

MAX_PEER_RANGES = 4096
"""Disjoint chunk ranges of the peer's HAVEs kept; a HAVE that would make more is dropped
(and counted): the peer is then only asked for what was kept."""

_MAX_DATAGRAM = 1472
"""Our datagrams stay under this (further messages go in further datagrams)."""


class ChannelState(Enum):
    """Where the channel stands."""

    CONNECTING = "connecting"
    """Our handshake is out; the peer has not answered."""
    OPEN = "open"
    """The peer answered: requests go out, chunks come in."""
    CHOKED = "choked"
    """The peer sent CHOKE (section 3.9): no request goes out until its UNCHOKE."""
    CLOSED = "closed"
    """Closed by us, by the peer, or given up (:attr:`ChannelClient.failure` says why)."""


@dataclass(frozen=True, slots=True)
class ChunkVerified:
    """A requested chunk arrived and verified up to the root hash."""

    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkRejected:
    """A requested chunk arrived and did not verify (the peer sent wrong bytes or hashes)."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkChoked:
    """A requested chunk the peer will not send: it choked the channel (ask elsewhere)."""

    index: int


ChunkResult = ChunkVerified | ChunkRejected | ChunkChoked
"""What became of a requested chunk."""

_O, _K, _X = ChannelState.OPEN, ChannelState.CHOKED, ChannelState.CLOSED

TRANSITIONS: dict[tuple[ChannelState, Event], ChannelState] = {
    **{
        (state, event): state
        for state in (_O, _K)
        for event in (
            Event.HAVE,
            Event.DATA,  # in flight when the CHOKE was sent: verified, acknowledged
            Event.INTEGRITY,
            Event.HANDSHAKE,
            Event.HANDSHAKE_OTHER,  # counted
            Event.ACK,  # we upload nothing on this channel: ignored and counted
            Event.REQUEST,
            Event.CANCEL,
            Event.PEX_REQ,  # our serving side answers PEX on its own channels: ignored
            Event.PEX_RES,  # kept when asked for, else ignored and counted
        )
    },
    (_O, Event.CHOKE): _K,
    (_K, Event.CHOKE): _K,
    (_O, Event.UNCHOKE): _O,
    (_K, Event.UNCHOKE): _O,
    (_O, Event.CLOSE): _X,
    (_K, Event.CLOSE): _X,
}
"""Every (state, event) an answered channel accepts, with the state it leads to (the
handshake's answer itself moves CONNECTING to OPEN).  Not in it, hence protocol errors that
close the channel: SIGNED_INTEGRITY (live content on a stored content's channel)."""

_STAYING = frozenset((Integrity, Data))
"""Messages that leave an open or choked channel as it is (the table says so; a test checks):
nearly every message of a transfer, read without the table's lookup, which hashes enums."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """The channel's parameters, bounds and timers (seconds)."""

    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA256
    """The Merkle tree's hash function (content descriptions use SHA-256)."""
    profile: EncoderProfile = EncoderProfile.RFC7574
    """Whom our handshake is written for (RFC 7574 peers: options 8 and 9 included)."""
    channel_id: int | None = None
    """Our channel ID (None: a random one)."""
    handshake_interval: float = 1.0
    """Our handshake is sent again after this while unanswered."""
    connect_timeout: float = 5.0
    """No answer to our handshake for this long: the channel is closed."""
    idle_timeout: float = 30.0
    """Chunks wanted and nothing from the peer for this long: the channel is closed."""
    request_timeout: float = 2.0
    """A requested chunk not received after this is requested again."""
    keepalive_interval: float = 10.0
    """A keep-alive goes out when we have sent nothing for this long."""
    max_pending_hashes: int = 4096
    """Unverified INTEGRITY hashes kept (the oldest are forgotten first)."""
    max_waiting_chunks: int = 64
    """Chunks kept until the hashes to verify them arrive (the oldest are forgotten first)."""
    ack_delay: float = 0.001
    """A verified chunk's ACK waits at most this long for the next chunks of its run (0: an
    ACK per chunk, sent at once)."""
    max_ack_run: int = 16
    """At most this many chunks in one ACK: a run this long is acknowledged at once."""
    pex: PexBounds = field(default_factory=PexBounds)
    """How the channel asks for peers (PEX_REQ) and what it keeps of the answers."""

    def __post_init__(self) -> None:
        if self.channel_id is not None and not 0 < self.channel_id <= 0xFFFFFFFF:
            raise ValueError(f"channel ID {self.channel_id} outside 1-0xffffffff")
        if self.max_pending_hashes < 1 or self.max_waiting_chunks < 1:
            raise ValueError("the client keeps at least one hash and one chunk")
        if self.ack_delay < 0 or self.max_ack_run < 1:
            raise ValueError("an ACK waits no negative time and covers at least one chunk")


class ChannelClient:
    """One channel fetching chunks of one content from one peer (see the module docstring).

    ``root_hash`` is the trusted Merkle root; ``size`` (bytes) and ``chunk_size`` give the
    content's shape: its chunk count, and the length of its last chunk (the only short one).
    """

    def __init__(
        self,
        root_hash: bytes,
        *,
        size: int,
        chunk_size: int,
        now: float,
        config: ClientConfig | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        digest = self.config.merkle_hash.digest_size
        if len(root_hash) != digest:
            raise ValueError(f"a root hash of {len(root_hash)} bytes, not {digest}")
        if size < 1 or chunk_size < 1:
            raise ValueError("content of at least one byte and chunks of at least one byte")
        self.root_hash = root_hash
        self._hash_name = self.config.merkle_hash.hashlib_name
        self.size = size
        self.chunk_size = chunk_size
        self.chunk_count = -(-size // chunk_size)
        self.local_id = self.config.channel_id or (secrets.randbits(32) or 1)
        """Our channel ID: the peer prefixes its datagrams with it."""
        self.remote_id = 0
        """The peer's channel ID (0 until it answers)."""
        self.state = ChannelState.CONNECTING
        self.failure: str | None = None
        """Why the channel closed (one line), once :attr:`state` is CLOSED."""
        self.timed_out = False
        """Whether the channel closed because the peer did not answer in time."""
        self.stats: Counter[str] = Counter()
        """Datagrams and messages dropped or refused, by reason; chunks verified, rejected."""
        self.timestamp_offset = 0.0
        """Added to ``now`` to get the wall clock for ACK delay samples (set by the I/O layer)."""
        self._parameters = ChannelParameters(
            chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
            merkle_hash=self.config.merkle_hash,
            chunk_size=chunk_size,
        )
        self._started = now
        self._last_sent = now
        self._last_heard = now
        self._next_handshake = now
        self._out: list[bytes] = []
        self._results: list[ChunkResult] = []
        self._wanted: dict[int, float] = {}  # chunk -> when to request it again
        self._unsent: list[int] = []  # requested before the channel opened
        hashing = self.config.merkle_hash
        self._hashes = TreeHashes(
            root_hash,
            hashing.hashlib_name,
            hashing.digest_size,
            max_pending=self.config.max_pending_hashes,
            count=self.chunk_count,
        )
        self._waiting: dict[int, tuple[bytes, Data]] = {}  # chunk -> (its hash, its DATA)
        self._ack_run: _AckRun | None = None  # chunks verified, their ACK not yet sent
        self._peer_held = ChunkRanges(MAX_PEER_RANGES)
        self._pex = PexAsking(self.config.pex, self.stats)
        self._handshake(now)

    # --- the caller's interface -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the channel is closed (nothing more will be verified)."""
        return self.state is ChannelState.CLOSED

    @property
    def answered(self) -> bool:
        """True once the peer answered our handshake, until the channel closes (OPEN, or
        CHOKED by the peer)."""
        return self.state in (ChannelState.OPEN, ChannelState.CHOKED)

    @property
    def choked(self) -> bool:
        """True while the peer chokes the channel (it answers no request)."""
        return self.state is ChannelState.CHOKED

    def request_peers(self, now: float) -> bool:
        """Ask the peer for other peers' addresses (PEX_REQ, section 3.10), when the channel
        is answered and :class:`~.pex.PexAsking` allows it; True when sent."""
        if not self.answered or not self._pex.may_ask(now):
            return False
        self._pex.asked(now)
        self._send([PexReq()], now)
        return True

    def take_candidates(self) -> list[tuple[str, int]]:
        """Addresses learned by PEX since the last call: ``(host, port)`` (an IPv6 host with
        ``:``), unicast, each once.  Candidates only: the peer vouches for nothing, and an
        address is of the swarm once a handshake on its swarm ID answers from it."""
        return self._pex.take()

    @property
    def wanted(self) -> frozenset[int]:
        """The chunks requested and not yet verified or rejected."""
        return frozenset(self._wanted)

    def peer_has(self, index: int) -> bool:
        """Whether the peer announced chunk ``index`` (HAVE; a seeder's peaks: all)."""
        return index in self._peer_held

    def peer_holds(self, first: int, last: int) -> bool:
        """Whether the peer announced every chunk from ``first`` to ``last``."""
        return self._peer_held.covers(first, last)

    @property
    def peer_complete(self) -> bool:
        """Whether the peer announced every chunk (a seeder)."""
        return self._peer_held.covers(0, self.chunk_count - 1)

    def request(self, index: int, now: float) -> None:
        """Ask the peer for chunk ``index`` (ValueError outside the content; no effect once
        closed or when it is asked for already)."""
        self.request_many((index,), now)

    def request_many(self, indexes: Iterable[int], now: float) -> None:
        """Ask the peer for each chunk of ``indexes`` (adjacent ones in one REQUEST range;
        ValueError when one is outside the content, and then none is asked for; those asked
        for already are left as they are)."""
        indexes = list(indexes)
        for index in indexes:
            if not 0 <= index < self.chunk_count:
                raise ValueError(f"chunk {index} outside 0-{self.chunk_count - 1}")
        if self.closed:
            return
        new = [index for index in dict.fromkeys(indexes) if index not in self._wanted]
        if not new:
            return
        if self.state is ChannelState.CHOKED:
            self.stats["asked_while_choked"] += len(new)
            self._results.extend(ChunkChoked(index) for index in new)
            return
        for index in new:
            self._wanted[index] = now + self.config.request_timeout
        if self.state is ChannelState.OPEN:
            self._send_requests(new, now)
        else:
            self._unsent.extend(new)

    def cancel(self, index: int, now: float) -> None:
        """No longer want chunk ``index``: forget it and tell the peer (CANCEL)."""
        if self._wanted.pop(index, None) is None:
            return
        self._waiting.pop(index, None)
        if self.answered:
            self._send([Cancel(chunk=self._spec(index))], now)

    def close(self, now: float, reason: str = "closed") -> None:
        """Close the channel, telling the peer when it answered (a closing HANDSHAKE)."""
        if not self.closed:
            self._fail(reason, now)

    def datagrams_to_send(self) -> list[bytes]:
        """The datagrams to send to the peer now (and forget them)."""
        out, self._out = self._out, []
        return out

    def take_results(self) -> list[ChunkResult]:
        """What became of requested chunks since the last call, in order."""
        results, self._results = self._results, []
        return results

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is due next; None once closed."""
        if self.closed:
            return None
        config = self.config
        if self.state is ChannelState.CONNECTING:
            return min(self._next_handshake, self._started + config.connect_timeout)
        deadlines = [self._last_sent + config.keepalive_interval]
        if self._ack_run is not None:
            deadlines.append(self._ack_run.due)
        if self._wanted:
            deadlines.append(self._last_heard + config.idle_timeout)
            deadlines.append(min(self._wanted.values()))
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        """Resend the handshake or requests, keep alive, or give up, as the time says."""
        if self.closed:
            return
        config = self.config
        if self.state is ChannelState.CONNECTING:
            if now >= self._started + config.connect_timeout:
                self.timed_out = True
                self._fail(f"no answer from the peer after {config.connect_timeout:g} s", now)
            elif now >= self._next_handshake:
                self._handshake(now)
            return
        if self._ack_run is not None and now >= self._ack_run.due:
            self._send([], now)  # the pending ACK goes out
        if self._wanted and now >= self._last_heard + config.idle_timeout:
            self.timed_out = True
            self._fail(f"nothing from the peer for {config.idle_timeout:g} s", now)
            return
        due = [index for index, when in self._wanted.items() if when <= now]
        if due:
            self.stats["requests_again"] += len(due)
            self._send_requests(due, now)
        elif now >= self._last_sent + config.keepalive_interval:
            self._send_raw(encode_datagram(keepalive(self.remote_id), self._parameters), now)

    def datagram_received(self, data: bytes, now: float) -> None:
        """Take one datagram from the peer (never raises for its content)."""
        if self.closed:
            self.stats["after_close"] += 1
            return
        try:
            datagram = decode_datagram(
                data, self._parameters, max_messages=MAX_MESSAGES_PER_DATAGRAM
            )
        except PPSPPError as error:
            # Read no further than the serving engines' bound (the peer is no more trusted).
            over = isinstance(error, TooManyMessages)
            self.stats["too_many_messages" if over else "malformed"] += 1
            return
        if datagram.channel != self.local_id:
            self.stats["wrong_channel"] += 1
            return
        messages = datagram.messages
        if self.state is ChannelState.CONNECTING:
            if not messages or not isinstance(messages[0], Handshake):
                self.stats["before_handshake"] += 1
                return
            if not self._on_reply(messages[0], messages[1:], now):
                return
            messages = messages[1:]
        self._last_heard = now
        self._on_messages(messages, now)

    # --- handshake ------------------------------------------------------------------------

    def _handshake(self, now: float) -> None:
        handshake = Handshake(
            source_channel=self.local_id,
            version=PPSPP_VERSION,
            min_version=PPSPP_VERSION,
            swarm_id=self.root_hash,
            content_integrity=ContentIntegrity.MERKLE,
            merkle_hash=self.config.merkle_hash,
            chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
            chunk_size=self.chunk_size,
        )
        datagram = Datagram(channel=0, messages=(handshake,))
        self._send_raw(
            encode_datagram(datagram, self._parameters, profile=self.config.profile), now
        )
        self._next_handshake = now + self.config.handshake_interval

    def _on_reply(self, reply: Handshake, rest: tuple[Message, ...], now: float) -> bool:
        """The peer's answer to our handshake: True when the channel is open."""
        if reply.source_channel == 0:
            self._fail("the peer refused the channel (closing handshake)", now, notify=False)
            return False
        self.remote_id = reply.source_channel  # a refusal is still told to the peer
        problem = None
        if reply.version is not None and reply.version != PPSPP_VERSION:
            problem = f"protocol version {reply.version}"
        elif reply.content_integrity not in (None, ContentIntegrity.MERKLE):
            problem = f"content integrity protection method {reply.content_integrity}"
        elif reply.merkle_hash not in (None, self.config.merkle_hash):
            assert reply.merkle_hash is not None
            problem = f"Merkle hash function {reply.merkle_hash.name}"
        elif reply.chunk_addressing not in (None, ChunkAddressing.CHUNK_RANGE_32):
            assert reply.chunk_addressing is not None
            problem = f"chunk addressing method {reply.chunk_addressing.name}"
        elif reply.chunk_size not in (None, self.chunk_size):
            problem = f"chunk size {reply.chunk_size}"
        elif reply.swarm_id not in (None, self.root_hash):
            problem = "another swarm ID"
        elif reply.live_signature is not None or reply.live_discard_window is not None:
            problem = "live content"
        else:
            parameters = self._parameters.with_handshake(reply)
            # A seeder's HAVEs (its peaks) end at the last chunk, a partial holder's anywhere
            # before it (section 3.2: HAVE names any chunks held); past it is another content.
            ends = [_as_range(m.chunk).end for m in rest if isinstance(m, Have)]
            if ends and max(ends) + 1 > self.chunk_count:
                problem = f"{max(ends) + 1} chunks, not {self.chunk_count}"
        if problem is not None:
            self.stats["refused_reply"] += 1
            self._fail(f"the peer answered with {problem}", now)
            return False
        self._parameters = parameters
        self.state = ChannelState.OPEN
        unsent, self._unsent = self._unsent, []
        wanted = [index for index in unsent if index in self._wanted]
        if wanted:
            self._send_requests(wanted, now)
        return True

    # --- messages -------------------------------------------------------------------------

    def _on_messages(self, messages: tuple[Message, ...], now: float) -> None:
        acks: list[tuple[int, int]] = []  # (chunk, delay sample), in the order verified
        pex: list[PexResV4 | PexResV6 | PexResCert] = []
        for message in messages:
            state = self.state
            if (state is _O or state is _K) and type(message) in _STAYING:
                if type(message) is Integrity:
                    self._on_integrity(message)
                else:
                    self._on_data(message, now, acks)  # type: ignore[arg-type]
                continue
            event = event_of(message, self.remote_id)
            following = TRANSITIONS.get((state, event))
            if following is None:
                self.stats["protocol_error"] += 1
                self.stats[f"protocol_error:{event.value}"] += 1
                self._fail(f"protocol error: {event.value} when {self.state.value}", now)
                return
            if following is not self.state:
                if following is ChannelState.CLOSED:
                    self._fail("the peer closed the channel", now, notify=False)
                    return
                self.state = following
                if following is ChannelState.CHOKED:
                    self._on_choke()
                else:
                    self.stats["unchoked"] += 1  # requests go out again as they are asked
            if isinstance(message, Integrity):
                self._on_integrity(message)
            elif isinstance(message, Data):
                self._on_data(message, now, acks)
            elif isinstance(message, Handshake):
                if event is Event.HANDSHAKE_OTHER:
                    self.stats["handshake_other"] += 1
            elif isinstance(message, Have):
                chunks = _as_range(message.chunk)
                if chunks.end >= self.chunk_count:
                    self.stats["have_past_end"] += 1
                elif not self._peer_held.add(chunks):
                    self.stats["have_dropped"] += 1
            elif isinstance(message, PexResV4 | PexResV6 | PexResCert):
                pex.append(message)
            elif not isinstance(message, Choke | Unchoke):
                # ACK, REQUEST, CANCEL, PEX_REQ: we upload nothing on this channel.
                self.stats["ignored_" + type(message).__name__.lower()] += 1
        if pex:
            self._pex.received(pex, now)
        if self._waiting:
            self._retry_waiting(now, acks)
        if acks:
            self._acknowledge(acks, now)

    def _on_choke(self) -> None:
        """The peer choked the channel: it will answer none of our requests (section 3.9;
        it discards them), so every chunk wanted goes back to the caller to ask elsewhere."""
        self.stats["choked"] += 1
        wanted = list(self._wanted)
        self._wanted.clear()
        self._waiting.clear()
        self._unsent.clear()
        self.stats["handed_back_choked"] += len(wanted)
        self._results.extend(ChunkChoked(index) for index in wanted)

    def _on_integrity(self, message: Integrity) -> None:
        chunk = message.chunk
        if type(chunk) is ChunkRange:  # bin_of_range, inline: several per chunk
            start, count = chunk.start, chunk.end - chunk.start + 1
            level = count.bit_length() - 1
            fits = not (count & (count - 1) or start % count)
            number = (start >> level) * (2 << level) + (1 << level) - 1 if fits else None
        else:
            number = bin_of_range(_as_range(chunk))
        if number is None or number > 2 * self._hashes.root_bin:
            self.stats["bad_integrity"] += 1
            return
        if not self._hashes.receive(number, message.hash):
            self.stats["integrity_conflict"] += 1

    def _on_data(self, message: Data, now: float, acks: list[tuple[int, int]]) -> None:
        chunks = _as_range(message.chunk)
        index = chunks.start
        if chunks.end != index or index >= self.chunk_count:
            self.stats["data_out_of_range"] += 1
            return
        data = message.data
        expected = min(self.chunk_size, self.size - index * self.chunk_size)
        if index not in self._wanted:
            # Resent after our ACK was lost, or cancelled meanwhile: not kept, and acknowledged
            # (so that the peer stops sending it) only when it verifies: an ACK says we hold it.
            self.stats["unwanted_data"] += 1
            if len(data) == expected and self._verify(index, self._leaf(data)):
                acks.append((index, self._delay(message, now)))
            return
        if len(data) != expected:
            self._reject(index, f"chunk {index} of {len(data)} bytes, not {expected}")
            return
        leaf = self._leaf(data)
        verdict = self._verify(index, leaf)
        if verdict is None:
            # Its hashes may still come (ahead of another chunk); asked again on time if not.
            self.stats["missing_hashes"] += 1
            waiting = self._waiting
            waiting.pop(index, None)
            if len(waiting) >= self.config.max_waiting_chunks:
                del waiting[next(iter(waiting))]
            waiting[index] = (leaf, message)
        elif verdict:
            self._accept(index, message, now, acks)
        else:
            self._reject(index, f"chunk {index} does not verify against the root hash")

    def _retry_waiting(self, now: float, acks: list[tuple[int, int]]) -> None:
        """Verify the chunks kept for want of hashes, with the hashes learned since."""
        for index, (leaf, message) in list(self._waiting.items()):
            if index not in self._wanted:
                del self._waiting[index]
                continue
            verdict = self._verify(index, leaf)
            if verdict is not None:
                del self._waiting[index]
                if verdict:
                    self.stats["verified_later"] += 1
                    self._accept(index, message, now, acks)
                else:
                    self._reject(index, f"chunk {index} does not verify against the root hash")

    def _accept(self, index: int, message: Data, now: float, acks: list[tuple[int, int]]) -> None:
        del self._wanted[index]
        self._waiting.pop(index, None)
        self.stats["chunks_verified"] += 1
        self._results.append(ChunkVerified(index, message.data))
        acks.append((index, self._delay(message, now)))

    def _reject(self, index: int, reason: str) -> None:
        del self._wanted[index]
        self._waiting.pop(index, None)
        self.stats["chunks_rejected"] += 1
        self._results.append(ChunkRejected(index, reason))

    def _delay(self, message: Data, now: float) -> int:
        """The ACK's one-way delay sample for ``message``: our wall clock minus its timestamp
        in microseconds (64 bits, two's complement when negative)."""
        return (int((now + self.timestamp_offset) * 1_000_000) - message.timestamp) & MAX_TIMESTAMP

    def _acknowledge(self, acks: list[tuple[int, int]], now: float) -> None:
        """Add verified chunks to the pending ACK run; what completes a run goes out.

        A chunk extends the run when it follows the run's last chunk; otherwise the run is
        sent and a new one starts.  A run of ``max_ack_run`` chunks, or any run when
        ``ack_delay`` is 0, is sent at once; others wait for their deadline (the timer).
        """
        config = self.config
        ready: list[Message] = []
        run = self._ack_run
        for index, delay in acks:
            if run is not None and index == run.last + 1 and index - run.first < config.max_ack_run:
                run.last, run.delay = index, delay
            else:
                if run is not None:
                    ready.append(run.ack())
                run = _AckRun(index, index, delay, now + config.ack_delay)
            if run.last - run.first + 1 >= config.max_ack_run or config.ack_delay <= 0:
                ready.append(run.ack())
                run = None
        self._ack_run = run
        if ready:
            self._send(ready, now, pending=False)

    # --- verification ---------------------------------------------------------------------

    def _leaf(self, data: bytes) -> bytes:
        """A chunk's hash, once the peak hashes had their chance to verify."""
        if not self._hashes.peaks_trusted and self._hashes.check_peaks() is False:
            self.stats["bad_peaks"] += 1
        return chunk_hash(data, self._hash_name)

    def _verify(self, index: int, leaf: bytes) -> bool | None:
        """Check chunk ``index`` of hash ``leaf`` (:meth:`.verify.TreeHashes.check`): True
        when it verifies, False when it does not, None when a hash on its way up is missing."""
        return self._hashes.check(index, leaf)

    # --- sending --------------------------------------------------------------------------

    def _send_requests(self, indexes: list[int], now: float) -> None:
        """REQUESTs for ``indexes`` (sorted, adjacent ones in one range); their timers reset."""
        deadline = now + self.config.request_timeout
        runs: list[Message] = []
        ordered = sorted(indexes)
        start = end = ordered[0]
        for index in [*ordered[1:], None]:
            if index is not None and index == end + 1:
                end = index
                continue
            runs.append(Request(chunk=ChunkRange(start=start, end=end)))
            if index is not None:
                start = end = index
        for index in ordered:
            self._wanted[index] = deadline
        self._send(runs, now)

    @staticmethod
    def _spec(index: int) -> ChunkSpec:
        return ChunkRange(start=index, end=index)

    def _send(self, messages: list[Message], now: float, *, pending: bool = True) -> None:
        """Send ``messages`` to the peer, in as many datagrams as their size needs, with the
        pending ACK ahead of them (unless ``pending`` is False)."""
        run = self._ack_run
        if pending and run is not None:
            self._ack_run = None
            messages = [run.ack(), *messages]
        per = (_MAX_DATAGRAM - 4) // _MESSAGE_BYTES
        for start in range(0, len(messages), per):
            batch = tuple(messages[start : start + per])
            datagram = Datagram(channel=self.remote_id, messages=batch)
            self._send_raw(encode_datagram(datagram, self._parameters), now)

    def _send_raw(self, data: bytes, now: float) -> None:
        self._out.append(data)
        self._last_sent = now

    def _fail(self, reason: str, now: float, *, notify: bool = True) -> None:
        was_open = self.remote_id != 0
        self.state = ChannelState.CLOSED
        self.failure = reason
        self._wanted.clear()
        self._waiting.clear()
        self._ack_run = None
        if notify and was_open:
            closing = Datagram(channel=self.remote_id, messages=(Handshake(source_channel=0),))
            self._send_raw(encode_datagram(closing, self._parameters), now)


@dataclass(slots=True)
class _AckRun:
    """Consecutive chunks verified and not yet acknowledged."""

    first: int
    last: int
    delay: int
    """The newest chunk's one-way delay sample."""
    due: float
    """When the ACK goes out at the latest."""

    def ack(self) -> Ack:
        """The ACK of the run (32-bit chunk ranges)."""
        return Ack(chunk=ChunkRange(start=self.first, end=self.last), delay=self.delay)


def _as_range(spec: ChunkSpec) -> ChunkRange:
    return bin_range(spec.number) if isinstance(spec, Bin) else spec
