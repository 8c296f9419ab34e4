from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.peer.live import (
    LiveDescription,
    LivePlayback,
    PlaybackConfig,
    PlaybackState,
    Playout,
    QoE,
    availability_from_bitmaps,
    generate_key,
)
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import Property

KEY = generate_key()
S = 1_700_000_000.0  # the source's start: chunk i is stamped S + i
J = S + 100.2  # the viewer starts watching


def desc(chunk_ms: int = 1000) -> LiveDescription:
    return LiveDescription.create(
        KEY,
        name="cam",
        media_type="video/mp2t",
        chunk_ms=chunk_ms,
        window_s=30,
        start_ms=round(S * 1000),
    )


DESC = desc()


def stamp(index: int) -> int:
    return round((S + index) * 1000)


def viewer(**config: object) -> LivePlayback:
    return LivePlayback(DESC, now=J, config=PlaybackConfig(**config))  # type: ignore[arg-type]


def state(p: LivePlayback) -> PlaybackState:
    # A call, so that mypy does not keep a narrowed p.state across state changes.
    return p.state


def give(
    p: LivePlayback,
    index: int,
    now: float,
    nbytes: int = 0,
    source: bool = False,
    *,
    start: bool = True,
    end: bool = False,
) -> bool:
    return p.on_chunk(
        index, stamp(index), now, nbytes=nbytes, from_source=source, start=start, end=end
    )


def near(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) < 1e-6


def test_join_sets_a_target_near_the_live_edge() -> None:
    p = viewer()
    assert state(p) is PlaybackState.JOINING
    assert p.buffer_chunks == 2  # 1.5 s of 1 s chunks
    assert p.join_margin == 1
    assert p.due(J) == Playout()
    assert p.wanted({5: 1}, J) == []
    p.note_newest(100, J)
    assert state(p) is PlaybackState.BUFFERING
    assert p.target == 99
    assert p.first is None and p.position is None


def test_arrivals_alone_join_at_the_newest_on_due() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    for i in range(90, 101):  # a batch fetched oldest first
        give(p, i, J)
    assert state(p) is PlaybackState.JOINING
    assert p.newest == 100
    # Joins at 99, which is a start point; 99 and 100 are held: both go to the player.
    assert p.due(J) == Playout(played=(99, 100))
    assert p.first == 99
    assert not p.holds(98)


def test_join_never_below_floor_or_zero() -> None:
    p = viewer(join_margin=5)
    p.note_newest(2, J)
    assert p.target == 0
    q = viewer(join_margin=5)
    q.set_floor(98, J)
    q.note_newest(100, J)
    assert q.target == 98


def test_playback_begins_at_the_start_point_nearest_the_target() -> None:
    p = viewer(buffer_chunks=2, join_margin=5)
    p.note_newest(105, J)
    assert p.target == 100
    for i in range(95, 106):
        give(p, i, J, start=i in (96, 102))
    assert p.due(J) == Playout(played=tuple(range(102, 106)))  # 102 is 2 away, 96 is 4
    assert p.first == 102
    q = viewer(buffer_chunks=2, join_margin=5)
    q.note_newest(105, J)
    for i in range(95, 106):
        give(q, i, J, start=i in (98, 102))
    q.due(J)
    assert q.first == 102  # as near as 98: the later one, for less delay


def test_nothing_is_played_before_a_start_point() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(50, J)
    give(p, 50, J, start=False)
    assert p.due(J + 0.1) == Playout()
    assert p.first is None and p.play_start is None
    give(p, 51, J + 1, start=False)
    give(p, 49, J + 1.1, start=True)  # one before the target: a start point
    assert p.due(J + 1.2) == Playout(played=(49, 50, 51))
    assert p.qoe().startup_delay == pytest.approx(1.2)


def test_a_start_point_waits_briefly_for_nearer_chunks() -> None:
    p = viewer(buffer_chunks=1, join_margin=2, search_grace_s=1.0)
    p.note_newest(102, J)
    assert p.target == 100
    give(p, 97, J, start=True)  # 3 away; 98..102 exist but have not come
    assert p.due(J) == Playout()
    assert p.next_timer() == pytest.approx(J + 1.0)
    # Meanwhile the viewer asks for what is nearer the target, nearest first (a chunk below
    # the target once those nearer, and the one as far above, came without a start point).
    offered = {i: 1 for i in range(90, 103)}
    assert p.wanted(offered, J) == [100, 101, 102]
    give(p, 100, J + 0.2, start=False)
    give(p, 99, J + 0.2, start=False)
    assert p.wanted(offered, J + 0.2) == [101, 102]
    assert p.due(J + 0.5) == Playout()
    # 98, 101 and 102 never come: after the grace the start point found is taken.
    assert p.due(J + 1.0).played == (97,)
    assert p.first == 97


