"""One PPSPP channel as the seeding side keeps it: its state table, requests, what the peer
holds, and the DATA in flight.

A channel is opened by the peer's HANDSHAKE on channel 0 (RFC 7574 section 3.1.1) and is
*half-open* until a datagram arrives on the channel ID we chose (step 7: only then may heavy
payload, DATA, flow).  :data:`TRANSITIONS` lists every event a state accepts; an event not in
it is a protocol error: the datagram's remaining messages are dropped and the channel is closed
(section 3: "Invalid messages are discarded, and further communication with the peer SHOULD be
stopped").

What the peer holds is kept as the chunk ranges it acknowledged (ACK or HAVE), at most
``max_ranges`` disjoint ones (a :class:`~.verify.ChunkRanges`): never state per chunk or per
tree node, so that a channel costs the same whatever the content's size, and a HAVE of a range
held already changes nothing.  The peer has verified the hash of every tree node above a chunk
it acknowledged: a node's hash is known to it when the node's chunks include one it holds.
That decides which uncle hashes a DATA needs (section 5.3) and which requested chunks need not
be sent at all.  A range past the bound is not kept: the peer may then be sent hashes it has,
never denied one it lacks.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any

from ppsp.codecs.ppspp import EncoderProfile
from ppsp.peer.ppspp.content import ServedContent, bin_range
from ppsp.peer.ppspp.ledbat import Ledbat, LedbatParameters
from ppsp.peer.ppspp.verify import ChunkRanges
from ppsp.wire.ppspp import (
    Ack,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkRange,
    Data,
    Handshake,
    Have,
    Integrity,
    Message,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    SignedIntegrity,
    Unchoke,
)

__all__ = [
    "TRANSITIONS",
    "Address",
    "Channel",
    "ChannelState",
    "Event",
    "aligned_bins",
    "event_of",
]

Address = tuple[Any, ...]
"""A UDP address as the socket layer gives it: ``(host, port)`` (or IPv6's four fields)."""


class ChannelState(Enum):
    """Where a channel stands."""

    HALF_OPEN = "half-open"
    """We answered the peer's handshake; nothing has come on our channel ID yet."""
    ESTABLISHED = "established"
    """The peer echoed our channel ID: the three-way handshake is complete."""
    CLOSED = "closed"
    """Closed (by either side, a protocol error or a timeout); forgotten right after."""


class Event(Enum):
    """What can happen to a channel: one per message kind, and the datagram-level ones."""

    HANDSHAKE_AGAIN = "handshake again"
    """The peer's opening handshake again (on channel 0, same source channel: ours was lost)."""
    CONFIRM = "confirm"
    """A datagram on our channel ID (it may be a keep-alive): proof the peer heard us."""
    HANDSHAKE = "handshake"
    """A HANDSHAKE on our channel with the peer's channel ID again (a repeat, no change)."""
    CLOSE = "close"
    """A HANDSHAKE with source channel 0: the peer closes the channel."""
    HAVE = "HAVE"
    ACK = "ACK"
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"
    CHOKE = "CHOKE"
    UNCHOKE = "UNCHOKE"
    PEX_REQ = "PEX_REQ"
    DATA = "DATA"
    INTEGRITY = "INTEGRITY"
    SIGNED_INTEGRITY = "SIGNED_INTEGRITY"
    PEX_RES = "PEX_RES"
    HANDSHAKE_OTHER = "handshake with another channel ID"


_H, _E, _C = ChannelState.HALF_OPEN, ChannelState.ESTABLISHED, ChannelState.CLOSED

TRANSITIONS: dict[tuple[ChannelState, Event], ChannelState] = {
    # The opening datagram may carry minor payload besides the HANDSHAKE (section 3.1.1).
    (_H, Event.HANDSHAKE_AGAIN): _H,
    (_H, Event.HAVE): _H,
    (_H, Event.REQUEST): _H,  # kept, answered once the channel is established
    (_H, Event.CONFIRM): _E,
    (_H, Event.CLOSE): _C,
    (_E, Event.HANDSHAKE_AGAIN): _E,
    (_E, Event.CONFIRM): _E,
    (_E, Event.HANDSHAKE): _E,
    (_E, Event.CLOSE): _C,
    (_E, Event.HAVE): _E,
    (_E, Event.ACK): _E,
    (_E, Event.REQUEST): _E,
    (_E, Event.CANCEL): _E,
    (_E, Event.CHOKE): _E,
    (_E, Event.UNCHOKE): _E,
    (_E, Event.PEX_REQ): _E,  # answered at a bounded rate (Seeder._answer_pex)
    # Never asked for (the seeding side sends no PEX_REQ): ignored and counted.  libswift
    # sends them unasked ("reverse PEX": the asker's address to the peer it named).
    (_E, Event.PEX_RES): _E,
}
"""Every (state, event) the seeding side accepts, with the state it leads to.

Not in it, hence protocol errors: DATA, INTEGRITY and SIGNED_INTEGRITY (a seeder asked nobody
for chunks), a HANDSHAKE naming another channel ID, and any message in a half-open channel's
opening datagram but HAVE and REQUEST.  Whether we choke the peer (section 3.9) is the
channel's :attr:`Channel.choking`, beside the table: it changes what we send, not what the
peer may send (a REQUEST crossing our CHOKE is dropped and counted, not an error)."""


def event_of(message: Message, remote_id: int) -> Event:
    """The channel event a message is, on a channel whose peer's channel ID is ``remote_id``."""
    if isinstance(message, Handshake):
        if message.source_channel == 0:
            return Event.CLOSE
        if message.source_channel == remote_id:
            return Event.HANDSHAKE
        return Event.HANDSHAKE_OTHER
    return _EVENTS[type(message)]


_EVENTS: dict[type, Event] = {
    Have: Event.HAVE,
    Ack: Event.ACK,
    Request: Event.REQUEST,
    Cancel: Event.CANCEL,
    Choke: Event.CHOKE,
    Unchoke: Event.UNCHOKE,
    PexReq: Event.PEX_REQ,
    Data: Event.DATA,
    Integrity: Event.INTEGRITY,
    SignedIntegrity: Event.SIGNED_INTEGRITY,
    PexResV4: Event.PEX_RES,
    PexResV6: Event.PEX_RES,
    PexResCert: Event.PEX_RES,
}


def aligned_bins(chunks: ChunkRange) -> list[int]:
    """The largest aligned subtrees covering ``chunks`` exactly, as bin numbers, left to
    right (at most about two per level)."""
    result: list[int] = []
    start, end = chunks.start, chunks.end
    while start <= end:
        level = 0
        # Grow while the subtree stays aligned at ``start`` and inside the range.
        while start % (2 << level) == 0 and start + (2 << level) - 1 <= end:
            level += 1
        result.append((start >> level) * (2 << level) + (1 << level) - 1)
        start += 1 << level
    return result


class Channel:
    """One channel's state: addresses, IDs, negotiated parameters, requests, flight."""

    __slots__ = (
        "_held",
        "acked_any",
        "address",
        "announced",
        "answered_at",
        "answered_haves",
        "choking",
        "choking_until",
        "content",
        "created",
        "flight",
        "host",
        "last_asked",
        "last_received",
        "last_sent",
        "ledbat",
        "local_id",
        "parameters",
        "peer_choked_us",
        "pex_answered",
        "profile",
        "remote_id",
        "requested",
        "requests",
        "state",
        "uses_bins",
    )

    def __init__(
        self,
        *,
        address: Address,
        local_id: int,
        remote_id: int,
        content: ServedContent,
        parameters: ChannelParameters,
        profile: EncoderProfile,
        now: float,
        ledbat: LedbatParameters | None = None,
        host: str = "",
        max_ranges: int = 1024,
    ) -> None:
        self.address = address
        self.host = host
        """The address's host (:func:`.admission.host_of`): what the per-host bound counts."""
        self.local_id = local_id
        """Our channel ID: the peer prefixes its datagrams with it."""
        self.remote_id = remote_id
        """The peer's channel ID: we prefix our datagrams with it."""
        self.content = content
        self.parameters = parameters
        self.uses_bins = parameters.chunk_addressing.is_bin
        self.profile = profile
        self.state = ChannelState.HALF_OPEN
        self.created = now
        self.last_received = now
        self.last_sent = now
        self.requests: deque[ChunkRange] = deque()
        """Requested chunks not yet sent, in the order asked (section 3.7), clipped to the
        content."""
        self.flight: dict[int, float] = {}
        """DATA sent and not acknowledged: chunk -> when sent (oldest first)."""
        self.ledbat = Ledbat(ledbat)
        self.acked_any = False
        self.announced = 0
        """The seeder's count of HAVE announcements for the content when it answered (a
        partial content's chunks newly held since are announced once the channel is
        established)."""
        self.peer_choked_us = False
        self.choking = False
        """Whether we choke the peer (we sent CHOKE, section 3.9): nothing is served to it and
        its REQUESTs are dropped until we send UNCHOKE, at :attr:`choking_until` at the
        earliest."""
        self.choking_until = 0.0
        self.pex_answered = float("-inf")
        """When we last answered the peer's PEX_REQ (answers are rate-limited)."""
        self.answered_at = now
        """When we last answered the peer's opening handshake (answers again are
        rate-limited)."""
        self.answered_haves = 0
        """How many HAVEs of :attr:`announced`'s ranges the handshake's answer carried (the
        rest go once the channel is established)."""
        self.requested = False
        """Whether the peer has sent a REQUEST (a channel that never does is closed)."""
        self.last_asked = now
        """When the peer last sent a REQUEST or acknowledged DATA in flight (its channel's
        establishment, or opening, before that): what eviction calls idle."""
        self._held = ChunkRanges(max_ranges)

    # --- what the peer holds ------------------------------------------------------------

    def knows(self, number: int) -> bool:
        """True when the peer has verified the hash of the node at bin ``number``: it
        acknowledged one of the node's chunks."""
        chunks = bin_range(number)
        below, above = self._held.around(chunks.start)
        return below >= chunks.start or above <= chunks.end

    def has_chunk(self, index: int) -> bool:
        """True when the peer acknowledged chunk ``index``."""
        return self._held.covers(index, index)

    def holds_all(self, chunks: ChunkRange) -> bool:
        """True when the peer acknowledged every chunk of ``chunks``."""
        return self._held.covers(chunks.start, chunks.end)

    def mark_held(self, chunks: ChunkRange) -> bool:
        """The peer acknowledged ``chunks`` (ACK or HAVE): it verified them and every node
        above them (clipped to the content).  False when the range is not kept (it would
        pass the bound on disjoint ranges)."""
        last = self.content.chunk_count - 1
        if chunks.start > last:
            return True
        self.acked_any = True
        if chunks.end > last:
            chunks = ChunkRange(start=chunks.start, end=last)
        return self._held.add(chunks)

    def uncles_needed(self, index: int) -> list[int]:
        """The bins of the hashes the peer lacks to verify chunk ``index``, top-down.

        Walking up from the chunk towards its peak, a sibling is needed while the parent's
        hash is unknown to the peer (RFC 7574 section 5.3; libswift's rule).  The parent's
        hash is known when one of its chunks is held: when the held chunk nearest to
        ``index`` below or above it lies under the parent.  The peaks come separately, until
        the peer acknowledges a chunk (section 5.6.2).
        """
        peak = self.content.peak_for(index)
        below, above = self._held.around(index)
        # bin_parent and bin_sibling inline, the level counted on the way up.
        node, level, needed = 2 * index, 0, []
        while node != peak:
            first = (index >> (level + 1)) << (level + 1)  # the parent's first chunk
            if below >= first or above < first + (2 << level):
                break
            needed.append(node ^ (2 << level))
            node = (node & ~(2 << level)) | (1 << level)
            level += 1
        needed.reverse()
        return needed

    # --- requests -------------------------------------------------------------------------

    def add_request(self, chunks: ChunkRange, limit: int) -> bool:
        """Queue ``chunks`` (already clipped); False when ``limit`` ranges are queued."""
        if self.requests:
            tail = self.requests[-1]
            if tail.start <= chunks.start <= tail.end + 1:
                if chunks.end > tail.end:
                    self.requests[-1] = ChunkRange(start=tail.start, end=chunks.end)
                return True
        if len(self.requests) >= limit:
            return False
        self.requests.append(chunks)
        return True

    def cancel(self, chunks: ChunkRange) -> None:
        """Forget queued requests for ``chunks`` (CANCEL, or a HAVE: section 3.8)."""
        start, end = chunks.start, chunks.end
        if not any(q.start <= end and q.end >= start for q in self.requests):
            return  # nothing queued there (the common case: a HAVE or ACK of what was sent)
        kept: deque[ChunkRange] = deque()
        for queued in self.requests:
            if queued.end < chunks.start or queued.start > chunks.end:
                kept.append(queued)
                continue
            if queued.start < chunks.start:
                kept.append(ChunkRange(start=queued.start, end=chunks.start - 1))
            if queued.end > chunks.end:
                kept.append(ChunkRange(start=chunks.end + 1, end=queued.end))
        self.requests = kept

    def skip_through(self, first: int, last: int) -> int:
        """Drop the head of the queue when it starts inside chunks ``first`` to ``last``
        (not held: right after :meth:`next_chunk` gave one of them), up to ``last``; the
        number of chunks dropped."""
        if not self.requests:
            return 0
        head = self.requests[0]
        if not first <= head.start <= last:
            return 0
        if head.end <= last:
            self.requests.popleft()
            return head.count
        self.requests[0] = ChunkRange(start=last + 1, end=head.end)
        return last + 1 - head.start

    def requeue(self, index: int) -> None:
        """Put a lost chunk back at the head of the queue (it goes out next)."""
        self.requests.appendleft(ChunkRange(start=index, end=index))

    def next_chunk(self) -> int | None:
        """The next requested chunk to send, skipping those held or in flight; None when
        nothing is left."""
        while self.requests:
            head = self.requests[0]
            index = head.start
            if head.start == head.end:
                self.requests.popleft()
            else:
                self.requests[0] = ChunkRange(start=head.start + 1, end=head.end)
            if not self.has_chunk(index) and index not in self.flight:
                return index
        return None

    @property
    def wants_data(self) -> bool:
        """True when requests are queued."""
        return bool(self.requests)
