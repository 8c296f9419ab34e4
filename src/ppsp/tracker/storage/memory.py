"""In-memory storage backend, sharded by swarm hash.

Swarms are spread over a fixed number of shards by the hash of their ID (as chihaya's memory
store does), so that each shard stays a small dictionary and could later carry its own lock.
Peers live in one dictionary.  Every per-peer and per-swarm object uses ``__slots__`` to keep
a membership compact (see :func:`measure_membership_bytes`).  Each membership is kept as the
:class:`~ppsp.tracker.storage.base.SwarmMember` that :meth:`MemoryStorage.members` hands out
(replaced whenever the peer's mode or addresses change), so that listing a swarm builds nothing;
each swarm also keeps its members grouped by rank profile, so that a peer list ranks a few groups
rather than every member and draws from them without copying them
(:meth:`MemoryStorage.member_groups`).  A group is a plain list used as an indexable set: each
member keeps its position in it (a slot of the member, see
:class:`~ppsp.tracker.storage.base.SwarmMember`), a removal moves the group's last member into
the hole, and a member replaced within its group takes its predecessor's place.  A group of
at least 64 members spread over at most 16 network prefixes also keeps its count of members per
prefix (:class:`~ppsp.tracker.storage.base.MemberList`), so that a peer list of a crowded swarm
(a lab, a campus) knows when no member of the group can take a first-round place
(:func:`~ppsp.tracker.peerlist.select_from_groups`).

Timers are a time wheel of one-second buckets of peer IDs
(:class:`~ppsp.tracker.storage.wheel.TimeWheel`, 8 bytes per peer, a deadline moved later
filed anew only when its old second comes); expiry takes :data:`EXPIRE_BATCH` peers a call.

Memory per registered peer is what this module is shaped by (``python -m bench.tracker_memory``
measures it): a peer costs one entry in the peer table, its :class:`_Peer`, its record (held as
given), one :class:`~ppsp.tracker.storage.base.SwarmMember` and one entry in its swarm's member
table and rank group per membership, and 8 bytes in the wheel.  A peer in exactly one swarm
shares that swarm's one-element tuple of IDs (``_Swarm.solo``) instead of a tuple of its own.

The IDs of the swarms are also kept in code-point order
(:class:`~ppsp.tracker.storage.swarm_index.SortedIds`), added when a swarm gets its first member
and removed with its last, so that the dashboard's pages of swarms
(:meth:`MemoryStorage.swarm_page`) cost the number of blocks plus the page.

The bounds of :meth:`MemoryStorage.update` read counters kept as the state changes: the number
of peers (the peer table's size), of swarms and of memberships, and one dictionary entry per
host address holding registrations (host -> peers; the host string is the one in the peers'
records, so a host costs one entry).  The methods are coroutines that never suspend, so one
call is one atomic change in a single-threaded event loop.
"""

from __future__ import annotations

import random
import sys
import tracemalloc
from collections.abc import Callable, Iterable, Sequence

from ppsp.tracker.limits import Limits
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import (
    MemberGroup,
    MemberList,
    MemberSlots,
    MemberView,
    PeerRecord,
    RankProfile,
    ReportOutcome,
    Storage,
    StorageCounts,
    SwarmMember,
    SwarmPage,
    SwarmView,
    limit_error,
    prefix_of,
    rank_profile,
    report_outcome,
)
from ppsp.tracker.storage.swarm_index import SortedIds
from ppsp.tracker.storage.wheel import TimeWheel
from ppsp.wire.builder import keyword_builder
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    CorruptPeerReport,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    StreamStatistics,
)

__all__ = ["MemoryStorage", "measure_membership_bytes"]

EXPIRE_BATCH = 10_000
"""Most peers one :meth:`MemoryStorage.expire` deletes (80 ms of work, measured): the tracker's
expiry task calls again 10 ms later while more are due, so a mass expiry (every timer of a
million peers at once) is served between, not a pause of seconds."""

_PEER_WIDE = ""
"""Statistics key of statistics that name no swarm."""


_SHARED_PROFILES = 4096
"""Most distinct rank profiles one storage shares between its peers."""

