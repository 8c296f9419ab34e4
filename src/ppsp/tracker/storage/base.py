"""The storage interface of the tracker, with its written obligations.

In the manner of chihaya's storage: one abstract interface whose docstrings state what every
backend must guarantee, and one conformance suite (``tests/tracker/storage/``) that every backend
passes.  The tracker core (:mod:`ppsp.tracker.core`) holds no state of its own; all of it lives
behind this interface, so several tracker processes can share one Redis.

Obligations of every backend:

1. **Peers.**  A peer record is created or replaced whole by :meth:`Storage.put_peer`; its
   ``deadline`` is the only timer the storage knows (the core decides whether it is the init or
   the track timer).
2. **Memberships need a peer.**  :meth:`Storage.join` of a peer that has no record does nothing.
   A peer is in a swarm at most once; joining again replaces its mode.
3. **Leaving cleans up.**  :meth:`Storage.leave` drops the membership *and* the peer's content
   map and statistics for that swarm.  A swarm with no member left no longer exists (it is not
   counted and lists no one).
4. **Deleting cleans up everywhere.**  :meth:`Storage.delete_peer` removes the peer from every
   swarm, with its content maps and statistics, and removes its deadline.  After it returns, no
   peer list (:meth:`Storage.members`) names the peer: lists are never stale.
5. **Expiry.**  :meth:`Storage.expire` deletes (as in 4) every peer whose deadline is at or
   before ``now`` and returns their IDs; :meth:`Storage.next_deadline` is the earliest deadline
   of a stored peer.
6. **Content maps** are stored per (swarm, peer), only for members, each replacing the last.
   With a :class:`~ppsp.tracker.limits.Limits`, a map is kept with its first
   ``Limits.map_segments_kept`` segments (:func:`kept_segments`), and only when, once it
   replaced the peer's last map there, the maps kept for the peer's host (its record's
   ``host``) weigh at most ``Limits.map_bytes_per_host`` (when ``per_host``) and all maps kept
   at most ``Limits.map_bytes_total``, each map weighing :func:`content_map_bytes` of what is
   kept (:func:`map_fits`): a map no heavier than the one it replaces is always kept.  A map
   not kept drops the peer's last map in that swarm too; it is not an error.
   ``StorageCounts.map_bytes`` is the weight of the maps kept, and returns to zero when they
   are gone (leave, delete, expiry).
7. **Statistics** are stored per (peer, swarm), the latest replacing the previous one; those
   without a swarm ID are kept under the peer alone.
8. **Values round-trip**: what is stored is returned equal (addresses, modes, maps, stats).
9. **Failures**: a backend that cannot reach its store raises
   :class:`~ppsp.errors.ServiceUnavailable`, from every method, and is usable again once the
   store is back (no restart needed).
10. **Start-up check**: :meth:`Storage.check` raises that same error when the store cannot be
    used at all (unreachable, refused credentials, a server too old), so that a tracker can
    refuse to start instead of answering every request with an error.
11. **Hosts.**  A peer is counted for the host in its record's ``host`` (the host address that
    registered it; ``""``: counted for no host) from its creation until it is deleted or
    expires, whichever method wrote it; :meth:`Storage.peers_of_host` reads the count and
    ``StorageCounts.hosts`` the number of hosts counted.  Every count returns to zero when
    the peers are gone.
12. **Bounded changes.**  :meth:`Storage.update` checks the bounds of a
    :class:`~ppsp.tracker.limits.Limits` and makes its change in one atomic step (one Lua
    script on Redis, so that the bounds hold for several trackers on one store): a change
    that would take a count past its bound changes nothing and raises
    :class:`~ppsp.errors.Forbidden` (peers of one host, swarms of one peer) or
    :class:`~ppsp.errors.ServiceUnavailable` (peers, swarms or memberships in all).  Counts
    that a change does not grow are never refused, even above a bound.
13. **Corrupt-peer reports** (:meth:`Storage.add_corrupt_reports`) are counted per reported
    membership and per distinct reporter host, only when the reporter and the reported peer
    are both members of the swarm, are different peers registered from different hosts, and
    the reported address is one of the reported peer's stored addresses (:func:`report_outcome`
    says what each report is).  At most ``Limits.reporters_kept`` hosts are kept per reported
    membership; the peer is a suspect of the swarm (:meth:`Storage.suspects`) from
    ``Limits.suspect_reporters`` hosts on.  Everything about a membership goes with it (leave,
    delete, expiry): ``StorageCounts.reported`` and ``StorageCounts.suspects`` return to zero.
14. **Dashboard reads** change nothing.  :meth:`Storage.swarm_page` lists the swarms that have
    members in ascending code-point order of their IDs (the order of their UTF-8 bytes), the
    ``limit`` from rank ``offset`` on, with their number (``StorageCounts.swarms``).
    :meth:`Storage.swarm_views` gives, per swarm asked for, its exact number of members and
    its members (every one when there are at most ``limit``, else a random sample of
    ``limit``), each with its latest statistics for that swarm and, for the first ``maps`` of
    them, its content map there.  A swarm without members has none and a count of 0.

The members of swarms and what peer lists read of them (:mod:`~ppsp.tracker.storage.members`)
and the rules on the content maps kept (:mod:`~ppsp.tracker.storage.content_maps`) have modules
of their own; their names are importable from here too.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from ppsp.errors import Forbidden, ServiceUnavailable, TrackerProtocolError
from ppsp.tracker.limits import Limits
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.content_maps import content_map_bytes, kept_segments, map_fits
from ppsp.tracker.storage.members import (
    MemberGroup,
    MemberList,
    MemberSlots,
    RankProfile,
    SwarmMember,
    group_members,
    member_prefix,
    prefix_of,
    rank_profile,
)
from ppsp.wire.tracker import (
    ContentMap,
    CorruptPeerReport,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    StreamStatistics,
)

__all__ = [
    "LIMIT_CODES",
    "Guard",
    "MemberGroup",
    "MemberList",
    "MemberSlots",
    "MemberView",
    "PeerListRead",
    "PeerRecord",
    "RankProfile",
    "ReportOutcome",
    "Storage",
    "StorageCounts",
    "SwarmMember",
    "SwarmPage",
    "SwarmView",
    "content_map_bytes",
    "group_members",
    "kept_segments",
    "limit_error",
    "map_fits",
    "member_prefix",
    "prefix_of",
    "rank_profile",
    "report_outcome",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRecord:
    """A registered peer.

    ``version`` picks the per-peer machine (the version of the registering CONNECT).
    ``addresses`` are the addresses the peer advertised followed by the REFLEXIVE address the
    tracker last observed.  ``deadline`` is when the running timer (init or track, by
    ``state``) runs out.  ``grace_used`` records that an error already reset the timer "one
    last time" (1.1 error conditions A and B); a valid message clears it.  ``host`` is the
    host address that registered the peer (:func:`~ppsp.tracker.limits.host_key`), for which
    the storage counts it (``""``: none, e.g. a record written by an earlier release).
    """

    peer_id: str
    version: ProtocolVersion
    state: PeerState
    addresses: tuple[PeerAddress, ...]
    deadline: float
    grace_used: bool = False
    host: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageCounts:
    """Sizes of the stored state (``hosts``: host addresses counted for a registration)."""

    peers: int
    swarms: int
    memberships: int
    hosts: int = 0
    reported: int = 0
    """Memberships with at least one counted corrupt-peer report."""
    suspects: int = 0
    """Memberships reported by ``Limits.suspect_reporters`` distinct hosts or more."""
    map_bytes: int = 0
    """The weight of the content maps kept (:func:`content_map_bytes`, obligation 6)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmPage:
    """A page of the swarms (:meth:`Storage.swarm_page`): their IDs and how many there are."""

    total: int
    """Swarms with at least one member, in all."""
    swarm_ids: tuple[str, ...]
    """The IDs of the page, in ascending code-point order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberView:
    """A member as the dashboard reads it (:meth:`Storage.swarm_views`)."""

    member: SwarmMember
    """The membership, its ``content_map`` filled when it was asked for and is stored."""
    stats: StreamStatistics | None = None
    """The member's latest statistics for the swarm (None: it reported none)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmView:
    """One swarm as the dashboard reads it (:meth:`Storage.swarm_views`)."""

    swarm_id: str
    members: int
    """How many members the swarm has (exact; 0: no such swarm)."""
    sample: tuple[MemberView, ...] = ()
    """Its members, or a random sample of them when it has more than were asked for."""

    @property
    def sampled(self) -> bool:
        """Whether :attr:`sample` holds fewer members than the swarm."""
        return len(self.sample) < self.members


