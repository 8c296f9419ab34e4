"""The memory backend's own shape: its time wheel, shared tuples and bytes per peer.

The storage's behaviour is the conformance suite's (test_conformance.py); these tests pin what
makes the memory backend small: expiry kept as a wheel of one-second buckets with lazy deletion,
one shared tuple of swarm IDs for the peers of one swarm, and the bytes the storage adds per
registered peer beyond the records it is given.
"""

from __future__ import annotations

import copy
import gc
import math
import pickle
import sys
import tracemalloc
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker.peerlist import LISTED, to_peer_infos
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import PeerRecord, SwarmMember
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.tracker.storage.memory_swarms import PackedMember, stored_of
from ppsp.wire.packed import forget_kept
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a memory-storage coroutine (it never suspends) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the memory storage suspended")


def record(i: int, deadline: float) -> PeerRecord:
    """Peer ``i``'s record as the tracker writes it (advertised and REFLEXIVE address)."""
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return PeerRecord(
        peer_id=f"{i:016x}",
        version=ProtocolVersion.V1_1,
        state=PeerState.TRACKING,
        addresses=(
            PeerAddress(ip=ip, port=7000, peer_protocol="PPSP-PP/0.1"),
            PeerAddress(ip=ip, port=40000 + i % 20000, type=AddressType.REFLEXIVE),
        ),
        deadline=deadline,
        host=ip,
    )


# -- the time wheel -----------------------------------------------------------------------------


def test_deadlines_within_one_second_expire_in_order_and_only_when_due() -> None:
    storage = MemoryStorage()
    for i, deadline in enumerate([10.7, 10.2, 10.5, 11.0]):
        run(storage.put_peer(record(i, deadline)))
    assert run(storage.next_deadline()) == 10.2
    # Inside the bucket of second 10: only what is due goes, in deadline order.
    assert run(storage.expire(10.5)) == [f"{1:016x}", f"{2:016x}"]
    assert run(storage.next_deadline()) == 10.7
    assert run(storage.expire(10.6)) == []
    assert run(storage.expire(11.0)) == [f"{0:016x}", f"{3:016x}"]
    assert run(storage.next_deadline()) is None


def test_a_reset_deadline_leaves_its_old_bucket_without_effect() -> None:
    storage = MemoryStorage()
    run(storage.put_peer(record(0, 5.0)))
    run(storage.put_peer(record(0, 5.5)))  # the same second, a later deadline
    run(storage.put_peer(record(0, 9.25)))  # another second
    assert run(storage.next_deadline()) == 9.25
    assert run(storage.expire(9.0)) == []
    assert run(storage.get_peer(f"{0:016x}")) is not None
    # Deleted and registered again within the old second: listed once, when due.
    run(storage.put_peer(record(1, 20.5)))
    run(storage.delete_peer(f"{1:016x}"))
    run(storage.put_peer(record(1, 20.25)))
    assert run(storage.expire(30.0)) == [f"{0:016x}", f"{1:016x}"]
    assert run(storage.counts()).peers == 0


def test_stale_entries_are_dropped_once_they_dominate() -> None:
    storage = MemoryStorage()
    run(storage.put_peer(record(0, 1.0)))
    for step in range(1000):  # a peer kept alive for long: one entry per reset
        run(storage.put_peer(record(0, 2.0 + step)))
    assert storage._wheel.entries <= 2 * 1 + 64 + 1
    assert run(storage.next_deadline()) == 1001.0
    assert run(storage.expire(1000.5)) == []
    assert run(storage.expire(1001.0)) == [f"{0:016x}"]


def test_expiring_within_one_crowded_second_reads_each_peer_once() -> None:
    storage = MemoryStorage()
    peers = 2000
    for i in range(peers):  # every deadline within second 50
        run(storage.put_peer(record(i, 50.0 + i / peers)))
    reads = 0
    deadline_of = storage._deadline_of

    def counted(peer_id: str) -> float | None:
        nonlocal reads
        reads += 1
        return deadline_of(peer_id)

    storage._deadline_of = counted  # type: ignore[method-assign]
    expired: list[str] = []
    for step in range(1, 101):  # an upkeep waking every 10 ms through the second
        expired += run(storage.expire(50.0 + step / 100))
        run(storage.next_deadline())
    assert expired == [f"{i:016x}" for i in range(peers)]
    # Each ID read when its second is opened and when it pops: not once per wake-up.
    assert reads <= 3 * peers + 200, reads


