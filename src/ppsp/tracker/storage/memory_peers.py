"""The memory backend's peer table: its state, and a peer's record written into its entry.

:class:`PeerTable` holds what :class:`~ppsp.tracker.storage.memory.MemoryStorage` keeps (the
peer table, the swarm shards, the statistics, the time wheel, the counters) and writes a record
into its peer's :class:`~ppsp.tracker.storage.memory_swarms.PeerEntry` (:meth:`PeerTable._put`,
on every request of a registered peer): the fields an unchanged write leaves alone are not
written, addresses that moved are kept anew with their rank profile and prefix, in every swarm
the peer is a member of (:meth:`PeerTable._moved`), the host a peer is counted for follows its
record (:meth:`PeerTable._rehost`), and the deadline is filed in the wheel.  The memory backend
is this class with the rest of the interface: memberships, content maps, statistics, reports,
the dashboard's reads and expiry.

Layer: sans-I/O (the tracker's core), as the rest of the storage package: no I/O, no clock
(deadlines are given).  Imports the storage interface and the memory backend's containers,
never :mod:`~ppsp.tracker.storage.memory` (which imports it).
"""

from __future__ import annotations

import random

# The module, not its table: peer lists import the storage package (which imports this
# module), so a program that imports ppsp.tracker.peerlist first meets this line before the
# table exists.
from ppsp.tracker import peerlist
from ppsp.tracker.storage.base import (
    PeerRecord,
    RankProfile,
    Storage,
    SwarmMember,
    rank_profile,
)
from ppsp.tracker.storage.memory_records import (
    kind_for,
    kind_of,
    prefix_of_stored,
    record_of,
    restored_form,
    stored_form,
)
from ppsp.tracker.storage.memory_reports import KeptStats, MapWeights
from ppsp.tracker.storage.memory_swarms import (
    PeerEntry,
    Stored,
    SwarmEntry,
    entry_stored,
    new_entry,
    new_member,
    pack_deadline,
    read_deadline,
    read_held,
    read_joined,
    set_deadline,
    set_held,
    set_joined,
    set_kind,
    set_stored,
    shared_kind,
)
from ppsp.tracker.storage.swarm_index import SortedIds
from ppsp.tracker.storage.wheel import TimeWheel
from ppsp.wire.packed import packed_host
from ppsp.wire.tracker import PeerAddress, PeerMode

__all__ = ["SHARED_PROFILES", "PeerTable"]

SHARED_PROFILES = 4096
"""Most distinct rank profiles one storage shares between its peers."""


