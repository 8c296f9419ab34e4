from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.core.bitmap import ChunkBitmap
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
from ppsp.peer.messages import Property
from ppsp.peer.picker import PickerConfig, PiecePicker

KEY = generate_key()
S = 1_700_000_000.0  # the source's start: chunk i is stamped S + i
J = S + 100.2  # the viewer joins


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


def give(p: LivePlayback, index: int, now: float, nbytes: int = 0, source: bool = False) -> bool:
    return p.on_chunk(index, stamp(index), now, nbytes=nbytes, from_source=source)


def test_join_near_the_live_edge() -> None:
    p = viewer()
    assert state(p) is PlaybackState.JOINING
    assert p.buffer_chunks == 2  # 1.5 s of 1 s chunks
    assert p.join_margin == 1
    assert p.due(J) == Playout()
    assert p.wanted({5: 1}, J) == []
    p.note_newest(100, J)
    assert state(p) is PlaybackState.BUFFERING
    assert p.first == 99
    assert p.position == 99


def test_arrivals_alone_join_at_the_newest_on_due() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    for i in range(90, 101):  # a batch fetched oldest first
        give(p, i, J)
    assert state(p) is PlaybackState.JOINING
    assert p.newest == 100
    assert p.due(J) == Playout(played=(99,))
    assert p.first == 99
    assert not p.holds(98)


def test_join_never_below_floor_or_zero() -> None:
    p = viewer(join_margin=5)
    p.note_newest(2, J)
    assert p.first == 0
    q = viewer(join_margin=5)
    q.set_floor(98, J)
    q.note_newest(100, J)
    assert q.first == 98


def test_startup_after_the_buffer_is_contiguous() -> None:
    p = viewer(buffer_chunks=3, join_margin=2)
    p.note_newest(100, J)
    assert p.first == 98
    give(p, 100, J + 0.1)
    give(p, 98, J + 0.2)
    assert state(p) is PlaybackState.BUFFERING
    assert p.due(J + 0.25) == Playout()
    give(p, 99, J + 0.3)
    assert state(p) is PlaybackState.PLAYING
    assert p.play_start == pytest.approx(J + 0.3)
    assert p.due(J + 0.3) == Playout(played=(98,))
    assert p.due(J + 1.0) == Playout()
    assert p.due(J + 1.3) == Playout(played=(99,))
    qoe = p.qoe()
    assert qoe.startup_delay == pytest.approx(0.3)
    # Chunk 99 (stamped S+99) played at J+1.3 = S+101.5.
    assert qoe.delay_behind_source == pytest.approx(2.5)


def test_skip_on_missing_at_deadline_and_continuity() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    give(p, 99, J)
    give(p, 100, J + 0.4)  # playback starts at J+0.4: chunk i due at J+0.4+(i-99)
    assert p.due(J + 1.4) == Playout(played=(99, 100))
    # 101 never arrives: skipped at its deadline, playback goes on.
    assert p.due(J + 2.4) == Playout(skipped=1)
    assert not give(p, 101, J + 2.5)  # too late
    give(p, 102, J + 3.0)
    assert p.due(J + 3.4) == Playout(played=(102,))
    qoe = p.qoe()
    assert (qoe.chunks_played, qoe.chunks_skipped, qoe.chunks_due) == (3, 1, 4)
    assert qoe.continuity_index == pytest.approx(0.75)


def test_arrival_after_deadline_is_skipped_even_if_due_is_called_late() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(10, J)
    give(p, 10, J)  # starts: chunk i due at J + (i - 10)
    assert not give(p, 11, J + 1.5)  # its deadline was J+1
    give(p, 12, J + 1.9)  # on time for J+2
    assert p.due(J + 2.0) == Playout(played=(10, 12), skipped=1)
    assert p.qoe().continuity_index == pytest.approx(2 / 3)


def test_late_due_call_covers_every_passed_deadline() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(0, J)
    give(p, 0, J)
    for i in (3, 5, 9, 12):
        give(p, i, J + 0.5)
    assert p.due(J + 9.0) == Playout(played=(0, 3, 5, 9), skipped=6)
    assert p.position == 10
    assert p.due(J + 9.5) == Playout()
    assert p.next_timer() == pytest.approx(J + 10)
    assert p.due(J + 12) == Playout(played=(12,), skipped=2)
    qoe = p.qoe()
    assert (qoe.chunks_played, qoe.chunks_skipped) == (5, 8)
    assert qoe.continuity_index == pytest.approx(5 / 13)


def test_deadlines_and_urgency() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    assert p.deadline(100) is None
    assert p.urgency(99, J) == 0
    assert p.urgency(101, J) == pytest.approx(2.0)  # buffering: as if playback started now
    # Still buffering later: as if playback had started when buffering began, so a missing
    # startup chunk grows urgent (a viewer never waits for a relay for ever before it starts).
    assert p.urgency(101, J + 0.5) == pytest.approx(1.5)
    assert p.urgency(100, J + 1.5) == pytest.approx(-0.5)
    assert p.wanted({100: 1, 101: 1}, J + 1.5) == [100, 101]  # still wanted: no deadline yet
    give(p, 99, J)
    give(p, 100, J + 1)
    assert p.deadline(104) == pytest.approx(J + 6)
    assert p.urgency(104, J + 2) == pytest.approx(4.0)
    assert p.urgency(100, J + 2) == pytest.approx(0.0)
    assert p.urgency(99, J + 2) == pytest.approx(-1.0)
    assert viewer().urgency(5, J) == math.inf