class ReportOutcome(Enum):
    """What a corrupt-peer report did (:meth:`Storage.add_corrupt_reports`)."""

    COUNTED = "counted"
    """A new reporter host for that peer in that swarm: counted."""
    REPEATED = "repeated"
    """A host that already reported that peer (or one past ``reporters_kept``): no change."""
    IGNORED = "ignored"
    """Not checkable, so not believed: reporter or reported peer not a member, the same peer
    or host, an address the reported peer does not have."""


def report_outcome(
    report: CorruptPeerReport,
    *,
    reporter_id: str,
    reporter_host: str,
    reporter_swarms: Iterable[str],
    reported: PeerRecord | None,
    reported_member: bool,
) -> ReportOutcome | None:
    """:attr:`ReportOutcome.IGNORED` when a report cannot be believed, else None (the hosts
    already counted decide between counted and repeated).

    ``reported`` is the reported peer's record (None: not registered), ``reported_member``
    whether it is a member of the report's swarm.  The Redis scripts apply the same rule.
    """
    if (
        reported is None
        or not reported_member
        or report.peer_id == reporter_id
        or report.swarm_id not in reporter_swarms
        or not reporter_host
        or reported.host == reporter_host
    ):
        return ReportOutcome.IGNORED
    for address in reported.addresses:
        if address.ip == report.ip and address.port == report.port:
            return None
    return ReportOutcome.IGNORED