def test_infinite_and_negative_deadlines() -> None:
    storage = MemoryStorage()
    run(storage.put_peer(record(0, math.inf)))
    run(storage.put_peer(record(1, -3.5)))
    assert run(storage.next_deadline()) == -3.5
    assert run(storage.expire(0.0)) == [f"{1:016x}"]
    assert run(storage.next_deadline()) == math.inf
    assert run(storage.expire(1e300)) == []
    assert run(storage.expire(math.inf)) == [f"{0:016x}"]


# -- shared tuples ------------------------------------------------------------------------------


def test_peers_of_one_swarm_share_its_tuple_of_ids() -> None:
    storage = MemoryStorage()
    for i in range(3):
        run(storage.update(record(i, 10.0), join=(("s", PeerMode.LEECH),)))
    run(storage.join("t", f"{2:016x}", PeerMode.SEED))

    def swarms(i: int) -> tuple[str, ...]:
        return storage._peers[f"{i:016x}"].swarms

    assert swarms(0) is swarms(1) == ("s",)
    assert swarms(2) == ("s", "t")
    run(storage.leave("s", f"{2:016x}"))
    assert swarms(2) == ("t",)
    assert swarms(2) is storage._shard("t")["t"].solo
    assert run(storage.memberships(f"{2:016x}")) == {"t": PeerMode.SEED}


# -- one copy of what a peer's records repeat ---------------------------------------------------


def test_rewritten_records_keep_the_held_id_host_and_addresses() -> None:
    storage = MemoryStorage()
    first = record(7, 10.0)
    run(storage.update(first, join=(("s", PeerMode.LEECH),)))
    # The next request's record: equal values, every object new (as a decoder makes them).
    again = record(7, 20.0)
    again = PeerRecord(
        peer_id="".join(list(again.peer_id)),
        version=again.version,
        state=again.state,
        addresses=tuple(
            PeerAddress(**{f: getattr(a, f) for f in a.__slots__}) for a in again.addresses
        ),
        deadline=again.deadline,
        host="".join(list(again.host)),
    )
    assert again.peer_id is not first.peer_id and again.addresses is not first.addresses
    run(storage.put_peer(again))
    stored = run(storage.get_peer(first.peer_id))
    assert stored == again and stored.deadline == 20.0
    assert stored.peer_id is first.peer_id
    assert stored.host is first.host
    # The addresses are kept packed: one bytes object, not the record's (nor its copy's) tuple.
    held = stored_of(storage._peers[first.peer_id])
    assert isinstance(held, bytes) and len(held) == 14
    assert stored.addresses == first.addresses
    (member,) = run(storage.members("s"))
    # A peer in one swarm is its own member there: its entry, sharing the packed bytes.
    assert member is storage._peers[first.peer_id]
    assert isinstance(member, PackedMember) and stored_of(member) == held
    assert member.addresses == stored.addresses and member.peer_id is stored.peer_id
    # A join by a new copy of the ID lists the held one.
    run(storage.join("t", "".join(list(first.peer_id)), PeerMode.SEED))
    (member,) = run(storage.members("t"))
    assert member.peer_id is first.peer_id
    # Changed addresses are taken (and listed).
    moved = record(8, 30.0)
    changed = PeerRecord(
        peer_id=first.peer_id,
        version=first.version,
        state=first.state,
        addresses=moved.addresses,
        deadline=30.0,
        host=first.host,
    )
    run(storage.put_peer(changed))
    assert run(storage.get_peer(first.peer_id)).addresses == moved.addresses
    assert {m.addresses for m in run(storage.members("s"))} == {moved.addresses}