_build_member = keyword_builder(SwarmMember)
"""SwarmMember(...) from the same keyword arguments, at half the cost (ppsp.wire.builder)."""

_SET_POSITION: Callable[[SwarmMember, int], None] = vars(MemberSlots)["_position"].__set__
"""Writes a member's ``_position`` slot (a frozen dataclass refuses ``setattr``)."""

_SET_PREFIX: Callable[[SwarmMember, str | None], None] = vars(MemberSlots)["_prefix"].__set__
"""Writes a member's ``_prefix`` slot."""

# Writers of a stored record's fields, used only to put back an *equal* value the storage
# already holds (see MemoryStorage._put): the record stays the value it was.
_SET_PEER_ID: Callable[[PeerRecord, str], None] = vars(PeerRecord)["peer_id"].__set__
_SET_HOST: Callable[[PeerRecord, str], None] = vars(PeerRecord)["host"].__set__
_SET_ADDRESSES: Callable[[PeerRecord, tuple[PeerAddress, ...]], None] = vars(PeerRecord)[
    "addresses"
].__set__


def _new_member(
    peer_id: str, mode: PeerMode, addresses: tuple[PeerAddress, ...], prefix: str | None
) -> SwarmMember:
    """A member as this backend keeps it: no content map, its prefix kept in it."""
    member = _build_member(peer_id=peer_id, mode=mode, addresses=addresses)
    _SET_PREFIX(member, prefix)
    return member


def _prefix(addresses: tuple[PeerAddress, ...]) -> str | None:
    """The prefix of a member with these addresses, one string per prefix (interned)."""
    if addresses and addresses[-1].type is AddressType.REFLEXIVE:
        return sys.intern(prefix_of(addresses[-1].ip))
    return None


class _Peer:
    __slots__ = ("profile", "record", "stats", "swarms")

    def __init__(self, record: PeerRecord, profile: RankProfile) -> None:
        self.record = record
        # The rank profile of the record's addresses: the group of every membership.
        self.profile = profile
        # Swarm IDs only (a small tuple costs far less than a dict); the mode is kept once, in
        # the swarm's member table.
        self.swarms: tuple[str, ...] = ()
        self.stats: dict[str, StreamStatistics] | None = None


_COUNT_FROM = 64
"""Size from which a group counts its members per prefix (smaller ones are cheap to draw)."""

_COUNT_UNTIL = 32
"""Size under which a group forgets its counts (and whether it was spread)."""

_COUNTED_PREFIXES = 16
"""Most prefixes a group counts; a group spread over more is marked spread, not counted."""


class _Group(MemberList):
    """A rank group's members (an indexable set) with their counts per prefix when few."""

    __slots__ = ("spread",)

    def __init__(self) -> None:
        super().__init__()
        # Over _COUNTED_PREFIXES prefixes when last counted: not counted again until small.
        self.spread = False

    def tally(self, member: SwarmMember, by: int) -> None:
        """Count ``member`` (just added: +1, just removed: -1) in its prefix, if counting."""
        counts = self.prefix_counts
        if by < 0 and len(self) < _COUNT_UNTIL:
            self.prefix_counts = None
            self.spread = False
        elif counts is None:
            if by > 0 and not self.spread and len(self) >= _COUNT_FROM:
                self._recount()
        else:
            prefix = member._prefix
            held = counts.get(prefix, 0) + by
            if held > 0:
                counts[prefix] = held
                if len(counts) > _COUNTED_PREFIXES:
                    self.prefix_counts = None
                    self.spread = True
            else:
                counts.pop(prefix, None)

    def _recount(self) -> None:
        counts: dict[str | None, int] = {}
        for member in self:
            prefix = member._prefix
            counts[prefix] = counts.get(prefix, 0) + 1
            if len(counts) > _COUNTED_PREFIXES:
                self.spread = True
                return
        self.prefix_counts = counts


_NO_SUSPECTS: frozenset[str] = frozenset()


