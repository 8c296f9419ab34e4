"""Hole punching between peers behind NAT, sans-I/O: which addresses to send to, and when.

Two peers behind NATs reach each other over UDP only when each has sent a datagram towards
the other's mapping (its REFLEXIVE address) from the socket the other will talk to: each NAT
then takes the other's datagrams as answers.  Both sides here work on the peers' PPSPP
sockets:

* :class:`CandidatePaths`, the side that opens a channel: its handshake goes to each of the
  peer's candidate addresses (HOST, REFLEXIVE, later RELAY; at most :data:`MAX_CANDIDATES`),
  again at every handshake interval of the channel, until one answers; that address becomes
  the channel's peer address and the others are dropped.
* :class:`Puncher`, the side that serves (a seeder behind NAT): for each peer the tracker lists
  with PPSPP addresses it sends :data:`PUNCH_DATAGRAM` to the peer's candidates every
  ``interval`` for ``duration`` seconds after the peer was first seen, so that the peer's
  handshakes find an open mapping.  A tracker's list could name anyone: the peers punched at
  once, the punches per second and the punches to one address are bounded.

Nothing here reads a clock or touches a socket: the time is passed in, the next deadline
returned.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ppsp.peer.protocol.addressing import PPSPP_PEER_PROTOCOL
from ppsp.wire.tracker import PeerInfo

__all__ = [
    "MAX_CANDIDATES",
    "PUNCH_DATAGRAM",
    "CandidatePaths",
    "Puncher",
    "ppspp_candidates",
    "usable_candidate",
]

Address = tuple[str, int]
"""A UDP address: (ip, port)."""

MAX_CANDIDATES = 4
"""At most this many addresses of one peer are tried (a listing may carry more)."""

PUNCH_DATAGRAM = bytes(4)
"""What a punch is: an RFC 7574 keep-alive (a datagram of the channel ID alone, section 8.4)
on channel 0.  Channel 0 only opens channels with a HANDSHAKE: our engines drop it (a
downloading peer's socket as unrouted, a seeder's as malformed), libswift as a bad
handshake; nobody answers it."""

PUNCH_INTERVAL = 1.0
"""Seconds between two punches to one address."""

PUNCH_DURATION = 20.0
"""Seconds a newly listed peer is punched towards."""

MAX_PUNCHED_PEERS = 32
"""Peers punched towards at once (the addresses of further ones wait for a free place)."""

MAX_PUNCH_RATE = 32.0
"""Punch datagrams per second, at most, in all."""

MAX_REMEMBERED_PEERS = 4096
"""Peers remembered as seen (punched once already); the oldest are forgotten first."""


def usable_candidate(address: Address) -> bool:
    """Whether ``address`` may be sent to: an IP of one host (not a wildcard, multicast or
    broadcast address) and a port from 1 to 65535."""
    ip, port = address
    if not 0 < port <= 0xFFFF:
        return False
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if parsed.is_unspecified or parsed.is_multicast:
        return False
    return not (parsed.version == 4 and ip == "255.255.255.255")


def ppspp_candidates(info: PeerInfo) -> list[Address]:
    """The PPSPP addresses a listed peer registered (``peerProtocol`` ``PPSPP``: HOST,
    REFLEXIVE, ...), in the order listed."""
    return [(a.ip, a.port) for a in info.addresses if a.peer_protocol == PPSPP_PEER_PROTOCOL]


def _candidates(addresses: Iterable[Address]) -> tuple[Address, ...]:
    """The usable addresses of ``addresses``, without repeats, in order, at most
    :data:`MAX_CANDIDATES`."""
    found: dict[Address, None] = {}
    for address in addresses:
        if usable_candidate(address):
            found.setdefault(address, None)
        if len(found) == MAX_CANDIDATES:
            break
    return tuple(found)


class CandidatePaths:
    """The addresses one channel's handshake goes to until the peer answers from one of them.

    ``candidates`` are the peer's addresses, most preferred first (repeats and unusable ones
    are dropped; at most :data:`MAX_CANDIDATES` kept; ValueError when none is left).  The
    handshake's cadence is the channel's own (its handshake interval and connect timeout):
    every datagram the channel sends before the answer goes to each of :attr:`targets`.
    """

    def __init__(self, candidates: Iterable[Address]) -> None:
        self.candidates = _candidates(candidates)
        if not self.candidates:
            raise ValueError("no usable candidate address")
        self.chosen: Address | None = None
        """The address that answered (the channel's peer address from then on)."""

    @property
    def targets(self) -> tuple[Address, ...]:
        """Where the channel's datagrams go: every candidate until one answered, then it."""
        return self.candidates if self.chosen is None else (self.chosen,)

    def answered(self, address: Address) -> bool:
        """The peer's answer came from ``address``: True when it is the channel's (a
        candidate, chosen now when none was; later, only the chosen one)."""
        if self.chosen is None and address in self.candidates:
            self.chosen = address
        return address == self.chosen


@dataclass(slots=True)
class _Target:
    """One address punched towards: when next, and until when."""

    next_at: float
    until: float


class Puncher:
    """Punches towards the listed peers of a socket behind NAT (see the module docstring).

    :meth:`learn` takes a peer the tracker listed and its candidate addresses; :meth:`due`
    gives the addresses to send :data:`PUNCH_DATAGRAM` to at ``now``; :meth:`next_deadline`
    when to call it again.  A peer is punched towards for ``duration`` seconds after it is
    first seen (seen again later, it is not punched again: it had its chance, and an address
    punched for a new peer gets ``duration`` more).  Bounds: ``max_peers`` peers' addresses
    at once (times :data:`MAX_CANDIDATES`), ``rate`` punches per second in all (a burst of
    at most one second's worth), one address at most every ``interval`` seconds.
    """

    def __init__(
        self,
        now: float,
        *,
        interval: float = PUNCH_INTERVAL,
        duration: float = PUNCH_DURATION,
        max_peers: int = MAX_PUNCHED_PEERS,
        rate: float = MAX_PUNCH_RATE,
        own: Iterable[Address] = (),
    ) -> None:
        if interval <= 0 or duration <= 0 or max_peers < 1 or rate <= 0:
            raise ValueError("punches need a positive interval, duration, peer count and rate")
        self.interval = interval
        self.duration = duration
        self.max_targets = max_peers * MAX_CANDIDATES
        self.rate = rate
        self.own = frozenset(own)
        """This socket's own addresses (never punched)."""
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._targets: dict[Address, _Target] = {}
        self._tokens = max(rate, 1.0)
        self._refilled = now
        self.punches = 0
        """Punch datagrams handed out so far."""
        self.peers = 0
        """Peers learnt (punched towards) so far."""
        self.dropped = 0
        """Candidate addresses not punched: no room, unusable, or this socket's own."""

    def learn(self, peer_id: str, candidates: Sequence[Address], now: float) -> bool:
        """A listed peer and its candidate addresses at ``now``: True when it is new (its
        addresses are punched towards from now on)."""
        if peer_id in self._seen:
            self._seen.move_to_end(peer_id)
            return False
        self._seen[peer_id] = None
        if len(self._seen) > MAX_REMEMBERED_PEERS:
            self._seen.popitem(last=False)
        self.peers += 1
        self._expire(now)
        kept = _candidates(candidates)
        self.dropped += len(candidates) - len(kept)
        for address in kept:
            target = self._targets.get(address)
            if address in self.own:
                self.dropped += 1
            elif target is not None:
                target.until = now + self.duration
            elif len(self._targets) < self.max_targets:
                self._targets[address] = _Target(next_at=now, until=now + self.duration)
            else:
                self.dropped += 1
        return True

    def due(self, now: float) -> list[Address]:
        """The addresses to punch at ``now`` (each then waits ``interval``; within the rate,
        the longest waiting first)."""
        self._expire(now)
        self._refill(now)
        ready = sorted(
            (target.next_at, address)
            for address, target in self._targets.items()
            if target.next_at <= now
        )
        out: list[Address] = []
        for _, address in ready:
            if self._tokens < 1:
                break
            self._tokens -= 1
            self._targets[address].next_at = now + self.interval
            out.append(address)
        self.punches += len(out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`due` has something next (None: nobody to punch towards)."""
        if not self._targets:
            return None
        soonest = min(target.next_at for target in self._targets.values())
        if self._tokens < 1:  # the next token
            soonest = max(soonest, self._refilled + (1 - self._tokens) / self.rate)
        return soonest

    @property
    def targets(self) -> int:
        """Addresses being punched towards now."""
        return len(self._targets)

    def _expire(self, now: float) -> None:
        for address in [a for a, t in self._targets.items() if t.until <= now]:
            del self._targets[address]

    def _refill(self, now: float) -> None:
        if now > self._refilled:
            capacity = max(self.rate, 1.0)
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
