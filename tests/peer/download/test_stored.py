"""The stored-content download policy, without sockets or sleeps: events in, actions out.

Time is a number the tests choose; a simulated swarm (:func:`simulate`) answers every action
the policy takes, so that whole downloads run in microseconds, with failing, corrupt and slow
peers chosen by hypothesis.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.peer.content.description import ContentDescription, Representation
from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    CancelDescription,
    ChunkDelivered,
    ChunkFailed,
    ChunkProgress,
    ChunkStored,
    Connect,
    DescriptionArrived,
    Done,
    Failed,
    FetchChunk,
    FetchDescription,
    FindAnswered,
    FindPeers,
    MapUpdated,
    OpenStore,
    PeerConnected,
    PeerUnreachable,
    PullMap,
    PushMap,
    Seek,
    StoreOpened,
)
from ppsp.peer.download.peers import (
    BUSY_BACKOFF_MAX,
    BUSY_BACKOFF_MIN,
    MAX_FAILURES,
    STALL_BACKOFF,
    STALL_BACKOFF_MAX,
    PeerBook,
)
from ppsp.peer.download.picker import PickerConfig
from ppsp.peer.download.stored import DownloadTiming, Phase, StoredDownload, stored_bitmap
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import RepresentationMap, chunk_map_from_bitmaps

CHUNK = 1000


def content(chunks: int) -> ContentDescription:
    hashes = tuple(hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(chunks))
    rep = Representation(id="main", size=chunks * CHUNK - 10, chunk_hashes=hashes)
    return ContentDescription(
        name="c", media_type="application/octet-stream", chunk_size=CHUNK, representations=(rep,)
    )


def wire(indexes: Iterable[int], count: int, rep: str = "main") -> tuple[RepresentationMap, ...]:
    return chunk_map_from_bitmaps({rep: [ChunkBitmap.from_indexes(indexes, count)]})


def book(*peers: str) -> PeerBook:
    result = PeerBook()
    for peer in peers:
        result.add(peer)
    return result


def fetching(
    chunks: int = 8,
    peers: dict[str, Iterable[int]] | None = None,
    *,
    held: Iterable[int] = (),
    config: PickerConfig | None = None,
    timing: DownloadTiming | None = None,
) -> StoredDownload:
    """A download past its start: store open, every peer connected with its map, at t = 0."""
    maps = {"A": range(chunks)} if peers is None else peers
    download = StoredDownload(
        book(*maps),
        now=0.0,
        description=content(chunks),
        picker_config=config or PickerConfig(default_slots=2),
        timing=timing,
        rng=random.Random(3),
    )
    first = download.poll(0.0)
    assert first == [OpenStore(content(chunks)), *(Connect(peer) for peer in maps)]
    download.handle(StoreOpened(ChunkBitmap.from_indexes(held, chunks)), 0.0)
    for peer, indexes in maps.items():
        download.handle(PeerConnected(peer), 0.0)
        download.handle(MapUpdated(peer, wire(indexes, chunks)), 0.0)
    return download


A = TypeVar("A")


def of(kind: type[A], actions: list[Action]) -> list[A]:
    return [action for action in actions if isinstance(action, kind)]


# -- start: description, connections, store ------------------------------------------------


def test_connections_are_made_while_the_description_is_fetched() -> None:
    peers = book("A", "B")
    download = StoredDownload(peers, now=0.0, rng=random.Random(1))
    assert download.phase is Phase.DESCRIBING
    assert download.poll(0.0) == [
        Connect("A"),
        Connect("B"),
        FetchDescription("A"),
        FetchDescription("B"),  # asked of several peers at once
    ]
    # A connects and sends its map before the description is known: the map is kept.
    download.handle(PeerConnected("A"), 0.01)
    download.handle(MapUpdated("A", wire([0, 1, 2], 4)), 0.01)
    assert download.poll(0.01) == []
    download.handle(DescriptionArrived("A", content(4)), 0.02)
    assert download.phase.value == "opening"
    # The first valid description wins: B's request is cancelled.
    assert download.poll(0.02) == [CancelDescription("B"), OpenStore(content(4))]
    assert peers.add("A").chunks == ChunkBitmap.from_indexes([0, 1, 2], 4)
    download.handle(StoreOpened(ChunkBitmap(4)), 0.03)
    assert download.phase.value == "fetching"
    fetches = of(FetchChunk, download.poll(0.03))
    assert {action.peer for action in fetches} == {"A"}
    assert {action.index for action in fetches} <= {0, 1, 2}


def test_a_live_swarm_is_not_downloaded() -> None:
    download = StoredDownload(book("A"), now=0.0)
    download.poll(0.0)
    download.handle(DescriptionArrived("A", object()), 0.1)  # not a stored content's
    assert download.poll(0.1) == [Failed("this swarm is a live stream: watch it with ppsp watch")]
    assert download.phase is Phase.FAILED


def test_a_download_found_complete_in_its_store_is_done_at_once() -> None:
    download = StoredDownload(book(), now=0.0, description=content(3))
    download.poll(0.0)
    download.handle(StoreOpened(ChunkBitmap.full(3)), 0.0)
    assert download.poll(0.0) == [Done()]
    assert download.complete and download.poll(1.0) == []


def test_a_resumed_download_fetches_only_what_is_missing() -> None:
    download = fetching(6, held=[0, 2, 4], config=PickerConfig(default_slots=6))
    assert sorted(a.index for a in of(FetchChunk, download.poll(0.0))) == [1, 3, 5]
    assert download.have(0) and not download.have(1) and len(download.held) == 3


def test_a_seeder_holds_everything_and_asks_nothing() -> None:
    peers = book("A")
    seeding = StoredDownload.seeding(peers, content(5), now=0.0)
    assert seeding.complete and seeding.held == ChunkBitmap.full(5)
    assert seeding.poll(0.0) == [] and seeding.next_deadline() is None
    seeding.handle(MapUpdated("A", wire([1], 5)), 2.0)  # remembered, for FIND answers
    assert peers.add("A").chunks == ChunkBitmap.from_indexes([1], 5)


def test_maps_count_only_the_content_representation_and_range() -> None:
    maps = wire([0, 3], 4) + wire([1], 4, "other")
    assert list(stored_bitmap(maps, "main", 4)) == [0, 3]
    assert list(stored_bitmap(wire([0, 9], 10), "main", 4)) == [0]


# -- the held record -----------------------------------------------------------------------


def test_a_chunk_is_held_once_and_the_last_one_completes() -> None:
    download = fetching(2, config=PickerConfig(default_slots=2))
    assert {a.index for a in of(FetchChunk, download.poll(0.0))} == {0, 1}
    assert download.delivered("A", 0, CHUNK, 0.1)
    assert download.stored("A", 0, CHUNK, 0.2)
    assert not download.stored("A", 0, CHUNK, 0.3)  # a second copy counts as late
    assert download.cancelled == {"late": 1}
    assert download.stored("A", 1, CHUNK - 10, 0.4)  # delivered and stored in one step
    assert download.complete and download.held == ChunkBitmap.full(2)
    assert download.poll(0.4) == [Done()]
    assert download.poll(0.5) == []


def test_bytes_delivered_for_a_chunk_held_meanwhile_are_dropped_as_late() -> None:
    download = fetching(
        1, {"A": [0], "B": [0]}, config=PickerConfig(default_slots=1, endgame_duplicates=1)
    )
    fetches = of(FetchChunk, download.poll(0.0))
    assert {a.peer for a in fetches} == {"A", "B"}  # endgame: both at once
    download.handle(ChunkProgress("B", 0, 500), 0.05)
    assert download.stored("A", 0, CHUNK, 0.1)
    actions = download.poll(0.1)
    assert CancelChunk("B", 0, "duplicate") in actions and Done() in actions
    assert download.discarded_bytes == 500
    assert not download.delivered("B", 0, CHUNK, 0.2)


# -- failures, bans, timeouts ------------------------------------------------------------


def test_a_peer_failing_three_transfers_is_banned_and_its_requests_cancelled() -> None:
    download = fetching(8, {"A": range(8), "B": range(8)}, config=PickerConfig(default_slots=2))
    download.poll(0.0)
    for _ in range(MAX_FAILURES):
        in_flight = download.picker.in_flight("B") if download.picker else []
        peer, index = in_flight[0]
        download.handle(ChunkFailed(peer, index, nbytes=100), 1.0)
        actions = download.poll(1.0)
    assert BanPeer("B", "failures") in actions
    assert of(CancelChunk, actions) == [
        CancelChunk("B", i, "banned") for _, i in sorted(download_requests_of(actions, "B"))
    ] or all(a.reason == "banned" for a in of(CancelChunk, actions))
    assert download.peers.add("B").banned
    assert all(a.peer == "A" for a in of(FetchChunk, actions))
    assert download.cancelled["failed"] == MAX_FAILURES
    assert download.discarded_bytes >= MAX_FAILURES * 100


def download_requests_of(actions: list[Action], peer: str) -> list[tuple[str, int]]:
    return [(a.peer, a.index) for a in of(CancelChunk, actions) if a.peer == peer]


def test_a_corrupt_chunk_bans_its_sender_at_once() -> None:
    download = fetching(4, {"A": range(4), "B": range(4)}, config=PickerConfig(default_slots=2))
    b_requests = [a for a in of(FetchChunk, download.poll(0.0)) if a.peer == "B"]
    first, second = b_requests
    download.handle(ChunkFailed("B", first.index, nbytes=CHUNK, corrupt=True), 0.5)
    actions = download.poll(0.5)
    assert BanPeer("B", "corrupt") in actions
    assert CancelChunk("B", second.index, "banned") in actions
    assert download.cancelled == {"corrupt": 1, "banned": 1}
    assert not any(a.peer == "B" for a in of(FetchChunk, actions))


def test_a_corrupt_chunk_delivered_whole_counts_its_bytes_as_discarded() -> None:
    """As the I/O layer reports it: every byte delivered, then verification fails (the event
    carries no byte count): the chunk's bytes are wasted, and counted so."""
    download = fetching(4, {"B": range(4)}, config=PickerConfig(default_slots=1))
    (request,) = of(FetchChunk, download.poll(0.0))
    assert download.delivered("B", request.index, CHUNK, 0.4)
    download.handle(ChunkFailed("B", request.index, corrupt=True), 0.5)
    assert download.discarded_bytes == CHUNK and download.cancelled == {"corrupt": 1}


