from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.peer.download.picker import DOWNLOAD_CONFIG, PickerConfig, PiecePicker, Request
from ppsp.wire.bitmap import ChunkBitmap


def bm(indexes: list[int] | range, size: int, start: int = 0) -> ChunkBitmap:
    return ChunkBitmap.from_indexes(indexes, size, start)


def picker(n: int, **config: object) -> PiecePicker:
    return PiecePicker(n, config=PickerConfig(**config), rng=random.Random(7))  # type: ignore[arg-type]


def chunks_of(out: list[Request]) -> list[int]:
    return [c for _, c in out]


def test_rarest_first_order() -> None:
    p = picker(6)
    p.set_peer("A", ChunkBitmap.full(6), slots=2)
    p.set_peer("B", bm([0, 1, 2, 3], 6), slots=2)
    p.set_peer("C", bm([0, 1], 6), slots=2)
    assert [p.availability(i) for i in range(6)] == [3, 3, 2, 2, 1, 1]
    out = p.next_requests(0.0)
    assert set(chunks_of(out[:2])) == {4, 5}
    assert set(chunks_of(out[2:4])) == {2, 3}
    assert set(chunks_of(out[4:])) == {0, 1}
    assert sorted(out) == [("A", 4), ("A", 5), ("B", 2), ("B", 3), ("C", 0), ("C", 1)]
    assert p.next_requests(0.0) == []


def test_random_tie_break_is_injectable() -> None:
    def order(seed: int) -> list[int]:
        p = PiecePicker(20, rng=random.Random(seed))
        p.set_peer("A", ChunkBitmap.full(20), slots=20)
        return chunks_of(p.next_requests(0.0))

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(20))


def test_held_chunks_are_never_requested() -> None:
    p = PiecePicker(5, held=[0, 2, 4])
    p.set_peer("A", ChunkBitmap.full(5), slots=5)
    assert sorted(chunks_of(p.next_requests(0.0))) == [1, 3]


def test_window_in_playback_order_then_rarest() -> None:
    p = picker(30, window=4)
    p.set_peer("A", ChunkBitmap.full(30), slots=6)
    p.set_peer("B", bm(range(20, 30), 30), slots=1)
    p.seek(10)
    out = p.next_requests(0.0)
    assert out[:4] == [("A", 10), ("A", 11), ("A", 12), ("A", 13)]
    # Then rarest first: chunks only A holds (0-19) are rarer than 20-29.
    assert all(c < 20 for _, c in out[4:6] if _ == "A")


def test_urgent_chunks_go_to_the_fastest_peer() -> None:
    p = picker(40, window=3, chunk_size=1000)
    p.set_peer("slow", bm([0], 40), slots=1)
    p.set_peer("fast", bm([1], 40), slots=1)
    # Measure slow at 1000 B/s and fast at 10000 B/s.
    assert sorted(p.next_requests(0.0)) == [("fast", 1), ("slow", 0)]
    p.on_received("slow", 0, 1000, 1.0)
    p.on_received("fast", 1, 1000, 0.1)
    assert p.throughput("slow") == pytest.approx(1000)
    assert p.throughput("fast") == pytest.approx(10000)
    p.set_peer("slow", ChunkBitmap.full(40), slots=4)
    p.set_peer("fast", ChunkBitmap.full(40), slots=2)
    p.seek(20)
    out = p.next_requests(2.0)
    assert out[:3] == [("fast", 20), ("fast", 21), ("slow", 22)]


def test_seek_moves_the_window_at_once() -> None:
    p = picker(100, window=3)
    p.set_peer("A", ChunkBitmap.full(100), slots=3)
    p.seek(0)
    assert p.next_requests(0.0) == [("A", 0), ("A", 1), ("A", 2)]
    for c in range(3):
        p.on_received("A", c, 100, 1.0)
    p.seek(50)
    assert p.next_requests(1.0) == [("A", 50), ("A", 51), ("A", 52)]
    assert p.position == 50


