"""The fair-serving policy: upload slots shared per requesting host, bounded state.

Hosts are keyed by the connection's source address (IPv4 address, IPv6 /64), never by what a
request says; a host alone may use every slot; waiting requests go host by host; queues and
the table of hosts are bounded, and requests beyond are refused.
"""

from __future__ import annotations

import pytest

from ppsp.peer.upload.fair import (
    CAPPED_SLOTS,
    LINGER_S,
    MIN_SLOTS,
    REMEMBERED_CHUNKS,
    REMEMBERED_COPIES,
    RETRY_AFTER_S,
    UNKNOWN_HOST,
    Decision,
    FairUploads,
    UploadLedger,
    Verdict,
    requester_host,
)

A = "10.0.0.1"
B = "10.0.0.2"
C = "10.0.0.3"


NOW = 100.0
"""The time of every call, unless a test moves it on (hosts linger LINGER_S after their last
chunk)."""


def started(policy: FairUploads, address: str, count: int, priority: int = 0) -> list[int]:
    """Ask ``count`` chunks for ``address``; the tickets, each of which must start at once."""
    tickets = []
    for _ in range(count):
        decision = policy.request(address, priority, NOW)
        assert decision.verdict is Verdict.START, decision
        tickets.append(decision.ticket)
    return tickets


def waiting(policy: FairUploads, address: str, priority: int = 0) -> int:
    decision = policy.request(address, priority, NOW)
    assert decision.verdict is Verdict.WAIT, decision
    return decision.ticket


def test_a_host_alone_uses_everything_without_a_cap() -> None:
    policy = FairUploads(capped=False)
    tickets = started(policy, A, 64)  # one host, 64 connections, nobody else: all at once
    assert policy.in_flight == 64 and policy.waiting == 0
    for ticket in tickets:
        assert policy.release(ticket, NOW) == []
    assert policy.hosts == 1  # idle, it lingers a moment
    started(policy, B, 1)  # (any call at a later time forgets it)
    assert policy.hosts == 2
    policy.request(C, 0, NOW + LINGER_S)
    assert policy.hosts == 2  # B and C


def test_a_flooding_host_gets_its_share_once_another_host_asks() -> None:
    policy = FairUploads(capped=False, share=0.5)
    assert policy.quota == 8
    flood = started(policy, A, 64)
    # The second host starts at once: it is under its share.
    honest = started(policy, B, 8)
    # The flooder's further requests wait while it is over its share.
    flood_waiting = [waiting(policy, A) for _ in range(10)]
    # Its chunks finishing do not start its waiting ones until it is under its share.
    for ticket in flood[:56]:
        assert policy.release(ticket, NOW) == []
    assert policy.in_flight_of(A) == 8
    assert policy.release(flood[56], NOW) == [flood_waiting[0]]
    assert policy.in_flight_of(A) == 8 and policy.in_flight_of(B) == 8
    # The honest host's chunks finish, and it has none in flight for a moment (it asks for
    # the next one when the last arrived): the flooder does not get everything back.
    for ticket in honest:
        assert policy.release(ticket, NOW) == []
    assert policy.in_flight_of(A) == 8 and policy.waiting_of(A) == 9
    # Gone for longer than the linger: the flooder may use everything (work-conserving).
    assert policy.release(flood[57], NOW + LINGER_S) == flood_waiting[1:]
    assert policy.in_flight_of(A) == 7 + 9 and policy.waiting == 0


def test_a_host_gets_no_more_chunks_in_flight_than_the_others_have() -> None:
    # Without a cap, bytes are shared per connection in flight: a host matching the honest
    # host's chunks in flight gets as many bytes as it does.
    policy = FairUploads(capped=False, share=0.5)
    honest = started(policy, B, MIN_SLOTS)
    started(policy, A, MIN_SLOTS)
    flood_waiting = [waiting(policy, A) for _ in range(10)]
    # The honest host asks for two more: the flooder may have two more too.
    decision = policy.request(B, 0, NOW)
    assert decision.verdict is Verdict.START and decision.wake == (flood_waiting[0],)
    decision = policy.request(B, 0, NOW)
    assert decision.wake == (flood_waiting[1],)
    assert policy.in_flight_of(A) == policy.in_flight_of(B) == 4
    # Fewer again: the flooder's chunks finishing are not replaced until it is back under.
    for ticket in honest:
        policy.release(ticket, NOW)
    assert policy.release(flood_waiting[0], NOW) == []
    assert policy.in_flight_of(A) == 3


