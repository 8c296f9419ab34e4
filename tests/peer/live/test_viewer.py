"""The live viewer's decisions, without sockets or sleeps: whom it asks, when it waits, gives up,
asks twice, bans, looks for relays, announces, plays and ends."""

from __future__ import annotations

import itertools

import pytest

from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    ChunkFailed,
    Connect,
    Done,
    Failed,
    FetchChunk,
    FindHolders,
    FindPeers,
    PeerConnected,
    PeerUnreachable,
    PlayChunk,
    PullMap,
    PushMap,
)
from ppsp.peer.download.peers import MAX_FAILURES, PeerBook
from ppsp.peer.live import (
    FLAG_END,
    FLAG_START,
    ChunkEnvelope,
    LivePlayback,
    LiveSource,
    LiveWindow,
    PlaybackConfig,
    generate_key,
)
from ppsp.peer.live.identity import LiveDescription
from ppsp.peer.live.viewer import LiveTiming, LiveViewerPolicy, fetches_first
from ppsp.wire.bitmap import ChunkBitmap

S = 1_700_000_000.0  # the stream's start; chunk i is stamped S + i / 2
NOW = S + 20.0  # the viewer starts watching (chunks 0 to 39 exist)
SOURCE = LiveSource.start(generate_key(), now=S, name="cam", chunk_ms=500, window_s=30)
CHUNKS = [SOURCE.sign(bytes([i]) * 100, round((S + i / 2) * 1000)) for i in range(40)]
DESC = SOURCE.description


def data(index: int) -> bytes:
    return CHUNKS[index].encode()


def viewer_of(
    description: LiveDescription, playback: LivePlayback, timing: LiveTiming | None = None
) -> LiveViewerPolicy:
    """A viewer, "me", of the stream ``description`` tells, playing with ``playback``, from NOW."""
    return LiveViewerPolicy(
        PeerBook(),
        peer_id="me",
        description=description,
        window=LiveWindow.for_description(description),
        playback=playback,
        now=NOW,
        timing=timing,
    )


def make(timing: LiveTiming | None = None, *, margin: int = 6) -> LiveViewerPolicy:
    """A viewer that joins 6 chunks behind the newest and plays after one chunk."""
    playback = LivePlayback(
        DESC, now=NOW, config=PlaybackConfig(buffer_chunks=1, join_margin=margin)
    )
    return viewer_of(DESC, playback, timing)


def connect(
    viewer: LiveViewerPolicy, peer: str, held: range, now: float, source: bool = False
) -> None:
    viewer.peers.add(peer)
    viewer.handle(PeerConnected(peer, source=source), now)
    announce(viewer, peer, held, now)


def announce(viewer: LiveViewerPolicy, peer: str, held: range, now: float) -> None:
    standing = viewer.peers.get(peer)
    assert standing is not None
    standing.set_map(ChunkBitmap.from_indexes(held, len(held), held[0]), now)


def fetches(actions: list[Action]) -> list[tuple[str, int]]:
    return [(a.peer, a.index) for a in actions if isinstance(a, FetchChunk)]


def playing(viewer: LiveViewerPolicy, relays: tuple[str, ...] = ()) -> float:
    """Source ``src`` holds 0-19 (and each relay 13-19); chunk 13 is played at the time
    returned, P: chunk i is due at P + (i - 13) / 2."""
    connect(viewer, "src", range(20), NOW, source=True)
    assert ("src", 13) in fetches(viewer.poll(NOW))
    start = NOW + 0.1
    assert viewer.arrived("src", 13, data(13), start)
    for relay in relays:
        connect(viewer, relay, range(13, 20), start)
    return start


def test_fetches_first_picks_exactly_fanout_viewers_of_those_known() -> None:
    swarm = [f"viewer-{n}" for n in range(16)]
    for index in range(500):
        takers = [p for p in swarm if fetches_first(p, index, swarm, fanout=2)]
        assert len(takers) == 2  # never none (a chunk nobody takes is late for everyone)
    assert fetches_first("a", 7, ["b"], fanout=2)  # fewer viewers than the fan-out: all
    share = sum(fetches_first("viewer-0", index, swarm, 2) for index in range(1600))
    assert 120 < share < 280  # about 2 in 16 of the chunks


def test_joins_and_finds_the_holders_of_the_joining_point_once() -> None:
    viewer = make()
    connect(viewer, "src", range(20), NOW, source=True)
    actions = viewer.poll(NOW)
    assert FindHolders(13) in actions
    assert fetches(actions) == [("src", 13)]  # one request at a time at the source
    assert not any(isinstance(a, FindHolders) for a in viewer.poll(NOW + 0.01))