def test_window_chunk_skipped_when_its_holder_is_busy() -> None:
    p = picker(10, window=3)
    p.set_peer("A", bm([0], 10), slots=1)
    p.set_peer("B", bm([1, 2, 5], 10), slots=2)
    p.set_peer("A2", bm([0], 10), slots=1)
    p.seek(0)
    out = p.next_requests(0.0)
    assert out[:3] == [(out[0][0], 0), ("B", 1), ("B", 2)]


def test_per_peer_slot_limits() -> None:
    p = picker(20)
    p.set_peer("A", ChunkBitmap.full(20), slots=3)
    p.set_peer("B", ChunkBitmap.full(20))  # default slots: 4
    out = p.next_requests(0.0)
    assert sum(1 for peer, _ in out if peer == "A") == 3
    assert sum(1 for peer, _ in out if peer == "B") == 4
    assert p.next_requests(0.0) == []
    peer, chunk = out[0]
    assert p.on_received(peer, chunk, 10, 1.0) == []
    more = p.next_requests(1.0)
    assert len(more) == 1
    assert more[0][0] == peer
    with pytest.raises(ValueError):
        p.set_peer("C", ChunkBitmap.full(20), slots=0)


def test_timeouts_and_reissue_elsewhere() -> None:
    p = picker(1, initial_timeout=10.0, timeout_floor=2.0, endgame_duplicates=0)
    p.set_peer("A", ChunkBitmap.full(1), slots=1)
    out = p.next_requests(0.0)
    assert out == [("A", 0)]
    p.set_peer("B", ChunkBitmap.full(1), slots=1)
    assert p.next_timeout() == 10.0
    assert p.expired(9.9) == []
    assert p.expired(10.0) == [("A", 0)]
    assert p.next_timeout() is None
    # A timed out on chunk 0: B is preferred for it.
    assert p.next_requests(10.0) == [("B", 0)]
    # If only A holds it, A is still used.
    assert p.remove_peer("B") == [0]
    assert p.next_requests(10.0) == [("A", 0)]


def test_timeout_follows_measured_throughput() -> None:
    p = picker(10, chunk_size=1000, timeout_factor=3.0, timeout_floor=0.5)
    p.set_peer("A", ChunkBitmap.full(10), slots=1)
    ((_, c),) = p.next_requests(0.0)
    p.on_received("A", c, 1000, 1.0)  # 1000 B/s
    p.set_slots("A", 2)
    out = p.next_requests(1.0)
    assert len(out) == 2
    # First request: 3 * 1 s; second queued behind it: 3 * 2 s.
    assert p.next_timeout() == pytest.approx(4.0)
    expired = p.expired(4.0)
    assert expired == [out[0]]
    assert p.expired(7.0) == [out[1]]
    throughput = p.throughput("A")
    assert throughput is not None
    assert throughput < 1000  # expiries count as slow deliveries


def test_ewma_throughput_with_parallel_requests() -> None:
    p = picker(10, ewma_alpha=0.5)
    p.set_peer("A", ChunkBitmap.full(10), slots=2)
    a, b = p.next_requests(0.0)
    p.on_received("A", a[1], 1000, 1.0)  # busy 0 -> 1
    p.on_received("A", b[1], 1000, 2.0)  # busy 1 -> 2, not 0 -> 2
    assert p.throughput("A") == pytest.approx(1000)
    c, _ = p.next_requests(10.0)
    p.on_received("A", c[1], 1000, 10.25)  # 4000 B/s
    assert p.throughput("A") == pytest.approx(2500)
    assert p.throughput("nobody") is None


def test_failed_peer_excluded_for_that_chunk() -> None:
    p = picker(2)
    p.set_peer("A", ChunkBitmap.full(2), slots=2)
    out = p.next_requests(0.0)
    assert sorted(out) == [("A", 0), ("A", 1)]
    p.on_failed("A", 0)
    assert p.next_requests(1.0) == []  # only A holds 0 and A failed it
    p.set_peer("B", bm([0], 2), slots=1)
    assert p.next_requests(1.0) == [("B", 0)]


