"""Fair serving: a peer's upload slots shared per requesting host, and bounded upload accounting.

A peer serving chunks decides, for every chunk request, whether it starts now, waits its turn
or is refused (:class:`FairUploads`); the I/O layer (``ppsp.peer.net.endpoint``) applies the
decision and tells the policy when a chunk is done.  Requests are grouped by *host*: the
:func:`~ppsp.core.hosts.host_key` of the connection's source address (an IPv4 address, an IPv6
/64), never anything the request says about itself, so that one host opening many connections
or using many PeerIDs counts once.

The rule (docs/PROTOCOL.md, "Fair serving"):

- **Active hosts.**  A host is active while it has chunks in flight or requests waiting, and
  for :data:`LINGER_S` after its last chunk finished (a downloader asks for its next chunk a
  moment after the last one arrived: without the linger, every such gap would hand the whole
  upload back to a flooding host, which keeps dozens of requests waiting).
- **Slots.**  Under an upload cap, ``slots`` chunks are sent at once (the cap's rate is shared
  by the chunks in flight, so slots are the rate's shares too).  Without a cap a host alone may
  have any number in flight, and ``slots`` only sizes the share below.
- **Shares.**  While another host is active, a host has at most ``quota = max(1, floor(share
  x slots))`` chunks in flight; and while an active host waits for nothing (it has in flight
  what it asked for, or lingers), no more than the most such a host has in flight (but
  :data:`MIN_SLOTS` always): without a cap, bytes are shared per chunk in flight, so a flooding
  host held to the honest host's count gets no more bytes than it, however many connections
  it opened.  Its further requests wait.  When nobody else is active, one host may use every
  slot (work-conserving).
- **Turns.**  A slot that frees goes to a waiting host that may start one: a host whose next
  request is a first one before a host whose next request is a repeat (below), then (spread
  requests) the one whose next chunk has fewest copies started, then the one with fewest
  chunks in flight, then the one served least recently; within a host, first requests before
  repeats, then fewest copies, then the request of the requester holding fewest chunks first
  (the ``priority`` the caller passes), then in arrival order.
- **First copies.**  A request marked ``spread`` (a live source's chunks: until a chunk's first
  copy leaves the source, no relay can serve it) ranks by the copies of its chunk this peer
  started so far, fewest first, before the host's chunks in flight and turn: a new chunk's
  first copy goes out before further copies of older ones, whoever asks for those.
- **Repeats.**  A request for a chunk this host was sent in the last :data:`REMEMBERED_CHUNKS`
  chunks it got is a *repeat*: a downloader or a viewer never needs a chunk twice (several
  peers behind one NAT do, and are served, after the others), while a host pulling the same
  newest chunks over and over (a flood) asks for little else.  Repeats wait behind every first
  request of every host, so that such a host takes the slots no one else wants.
- **Bounds.**  At most ``queue_per_host`` requests of one host and ``max_waiting`` in all wait;
  at most ``max_hosts`` hosts are active at once; any request beyond is refused (503 with
  ``Retry-After``, :data:`RETRY_AFTER_S`).

Sans-I/O: time is passed in (``now``, seconds on any monotonic clock), no sockets, no event
loop; every decision is a return value.  A host that waits always has a chunk in flight (it
waits only at a bound its own chunks or the other hosts' hold), so a later :meth:`release`
always comes to start it: the caller needs no timer.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass

from ppsp.core.hosts import canonical_host, host_key

__all__ = [
    "CAPPED_SLOTS",
    "DEFAULT_HOST_SHARE",
    "LINGER_S",
    "MAX_HOSTS",
    "MAX_PEER_IDS",
    "MAX_WAITING",
    "MIN_SLOTS",
    "PEER_IDS_PER_HOST",
    "QUEUE_PER_HOST",
    "REMEMBERED_CHUNKS",
    "REMEMBERED_COPIES",
    "RETRY_AFTER_S",
    "UNCAPPED_SLOTS",
    "Decision",
    "FairUploads",
    "UploadLedger",
    "Verdict",
    "requester_host",
]

DEFAULT_HOST_SHARE = 0.5
"""The most of a peer's upload slots (and so of its rate) one host gets while other hosts are
active: half, so that two hosts split a seeder evenly and a flooding host cannot take
more than half from anyone, however many connections it opens."""

CAPPED_SLOTS = 2
"""Chunks sent at once under an upload cap; further requests wait their turn.