def test_a_joining_viewer_takes_its_startup_buffer_from_relays_the_source_second() -> None:
    """Chunks of the startup buffer that a relay holds are asked of relays (a burst of joining
    viewers at the source delayed the new chunks that the playing viewers need); the source
    is asked for one only as a second ask, once the relay's request ran endgame_after."""
    viewer = make()
    connect(viewer, "src", range(20), NOW, source=True)
    connect(viewer, "v1", range(20), NOW)
    asked = fetches(viewer.poll(NOW))
    assert ("v1", 13) in asked and {peer for peer, _ in asked} == {"v1"}
    assert fetches(viewer.poll(NOW + 0.2)) == []
    assert ("src", 13) in fetches(viewer.poll(NOW + 0.4))


def test_a_joining_viewer_asks_for_the_chunks_nearest_its_joining_point_a_few_at_a_time() -> None:
    """While the start point is looked for, a few requests at a time, nearest the joining
    point (13) first: not the whole search range at once from every relay's free slots."""
    viewer = make()
    connect(viewer, "src", range(20), NOW, source=True)
    for relay in ("v1", "v2", "v3"):
        connect(viewer, relay, range(20), NOW)
    asked = fetches(viewer.poll(NOW))
    # 12 not yet: 13 and 14 may be start points, which would leave it unplayed.
    assert sorted(index for _, index in asked) == [13, 14, 15, 16]
    assert fetches(viewer.poll(NOW + 0.1)) == []  # none more before one of them ends


KEYED = LiveSource.start(generate_key(), now=S, name="gop", chunk_ms=500, window_s=30)
KEYED_CHUNKS = [
    KEYED.sign(bytes([i]) * 100, round((S + i / 2) * 1000), flags=FLAG_START if i % 2 else 0)
    for i in range(40)
]
"""A stream with a key frame every other chunk (odd chunks are start points), as the lab's."""


@pytest.mark.parametrize("newest", [15, 16])
def test_a_joining_viewer_asks_for_no_chunk_below_the_start_point_it_takes(newest: int) -> None:
    """Joining at the newest chunk but two (13, a start point, or 14, one before a start point
    that is taken over 13 as the later of two as near), with relays answering each request in
    turn: no chunk below the joining point is ever asked for, so none is cancelled in flight
    ("unwanted") once the start point is taken.  (Asked alongside the nearer chunks, the chunk below
    the joining point was: bytes a relay sent for nothing.)"""
    playback = LivePlayback(
        KEYED.description, now=NOW, config=PlaybackConfig(buffer_chunks=3, join_margin=2)
    )
    viewer = viewer_of(KEYED.description, playback)
    connect(viewer, "src", range(newest + 1), NOW, source=True)
    for relay in ("v1", "v2", "v3"):
        connect(viewer, relay, range(newest + 1), NOW)
    now, asked, cancelled = NOW, [], []
    for _ in range(20):  # each step: the oldest request in flight is answered
        actions = viewer.poll(now)
        asked += [index for _, index in fetches(actions)]
        cancelled += [a for a in actions if isinstance(a, CancelChunk) and a.reason != "duplicate"]
        if not viewer.in_flight():
            break
        now += 0.02
        peer, index = viewer.in_flight()[0]
        assert viewer.arrived(peer, index, KEYED_CHUNKS[index].encode(), now)
    assert playback.first == (13 if newest == 15 else 15)
    assert cancelled == []
    assert min(asked) == newest - 2  # the joining point: nothing below it


def test_a_relay_is_asked_rather_than_the_source_unless_the_chunk_is_due_soon() -> None:
    viewer = make()
    start = playing(viewer, relays=("v1",))
    # Chunk 14, due in 0.5 s, cannot wait out a stall: the source (which has delivered)
    # rather than a relay that never has; the relay takes the next four, up to its slots.
    assert fetches(viewer.poll(start)) == [("src", 14)] + [("v1", i) for i in (15, 16, 17, 18)]
    # Chunk 19, due in 3 s, waits for the relay's slots rather than go to the source.
    assert fetches(viewer.poll(start + 0.05)) == []