def test_banned_peer_is_never_asked_again() -> None:
    p = picker(4)
    p.set_peer("A", ChunkBitmap.full(4), slots=2)
    p.set_peer("B", ChunkBitmap.full(4), slots=2)
    out = p.next_requests(0.0)
    lost = p.ban("A")
    assert lost == sorted(c for peer, c in out if peer == "A")
    assert p.is_banned("A")
    assert "A" not in p.peers
    p.set_peer("A", ChunkBitmap.full(4), slots=2)  # ignored
    assert "A" not in p.peers
    assert p.availability(0) == 1
    for peer, c in out:
        if peer == "B":
            p.on_received("B", c, 10, 1.0)
    again = p.next_requests(1.0)
    assert again
    assert all(peer == "B" for peer, _ in again)


def test_endgame_duplicates_and_cancellation() -> None:
    p = picker(2, endgame_duplicates=1, endgame_patience=0.0)
    for peer in ("A", "B", "C"):
        p.set_peer(peer, ChunkBitmap.full(2), slots=2)
    out = p.next_requests(0.0)
    # Two originals plus one duplicate each: never a third copy.
    assert len(out) == 4
    assert sorted(chunks_of(out)) == [0, 0, 1, 1]
    assert len(set(out)) == 4
    assert p.endgame
    assert p.next_requests(0.0) == []
    holders0 = [peer for peer, c in out if c == 0]
    cancels = p.on_received(holders0[0], 0, 10, 1.0)
    assert cancels == [(holders0[1], 0)]
    assert (holders0[1], 0) not in p.in_flight()
    # Duplicates never go to a peer already asked for the chunk.
    more = p.next_requests(1.0)
    assert all((peer, 1) not in out for peer, _ in more)
    assert len(p.in_flight()) <= 3


def test_no_endgame_while_unrequested_chunks_wait_for_a_busy_holder() -> None:
    p = picker(3)
    p.set_peer("A", ChunkBitmap.full(3), slots=1)
    p.set_peer("B", bm([0], 3), slots=2)
    out = p.next_requests(0.0)
    # B takes 0 (its only chunk), A one of 1/2; the other waits for A; B must not duplicate.
    assert ("B", 0) in out
    assert len(out) == 2
    assert not p.endgame


def test_received_from_unknown_or_unrequested() -> None:
    p = picker(3)
    p.set_peer("A", ChunkBitmap.full(3), slots=3)
    p.next_requests(0.0)
    assert p.on_received("X", 1, 100, 1.0) == [("A", 1)]
    assert 1 not in p.missing
    assert p.mark_held(2) == [("A", 2)]
    p.on_received("A", 0, 100, 1.0)
    assert p.complete
    assert p.next_requests(2.0) == []


def test_remove_peer_returns_its_requests() -> None:
    p = picker(3)
    p.set_peer("A", ChunkBitmap.full(3), slots=3)
    out = p.next_requests(0.0)
    assert p.remove_peer("A") == sorted(chunks_of(out))
    assert p.remove_peer("A") == []
    assert p.in_flight() == []
    assert p.availability(0) == 0


def test_peer_has_grows_a_map() -> None:
    p = picker(10)
    p.set_peer("A", ChunkBitmap(0), slots=2)
    p.peer_has("A", 7)
    p.peer_has("A", 3)
    p.peer_has("A", 3)
    p.peer_has("nobody", 3)
    assert p.availability(3) == 1
    assert sorted(p.next_requests(0.0)) == [("A", 3), ("A", 7)]


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PickerConfig(window=-1)
    with pytest.raises(ValueError):
        PickerConfig(ewma_alpha=0)
    with pytest.raises(ValueError):
        PickerConfig(timeout_floor=0)
    with pytest.raises(ValueError):
        PiecePicker(-1)