def test_chunks_below_the_target_are_wanted_only_once_no_nearer_start_point_can_come() -> None:
    """Playback begins at the start point: a chunk below it is never played.  A chunk below
    the target is wanted only once every nearer chunk, and the one as far above, came and is
    no start point; asked alongside them, it was cancelled in flight whenever one of them was
    (the live lab's bytes sent and not kept)."""
    p = viewer(buffer_chunks=3, join_margin=2)
    p.note_newest(102, J)
    assert p.target == 100
    offered = {i: 1 for i in range(90, 103)}
    assert p.wanted(offered, J) == [100, 101, 102]  # not 99 nor 98: 100 or 101 may be starts
    give(p, 101, J + 0.1, start=False)
    assert p.wanted(offered, J + 0.1) == [100, 102]  # 100 may still be one
    give(p, 100, J + 0.2, start=False)
    assert p.wanted(offered, J + 0.2) == [99, 102]  # 98 only once 102 is known too
    give(p, 102, J + 0.2, start=False)
    assert p.wanted(offered, J + 0.2) == [99]  # 98 once 99 is known (and 102 is)
    give(p, 99, J + 0.3, start=False)
    assert p.wanted(offered, J + 0.3) == [98]
    give(p, 98, J + 0.4, start=True)
    assert p.due(J + 0.4).played == (98, 99, 100, 101, 102)
    # A start point at the target: nothing below it was asked for, nothing is thrown away.
    q = viewer(buffer_chunks=3, join_margin=2)
    q.note_newest(102, J)
    assert q.wanted(offered, J) == [100, 101, 102]
    give(q, 100, J + 0.1, start=True)
    assert q.wanted(offered, J + 0.1) == [101, 102]
    assert q.due(J + 0.1) == Playout()
    assert q.first == 100


def test_nearer_chunks_that_arrive_decide_at_once() -> None:
    p = viewer(buffer_chunks=1, join_margin=1)
    p.note_newest(101, J)
    give(p, 98, J, start=True)
    give(p, 100, J, start=False)
    assert p.due(J) == Playout()  # 99 and 101 are nearer and unknown
    give(p, 101, J + 0.1, start=False)
    give(p, 99, J + 0.1, start=False)
    assert p.due(J + 0.1).played == (98, 99, 100, 101)


def test_chunks_go_to_the_player_as_soon_as_they_are_held() -> None:
    p = viewer(buffer_chunks=3, join_margin=2)
    p.note_newest(100, J)
    give(p, 100, J + 0.1)
    give(p, 98, J + 0.2)
    assert state(p) is PlaybackState.BUFFERING
    assert p.due(J + 0.25) == Playout()
    give(p, 99, J + 0.3)
    assert p.due(J + 0.3) == Playout(played=(98, 99, 100))
    assert state(p) is PlaybackState.PLAYING
    assert near(p.play_start, J + 0.3)
    # Chunk i is presented at play_start + ts(i) - ts(98); 101 goes out when it comes.
    assert p.deadline(101) == pytest.approx(J + 3.3)
    give(p, 101, J + 0.9)
    assert p.due(J + 0.9) == Playout(played=(101,))
    qoe = p.qoe()
    assert qoe.startup_delay == pytest.approx(0.3)
    # Chunk 98 (stamped S+98) handed to the player at J+0.3 = S+100.5.
    assert qoe.delay_behind_source == pytest.approx(2.5)


def test_deadlines_follow_the_timestamps_not_the_numbers() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(10, J)
    p.on_chunk(10, 10_000, J)  # chunk lengths 0.5 s, 1.5 s, then 1 s
    p.on_chunk(11, 10_500, J)
    p.on_chunk(12, 12_000, J)
    assert p.due(J).played == (10, 11, 12)
    start = p.play_start
    assert start is not None
    assert p.deadline(11) == pytest.approx(start + 0.5)
    assert p.deadline(12) == pytest.approx(start + 2.0)
    assert p.deadline(13) == pytest.approx(start + 3.0)  # estimated: one nominal chunk on
    assert p.urgency(13, start + 1.0) == pytest.approx(2.0)
    # A chunk that comes after its deadline is late: skipped, never played.
    assert not p.on_chunk(13, 13_000, start + 3.5)
    assert p.due(start + 3.5) == Playout(skipped=1)
    assert p.on_chunk(14, 13_400, start + 3.0)  # shorter chunk, on time
    assert p.due(start + 3.6) == Playout(played=(14,))


