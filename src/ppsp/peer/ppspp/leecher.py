"""The downloading side of RFC 7574 (PPSPP) over one channel, sans-I/O.

A :class:`Leecher` downloads one stored content, named by its Merkle root hash (the swarm ID,
errata 4724), from one peer.  The I/O layer sends what :meth:`Leecher.datagrams_to_send`
returns, feeds every datagram from the peer to :meth:`Leecher.datagram_received` with the
time, calls :meth:`Leecher.handle_timer` at :meth:`Leecher.next_deadline`, and writes the
chunks :meth:`Leecher.take_chunks` hands out: only chunks verified against the root hash ever
leave the engine.  Nothing here reads a clock or touches a socket.

What it does, section by section of RFC 7574:

* **Handshake** (3.1.1, 7, 8.4): our HANDSHAKE on channel 0 (swarm ID, CIPM 1, the Merkle hash
  function, 32-bit chunk ranges), repeated until the peer answers on our channel ID, or given
  up after ``connect_timeout``.  libswift's profile by default (no options 8 and 9: libswift
  drops a handshake carrying option 9).
* **Size** (5.6): the chunk count is that of the HAVEs the peer announces with its handshake
  (libswift sends one per peak); the byte size follows from the last chunk's length.
* **Requests** (3.7): contiguous ranges of what is missing, lowest first, a window of chunks
  in flight; a chunk not received within ``request_timeout`` (libswift forgets a request
  older than 1.5 s) is requested again and the window halves.
* **Verification** (5.1-5.5): INTEGRITY hashes are kept as candidates; a DATA's chunk hash is
  combined with candidate (or already verified) uncle hashes up to a verified node, at first
  the root.  Only then are the chunk and the hashes on its path trusted.  A chunk that does
  not verify is dropped, counted, and requested again; too many of those fail the download.
  One whose hashes are missing waits for them (a few such chunks, unwritten).
* **ACK and HAVE** (8.5, 8.7): after each verified chunk, a HAVE of the largest complete
  subtree now held that contains it and an ACK carrying libswift's one-way delay sample (our
  wall clock at arrival minus the DATA's timestamp, in microseconds).
* **Close** (8.4): a HANDSHAKE with source channel 0 once everything is held.

Every datagram that does not parse, or message that makes no sense, is dropped and counted in
:attr:`Leecher.stats`; nothing the peer sends raises.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from enum import Enum

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import PPSPPError, TooManyMessages
from ppsp.peer.content.merkle import chunk_hash
from ppsp.peer.ppspp.channel import aligned_bins
from ppsp.peer.ppspp.content import bin_level, bin_of_range, bin_parent, bin_range, bin_sibling
from ppsp.peer.ppspp.opening import MAX_MESSAGES_PER_DATAGRAM
from ppsp.peer.ppspp.verify import TreeHashes
from ppsp.wire.ppspp import (
    DEFAULT_CHUNK_SIZE,
    MAX_TIMESTAMP,
    PPSPP_VERSION,
    Ack,
    Bin,
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
    Request,
    Unchoke,
    keepalive,
)

__all__ = ["Leecher", "LeecherConfig", "LeecherState"]

_MAX_REQUEST_BYTES = 1472
"""Our datagrams stay under this (REQUESTs beyond go in further datagrams)."""


class LeecherState(Enum):
    """Where a download stands."""

    CONNECTING = "connecting"
    """Our handshake is out; the peer has not answered."""
    DOWNLOADING = "downloading"
    """The channel is open; chunks are requested and verified."""
    COMPLETE = "complete"
    """Every chunk is held and verified; the channel is closed."""
    FAILED = "failed"
    """Given up (:attr:`Leecher.failure` says why); the channel is closed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeecherConfig:
    """A download's parameters, bounds and timers (seconds)."""

    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1
    """The Merkle tree's hash function (libswift's SHA-1 by default)."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """The chunk size both sides agree on (libswift does not announce its own)."""
    profile: EncoderProfile = EncoderProfile.LIBSWIFT
    """Whom our handshake is written for: libswift (no options 8 and 9) or RFC 7574 peers."""
    channel_id: int | None = None
    """Our channel ID (None: a random one; tests replaying captured exchanges set it)."""
    handshake_interval: float = 1.0
    """Our handshake is sent again after this while unanswered."""
    connect_timeout: float = 10.0
    """No answer to our handshake for this long: the download fails."""
    idle_timeout: float = 30.0
    """No verified chunk for this long: the download fails."""
    request_timeout: float = 1.5
    """A requested chunk not received after this is requested again."""
    keepalive_interval: float = 10.0
    """A keep-alive goes out when we have sent nothing for this long."""
    min_window: int = 16
    """Chunks requested and not received, at least (also the first window)."""
    max_window: int = 1024
    """Chunks requested and not received, at most."""
    max_chunks: int = 1 << 24
    """Content of more chunks is refused (bounds the map of chunks held)."""
    max_pending_hashes: int = 1024
    """Unverified INTEGRITY hashes kept (the oldest are forgotten first)."""
    max_waiting_chunks: int = 64
    """Chunks kept until the hashes to verify them arrive (the oldest are forgotten first)."""
    max_failures: int = 64
    """Chunks that fail verification before the download is given up."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_window <= self.max_window:
            raise ValueError("the request window needs 1 <= min_window <= max_window")
        if self.chunk_size < 1 or self.max_chunks < 1:
            raise ValueError("chunk size and max_chunks are at least 1")
        if self.channel_id is not None and not 0 < self.channel_id <= 0xFFFFFFFF:
            raise ValueError(f"channel ID {self.channel_id} outside 1-0xffffffff")