# -- bytes per peer -----------------------------------------------------------------------------


def test_a_peer_entry_keeps_no_host_its_addresses_tell() -> None:
    """An entry is a member's six slots, 80 bytes: its host (the one it is counted for) is the
    REFLEXIVE address its packed addresses end with, and its kind (version, state, profile,
    mode) one tuple shared with the peers of the same kind."""
    storage = MemoryStorage()
    first, second = record(1, 10.0), record(2, 10.0)
    for each in (first, second):
        run(storage.update(each, join=(("s", PeerMode.LEECH),)))
    entry, other = storage._peers[first.peer_id], storage._peers[second.peer_id]
    assert sys.getsizeof(entry) == 80
    assert len(entry.kind) == 5 and entry.kind is other.kind
    assert entry.host == first.host and run(storage.get_peer(first.peer_id)).host == first.host
    assert run(storage.peers_of_host(first.host)) == 1
    run(storage.join("s", first.peer_id, PeerMode.SEED))
    assert storage._peers[first.peer_id].mode is PeerMode.SEED and entry.mode is PeerMode.LEECH


def test_a_host_the_addresses_do_not_tell_is_kept_and_counted() -> None:
    """A peer whose REFLEXIVE address is another host's than the one it is counted for (a
    bearer token moved it), or whose addresses cannot be packed, keeps its host in a kind of
    its own; its count follows the host it is given, and it keeps none again once its
    addresses tell it."""
    storage = MemoryStorage()
    first, elsewhere = record(1, 10.0), record(9, 10.0)
    run(storage.update(first, join=(("s", PeerMode.LEECH),)))
    moved = replace(first, addresses=elsewhere.addresses, deadline=20.0)
    run(storage.put_peer(moved))
    entry = storage._peers[first.peer_id]
    assert len(entry.kind) == 6 and entry.host == first.host and entry.mode is PeerMode.LEECH
    assert run(storage.get_peer(first.peer_id)) == moved
    assert run(storage.peers_of_host(first.host)) == 1
    assert run(storage.peers_of_host(elsewhere.host)) == 0
    recounted = replace(moved, host=elsewhere.host)
    run(storage.put_peer(recounted))
    entry = storage._peers[first.peer_id]
    assert len(entry.kind) == 5 and entry.host == elsewhere.host
    assert run(storage.get_peer(first.peer_id)) == recounted
    assert run(storage.peers_of_host(first.host)) == 0
    assert run(storage.peers_of_host(elsewhere.host)) == 1
    observed = PeerAddress(
        ip="2001:db8::1", port=7000, family=AddressFamily.IPV6, type=AddressType.REFLEXIVE
    )
    v6 = replace(recounted, addresses=(observed,), host="2001:db8::/64")
    run(storage.put_peer(v6))
    entry = storage._peers[first.peer_id]
    assert entry.kind[5:] == ("2001:db8::/64",) and run(storage.get_peer(first.peer_id)) == v6
    assert run(storage.peers_of_host(elsewhere.host)) == 0
    assert run(storage.peers_of_host("2001:db8::/64")) == 1
    run(storage.put_peer(recounted))  # back: the addresses tell the host again
    assert len(storage._peers[first.peer_id].kind) == 5
    assert run(storage.peers_of_host("2001:db8::/64")) == 0
    assert run(storage.delete_peer(first.peer_id))
    assert run(storage.peers_of_host(elsewhere.host)) == 0
    assert (run(storage.counts())).hosts == 0


