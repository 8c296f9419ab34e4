"""The body budget evicts slow bodies for bodies it could not take (:mod:`ppsp.http.budget`),
sans I/O: no sockets, the time passed in.

A charged body has a pace (its declared length within its body timeout, here 10 s); one that
lags it by more than the grace (1 s) is slow.  A body the total cannot take evicts slow
bodies, the one furthest behind its pace first, until it fits, and each evicted body's holder
is told; when no body is slow enough, or the slow ones cannot make room within the bodies one
refusal looks at, the body is refused and nothing is evicted.  A host whose body was evicted
evicts nothing for a body timeout (a few thousand such hosts remembered).  A host's share is
never made by eviction.  A budget without a share per host (the tracker's ``--limits off``)
bounds the total only.
"""

from __future__ import annotations

import pytest

from ppsp.http.bounds import BODY_BARRED_HOSTS, BODY_EVICTION_LOOKS, BODY_GRACE
from ppsp.http.budget import BodyBudget, ChargedBody

WITHIN = 10.0
"""Seconds each body has (its pace: its size over this)."""
KIB = 1024


class Holder:
    """A body's reader that records its eviction (the server's connection closes)."""

    def __init__(self, name: str, evictions: list[str]) -> None:
        self.name = name
        self.evictions = evictions

    def evict_body(self) -> None:
        self.evictions.append(self.name)


def charge(
    budget: BodyBudget, evictions: list[str], name: str, host: str, size: int, now: float
) -> ChargedBody | None:
    return budget.take(host, size, now, within=WITHIN, holder=Holder(name, evictions))


def full_budget(evictions: list[str]) -> tuple[BodyBudget, dict[str, ChargedBody]]:
    """A budget of 400 KiB (100 KiB per host) spent by four 100 KiB bodies charged at 0."""
    budget = BodyBudget(per_host=100 * KIB, total=400 * KIB)
    bodies = {}
    for name in ("a", "b", "c", "d"):
        body = charge(budget, evictions, name, f"10.0.0.{ord(name)}", 100 * KIB, 0.0)
        assert body is not None
        bodies[name] = body
    return budget, bodies


def test_the_body_furthest_behind_its_pace_is_evicted_first() -> None:
    evictions: list[str] = []
    budget, bodies = full_budget(evictions)
    # At 5 s each should have half its bytes (1 s of grace allowed): a has 0, c 10 KiB
    # (1 s worth), b 20 KiB (2 s worth), d 50 KiB (on pace).
    budget.received(bodies["b"], 20 * KIB)
    budget.received(bodies["c"], 10 * KIB)
    budget.received(bodies["d"], 50 * KIB)
    assert budget.slow(5.0) == 3
    for index, expected in enumerate(("a", "c", "b")):
        assert charge(budget, evictions, "new", f"10.0.1.{index}", 100 * KIB, 5.0) is not None
        assert evictions[-1] == expected
        assert not bodies[expected].active
        budget.give(bodies[expected])  # given back already: nothing happens
    # d keeps its pace, the new ones are within their grace: refused, nothing evicted.
    refused = budget.refused
    assert charge(budget, evictions, "late", "10.0.1.2", 100 * KIB, 5.0) is None
    assert (evictions, budget.refused, budget.evicted) == (["a", "c", "b"], refused + 1, 3)
    assert (budget.in_use, budget.bodies) == (400 * KIB, 4)


def test_a_body_is_not_evicted_within_the_grace() -> None:
    evictions: list[str] = []
    budget, _ = full_budget(evictions)
    # Nothing received at all, but not yet lagging by more than the grace.
    assert BODY_GRACE == 1.0 and budget.grace == BODY_GRACE
    for now in (0.0, 0.99, BODY_GRACE):
        assert charge(budget, evictions, "new", "10.0.1.1", 1, now) is None
        assert budget.slow(now) == 0
    assert evictions == [] and budget.refused == 3
    assert budget.slow(BODY_GRACE + 1e-6) == 4
    assert charge(budget, evictions, "new", "10.0.1.1", 1, BODY_GRACE + 1e-6) is not None
    assert evictions == ["a"]  # the first charged, as far behind as the others