def test_wanted_due_soonest_first_then_rarest() -> None:
    p = viewer(buffer_chunks=1, join_margin=0, urgent_s=2.0)
    p.note_newest(10, J)
    give(p, 10, J)  # chunk i due at J + (i - 10)
    give(p, 12, J + 0.1)
    availability = {9: 5, 10: 5, 11: 4, 12: 1, 13: 3, 14: 1, 15: 2, 16: 1, 17: 0}
    # At J+0.5 only 11 (0.5 s left) is urgent (12 is held, 13 has 2.5 s left); then the
    # rest by rarity, earlier first among equals; nobody offers 17.
    assert p.wanted(availability, J + 0.5) == [11, 14, 16, 15, 13]
    assert p.wanted(availability, J + 0.5, limit=2) == [11, 14]
    # At J+1.5: 11's deadline has passed, it will be skipped; 13 is now urgent.
    assert p.wanted(availability, J + 1.5) == [13, 14, 16, 15]


def test_wanted_respects_the_floor() -> None:
    p = viewer(buffer_chunks=3, join_margin=2)
    p.note_newest(100, J)
    assert p.wanted({98: 1, 99: 1, 100: 1}, J) == [98, 99, 100]
    give(p, 99, J)
    p.set_floor(99, J)  # 98 left the window: rejoin at the edge
    assert p.first == 99
    assert 98 not in p.wanted({98: 1, 99: 1, 100: 1}, J)


def test_floor_past_joining_point_rejoins() -> None:
    p = viewer(buffer_chunks=2, join_margin=1)
    p.note_newest(100, J)
    p.note_newest(110, J + 5)
    p.set_floor(105, J + 5)
    assert p.first == 109
    assert state(p) is PlaybackState.BUFFERING


def test_stalled_startup_rejoins_at_the_edge() -> None:
    p = viewer(buffer_chunks=2, join_margin=1, rejoin_after_s=5.0)
    p.note_newest(100, J)
    give(p, 100, J + 1)  # 99 never comes
    assert p.next_timer() == pytest.approx(J + 5)
    p.note_newest(104, J + 4)
    assert p.due(J + 4.9) == Playout()
    assert p.first == 99
    p.due(J + 5.0)
    assert p.first == 103
    assert state(p) is PlaybackState.BUFFERING
    give(p, 103, J + 5.5)
    give(p, 104, J + 5.6)
    assert p.due(J + 5.6) == Playout(played=(103,))
    assert p.qoe().startup_delay == pytest.approx(5.6)


def test_played_chunks_are_discarded() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    p.note_newest(0, J)
    give(p, 0, J)
    give(p, 1, J)
    assert p.holds(1)
    p.due(J + 1)
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


def test_steer_picker() -> None:
    p = viewer(buffer_chunks=1, join_margin=0)
    picker = PiecePicker(0, config=PickerConfig(window=3), rng=random.Random(1))
    assert p.steer(picker) == []
    p.note_newest(50, J)
    p.steer(picker)
    assert (picker.floor, picker.end, picker.position) == (50, 51, 50)
    give(p, 50, J)
    p.note_newest(53, J + 2)
    p.due(J + 2)
    p.steer(picker)
    assert (picker.floor, picker.end, picker.position) == (53, 54, 53)


def test_bad_config() -> None:
    for bad in (
        {"buffer_chunks": 0},
        {"join_margin": -1},
        {"buffer_s": -1.0},
        {"urgent_s": math.nan},
        {"rejoin_after_s": 0.0},
    ):
        with pytest.raises(ValueError):
            PlaybackConfig(**bad)


@settings(max_examples=60, deadline=None)
@given(
    chunk_ms=st.sampled_from([200, 500, 1000, 2000]),
    arrivals=st.lists(
        st.tuples(st.integers(0, 40), st.floats(0, 40, allow_nan=False)), max_size=60
    ),
    ticks=st.lists(st.floats(0, 45, allow_nan=False), max_size=30),
)
def test_playback_never_stalls(
    chunk_ms: int, arrivals: list[tuple[int, float]], ticks: list[float]
) -> None:
    d = desc(chunk_ms)
    p = LivePlayback(d, now=J, config=PlaybackConfig(buffer_chunks=1, join_margin=0))
    p.note_newest(0, J)
    events = sorted([(t, 0, i) for i, t in arrivals] + [(t, 1, -1) for t in ticks])
    played: list[int] = []
    for t, kind, i in events:
        if kind == 0:
            p.on_chunk(i, stamp(i), J + t)
        else:
            played.extend(p.due(J + t).played)
    assert played == sorted(set(played))
    if p.play_start is None:
        return
    end = J + 50
    played.extend(p.due(end).played)
    qoe = p.qoe()
    # Every chunk whose deadline passed was played or skipped, exactly once.
    expected_due = math.floor((end - p.play_start) * 1000 / chunk_ms + 1e-9) + 1
    assert qoe.chunks_due == expected_due
    assert qoe.chunks_played == len(played)
    assert 0 <= (qoe.continuity_index or 0) <= 1