def test_a_corrupt_chunk_bans_every_peer_id_at_its_host_for_the_session() -> None:
    peers: dict[str, Iterable[int]] = {"A": range(4), "B": range(4), "C": range(4)}
    download = fetching(4, peers, config=PickerConfig(default_slots=1))
    download.peers.add("A", "10.0.0.1")
    download.peers.add("B", "10.0.0.2")
    download.peers.add("C", "10.0.0.2")  # another PeerID at B's host
    asked = {a.peer: a.index for a in of(FetchChunk, download.poll(0.0))}
    assert set(asked) == {"A", "B", "C"}
    download.handle(ChunkFailed("B", asked["B"], nbytes=CHUNK, corrupt=True), 0.5)
    actions = download.poll(0.5)
    assert BanPeer("B", "corrupt") in actions and BanPeer("C", "host") in actions
    assert CancelChunk("C", asked["C"], "banned") in actions
    assert download.peers.banned_hosts == {"10.0.0.2"}
    # A new PeerID listed at that host is never connected to nor asked.
    download.peers.add("D", "10.0.0.2")
    download.handle(FindAnswered(("D",)), 1.0)
    download.handle(ChunkStored("A", asked["A"], CHUNK), 1.0)
    now, later = 1.0, []
    while not download.complete and now < 5.0:
        for action in (actions := download.poll(now)):
            if isinstance(action, FetchChunk):
                download.handle(ChunkStored(action.peer, action.index, CHUNK), now + 0.01)
        later += actions
        now += 0.1
    assert download.complete
    assert not [a for a in later if isinstance(a, FetchChunk | Connect) and a.peer != "A"]


