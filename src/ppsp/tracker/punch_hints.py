"""Who will punch towards whom: the tracker's hints that help peers behind NAT meet (issue 17).

Two peers behind NATs reach each other only when each sends towards the other at about the
same time (docs/PROTOCOL.md, "Hole punching"): a peer behind NAT punches towards the peers a
peer list names to it, for 20 s after it first sees each.  In a swarm larger than a list the
tracker's random choice seldom lists X to Y and Y to X close together, so the tracker helps:
when it lists Y to a peer X behind NAT (X advertised a REFLEXIVE address, :func:`behind_nat`),
it notes that X will punch towards Y (:meth:`PunchHints.note`); when Y is next given a list of
that swarm, X comes first (:meth:`PunchHints.askers`, :func:`first_listed`), once.

Nothing here is believed beyond what a list already gives: a hint is made of the tracker's own
answers, and it only reorders members that the list could name anyway, each prefix within the
share policy's bound (:func:`first_listed`), at most half of a list.  The state is bounded
(per asker, per listed peer, per swarm, in all) and each hint lives :data:`HINT_LIFETIME`
seconds.  It is kept in the process (one table per tracker): with several processes sharing a
storage, a hint is known to the process that gave the asker its list only.

Sans-I/O: time is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from ppsp.tracker.chunk_scope import ChunkScope
from ppsp.tracker.storage.base import SwarmMember, member_prefix
from ppsp.wire.tracker import AddressType, PeerAddress, PeerMode, RepresentationScope

__all__ = [
    "ASKER_HINTS",
    "HINT_LIFETIME",
    "SWARM_HINTS",
    "TARGET_HINTS",
    "TOTAL_HINTS",
    "PunchHints",
    "behind_nat",
    "first_listed",
]

HINT_LIFETIME = 20.0
"""Seconds a hint lives after the listing that made it: the time a peer behind NAT punches
towards a newly listed peer (``peer.nat.punch.PUNCH_DURATION``).  A peer it is listed to later
would start its handshakes after the punches ended."""

ASKER_HINTS = 32
"""Hints one asker may have at once, over all swarms: as many peers as a punching peer punches
towards at once (``peer.nat.punch.MAX_PUNCHED_PEERS``; further ones wait, and their hints are
not made).  It also bounds what one registration can do with hints."""

TARGET_HINTS = 8
"""Askers remembered for one listed peer in one swarm (the first ones; later ones are not noted
until one expires)."""

SWARM_HINTS = 4096
"""Hints of one swarm at once (further listings in that swarm are not noted until some expire),
so that one swarm cannot take the table."""

TOTAL_HINTS = 32_768
"""Hints in all; past it the oldest is forgotten for the new one (some 8 MiB at most)."""

_USED = float("-inf")
"""The expiry a hint gets once its asker was listed first: kept (and counted) until it would
have expired, so that the same listing does not make it again, but never listed again."""

_REFLEXIVE = AddressType.REFLEXIVE


def behind_nat(addresses: Sequence[PeerAddress]) -> bool:
    """Whether a stored peer said it is behind NAT: one of its advertised addresses (every
    address but the last, the REFLEXIVE address the tracker observed) is REFLEXIVE, an address
    it learned from a STUN server, different from its own."""
    last = len(addresses) - 1
    # A loop, not any(): no generator for every peer list of every peer.
    for at in range(last):  # noqa: SIM110
        if addresses[at].type is _REFLEXIVE:
            return True
    return False


class PunchHints:
    """Bounded, expiring hints: in a swarm, which askers behind NAT were listed a peer lately.

    ``noted`` holds every hint kept, oldest first, as ``(expiry, swarm, listed peer, asker)``;
    a caller may test it for emptiness (a C-level check) before asking anything.  Hints leave
    only from its front (expired, or the oldest past ``total``), so every count here is of the
    hints in it.
    """

    __slots__ = (
        "_askers",
        "_swarm_counts",
        "_swarms",
        "lifetime",
        "noted",
        "per_asker",
        "per_swarm",
        "per_target",
        "total",
    )

    def __init__(
        self,
        *,
        lifetime: float = HINT_LIFETIME,
        per_asker: int = ASKER_HINTS,
        per_target: int = TARGET_HINTS,
        per_swarm: int = SWARM_HINTS,
        total: int = TOTAL_HINTS,
    ) -> None:
        if min(per_asker, per_target, per_swarm, total) < 1:
            raise ValueError("every bound on punch hints is at least one")
        self.lifetime = lifetime
        self.per_asker = per_asker
        self.per_target = per_target
        self.per_swarm = per_swarm
        self.total = total
        self.noted: deque[tuple[float, str, str, str]] = deque()
        # swarm -> listed peer -> asker -> expiry (_USED once listed), askers in note order.
        self._swarms: dict[str, dict[str, dict[str, float]]] = {}
        self._swarm_counts: dict[str, int] = {}
        self._askers: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.noted)

    def expire(self, now: float) -> None:
        """Forget every hint whose lifetime is over at ``now``."""
        noted = self.noted
        while noted and noted[0][0] <= now:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, swarm_id, target, asker = self.noted.popleft()
        targets = self._swarms[swarm_id]
        askers = targets[target]
        del askers[asker]
        if not askers:
            del targets[target]
        left = self._swarm_counts[swarm_id] - 1
        if left:
            self._swarm_counts[swarm_id] = left
        else:
            del self._swarm_counts[swarm_id]
            del self._swarms[swarm_id]
        held = self._askers[asker] - 1
        if held:
            self._askers[asker] = held
        else:
            del self._askers[asker]

    def note(self, swarm_id: str, asker: str, listed: Iterable[str], now: float) -> int:
        """Note that ``asker`` (behind NAT) was listed the peers ``listed`` in ``swarm_id`` at
        ``now`` and will punch towards them; return how many hints were made.

        A hint already kept (used or not) is left as it is: its asker punched when it was
        first listed the peer.  Nothing is noted past the asker's, the listed peer's or the
        swarm's bound; past the total, the oldest hint is forgotten for each new one.
        """
        self.expire(now)
        wanted = [target for target in listed if target != asker]
        room = min(
            len(wanted),
            self.per_asker - self._askers.get(asker, 0),
            self.per_swarm - self._swarm_counts.get(swarm_id, 0),
        )
        if room <= 0:
            return 0
        # Past the total, the oldest hints make room first (which may lower the counts read
        # above, never raise them).
        noted = self.noted
        while len(noted) + room > self.total:
            self._forget_oldest()
        targets = self._swarms.get(swarm_id)
        if targets is None:
            targets = self._swarms[swarm_id] = {}
        expiry = now + self.lifetime
        made = 0
        for target in wanted:
            if made >= room:
                break
            askers = targets.get(target)
            if askers is None:
                askers = targets[target] = {}
            elif asker in askers or len(askers) >= self.per_target:
                continue
            askers[asker] = expiry
            noted.append((expiry, swarm_id, target, asker))
            made += 1
        if made:
            self._askers[asker] = self._askers.get(asker, 0) + made
            self._swarm_counts[swarm_id] = self._swarm_counts.get(swarm_id, 0) + made
        elif not targets:
            del self._swarms[swarm_id]  # nothing noted: no empty table left behind
        return made

    def askers(self, swarm_id: str, target: str, now: float) -> list[str]:
        """The askers that will punch towards ``target`` in ``swarm_id`` at ``now`` and were
        not listed to it first yet, in the order they were noted."""
        targets = self._swarms.get(swarm_id)
        if targets is None:
            return []
        askers = targets.get(target)
        if askers is None:
            return []
        return [asker for asker, expiry in askers.items() if expiry > now]

    def used(self, swarm_id: str, target: str, askers: Iterable[str]) -> None:
        """Mark the hints of ``askers`` towards ``target`` used: they were listed to it first,
        and are not again (the hints are kept, and counted, until they would have expired)."""
        kept = self._swarms.get(swarm_id, {}).get(target)
        if kept is None:
            return
        for asker in askers:
            if asker in kept:
                kept[asker] = _USED


def first_listed(
    found: Iterable[SwarmMember],
    *,
    suspects: frozenset[str],
    limit: int,
    share: int | None,
    scope: Sequence[RepresentationScope] = (),
    require_scope: bool = False,
) -> list[SwarmMember]:
    """Of the members ``found`` for a list's hints (in hint order), those listed first.

    A suspect never (it comes after every other member); with ``require_scope`` only a SEED
    or a member holding a chunk of ``scope`` (as any member of a chunk-scoped list); at most
    ``share`` of one network prefix (:func:`~ppsp.tracker.storage.base.member_prefix`; None:
    no bound), so that no host takes more first places than the share policy gives it; at
    most ``limit`` in all.
    """
    chosen: list[SwarmMember] = []
    if limit <= 0:
        return chosen
    taken: dict[str, int] = {}
    chunks = ChunkScope(scope) if require_scope else None
    for member in found:
        if member.peer_id in suspects:
            continue
        if (
            chunks is not None
            and member.mode is not PeerMode.SEED
            and not chunks.held(member.content_map)
        ):
            continue
        if share is not None:
            prefix = member_prefix(member)
            if prefix is not None:
                seen = taken.get(prefix, 0)
                if seen >= share:
                    continue
                taken[prefix] = seen + 1
        chosen.append(member)
        if len(chosen) >= limit:
            break
    return chosen