def test_a_missing_chunk_is_skipped_when_a_later_one_is_due() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    give(p, 99, J)
    give(p, 100, J + 0.4)
    assert p.due(J + 0.4) == Playout(played=(99, 100))
    # 101 never arrives; 102 does, due at J+0.4+3.
    give(p, 102, J + 1.0)
    assert p.due(J + 3.3) == Playout()  # 102 is not due yet: 101 may still come
    assert p.next_timer() == pytest.approx(J + 3.4)
    assert p.due(J + 3.4) == Playout(played=(102,), skipped=1)
    assert not give(p, 101, J + 3.5)  # too late
    qoe = p.qoe()
    assert (qoe.chunks_played, qoe.chunks_skipped, qoe.chunks_due) == (3, 1, 4)
    assert qoe.continuity_index == pytest.approx(0.75)
    assert p.skipped_indexes == (101,)  # which one, for the report


def test_a_stalled_source_is_no_skip() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(10, J)
    p.on_chunk(10, stamp(100), J)  # 0.2 s behind the source
    assert p.due(J).played == (10,)
    # Nothing comes for a minute (the source's input paused): nothing is due or skipped.
    assert p.due(J + 59) == Playout()
    assert p.on_chunk(11, stamp(160), J + 59.9)  # the stream goes on, a minute later
    assert p.due(J + 59.9) == Playout(played=(11,))
    assert p.qoe().chunks_skipped == 0


def test_the_end_of_the_stream() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    give(p, 99, J)
    give(p, 100, J)
    assert p.due(J).played == (99, 100)
    assert give(p, 102, J + 0.5, end=True)
    assert p.end == 102
    assert not give(p, 103, J + 0.6)  # nothing comes after the end
    give(p, 101, J + 0.7)
    out = p.due(J + 0.8)
    assert out == Playout(played=(101, 102), ended=True)
    assert state(p) is PlaybackState.ENDED
    # The wait after the end is no skip: continuity stays 1.
    assert p.due(J + 100) == Playout(ended=True)
    assert p.next_timer() is None
    assert p.wanted({103: 1}, J + 100) == []
    qoe = p.qoe()
    assert (qoe.chunks_played, qoe.chunks_skipped, qoe.continuity_index) == (4, 0, 1.0)


def test_a_stream_that_ends_during_the_startup_buffer_still_plays() -> None:
    p = viewer(buffer_chunks=3, join_margin=0)
    p.note_newest(7, J)
    give(p, 7, J)
    give(p, 8, J, end=True)
    assert p.due(J) == Playout(played=(7, 8), ended=True)


def test_a_stream_that_ended_without_a_start_point_in_reach_ends_playback() -> None:
    p = viewer(buffer_chunks=1, join_margin=1)
    p.set_floor(3, J)  # chunks 0-2 have left the window
    p.note_newest(5, J)
    for i in (3, 4):
        give(p, i, J, start=False)
    assert p.due(J) == Playout()
    give(p, 5, J, start=False, end=True)
    assert p.due(J + 0.1) == Playout(ended=True)
    assert state(p) is PlaybackState.ENDED and p.qoe().chunks_due == 0


def test_late_due_call_covers_every_passed_deadline() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(0, J)
    give(p, 0, J)
    assert p.due(J) == Playout(played=(0,))
    for i in (3, 5, 9, 12):
        give(p, i, J + 0.5)
    # By J+9, 3, 5 and 9 are due, and the chunks missing before them skipped; 12 (due at
    # J+12) waits for 10 and 11, which are skipped when it is due.
    assert p.due(J + 9.0) == Playout(played=(3, 5, 9), skipped=6)
    assert p.position == 10
    assert p.next_timer() == pytest.approx(J + 12)
    assert p.due(J + 12) == Playout(played=(12,), skipped=2)
    qoe = p.qoe()
    assert (qoe.chunks_played, qoe.chunks_skipped) == (5, 8)