def test_urgent_chunks_go_to_a_relay_that_delivered_never_hedged_to_a_stranger() -> None:
    """A relay that never sent an envelope may announce every chunk and answer none (it is
    known only at its first stall, a second after it is asked): chunks that cannot wait out
    that second go to a relay that has delivered, however loaded, and a request at one
    stranger is never hedged at another."""
    viewer = make()
    start = playing(viewer, relays=("v1", "pit"))
    assert viewer.arrived("v1", 14, data(14), start)  # v1 has delivered; "pit" never has
    # 15-18 are due within stall_timeout + endgame_s (2.5 s): all to v1, up to its slots;
    # only 19, which can bear a stall, is how the stranger is tried.
    assert fetches(viewer.poll(start)) == [("v1", i) for i in (15, 16, 17, 18)] + [("pit", 19)]

    viewer = make(LiveTiming(slots_per_peer=2))
    start = playing(viewer, relays=("v1", "pit-a", "pit-b"))
    assert viewer.arrived("v1", 14, data(14), start)
    asked = {index: peer for peer, index in fetches(viewer.poll(start))}
    assert asked[15] == asked[16] == "v1"  # then v1 is full: 17 goes to a stranger
    stranger = asked[17]
    other = "pit-b" if stranger == "pit-a" else "pit-a"
    # Chunk 17 is due within endgame_s and its request ran endgame_after: not hedged at the
    # other stranger (the source is asked once it is due within source_relief).
    assert (other, 17) not in fetches(viewer.poll(start + 0.5))
    # The stranger stalled at start + 1.0: the chunk is asked again of v1 or the source.
    again = [peer for peer, index in fetches(viewer.poll(start + 1.3)) if index == 17]
    assert again and set(again) <= {"v1", "src"}


def test_a_chunk_only_the_source_holds_waits_for_a_relay_until_it_is_due_soon() -> None:
    viewer = make(LiveTiming(source_fanout=0, source_slots=4))
    connect(viewer, "v1", range(0, 13), NOW)
    start = playing(viewer)
    viewer.poll(start)
    assert ("src", 14) in viewer.in_flight() and ("src", 15) not in viewer.in_flight()
    # Chunk 15 is due at start + 1.0: asked of the source 0.75 s before.
    assert viewer.next_deadline() == pytest.approx(start + 0.25, abs=1e-6)
    assert ("src", 15) in fetches(viewer.poll(start + 0.25))


def test_a_viewer_the_hash_chooses_takes_a_new_chunk_from_the_source_at_once() -> None:
    viewer = make(LiveTiming(source_fanout=2, source_slots=4))
    connect(viewer, "v1", range(0, 13), NOW)  # two viewers: both take it first
    start = playing(viewer)
    viewer.poll(start)
    assert sorted(viewer.in_flight()) == [("src", i) for i in (14, 15, 16, 17)]


def test_a_viewer_on_probation_is_not_counted_among_those_that_take_from_the_source() -> None:
    """With a fan-out of one, chunks the hash gives "pit" are taken by nobody while "pit"
    counts; once it stalled without an envelope (probation, still so after its back-off)
    this viewer takes them from the source at once."""
    # Chunk i is due at start + (i - 13) / 2: 20-29 later than source_relief at start + 2.1.
    given_to_pit = [i for i in range(20, 30) if not fetches_first("me", i, ["me", "pit"], 1)]
    assert given_to_pit  # the hash gives some of 20-29 to the pit
    viewer = make(LiveTiming(source_fanout=1, source_slots=16))
    connect(viewer, "pit", range(0, 13), NOW)  # a viewer that holds nothing new
    start = playing(viewer)
    announce(viewer, "src", range(40), start)
    viewer.poll(start)
    assert not {i for _, i in viewer.in_flight()} & set(given_to_pit)  # left to the pit
    pit = viewer.peers.get("pit")
    assert pit is not None
    pit.stall(start)  # its first stall, no envelope ever: probation
    later = start + 2.1  # its back-off (2 s) is over: usable again, but on probation
    announce(viewer, "pit", range(0, 13), later)
    announce(viewer, "src", range(40), later)
    viewer.poll(later)
    assert set(given_to_pit) <= {i for p, i in viewer.in_flight() if p == "src"}