class PeerTable(Storage):
    """The memory backend's state and the writing of peer records into it (see the module).

    ``shards`` is the number of swarm shards; ``seed`` seeds the sampling of large swarms.
    Abstract: :class:`~ppsp.tracker.storage.memory.MemoryStorage` is the backend.
    """

    def __init__(self, *, shards: int = 64, seed: int | None = None) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self._shards: list[dict[str, SwarmEntry]] = [{} for _ in range(shards)]
        self._peers: dict[str, PeerEntry] = {}
        # Latest statistics per peer (swarm ID or "" -> statistics), for the peers that sent any.
        self._stats: dict[str, dict[str, KeptStats]] = {}
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
        # The weight of the content maps kept, per host and in all (obligation 6).
        self._weights = MapWeights()

    def _profile(self, addresses: tuple[PeerAddress, ...]) -> RankProfile:
        profile = rank_profile(addresses)
        shared = self._profiles.get(profile)
        if shared is not None:
            return shared
        if len(self._profiles) < SHARED_PROFILES:
            self._profiles[profile] = profile
        return profile

    def _shard(self, swarm_id: str) -> dict[str, SwarmEntry]:
        return self._shards[hash(swarm_id) % len(self._shards)]

    def _solo(self, swarm_id: str) -> tuple[str]:
        """The shared one-element tuple of a swarm that exists."""
        return self._shard(swarm_id)[swarm_id].solo

    async def get_peer(self, peer_id: str) -> PeerRecord | None:
        """The peer's record, or None when it is not registered."""
        peer = self._peers.get(peer_id)
        return record_of(peer) if peer is not None else None

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
        addresses = record.addresses
        if peer is None:
            stored = stored_form(addresses)
            kind = kind_for(record, self._profile(addresses), PeerMode.LEECH, stored)
            peer = new_entry(
                record.peer_id, kind, stored, prefix_of_stored(stored), record.deadline
            )
            self._peers[record.peer_id] = peer
            self._count_host(record.host, 1)
        else:
            # Each request brings a new record, with its own copies of the peer's host (and
            # often of its unchanged addresses): the entry keeps the equal objects it already
            # holds, so that a peer costs one copy of each however often it is written.
            # The deadline and addresses the entry holds (entry_stored and PeerEntry.deadline
            # inline: this runs for every request of a registered peer).
            both = read_held(peer)
            kind = peer.kind
            # The host the entry was counted for when it is no longer the one its addresses
            # tell after this write (None: the same before and after).
            counted: str | None = None
            held: Stored
            if type(both) is bytes:
                old: float = read_deadline(both)[0]
                held = both[8:]
                changed = restored_form(held, addresses)
                if changed is None:
                    if old != record.deadline:
                        set_held(peer, pack_deadline(record.deadline) + held)
                    same_host = True
                else:
                    # Only the port of the observed address moved (often every request), or
                    # at least the addresses still tell the same host: their layout and the
                    # last one's IP address stay.
                    port_only = (
                        type(changed) is bytes
                        and len(changed) == len(held)
                        and changed[:-2] == held[:-2]
                    )
                    same_host = port_only or (
                        type(changed) is bytes
                        and changed[:2] == held[:2]
                        and changed[-6:-2] == held[-6:-2]
                    )
                    if not same_host and len(kind) == 5:
                        counted = packed_host(held)
                    peer = self._moved(peer, held, changed, addresses, record.deadline, port_only)
                    if not port_only:
                        kind = peer.kind  # a new profile, perhaps
            else:
                held, old = both
                changed = restored_form(held, addresses)
                if changed is None:
                    set_deadline(peer, record.deadline)
                else:
                    peer = self._moved(peer, held, changed, addresses, record.deadline, False)
                    kind = peer.kind
                same_host = False
            # The REFLEXIVE address the tracker saw the peer at is last: when it still tells
            # the host the entry is counted for, there is no host to write (PeerEntry.host).
            host = record.host
            last = addresses[-1] if addresses else None
            if (
                same_host
                and len(kind) == 5
                and last is not None
                and (host is last.ip or host == last.ip)
            ):
                # Counted for the host its addresses tell, as before (the common case).
                if (
                    kind[0] is not record.version
                    or kind[1] is not record.state
                    or kind[2] is not record.grace_used
                ):
                    set_kind(peer, kind_of(record, kind[3], kind[4]))
            else:
                self._rehost(peer, record, counted)
            if old <= record.deadline:
                return  # filed at or before its old deadline: filed anew when that comes
        wheel = self._wheel
        wheel.add(peer.peer_id, record.deadline)
        # Deadlines moved earlier leave entries behind; a rebuild (one pass over every peer)
        # bounds them should they ever dominate.
        if wheel.entries > 4 * len(self._peers) + 1024:
            wheel.rebuild((pid, p.deadline) for pid, p in self._peers.items())

    def _rehost(self, peer: PeerEntry, record: PeerRecord, counted: str | None) -> None:
        """Write the record's version, state and host into an entry whose addresses are
        written (``counted``: the host it was counted for, when its addresses no longer tell
        it; None: the host it holds, or the one they tell)."""
        kind = peer.kind
        if counted is None:
            counted = peer.host
        host = record.host
        if counted != host:
            self._count_host(counted, -1)
            self._count_host(host, 1)
            weight = sum(self._shard(s)[s].map_weight(peer.peer_id) for s in peer.swarms)
            self._weights.move(counted, host, weight)
        fresh = kind_for(record, kind[3], kind[4], entry_stored(peer))
        if fresh != kind:
            set_kind(peer, fresh)

    def _moved(
        self,
        peer: PeerEntry,
        held: Stored,
        changed: Stored,
        addresses: tuple[PeerAddress, ...],
        deadline: float,
        port_only: bool,
    ) -> PeerEntry:
        """Give the peer (and its members) new addresses, kept as ``changed``, with their rank
        profile and prefix, and its new deadline; the peer's entry, a new one when the old one
        was a member.  ``port_only``: both are packed and only the port of the last address
        moved."""
        kind = peer.kind
        old = kind[3]
        if port_only:
            # Only the port of the last address (the observed one) moved: the same rank
            # profile, prefix and group place.  Written in place, also in an entry that is a
            # member (a peer seen from another port, often every request), whose kept list
            # entry is forgotten: no new object is made for it.
            if type(read_joined(peer)) is tuple:
                peerlist.LISTED.forget(peer)
                set_stored(peer, changed, peer._prefix, deadline)
                return peer
            profile, prefix = old, peer._prefix
        else:
            profile, prefix = self._profile(addresses), prefix_of_stored(changed)
            if profile is not old:
                base = shared_kind((kind[0], kind[1], kind[2], profile, kind[4]))
                kind = base if len(kind) == 5 else (*base, kind[5])
        moved = profile != old
        joined = read_joined(peer)  # PeerEntry.swarms without a property call
        swarms = joined if type(joined) is tuple else peer.swarms
        if len(swarms) == 1:
            # One swarm (the common case): the entry is its member, which a change replaces.
            fresh = peer.copy()
            set_stored(fresh, changed, prefix, deadline)
            set_kind(fresh, kind)
            swarm = self._shard(swarms[0])[swarms[0]]
            if moved:
                swarm.unplace(old, peer)
                swarm.place(profile, fresh, None)  # added to its new group
            else:
                swarm.place(profile, fresh, peer)  # in its old place in the same group
            self._peers[peer.peer_id] = fresh
            return fresh
        set_stored(peer, changed, prefix, deadline)
        set_kind(peer, kind)
        if swarms:
            members: list[SwarmMember] = []
            for swarm_id, member in zip(swarms, peer.members(), strict=True):
                swarm = self._shard(swarm_id)[swarm_id]
                fresh_member = new_member(peer.peer_id, member.mode, changed, prefix)
                if moved:
                    swarm.unplace(old, member)
                    swarm.place(profile, fresh_member, None)
                else:
                    swarm.place(profile, fresh_member, member)
                members.append(fresh_member)
            set_joined(peer, swarms, tuple(members))
        return peer