def test_unreachable_peers_are_banned_by_the_same_rule() -> None:
    download = fetching(2, {"A": range(2)})
    download.peers.add("C")
    assert Connect("C") in download.poll(0.0)
    now = 1.0
    for attempt in range(MAX_FAILURES):
        download.handle(PeerUnreachable("C"), now)
        actions = download.poll(now)
        if attempt < MAX_FAILURES - 1:
            assert Connect("C") not in actions  # benched: not at once...
            now = download.peers.add("C").benched_until
            assert download.next_deadline() is not None
            assert download.next_deadline() <= now  # type: ignore[operator]
            assert Connect("C") in download.poll(now)  # ... but after its back-off
    assert BanPeer("C", "failures") in actions and Connect("C") not in actions


def test_a_pex_candidate_that_does_not_answer_is_dropped_without_a_fault() -> None:
    download = fetching(2, {"A": range(2)})
    candidate = download.peers.add_pex("10.0.0.2", 7000)
    assert candidate is not None
    name = candidate.peer_id
    assert Connect(name) in download.poll(0.0)
    download.handle(PeerUnreachable(name), 1.0)
    actions = download.poll(1.0)
    assert not of(BanPeer, actions) and Connect(name) not in actions
    assert candidate.failures == 0 and not candidate.banned and not candidate.benched(1.0)
    assert Connect(name) not in download.poll(20.0)  # tried once
    # One that answers is a peer like the others: asked for the chunks it holds.
    other = download.peers.add_pex("10.0.0.3", 7000)
    assert other is not None and Connect(other.peer_id) in download.poll(21.0)
    download.handle(PeerConnected(other.peer_id), 21.0)
    download.handle(MapUpdated(other.peer_id, wire(range(2), 2)), 21.0)
    download.peers.add("A").benched_until = 60.0
    assert {a.peer for a in of(FetchChunk, download.poll(21.0))} == {other.peer_id}