def test_storage_bytes_per_peer_beyond_the_records() -> None:
    """What the storage adds to each registered peer (one membership), records excluded.

    The records (and their addresses) are built before the measure: they are the tracker's
    (the storage keeps their fields, not them).  Measured at about 246 bytes (a peer-table
    entry and its ``PeerEntry``, which is also the peer's member in its one swarm, the
    addresses packed in 14 bytes after the deadline's 8, the member's slot in its swarm's
    group, the host count, the wheel); 326 with a member object of its own besides the entry
    and 16 packed bytes; 256
    when the storage held the record's own tuple of addresses (no copy, but the tuple and its
    objects for as long as the peer lived); 412 with a heap entry and a tuple of swarm IDs per
    peer.
    """
    peers = 5000
    records = [record(i, 100.0 + i / 50) for i in range(peers)]  # 50 deadlines a second
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storage = MemoryStorage()
        for i, item in enumerate(records):
            run(storage.update(item, join=((f"swarm{i // 100}", PeerMode.LEECH),)))
        forget_kept()  # the bounded tables of wire.packed: not a cost per peer
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert run(storage.counts()).memberships == peers
    per_peer = grown / peers
    assert per_peer < 280, per_peer


def test_storage_bytes_per_peer_with_the_records_it_is_given() -> None:
    """Everything one registered peer (one membership) costs, the records' objects included.

    Each record is built (with new strings, as a decoder makes them) and dropped by the caller
    once written, as the tracker does: the storage keeps the record's fields, not the record
    (about 96 bytes saved), and finds a member through its peer, not through a table of the
    swarm's members (about 33), and keeps the addresses packed, not the record's tuple of
    address objects and their IP strings (about 210), and is the peer's member in its one
    swarm (about 88), whose group is held without a dictionary (224 bytes a swarm), and keeps
    the deadline in the packed value, not the record's ``float`` (24).  Measured at about 388
    bytes; 470 with a member object besides the entry; 683 with the record's
    addresses kept; 772 when the storage kept each record and a member table per swarm.
    """
    peers = 5000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storage = MemoryStorage()
        for i in range(peers):
            item = record(i, 100.0 + i / 50)
            run(storage.update(item, join=((f"swarm{i // 100}", PeerMode.LEECH),)))
            del item
        forget_kept()  # the bounded tables of wire.packed: not a cost per peer
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert run(storage.counts()).memberships == peers
    per_peer = grown / peers
    assert per_peer < 420, per_peer


def test_a_peer_in_one_swarm_is_its_member_and_a_member_handed_out_never_changes() -> None:
    """The entry of a peer in one swarm is listed as its member there (no object besides); a
    member once handed out keeps its fields whatever the peer does next (peer lists keep
    entries by member identity): a new deadline keeps the member, a new mode, new addresses,
    a second swarm or leaving give the peer a new entry and leave the old object as it was.
    The one change written in place is the observed port (the peer seen from another port:
    often every request), which a kept list entry is checked against."""
    storage = MemoryStorage()
    first = record(1, 10.0)
    run(storage.update(first, join=(("a", PeerMode.LEECH),)))
    run(storage.update(record(2, 10.0), join=(("a", PeerMode.SEED),)))
    peer_id = first.peer_id

    def member(swarm_id: str) -> SwarmMember:
        listed: list[SwarmMember] = run(storage.members(swarm_id))
        (found,) = [m for m in listed if m.peer_id == peer_id]
        return found

    def fields(held: SwarmMember) -> tuple[object, ...]:
        return (held.peer_id, held.mode, held.addresses, held.content_map)

    listed = member("a")
    assert listed is storage._peers[peer_id]
    snapshot = fields(listed)
    run(storage.put_peer(replace(first, deadline=20.0, state=PeerState.PEER_REGISTERED)))
    assert member("a") is listed and run(storage.get_peer(peer_id)).deadline == 20.0
    run(storage.join("a", peer_id, PeerMode.SEED))  # a new mode: a new member, same place
    assert member("a").mode is PeerMode.SEED and member("a") is not listed
    assert fields(listed) == snapshot
    listed, snapshot = member("a"), fields(member("a"))
    run(storage.join("b", peer_id, PeerMode.LEECH))  # a second swarm: members of their own
    assert fields(listed) == snapshot and member("a") == listed and member("a") is not listed
    assert member("b").mode is PeerMode.LEECH
    assert run(storage.memberships(peer_id)) == {"a": PeerMode.SEED, "b": PeerMode.LEECH}
    assert run(storage.leave("a", peer_id))  # back in one swarm: the entry is its member
    assert member("b") is storage._peers[peer_id] and member("b").mode is PeerMode.LEECH
    listed, snapshot = member("b"), fields(member("b"))
    advertised, observed = first.addresses
    other_port = replace(first, addresses=(advertised, replace(observed, port=observed.port + 1)))
    run(storage.put_peer(other_port))
    assert member("b") is listed and listed.addresses == other_port.addresses
    listed, snapshot = member("b"), fields(member("b"))
    moved = replace(first, addresses=record(9, 0.0).addresses, deadline=30.0)
    run(storage.put_peer(moved))
    assert member("b").addresses == moved.addresses and fields(listed) == snapshot
    listed, snapshot = member("b"), fields(member("b"))
    assert run(storage.leave("b", peer_id))  # in no swarm: the peer keeps its record
    assert fields(listed) == snapshot and run(storage.memberships(peer_id)) == {}
    assert run(storage.get_peer(peer_id)) == moved
    run(storage.join("c", peer_id, PeerMode.SEED))
    assert member("c") is storage._peers[peer_id] and member("c").addresses == moved.addresses
    assert [m.peer_id for m in run(storage.members("a"))] == [f"{2:016x}"]
    counts = run(storage.counts())
    assert (counts.peers, counts.swarms, counts.memberships) == (2, 2, 2)