class Leecher:
    """One download of stored content from one PPSPP peer (see the module's docstring)."""

    def __init__(self, root_hash: bytes, now: float, config: LeecherConfig | None = None) -> None:
        self.config = config or LeecherConfig()
        digest = self.config.merkle_hash.digest_size
        if len(root_hash) != digest:
            raise ValueError(
                f"a {self.config.merkle_hash.name} root hash has {digest} bytes,"
                f" not {len(root_hash)}"
            )
        self.root_hash = root_hash
        self.local_id = self.config.channel_id or (secrets.randbits(32) or 1)
        """Our channel ID: the peer prefixes its datagrams with it."""
        self.remote_id = 0
        """The peer's channel ID (0 until it answers)."""
        self.state = LeecherState.CONNECTING
        self.failure: str | None = None
        """Why the download failed (one line), once :attr:`state` is FAILED."""
        self.stats: Counter[str] = Counter()
        """Datagrams and messages dropped or refused, by reason; chunks verified."""
        self.timestamp_offset = 0.0
        """Added to ``now`` to get the wall clock (seconds since 1970), for ACK delay samples:
        the I/O layer sets it (``time.time() - loop.time()``)."""
        self.chunk_count: int | None = None
        """Chunks of the content, once the peer announced them."""
        self.size: int | None = None
        """The content's size in bytes, once the last chunk is verified."""
        self.held_count = 0
        self._parameters = ChannelParameters(
            chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
            merkle_hash=self.config.merkle_hash,
            chunk_size=self.config.chunk_size,
        )
        self._started = now
        self._last_sent = now
        self._last_progress = now
        self._next_handshake = now
        self._out: list[bytes] = []
        self._chunks: list[tuple[int, bytes]] = []
        self._held = bytearray()
        hashing = self.config.merkle_hash
        self._hashes = TreeHashes(
            self.root_hash,
            hashing.hashlib_name,
            hashing.digest_size,
            max_pending=self.config.max_pending_hashes,
        )  # its tree's shape once the peer's peaks give the chunk count
        self._waiting: dict[int, tuple[bytes, Data]] = {}  # chunk -> (its hash, its DATA)
        self._outstanding: dict[int, float] = {}  # chunk -> deadline, oldest first
        self._retry: dict[int, None] = {}  # chunks to request again, in order (a set)
        self._cursor = 0  # chunks below it were requested at least once
        self._window = self.config.min_window
        self._last_shrink = now
        self._choked = False
        self._failures = 0
        self._handshake(now)

    # --- the I/O layer's interface ------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the download is complete or has failed."""
        return self.state in (LeecherState.COMPLETE, LeecherState.FAILED)

    def datagrams_to_send(self) -> list[bytes]:
        """The datagrams to send to the peer now (and forget them)."""
        out, self._out = self._out, []
        return out

    def take_chunks(self) -> list[tuple[int, bytes]]:
        """Chunks verified since the last call, as ``(index, bytes)``: write them."""
        chunks, self._chunks = self._chunks, []
        return chunks

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is due next; None once done."""
        if self.done:
            return None
        config = self.config
        if self.state is LeecherState.CONNECTING:
            return min(self._next_handshake, self._started + config.connect_timeout)
        deadlines = [
            self._last_progress + config.idle_timeout,
            self._last_sent + config.keepalive_interval,
        ]
        if self._outstanding:
            deadlines.append(next(iter(self._outstanding.values())))
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        """Resend, re-request, keep alive or give up, as the time says."""
        if self.done:
            return
        config = self.config
        if self.state is LeecherState.CONNECTING:
            if now >= self._started + config.connect_timeout:
                self._fail(f"no answer from the peer after {config.connect_timeout:g} s", now)
            elif now >= self._next_handshake:
                self._handshake(now)
            return
        if now >= self._last_progress + config.idle_timeout:
            self._fail(f"no data from the peer for {config.idle_timeout:g} s", now)
            return
        expired = [index for index, deadline in self._outstanding.items() if deadline <= now]
        if expired:
            for index in expired:
                del self._outstanding[index]
                self._retry[index] = None
            self.stats["request_timeouts"] += len(expired)
            if now - self._last_shrink >= config.request_timeout:
                self._window = max(config.min_window, self._window // 2)
                self._last_shrink = now
        messages: list[Message] = []
        self._add_requests(messages, now)
        if messages:
            self._send(messages, now)
        elif now >= self._last_sent + config.keepalive_interval:
            self._send_raw(encode_datagram(keepalive(self.remote_id), self._parameters), now)

    def close(self, now: float) -> None:
        """Give up (the user interrupted): tell the peer the channel is closed."""
        if not self.done:
            self._fail("interrupted", now)

    def datagram_received(self, data: bytes, now: float) -> None:
        """Take one datagram from the peer."""
        if self.done:
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
        if self.state is LeecherState.CONNECTING:
            if not messages or not isinstance(messages[0], Handshake):
                self.stats["before_handshake"] += 1
                return
            if not self._on_reply(messages[0], now):
                return
            messages = messages[1:]
        self._on_messages(messages, now)

    # --- handshake ----------------------------------------------------------------------

    def _handshake(self, now: float) -> None:
        config = self.config
        handshake = Handshake(
            source_channel=self.local_id,
            version=PPSPP_VERSION,
            min_version=PPSPP_VERSION,
            swarm_id=self.root_hash,
            content_integrity=ContentIntegrity.MERKLE,
            merkle_hash=config.merkle_hash,
            chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
            chunk_size=config.chunk_size,
        )
        datagram = Datagram(channel=0, messages=(handshake,))
        self._send_raw(encode_datagram(datagram, self._parameters, profile=config.profile), now)
        self._next_handshake = now + config.handshake_interval

    def _on_reply(self, reply: Handshake, now: float) -> bool:
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
        elif reply.chunk_addressing == ChunkAddressing.BYTE_RANGE_64:
            problem = "byte-range chunk addressing"
        elif reply.chunk_size not in (None, self.config.chunk_size):
            problem = f"chunk size {reply.chunk_size}"
        elif reply.swarm_id not in (None, self.root_hash):
            problem = "another swarm ID"
        elif reply.live_signature is not None or reply.live_discard_window is not None:
            problem = "live content"
        if problem is not None:
            self.stats["refused_reply"] += 1
            self._fail(f"the peer answered with {problem}, which this download cannot use", now)
            return False
        self._parameters = self._parameters.with_handshake(reply)
        self.state = LeecherState.DOWNLOADING
        self._last_progress = now
        return True

    # --- messages -------------------------------------------------------------------------

    def _on_messages(self, messages: tuple[Message, ...], now: float) -> None:
        replies: list[Message] = []
        if self.chunk_count is None:
            # The first HAVEs (libswift's peaks, with its handshake) give the content's extent.
            ends = [self._as_range(m.chunk).end for m in messages if isinstance(m, Have)]
            if ends:
                self._set_extent(max(ends) + 1, now)
        for message in messages:
            if self.done:
                return
            if isinstance(message, Integrity):
                self._on_integrity(message)
            elif isinstance(message, Data):
                self._on_data(message, now, replies)
            elif isinstance(message, Have):
                self._on_have(message, now)
            elif isinstance(message, Handshake):
                if message.source_channel == 0:
                    if self.state is not LeecherState.COMPLETE:
                        self._fail("the peer closed the channel", now, notify=False)
                    return
                if message.source_channel != self.remote_id:
                    self.stats["handshake_other"] += 1
            elif isinstance(message, Choke):
                self._on_choke()
            elif isinstance(message, Unchoke):
                if self._choked:
                    self.stats["unchoked"] += 1  # requests resume below, retries first
                self._choked = False
            else:
                # ACK, REQUEST, CANCEL, PEX: we upload nothing and know no other peer.
                self.stats["ignored_" + type(message).__name__.lower()] += 1
        if self._waiting and not self.done:
            self._retry_waiting(now, replies)
        if self.done:
            return
        self._add_requests(replies, now)
        if replies:
            self._send(replies, now)
        if self.held_count == self.chunk_count:
            self._complete(now)

    def _on_choke(self) -> None:
        """The peer will answer none of our requests (section 3.9, it discards them): the
        outstanding chunks are requested again, first, once it unchokes us (the window is not
        shrunk: nothing was lost)."""
        if not self._choked:
            self.stats["choked"] += 1
        self._choked = True
        if self._outstanding:
            retry = dict.fromkeys(self._outstanding)
            retry.update(self._retry)
            self._retry = retry
            self._outstanding.clear()

    def _on_have(self, have: Have, now: float) -> None:
        if self.chunk_count is not None and self._as_range(have.chunk).end >= self.chunk_count:
            self.stats["have_past_end"] += 1

    def _set_extent(self, count: int, now: float) -> None:
        if count > self.config.max_chunks:
            self._fail(
                f"the peer announces {count} chunks, more than {self.config.max_chunks}", now
            )
            return
        self.chunk_count = count
        self._held = bytearray(count)
        self._hashes.set_count(count)

    def _on_integrity(self, message: Integrity) -> None:
        number = bin_of_range(self._as_range(message.chunk))
        hashes = self._hashes
        if number is None or (self.chunk_count is not None and number > 2 * hashes.root_bin):
            self.stats["bad_integrity"] += 1
            return
        if not hashes.receive(number, message.hash):
            self.stats["integrity_conflict"] += 1

    def _on_data(self, message: Data, now: float, replies: list[Message]) -> None:
        chunks = self._as_range(message.chunk)
        index, count = chunks.start, self.chunk_count
        if count is None:
            self.stats["data_before_size"] += 1
            return
        if chunks.end != index or index >= count:
            self.stats["data_out_of_range"] += 1
            return
        self._outstanding.pop(index, None)
        if self._held[index]:
            self.stats["duplicate_data"] += 1
            replies.append(Have(chunk=self._spec(ChunkRange(start=index, end=index))))
            return
        data = message.data
        size = self.config.chunk_size
        if len(data) > size or (index < count - 1 and len(data) != size):
            self._rejected(index, f"chunk {index} of {len(data)} bytes", now)
            return
        if not self._hashes.peaks_trusted and self._hashes.check_peaks() is False:
            self.stats["bad_peaks"] += 1
        leaf = chunk_hash(data, self.config.merkle_hash.hashlib_name)
        verdict = self._verify(index, leaf)
        if verdict is None:
            # Its hashes may still come (with another chunk): kept, and asked again only when
            # they have not come within the request timeout.
            self.stats["missing_hashes"] += 1
            self._outstanding[index] = now + self.config.request_timeout
            waiting = self._waiting
            waiting.pop(index, None)
            if len(waiting) >= self.config.max_waiting_chunks:
                del waiting[next(iter(waiting))]
            waiting[index] = (leaf, message)
        elif verdict:
            self._accept(index, message, now, replies)
        else:
            self._rejected(index, f"chunk {index} does not verify", now)

    def _retry_waiting(self, now: float, replies: list[Message]) -> None:
        """Verify the chunks kept for want of hashes, with the hashes learned since."""
        for index, (leaf, message) in list(self._waiting.items()):
            if self._held[index]:
                del self._waiting[index]
                continue
            verdict = self._verify(index, leaf)
            if verdict is not None:
                del self._waiting[index]
                if verdict:
                    self.stats["verified_later"] += 1
                    self._accept(index, message, now, replies)
                else:
                    self._rejected(index, f"chunk {index} does not verify", now)

    def _accept(self, index: int, message: Data, now: float, replies: list[Message]) -> None:
        """Keep verified chunk ``index``, and acknowledge it."""
        count, size, data = self.chunk_count, self.config.chunk_size, message.data
        assert count is not None
        self._waiting.pop(index, None)
        self._held[index] = 1
        self.held_count += 1
        self.stats["chunks_verified"] += 1
        self._last_progress = now
        self._chunks.append((index, data))
        if index == count - 1:
            self.size = (count - 1) * size + len(data)
        self._prune(index)
        if self._window < self.config.max_window:
            self._window += 1
        delay = int((now + self.timestamp_offset) * 1_000_000) - message.timestamp
        replies.append(Have(chunk=self._spec(self._complete_subtree(index))))
        replies.append(
            Ack(chunk=self._spec(ChunkRange(start=index, end=index)), delay=delay & MAX_TIMESTAMP)
        )

    def _rejected(self, index: int, what: str, now: float) -> None:
        self.stats["chunks_rejected"] += 1
        self._failures += 1
        self._retry[index] = None
        if self._failures >= self.config.max_failures:
            self._fail(
                f"{self._failures} chunks from the peer failed verification (last: {what})", now
            )

    # --- verification ---------------------------------------------------------------------

    def _verify(self, index: int, leaf: bytes) -> bool | None:
        """Check chunk ``index`` of hash ``leaf`` (:meth:`.verify.TreeHashes.check`): True
        when it verifies, False when it does not, None when a hash on its way up is missing."""
        return self._hashes.check(index, leaf)

    def _prune(self, index: int) -> None:
        """Forget the hashes inside subtrees now wholly held: nothing needs them again (their
        root stays, a sibling of what is still missing)."""
        count = self.chunk_count
        assert count is not None
        node, root, verified = 2 * index, self._hashes.root_bin, self._hashes.verified
        while node != root:
            sibling = bin_sibling(node)
            chunks = bin_range(sibling)
            if chunks.start < count and not self._all_held(chunks):
                break
            verified.pop(node, None)
            verified.pop(sibling, None)
            node = bin_parent(node)

    def _all_held(self, chunks: ChunkRange) -> bool:
        end = min(chunks.end, len(self._held) - 1)
        return self._held.find(0, chunks.start, end + 1) < 0

    def _complete_subtree(self, index: int) -> ChunkRange:
        """The largest subtree held wholly, within the content, that contains ``index``."""
        count = self.chunk_count
        assert count is not None
        node = 2 * index
        while bin_level(node) < bin_level(self._hashes.root_bin):
            parent = bin_range(bin_parent(node))
            if parent.end >= count or not self._all_held(parent):
                break
            node = bin_parent(node)
        return bin_range(node)

    # --- requests -------------------------------------------------------------------------

    def _add_requests(self, messages: list[Message], now: float) -> None:
        """Append REQUESTs filling the window, in contiguous ranges."""
        count = self.chunk_count
        if count is None or self._choked or self.state is not LeecherState.DOWNLOADING:
            return
        picked: list[int] = []
        room = self._window - len(self._outstanding)
        while room > 0 and self._retry:
            index = next(iter(self._retry))
            del self._retry[index]
            if not self._held[index] and index not in self._outstanding:
                picked.append(index)
                room -= 1
        while room > 0 and self._cursor < count:
            index = self._cursor
            self._cursor += 1
            if not self._held[index] and index not in self._outstanding:
                picked.append(index)
                room -= 1
        if not picked:
            return
        deadline = now + self.config.request_timeout
        for index in picked:
            self._outstanding[index] = deadline
        picked.sort()
        runs: list[ChunkRange] = []
        start = end = picked[0]
        for index in picked[1:]:
            if index != end + 1:
                runs.append(ChunkRange(start=start, end=end))
                start = index
            end = index
        runs.append(ChunkRange(start=start, end=end))
        for run in runs:
            if self._parameters.chunk_addressing.is_bin:
                messages.extend(Request(chunk=Bin(number=n)) for n in aligned_bins(run))
            else:
                messages.append(Request(chunk=run))

    # --- sending --------------------------------------------------------------------------

    def _spec(self, chunks: ChunkRange) -> ChunkSpec:
        """A range in the channel's chunk addressing (a bin: the range must be a subtree)."""
        if not self._parameters.chunk_addressing.is_bin:
            return chunks
        number = bin_of_range(chunks)
        assert number is not None
        return Bin(number=number)

    def _as_range(self, spec: ChunkSpec) -> ChunkRange:
        return bin_range(spec.number) if isinstance(spec, Bin) else spec

    def _send(self, messages: list[Message], now: float) -> None:
        """Send ``messages`` to the peer, in as many datagrams as their size needs."""
        batch: list[Message] = []
        size = 4
        for message in messages:
            # Every message we send is at most 17 bytes (64-bit ranges and a delay).
            if batch and size + 17 > _MAX_REQUEST_BYTES:
                self._send_batch(batch, now)
                batch, size = [], 4
            batch.append(message)
            size += 17
        if batch:
            self._send_batch(batch, now)

    def _send_batch(self, batch: list[Message], now: float) -> None:
        datagram = Datagram(channel=self.remote_id, messages=tuple(batch))
        self._send_raw(encode_datagram(datagram, self._parameters), now)

    def _send_raw(self, data: bytes, now: float) -> None:
        self._out.append(data)
        self._last_sent = now

    def _complete(self, now: float) -> None:
        self.state = LeecherState.COMPLETE
        self._outstanding.clear()
        self._send_close(now)

    def _fail(self, reason: str, now: float, *, notify: bool = True) -> None:
        was_open = self.remote_id != 0
        self.state = LeecherState.FAILED
        self.failure = reason
        self._outstanding.clear()
        if notify and was_open:
            self._send_close(now)

    def _send_close(self, now: float) -> None:
        closing = Datagram(channel=self.remote_id, messages=(Handshake(source_channel=0),))
        self._send_raw(
            encode_datagram(closing, self._parameters, profile=EncoderProfile.LIBSWIFT), now
        )