def test_a_request_times_out_at_the_pickers_deadline_and_its_bytes_are_discarded() -> None:
    config = PickerConfig(default_slots=1, endgame_duplicates=0)
    download = fetching(1, {"A": [0], "B": [0]}, config=config)
    (fetch,) = of(FetchChunk, download.poll(0.0))
    download.handle(ChunkProgress(fetch.peer, 0, 300), 1.0)
    deadline = download.picker.next_timeout() if download.picker else None
    assert deadline is not None and deadline >= 15.0  # unmeasured peer: the initial timeout
    wake = download.next_deadline()
    assert wake is not None and wake <= deadline
    actions = download.poll(deadline)
    assert CancelChunk(fetch.peer, 0, "timeout") in actions
    assert download.discarded_bytes == 300
    other = "B" if fetch.peer == "A" else "A"
    assert FetchChunk(other, 0) in actions  # asked elsewhere at once


def test_a_stalled_peer_loses_its_slots_and_comes_back_after_a_growing_back_off() -> None:
    config = PickerConfig(default_slots=2, endgame_duplicates=0, initial_timeout=5.0)
    download = fetching(8, {"T": range(8)}, config=config)
    first, second = of(FetchChunk, download.poll(0.0))
    actions = download.poll(5.0)  # no byte of either: both expire, the peer loses its slots
    assert CancelChunk("T", first.index, "timeout") in actions
    assert CancelChunk("T", second.index, "timeout") in actions
    assert not of(FetchChunk, actions)
    standing = download.peers.add("T")
    assert standing.benched_until == 5.0 + STALL_BACKOFF
    wake = download.next_deadline()
    assert wake is not None and wake <= 5.0 + STALL_BACKOFF  # woken when it comes back
    assert not of(FetchChunk, download.poll(5.0 + STALL_BACKOFF - 0.1))
    again = of(FetchChunk, download.poll(5.0 + STALL_BACKOFF))
    assert again and {a.peer for a in again} == {"T"}
    # It stalls again: benched twice as long.
    assert download.picker is not None
    deadline = download.picker.next_timeout()
    assert deadline is not None
    download.poll(deadline)
    assert standing.benched_until == deadline + 2 * STALL_BACKOFF
    assert standing.failures == 0  # slow is not faulty: stalls bench, they do not ban


def test_a_busy_peer_is_not_benched_when_a_queued_request_expires() -> None:
    # A rate-capped uploader sends a few chunks at a time: a request waiting in its queue may
    # expire while bytes of another one arrive.  Such a peer is busy, not silent.
    config = PickerConfig(default_slots=2, endgame_duplicates=0, initial_timeout=5.0)
    download = fetching(8, {"T": range(8)}, config=config)
    flowing, queued = of(FetchChunk, download.poll(0.0))
    download.handle(ChunkProgress("T", flowing.index, 10), 4.0)
    actions = download.poll(5.0)  # the queued request expires; bytes came 1 s ago
    assert CancelChunk("T", queued.index, "timeout") in actions
    assert CancelChunk("T", flowing.index, "stalled") not in actions
    standing = download.peers.add("T")
    assert not standing.benched(5.0) and standing.failures == 0
    # A transport timeout of a queued request is no failure either.
    download.handle(ChunkFailed("T", flowing.index, nbytes=0, stalled=True), 5.5)
    assert not standing.benched(5.5) and standing.failures == 0
    # A peer silent for longer than the first-byte timeout is benched by the same timeout.
    download.handle(ChunkFailed("T", queued.index, nbytes=0, stalled=True), 9.0)
    assert standing.benched(9.0) and standing.failures == 0  # benched, never a fault