# ---------------------------------------------------------------- properties


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, dict[str, tuple[set[int], int]], set[int], int]:
    n = draw(st.integers(1, 24))
    peers = {
        f"p{i}": (
            draw(st.sets(st.integers(0, n - 1), max_size=n)),
            draw(st.integers(1, 4)),
        )
        for i in range(draw(st.integers(1, 5)))
    }
    held = draw(st.sets(st.integers(0, n - 1), max_size=n))
    window = draw(st.integers(0, 6))
    return n, peers, held, window


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.lists(st.integers(0, 8), max_size=30), st.randoms(use_true_random=False))
def test_picker_invariants(
    scenario: tuple[int, dict[str, tuple[set[int], int]], set[int], int],
    ops: list[int],
    rng: random.Random,
) -> None:
    n, peers, held, window = scenario
    held = set(held)
    failed: set[tuple[str, int]] = set()
    banned: set[str] = set()
    verifying: dict[int, set[str]] = {}  # delivered chunk -> peers whose copies are verified
    p = PiecePicker(
        n,
        held=held,
        config=PickerConfig(window=window, endgame_duplicates=2, initial_timeout=3.0),
        rng=rng,
    )
    for peer, (chunks, slots) in peers.items():
        p.set_peer(peer, bm(sorted(chunks), n), slots=slots)
    p.seek(rng.randrange(n))
    now = 0.0

    def check(out: list[Request]) -> None:
        assert len(set(out)) == len(out)
        for peer, chunk in out:
            assert chunk in peers[peer][0], "asked a peer for a chunk it does not hold"
            assert chunk not in held, "asked for a held chunk"
            assert chunk not in verifying, "asked for a chunk being verified"
            assert peer not in banned
            assert (peer, chunk) not in failed
        flight = p.in_flight()
        for peer in p.peers:
            assert sum(1 for q, _ in flight if q == peer) <= peers[peer][1]
        per_chunk: dict[int, int] = {}
        for _, chunk in flight:
            per_chunk[chunk] = per_chunk.get(chunk, 0) + 1
        assert all(count <= 3 for count in per_chunk.values())

    for op in ops:
        now += 1.0
        flight = p.in_flight()
        if op <= 1 or not flight:
            check(p.next_requests(now))
        elif op == 2:
            peer, chunk = flight[rng.randrange(len(flight))]
            cancels = p.on_received(peer, chunk, 100, now)
            held.add(chunk)
            verifying.pop(chunk, None)
            assert all(c == chunk and q != peer for q, c in cancels)
        elif op == 3:
            peer, chunk = flight[rng.randrange(len(flight))]
            p.on_failed(peer, chunk)
            failed.add((peer, chunk))
        elif op == 4:
            p.expired(now + 5.0)
        elif op == 6:
            peer, chunk = flight[rng.randrange(len(flight))]
            p.on_delivered(peer, chunk, 100, now)
            if chunk not in held:
                verifying.setdefault(chunk, set()).add(peer)
        elif op in (7, 8):
            if verifying:
                chunk = rng.choice(sorted(verifying))
                peer = rng.choice(sorted(verifying[chunk]))
                outcome = rng.randrange(3) if op == 7 else 2
                if outcome == 0:
                    cancels = p.mark_held(chunk)
                    held.add(chunk)
                    del verifying[chunk]
                    assert all(c == chunk for _, c in cancels)
                else:
                    if outcome == 1:
                        p.on_failed(peer, chunk)
                        failed.add((peer, chunk))
                    else:
                        p.abandon(peer, chunk)
                    verifying[chunk].discard(peer)
                    if not verifying[chunk]:
                        del verifying[chunk]
        else:
            peer, _ = flight[rng.randrange(len(flight))]
            p.ban(peer)
            banned.add(peer)
        assert not any(q in banned for q, _ in p.in_flight())
    check(p.next_requests(now + 1.0))