def test_the_floor_is_the_pace_that_brings_the_body_within_its_timeout() -> None:
    evictions: list[str] = []
    budget, bodies = full_budget(evictions)
    # At 6 s (grace 1 s) a 100 KiB body due in 10 s should have 50 KiB: a has exactly its
    # pace's worth, b one byte less.
    budget.received(bodies["a"], 50 * KIB)
    budget.received(bodies["b"], 50 * KIB - 1)
    budget.received(bodies["c"], 100 * KIB)
    budget.received(bodies["d"], 100 * KIB)
    assert budget.slow(6.0) == 1
    new = charge(budget, evictions, "new", "10.0.1.1", 100 * KIB, 6.0)
    assert new is not None and evictions == ["b"]
    # a keeps its pace as time goes on only if its bytes keep coming.
    assert charge(budget, evictions, "more", "10.0.1.2", 100 * KIB, 6.0) is None
    budget.received(bodies["a"], 10 * KIB)  # its pace until 7 s
    budget.received(new, new.size)  # the new one came whole at once
    assert charge(budget, evictions, "more", "10.0.1.2", 100 * KIB, 7.0) is None
    assert charge(budget, evictions, "more", "10.0.1.2", 100 * KIB, 7.01) is not None
    assert evictions == ["b", "a"]


def test_bodies_that_came_back_to_their_pace_or_arrived_are_not_evicted() -> None:
    evictions: list[str] = []
    budget, bodies = full_budget(evictions)
    assert budget.slow(3.0) == 4
    # b caught up (its key was set when nothing had come), c and d arrived whole (their
    # handlers have them): a alone is slow.
    budget.received(bodies["b"], 30 * KIB)
    budget.read(bodies["c"])
    budget.received(bodies["d"], 100 * KIB)
    budget.read(bodies["d"])
    assert budget.slow(3.0) == 1
    assert charge(budget, evictions, "new", "10.0.1.1", 100 * KIB, 3.0) is not None
    assert charge(budget, evictions, "more", "10.0.1.2", 1, 3.0) is None
    assert evictions == ["a"]
    # Long after, the arrived bodies are still not evicted (their handler is slow, not them).
    budget.received(bodies["b"], 70 * KIB)
    budget.read(bodies["b"])
    assert charge(budget, evictions, "more", "10.0.1.2", 1, 1000.0) is not None
    assert evictions == ["a", "new"]


def test_enough_room_or_none_evicted() -> None:
    evictions: list[str] = []
    budget = BodyBudget(per_host=400 * KIB, total=400 * KIB)
    # Two slow 50 KiB bodies and a 300 KiB body keeping its pace.
    slow = [charge(budget, evictions, n, f"10.0.0.{i}", 50 * KIB, 0.0) for i, n in enumerate("ab")]
    steady = charge(budget, evictions, "steady", "10.0.0.9", 300 * KIB, 0.0)
    assert steady is not None and all(slow)
    budget.received(steady, 300 * KIB)
    # 150 KiB needs more than the slow bodies hold: refused, nothing evicted.
    assert charge(budget, evictions, "big", "10.0.1.1", 150 * KIB, 5.0) is None
    assert evictions == [] and budget.in_use == 400 * KIB
    # 80 KiB needs both of them.
    assert charge(budget, evictions, "mid", "10.0.1.1", 80 * KIB, 5.0) is not None
    assert sorted(evictions) == ["a", "b"] and budget.in_use == 380 * KIB


def test_a_host_s_share_is_never_made_by_eviction() -> None:
    evictions: list[str] = []
    budget, bodies = full_budget(evictions)
    host = bodies["a"].host
    # a lags (nothing came in 5 s), yet its host's next body is over the share: refused.
    assert charge(budget, evictions, "same host", host, 1, 5.0) is None
    assert evictions == [] and budget.held(host) == 100 * KIB


def test_a_host_whose_body_was_evicted_evicts_none_for_a_body_timeout() -> None:
    evictions: list[str] = []
    budget, bodies = full_budget(evictions)
    host = bodies["a"].host
    assert charge(budget, evictions, "new", "10.0.1.1", 100 * KIB, 5.0) is not None
    assert evictions == ["a"]
    # a's host opens a new body for the one evicted: it evicts nothing (b and c lag as a did).
    for now in (5.0, 5.0 + WITHIN - 0.01):
        assert budget.barred(host, now)
        assert charge(budget, evictions, "again", host, 100 * KIB, now) is None
    assert evictions == ["a"] and budget.held(host) == 0
    # Another host still may; and a's host once a body timeout passed.
    assert charge(budget, evictions, "other", "10.0.1.2", 100 * KIB, 5.0) is not None
    assert not budget.barred(host, 5.0 + WITHIN)
    assert charge(budget, evictions, "again", host, 100 * KIB, 5.0 + WITHIN) is not None
    assert evictions == ["a", "b", "c"]