def test_a_transfer_that_timed_out_benches_its_peer_and_another_failure_does_not() -> None:
    download = fetching(4, {"A": range(4), "B": range(4)})
    requests = of(FetchChunk, download.poll(0.0))
    a = next(r for r in requests if r.peer == "A")
    b = next(r for r in requests if r.peer == "B")
    download.handle(ChunkFailed("A", a.index, stalled=True), 3.0)  # no first byte in time
    download.handle(ChunkFailed("B", b.index), 3.0)  # an error answer
    actions = download.poll(3.0)
    assert download.peers.add("A").benched(3.0) and not download.peers.add("B").benched(3.0)
    assert all(r.peer == "B" for r in of(FetchChunk, actions))
    assert all(c.peer == "A" and c.reason == "stalled" for c in of(CancelChunk, actions))
    # The error answer is a fault; the silence is not (benched, never banned for it).
    assert download.peers.add("B").failures == 1 and download.peers.add("A").failures == 0


def test_a_silent_only_holder_is_benched_again_and_again_and_never_banned() -> None:
    """A seeder swamped by other requesters is as silent as a tarpit: were it banned, a
    download with no other holder would be lost; it is asked again after each back-off."""
    download = fetching(4, {"S": range(4)})
    standing = download.peers.add("S")
    now = 0.0
    for _ in range(4):  # back-offs of 2, 4, 8 s (the download's no-progress bound is 30 s)
        requests = of(FetchChunk, download.poll(now))
        assert requests and all(r.peer == "S" for r in requests)
        for request in requests:
            download.handle(ChunkFailed("S", request.index, stalled=True), now + 3.0)
        assert not of(FetchChunk, download.poll(now + 3.0))  # benched: not asked
        assert standing.benched(now + 3.0) and not standing.banned
        now = standing.benched_until
    assert standing.failures == 0 and standing.stalls == 4


def test_a_busy_answer_rests_the_peer_for_its_retry_after_without_a_fault() -> None:
    download = fetching(4, {"S": range(4), "R": range(4)})
    requests = of(FetchChunk, download.poll(0.0))
    s = next(r for r in requests if r.peer == "S")
    download.handle(ChunkFailed("S", s.index, busy=True, retry_after=4.0), 1.0)
    download.handle(ChunkFailed("S", s.index, busy=True), 1.0)  # no Retry-After: a short rest
    standing = download.peers.add("S")
    assert standing.benched(4.9) and not standing.benched(5.0)
    assert standing.failures == 0 and standing.stalls == 0 and not standing.banned
    assert download.cancelled.get("busy") == 2
    assert all(r.peer != "S" for r in of(FetchChunk, download.poll(2.0)))
    # An absurd wait is bounded by the longest back-off.
    download.handle(ChunkFailed("S", s.index, busy=True, retry_after=1e9), 6.0)
    assert not standing.benched(6.0 + STALL_BACKOFF_MAX)


def test_a_peer_busy_at_once_every_time_is_asked_less_and_less_often() -> None:
    """A peer that answers every request 503 with ``Retry-After: 0`` (a liar, or a seeder whose
    queue for us stays full) is not asked again at once: it rests BUSY_BACKOFF_MIN, doubled
    with each busy answer in a row, up to BUSY_BACKOFF_MAX; never a fault."""
    download = fetching(8, {"S": range(8)})
    standing = download.peers.add("S")
    now, rests = 0.0, []
    for _ in range(8):
        requests = of(FetchChunk, download.poll(now))
        assert requests and all(r.peer == "S" for r in requests)
        for request in requests:  # every request in flight answered busy together
            download.handle(ChunkFailed("S", request.index, busy=True, retry_after=0.0), now)
        assert not of(FetchChunk, download.poll(now))  # resting: not asked
        rests.append(standing.benched_until - now)
        now = standing.benched_until
    assert rests == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert rests[0] == BUSY_BACKOFF_MIN and rests[-1] == BUSY_BACKOFF_MAX
    assert standing.failures == 0 and standing.stalls == 0 and not standing.banned