def test_a_peer_that_holds_nothing_is_not_counted_among_those_that_take_from_the_source() -> None:
    """With a fan-out of one, the chunks the hash gives a peer whose map holds nothing (a
    flooder pulls every chunk and keeps none; it is never asked, so never on probation) are
    taken from the source at once: counted, it would take none of them on, and every viewer
    would wait for a relay until the chunk is due within source_relief, then ask the source
    all at once (chunks skipped swarm-wide in the lab under attack)."""
    given_to_flood = [i for i in range(20, 30) if not fetches_first("me", i, ["me", "fl"], 1)]
    assert given_to_flood
    viewer = make(LiveTiming(source_fanout=1, source_slots=16))
    viewer.peers.add("fl")
    viewer.handle(PeerConnected("fl"), NOW)
    flooder = viewer.peers.get("fl")
    assert flooder is not None
    flooder.set_map(ChunkBitmap.from_indexes([], 13, 0), NOW)  # holds nothing
    start = playing(viewer)
    announce(viewer, "src", range(40), start)
    viewer.poll(start)
    assert set(given_to_flood) <= {i for p, i in viewer.in_flight() if p == "src"}


def test_a_request_is_given_up_at_the_deadline_without_blame() -> None:
    viewer = make()
    start = playing(viewer)
    announce(viewer, "src", range(20), start)  # (its map is pulled again at start + 0.5)
    viewer.poll(start)
    assert viewer.in_flight() == [("src", 14)]
    assert viewer.next_deadline() == pytest.approx(start + 0.5, abs=1e-6)
    actions = viewer.poll(start + 0.5)
    assert CancelChunk("src", 14, "late") in actions
    standing = viewer.peers.get("src")
    assert standing is not None and standing.failures == 0 and not standing.banned


def test_a_viewer_behind_skips_ahead_rather_than_ask_again_for_a_chunk_past_its_deadline() -> None:
    """A chunk whose deadline passed would be skipped on arrival: its request given up at the
    deadline is not made again (every viewer asking the source again and again for chunks
    already late kept the NAT lab's swarm behind for good); the next chunk is asked instead,
    and playback skips the missed one when that one is due."""
    viewer = make()
    start = playing(viewer)
    announce(viewer, "src", range(20), start)
    viewer.poll(start)
    assert viewer.in_flight() == [("src", 14)]  # due at start + 0.5
    actions = viewer.poll(start + 0.55)
    assert CancelChunk("src", 14, "late") in actions
    assert fetches(actions) == [("src", 15)]  # due at start + 1.0: still in time
    for step in range(1, 4):  # never chased again, however long 15 takes
        assert ("src", 14) not in fetches(viewer.poll(start + 0.55 + step * 0.1))
    assert viewer.arrived("src", 15, data(15), start + 0.9)
    played = [a.index for a in viewer.poll(start + 1.0) if isinstance(a, PlayChunk)]
    assert played == [15] and viewer.playback.qoe().chunks_skipped == 1


def test_a_source_slower_than_a_chunks_time_left_is_not_asked_for_it() -> None:
    """A swamped source (its last transfer took 2 s) is not asked for chunks due sooner than
    that: such a request only slows down those that can arrive (the source shares its upload
    among them); the chunk goes to a relay, and the source gets the first chunk it can still
    deliver in time."""
    viewer = make()
    connect(viewer, "src", range(20), NOW, source=True)
    assert ("src", 13) in fetches(viewer.poll(NOW))
    start = NOW + 2.0  # chunk i due at start + (i - 13) / 2
    assert viewer.arrived("src", 13, data(13), start)
    assert fetches(viewer.poll(start)) == [("src", 17)]  # 14-16 are due within 2 s
    connect(viewer, "v1", range(13, 20), start)
    assert ("v1", 14) in fetches(viewer.poll(start + 0.01))


def test_failures_ban_a_peer_at_the_shared_limit() -> None:
    viewer = make()
    connect(viewer, "v1", range(0, 13), NOW)
    viewer.poll(NOW)
    for _ in range(MAX_FAILURES - 1):
        viewer.handle(PeerUnreachable("v1"), NOW)
    assert not any(isinstance(a, BanPeer) for a in viewer.poll(NOW))
    viewer.handle(PeerUnreachable("v1"), NOW)
    assert BanPeer("v1", "failures") in viewer.poll(NOW)


def test_a_failed_transfer_counts_against_the_peer_and_a_delivery_clears_it() -> None:
    viewer = make()
    start = playing(viewer)
    viewer.poll(start)
    viewer.handle(ChunkFailed("src", 14), start + 0.1)
    standing = viewer.peers.get("src")
    assert standing is not None and standing.failures == 1
    viewer.handle(ChunkFailed("src", 14), start + 0.1)  # not in flight any more: ignored
    assert standing.failures == 1
    assert ("src", 14) in fetches(viewer.poll(start + 0.1))
    assert viewer.arrived("src", 14, data(14), start + 0.2)
    assert standing.failures == 0


