"""The description's search: whom it asks, when it asks the tracker again, when it gives up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.peer.download.describing import DESCRIPTION_FANOUT, DescriptionSearch
from ppsp.peer.download.events import (
    CancelDescription,
    DescriptionArrived,
    DescriptionRefused,
    Done,
    Failed,
    FetchDescription,
    FindAnswered,
    FindPeers,
)
from ppsp.peer.download.peers import MAX_FAILURES, PeerBook


def book(*peers: str) -> PeerBook:
    result = PeerBook()
    for peer in peers:
        result.add(peer)
    return result


def test_peers_are_asked_one_at_a_time_in_order_until_one_answers() -> None:
    peers = book("A", "B", "C")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=1, hedge=5.0)
    assert search.poll(0.0) == [FetchDescription("A")]
    assert search.poll(0.1) == []  # still waiting for A
    assert search.next_deadline() == 5.0  # A's answer, or the hedge, moves the search now
    search.handle(DescriptionRefused("A"), 0.2)  # none yet: no fault
    assert search.poll(0.2) == [FetchDescription("B")]
    search.handle(DescriptionArrived("B", "the description"), 0.3)
    assert search.poll(0.3) == [Done()]
    assert search.description == "the description" and search.finished
    assert search.poll(0.4) == []
    assert peers.add("A").failures == 0


def test_several_peers_are_asked_at_once_up_to_the_fanout() -> None:
    peers = book(*"ABCDEF")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0)
    assert DESCRIPTION_FANOUT == 4
    assert search.poll(0.0) == [FetchDescription(p) for p in "ABCD"]
    assert search.poll(0.1) == []  # every slot of the fan-out is taken
    search.handle(DescriptionRefused("B"), 0.2)  # one slot frees: the next peer is asked
    assert search.poll(0.2) == [FetchDescription("E")]


def test_while_no_answer_comes_more_peers_are_asked_every_hedge_interval() -> None:
    peers = book(*"ABCDEF")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=4, hedge=0.5)
    assert search.poll(0.0) == [FetchDescription(p) for p in "ABCD"]
    assert search.poll(0.4) == [] and search.next_deadline() == 0.5
    assert search.poll(0.5) == [FetchDescription("E")]
    assert search.poll(0.9) == [] and search.next_deadline() == 1.0
    assert search.poll(1.0) == [FetchDescription("F")]
    assert search.next_deadline() is None  # nobody left to ask: only answers move it
    # A hedged slot is kept: an answer frees a slot, which goes to no one (all asked).
    search.handle(DescriptionRefused("A"), 1.1)
    assert search.poll(1.1) == []


def test_each_hedge_asks_twice_as_many_peers_as_the_one_before() -> None:
    """Twenty silent peers listed first: the answering one (the 21st) is asked after 2.5 s,
    not after 8.5 s (one more every half second)."""
    peers = book(*(f"silent{n:02d}" for n in range(20)), "honest")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=4, hedge=0.5)
    asked = [len(search.poll(t)) for t in (0.0, 0.5, 1.0, 1.5, 2.0)]
    assert asked == [4, 1, 2, 4, 8]
    assert search.poll(2.5) == [FetchDescription("silent19"), FetchDescription("honest")]


def test_a_host_s_many_peer_ids_take_one_place_until_every_host_had_one() -> None:
    """An eclipse: 8 PeerIDs of one silent host listed before the one peer of another host."""
    peers = PeerBook()
    for n in range(8):
        peers.add(f"sybil{n}", "203.0.113.7")
    peers.add("honest", "198.51.100.1")
    peers.add("nameless")  # no address known: a host of its own
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=4, hedge=0.5)
    assert search.poll(0.0) == [
        FetchDescription(p) for p in ("sybil0", "honest", "nameless", "sybil1")
    ]


def test_the_first_valid_description_wins_and_the_others_are_cancelled() -> None:
    peers = book(*"ABC")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0)
    assert len(search.poll(0.0)) == 3
    search.handle(DescriptionArrived("C", "the description"), 0.1)
    assert search.poll(0.1) == [CancelDescription("A"), CancelDescription("B"), Done()]
    # A late answer changes nothing.
    search.handle(DescriptionArrived("A", "another"), 0.2)
    assert search.description == "the description" and search.poll(0.2) == []


def test_silent_peers_do_not_delay_an_answering_one() -> None:
    """Five tarpits known first: the peer that answers is asked after two hedge intervals,
    long before any first-byte timeout."""
    peers = book("T1", "T2", "T3", "T4", "T5", "S")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=4, hedge=0.5)
    asked = search.poll(0.0) + search.poll(0.5) + search.poll(1.0)
    assert asked[-1] == FetchDescription("S")
    search.handle(DescriptionArrived("S", "d"), 1.01)
    assert search.poll(1.01)[-1] == Done()


def test_an_unanswering_peer_is_benched_and_not_asked_in_its_back_off() -> None:
    peers = book("A", "B")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, retry=0.5)
    search.poll(0.0)
    search.handle(DescriptionRefused("A", unreachable=True), 3.0)  # timed out
    search.handle(DescriptionRefused("B"), 3.0)  # none yet
    assert peers.add("A").benched(3.0)
    assert search.poll(3.0) == []
    assert search.poll(3.5) == [FindPeers(via_peers=False)]
    search.handle(FindAnswered(), 3.5)
    assert search.poll(3.5) == [FetchDescription("B")]  # A is benched until 5.0


def test_a_forged_description_bans_and_a_failed_exchange_counts() -> None:
    peers = book("A", "B")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0)
    search.poll(0.0)
    search.handle(DescriptionRefused("A", forged=True), 0.1)
    search.poll(0.1)
    search.handle(DescriptionRefused("B", unreachable=True), 0.2)
    assert peers.add("A").banned
    assert peers.add("B").failures == 1 and not peers.add("B").banned


def test_peers_behind_nat_are_asked_last_and_their_unreachable_http_is_no_failure() -> None:
    peers = book("N", "A", "B")
    peers.add("N").behind_nat = True  # it registered a REFLEXIVE PPSPP address
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, fanout=2, hedge=5.0)
    assert search.poll(0.0) == [FetchDescription("A"), FetchDescription("B")]
    search.handle(DescriptionRefused("A", unreachable=True), 0.1)
    assert search.poll(0.1) == [FetchDescription("N")]  # only once the others were asked
    search.handle(DescriptionRefused("N", unreachable=True), 0.2)  # its private HTTP address
    natted = peers.add("N")
    assert natted.failures == 0 and not natted.benched(0.2)  # reached over PPSPP instead
    assert peers.add("A").failures == 1


def test_a_vain_round_waits_then_finds_then_asks_again() -> None:
    peers = book("A")
    search = DescriptionSearch(peers, now=0.0, timeout=30.0, retry=0.5)
    search.poll(0.0)
    search.handle(DescriptionRefused("A"), 1.0)
    assert search.poll(1.0) == []
    assert search.next_deadline() == 1.5
    assert search.poll(1.4) == []
    assert search.poll(1.5) == [FindPeers(via_peers=False)]
    assert search.poll(1.6) == []  # until the FIND is answered
    peers.add("B")
    search.handle(FindAnswered(("B",)), 1.7)
    # A new round, from the first peer.
    assert search.poll(1.7) == [FetchDescription("A"), FetchDescription("B")]


def test_no_peer_at_all_gives_up_after_the_timeout() -> None:
    search = DescriptionSearch(PeerBook(), now=0.0, timeout=2.0, retry=0.5)
    now = 0.0
    actions = []
    while not search.finished:
        actions += search.poll(now)
        if actions and isinstance(actions[-1], FindPeers):
            search.handle(FindAnswered(), now)
        deadline = search.next_deadline()
        now = deadline if deadline is not None else now
    assert actions[-1] == Failed("no peers in the swarm")
    assert 2.0 < now <= 2.5 + 1e-9
    assert actions.count(FindPeers(via_peers=False)) == 5  # at 0.5, 1, 1.5, 2 and 2.5 s


def test_peers_without_a_valid_description_fail_the_search() -> None:
    peers = book("A")
    search = DescriptionSearch(peers, now=0.0, timeout=1.0, retry=0.5)
    now = 0.0
    while not search.finished:
        for action in search.poll(now):
            if isinstance(action, FetchDescription):
                search.handle(DescriptionRefused(action.peer), now)
            elif isinstance(action, FindPeers):
                search.handle(FindAnswered(), now)
        deadline = search.next_deadline()
        now = deadline if deadline is not None else now
    assert search.failure == "no peer could provide a valid content description"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["absent", "forged", "unreachable", "found"]), max_size=30),
    st.integers(1, 4),
)
def test_search_invariants(answers: list[str], count: int) -> None:
    """Whatever peers answer: no peer is asked twice at once, a banned peer is never asked,
    every wait ends at a deadline after now, and the search ends."""
    peers = book(*(f"P{i}" for i in range(count)))
    search = DescriptionSearch(peers, now=0.0, timeout=3.0, retry=0.5)
    now, replies = 0.0, iter(answers)
    for _ in range(1000):
        if search.finished:
            break
        for action in search.poll(now):
            if isinstance(action, FetchDescription):
                assert not peers.add(action.peer).banned
                reply = next(replies, "absent")
                if reply == "found":
                    search.handle(DescriptionArrived(action.peer, "d"), now)
                else:
                    search.handle(
                        DescriptionRefused(
                            action.peer,
                            forged=reply == "forged",
                            unreachable=reply == "unreachable",
                        ),
                        now,
                    )
            elif isinstance(action, FindPeers):
                search.handle(FindAnswered(), now)
        deadline = search.next_deadline()
        if deadline is not None:
            assert deadline > now or search.description is not None
            now = max(now, deadline)
    assert search.finished
    for standing in peers:
        assert standing.failures < MAX_FAILURES or standing.banned