def test_tarpits_hold_no_more_than_their_slots_and_the_download_completes() -> None:
    """Five connected peers that never send a byte beside one seeder: each holds at most its
    request slots, is benched after its first timeout, and the download completes."""
    chunks = 24
    tarpits = [f"T{i}" for i in range(5)]
    maps: dict[str, Iterable[int]] = {"S": range(chunks), **{t: range(chunks) for t in tarpits}}
    config = PickerConfig(default_slots=2, max_requests=24)
    download = fetching(chunks, maps, config=config)
    sim = Sim(download, {"S": [], **{t: ["stall"] * 1000 for t in tarpits}})
    assert sim.run() == Done()
    assert download.complete
    assert max(sim.most_in_flight.get(t, 0) for t in tarpits) <= config.default_slots
    # Each tarpit is asked once per back-off, not once per free slot: a few rounds in all.
    asked = sum(sim.requests.get(t, 0) for t in tarpits)
    assert asked <= len(tarpits) * config.default_slots * 3


def test_bytes_arriving_postpone_a_timeout() -> None:
    download = fetching(1, config=PickerConfig(default_slots=1, stall_timeout=2.0))
    download.poll(0.0)
    picker = download.picker
    assert picker is not None
    first = picker.next_timeout()
    assert first is not None
    download.progress("A", 0, 100, first - 3.0)
    assert picker.next_timeout() == first  # still later than the stall timeout from then
    download.progress("A", 0, 200, first - 0.5)
    assert picker.next_timeout() == first - 0.5 + 2.0
    assert not of(CancelChunk, download.poll(first))


def test_no_progress_for_the_timeout_fails_with_a_reason() -> None:
    download = fetching(3, {"A": []}, timing=DownloadTiming(no_progress_timeout=10.0))
    now = 0.0
    for _ in range(200):
        actions = download.poll(now)
        if of(FindPeers, actions):
            download.handle(FindAnswered(), now)
        if of(Failed, actions):
            break
        deadline = download.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
    assert actions[-1] == Failed("no progress for 10 s (0/3 chunks, 1 peers known)")
    assert now == 10.0


# -- housekeeping ----------------------------------------------------------------------------


def test_maps_are_pushed_pulled_and_peers_found_on_their_intervals() -> None:
    timing = DownloadTiming(push_interval=0.5, pull_interval=2.0, find_interval=3.0)
    download = fetching(4, {"A": range(4)}, timing=timing)
    first = download.poll(0.0)
    assert PushMap() in first and FindPeers(via_peers=True) in first  # one peer: look for more
    assert not of(PullMap, first)  # A's map is fresh
    assert download.next_deadline() == 0.5
    assert of(PushMap, download.poll(0.5)) == [PushMap()]
    assert PullMap("A") not in download.poll(2.0)  # A's map is not older than two seconds
    assert FindPeers(via_peers=True) in download.poll(3.0)
    assert PullMap("A") in download.poll(4.0)  # now it is


def test_a_seek_moves_the_window_even_before_the_store_is_open() -> None:
    download = StoredDownload(
        book("A"),
        now=0.0,
        description=content(40),
        picker_config=PickerConfig(window=3, default_slots=3),
    )
    download.poll(0.0)
    download.handle(Seek(20), 0.0)
    download.handle(StoreOpened(ChunkBitmap(40)), 0.0)
    download.handle(PeerConnected("A"), 0.0)
    download.handle(MapUpdated("A", wire(range(40), 40)), 0.0)
    assert [a.index for a in of(FetchChunk, download.poll(0.0))] == [20, 21, 22]


# -- whole downloads against a simulated swarm ---------------------------------------------