def test_a_forged_or_misnumbered_envelope_bans_its_sender_at_once() -> None:
    viewer = make()
    start = playing(viewer, relays=("v1", "v2"))
    viewer.poll(start)
    other = LiveSource(SOURCE._key, DESC, next_index=15)  # same numbering, altered payload
    forged = other.sign(b"evil", round((S + 7.5) * 1000))
    altered = ChunkEnvelope(
        index=15,
        timestamp_ms=forged.timestamp_ms,
        signature=CHUNKS[15].signature,
        payload=b"evil",
        flags=FLAG_START,
    )
    assert not viewer.arrived("v1", 15, altered.encode(), start + 0.1)
    assert not viewer.arrived("v2", 16, data(17), start + 0.1)  # asked for 16
    actions = viewer.poll(start + 0.1)
    assert BanPeer("v1", "forged") in actions and BanPeer("v2", "forged") in actions
    assert viewer.forged_rejected == 2
    assert 15 not in viewer.window and 17 not in viewer.window
    assert all(peer == "src" for peer, _ in fetches(actions))


def test_a_transfer_caught_forging_bans_its_sender_at_once() -> None:
    # PPSPP checks signed munros in the transport: forged bytes arrive as a corrupt failure.
    viewer = make()
    start = playing(viewer, relays=("v1",))
    viewer.poll(start)
    peer, index = viewer.in_flight()[0]
    viewer.handle(ChunkFailed(peer, index, corrupt=True), start + 0.1)
    assert BanPeer(peer, "forged") in viewer.poll(start + 0.1)
    assert viewer.forged_rejected == 1


def test_a_forged_envelope_bans_every_peer_id_at_its_host() -> None:
    viewer = make()
    start = playing(viewer, relays=("v1", "v2", "v3"))
    viewer.peers.add("src", "10.0.0.1")
    viewer.peers.add("v1", "10.0.0.2")
    viewer.peers.add("v2", "10.0.0.2")  # another PeerID at v1's host
    viewer.peers.add("v3", "10.0.0.3")
    viewer.poll(start)
    assert not viewer.arrived("v1", 16, data(17), start + 0.1)  # asked for 16
    actions = viewer.poll(start + 0.1)
    assert BanPeer("v1", "forged") in actions and BanPeer("v2", "host") in actions
    assert viewer.peers.banned_hosts == {"10.0.0.2"}
    connect(viewer, "v4", range(13, 20), start + 0.2)  # listed later, at the same host
    standing = viewer.peers.add("v4", "10.0.0.2")
    assert standing.banned
    later = viewer.poll(start + 0.2) + viewer.poll(start + 1.0) + viewer.poll(start + 2.0)
    assert {peer for peer, _ in fetches(later)} <= {"src", "v3"}
    assert "v2" not in viewer.neighbours() and "v4" not in viewer.neighbours()


def test_a_slow_relay_near_the_deadline_gets_a_second_relay_and_the_first_copy_wins() -> None:
    viewer = make(LiveTiming(slots_per_peer=8))
    start = playing(viewer, relays=("v1", "v2"))
    for relay in ("v1", "v2"):  # both have delivered (a stranger's hedge is the source)
        viewer.arrived(relay, 14, data(14), start)
    first = dict((index, peer) for peer, index in fetches(viewer.poll(start)))
    slow = first[16]
    other = "v2" if slow == "v1" else "v1"
    # Chunk 16 is due at start + 1.5; the endgame starts once its request ran 0.35 s.
    assert (other, 16) not in fetches(viewer.poll(start + 0.2))
    assert (other, 16) in fetches(viewer.poll(start + 0.4))
    assert viewer.arrived(other, 16, data(16), start + 0.5)
    assert CancelChunk(slow, 16, "duplicate") in viewer.poll(start + 0.5)


def test_a_chunk_near_its_deadline_without_relay_has_every_stale_map_pulled() -> None:
    viewer = make(LiveTiming(neighbours=1, source_fanout=0))
    connect(viewer, "src", range(20), NOW, source=True)
    for relay in ("v1", "v2", "v3"):
        connect(viewer, relay, range(0, 13), NOW - 1.0)
    # Chunk 15, due 1 s after the start point (13), is only the source's.
    pulled = {a.peer for a in viewer.poll(NOW) if isinstance(a, PullMap)}
    assert pulled == {"v1", "v2", "v3"}  # not only the one neighbour
    assert not any(isinstance(a, PullMap) for a in viewer.poll(NOW + 0.05))


