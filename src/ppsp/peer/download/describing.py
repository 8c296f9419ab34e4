"""Finding the swarm's content description: whom to ask, when to ask the tracker again, when to
give up.

Sans-I/O.  A peer that joins a swarm knows only its swarm ID; the description (chunk hashes,
sizes, or a live stream's key) comes from any peer and is checked against the ID by the I/O
layer before it is reported (:class:`~ppsp.peer.download.events.DescriptionArrived`).  The
search asks the known peers one at a time, in the order they became known; a peer whose
description fails the swarm ID is banned, one that does not answer counts a failure, one that
has none yet (a peer that joined just before) costs nothing.  When
every peer was asked in vain it waits ``retry`` seconds, asks the tracker for peers (FIND) and
asks again, until ``timeout`` seconds have passed since it began.
"""

from __future__ import annotations

import math

from ppsp.peer.download.events import (
    Action,
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
from ppsp.peer.download.peers import PeerBook

__all__ = ["DESCRIPTION_RETRY", "DescriptionSearch"]

DESCRIPTION_RETRY = 0.5
"""Seconds between a round in which no peer gave the description and the next FIND."""


class DescriptionSearch:
    """The search for a swarm's description among ``peers``; gives up ``timeout`` s after ``now``.

    A :class:`~ppsp.peer.download.events.Policy`: it takes description and FIND events and asks
    for :class:`FetchDescription` (one peer at a time), :class:`FindPeers` (the tracker only)
    and, at the end, :class:`Done` (:attr:`description` is set) or :class:`Failed`.
    """

    def __init__(
        self, peers: PeerBook, *, now: float, timeout: float, retry: float = DESCRIPTION_RETRY
    ) -> None:
        self.peers = peers
        self.deadline = now + timeout
        self.retry = retry
        self.description: object | None = None
        """The description found (a ContentDescription or a LiveDescription), once found."""
        self.failure: str | None = None
        """Why the search gave up, once it did."""
        self._asked: set[str] = set()  # peers asked in this round
        self._asking: str | None = None
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
            if event.peer == self._asking:
                self._asking = None
            if self.description is None and self.failure is None:
                self.description = event.description
        elif isinstance(event, DescriptionRefused):
            if event.peer == self._asking:
                self._asking = None
            standing = self.peers.get(event.peer)
            if standing is not None:
                if event.forged:
                    standing.ban()
                elif event.unreachable:
                    standing.fail()
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
            return [Done()]
        if self.finished or self._asking is not None or self._finding:
            return []
        if self._retry_at is None:
            for standing in self.peers:
                if not standing.banned and standing.peer_id not in self._asked:
                    self._asked.add(standing.peer_id)
                    self._asking = standing.peer_id
                    return [FetchDescription(standing.peer_id)]
            # Every peer was asked in vain (or there is none).
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
        self._finding = True
        return [FindPeers(via_peers=False)]

    def next_deadline(self) -> float | None:
        """When the next FIND is due, between rounds; otherwise only events move the search."""
        if self.description is not None and not self._ended:
            return -math.inf  # the search's end is due at once
        if self.finished or self._asking is not None or self._finding:
            return None
        return self._retry_at
