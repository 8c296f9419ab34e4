"""Which peers a relayed seeder lets through its TURN relay, sans-I/O.

A TURN server forwards to a client only the datagrams of the peer IPs the client permitted
(RFC 8656 section 9), and each permission costs a request and a refresh every 4 minutes.  A
seeder serving PPSPP through a relay permits the IPs of the PPSPP candidate addresses (HOST,
REFLEXIVE, PROXY) of the peers its swarm's FINDs list: the peer behind NAT sends from its
REFLEXIVE address's IP, a public peer from its HOST one, a relayed peer from its relay's.

:class:`RelayPermits` decides, bounded: at most ``max_permits`` IPs at once.  When full, a new
IP takes the place of the one listed least recently, but only if that one has not been listed
for ``stale`` seconds (a peer no longer in the swarm); otherwise the new IP waits for a later
listing (counted in :attr:`RelayPermits.dropped`).  An IP the server refused is not asked for
again for ``stale`` seconds.  A tracker's list could name anyone: the table and the refusals
remembered are both bounded, and only usable unicast addresses of the relay's family count.

Nothing here reads a clock or touches a socket: the time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ppsp.peer.nat.punch import usable_candidate

__all__ = ["MAX_RELAY_PERMITS", "PERMIT_STALE", "PermitChanges", "RelayPermits"]

Address = tuple[str, int]
"""A UDP address: (ip, port)."""

MAX_RELAY_PERMITS = 48
"""Peer IPs permitted at once on a seeder's relay (below the TURN client's own bound of 64)."""

PERMIT_STALE = 300.0
"""Seconds an IP unlisted keeps its permission against newcomers (a permission's lifetime),
and a refused IP is left alone."""


@dataclass(slots=True)
class PermitChanges:
    """What to do after a listing: IPs to permit, and IPs whose permission is given up (to
    stop refreshing, for the newcomers that took their places)."""

    permit: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)


class RelayPermits:
    """The peer IPs permitted on one relay (see the module docstring).

    ``v6`` is the relay's family: only candidates of that family are permitted.
    """

    def __init__(
        self,
        *,
        v6: bool = False,
        max_permits: int = MAX_RELAY_PERMITS,
        stale: float = PERMIT_STALE,
    ) -> None:
        if max_permits < 1 or stale <= 0:
            raise ValueError("a relay needs room for one permission and a positive stale time")
        self.v6 = v6
        self.max_permits = max_permits
        self.stale = stale
        self._listed: OrderedDict[str, float] = OrderedDict()  # IP -> last listed, oldest first
        self._refused: OrderedDict[str, float] = OrderedDict()  # IP -> when refused
        self.dropped = 0
        """New IPs not permitted for want of room (asked again at a later listing)."""
        self.forgotten = 0
        """Permissions given up for a newcomer."""
        self.refusals = 0
        """Permissions the server refused or did not answer."""

    @property
    def permitted(self) -> tuple[str, ...]:
        """The IPs permitted now, least recently listed first."""
        return tuple(self._listed)

    def listed(self, candidates: Iterable[Address], now: float) -> PermitChanges:
        """A listed peer's PPSPP candidate addresses at ``now``: what to permit and forget."""
        changes = PermitChanges()
        for address in candidates:
            ip = address[0]
            if not usable_candidate(address) or (":" in ip) != self.v6:
                continue
            if ip in self._listed:
                self._listed[ip] = now
                self._listed.move_to_end(ip)
                continue
            refused_at = self._refused.get(ip)
            if refused_at is not None:
                if now - refused_at < self.stale:
                    continue
                del self._refused[ip]
            if len(self._listed) >= self.max_permits:
                oldest, seen = next(iter(self._listed.items()))
                if now - seen < self.stale:
                    self.dropped += 1
                    continue
                del self._listed[oldest]
                self.forgotten += 1
                changes.forget.append(oldest)
            self._listed[ip] = now
            changes.permit.append(ip)
        return changes

    def refused(self, ip: str, now: float) -> None:
        """The server refused (or did not answer) the permission for ``ip`` at ``now``: its
        place is free, and it is not asked for again for ``stale`` seconds."""
        if self._listed.pop(ip, None) is None:
            return
        self.refusals += 1
        self._refused[ip] = now
        self._refused.move_to_end(ip)
        while len(self._refused) > self.max_permits:
            self._refused.popitem(last=False)