def test_new_chunks_are_pushed_to_the_neighbours_only() -> None:
    viewer = make(LiveTiming(neighbours=2))
    start = playing(viewer, relays=("v1", "v2", "v3", "v4"))
    pushes = [a for a in viewer.poll(start) if isinstance(a, PushMap)]
    assert len(pushes) == 1 and pushes[0].peers is not None
    assert len(pushes[0].peers) == 2 and set(pushes[0].peers) <= {"v1", "v2", "v3", "v4"}
    assert pushes[0].peers == tuple(viewer.neighbours())
    assert not any(isinstance(a, PushMap) for a in viewer.poll(start + 0.5))  # nothing new


def test_chunks_are_played_in_order_and_the_end_ends_watching() -> None:
    source = LiveSource.start(generate_key(), now=S, name="end", chunk_ms=500, window_s=30)
    stream = [source.sign(b"a", round((S + i / 2) * 1000)) for i in range(10)]
    stream.append(source.sign(b"z", round((S + 5) * 1000), flags=FLAG_START | FLAG_END))
    playback = LivePlayback(
        source.description, now=NOW, config=PlaybackConfig(buffer_chunks=2, join_margin=1)
    )
    viewer = viewer_of(source.description, playback)
    connect(viewer, "src", range(11), NOW, source=True)
    viewer.poll(NOW)
    assert viewer.arrived("src", 9, stream[9].encode(), NOW + 0.1)
    assert viewer.arrived("src", 10, stream[10].encode(), NOW + 0.2)
    actions = viewer.poll(NOW + 0.2)
    assert [a.index for a in actions if isinstance(a, PlayChunk)] == [9, 10]
    assert PlayChunk(10, b"z", True) in actions
    assert actions[-1] == Done()
    assert viewer.poll(NOW + 0.3) == [] and viewer.next_deadline() is None


def test_no_chunk_for_the_timeout_fails() -> None:
    viewer = make(LiveTiming(no_progress_timeout=5.0))
    connect(viewer, "src", range(20), NOW, source=True)
    viewer.poll(NOW)
    assert viewer.next_deadline() is not None
    actions = viewer.poll(NOW + 5.0)
    assert any(isinstance(a, Failed) and "5 s" in a.reason for a in actions)


def test_the_joining_point_is_taken_from_the_source_map() -> None:
    viewer = make()
    connect(viewer, "v1", range(0, 11), NOW)  # a viewer's map, behind the live edge
    assert viewer.poll(NOW) == [FindPeers(via_peers=False)]
    assert viewer.playback.target is None
    assert not any(isinstance(a, FindHolders) for a in viewer.poll(NOW + 0.1))
    connect(viewer, "src", range(20), NOW + 0.2, source=True)
    assert FindHolders(13) in viewer.poll(NOW + 0.2)


def test_without_a_source_map_the_viewer_joins_after_a_grace() -> None:
    viewer = make()
    connect(viewer, "v1", range(0, 11), NOW)
    viewer.poll(NOW)
    assert not any(isinstance(a, FindHolders) for a in viewer.poll(NOW + 0.9))
    assert FindHolders(4) in viewer.poll(NOW + 1.0)


# -- hostile relays: announce every chunk, never send one ----------------------------------------


def cancels(actions: list[Action], reason: str) -> list[tuple[str, int]]:
    return [(a.peer, a.index) for a in actions if isinstance(a, CancelChunk) and a.reason == reason]


def test_a_silent_relay_is_benched_and_its_chunks_asked_elsewhere_before_their_deadline() -> None:
    viewer = make(LiveTiming(endgame_s=0.3))
    start = playing(viewer, relays=("pit",))
    # Chunk 14, due at once, goes to the source; the stranger gets the next four.
    assert fetches(viewer.poll(start)) == [("src", 14)] + [("pit", i) for i in (15, 16, 17, 18)]
    connect(viewer, "v2", range(13, 20), start)
    assert fetches(viewer.poll(start + 0.01)) == [("v2", 19)]
    assert viewer.arrived("v2", 19, data(19), start + 0.05)
    viewer.poll(start + 0.5)
    # The pit's requests are checked stall_timeout (1 s) after they were made.
    deadline = viewer.next_deadline()
    assert deadline is not None and deadline <= start + 1.0
    actions = viewer.poll(start + 1.0)
    # Chunk 15 reached its deadline (a late request costs nothing); 16 and 17, due 0.5 s and
    # 1 s later, are given up as stalled and asked of peers that deliver (16, due within
    # source_relief, of the source: its slot is free, 14 was not asked again once late).
    assert cancels(actions, "stalled") == [("pit", 16), ("pit", 17), ("pit", 18)]
    assert {("src", 16), ("v2", 17)} <= set(fetches(actions))
    pit = viewer.peers.get("pit")
    assert pit is not None and pit.benched(start + 1.0) and pit.failures == 0
    assert not pit.banned and pit.benched_until == pytest.approx(start + 3.0)
    assert all(not isinstance(a, BanPeer) for a in actions)