Sharing a capped upload among every requester at once would finish all their chunks late
together; served in turn, each chunk completes early and its receiver can pass it on sooner.
"""

UNCAPPED_SLOTS = 16
"""Without an upload cap, the slots that the share is a fraction of: at the default share a
host keeps at most 8 chunks in flight while another host is active (a downloader asks one peer
for 2 to 16 at once, ``peer/download/picker.py``)."""

MIN_SLOTS = 2
"""Chunks in flight a host may always have (within its quota), whatever the others have: a
downloader asks a peer for two at once to begin with."""

LINGER_S = 0.25
"""Seconds a host stays active after its last chunk finished (see the module docstring)."""

QUEUE_PER_HOST = 256
"""Requests of one host that may wait at once; beyond, 503.  Peers side by side behind one
address (a NAT, a lab on 127.0.0.1) share it, each asking for a few chunks at once."""

MAX_WAITING = 1024
"""Requests that may wait at once, all hosts together; beyond, 503."""

MAX_HOSTS = 1024
"""Hosts active at once; a request of a further host is refused (503)."""

REMEMBERED_CHUNKS = 256
"""Chunks remembered per active host (the last ones started) to tell a repeat request."""

REMEMBERED_COPIES = 1024
"""Chunks whose copies started are counted (the last ones started, all hosts together): a
spread request for a chunk beyond them ranks as a first copy."""

RETRY_AFTER_S = 1
"""The ``Retry-After`` of a refused request, in seconds."""

PEER_IDS_PER_HOST = 8
"""PeerIDs of one host whose uploads are counted one by one (``uploaded_to``)."""

MAX_PEER_IDS = 4096
"""PeerIDs counted one by one in all; bytes to further ones count as unattributed."""

UNKNOWN_HOST = "?"
"""The host of a request whose source address is not an IP address (all such share one)."""


def requester_host(address: str | None) -> str:
    """The host key of a connection's source address (:data:`UNKNOWN_HOST` if not an IP)."""
    canonical = canonical_host(address)
    return UNKNOWN_HOST if canonical is None else host_key(canonical)


class Verdict(enum.Enum):
    """What becomes of a chunk request."""

    START = "start"
    """Send it now."""
    WAIT = "wait"
    """Wait until a later decision or :meth:`FairUploads.release` names its ticket."""
    REFUSE = "refuse"
    """Answer 503 with ``Retry-After`` (a bound is reached)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a chunk request: its verdict and its ticket (0 when refused)."""

    verdict: Verdict
    ticket: int = 0
    retry_after: int = 0
    """Seconds a refused requester should wait before asking again."""
    wake: tuple[int, ...] = ()
    """Waiting tickets that start now too (this request raised what other hosts may have)."""


class _Host:
    """One active host."""

    __slots__ = ("idle_until", "in_flight", "key", "last_turn", "sent", "waiting")

    def __init__(self, key: str) -> None:
        self.key = key
        self.in_flight = 0
        self.waiting: list[tuple[bool, int, int]] = []  # heap of (repeat, priority, ticket)
        self.last_turn = 0  # the turn counter when a chunk of this host last started
        self.idle_until = 0.0  # with nothing in flight nor waiting: active until then
        self.sent: OrderedDict[Hashable, None] = OrderedDict()  # the last chunks started

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or bool(self.waiting)