class _Swarm:
    __slots__ = ("groups", "maps", "members", "reports", "solo", "suspects")

    def __init__(self, swarm_id: str) -> None:
        # The swarms of every peer that is in this swarm alone: one tuple shared by them all.
        self.solo = (swarm_id,)
        # Every member as listed (content_map always None here; maps are kept apart).
        self.members: dict[str, SwarmMember] = {}
        # The same members by rank profile (never an empty group), for member_groups(): each
        # member is at index member._position of its group's list.
        self.groups: dict[RankProfile, _Group] = {}
        self.maps: dict[str, ContentMap] | None = None
        # Corrupt-peer reports: reported member -> reporter host -> corrupt chunks (None: none),
        # and the members reported by enough hosts (an immutable set, handed out as it is).
        self.reports: dict[str, dict[str, int]] | None = None
        self.suspects: frozenset[str] = _NO_SUSPECTS

    def place(self, profile: RankProfile, member: SwarmMember) -> None:
        """Add ``member``, or put it in the place of the member with its ID.

        That member, if any, must be in the group of ``profile`` (a member that changes group
        is :meth:`unplace`-d first).
        """
        peer_id = member.peer_id
        old = self.members.get(peer_id)
        self.members[peer_id] = member
        if old is None:
            group = self.groups.get(profile)
            if group is None:
                group = self.groups[profile] = _Group()
            _SET_POSITION(member, len(group))
            group.append(member)
            group.tally(member, 1)
        else:
            position = old._position
            _SET_POSITION(member, position)
            group = self.groups[profile]
            group[position] = member
            if group.prefix_counts is not None and old.addresses is not member.addresses:
                group.tally(old, -1)
                group.tally(member, 1)

    def unplace(self, profile: RankProfile, peer_id: str) -> bool:
        """Remove the member from the members and from the group of ``profile``.

        Returns False when there is no such member.  The group's last member takes the hole.
        """
        member = self.members.pop(peer_id, None)
        if member is None:
            return False
        group = self.groups[profile]
        last = group.pop()
        if last is not member:
            position = member._position
            _SET_POSITION(last, position)
            group[position] = last
        elif not group:
            del self.groups[profile]
            return True
        group.tally(member, -1)
        return True


