"""Finding the swarm's content description: whom to ask, when to ask the tracker again, when to
give up.

Sans-I/O.  A peer that joins a swarm knows only its swarm ID; the description (chunk hashes,
sizes, or a live stream's key) comes from any peer and is checked against the ID by the I/O
layer before it is reported (:class:`~ppsp.peer.download.events.DescriptionArrived`).  Being
self-certifying, it is asked of up to :data:`DESCRIPTION_FANOUT` peers at once, one per host
first (a host's many PeerIDs, say an eclipse of silent listeners, take one place of the
fan-out until every other host known has had one), then in the order they became known: the
first valid answer wins and the other requests are cancelled
(:class:`~ppsp.peer.download.events.CancelDescription`), so that silent peers cost the search
one first-byte timeout, not one each.  While no answer comes, more peers are asked every
:data:`DESCRIPTION_HEDGE` seconds beyond the fan-out (hedged requests: one, then two, four...),
so that even a list led by many silent peers delays the description by about a second.  A peer
whose description fails the swarm ID is banned,
one that does not answer counts a failure and is benched (its back-off), one that has none yet
(a peer that joined just before) costs nothing.  Peers behind NAT (``behind_nat``: they
registered a REFLEXIVE address) are asked last, and one that cannot be reached over HTTP
costs nothing either: it is reached over PPSPP.  A peer benched or banned is not asked.  When
every peer was asked in vain it waits ``retry`` seconds, asks the tracker for peers (FIND) and
asks again, until ``timeout`` seconds have passed since it began.
"""

from __future__ import annotations

import math

from ppsp.peer.download.events import (
    Action,
    CancelDescription,
    DescriptionArrived,
    DescriptionRefused,
    Done,
    Event,
    Failed,
    FetchDescription,
    FindAnswered,
    FindPeers,
    PeerBanned,
)
from ppsp.peer.download.peers import PeerBook, PeerStanding

__all__ = [
    "DESCRIPTION_FANOUT",
    "DESCRIPTION_HEDGE",
    "DESCRIPTION_RETRY",
    "ByteBudget",
    "DescriptionSearch",
]

DESCRIPTION_RETRY = 0.5
"""Seconds between a round in which no peer gave the description and the next FIND."""

DESCRIPTION_FANOUT = 4
"""Peers asked for the description at once: enough that a few silent peers among the first
known do not delay it, few enough that its bytes are not fetched from the whole swarm."""

DESCRIPTION_HEDGE = 0.5
"""Seconds without an answer after which one more peer is asked beyond the fan-out: a peer
that answers at all answers a description request within a few round trips."""


class ByteBudget:
    """Bytes that several transfers together may hold at once (the descriptions arriving from
    the peers a search asks): each takes the bytes it receives before it keeps them and gives
    them back once it dropped them.  A transfer refused bytes stops (the I/O layer answers
    :class:`~ppsp.peer.download.events.DescriptionRefused` without fault: the peer is asked
    again in a later round, once the others' bytes are given back)."""

    __slots__ = ("held", "limit", "peak")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a byte budget needs limit >= 1")
        self.limit = limit
        self.held = 0
        """Bytes taken and not given back."""
        self.peak = 0
        """The most bytes held at once."""

    def take(self, nbytes: int) -> bool:
        """Hold ``nbytes`` more; False (nothing taken) when that would pass :attr:`limit`."""
        if self.held + nbytes > self.limit:
            return False
        self.held += nbytes
        self.peak = max(self.peak, self.held)
        return True

    def give(self, nbytes: int) -> None:
        """Give back ``nbytes`` taken before."""
        self.held = max(0, self.held - nbytes)


