"""In-memory storage backend, sharded by swarm hash.

Swarms are spread over a fixed number of shards by the hash of their ID (as chihaya's memory
store does), so that each shard stays a small dictionary and could later carry its own lock.
Peers live in one dictionary.  Memory per registered peer is what this module is shaped by
(``python -m bench.tracker_memory`` measures it; docs/BENCHMARKS.md, issue 16): a peer costs
one entry in the peer table and one :class:`~ppsp.tracker.storage.memory_swarms.PeerEntry`
holding its record's fields (the record object handed in is not kept: :meth:`get_peer` builds
one, :mod:`ppsp.tracker.storage.memory_records`), its addresses packed in bytes
(:mod:`ppsp.wire.packed`: 2 bytes plus 6 an address instead of a tuple of address
objects and their strings); in one swarm (the common case) the entry is also its member there,
and a peer in several swarms has one :class:`~ppsp.tracker.storage.base.SwarmMember` per
membership (a :class:`~ppsp.tracker.storage.memory_swarms.PackedMember` sharing those bytes);
each member takes one slot of its swarm's rank group; 8 bytes in the wheel, and a count per
registering host.

Each membership is kept as the :class:`~ppsp.tracker.storage.base.SwarmMember` that
:meth:`MemoryStorage.members` hands out (replaced, never changed, whenever the peer's mode or
addresses change, or, for an entry that is its peer's member, when it stops being one), so that
listing a swarm builds nothing.  A swarm keeps its members grouped by rank profile
(:class:`~ppsp.tracker.storage.memory_swarms.SwarmEntry`), so that a peer list ranks a few
groups rather than every member and draws from them without copying them
(:meth:`MemoryStorage.member_groups`); a member is found through its peer, not through a table
of the swarm's members by ID.  A group of at least 64 members spread over at most 16 network
prefixes also keeps its count of members per prefix
(:class:`~ppsp.tracker.storage.base.MemberList`), so that a peer list of a crowded swarm (a lab,
a campus) knows when no member of the group can take a first-round place
(:func:`~ppsp.tracker.peerlist.select_from_groups`).

Timers are a time wheel of one-second buckets of peer IDs
(:class:`~ppsp.tracker.storage.wheel.TimeWheel`, 8 bytes per peer, a deadline moved later
filed anew only when its old second comes); expiry takes :data:`EXPIRE_BATCH` peers a call.

The IDs of the swarms are also kept in code-point order
(:class:`~ppsp.tracker.storage.swarm_index.SortedIds`), added when a swarm gets its first member
and removed with its last, so that the dashboard's pages of swarms
(:meth:`MemoryStorage.swarm_page`) cost the number of blocks plus the page.

The bounds of :meth:`MemoryStorage.update` read counters kept as the state changes: the number
of peers (the peer table's size), of swarms and of memberships, and one dictionary entry per
host address holding registrations (host -> peers; an entry keeps no host of its own when its
addresses tell it: :attr:`~ppsp.tracker.storage.memory_swarms.PeerEntry.host`).  The methods
are coroutines that never suspend, so one call is one atomic change in a single-threaded event
loop.

The state itself, and the writing of a peer's record into its entry (every request of a
registered peer), are the base class's: :class:`~ppsp.tracker.storage.memory_peers.PeerTable`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppsp.tracker.limits import Limits
from ppsp.tracker.storage.base import (
    MemberGroup,
    PeerRecord,
    RankProfile,
    ReportOutcome,
    StorageCounts,
    SwarmMember,
    SwarmPage,
    SwarmView,
    limit_error,
)
from ppsp.tracker.storage.memory_peers import SHARED_PROFILES, PeerTable
from ppsp.tracker.storage.memory_records import believed, record_of
from ppsp.tracker.storage.memory_reports import kept_map, kept_stats, kept_weight, map_of, stats_of
from ppsp.tracker.storage.memory_swarms import (
    COUNT_FROM,
    COUNT_UNTIL,
    PeerEntry,
    SwarmEntry,
    become_member,
    entry_stored,
    new_member,
    read_deadline,
    read_held,
    read_joined,
    set_joined,
    with_mode,
)
from ppsp.wire.packed import packed_host
from ppsp.wire.tracker import ContentMap, CorruptPeerReport, PeerMode, StreamStatistics

__all__ = ["EXPIRE_BATCH", "MemoryStorage"]

EXPIRE_BATCH = 10_000
"""Most peers one :meth:`MemoryStorage.expire` deletes (80 ms of work, measured): the tracker's
expiry task calls again 10 ms later while more are due, so a mass expiry (every timer of a
million peers at once) is served between, not a pause of seconds."""

_PEER_WIDE = ""
"""Statistics key of statistics that name no swarm."""

# The most rank profiles shared (kept with the peer table; read by its tests here).
_SHARED_PROFILES = SHARED_PROFILES

# The rank groups' sizes of counting (kept with the groups; read by their tests here).
_COUNT_FROM = COUNT_FROM
_COUNT_UNTIL = COUNT_UNTIL

_NO_SUSPECTS: frozenset[str] = frozenset()


class MemoryStorage(PeerTable):
    """Storage in this process's memory; everything is lost when it exits.

    ``shards`` is the number of swarm shards; ``seed`` seeds the sampling of large swarms.
    The state, and the writing of a peer's record into it, are its base class's
    (:class:`~ppsp.tracker.storage.memory_peers.PeerTable`).
    """

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
                if self._shard(swarm_id)[swarm_id].count == 1:
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
        kind = peer.kind  # PeerEntry.host inline (an expiry sweep runs this for every peer)
        host = kind[5] if len(kind) == 6 else packed_host(read_held(peer)[8:]) or ""
        self._count_host(host, -1)
        if self._stats:
            self._stats.pop(peer_id, None)
        joined = read_joined(peer)  # PeerEntry.swarms without a property call
        if type(joined) is tuple:
            if joined:  # one swarm: the entry is its member
                self._drop_member(joined[0], peer, kind[3], host)
        else:
            for swarm_id, member in zip(peer.swarms, peer.members(), strict=True):
                self._drop_member(swarm_id, member, kind[3], host)
        return True

    def _drop_member(
        self, swarm_id: str, member: SwarmMember, profile: RankProfile, host: str
    ) -> None:
        """Remove a held member from its swarm (the swarm with it, when it was the last);
        ``host``: the host its peer is counted for."""
        shard = self._shard(swarm_id)
        swarm = shard[swarm_id]
        swarm.unplace(profile, member)
        self._memberships -= 1
        peer_id = member.peer_id
        if swarm.reports is not None and peer_id in swarm.reports:
            self._drop_reports(swarm, peer_id)
        if swarm.maps is not None:
            self._weights.add(host, -swarm.drop_map(peer_id))
        if not swarm.count:
            del shard[swarm_id]
            self._swarm_count -= 1
            self._index.remove(swarm_id)

    async def memberships(self, peer_id: str) -> dict[str, PeerMode]:
        """The swarms the peer has joined, with its mode in each."""
        peer = self._peers.get(peer_id)
        return {} if peer is None else self._modes(peer)

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """The peer's record and memberships, from one look-up of the peer."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return None, {}
        return record_of(peer), self._modes(peer)

    @staticmethod
    def _modes(peer: PeerEntry) -> dict[str, PeerMode]:
        joined = read_joined(peer)  # PeerEntry.swarms without a property call
        if type(joined) is tuple:
            return {joined[0]: peer.kind[4]} if joined else {}
        return {s: m.mode for s, m in zip(peer.swarms, peer.members(), strict=True)}

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
            swarm = shard[swarm_id] = SwarmEntry(swarm_id)
            self._swarm_count += 1
            self._index.add(swarm_id)
        profile = peer.kind[3]
        swarms = peer.swarms
        if not swarms:  # the common case, a peer's first swarm: the entry is its member
            become_member(peer, mode, swarm.solo)
            swarm.place(profile, peer, None)
            self._memberships += 1
            return
        if len(swarms) == 1:
            if swarms[0] == swarm_id:
                if peer.mode is not mode:  # a new mode: a new member in the same place
                    fresh = with_mode(peer, mode)
                    swarm.place(profile, fresh, peer)
                    self._peers[peer.peer_id] = fresh
                return
            # A second swarm: the entry stops being a member; a member of its own takes its
            # place in its first swarm, and the peer a new entry (the old one was handed out).
            first_id = swarms[0]
            stored = entry_stored(peer)
            kept = new_member(peer.peer_id, peer.mode, stored, peer._prefix)
            self._shard(first_id)[first_id].place(profile, kept, peer)
            member = new_member(peer.peer_id, mode, stored, peer._prefix)
            swarm.place(profile, member, None)
            fresh = peer.copy()
            set_joined(fresh, (first_id, swarm.solo[0]), (kept, member))
            self._peers[peer.peer_id] = fresh
            self._memberships += 1
            return
        old = peer.member_in(swarm_id)
        if old is not None and old.mode is mode:
            return
        # The member holds the entry's copy of the ID (one string per peer).
        member = new_member(peer.peer_id, mode, entry_stored(peer), peer._prefix)
        swarm.place(profile, member, old)
        members = peer.members()
        if old is None:
            self._memberships += 1
            set_joined(peer, (*swarms, swarm.solo[0]), (*members, member))
        else:
            at = swarms.index(swarm_id)
            set_joined(peer, swarms, (*members[:at], member, *members[at + 1 :]))

    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there."""
        return self._leave(swarm_id, peer_id)

    def _leave(self, swarm_id: str, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        swarms = peer.swarms
        if swarm_id not in swarms:
            return False
        profile = peer.kind[3]
        member: SwarmMember
        if len(swarms) == 1:
            # The entry was the member (handed out): the peer, in no swarm, gets a new one.
            member = peer
            fresh = peer.copy()
            set_joined(fresh, (), ())
            self._peers[peer.peer_id] = fresh
        else:
            at = swarms.index(swarm_id)
            members = peer.members()
            member = members[at]
            rest_ids, rest = swarms[:at] + swarms[at + 1 :], members[:at] + members[at + 1 :]
            if len(rest) == 1:
                # Back in one swarm: the entry (never handed out) becomes the member there.
                other, other_id = rest[0], rest_ids[0]
                become_member(peer, other.mode, self._solo(other_id))
                self._shard(other_id)[other_id].place(profile, peer, other)
            else:
                set_joined(peer, rest_ids, rest)
        stats = self._stats.get(peer_id)
        if stats is not None:
            stats.pop(swarm_id, None)
            if not stats:
                del self._stats[peer_id]
        self._drop_member(swarm_id, member, profile, peer.host)
        return True

    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm: all of them, or a random sample of at most ``limit``."""
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None:
            return []
        chosen = swarm.sample(limit, self._rng)
        if limit is not None and swarm.count > limit:
            self._rng.shuffle(chosen)
        return swarm.with_maps(chosen) if with_maps else chosen

    async def member_groups(self, swarm_id: str, *, limit: int | None = None) -> list[MemberGroup]:
        """Members of the swarm by rank profile: all of them (``limit`` unused), not copied.

        The groups are kept up to date as members join, leave and change addresses, so listing
        them costs one entry per group: the sequences are the storage's own lists (read-only,
        valid until the next call, as :meth:`Storage.member_groups` says).
        """
        swarm = self._shard(swarm_id).get(swarm_id)
        if swarm is None:
            return []
        return swarm.group_items()  # type: ignore[return-value]

    async def put_report(
        self,
        record: PeerRecord,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        *,
        limits: Limits | None = None,
    ) -> None:
        """What a STAT_REPORT stores (:meth:`Storage.put_report`), without a coroutine a part."""
        self._put(record)
        for item in stats:
            self._put_stats(record.peer_id, item)
        for content_map in content_maps:
            # The peer is counted for its record's host now (obligation 11).
            self._put_map(record.peer_id, content_map, limits, record.host)

    async def put_content_map(
        self, peer_id: str, content_map: ContentMap, *, limits: Limits | None = None
    ) -> bool:
        """Store the peer's content map for its swarm within ``limits`` (obligation 6); False
        when not a member or not kept."""
        return self._put_map(peer_id, content_map, limits)

    def _put_map(
        self, peer_id: str, content_map: ContentMap, limits: Limits | None, host: str | None = None
    ) -> bool:
        swarm = self._shard(content_map.swarm_id).get(content_map.swarm_id)
        peer = self._peers.get(peer_id)
        if swarm is None or peer is None or content_map.swarm_id not in peer.swarms:
            return False
        maps = swarm.maps
        if maps is None:
            maps = swarm.maps = {}
        old = maps.get(peer_id)
        segments = None if limits is None else limits.map_segments_kept
        kept = kept_map(content_map, segments)  # untracked: memory_reports
        # A peer's maps keep their weight as its content fills (the common case): the weights
        # and the host are read only when it changes.
        if old is None or old[:4] != kept[:4]:
            was = kept_weight(old) if old else 0
            host = peer.host if host is None else host
            if not self._weights.change(host, was, kept_weight(kept), limits):
                self._weights.add(host, -swarm.drop_map(peer_id))
                return False
        # Keyed by the held copy of the ID: a request's own copy would be kept with the map.
        maps[peer.peer_id] = kept
        return True

    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        swarm = self._shard(swarm_id).get(swarm_id)
        found = None if swarm is None or swarm.maps is None else swarm.maps.get(peer_id)
        return None if found is None else map_of(found)

    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer for ``stats.swarm_id``."""
        self._put_stats(peer_id, stats)

    def _put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        held = self._stats.get(peer_id)
        if held is None:
            held = self._stats[peer.peer_id] = {}  # the held copy of the ID, as above
        held[stats.swarm_id if stats.swarm_id is not None else _PEER_WIDE] = kept_stats(stats)

    def _drop_reports(self, swarm: SwarmEntry, peer_id: str) -> None:
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
            if swarm is None or not believed(
                report, reporter_id, reporter_host, reporter, reported
            ):
                outcomes.append(ReportOutcome.IGNORED)
                continue
            outcome, reported_more, suspects_more = swarm.count_report(
                report, reporter_host, limits
            )
            outcomes.append(outcome)
            self._reported += reported_more
            self._suspects += suspects_more
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
        return swarm.view(swarm_id, swarm.sample(limit, self._rng), maps, self._stats)

    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer, one per swarm."""
        held = self._stats.get(peer_id)
        return () if held is None else tuple(map(stats_of, held.values()))

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
        if peer is None:
            return None
        # PeerEntry.deadline without a property call (the sweep reads it twice a peer).
        held = read_held(peer)
        deadline: float = read_deadline(held)[0] if type(held) is bytes else held[1]
        return deadline

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
            map_bytes=self._weights.total,
        )