class MemoryStorage(Storage):
    """Storage in this process's memory; everything is lost when it exits.

    ``shards`` is the number of swarm shards; ``seed`` seeds the sampling of large swarms.
    """

    def __init__(self, *, shards: int = 64, seed: int | None = None) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self._shards: list[dict[str, _Swarm]] = [{} for _ in range(shards)]
        self._peers: dict[str, _Peer] = {}
        self._wheel = TimeWheel()
        self._memberships = 0
        self._swarm_count = 0
        # Registered peers per registering host (records with host "" are counted for none).
        self._hosts: dict[str, int] = {}
        # Memberships with corrupt-peer reports, and those that are suspects.
        self._reported = 0
        self._suspects = 0
        self._rng = random.Random(seed)
        # One object per distinct rank profile, shared by the peers that have it (bounded:
        # hostile peers may advertise any number of distinct ASNs).
        self._profiles: dict[RankProfile, RankProfile] = {}
        # The swarms' IDs in order, for the dashboard's pages.
        self._index = SortedIds()

    def _profile(self, addresses: tuple[PeerAddress, ...]) -> RankProfile:
        profile = rank_profile(addresses)
        shared = self._profiles.get(profile)
        if shared is not None:
            return shared
        if len(self._profiles) < _SHARED_PROFILES:
            self._profiles[profile] = profile
        return profile

    def _shard(self, swarm_id: str) -> dict[str, _Swarm]:
        return self._shards[hash(swarm_id) % len(self._shards)]

    async def get_peer(self, peer_id: str) -> PeerRecord | None:
        """The peer's record, or None when it is not registered."""
        peer = self._peers.get(peer_id)
        return peer.record if peer is not None else None

    async def put_peer(self, record: PeerRecord) -> None:
        """Create or replace the peer's record (and its deadline)."""
        self._put(record)

    def _count_host(self, host: str, by: int) -> None:
        if not host:
            return
        held = self._hosts.get(host, 0) + by
        if held > 0:
            self._hosts[host] = held
        else:
            self._hosts.pop(host, None)

    def _put(self, record: PeerRecord) -> None:
        peer = self._peers.get(record.peer_id)
        if peer is None:
            self._peers[record.peer_id] = _Peer(record, self._profile(record.addresses))
            self._count_host(record.host, 1)
        else:
            # Each request brings a new record, with its own copies of the peer's ID (and
            # often of its unchanged addresses): the record keeps the equal objects already
            # held instead, so that a peer costs one copy of each however often it is written.
            old = peer.record
            if record.peer_id is not old.peer_id:
                _SET_PEER_ID(record, old.peer_id)
            if old.host is not record.host:
                if old.host != record.host:
                    self._count_host(old.host, -1)
                    self._count_host(record.host, 1)
                else:
                    _SET_HOST(record, old.host)
            peer.record = record
            if old.addresses is not record.addresses:
                if old.addresses != record.addresses:
                    self._refresh_members(peer, record, self._profile(record.addresses))
                else:
                    _SET_ADDRESSES(record, old.addresses)
            if old.deadline <= record.deadline:
                return  # filed at or before its old deadline: filed anew when that comes
        wheel = self._wheel
        wheel.add(record.peer_id, record.deadline)
        # Deadlines moved earlier leave entries behind; a rebuild (one pass over every peer)
        # bounds them should they ever dominate.
        if wheel.entries > 4 * len(self._peers) + 1024:
            wheel.rebuild((pid, p.record.deadline) for pid, p in self._peers.items())

    def _refresh_members(self, peer: _Peer, record: PeerRecord, profile: RankProfile) -> None:
        """Give the peer's listed memberships its new addresses (and their rank profile)."""
        old = peer.profile
        peer.profile = profile
        moved = profile != old
        peer_id = record.peer_id
        prefix = _prefix(record.addresses)
        for swarm_id in peer.swarms:
            swarm = self._shard(swarm_id)[swarm_id]
            member = _new_member(peer_id, swarm.members[peer_id].mode, record.addresses, prefix)
            if moved:
                swarm.unplace(old, peer_id)
            # Added to its new group, or in its old place in the same group.
            swarm.place(profile, member)

    async def update(
        self,
        record: PeerRecord,
        *,
        leave: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
        limits: Limits | None = None,
    ) -> None:
        """Write the record, leave and join swarms, after checking ``limits`` (if given)."""
        if limits is not None:
            refused = self._refusal(record, leave, join, limits)
            if refused is not None:
                raise limit_error(refused, limits)
        self._put(record)
        peer_id = record.peer_id
        for swarm_id in leave:
            self._leave(swarm_id, peer_id)
        for swarm_id, mode in join:
            self._join(swarm_id, peer_id, mode)

    def _refusal(
        self,
        record: PeerRecord,
        leave: Sequence[str],
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
    ) -> str | None:
        """The bound the change would pass (a name of LIMIT_CODES), or None.

        Counted from the state before the change, as the Redis script does.
        """
        peer = self._peers.get(record.peer_id)
        current: tuple[str, ...] = ()
        if peer is None:
            held = self._hosts.get(record.host, 0) if record.host else 0
            if limits.per_host and held >= limits.peers_per_host:
                return "host"
        else:
            current = peer.swarms
        count = len(current)
        memberships = swarms = 0
        for swarm_id in leave:
            if swarm_id in current:
                count -= 1
                memberships -= 1
                if len(self._shard(swarm_id)[swarm_id].members) == 1:
                    swarms -= 1
        for swarm_id, _ in join:
            if swarm_id not in current:
                count += 1
                memberships += 1
                if swarm_id not in self._shard(swarm_id):
                    swarms += 1
        if count > len(current) and count > limits.swarms_per_peer:
            return "peer"
        if peer is None and len(self._peers) >= limits.peers_total:
            return "peers"
        if swarms > 0 and self._swarm_count + swarms > limits.swarms_total:
            return "swarms"
        if memberships > 0 and self._memberships + memberships > limits.memberships_total:
            return "memberships"
        return None

    async def peers_of_host(self, host: str) -> int:
        """How many stored peers ``host`` registered."""
        return self._hosts.get(host, 0) if host else 0

    async def delete_peer(self, peer_id: str) -> bool:
        """Remove the peer from every swarm and forget it."""
        return self._delete(peer_id)

    def _delete(self, peer_id: str) -> bool:
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return False
        self._count_host(peer.record.host, -1)
        for swarm_id in peer.swarms:
            self._drop_member(swarm_id, peer_id, peer.profile)
        return True

    def _drop_member(self, swarm_id: str, peer_id: str, profile: RankProfile) -> bool:
        shard = self._shard(swarm_id)
        swarm = shard.get(swarm_id)
        if swarm is None or not swarm.unplace(profile, peer_id):
            return False
        self._memberships -= 1
        if swarm.reports is not None and peer_id in swarm.reports:
            self._drop_reports(swarm, peer_id)
        if swarm.maps is not None:
            swarm.maps.pop(peer_id, None)
            if not swarm.maps:
                swarm.maps = None
        if not swarm.members:
            del shard[swarm_id]
            self._swarm_count -= 1
            self._index.remove(swarm_id)
        return True

    async def memberships(self, peer_id: str) -> dict[str, PeerMode]:
        """The swarms the peer has joined, with its mode in each."""
        peer = self._peers.get(peer_id)
        return {} if peer is None else self._modes(peer_id, peer.swarms)

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """The peer's record and memberships, from one look-up of the peer."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return None, {}
        return peer.record, self._modes(peer_id, peer.swarms)

    def _modes(self, peer_id: str, swarms: Iterable[str]) -> dict[str, PeerMode]:
        return {s: self._shard(s)[s].members[peer_id].mode for s in swarms}

    async def join(self, swarm_id: str, peer_id: str, mode: PeerMode) -> None:
        """Add a registered peer to a swarm (no-op for an unregistered peer)."""
        self._join(swarm_id, peer_id, mode)

    def _join(self, swarm_id: str, peer_id: str, mode: PeerMode) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        shard = self._shard(swarm_id)
        swarm = shard.get(swarm_id)
        if swarm is None:
            swarm = shard[swarm_id] = _Swarm(swarm_id)
            self._swarm_count += 1
            self._index.add(swarm_id)
        if peer_id not in swarm.members:
            self._memberships += 1
            peer.swarms = (*peer.swarms, swarm_id) if peer.swarms else swarm.solo
        record = peer.record
        addresses = record.addresses
        # The member holds the record's copy of the ID (one string per peer).
        member = _new_member(record.peer_id, mode, addresses, _prefix(addresses))
        swarm.place(peer.profile, member)

    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there."""
        return self._leave(swarm_id, peer_id)

    def _leave(self, swarm_id: str, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        if peer is None or swarm_id not in peer.swarms:
            return False
        rest = tuple(s for s in peer.swarms if s != swarm_id)
        if len(rest) == 1:
            # Back in one swarm: share that swarm's tuple (it exists: the peer is in it).
            rest = self._shard(rest[0])[rest[0]].solo
        peer.swarms = rest
        if peer.stats is not None:
            peer.stats.pop(swarm_id, None)
        return self._drop_member(swarm_id, peer_id, peer.profile)

    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm: all of them, or a random sample of at most ``limit``."""
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None:
            return []
        members = swarm.members
        if limit is not None and len(members) > limit:
            chosen = [members[pid] for pid in self._rng.sample(list(members), limit)]
        else:
            chosen = list(members.values())
        maps = swarm.maps if with_maps else None
        if not maps:
            return chosen
        return [
            member
            if (found := maps.get(member.peer_id)) is None
            else SwarmMember(
                peer_id=member.peer_id,
                mode=member.mode,
                addresses=member.addresses,
                content_map=found,
            )
            for member in chosen
        ]

    async def member_groups(self, swarm_id: str, *, limit: int | None = None) -> list[MemberGroup]:
        """Members of the swarm by rank profile: all of them (``limit`` unused), not copied.

        The groups are kept up to date as members join, leave and change addresses, so listing
        them costs one entry per group: the sequences are the storage's own lists (read-only,
        valid until the next call, as :meth:`Storage.member_groups` says).
        """
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None:
            return []
        return list(swarm.groups.items())

    async def put_content_map(self, peer_id: str, content_map: ContentMap) -> bool:
        """Store the peer's content map for its swarm; False when not a member."""
        swarm = self._shard(content_map.swarm_id).get(content_map.swarm_id)
        if swarm is None or peer_id not in swarm.members:
            return False
        if swarm.maps is None:
            swarm.maps = {}
        swarm.maps[peer_id] = content_map
        return True

    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None or swarm.maps is None:
            return None
        return swarm.maps.get(peer_id)

    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer for ``stats.swarm_id``."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        if peer.stats is None:
            peer.stats = {}
        peer.stats[stats.swarm_id if stats.swarm_id is not None else _PEER_WIDE] = stats

    def _drop_reports(self, swarm: _Swarm, peer_id: str) -> None:
        """Forget the reports about a member that leaves the swarm."""
        assert swarm.reports is not None
        del swarm.reports[peer_id]
        self._reported -= 1
        if not swarm.reports:
            swarm.reports = None
        if peer_id in swarm.suspects:
            swarm.suspects = swarm.suspects - {peer_id}
            self._suspects -= 1

    async def add_corrupt_reports(
        self,
        reporter_id: str,
        reporter_host: str,
        reports: Sequence[CorruptPeerReport],
        limits: Limits,
    ) -> list[ReportOutcome]:
        """Count corrupt-peer reports (obligation 13); the outcome of each."""
        reporter = self._peers.get(reporter_id)
        outcomes: list[ReportOutcome] = []
        for report in reports:
            swarm = self._shard(report.swarm_id).get(report.swarm_id)
            reported = self._peers.get(report.peer_id)
            ignored = report_outcome(
                report,
                reporter_id=reporter_id,
                reporter_host=reporter_host,
                reporter_swarms=() if reporter is None else reporter.swarms,
                reported=None if reported is None else reported.record,
                reported_member=swarm is not None and report.peer_id in swarm.members,
            )
            if ignored is not None or swarm is None:
                outcomes.append(ReportOutcome.IGNORED)
                continue
            if swarm.reports is None:
                swarm.reports = {}
            hosts = swarm.reports.get(report.peer_id)
            if hosts is None:
                hosts = swarm.reports[report.peer_id] = {}
                self._reported += 1
            if reporter_host in hosts:
                hosts[reporter_host] = report.corrupt_chunks
                outcomes.append(ReportOutcome.REPEATED)
            elif len(hosts) >= limits.reporters_kept:
                outcomes.append(ReportOutcome.REPEATED)
            else:
                hosts[reporter_host] = report.corrupt_chunks
                outcomes.append(ReportOutcome.COUNTED)
                if len(hosts) >= limits.suspect_reporters and report.peer_id not in swarm.suspects:
                    swarm.suspects = swarm.suspects | {report.peer_id}
                    self._suspects += 1
        return outcomes

    async def suspects(self, swarm_id: str) -> frozenset[str]:
        """Members of the swarm reported by enough distinct hosts."""
        swarm = self._shard(swarm_id).get(swarm_id)
        return _NO_SUSPECTS if swarm is None else swarm.suspects

    async def corrupt_reporters(self, swarm_id: str, peer_id: str) -> dict[str, int]:
        """The reporter hosts counted for ``peer_id`` in the swarm."""
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None or swarm.reports is None:
            return {}
        return dict(swarm.reports.get(peer_id, {}))

    async def swarm_page(self, offset: int, limit: int) -> SwarmPage:
        """At most ``limit`` swarm IDs from rank ``offset``, in order, and how many swarms."""
        return SwarmPage(
            total=self._swarm_count,
            swarm_ids=tuple(self._index.page(max(0, offset), limit)),
        )

    async def swarm_views(
        self, swarm_ids: Sequence[str], *, limit: int, maps: int = 0
    ) -> list[SwarmView]:
        """Each swarm's member count and (a sample of ``limit`` of) its members."""
        return [self._view(swarm_id, max(0, limit), maps) for swarm_id in swarm_ids]

    def _view(self, swarm_id: str, limit: int, maps: int) -> SwarmView:
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None:
            return SwarmView(swarm_id=swarm_id, members=0)
        count = len(swarm.members)
        chosen: list[SwarmMember]
        if count <= limit:
            chosen = list(swarm.members.values())
        else:
            # A sample by rank among the rank groups' lists: no list of every member is made.
            groups = list(swarm.groups.values())
            chosen = []
            group, base = 0, 0
            for rank in sorted(self._rng.sample(range(count), limit)):
                while rank >= base + len(groups[group]):
                    base += len(groups[group])
                    group += 1
                chosen.append(groups[group][rank - base])
        stored_maps = swarm.maps or {}
        sample: list[MemberView] = []
        for at, member in enumerate(chosen):
            peer = self._peers.get(member.peer_id)
            stats = peer.stats.get(swarm_id) if peer is not None and peer.stats else None
            found = stored_maps.get(member.peer_id) if at < maps else None
            if found is not None:
                member = SwarmMember(
                    peer_id=member.peer_id,
                    mode=member.mode,
                    addresses=member.addresses,
                    content_map=found,
                )
            sample.append(MemberView(member=member, stats=stats))
        return SwarmView(swarm_id=swarm_id, members=count, sample=tuple(sample))

    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer, one per swarm."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.stats is None:
            return ()
        return tuple(peer.stats.values())

    async def expire(self, now: float) -> list[str]:
        """Delete the peers whose deadline is at or before ``now``, at most
        :data:`EXPIRE_BATCH` of them (the next deadline is then already due); return their
        IDs."""
        removed = self._wheel.due(now, self._deadline_of, EXPIRE_BATCH)
        for peer_id in removed:
            self._delete(peer_id)
        return removed

    def _deadline_of(self, peer_id: str) -> float | None:
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.record.deadline

    async def next_deadline(self) -> float | None:
        """The earliest deadline of a stored peer."""
        return self._wheel.earliest(self._deadline_of)

    async def counts(self) -> StorageCounts:
        """How many peers, non-empty swarms and memberships are stored."""
        return StorageCounts(
            peers=len(self._peers),
            swarms=self._swarm_count,
            memberships=self._memberships,
            hosts=len(self._hosts),
            reported=self._reported,
            suspects=self._suspects,
        )