class FairUploads:
    """Which chunk request starts, waits or is refused, host by host (see the module docstring).

    The caller asks with :meth:`request` (the connection's source address, the requester's
    priority: chunks it holds, and the time), starts the chunk at once on
    :attr:`Verdict.START`, waits on :attr:`Verdict.WAIT` until a later decision's
    :attr:`Decision.wake` or :meth:`release` names its ticket, answers 503 on
    :attr:`Verdict.REFUSE`, and calls :meth:`release` exactly once per ticket when the chunk is
    sent, failed, or the waiting requester gave up; every ticket either names then starts.
    """

    def __init__(
        self,
        *,
        capped: bool,
        share: float = DEFAULT_HOST_SHARE,
        slots: int | None = None,
        linger: float = LINGER_S,
        queue_per_host: int = QUEUE_PER_HOST,
        max_waiting: int = MAX_WAITING,
        max_hosts: int = MAX_HOSTS,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("the host share must be in (0, 1]")
        if min(queue_per_host, max_waiting, max_hosts) < 0 or linger < 0:
            raise ValueError("bounds and the linger must be >= 0")
        self.capped = capped
        self.share = share
        self.slots = slots if slots is not None else (CAPPED_SLOTS if capped else UNCAPPED_SLOTS)
        if self.slots < 1:
            raise ValueError("slots must be >= 1")
        # The small epsilon keeps 0.5 x 16 from rounding down to 7 through float error.
        self.quota = max(1, math.floor(share * self.slots + 1e-9))
        """The most chunks one host may have in flight while another host is active."""
        self.linger = linger
        self.queue_per_host = queue_per_host
        self.max_waiting = max_waiting
        self.max_hosts = max_hosts
        self.in_flight = 0
        """Chunks in flight, all hosts together."""
        self.waiting = 0
        """Requests waiting, all hosts together."""
        self.refused = 0
        """Requests refused so far."""
        self.repeats = 0
        """Requests for a chunk their host was sent already (served after first requests)."""
        self._hosts: dict[str, _Host] = {}  # the active hosts
        self._queued: dict[str, _Host] = {}  # the hosts with requests waiting
        self._idle: deque[tuple[float, str]] = deque()  # (active until, host), in time order
        self._tickets: dict[int, tuple[_Host, bool]] = {}  # ticket -> (host, started)
        self._next_ticket = 1
        self._turns = 0
        self._spread: dict[int, Hashable] = {}  # waiting spread ticket -> its chunk
        self._copies: OrderedDict[Hashable, int] = OrderedDict()  # chunk -> copies started

    @property
    def hosts(self) -> int:
        """Active hosts (lingering ones included)."""
        return len(self._hosts)

    def in_flight_of(self, address: str) -> int:
        """Chunks in flight to the host of ``address``."""
        host = self._hosts.get(requester_host(address))
        return 0 if host is None else host.in_flight

    def waiting_of(self, address: str) -> int:
        """Requests of the host of ``address`` waiting."""
        host = self._hosts.get(requester_host(address))
        return 0 if host is None else len(host.waiting)

    def request(
        self,
        address: str | None,
        priority: int,
        now: float,
        chunk: Hashable | None = None,
        *,
        spread: bool = False,
    ) -> Decision:
        """A chunk request from ``address`` (the connection's source) at ``now``: start, wait
        or refuse.

        ``priority`` orders the requests of one host (lower first: the chunks its requester
        holds, so that a late joiner catches up).  ``chunk`` names the chunk asked for (any
        hashable key: swarm, representation, index), to tell a repeat (module docstring).
        With ``spread`` (and a ``chunk``), the request ranks by the copies of its chunk
        started so far, fewest first (the module docstring's "First copies").
        """
        woken = self._grant() if self._expire(now) else []
        key = requester_host(address)
        host = self._hosts.get(key)
        if host is None:
            if len(self._hosts) >= self.max_hosts:
                return self._refuse(woken)
            host = self._hosts[key] = _Host(key)
        ticket = self._next_ticket
        self._next_ticket += 1
        repeat = chunk is not None and chunk in host.sent
        if chunk is not None:
            host.sent[chunk] = None  # asked now: a later request for it is a repeat
            host.sent.move_to_end(chunk)
            while len(host.sent) > REMEMBERED_CHUNKS:
                host.sent.popitem(last=False)
        if repeat:
            self.repeats += 1
        # A host's own waiting requests go first: a new one never overtakes them; and a repeat
        # starts at once only when no host has anything waiting.
        spread_chunk = chunk if spread else None
        if not host.waiting and (not repeat or not self._queued) and self._may_start(host):
            self._start(host, ticket, spread_chunk)
            # One more chunk in flight here may let other hosts have one more too.
            return Decision(Verdict.START, ticket, wake=(*woken, *self._grant()))
        if len(host.waiting) >= self.queue_per_host or self.waiting >= self.max_waiting:
            if not host.busy and host.idle_until == 0.0:
                del self._hosts[key]  # new, and refused: it was never active
            return self._refuse(woken)
        heapq.heappush(host.waiting, (repeat, priority, ticket))
        if spread_chunk is not None:
            self._spread[ticket] = spread_chunk
        self._queued[key] = host
        self._tickets[ticket] = (host, False)
        self.waiting += 1
        return Decision(Verdict.WAIT, ticket, wake=tuple(woken))

    def release(self, ticket: int, now: float) -> list[int]:
        """Ticket ``ticket`` is done at ``now`` (sent, failed or given up); the tickets to start.

        A ticket not known (released already, or refused) changes nothing.
        """
        self._expire(now)
        entry = self._tickets.pop(ticket, None)
        if entry is None:
            return self._grant()
        host, started = entry
        if started:
            host.in_flight -= 1
            self.in_flight -= 1
        else:
            host.waiting = [item for item in host.waiting if item[2] != ticket]
            heapq.heapify(host.waiting)
            self._spread.pop(ticket, None)
            self.waiting -= 1
            if not host.waiting:
                self._queued.pop(host.key, None)
        self._idle_since(host, now)
        return self._grant()

    def _limit(self, host: _Host) -> int | None:
        """The most chunks ``host`` may have in flight now (None: no bound of its own).

        Alone, none.  Beside hosts that all have requests waiting (they want as much as they
        can get, and the turns keep them level), its quota.  Beside a host that waits for
        nothing (it has what it asked for in flight, or lingers), no more than the most such a
        host has in flight (but :data:`MIN_SLOTS` always): without a cap, bytes go per chunk
        in flight, and a host asking for few chunks at a time still gets as many bytes as any
        other.
        """
        if len(self._hosts) == 1:
            return None  # nobody else is active: work-conserving
        satisfied = [o.in_flight for o in self._hosts.values() if o is not host and not o.waiting]
        if not satisfied:
            return self.quota
        return min(self.quota, max(MIN_SLOTS, *satisfied))

    def _may_start(self, host: _Host) -> bool:
        """Whether a chunk of ``host`` (an active host) may start now."""
        if self.capped and self.in_flight >= self.slots:
            return False
        limit = self._limit(host)
        return limit is None or host.in_flight < limit

    def _start(self, host: _Host, ticket: int, spread_chunk: Hashable | None = None) -> None:
        host.in_flight += 1
        self.in_flight += 1
        self._turns += 1
        host.last_turn = self._turns
        self._tickets[ticket] = (host, True)
        if spread_chunk is not None:
            copies = self._copies
            copies[spread_chunk] = copies.get(spread_chunk, 0) + 1
            copies.move_to_end(spread_chunk)
            if len(copies) > REMEMBERED_COPIES:
                copies.popitem(last=False)

    def copies(self, chunk: Hashable) -> int:
        """Copies of ``chunk`` started so far by spread requests (0 once forgotten)."""
        return self._copies.get(chunk, 0)

    def _copies_of(self, ticket: int) -> int:
        """Copies started of the chunk of waiting ticket ``ticket`` (0 unless spread)."""
        chunk = self._spread.get(ticket)
        return 0 if chunk is None else self._copies.get(chunk, 0)

    def _next_of(self, host: _Host) -> tuple[bool, int, int]:
        """The waiting request of ``host`` that goes next: first requests before repeats,
        then (spread requests) fewest copies of the chunk, then priority, then arrival."""
        if not self._spread:
            return host.waiting[0]
        copies_of = self._copies_of
        return min(host.waiting, key=lambda item: (item[0], copies_of(item[2]), item[1:]))

    def _grant(self) -> list[int]:
        """Start waiting requests while one may start: a first request before a repeat, then
        the fewest copies of the chunk (spread requests), then the host with fewest in
        flight, then the one served least recently."""
        started: list[int] = []
        while self._queued:
            best: _Host | None = None
            best_item: tuple[bool, int, int] | None = None
            best_key: tuple[bool, int, int, int] | None = None
            for host in self._queued.values():
                if not self._may_start(host):
                    continue
                item = self._next_of(host)
                key = (item[0], self._copies_of(item[2]), host.in_flight, host.last_turn)
                if best_key is None or key < best_key:
                    best, best_item, best_key = host, item, key
            if best is None or best_item is None:
                break
            if best_item is best.waiting[0]:
                heapq.heappop(best.waiting)
            else:
                best.waiting.remove(best_item)
                heapq.heapify(best.waiting)
            ticket = best_item[2]
            self.waiting -= 1
            if not best.waiting:
                del self._queued[best.key]
            self._start(best, ticket, self._spread.pop(ticket, None))
            started.append(ticket)
        return started

    def _idle_since(self, host: _Host, now: float) -> None:
        """``host`` may have gone idle at ``now``: it stays active :attr:`linger` seconds."""
        if not host.busy:
            host.idle_until = now + self.linger
            self._idle.append((host.idle_until, host.key))
            if len(self._idle) > 2 * self.max_hosts:
                # Entries of hosts busy again (or idle again later) are stale: keep the rest.
                idle = sorted((h.idle_until, h.key) for h in self._hosts.values() if not h.busy)
                self._idle = deque(idle)

    def _expire(self, now: float) -> bool:
        """Forget the hosts idle for longer than :attr:`linger`; whether any was."""
        forgot = False
        while self._idle and self._idle[0][0] <= now:
            until, key = self._idle.popleft()
            host = self._hosts.get(key)
            # Only if still idle since then (not busy again, nor idle again later).
            if host is not None and not host.busy and host.idle_until == until:
                del self._hosts[key]
                forgot = True
        return forgot

    def _refuse(self, woken: list[int]) -> Decision:
        self.refused += 1
        return Decision(Verdict.REFUSE, retry_after=RETRY_AFTER_S, wake=tuple(woken))


class UploadLedger:
    """Bytes uploaded to each requesting PeerID, with bounded state.

    The PeerID is what a request's header says (unchecked), so it is counted only under bounds:
    at most ``per_host`` PeerIDs per host and ``total`` in all, and a PeerID only for the host
    it was first counted from.  Bytes beyond those bounds count in :attr:`unattributed`; every
    byte counts in :attr:`total_bytes`.
    """

    def __init__(self, *, per_host: int = PEER_IDS_PER_HOST, total: int = MAX_PEER_IDS) -> None:
        self.per_host = per_host
        self.total = total
        self.by_peer: dict[str, int] = {}
        """Bytes uploaded to each PeerID counted one by one."""
        self.unattributed = 0
        """Bytes uploaded to requesters beyond the bounds (or naming another host's PeerID)."""
        self.total_bytes = 0
        self._host_of: dict[str, str] = {}  # PeerID -> the host it is counted for
        self._peer_ids_of: dict[str, int] = {}  # host -> PeerIDs counted for it

    def count(self, peer_id: str, address: str | None, nbytes: int) -> None:
        """``nbytes`` went to the requester calling itself ``peer_id`` at ``address``."""
        self.total_bytes += nbytes
        host = requester_host(address)
        known = self._host_of.get(peer_id)
        if known is None:
            if len(self._host_of) >= self.total or self._peer_ids_of.get(host, 0) >= self.per_host:
                self.unattributed += nbytes
                return
            self._host_of[peer_id] = known = host
            self._peer_ids_of[host] = self._peer_ids_of.get(host, 0) + 1
        if known != host:
            self.unattributed += nbytes
            return
        self.by_peer[peer_id] = self.by_peer.get(peer_id, 0) + nbytes

    def count_unattributed(self, nbytes: int) -> None:
        """``nbytes`` went to a requester with no PeerID known (a PPSPP channel from an
        address no tracker answer named)."""
        self.total_bytes += nbytes
        self.unattributed += nbytes