def test_an_honest_host_beside_a_flood_gets_half_the_slots_under_a_cap() -> None:
    policy = FairUploads(capped=True, share=0.5)
    assert policy.slots == CAPPED_SLOTS and policy.quota == 1
    flood = started(policy, A, 2)  # alone: both slots
    flood_waiting = [waiting(policy, A) for _ in range(20)]
    honest = waiting(policy, B)  # every slot is taken: the honest host waits too
    # The first slot freed goes to the honest host, not to the flooder's older requests.
    assert policy.release(flood[0], NOW) == [honest]
    # The next one to the flooder (under its share of one).
    assert policy.release(flood[1], NOW) == [flood_waiting[0]]
    # From then on, turns alternate while both want chunks: the honest host asks for its next
    # chunk as one finishes, the flooder has twenty waiting.
    owner = {ticket: A for ticket in flood_waiting} | {honest: B}
    running = [honest, flood_waiting[0]]
    served = {A: 0, B: 0}
    for _ in range(12):
        ticket = running.pop(0)  # the oldest chunk in flight finishes
        served[owner[ticket]] += 1
        if owner[ticket] == B:
            owner[waiting(policy, B)] = B
        running += policy.release(ticket, NOW)
        assert policy.in_flight == CAPPED_SLOTS
    assert served[A] == served[B] == 6


def test_a_freed_slot_goes_to_the_least_recently_served_host() -> None:
    policy = FairUploads(capped=True, share=0.5, slots=1)
    first = started(policy, A, 1)[0]
    b = waiting(policy, B)
    c = waiting(policy, C)
    a = waiting(policy, A)
    assert policy.release(first, NOW) == [b]  # B and C never served: B asked first
    assert policy.release(b, NOW) == [c]  # C never served
    assert policy.release(c, NOW) == [a]


def test_within_a_host_fewest_chunks_held_first() -> None:
    policy = FairUploads(capped=True, slots=1)
    first = started(policy, A, 1)[0]
    late_joiner = waiting(policy, A, priority=3)
    nearly_done = waiting(policy, A, priority=90)
    newcomer = waiting(policy, A, priority=0)
    assert policy.release(first, NOW) == [newcomer]
    assert policy.release(newcomer, NOW) == [late_joiner]
    assert policy.release(late_joiner, NOW) == [nearly_done]


def test_queues_are_bounded_per_host_and_in_all() -> None:
    policy = FairUploads(capped=True, slots=1, queue_per_host=3, max_waiting=5)
    started(policy, A, 1)
    for _ in range(3):
        waiting(policy, A)
    refused = policy.request(A, 0, NOW)
    assert refused == Decision(Verdict.REFUSE, 0, RETRY_AFTER_S)
    waiting(policy, B)
    waiting(policy, B)
    assert policy.request(C, 0, NOW).verdict is Verdict.REFUSE  # 5 wait in all
    assert policy.refused == 2
    assert policy.hosts == 2  # the refused host left no state behind


def test_the_table_of_hosts_is_bounded() -> None:
    policy = FairUploads(capped=False, max_hosts=100)
    tickets = [started(policy, f"10.1.{n // 250}.{n % 250}", 1)[0] for n in range(100)]
    assert policy.request("10.9.9.9", 0, NOW).verdict is Verdict.REFUSE
    policy.release(tickets[0], NOW)
    assert policy.request("10.9.9.9", 0, NOW).verdict is Verdict.REFUSE  # it lingers
    assert policy.request("10.9.9.9", 0, NOW + LINGER_S).verdict is Verdict.START


def test_many_peer_ids_from_one_host_count_as_one_host() -> None:
    # The policy is never told a PeerID: whatever header a request carries, its host is the
    # connection's source.  Sixty-four connections from one address are one host's.
    policy = FairUploads(capped=False)
    started(policy, B, policy.quota)
    started(policy, A, policy.quota)
    assert policy.request(A, 0, NOW).verdict is Verdict.WAIT