def measure_membership_bytes(memberships: int = 100_000, swarms: int = 1_000) -> float:
    """Bytes of memory per swarm membership, measured with tracemalloc.

    Worst case for the ratio: every peer is in exactly one swarm, so each membership also
    carries a whole peer record with an advertised and a REFLEXIVE address.  Not a test; run
    ``python -c "from ppsp.tracker.storage.memory import measure_membership_bytes as m;
    print(m())"``.
    """

    async def fill(storage: MemoryStorage) -> None:
        for i in range(memberships):
            peer_id = f"{i:012x}"
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            await storage.put_peer(
                PeerRecord(
                    peer_id=peer_id,
                    version=ProtocolVersion.V1_1,
                    state=PeerState.TRACKING,
                    addresses=(
                        PeerAddress(
                            ip=ip,
                            port=7000,
                            family=AddressFamily.IPV4,
                            type=AddressType.HOST,
                            peer_protocol="PPSP-PP/0.1",
                        ),
                        PeerAddress(ip=ip, port=40000 + i % 20000, type=AddressType.REFLEXIVE),
                    ),
                    deadline=1000.0 + i,
                )
            )
            await storage.join(f"swarm-{i % swarms}", peer_id, PeerMode.LEECH)

    def run(storage: MemoryStorage) -> None:
        coro = fill(storage)
        # The memory backend never suspends, so one send() runs the coroutine to completion
        # without an event loop.
        try:
            coro.send(None)
        except StopIteration:
            return
        raise RuntimeError("memory storage suspended unexpectedly")

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storage = MemoryStorage()
        run(storage)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del storage
    return (after - before) / memberships