@dataclass
class Sim:
    """A swarm answering a policy's actions; every transfer's outcome chosen by the test."""

    download: StoredDownload
    behaviour: dict[str, list[str]]  # per peer: outcomes of its transfers, in turn
    now: float = 0.0
    pending: list[tuple[float, int, object]] = field(default_factory=list)
    requested_from_banned: int = 0
    newly_held: int = 0
    counter: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # FetchChunk per peer
    most_in_flight: dict[str, int] = field(default_factory=dict)  # requests in flight at once

    def at(self, delay: float, event: object) -> None:
        self.counter += 1
        self.pending.append((self.now + delay, self.counter, event))

    def execute(self, action: Action) -> bool:
        chunks = self.download.chunk_count
        if isinstance(action, Connect):
            self.at(0.01, PeerConnected(action.peer))
            self.at(0.02, MapUpdated(action.peer, wire(range(chunks), chunks)))
        elif isinstance(action, PullMap):
            self.at(0.01, MapUpdated(action.peer, wire(range(chunks), chunks)))
        elif isinstance(action, FetchChunk):
            if self.download.peers.add(action.peer).banned:
                self.requested_from_banned += 1
            self.requests[action.peer] = self.requests.get(action.peer, 0) + 1
            picker = self.download.picker
            if picker is not None:
                count = len(picker.in_flight(action.peer))
                self.most_in_flight[action.peer] = max(
                    self.most_in_flight.get(action.peer, 0), count
                )
            plan = self.behaviour[action.peer]
            outcome = plan.pop(0) if plan else "ok"
            if outcome == "ok":
                self.at(0.05, ChunkDelivered(action.peer, action.index, CHUNK))
                self.at(0.06, ChunkStored(action.peer, action.index, CHUNK))
            elif outcome == "fail":
                self.at(0.05, ChunkFailed(action.peer, action.index, nbytes=10))
            elif outcome == "corrupt":
                self.at(0.05, ChunkFailed(action.peer, action.index, CHUNK, corrupt=True))
            # "stall": no answer, the policy's timeout ends it
        elif isinstance(action, CancelChunk):
            self.pending = [
                (t, n, e)
                for t, n, e in self.pending
                if not (
                    isinstance(e, ChunkDelivered | ChunkStored | ChunkFailed)
                    and (e.peer, e.index) == (action.peer, action.index)
                )
            ]
        elif isinstance(action, FindPeers):
            self.at(0.01, FindAnswered())
        return isinstance(action, Done | Failed)

    def run(self, limit: int = 20_000) -> Action:
        for _ in range(limit):
            for action in self.download.poll(self.now):
                if self.execute(action):
                    return action
            deadline = self.download.next_deadline()
            if deadline is not None:
                assert deadline > self.now, "the policy would be asked again at once"
            times = [t for t, _, _ in self.pending] + ([deadline] if deadline is not None else [])
            assert times, "nothing left to wait for"
            self.now = max(self.now, min(times))
            due = sorted(p for p in self.pending if p[0] <= self.now)
            self.pending = [p for p in self.pending if p[0] > self.now]
            for _, _, event in due:
                if isinstance(event, ChunkDelivered):
                    if not self.download.delivered(event.peer, event.index, event.nbytes, self.now):
                        self.pending = [
                            p
                            for p in self.pending
                            if not (
                                isinstance(p[2], ChunkStored)
                                and (p[2].peer, p[2].index) == (event.peer, event.index)
                            )
                        ]
                elif isinstance(event, ChunkStored):
                    self.newly_held += self.download.stored(
                        event.peer, event.index, event.nbytes, self.now
                    )
                else:
                    self.download.handle(event, self.now)  # type: ignore[arg-type]
        raise AssertionError("the download neither ended nor failed")


outcomes = st.lists(st.sampled_from(["ok", "ok", "fail", "corrupt", "stall"]), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.integers(1, 24),
    others=st.dictionaries(st.sampled_from(["B", "C", "D"]), outcomes, max_size=3),
    seeder=st.lists(st.sampled_from(["ok", "stall"]), max_size=2),
    slots=st.integers(1, 4),
)
def test_a_download_completes_whatever_the_other_peers_do(
    chunks: int, others: dict[str, list[str]], seeder: list[str], slots: int
) -> None:
    """With one honest seeder among failing, corrupt and stalling peers, every chunk is held
    once, no banned peer is asked for anything, and the policy never asks to be woken now."""
    maps: dict[str, Iterable[int]] = {"S": range(chunks), **{p: range(chunks) for p in others}}
    download = fetching(
        chunks,
        maps,
        config=PickerConfig(default_slots=slots, initial_timeout=5.0, endgame_patience=1.0),
        timing=DownloadTiming(no_progress_timeout=300.0),
    )
    sim = Sim(download, {"S": list(seeder), **{p: list(o) for p, o in others.items()}})
    end = sim.run()
    assert end == Done()
    assert download.complete and download.held == ChunkBitmap.full(chunks)
    assert sim.newly_held == chunks
    assert sim.requested_from_banned == 0
    for peer, plan in others.items():
        standing = download.peers.add(peer)
        if standing.banned:
            assert standing.failures >= MAX_FAILURES or "corrupt" in plan
    assert not download.peers.add("S").banned