def test_the_hosts_barred_from_evicting_are_bounded() -> None:
    budget = BodyBudget(per_host=None, total=1)
    hosts = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(BODY_BARRED_HOSTS + 2)]
    for index, host in enumerate(hosts):  # each body evicts the one before it
        assert budget.take(host, 1, 2.0 * index, within=1e9) is not None
    assert budget.evicted == BODY_BARRED_HOSTS + 1
    now = 2.0 * len(hosts)
    assert not budget.barred(hosts[0], now)  # the oldest, forgotten
    assert all(budget.barred(host, now) for host in hosts[1:-1])


def test_one_refusal_looks_at_a_bounded_number_of_bodies() -> None:
    evictions: list[str] = []
    looks = 8
    budget = BodyBudget(per_host=None, total=1000, looks=looks)
    for index in range(1000):
        assert budget.take(f"10.0.{index // 250}.{index % 250}", 1, 0.0, within=WITHIN)
    # Every body is slow, but a body of 9 bytes needs 9 of them: more than one refusal looks at.
    assert budget.slow(5.0) == 1000
    assert charge(budget, evictions, "new", "10.1.0.1", looks + 1, 5.0) is None
    assert budget.evicted == 0 and budget.in_use == 1000
    # 8 bytes: 8 bodies evicted (holderless: nobody told).
    assert charge(budget, evictions, "new", "10.1.0.1", looks, 5.0) is not None
    assert budget.evicted == looks and budget.bodies == 1000 - looks + 1
    assert BODY_EVICTION_LOOKS == BodyBudget().looks == 64


def test_the_heap_stays_within_twice_the_bodies_charged() -> None:
    budget = BodyBudget(per_host=None, total=100 * KIB)
    kept = [budget.take(f"10.0.0.{i}", KIB, 0.0, within=WITHIN) for i in range(50)]
    bound = 2 * budget.bodies + 64
    for round_ in range(200):  # bodies come and go, chunked ones grow, arrive, are given back
        now = round_ * 0.01
        body = budget.take("10.0.1.1", KIB, now, within=WITHIN)
        assert body is not None
        for _ in range(3):
            assert budget.take_more(body, 10, now)
            budget.received(body, 300)
        budget.read(body)
        budget.give(body)
        for held in kept[round_ % 5 :: 5]:  # the others' bytes come, keying them again
            assert held is not None
            budget.received(held, 1)
        assert budget.entries <= bound
    assert all(body is not None and body.active for body in kept)
    assert budget.bodies == 50


def test_bodies_keyed_again_as_their_bytes_come_cost_a_refusal_no_looks() -> None:
    evictions: list[str] = []
    budget = BodyBudget(per_host=None, total=100 * KIB, looks=4)
    bodies = [charge(budget, evictions, f"{i}", f"10.0.0.{i}", KIB, 0.0) for i in range(100)]
    # Half of every body came (one read each, keying it again), but nothing of the last one.
    for body in bodies[:-1]:
        assert body is not None
        budget.received(body, KIB // 2)
    # Its entry lies behind the 99 stale ones of the others: they cost no look.
    assert budget.entries == 199 and budget.slow(5.0) == 1
    assert charge(budget, evictions, "new", "10.1.0.1", KIB, 5.0) is not None
    assert evictions == ["99"]


def test_a_growing_chunked_body_is_never_its_own_victim() -> None:
    evictions: list[str] = []
    budget = BodyBudget(per_host=None, total=100 * KIB)
    chunked = charge(budget, evictions, "chunked", "10.0.0.1", 60 * KIB, 0.0)
    other = charge(budget, evictions, "other", "10.0.0.2", 40 * KIB, 0.0)
    assert chunked is not None and other is not None
    # Both lag at 5 s; the chunked body's next chunk evicts the other one, not itself.
    assert budget.take_more(chunked, 30 * KIB, 5.0)
    assert evictions == ["other"] and chunked.size == 90 * KIB
    # Now only it is slow: its next chunk past the total is refused, not made by evicting it.
    assert not budget.take_more(chunked, 20 * KIB, 5.0)
    assert chunked.active and evictions == ["other"]
    # Its pace counts all it was charged: 90 KiB within 10 s.
    budget.received(chunked, 45 * KIB)
    assert chunked.due(budget.grace) == pytest.approx(0.0 + 1.0 + 5.0)


def test_without_a_share_per_host_one_host_may_hold_the_total() -> None:
    budget = BodyBudget(per_host=None, total=10)
    bodies = [budget.take("a", 3) for _ in range(3)]
    assert all(bodies) and budget.held("a") == 9
    assert budget.take("a", 2) is None  # the total stays
    with pytest.raises(ValueError):
        BodyBudget(per_host=0, total=10)
