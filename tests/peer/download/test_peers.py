"""Peer standings: the one rule that bans a peer, and who may be connected or asked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ppsp.peer.download.peers import (
    BUSY_BACKOFF,
    BUSY_BACKOFF_MAX,
    BUSY_BACKOFF_MIN,
    CONNECT_TIMEOUT,
    FIRST_BYTE_TIMEOUT,
    MAX_CONNECTING,
    MAX_CONNECTING_PER_HOST,
    MAX_CORRUPT_KEPT,
    MAX_FAILURES,
    PROGRESS_TIMEOUT,
    STALL_BACKOFF,
    STALL_BACKOFF_MAX,
    PeerBook,
    PeerStanding,
)
from ppsp.wire.bitmap import ChunkBitmap


def test_a_peer_is_banned_at_its_third_failure_and_only_then() -> None:
    assert MAX_FAILURES == 3
    standing = PeerStanding("A")
    assert [standing.fail() for _ in range(MAX_FAILURES + 2)] == [False, False, True, False, False]
    assert standing.banned and standing.failures == MAX_FAILURES + 2


@given(st.lists(st.sampled_from(["fail", "ban", "connect", "drop"]), max_size=20))
def test_standing_rules(steps: list[str]) -> None:
    standing = PeerStanding("A")
    forged = False
    for step in steps:
        if step == "fail":
            standing.fail()
        elif step == "ban":
            forged = True
            standing.ban()
        else:
            standing.connected = step == "connect"
        # Banned exactly when forged bytes came or MAX_FAILURES failures were counted.
        assert standing.banned == (forged or standing.failures >= MAX_FAILURES)
        assert not (standing.banned and (standing.usable or standing.connectable))
        assert standing.usable == (standing.connected and not standing.banned)


def test_a_forged_answer_bans_at_once_and_reports_it_once() -> None:
    standing = PeerStanding("A")
    assert standing.ban() is True
    assert standing.ban() is False
    assert standing.banned and standing.failures == 0


def test_connectable_only_when_idle_and_in_good_standing() -> None:
    standing = PeerStanding("A")
    assert standing.connectable
    standing.connecting = True
    assert not standing.connectable
    standing.connecting, standing.connected = False, True
    assert not standing.connectable and standing.usable
    standing.connected = False
    standing.failures = MAX_FAILURES  # counted by someone that did not ban: still not tried
    assert not standing.connectable


def test_a_map_counts_its_version_and_time() -> None:
    standing = PeerStanding("A")
    standing.set_map(ChunkBitmap.full(3), 5.0)
    standing.set_map(ChunkBitmap(3), 7.0)
    assert standing.map_version == 2 and standing.last_map_at == 7.0
    assert standing.chunks == ChunkBitmap(3)


def test_book_keeps_one_standing_per_peer_in_order() -> None:
    book = PeerBook()
    first = book.add("B")
    book.add("A")
    assert book.add("B") is first
    assert [s.peer_id for s in book] == ["B", "A"] and len(book) == 2
    assert "A" in book and "C" not in book and book.get("C") is None
    first.connected = True
    book.add("A").connected = True
    book.add("A").fail()
    book.add("A").ban()
    assert [s.peer_id for s in book.usable()] == ["B"]


def test_timeouts_are_seconds_not_tens() -> None:
    for timeout in (CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, PROGRESS_TIMEOUT, STALL_BACKOFF):
        assert 0 < timeout < 5


def test_a_stall_benches_with_a_back_off_that_doubles_up_to_its_bound() -> None:
    standing = PeerStanding("A")
    assert not standing.benched(0.0) and standing.may_connect(0.0)
    now, backoffs = 0.0, []
    for _ in range(8):
        until = standing.stall(now)
        backoffs.append(until - now)
        assert standing.benched(now) and not standing.may_connect(now)
        now = until
        assert not standing.benched(now)  # back at the end of its back-off
    assert backoffs[:4] == [STALL_BACKOFF * 2**i for i in range(4)]
    assert max(backoffs) == STALL_BACKOFF_MAX
    assert standing.failures == 0 and not standing.banned


def test_stalls_within_one_back_off_count_once() -> None:
    """Every request of one stall times out together: one back-off, not one per request."""
    standing = PeerStanding("A")
    until = standing.stall(1.0)
    assert standing.stall(1.5) == until and standing.stalls == 1


def test_busy_answers_in_a_row_rest_longer_and_bytes_start_the_row_again() -> None:
    standing = PeerStanding("A")
    assert standing.rest(0.0, 0.0) == BUSY_BACKOFF_MIN  # Retry-After: 0 is no rest at all
    assert standing.rest(0.1, 0.0) == BUSY_BACKOFF_MIN  # sent before the rest: counts once
    assert standing.rest(0.25, None) == 0.25 + BUSY_BACKOFF  # no Retry-After: its default
    assert standing.rest(1.25, 0.0) == 1.25 + 4 * BUSY_BACKOFF_MIN  # third in a row
    assert standing.rest(30.0, 100.0) - 30.0 == STALL_BACKOFF_MAX  # its own wait, bounded
    for _ in range(20):
        now = standing.benched_until
        assert standing.rest(now, 0.0) - now <= BUSY_BACKOFF_MAX
    now = standing.benched_until
    assert standing.rest(now, 0.0) - now == BUSY_BACKOFF_MAX
    standing.sent_bytes(standing.benched_until)  # it delivers again: the row is over
    now = standing.benched_until
    assert standing.rest(now, 0.0) == now + BUSY_BACKOFF_MIN
    assert standing.failures == 0 and standing.stalls == 0 and not standing.banned


def test_the_book_says_when_the_first_benched_peer_comes_back() -> None:
    book = PeerBook()
    assert book.next_release(0.0) is None
    book.add("A").stall(1.0)
    book.add("B").stall(0.0)
    book.add("C")
    assert book.next_release(0.5) == STALL_BACKOFF
    assert book.next_release(STALL_BACKOFF) == 1.0 + STALL_BACKOFF
    assert book.next_release(10.0) is None


# -- bans by host ------------------------------------------------------------------------------


def test_a_host_ban_bans_every_peer_id_at_the_host_now_and_later() -> None:
    book = PeerBook()
    book.add("A", "10.0.0.5")
    book.add("B", "10.0.0.5")
    book.add("M", "::ffff:10.0.0.5")  # the same host, written as IPv4-mapped IPv6
    book.add("C", "10.0.0.6")
    book.add("X")  # no address known: never banned by host
    assert [s.peer_id for s in book.ban_host("A")] == ["B", "M"]
    assert book.banned_hosts == {"10.0.0.5"}
    assert all(book.add(p).banned for p in "ABM")
    assert not book.add("C").banned and not book.add("X").banned
    assert book.ban_host("B") == []  # banned already: nothing new
    # A PeerID listed at that host later (by the tracker or a peer) is banned from the start.
    late = book.add("D", "10.0.0.5")
    assert late.banned and not late.connectable and not late.may_connect(0.0)
    assert [s.peer_id for s in book.usable()] == []


def test_an_ipv6_host_is_its_slash_64() -> None:
    book = PeerBook()
    book.add("A", "2001:db8:0:1::1")
    book.add("B", "2001:db8:0:1:ffff::2")  # the same /64
    book.add("C", "2001:db8:0:2::1")  # another /64
    assert [s.peer_id for s in book.ban_host("A")] == ["B"]
    assert book.banned_hosts == {"2001:db8:0:1::/64"}
    assert book.add("D", "2001:db8:0:1::99").banned
    assert not book.add("C").banned


def test_this_peers_own_host_is_never_banned() -> None:
    book = PeerBook()
    book.local_host = "127.0.0.1"
    book.add("A", "127.0.0.1")
    book.add("B", "127.0.0.1")
    assert book.ban_host("A") == []
    assert book.banned_hosts == frozenset()
    assert not book.add("B").banned and not book.add("C", "127.0.0.1").banned
    assert book.ban_host("unknown") == []


def test_host_bans_carry_over_to_a_later_book_of_the_swarm() -> None:
    first = PeerBook()
    first.add("A", "10.0.0.5")
    first.ban_host("A")
    later = PeerBook(banned_hosts=first.banned_hosts)
    assert later.add("B", "10.0.0.5").banned
    assert not later.add("C", "10.0.0.7").banned
    later.local_host = "10.0.0.5"  # our own host is lifted from the bans
    assert not later.add("E", "10.0.0.5").banned


def test_corrupt_data_is_counted_for_the_tracker_once_taken() -> None:
    book = PeerBook()
    book.local_host = "127.0.0.1"
    book.add("A", "198.51.100.5")
    book.add("local", "127.0.0.1")
    book.ban_host("A")
    book.ban_host("A")  # a second corrupt chunk from it
    book.ban_host("local")  # our own host is not banned, but its lie is reported
    assert book.take_corrupt() == [("A", 2), ("local", 1)]
    assert book.take_corrupt() == []


def test_corrupt_counts_are_bounded() -> None:
    book = PeerBook()
    for n in range(MAX_CORRUPT_KEPT + 3):
        book.ban_host(f"p{n}")
    assert len(book.take_corrupt()) == MAX_CORRUPT_KEPT


def test_connections_are_bounded_in_all_and_per_host_our_own_host_excepted() -> None:
    """An eclipse: 300 silent PeerIDs of one host listed first, then 20 honest hosts, and 5
    peers on this machine: two attempts go to the sybil host, the rest to the others."""
    book = PeerBook()
    book.local_host = "192.0.2.1"
    for n in range(300):
        book.add(f"sybil{n}", "203.0.113.66")
    for n in range(20):
        book.add(f"honest{n}", f"198.51.100.{n + 1}")
    for n in range(5):
        book.add(f"local{n}", "192.0.2.1")
    first = book.to_connect(0.0)
    assert len(first) == MAX_CONNECTING
    assert sum(s.peer_id.startswith("sybil") for s in first) == MAX_CONNECTING_PER_HOST
    for standing in first:
        standing.connecting = True
    assert book.to_connect(0.0) == []  # every slot taken
    # Two honest connections end: two more begin, none at the sybil host (it has its two).
    for standing in [s for s in first if s.peer_id.startswith("honest")][:2]:
        standing.connecting, standing.connected = False, True
    more = book.to_connect(0.0)
    assert len(more) == 2 and not any(s.peer_id.startswith("sybil") for s in more)
    # Our own host's peers are not bounded per host.
    local = PeerBook()
    local.local_host = "127.0.0.1"
    for n in range(10):
        local.add(f"p{n}", "127.0.0.1")
    assert len(local.to_connect(0.0)) == 10


def test_pex_candidates_are_named_bounded_and_never_a_second_listed_peer() -> None:
    from ppsp.peer.download.peers import MAX_PEX_PEERS, pex_name
    from ppsp.peer.ppspp.pex import MAX_PEX_CANDIDATES

    assert MAX_PEX_PEERS == MAX_PEX_CANDIDATES
    book = PeerBook()
    listed = book.add("a1", "10.0.0.1")
    listed.add_ppspp_address("10.0.0.1", 7000)
    listed.add_ppspp_address("2001:DB8::1", 7000)  # canonical form kept: 2001:db8::1
    # A candidate at a listed peer's PPSPP address is that peer; a repeat is no new one.
    assert book.add_pex("10.0.0.1", 7000) is None
    assert book.add_pex("2001:db8:0::1", 7000) is None
    candidate = book.add_pex("10.0.0.2", 7000)
    assert candidate is not None and candidate.pex and candidate.host == "10.0.0.2"
    assert candidate.peer_id == pex_name("10.0.0.2", 7000) == "pex:10.0.0.2:7000"
    assert pex_name("::1", 5) == "pex:[::1]:5"
    assert book.add_pex("10.0.0.2", 7000) is None
    assert book.add_pex("not an address", 7000) is None
    for i in range(MAX_PEX_PEERS + 5):
        book.add_pex(f"10.1.{i // 200}.{i % 200 + 1}", 7000)
    assert sum(s.pex for s in book) == MAX_PEX_PEERS
    # A peer listed later at a candidate's address is that candidate: it is not tried.
    later = book.add("a2", "10.0.0.2")
    later.add_ppspp_address("10.0.0.2", 7000)
    book.listed_at(later)
    assert candidate.dropped and not candidate.connectable and later.connectable


def test_a_few_pex_candidates_are_tried_at_once_and_a_failed_try_costs_no_fault() -> None:
    from ppsp.peer.download.peers import MAX_PEX_CONNECTING

    book = PeerBook()
    for i in range(10):
        book.add_pex(f"10.0.{i}.1", 7000)
    book.add("listed", "10.9.9.9")
    chosen = book.to_connect(0.0)
    pex = [s for s in chosen if s.pex]
    assert len(pex) == MAX_PEX_CONNECTING and "listed" in {s.peer_id for s in chosen}
    for standing in chosen:
        standing.connecting = True
    assert book.to_connect(0.0) == []  # the PEX slots are taken; the listed peer is in hand
    pex[0].drop()
    assert not pex[0].connectable and not pex[0].banned and pex[0].failures == 0
    assert not pex[0].benched(0.0)
    (next_one,) = book.to_connect(0.0)  # its slot goes to the next candidate
    assert next_one.pex and next_one not in pex


def test_peers_found_in_find_answers_are_taken_in_bounded_numbers() -> None:
    """Another peer's FIND answer is believed in part: a few new peers per answer, a bounded
    number in all and per host (our own host excepted), never a second PeerID at an endpoint
    a known peer has, never one at a banned host; the tracker's peers are not counted."""
    from ppsp.peer.download.peers import MAX_FOUND_PEERS, MAX_FOUND_PER_HOST
    from ppsp.peer.protocol.handler import DEFAULT_MAX_PEERS

    book = PeerBook()
    book.local_host = "127.0.0.1"
    for n in range(100):  # the tracker's list: not bounded here
        book.add(f"listed{n}", f"10.1.{n}.1", 7000)
    # An endpoint of a known peer, a banned host, no address, a known PeerID: never taken.
    book.add("liar", "10.9.9.9", 7000)
    book.ban_host("liar")
    refused = [("x1", "10.1.0.1", 7000), ("x2", "10.9.9.9", 7001), ("x3", None, 7000)]
    assert book.take_found([*refused, ("listed5", "10.2.0.1", 7000)]) == []
    # One host named many times: a few of its PeerIDs, one per endpoint.
    victim = [(f"v{n}", "192.0.2.8", 1000 + n % 10) for n in range(1000)]
    taken = book.take_found(victim)
    assert len(taken) == MAX_FOUND_PER_HOST
    assert len({victim[i][2] for i in taken}) == MAX_FOUND_PER_HOST
    assert all(book.get(victim[i][0]).found for i in taken)  # type: ignore[union-attr]
    assert not book.get("listed0").found  # type: ignore[union-attr]
    # Many hosts: DEFAULT_MAX_PEERS per answer, MAX_FOUND_PEERS in all.
    answers = [[(f"h{a}.{n}", f"198.51.{a}.{n}", 7000) for n in range(200)] for a in range(4)]
    counts = [len(book.take_found(answer)) for answer in answers]
    assert counts[0] == DEFAULT_MAX_PEERS
    assert sum(counts) == MAX_FOUND_PEERS - MAX_FOUND_PER_HOST and counts[-1] == 0
    assert len(book) == 100 + 1 + MAX_FOUND_PEERS
    # Our own host is not bounded per host (peers side by side on this machine), in all it is.
    own = PeerBook()
    own.local_host = "127.0.0.1"
    assert len(own.take_found([(f"o{n}", "127.0.0.1", 2000 + n) for n in range(10)])) == 10