@settings(max_examples=30, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_download_completes_when_every_chunk_is_somewhere(
    scenario: tuple[int, dict[str, tuple[set[int], int]], set[int], int], rng: random.Random
) -> None:
    n, peers, held, window = scenario
    peers["seed"] = (set(range(n)), 1)
    p = PiecePicker(n, held=held, config=PickerConfig(window=window), rng=rng)
    for peer, (chunks, slots) in peers.items():
        p.set_peer(peer, bm(sorted(chunks), n), slots=slots)
    p.seek(0)
    now = 0.0
    for _ in range(4 * n + 10):
        if p.complete:
            break
        now += 1.0
        p.next_requests(now)
        flight = p.in_flight()
        assert flight, "stalled with chunks missing"
        peer, chunk = flight[rng.randrange(len(flight))]
        p.on_received(peer, chunk, 100, now)
    assert p.complete


def test_max_requests_bounds_requests_to_all_peers() -> None:
    p = picker(20, max_requests=3)
    for peer in ("A", "B", "C"):
        p.set_peer(peer, ChunkBitmap.full(20), slots=4)
    out = p.next_requests(0.0)
    assert len(out) == 3
    assert p.next_requests(0.0) == []
    p.on_received(*out[0], 1000, 1.0)
    assert len(p.next_requests(1.0)) == 1
    assert len(p.in_flight()) == 3


def test_progress_keeps_a_flowing_request_alive() -> None:
    p = picker(2, initial_timeout=5.0, stall_timeout=2.0, endgame_duplicates=0)
    p.set_peer("A", ChunkBitmap.full(2), slots=2)
    a, b = p.next_requests(0.0)
    p.on_progress(*a, 4.5)  # bytes of a arrive just before its deadline
    p.on_progress("A", 99, 4.5)  # not requested: ignored
    p.on_progress("X", a[1], 4.5)  # unknown peer: ignored
    assert p.expired(5.0) == [b]
    assert p.next_timeout() == pytest.approx(6.5)
    p.on_progress(*a, 6.0)
    assert p.expired(7.9) == []
    assert p.expired(8.0) == [a]  # stalled for stall_timeout


def test_progress_never_shortens_a_deadline() -> None:
    p = picker(1, initial_timeout=10.0, stall_timeout=2.0)
    p.set_peer("A", ChunkBitmap.full(1), slots=1)
    p.next_requests(0.0)
    p.on_progress("A", 0, 1.0)
    assert p.next_timeout() == 10.0


def test_endgame_waits_until_a_request_is_overdue() -> None:
    p = picker(2, chunk_size=1000, endgame_patience=1.0, timeout_factor=3.0)
    p.set_peer("A", ChunkBitmap.full(2), slots=1)
    ((_, first),) = p.next_requests(0.0)
    p.on_received("A", first, 1000, 1.0)  # A: 1000 B/s
    ((_, last),) = p.next_requests(1.0)  # expected to take 1 s
    p.set_peer("B", ChunkBitmap.full(2), slots=1)
    assert p.endgame
    assert p.next_requests(1.5) == []  # not overdue yet: no duplicate
    assert p.next_requests(2.0) == [("B", last)]


def test_unmeasured_request_is_overdue_after_its_initial_share() -> None:
    p = picker(1, initial_timeout=6.0, timeout_factor=3.0, endgame_patience=1.0)
    p.set_peer("A", ChunkBitmap.full(1), slots=1)
    p.next_requests(0.0)
    p.set_peer("B", ChunkBitmap.full(1), slots=1)
    assert p.next_requests(1.9) == []
    assert p.next_requests(2.0) == [("B", 0)]


def test_seed_slots_bound_requests_to_a_peer_holding_everything() -> None:
    p = picker(8, seed_slots=1)
    p.set_peer("S", ChunkBitmap.full(8), slots=4)
    p.set_peer("P", bm([0, 1, 2, 3, 4, 5], 8), slots=4)
    out = p.next_requests(0.0)
    assert [c for peer, c in out if peer == "S"] in ([6], [7])
    assert len([c for peer, c in out if peer == "P"]) == 4
    # A peer that misses some of the missing chunks keeps its full slots.
    q = picker(8, seed_slots=1)
    q.set_peer("S", bm(range(7), 8), slots=4)
    assert len(q.next_requests(0.0)) == 4


def test_seeders_are_used_fully_when_no_other_peer_can_help() -> None:
    p = picker(8, seed_slots=1)
    p.set_peer("S", ChunkBitmap.full(8), slots=4)
    p.set_peer("T", ChunkBitmap.full(8), slots=4)
    p.set_peer("E", ChunkBitmap(8), slots=4)  # connected, but holds nothing
    assert len(p.next_requests(0.0)) == 8


def test_download_config_is_valid_and_bounded() -> None:
    assert DOWNLOAD_CONFIG.max_requests > 0
    assert DOWNLOAD_CONFIG.seed_slots >= 1
    with pytest.raises(ValueError):
        PickerConfig(max_requests=-1)
    with pytest.raises(ValueError):
        PickerConfig(seed_slots=-1)
    with pytest.raises(ValueError):
        PickerConfig(endgame_patience=-0.5)
    with pytest.raises(ValueError):
        PickerConfig(stall_timeout=0)


def test_queue_time_gives_a_fast_peer_more_slots_up_to_max_slots() -> None:
    p = picker(100, chunk_size=1000, queue_time=0.1, max_slots=8)
    p.set_peer("fast", ChunkBitmap.full(100), slots=2)
    p.set_peer("slow", ChunkBitmap.full(100), slots=2)
    first = p.next_requests(0.0)
    assert len(first) == 4  # unmeasured: default slots
    for peer, chunk in first:
        # fast: 1000 B in 0.02 s = 50,000 B/s -> 5 slots; slow: 1000 B/s -> 0.1 chunk, keeps 2.
        p.on_received(peer, chunk, 1000, 0.02 if peer == "fast" else 1.0)
    out = p.next_requests(1.0)
    assert len(p.in_flight("fast")) == 5
    assert len(p.in_flight("slow")) == 2
    assert {peer for peer, _ in out} == {"fast", "slow"}
    for _, chunk in p.in_flight("fast"):
        p.on_received("fast", chunk, 1000, 1.001)  # far faster: capped at max_slots
    p.next_requests(1.001)
    assert len(p.in_flight("fast")) == 8


def test_queue_time_zero_keeps_the_slots_fixed() -> None:
    p = picker(100, chunk_size=1000)
    p.set_peer("A", ChunkBitmap.full(100), slots=2)
    for _, chunk in p.next_requests(0.0):
        p.on_received("A", chunk, 1000, 0.001)
    p.next_requests(0.001)
    assert len(p.in_flight("A")) == 2


def test_rarest_order_follows_availability_changes() -> None:
    p = picker(6)
    p.set_peer("A", ChunkBitmap.full(6), slots=1)
    ((_, first),) = p.next_requests(0.0)  # every chunk equally rare: any
    p.on_received("A", first, 1000, 1.0)
    rare = next(c for c in range(6) if c != first)
    # B holds every chunk but ``rare``: only A holds it now, the rarest.
    p.set_peer("B", bm([c for c in range(6) if c != rare], 6), slots=1)
    out = p.next_requests(1.0)
    assert ("A", rare) in out


def test_rarest_order_follows_pushed_availability() -> None:
    p = picker(4)
    p.set_peer("A", ChunkBitmap.full(4), slots=1)
    p.set_peer("B", bm([0, 1], 4), slots=1)
    p.set_peer("C", ChunkBitmap(4), slots=1)
    for peer, chunk in p.next_requests(0.0):  # A: 2 or 3 (rarest), B: 0 or 1
        p.on_received(peer, chunk, 1000, 1.0)
    was_rare = ({2, 3} & p.missing).pop()
    was_common = ({0, 1} & p.missing).pop()
    # Pushed availability: the once-rare chunk is now the most common one.
    p.peer_has("B", was_rare)
    p.peer_has("C", was_rare)
    assert p.availability(was_rare) == 3 and p.availability(was_common) == 2
    assert p.next_requests(2.0)[0][1] == was_common


def test_delivered_chunk_frees_its_slot_and_is_not_asked_again_while_verified() -> None:
    p = picker(4, max_requests=3)
    p.set_peer("A", ChunkBitmap.full(4), slots=1)
    p.set_peer("B", ChunkBitmap.full(4), slots=1)
    first = p.next_requests(0.0)
    assert len(first) == 2
    (peer, chunk), (other, other_chunk) = first
    p.on_delivered(peer, chunk, 1000, 1.0)
    assert p.throughput(peer) == pytest.approx(1000)
    assert p.in_flight(peer) == []
    again = p.next_requests(1.0)
    # The free slot takes another chunk, never the one being verified; the budget of three
    # counts it (one verifying, two in flight).
    assert len(again) == 1 and again[0][0] == peer and again[0][1] not in (chunk, other_chunk)
    assert p.next_requests(1.0) == []
    assert chunk in p.missing and not p.complete
    # Verified: held; a failed verification makes it wanted again, from another peer.
    assert p.mark_held(chunk) == []
    assert chunk not in p.missing
    p.on_delivered(other, other_chunk, 1000, 2.0)
    p.on_failed(other, other_chunk)
    assert other_chunk in p.missing
    # Never again from the peer that failed it; the other peer's one slot is busy.
    assert other_chunk not in [c for _, c in p.next_requests(2.0)]
    ((_, busy),) = p.in_flight(peer)
    p.on_received(peer, busy, 1000, 3.0)
    assert (peer, other_chunk) in p.next_requests(3.0)


def test_abandoned_verification_makes_the_chunk_wanted_again() -> None:
    p = picker(1)
    p.set_peer("A", ChunkBitmap.full(1), slots=1)
    assert p.next_requests(0.0) == [("A", 0)]
    p.on_delivered("A", 0, 1000, 1.0)
    assert p.next_requests(1.0) == []
    assert not p.endgame or p.next_requests(1.0) == []
    p.abandon("A", 0)
    assert p.next_requests(2.0) == [("A", 0)]


def test_a_failed_duplicate_does_not_end_another_copys_verification() -> None:
    p = PiecePicker(4, held=[0, 1, 2], config=PickerConfig(endgame_duplicates=2))
    p.set_peer("A", ChunkBitmap.full(4), slots=1)
    p.set_peer("B", ChunkBitmap.full(4), slots=1)
    assert sorted(p.next_requests(0.0)) == [("A", 3), ("B", 3)]  # endgame: both
    p.on_delivered("A", 3, 1000, 1.0)
    p.on_failed("B", 3)  # B's request failed; A's copy is still being verified
    assert p.next_requests(2.0) == []
    p.on_failed("A", 3)  # A's copy was corrupt: 3 is wanted again, from neither
    assert p.next_requests(3.0) == []
    p.set_peer("C", ChunkBitmap.full(4), slots=1)
    assert p.next_requests(4.0) == [("C", 3)]


def test_unmeasured_peers_rank_by_advertised_rate_until_measured() -> None:
    p = picker(20, window=1)
    p.set_peer("slow", ChunkBitmap.full(20), slots=1)
    p.set_peer("fast", ChunkBitmap.full(20), slots=1)
    p.set_advertised_rate("fast", 8e6)
    p.set_advertised_rate("slow", 1e5)
    p.set_advertised_rate("nobody", 1e9)  # not a connected peer: ignored
    p.seek(0)
    out = p.next_requests(0.0)
    assert out[0] == ("fast", 0)  # the urgent chunk goes to the peer that says it is fast
    # Measured, "fast" turns out slow: the measurement wins over what it advertised.
    p.on_received("fast", 0, 1000, 10.0)  # 100 B/s
    p.on_received("slow", out[1][1], 1000, 0.01)  # 100,000 B/s
    p.seek(1)
    assert p.next_requests(10.0)[0] == ("slow", 1)
    p.set_advertised_rate("slow", None)
    assert p.throughput("slow") == pytest.approx(1000 / 0.01)