def test_an_ipv6_slash_64_is_one_host() -> None:
    policy = FairUploads(capped=False)
    started(policy, "2001:db8:0:5::1", policy.quota)  # another host is served
    started(policy, "2001:db8::1", 1)
    started(policy, "2001:db8:0:0:ffff::2", policy.quota - 1)  # same /64, another address
    assert policy.request("2001:db8::abcd", 0, NOW).verdict is Verdict.WAIT
    assert policy.request("2001:db8:0:1::1", 0, NOW).verdict is Verdict.START  # another /64
    assert requester_host("::ffff:10.0.0.1") == A  # IPv4-mapped: the IPv4 host
    assert requester_host("fe80::1%eth0") == "fe80::/64"
    assert requester_host(None) == requester_host("not an address") == UNKNOWN_HOST


def test_many_hosts_share_equally() -> None:
    policy = FairUploads(capped=True, share=0.5, slots=4)
    hosts = [f"10.2.0.{n}" for n in range(1, 11)]
    first = started(policy, hosts[0], 2) + started(policy, hosts[1], 2)
    pending = {waiting(policy, host): host for host in hosts for _ in range(5)}
    served: dict[str, int] = dict.fromkeys(hosts, 0)
    running = list(first)
    for _ in range(40):
        ticket = running.pop(0)
        for new in policy.release(ticket, NOW):
            served[pending.pop(new)] += 1
            running.append(new)
    assert set(served.values()) == {4}  # 40 turns, 10 hosts: 4 each
    assert policy.in_flight <= 4


def test_a_waiting_request_given_up_frees_its_place() -> None:
    policy = FairUploads(capped=True, slots=1)
    first = started(policy, A, 1)[0]
    gone = waiting(policy, B)
    kept = waiting(policy, C)
    assert policy.release(gone, NOW) == []  # given up before its turn
    assert policy.release(gone, NOW) == []  # released twice: nothing
    assert policy.release(first, NOW) == [kept]
    assert policy.release(kept, NOW) == []
    policy.release(0, NOW + LINGER_S)
    assert policy.hosts == 0 and policy.in_flight == policy.waiting == 0


def test_share_bounds() -> None:
    with pytest.raises(ValueError):
        FairUploads(capped=False, share=0)
    with pytest.raises(ValueError):
        FairUploads(capped=False, share=1.5)
    assert FairUploads(capped=False, share=1.0).quota == 16
    assert FairUploads(capped=True, share=0.1).quota == 1  # every host gets a slot


def test_the_ledger_counts_peer_ids_within_bounds() -> None:
    ledger = UploadLedger(per_host=2, total=3)
    ledger.count("honest", A, 100)
    for n in range(50):  # one host naming a new PeerID with every request
        ledger.count(f"fake{n}", B, 10)
    ledger.count("honest", B, 7)  # another host naming the honest peer's PeerID
    ledger.count("third", C, 1)
    ledger.count("fourth", "10.0.0.4", 1)  # the table is full
    assert ledger.by_peer == {"honest": 100, "fake0": 10, "fake1": 10}
    assert ledger.unattributed == 48 * 10 + 7 + 1 + 1
    assert ledger.total_bytes == 100 + 500 + 7 + 1 + 1


def test_a_repeat_request_waits_behind_every_first_request() -> None:
    """A flooder pulling the same newest chunks again and again gets the slots no one else
    wants: a viewer's first request for a chunk starts before the flooder's repeats, although
    the flooder has fewer chunks in flight and was served longer ago."""
    fair = FairUploads(capped=True, share=1.0)  # either host may take both slots
    flood, viewer = "192.0.2.66", "198.51.100.7"
    assert fair.request(flood, 0, 0.0, ("s", 1)).verdict is Verdict.START
    assert fair.request(viewer, 0, 0.0, ("s", 2)).verdict is Verdict.START  # the 2 slots
    repeats = [fair.request(flood, 0, 0.0, ("s", 1)) for _ in range(4)]
    assert all(d.verdict is Verdict.WAIT for d in repeats) and fair.repeats == 4
    first = fair.request(viewer, 0, 0.0, ("s", 3))
    assert first.verdict is Verdict.WAIT
    assert fair.release(1, 0.1) == [first.ticket]  # the flooder's chunk is done
    # With no first request waiting, repeats are served (work-conserving).
    assert fair.release(first.ticket, 0.2) == [repeats[0].ticket]