LIMIT_CODES = ("host", "peer", "peers", "swarms", "memberships")
"""What a bounded change may be refused for, as the backends report it: the peers of one host,
the swarms of one peer (both Forbidden), the peers, swarms or memberships in all (the tracker
is full: ServiceUnavailable).  Checked in this order."""


_TOO_MANY = {"host": "peers from this host", "peer": "swarms for one peer"}
_FULL = {"peers": "registered peers", "swarms": "swarms", "memberships": "swarm memberships"}


def limit_error(code: str, limits: Limits) -> TrackerProtocolError:
    """The error answering a change refused for the bound named ``code`` (see LIMIT_CODES)."""
    if code in ("host", "peer"):
        most = limits.peers_per_host if code == "host" else limits.swarms_per_peer
        return Forbidden(
            f"this host address already registered {most} peers, the most one host may hold"
            if code == "host"
            else f"a peer may be in at most {most} swarms at a time",
            reason=f"Too many {_TOO_MANY[code]} (at most {most})",
        )
    if code in _FULL:
        what = _FULL[code]
        total = getattr(limits, f"{code}_total")
        return ServiceUnavailable(
            f"the tracker is full ({total} {what})", reason=f"Tracker full: {what}"
        )
    raise ValueError(f"unknown bound {code!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Guard:
    """What a change decided on a guess assumes of the stored peer (the ``*_guarded`` methods).

    ``version``: the record's version (None: any); ``states``: the states it may be in;
    ``swarms``: swarms it must be a member of; ``host``: the IP address its last address, a
    REFLEXIVE one, must be at (the host check of open mode; None: not checked).
    """

    version: ProtocolVersion | None
    states: tuple[PeerState, ...]
    swarms: tuple[str, ...] = ()
    host: str | None = None


PeerListRead = tuple[frozenset[str], list[SwarmMember]]
"""What one peer list reads of a swarm: its suspects and (a sample of) its members."""


class Storage(abc.ABC):
    """Where the tracker keeps peers, swarm memberships, timers, content maps and statistics.

    Every method is a coroutine so that remote backends fit; see the module docstring for the
    obligations every backend meets.
    """

    @abc.abstractmethod
    async def get_peer(self, peer_id: str) -> PeerRecord | None:
        """The peer's record, or None when it is not registered."""
        ...

    @abc.abstractmethod
    async def put_peer(self, record: PeerRecord) -> None:
        """Create or replace the peer's record (and its deadline)."""
        ...

    @abc.abstractmethod
    async def update(
        self,
        record: PeerRecord,
        *,
        leave: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
        limits: Limits | None = None,
    ) -> None:
        """Write the peer's record, leave the swarms ``leave``, join ``join``: one change.

        The peer is created when it has no record (and counted for ``record.host``).  With
        ``limits``, the change is checked first, against the counts before it, and refused
        whole when it would take a count past its bound (obligation 12): nothing is written
        and the error of :func:`limit_error` is raised.  Without ``limits`` nothing is checked.
        As :meth:`put_peer`, then :meth:`leave` and :meth:`join` of each swarm, in one step.
        """
        ...

    @abc.abstractmethod
    async def peers_of_host(self, host: str) -> int:
        """How many stored peers ``host`` registered (the ``host`` of their records)."""
        ...

    @abc.abstractmethod
    async def delete_peer(self, peer_id: str) -> bool:
        """Remove the peer from every swarm and forget it; False when it was not registered."""
        ...

    @abc.abstractmethod
    async def memberships(self, peer_id: str) -> dict[str, PeerMode]:
        """The swarms the peer has joined, with its mode in each (empty when unknown)."""
        ...

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """:meth:`get_peer` and :meth:`memberships` together, what every request starts with.

        The memberships are empty when the peer is not registered.  This default makes the
        two calls; a remote backend answers both in one round trip.
        """
        record = await self.get_peer(peer_id)
        return record, (await self.memberships(peer_id) if record is not None else {})

    @abc.abstractmethod
    async def join(self, swarm_id: str, peer_id: str, mode: PeerMode) -> None:
        """Add a registered peer to a swarm (no-op for an unregistered peer)."""
        ...

    @abc.abstractmethod
    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there.

        Returns False when the peer was not a member.
        """
        ...

    @abc.abstractmethod
    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm: all of them, or a random sample of at most ``limit``.

        ``content_map`` of each member is filled only when ``with_maps`` is set.
        """
        ...

    async def member_groups(self, swarm_id: str, *, limit: int | None = None) -> list[MemberGroup]:
        """Members of the swarm grouped by :func:`rank_profile`, for one peer list.

        Every listed member is in exactly one group, the one of its addresses' profile; no group
        is empty.  The requester is not left out: the selection does that
        (:func:`~ppsp.tracker.peerlist.select_from_groups`' ``exclude``), so that a backend can
        hand out what it keeps without copying it.

        The returned sequences are **read-only and valid until the next call to the storage**:
        a backend may hand out its own lists (the memory backend does, so that a peer list costs
        the number of groups, not of members), which its next change reorders.  Read them at
        once, change none of them, keep none of them.

        This default groups :meth:`members` (a random sample of at most ``limit``, as there)
        into fresh lists; a backend that keeps its members grouped (the memory backend) hands
        out all of them, which costs it no more.
        """
        return group_members(await self.members(swarm_id, limit=limit))

    @abc.abstractmethod
    async def put_content_map(
        self, peer_id: str, content_map: ContentMap, *, limits: Limits | None = None
    ) -> bool:
        """Store the peer's content map for ``content_map.swarm_id``, replacing the last one.

        Returns False (and stores nothing) when the peer is not a member of that swarm, and
        when ``limits`` do not let the map be kept (obligation 6: the peer's last map there is
        dropped then).
        """
        ...

    @abc.abstractmethod
    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        ...

    @abc.abstractmethod
    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer for ``stats.swarm_id`` (None: peer-wide)."""
        ...

    async def put_report(
        self,
        record: PeerRecord,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        *,
        limits: Limits | None = None,
    ) -> None:
        """What a STAT_REPORT stores: :meth:`put_peer`, then each :meth:`put_stats` and
        :meth:`put_content_map` (within ``limits``) in order (a map for a swarm the peer is
        not in is dropped, and so is a map ``limits`` do not let be kept).

        This default makes the calls one by one; a remote backend sends them in one round trip.
        """
        await self.put_peer(record)
        for item in stats:
            await self.put_stats(record.peer_id, item)
        for content_map in content_maps:
            await self.put_content_map(record.peer_id, content_map, limits=limits)

    @abc.abstractmethod
    async def add_corrupt_reports(
        self,
        reporter_id: str,
        reporter_host: str,
        reports: Sequence[CorruptPeerReport],
        limits: Limits,
    ) -> list[ReportOutcome]:
        """Count the corrupt-peer reports of ``reporter_id`` seen from ``reporter_host``
        (obligation 13), in one step; the outcome of each, in order.

        A peer reported twice in one call counts once (the second is repeated).
        """
        ...

    @abc.abstractmethod
    async def suspects(self, swarm_id: str) -> frozenset[str]:
        """Members of the swarm reported by ``Limits.suspect_reporters`` hosts or more."""
        ...

    @abc.abstractmethod
    async def corrupt_reporters(self, swarm_id: str, peer_id: str) -> dict[str, int]:
        """The reporter hosts counted for ``peer_id`` in the swarm, with the corrupt chunks
        each reported last."""
        ...

    @abc.abstractmethod
    async def swarm_page(self, offset: int, limit: int) -> SwarmPage:
        """The IDs of at most ``limit`` swarms from rank ``offset`` (0: the first) in ascending
        code-point order, and the number of swarms (obligation 14)."""
        ...

    @abc.abstractmethod
    async def swarm_views(
        self, swarm_ids: Sequence[str], *, limit: int, maps: int = 0
    ) -> list[SwarmView]:
        """One :class:`SwarmView` per ID asked for, in order (obligation 14).

        Each holds the swarm's number of members and its members (all of them when there are
        at most ``limit``, else a random sample of ``limit``) with their statistics for the
        swarm; the first ``maps`` members of each also carry their content map.  On Redis
        one script reads every swarm asked for.
        """
        ...

    @abc.abstractmethod
    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer, one per swarm (peer-wide ones included)."""
        ...

    @abc.abstractmethod
    async def expire(self, now: float) -> list[str]:
        """Delete every peer whose deadline is at or before ``now``; return their IDs."""
        ...

    @abc.abstractmethod
    async def next_deadline(self) -> float | None:
        """The earliest deadline of a stored peer, or None when there is no peer."""
        ...

    @abc.abstractmethod
    async def counts(self) -> StorageCounts:
        """How many peers, non-empty swarms and memberships are stored."""
        ...

    # -- one round trip per request (remote backends) ----------------------------------------
    #
    # A remote backend may make a request's change on a guess of the stored record, checked
    # where the record is (a Guard), in one round trip: the tracker reads nothing first.  Each
    # returns None when the guess is wrong, having changed nothing; the tracker then reads the
    # record and decides as usual.  These defaults (a store in this process) never guess.

    guarded: bool = False
    """Whether the ``*_guarded`` methods and :meth:`register_new` are worth calling."""

    async def find_guarded(
        self,
        peer_id: str,
        swarm_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, PeerListRead | None] | None:
        """When ``guard`` holds (``swarm_id`` among its swarms): write the record's new
        ``state``, ``addresses`` (None: the stored ones, the last of which, REFLEXIVE, is
        replaced by ``reflexive``; the guard fails when it is not REFLEXIVE) and ``deadline``
        (grace cleared), then read the
        swarm's suspects and members as :meth:`members` does (``limit`` None: no list).
        Returns the new record and the list read; None when the guard fails."""
        return None

    async def report_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        limits: Limits | None = None,
    ) -> PeerRecord | None:
        """When ``guard`` holds (every swarm the report names among its swarms): what
        :meth:`put_report` writes (within ``limits``), with the record changed as in
        :meth:`find_guarded`.  Returns the new record; None when the guard fails."""
        return None

    async def join_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, list[PeerListRead]] | None:
        """When ``guard`` holds and the peer is a member of none of the swarms of ``join``:
        the record changed as in :meth:`find_guarded` and the swarms joined, as one
        :meth:`update` within ``limits`` (raising as it does), then the suspects and members
        of each swarm of ``lists``.  None when the guard fails (nothing written)."""
        return None

    async def delete_guarded(self, peer_id: str, guard: Guard) -> bool | None:
        """When ``guard`` holds, :meth:`delete_peer` (True); None when it fails."""
        return None

    async def register_new(
        self,
        record: PeerRecord,
        *,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> list[PeerListRead] | None:
        """When the peer has no record: :meth:`update` (``join``, within ``limits``, raising as
        it does), then the suspects and members of each swarm of ``lists``.  None when the
        peer is registered (nothing written)."""
        return None

    async def expire_next(self, now: float) -> tuple[list[str], float | None]:
        """:meth:`expire`, then :meth:`next_deadline` (a remote backend: one round trip)."""
        return await self.expire(now), await self.next_deadline()

    async def check(self) -> None:
        """Raise :class:`~ppsp.errors.ServiceUnavailable` unless the store can be used now.

        Called once before a tracker starts serving; the default (a store in this process)
        always can.
        """
        return None

    async def close(self) -> None:
        """Release the backend's resources (connections); the default does nothing."""
        return None