def test_a_swarm_of_one_rank_profile_holds_its_group_alone() -> None:
    """A swarm whose members share one rank profile holds that group, not a dictionary of
    groups; a second profile makes the dictionary, and the last group left is held alone."""
    storage = MemoryStorage()
    for i in range(3):
        run(storage.update(record(i, 10.0), join=(("s", PeerMode.LEECH),)))
    swarm = storage._shard("s")["s"]
    (profile, group), *_ = swarm.group_items()
    assert swarm.groups is group and len(group) == 3 and group.profile is profile
    other = replace(record(3, 10.0), addresses=(PeerAddress(ip="10.1.1.1", port=1, asn="AS1"),))
    run(storage.update(other, join=(("s", PeerMode.LEECH),)))
    assert isinstance(swarm.groups, dict) and len(swarm.group_items()) == 2
    assert len(run(storage.member_groups("s"))) == 2
    assert run(storage.delete_peer(other.peer_id))
    assert swarm.groups is group and sorted(m.peer_id for m in group) == [
        f"{i:016x}" for i in range(3)
    ]
    for i in range(3):
        assert run(storage.delete_peer(f"{i:016x}"))
    assert run(storage.counts()).swarms == 0


def test_a_stored_record_is_read_back_equal_not_the_object_written() -> None:
    """Every field of the record, flags included, survives; the written object is not held."""
    storage = MemoryStorage()
    first = record(3, 10.0)
    run(storage.update(first, join=(("s", PeerMode.SEED),)))
    graced = PeerRecord(
        peer_id=first.peer_id,
        version=ProtocolVersion.V1_0,
        state=PeerState.PEER_REGISTERED,
        addresses=first.addresses,
        deadline=12.5,
        grace_used=True,
        host=first.host,
    )
    run(storage.put_peer(graced))
    stored, memberships = run(storage.peer_and_memberships(first.peer_id))
    assert stored == graced and stored is not graced
    assert memberships == {"s": PeerMode.SEED}
    run(storage.put_peer(first))
    assert run(storage.get_peer(first.peer_id)) == first
    assert run(storage.get_peer("nobody")) is None