def test_urgency_while_buffering_and_playing() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    assert p.deadline(100) is None
    assert p.urgency(99, J) == 0
    assert p.urgency(98, J) == 0  # below the target, while the start point is looked for
    assert p.urgency(101, J) == pytest.approx(2.0)
    # Still buffering later: as if playback had started when buffering began, so a missing
    # startup chunk grows urgent (a viewer never waits for a relay for ever before it starts).
    assert p.urgency(101, J + 0.5) == pytest.approx(1.5)
    give(p, 99, J)
    give(p, 100, J + 1)
    p.due(J + 1)
    assert p.deadline(104) == pytest.approx(J + 6)
    assert p.urgency(104, J + 2) == pytest.approx(4.0)
    assert viewer().urgency(5, J) == math.inf


def test_wanted_due_soonest_first_then_rarest() -> None:
    p = viewer(buffer_chunks=1, join_margin=0, urgent_s=2.0)
    p.note_newest(10, J)
    give(p, 10, J)
    p.due(J)  # chunk i due at J + (i - 10)
    give(p, 12, J + 0.1)
    availability = {9: 5, 10: 5, 11: 4, 12: 1, 13: 3, 14: 1, 15: 2, 16: 1, 17: 0}
    # At J+0.5 only 11 (0.5 s left) is urgent (12 is held, 13 has 2.5 s left); then the
    # rest by rarity, earlier first among equals; nobody offers 17.
    assert p.wanted(availability, J + 0.5) == [11, 14, 16, 15, 13]
    assert p.wanted(availability, J + 0.5, limit=2) == [11, 14]
    # At J+2.0: 12 is due, 11 skipped; 13 and 14 are urgent now.
    p.due(J + 2.0)
    assert p.wanted(availability, J + 2.0) == [13, 14, 16, 15]


def test_wanted_leaves_out_chunks_past_their_deadline_once_playing() -> None:
    """A chunk that arrives after its deadline is skipped: once playing, one whose deadline
    passed is not wanted (a viewer behind asks for what can still be played on time); while
    buffering, a startup chunk counted due is still wanted."""
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    assert p.urgency(99, J + 1) < 0
    assert 99 in p.wanted({99: 1, 100: 1}, J + 1)  # the startup buffer: wanted however late
    give(p, 99, J + 1)
    give(p, 100, J + 1)
    assert p.due(J + 1).played == (99, 100)  # chunk i due at J + 1 + (i - 99)
    offered = {101: 1, 102: 1, 103: 1}
    assert p.wanted(offered, J + 2.5) == [101, 102, 103]
    assert p.wanted(offered, J + 3.5) == [102, 103]  # 101 was due at J + 3
    give(p, 101, J + 3.6)  # it arrives late: skipped, as every chunk past its deadline
    assert p.due(J + 3.6).played == ()
    give(p, 102, J + 3.7)
    assert p.due(J + 4).played == (102,) and p.qoe().chunks_skipped == 1


def test_wanted_respects_the_floor() -> None:
    p = viewer(buffer_chunks=3, join_margin=2)
    p.note_newest(100, J)
    assert p.wanted({98: 1, 99: 1, 100: 1}, J) == [98, 99, 100]
    p.set_floor(99, J)  # the target 98 left the window: rejoin at the edge
    assert p.target == 99
    assert 98 not in p.wanted({98: 1, 99: 1, 100: 1}, J)


def test_floor_past_joining_point_rejoins() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    give(p, 99, J)
    p.due(J)
    assert p.first == 99
    p.note_newest(110, J + 5)
    p.set_floor(105, J + 5)
    assert p.target == 109 and p.first is None
    assert state(p) is PlaybackState.BUFFERING


def test_stalled_startup_rejoins_at_the_edge() -> None:
    p = viewer(buffer_chunks=2, join_margin=1, rejoin_after_s=5.0)
    p.note_newest(100, J)
    give(p, 99, J + 1)  # 100 never comes
    assert p.due(J + 1) == Playout()
    assert p.first == 99
    assert p.next_timer() == pytest.approx(J + 5)
    p.note_newest(104, J + 4)
    assert p.due(J + 4.9) == Playout()
    p.due(J + 5.0)
    assert p.target == 103
    assert state(p) is PlaybackState.BUFFERING
    give(p, 103, J + 5.5)
    give(p, 104, J + 5.6)
    assert p.due(J + 5.6) == Playout(played=(103, 104))
    assert p.qoe().startup_delay == pytest.approx(5.6)