class DescriptionSearch:
    """The search for a swarm's description among ``peers``; gives up ``timeout`` s after ``now``.

    A :class:`~ppsp.peer.download.events.Policy`: it takes description and FIND events and asks
    for :class:`FetchDescription` (up to ``fanout`` peers at a time), :class:`FindPeers` (the
    tracker only) and, at the end, :class:`Done` (:attr:`description` is set, the requests
    still running cancelled with :class:`CancelDescription`) or :class:`Failed`.
    """

    def __init__(
        self,
        peers: PeerBook,
        *,
        now: float,
        timeout: float,
        retry: float = DESCRIPTION_RETRY,
        fanout: int = DESCRIPTION_FANOUT,
        hedge: float = DESCRIPTION_HEDGE,
    ) -> None:
        if fanout < 1 or hedge <= 0:
            raise ValueError("fanout must be >= 1 and hedge positive")
        self.peers = peers
        self.deadline = now + timeout
        self.retry = retry
        self.fanout = fanout
        self.hedge = hedge
        self.description: object | None = None
        """The description found (a ContentDescription or a LiveDescription), once found."""
        self.failure: str | None = None
        """Why the search gave up, once it did."""
        self._asked: set[str] = set()  # peers asked in this round
        self._asking: set[str] = set()  # peers whose answer is awaited
        self._hedged = 0  # peers asked beyond the fan-out in this round
        self._hedges = 0  # hedges in this round (each asks twice as many as the one before)
        self._last_ask = -math.inf  # when a peer was last asked (or a hedge found none)
        self._finding = False
        self._retry_at: float | None = None  # set between a vain round and its FIND
        self._ended = False

    @property
    def finished(self) -> bool:
        """Whether the description was found or the search gave up."""
        return self.description is not None or self.failure is not None

    def handle(self, event: Event, now: float) -> None:
        """Take note of a description answer, a FIND answer or a ban."""
        if isinstance(event, DescriptionArrived):
            self._asking.discard(event.peer)
            if self.description is None and self.failure is None:
                self.description = event.description
        elif isinstance(event, DescriptionRefused):
            self._asking.discard(event.peer)
            standing = self.peers.get(event.peer)
            if standing is not None:
                if event.forged:
                    standing.ban()
                elif event.unreachable and not standing.behind_nat:
                    # A peer behind NAT is reached over PPSPP: its HTTP address finding
                    # nobody is no failure of its own (it is just not asked again this round).
                    standing.fail()
                    standing.stall(now)
        elif isinstance(event, FindAnswered):
            self._finding = False
        elif isinstance(event, PeerBanned):
            standing = self.peers.get(event.peer)
            if standing is not None:
                standing.ban()

    def poll(self, now: float) -> list[Action]:
        """The next request: a peer to ask, a FIND, or the end of the search."""
        if self.description is not None and not self._ended:
            self._ended = True
            # The first valid answer won: the others are not waited for.
            cancels: list[Action] = [CancelDescription(peer) for peer in sorted(self._asking)]
            self._asking.clear()
            return [*cancels, Done()]
        if self.finished or self._finding:
            return []
        if self._retry_at is None:
            limit = self.fanout + self._hedged
            if len(self._asking) >= limit and now >= self._last_ask + self.hedge:
                # No answer for a while: hedge with more peers, twice as many each time.
                limit += 1 << min(self._hedges, 16)
                self._hedges += 1
            asks: list[Action] = []
            for standing in self._candidates(now):
                if len(self._asking) >= limit:
                    break
                peer = standing.peer_id
                self._asked.add(peer)
                self._asking.add(peer)
                asks.append(FetchDescription(peer))
            if asks or self._asking:
                self._hedged = max(self._hedged, len(self._asking) - self.fanout)
                if asks or now >= self._last_ask + self.hedge:
                    self._last_ask = now  # the next hedge is one interval from now
                return asks
            # Every peer that may be asked was asked in vain (or there is none).
            if now > self.deadline:
                if len(self.peers) == 0:
                    self.failure = "no peers in the swarm"
                else:
                    self.failure = "no peer could provide a valid content description"
                self._ended = True
                return [Failed(self.failure)]
            self._retry_at = now + self.retry
        if now < self._retry_at:
            return []
        self._retry_at = None
        self._asked.clear()
        self._hedged = 0
        self._hedges = 0
        self._finding = True
        return [FindPeers(via_peers=False)]

    def _candidates(self, now: float) -> list[PeerStanding]:
        """The peers that may be asked now, in the order to ask them: one of each host not
        asked yet in this round first (in the order they became known), then the others, and
        peers behind NAT last (their HTTP address is likely private)."""
        hosts = {self._host(s) for s in self.peers if s.peer_id in self._asked}
        first: list[PeerStanding] = []
        later: list[PeerStanding] = []
        natted: list[PeerStanding] = []
        for standing in self.peers:
            if (
                standing.banned
                or standing.pex  # a PEX candidate speaks PPSPP only: no description
                or standing.peer_id in self._asked
                or standing.benched(now)
            ):
                continue
            host = self._host(standing)
            if standing.behind_nat:
                natted.append(standing)
            elif host in hosts:
                later.append(standing)
            else:
                hosts.add(host)
                first.append(standing)
        return first + later + natted

    @staticmethod
    def _host(standing: PeerStanding) -> str:
        """The host a peer is reached at (its PeerID when not known: a host of its own)."""
        return standing.host if standing.host is not None else f"peer:{standing.peer_id}"

    def next_deadline(self) -> float | None:
        """When the next FIND is due, between rounds; otherwise only events move the search."""
        if self.description is not None and not self._ended:
            return -math.inf  # the search's end is due at once
        if self.finished or self._finding:
            return None
        if self._asking:
            # The next hedge, while a peer is left to ask (benched ones are checked then).
            waiting = any(not s.banned and s.peer_id not in self._asked for s in self.peers)
            return self._last_ask + self.hedge if waiting else None
        return self._retry_at