def test_a_member_is_found_through_its_peer_in_one_and_several_swarms() -> None:
    """Joins, mode changes, address changes and leaves keep each swarm's groups exact."""
    storage = MemoryStorage()
    peer = f"{5:016x}"
    run(storage.update(record(5, 10.0), join=(("a", PeerMode.LEECH),)))
    run(storage.update(record(6, 10.0), join=(("a", PeerMode.LEECH),)))
    run(storage.join("b", peer, PeerMode.SEED))
    run(storage.join("c", peer, PeerMode.LEECH))
    run(storage.join("b", peer, PeerMode.LEECH))  # a new mode: the member replaced in place
    assert run(storage.memberships(peer)) == {
        "a": PeerMode.LEECH,
        "b": PeerMode.LEECH,
        "c": PeerMode.LEECH,
    }
    moved = record(9, 10.0)  # new addresses: every member follows
    run(storage.put_peer(PeerRecord(**{**vars_of(record(5, 10.0)), "addresses": moved.addresses})))
    for swarm_id in ("a", "b", "c"):
        (member,) = [m for m in run(storage.members(swarm_id)) if m.peer_id == peer]
        assert member.addresses == moved.addresses
    assert run(storage.leave("b", peer)) and not run(storage.leave("b", peer))
    assert run(storage.leave("a", peer))
    assert storage._peers[peer].swarms is storage._shard("c")["c"].solo
    assert run(storage.memberships(peer)) == {"c": PeerMode.LEECH}
    assert [m.peer_id for m in run(storage.members("a"))] == [f"{6:016x}"]
    assert run(storage.delete_peer(peer))
    counts = run(storage.counts())
    assert (counts.peers, counts.swarms, counts.memberships) == (1, 1, 1)


def test_statistics_and_maps_are_kept_under_the_held_copy_of_the_id() -> None:
    """A STAT_REPORT's own copy of the peer ID is not kept with its statistics or map."""
    storage = MemoryStorage()
    first = record(4, 10.0)
    run(storage.update(first, join=(("s", PeerMode.LEECH),)))
    copy = "".join(list(first.peer_id))
    run(storage.put_stats(copy, StreamStatistics(swarm_id="s", uploaded_bytes=1)))
    assert run(storage.put_content_map(copy, ContentMap(swarm_id="s", representations=())))
    assert not run(storage.put_content_map(copy, ContentMap(swarm_id="t", representations=())))
    (key,) = storage._stats
    assert key is first.peer_id
    (key,) = storage._shard("s")["s"].maps or {}
    assert key is first.peer_id
    assert run(storage.get_stats(first.peer_id)) == (
        StreamStatistics(swarm_id="s", uploaded_bytes=1),
    )
    run(storage.leave("s", first.peer_id))
    assert run(storage.get_stats(first.peer_id)) == () and not storage._stats


def test_a_listed_entry_follows_its_peer_to_another_port() -> None:
    """A peer list after the peer was seen from another port names the new port, though its
    member is the same object and its entry was kept from the list before."""
    storage = MemoryStorage()
    first = record(3, 10.0)
    run(storage.update(first, join=(("s", PeerMode.LEECH),)))
    (member,) = run(storage.members("s"))
    (before,) = to_peer_infos([member], "s")
    assert to_peer_infos([member], "s") == (before,) and to_peer_infos([member], "s")[0] is before
    advertised, observed = first.addresses
    seen = (advertised, replace(observed, port=observed.port + 7))
    run(storage.put_peer(replace(first, addresses=seen)))
    (again,) = run(storage.members("s"))
    assert again is member
    (after,) = to_peer_infos([again], "s")
    assert after.addresses == seen and after != before
    assert LISTED.get(again, "s") is after


def test_reports_are_kept_as_nothing_the_garbage_collector_walks() -> None:
    """A STAT_REPORT's statistics and content map are each kept as one bytes object, which the
    collector never tracks (nor the peer's dictionary of them), and read back equal (every
    report replaces the last one: kept as message objects they filled the collector's young
    generation between collections)."""
    storage = MemoryStorage()
    peer = record(5, 10.0)
    run(storage.update(peer, join=(("s", PeerMode.LEECH),)))
    segment = SegmentMap(start_index=0, end_index=255, chunkmap_size=256, bitmap=b"\xff" * 32)
    content_map = ContentMap(
        swarm_id="s",
        representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
    )
    stats = StreamStatistics(swarm_id="s", uploaded_bytes=7, extra=(("OnlineTime", "60"),))
    assert run(storage.put_content_map(peer.peer_id, content_map))
    run(storage.put_stats(peer.peer_id, stats))
    kept_map = (storage._shard("s")["s"].maps or {})[peer.peer_id]
    kept_stats = storage._stats[peer.peer_id]
    assert type(kept_map) is bytes and [type(v) for v in kept_stats.values()] == [bytes]
    assert not gc.is_tracked(kept_stats)
    assert run(storage.get_content_map("s", peer.peer_id)) == content_map
    assert run(storage.get_stats(peer.peer_id)) == (stats,)
    (member,) = run(storage.members("s", with_maps=True))
    assert member.content_map == content_map