def test_a_chunk_is_remembered_per_host_and_boundedly() -> None:
    fair = FairUploads(capped=False)
    for index in range(REMEMBERED_CHUNKS + 10):
        fair.request("192.0.2.1", 0, 0.0, ("s", index))
    assert fair.repeats == 0
    fair.request("192.0.2.2", 0, 0.0, ("s", 5))  # another host: a first request
    fair.request("192.0.2.1", 0, 0.0, ("s", 3))  # forgotten (beyond the bound): first again
    assert fair.repeats == 0
    fair.request("192.0.2.1", 0, 0.0, ("s", REMEMBERED_CHUNKS + 5))
    assert fair.repeats == 1


def spread(policy: FairUploads, address: str, index: int) -> Decision:
    """A live chunk's request (spread: ranked by its copies started so far)."""
    return policy.request(address, 0, NOW, ("live", index), spread=True)


def test_a_new_live_chunk_first_copy_goes_before_further_copies_of_an_older_one() -> None:
    # A capped live source: 2 slots, both taken by copies of chunk 5.
    policy = FairUploads(capped=True)
    first = [spread(policy, host, 5) for host in (A, B)]
    assert all(d.verdict is Verdict.START for d in first) and policy.copies(("live", 5)) == 2
    older = spread(policy, C, 5)  # asked first, for a third copy of chunk 5
    newer = spread(policy, "10.0.0.4", 6)  # asked after, for chunk 6, never sent
    assert older.verdict is newer.verdict is Verdict.WAIT
    assert policy.release(first[0].ticket, NOW) == [newer.ticket]
    assert policy.release(first[1].ticket, NOW) == [older.ticket]
    assert policy.copies(("live", 6)) == 1 and policy.copies(("live", 5)) == 3


def test_without_spread_turns_go_by_host_as_before() -> None:
    policy = FairUploads(capped=True)
    first = [policy.request(host, 0, NOW, ("live", 5)) for host in (A, B)]
    older = policy.request(C, 0, NOW, ("live", 5))
    newer = policy.request("10.0.0.4", 0, NOW, ("live", 6))
    assert policy.release(first[0].ticket, NOW) == [older.ticket]
    assert policy.release(first[1].ticket, NOW) == [newer.ticket]
    assert policy.copies(("live", 5)) == 0  # copies are counted for spread requests only


def test_within_a_host_the_chunk_with_fewest_copies_goes_first() -> None:
    policy = FairUploads(capped=True)
    first = [spread(policy, host, 5) for host in (A, B)]
    older = spread(policy, C, 5)
    newer = spread(policy, C, 6)
    assert policy.release(first[0].ticket, NOW) == [newer.ticket]
    assert policy.release(newer.ticket, NOW) == [older.ticket]


def test_a_repeat_still_waits_behind_every_first_request_whatever_its_copies() -> None:
    policy = FairUploads(capped=True)
    first = [spread(policy, A, 7), spread(policy, B, 5)]
    assert policy.release(first[0].ticket, NOW) == []
    refill = spread(policy, "10.0.0.5", 5)
    assert refill.verdict is Verdict.START
    repeat = spread(policy, A, 7)  # A had chunk 7 already: a repeat (1 copy)
    fresh = spread(policy, C, 5)  # a first request of C, for chunk 5 (2 copies started)
    assert repeat.verdict is fresh.verdict is Verdict.WAIT
    assert policy.release(first[1].ticket, NOW) == [fresh.ticket]


def test_copies_are_remembered_for_a_bounded_number_of_chunks() -> None:
    policy = FairUploads(capped=False)
    for index in range(REMEMBERED_COPIES + 10):
        decision = spread(policy, A, index)
        policy.release(decision.ticket, NOW)
    assert policy.copies(("live", 0)) == 0  # forgotten: ranks as a first copy again
    assert policy.copies(("live", REMEMBERED_COPIES + 9)) == 1
    assert len(policy._copies) == REMEMBERED_COPIES


def test_a_spread_request_given_up_while_waiting_leaves_nothing_behind() -> None:
    policy = FairUploads(capped=True)
    first = [spread(policy, host, 5) for host in (A, B)]
    gave_up = spread(policy, C, 6)
    assert policy.release(gave_up.ticket, NOW) == []
    assert policy._spread == {} and policy.copies(("live", 6)) == 0
    assert policy.release(first[0].ticket, NOW) == []