def test_a_silent_relay_is_left_for_a_growing_back_off_and_never_banned() -> None:
    """A stream going on for 20 s: the source answers at once, the pit announces every chunk
    the source holds and never answers; no chunk is skipped.  Silence benches, never bans (a
    swamped source is silent too): the pit is asked again after each back-off."""
    source = LiveSource.start(generate_key(), now=S, name="long", chunk_ms=500, window_s=30)
    stream = [source.sign(bytes([i % 256]) * 100, round((S + i / 2) * 1000)) for i in range(120)]
    playback = LivePlayback(
        source.description, now=NOW, config=PlaybackConfig(buffer_chunks=1, join_margin=6)
    )
    viewer = viewer_of(source.description, playback, LiveTiming(source_slots=4))
    now, asked_at, banned = NOW, [], False
    in_flight_at_pit: list[int] = []
    for peer in ("src", "pit"):
        viewer.peers.add(peer)
        viewer.handle(PeerConnected(peer, source=peer == "src"), now)
    while now < NOW + 20:
        newest = int((now - S) * 2)
        for peer in ("src", "pit"):
            announce(viewer, peer, range(max(0, newest - 59), newest + 1), now)
        actions = viewer.poll(now)
        if any(peer == "pit" for peer, _ in fetches(actions)):
            asked_at.append(now)
            in_flight_at_pit.append(sum(peer == "pit" for peer, _ in viewer.in_flight()))
        banned = banned or BanPeer("pit", "failures") in actions
        for peer, index in viewer.in_flight():  # the source answers everything at once
            if peer == "src":
                viewer.arrived("src", index, stream[index].encode(), now)
        deadline = viewer.next_deadline()
        assert deadline is not None
        now = min(max(deadline, now + 0.01), now + 0.1)
    pit = viewer.peers.get("pit")
    assert not banned and pit is not None and not pit.banned and pit.failures == 0
    # Asked, benched 2 s, asked again, benched 4 s, again 8 s: a growing back-off.  (Its
    # first requests, chunks of the startup buffer, end when the source's copies arrive: it
    # stalls a second after the next ones, and each round begins with the next chunk it may
    # take, up to a chunk's length after its back-off.)
    rounds = [asked_at[0]] + [b for a, b in itertools.pairwise(asked_at) if b - a > 1]
    gaps = [b - a for a, b in itertools.pairwise(rounds)]
    assert gaps[:3] == pytest.approx([3.5, 5.5, 9.5], abs=0.5)  # stall timeout + back-off
    assert pit.stalls == len(rounds)
    # Back from its bench, a relay that never delivered is on probation: one request at a time
    # (from its second stall: one stall may be a busy relay's start on a loaded machine).
    later = [n for at, n in zip(asked_at, in_flight_at_pit, strict=True) if at >= rounds[2]]
    assert in_flight_at_pit[0] > 1 and later and max(later) == 1
    qoe = viewer.playback.qoe()
    assert qoe.chunks_skipped == 0 and qoe.chunks_played >= 35


def test_a_busy_relay_is_not_benched_and_its_overdue_chunk_is_also_asked_of_another() -> None:
    viewer = make(LiveTiming(endgame_s=0.3, slots_per_peer=2))
    start = playing(viewer)
    connect(viewer, "busy", range(16, 20), start)
    assert {("busy", 16), ("busy", 17)} <= set(fetches(viewer.poll(start)))
    assert viewer.arrived("busy", 16, data(16), start + 0.4)  # it delivers, slowly
    connect(viewer, "v2", range(13, 18), start + 0.4)
    viewer.poll(start + 0.4)
    assert ("v2", 17) not in viewer.in_flight()
    actions = viewer.poll(start + 1.0)  # chunk 17's request (made at start) is overdue
    busy = viewer.peers.get("busy")
    assert busy is not None and not busy.benched(start + 1.0) and busy.failures == 0
    assert cancels(actions, "stalled") == []
    assert ("busy", 17) in viewer.in_flight() and ("v2", 17) in fetches(actions)