def vars_of(item: PeerRecord) -> dict[str, Any]:
    """A record's fields by name."""
    return {name: getattr(item, name) for name in PeerRecord.__dataclass_fields__}


def test_peer_list_entries_of_a_swarm_share_one_copy_of_its_id() -> None:
    """An entry kept in a member holds the interned swarm ID, not the listing request's copy."""
    storage = MemoryStorage()
    for i in range(3):
        run(storage.update(record(i, 10.0), join=(("swarm-x", PeerMode.LEECH),)))
    members = run(storage.members("swarm-x"))
    kept = []
    for member in members:
        # Each listing request decodes its own copy of the swarm ID.
        (info,) = to_peer_infos([member], "".join(list("swarm-x")))
        assert info.swarm_id == "swarm-x"
        kept.append(info)
    assert len({id(info.swarm_id) for info in kept}) == 1


@pytest.mark.parametrize("swarm_size", [1, 100])
def test_expire_empties_everything(swarm_size: int) -> None:
    storage = MemoryStorage()
    for i in range(500):
        run(
            storage.update(record(i, 50.0 + i / 7), join=((f"s{i // swarm_size}", PeerMode.LEECH),))
        )
    assert len(run(storage.expire(60.0))) == 71
    assert len(run(storage.expire(200.0))) == 429
    counts = run(storage.counts())
    assert (counts.peers, counts.swarms, counts.memberships, counts.hosts) == (0, 0, 0, 0)
    assert storage._wheel.entries == 0


@pytest.mark.parametrize("swarms", [1, 3])
def test_a_peer_seen_from_another_port_or_host_is_listed_there(swarms: int) -> None:
    """A new observed port changes only the last two bytes of the packed addresses: the
    members are replaced in their places, with their prefix and rank group; a new observed
    host moves the prefix (and the group's counts follow)."""
    storage = MemoryStorage()
    for i in range(70):  # a group of 64 or more counts its members per prefix
        run(storage.update(record(i, 10.0), join=(("a", PeerMode.LEECH),)))
    first = record(5, 10.0)
    for swarm_id in ("b", "c")[: swarms - 1]:
        run(storage.join(swarm_id, first.peer_id, PeerMode.SEED))
    advertised, reflexive = first.addresses

    def moved(ip: str, port: int) -> None:
        addresses = (advertised, replace(reflexive, ip=ip, port=port))
        run(storage.put_peer(replace(first, addresses=addresses)))
        assert run(storage.get_peer(first.peer_id)).addresses == addresses
        for swarm_id in ("a", "b", "c")[:swarms]:
            (member,) = [m for m in run(storage.members(swarm_id)) if m.peer_id == first.peer_id]
            assert member.addresses == addresses
            assert member._prefix == ip.rsplit(".", 1)[0]
        (group,) = [g for _, g in run(storage.member_groups("a"))]
        assert sorted(m.peer_id for m in group) == sorted(f"{i:016x}" for i in range(70))
        assert group.prefix_counts is None or sum(group.prefix_counts.values()) == 70

    moved(reflexive.ip, reflexive.port + 1)
    moved(reflexive.ip, 1)
    moved("10.9.9.9", 1)
    moved(reflexive.ip, reflexive.port)


