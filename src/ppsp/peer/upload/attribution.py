"""Whose PPSPP uploads: UDP addresses mapped to the PeerIDs the tracker listed there.

A PPSPP channel carries no PeerID: the uploader knows only the UDP address its datagrams come
from.  The swarm's peers register their PPSPP sockets at the tracker (PeerAddresses with
``peerProtocol`` ``PPSPP``: HOST, REFLEXIVE), so a FIND answer names the PeerID at that
address.  :class:`AddressAttribution` keeps that map and the bytes sent to addresses not yet
in it; the I/O layer (``peer/net/ppspp_uploads.py``) asks the tracker when it is told to
(:meth:`AddressAttribution.lookup_delay`: an address new since the last lookup after
:data:`FIRST_LOOKUP_INTERVAL`, one tried before after :data:`LOOKUP_INTERVAL`, each address
tried :data:`LOOKUP_TRIES` times) and counts what resolves in the session's ledger.
What never resolves (libswift's leecher, a peer whose mapping no STUN server told) is
*unattributed*.

Sans-I/O: time passed in, no tracker, no sockets.
"""

from __future__ import annotations

from collections.abc import Iterable

from ppsp.core.hosts import canonical_host
from ppsp.peer.protocol.addressing import PPSPP_PEER_PROTOCOL
from ppsp.wire.tracker import PeerInfo

__all__ = [
    "FIRST_LOOKUP_INTERVAL",
    "LOOKUP_INTERVAL",
    "LOOKUP_TRIES",
    "MAX_ADDRESSES",
    "AddressAttribution",
]

FIRST_LOOKUP_INTERVAL = 0.5
"""Seconds from one lookup (FIND) to the next when an address waits that no lookup was made
for yet (a peer that just opened a channel registered its address before it did)."""

LOOKUP_INTERVAL = 2.0
"""Seconds from one lookup to the next when every waiting address was looked up already."""

LOOKUP_TRIES = 3
"""Lookups an unknown address waits for before its bytes count as unattributed."""

MAX_ADDRESSES = 4096
"""Addresses known, waiting or given up, each at most (beyond: unattributed at once)."""

Address = tuple[str, int]


def _key(ip: str, port: int) -> Address:
    """An address in the one form both sides are compared in (IPv6 compressed, lower case)."""
    return (canonical_host(ip) or ip, port)


class AddressAttribution:
    """Bytes sent to UDP addresses, and the PeerIDs listed at them (module docstring)."""

    def __init__(
        self,
        *,
        interval: float = LOOKUP_INTERVAL,
        first_interval: float = FIRST_LOOKUP_INTERVAL,
        tries: int = LOOKUP_TRIES,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.interval = interval
        self.first_interval = first_interval
        self.tries = tries
        self.max_addresses = max_addresses
        self._known: dict[Address, str] = {}
        self._pending: dict[Address, int] = {}
        """Bytes sent to each address not known yet, waiting for a lookup."""
        self._tries: dict[Address, int] = {}
        self._given_up: set[Address] = set()
        self._last_lookup: float | None = None
        self.unattributed = 0
        """Bytes sent to addresses no lookup named (given up, or beyond the bounds)."""

    @property
    def pending(self) -> int:
        """Bytes waiting for a lookup."""
        return sum(self._pending.values())

    def peer_at(self, address: tuple[str, int]) -> str | None:
        """The PeerID listed at ``address``, when known."""
        return self._known.get(_key(address[0], address[1]))

    def sent(self, address: tuple[str, int], nbytes: int) -> str | None:
        """``nbytes`` went to ``address``: the PeerID to count them for, or None (they wait
        for a lookup, or count as unattributed)."""
        key = _key(address[0], address[1])
        peer_id = self._known.get(key)
        if peer_id is not None:
            return peer_id
        if key in self._given_up or (
            key not in self._pending and len(self._pending) >= self.max_addresses
        ):
            self.unattributed += nbytes
            return None
        self._pending[key] = self._pending.get(key, 0) + nbytes
        return None

    def lookup_delay(self, now: float) -> float | None:
        """Seconds until the next lookup is due (0: now); None when nothing waits for one."""
        if not self._pending:
            return None
        if self._last_lookup is None:
            return 0.0
        untried = any(key not in self._tries for key in self._pending)
        interval = self.first_interval if untried else self.interval
        return max(0.0, self._last_lookup + interval - now)

    def looked_up(self, now: float) -> None:
        """A lookup starts at ``now``: each waiting address has one try more."""
        self._last_lookup = now
        for key in self._pending:
            self._tries[key] = self._tries.get(key, 0) + 1

    def learn(self, infos: Iterable[PeerInfo]) -> list[tuple[str, tuple[str, int], int]]:
        """Peers listed (a FIND's answer, the session's known peers): their PPSPP addresses
        are known from now on.  Returns the waiting bytes they resolve, as (PeerID, address,
        bytes); an address still unknown after :attr:`tries` lookups is given up (its bytes
        unattributed)."""
        for info in infos:
            if info.peer_id is None:
                continue
            for address in info.addresses:
                if address.peer_protocol != PPSPP_PEER_PROTOCOL:
                    continue
                key = _key(address.ip, address.port)
                if key in self._known or len(self._known) < self.max_addresses:
                    self._known[key] = info.peer_id
                    self._given_up.discard(key)
        resolved = []
        for key in list(self._pending):
            peer_id = self._known.get(key)
            if peer_id is not None:
                resolved.append((peer_id, key, self._pending.pop(key)))
                self._tries.pop(key, None)
            elif self._tries.get(key, 0) >= self.tries:
                self.unattributed += self._pending.pop(key)
                self._tries.pop(key, None)
                if len(self._given_up) < self.max_addresses:
                    self._given_up.add(key)
        return resolved

    def close(self) -> int:
        """No more lookups: whatever waits counts as unattributed; the bytes moved so."""
        moved = self.pending
        self.unattributed += moved
        self._pending.clear()
        self._tries.clear()
        return moved