def test_a_relay_never_holds_more_requests_than_its_slots_hedges_included() -> None:
    viewer = make(LiveTiming(slots_per_peer=3, source_slots=1))
    connect(viewer, "src", range(40), NOW, source=True)
    for relay in ("pit-a", "pit-b", "v1"):
        connect(viewer, relay, range(40), NOW)
    now = NOW
    for _ in range(300):
        viewer.poll(now)
        load: dict[str, int] = {}
        for peer, _index in viewer.in_flight():
            load[peer] = load.get(peer, 0) + 1
        assert all(n <= (1 if peer == "src" else 3) for peer, n in load.items()), load
        for peer, index in viewer.in_flight():
            if peer in ("src", "v1") and index < len(CHUNKS):
                viewer.arrived(peer, index, data(index), now)
        now += 0.05


def test_a_chunk_stuck_near_its_deadline_is_asked_of_the_source_when_no_relay_is_free() -> None:
    viewer = make(LiveTiming(source_fanout=0, source_slots=2, stall_timeout=5.0))
    start = playing(viewer, relays=("pit",))
    assert ("pit", 15) in fetches(viewer.poll(start))  # due at start + 1.0
    assert ("src", 15) not in fetches(viewer.poll(start + 0.2))
    # 0.75 s before its deadline, with the request 0.35 s old: the source too.
    assert ("src", 15) in fetches(viewer.poll(start + 0.4))


def test_an_unreachable_peer_is_not_connected_to_again_before_its_back_off() -> None:
    viewer = make()
    viewer.peers.add("v1")
    assert any(a == Connect("v1") for a in viewer.poll(NOW))
    viewer.handle(PeerUnreachable("v1"), NOW + 0.1)
    assert not any(isinstance(a, Connect) for a in viewer.poll(NOW + 0.2))
    deadline = viewer.next_deadline()
    assert deadline is not None and deadline <= NOW + 2.1
    assert Connect("v1") in viewer.poll(NOW + 2.1)


def test_a_busy_or_timed_out_answer_is_no_fault_and_a_busy_peer_rests() -> None:
    """503/429 (a fair relay's queue for our host is full) rests the relay for its
    Retry-After; a transport timeout is left to the stall rule; only an error answer counts."""
    viewer = make()
    start = playing(viewer, relays=("v1", "v2"))
    asked = [(p, i) for p, i in fetches(viewer.poll(start)) if p in ("v1", "v2")]
    by_peer = {p: i for p, i in asked}
    assert set(by_peer) == {"v1", "v2"}
    viewer.handle(ChunkFailed("v1", by_peer["v1"], busy=True, retry_after=2.0), start)
    viewer.handle(ChunkFailed("v2", by_peer["v2"], stalled=True), start)
    v1, v2 = viewer.peers.get("v1"), viewer.peers.get("v2")
    assert v1 is not None and v2 is not None
    assert v1.failures == 0 and v1.benched(start + 1.9) and not v1.benched(start + 2.0)
    assert v2.failures == 0
    assert all(p != "v1" for p, _ in fetches(viewer.poll(start + 0.01)))
    # An error answer is a fault.
    index = next(i for p, i in viewer.in_flight() if p == "v2")
    viewer.handle(ChunkFailed("v2", index), start + 0.02)
    assert v2.failures == 1


def test_a_silent_source_is_never_benched_and_its_chunk_is_also_asked_of_a_relay() -> None:
    """A capped source serving every viewer is silent to each for seconds: benched, a chunk
    only it holds would be skipped.  Its request stays; a relay holding the chunk is asked too."""
    viewer = make()
    connect(viewer, "src", range(20), NOW, source=True)
    (first,) = [i for p, i in fetches(viewer.poll(NOW)) if p == "src"]
    later = NOW + 2.5  # well past the stall timeout, nothing from the source
    connect(viewer, "v1", range(13, 20), later)
    actions = viewer.poll(later)
    src = viewer.peers.get("src")
    assert src is not None and not src.benched(later) and src.stalls == 0
    assert ("src", first) in viewer.in_flight()
    assert ("v1", first) in fetches(actions)