def test_packed_members_are_members_to_every_reader() -> None:
    """A member whose addresses are packed equals, hashes, copies and replaces as the plain
    member of the same fields."""
    storage = MemoryStorage()
    first = record(1, 10.0)
    run(storage.update(first, join=(("s", PeerMode.LEECH),)))
    (member,) = run(storage.members("s"))
    assert isinstance(member, PackedMember)
    plain = SwarmMember(peer_id=first.peer_id, mode=PeerMode.LEECH, addresses=first.addresses)
    assert member == plain and plain == member and hash(member) == hash(plain)
    assert copy.copy(member) == plain and pickle.loads(pickle.dumps(member)) == plain
    assert replace(member, mode=PeerMode.SEED) == replace(plain, mode=PeerMode.SEED)
    unpackable = (PeerAddress(ip="2001:db8::1", port=7000, family=AddressFamily.IPV6),)
    assert replace(member, addresses=unpackable).addresses == unpackable
    assert replace(member, addresses=()).addresses == ()


_HOSTS = ("10.0.0.1", "10.0.0.2", "", "2001:db8::/64")
_SEEN = (
    # (observed address, the host the tracker counts it for in open mode)
    (PeerAddress(ip="10.0.0.1", port=40001, type=AddressType.REFLEXIVE), "10.0.0.1"),
    (PeerAddress(ip="10.0.0.1", port=40002, type=AddressType.REFLEXIVE), "10.0.0.1"),
    (PeerAddress(ip="10.0.0.2", port=40001, type=AddressType.REFLEXIVE), "10.0.0.2"),
    (
        PeerAddress(
            ip="2001:db8::7", port=40001, family=AddressFamily.IPV6, type=AddressType.REFLEXIVE
        ),
        "2001:db8::/64",
    ),
    (PeerAddress(ip="10.0.0.3", port=7000), ""),  # no REFLEXIVE address: a record as written
)
_ADVERTISED = PeerAddress(ip="192.168.1.9", port=7000, peer_protocol="PPSP-PP/0.1")


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "join", "leave", "delete"]),
            st.integers(0, 2),  # the peer
            st.integers(0, len(_SEEN) - 1),  # where it is seen
            st.booleans(),  # counted for the host it is seen at (else another: a token moved it)
            st.integers(0, len(_HOSTS) - 1),  # that other host
            st.booleans(),  # with its advertised address
            st.sampled_from(["a", "b"]),
            st.sampled_from([PeerMode.LEECH, PeerMode.SEED]),
        ),
        max_size=25,
    )
)
def test_hosts_are_counted_as_the_records_name_them(
    steps: list[tuple[str, int, int, bool, int, bool, str, PeerMode]],
) -> None:
    """Whatever a peer's records name as its host (the one its addresses tell or another),
    its addresses and memberships, each host's count and each record read back are what a
    plain table of the records written says."""
    storage = MemoryStorage()
    hosts: dict[str, str] = {}  # peer ID -> the host its last record named
    for op, peer, seen_at, told, other, advertised, swarm, mode in steps:
        peer_id = f"peer-{peer}"
        if op == "put":
            seen, host = _SEEN[seen_at]
            if not told:
                host = _HOSTS[other]
            written = PeerRecord(
                peer_id=peer_id,
                version=ProtocolVersion.V1_1,
                state=PeerState.TRACKING,
                addresses=(_ADVERTISED, seen) if advertised else (seen,),
                deadline=100.0 + peer,
                host=host,
            )
            run(storage.put_peer(written))
            hosts[peer_id] = host
            assert run(storage.get_peer(peer_id)) == written
        elif op == "join":
            run(storage.join(swarm, peer_id, mode))
        elif op == "leave":
            run(storage.leave(swarm, peer_id))
        else:
            run(storage.delete_peer(peer_id))
            hosts.pop(peer_id, None)
        for host in _HOSTS:
            expected = sum(1 for named in hosts.values() if named == host) if host else 0
            assert run(storage.peers_of_host(host)) == expected
        counted = {named for named in hosts.values() if named}
        assert run(storage.counts()).hosts == len(counted)
        for peer_id, host in hosts.items():
            stored = run(storage.get_peer(peer_id))
            assert stored is not None and stored.host == host