def test_played_chunks_are_discarded() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(0, J)
    give(p, 0, J)
    give(p, 1, J)
    assert p.holds(1)
    p.due(J)
    assert not p.holds(0) and not p.holds(1)
    assert not give(p, 0, J + 1.1)  # already played: not kept


def test_bytes_by_origin() -> None:
    p = viewer()
    give(p, 5, J, nbytes=1000, source=True)
    give(p, 6, J, nbytes=700)
    give(p, 7, J, nbytes=300)
    qoe = p.qoe()
    assert (qoe.bytes_from_source, qoe.bytes_from_peers) == (1000, 1000)


def test_qoe_properties_and_extra() -> None:
    empty = QoE()
    assert empty.as_properties() == {"ChunksSkipped": "0"}
    assert empty.continuity_index is None
    qoe = QoE(
        startup_delay=1.23456,
        chunks_played=3,
        chunks_skipped=1,
        delay_behind_source=2.5,
        bytes_from_source=10,
        bytes_from_peers=20,
    )
    props = qoe.as_properties()
    assert props == {
        Property.STARTUP_DELAY.value: "1.235",
        Property.CONTINUITY_INDEX.value: "0.7500",
        Property.CHUNKS_SKIPPED.value: "1",
        Property.DELAY_BEHIND_SOURCE.value: "2.500",
    }
    extra = dict(qoe.as_extra())
    assert extra["ContinuityIndex"] == "0.7500"
    assert extra["BytesFromSource"] == "10"
    assert extra["BytesFromPeers"] == "20"
    assert extra["ChunksPlayed"] == "3"
    assert QoE(delay_behind_source=-0.2).as_properties()["DelayBehindSource"] == "0.000"


def test_availability_from_bitmaps() -> None:
    maps = [
        ChunkBitmap.from_indexes([10, 11], 3, 10),
        ChunkBitmap.from_indexes([11, 12], 3, 10),
    ]
    assert availability_from_bitmaps(maps) == {10: 1, 11: 2, 12: 1}


def test_bad_config() -> None:
    for bad in (
        {"buffer_chunks": 0},
        {"join_margin": -1},
        {"buffer_s": -1.0},
        {"urgent_s": math.nan},
        {"rejoin_after_s": 0.0},
        {"search_s": -1.0},
        {"search_grace_s": math.inf},
    ):
        with pytest.raises(ValueError):
            PlaybackConfig(**bad)


@settings(max_examples=80, deadline=None)
@given(
    chunk_ms=st.sampled_from([200, 500, 1000, 2000]),
    arrivals=st.lists(
        st.tuples(st.integers(0, 40), st.floats(0, 40, allow_nan=False), st.booleans()),
        max_size=60,
    ),
    ticks=st.lists(st.floats(0, 45, allow_nan=False), max_size=30),
    end=st.one_of(st.none(), st.integers(0, 40)),
)
def test_playback_accounts_for_every_chunk_once(
    chunk_ms: int,
    arrivals: list[tuple[int, float, bool]],
    ticks: list[float],
    end: int | None,
) -> None:
    d = desc(chunk_ms)
    p = LivePlayback(d, now=J, config=PlaybackConfig(buffer_chunks=1, join_margin=0))
    p.note_newest(0, J)
    events = sorted([(t, 0, i, key) for i, t, key in arrivals] + [(t, 1, -1, False) for t in ticks])
    played: list[int] = []
    skipped = 0
    for t, kind, i, key in events:
        if kind == 0:
            stamped = round(S * 1000) + i * chunk_ms
            p.on_chunk(i, stamped, J + t, start=key or i == 0, end=i == end)
        else:
            out = p.due(J + t)
            played.extend(out.played)
            skipped += out.skipped
    assert played == sorted(set(played))
    qoe = p.qoe()
    assert qoe.chunks_played == len(played) and qoe.chunks_skipped == skipped
    if p.first is None:
        assert not played
        return
    assert played[0] == p.first
    position = p.position
    assert position is not None
    # Every chunk from the first to the position was played or skipped, exactly once.
    assert qoe.chunks_due == position - p.first
    assert 0 <= (qoe.continuity_index or 0) <= 1
    if p.end is not None:
        assert position <= p.end + 1
