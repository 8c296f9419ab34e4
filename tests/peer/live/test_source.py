from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.live.ts_samples import (
    AUDIO_PID,
    PMT_PID,
    SPS,
    VIDEO_PID,
    audio_frame,
    pat,
    pid_of,
    pmt,
    video_frame,
)
from ppsp.errors import LiveError
from ppsp.peer.live import (
    TS_PACKET_SIZE,
    LiveChunk,
    LiveChunker,
    LiveSource,
    generate_key,
    looks_like_transport_stream,
    verify_envelope,
)
from ppsp.peer.live.source import NO_TABLES_FALLBACK_S

KEY = generate_key()
T0 = 1_700_000_000.0


def source(chunk_ms: int = 1000) -> LiveSource:
    return LiveSource.start(KEY, now=T0, name="cam", chunk_ms=chunk_ms, window_s=30)


def ts_packets(n: int, fill: int = 0) -> bytes:
    return b"".join(bytes([0x47]) + bytes([(fill + k) % 256]) * 187 for k in range(n))


def payloads(chunks: list[LiveChunk]) -> list[bytes]:
    return [c.payload for c in chunks]


def test_source_numbers_and_signs() -> None:
    src = source()
    a = src.sign(b"a", 5)
    b = src.sign(b"b", 3)  # clock stepped back: never goes backwards
    assert (a.index, b.index) == (0, 1)
    assert b.timestamp_ms == 5
    assert src.next_index == 2


def test_source_key_must_match_description() -> None:
    with pytest.raises(LiveError):
        LiveSource(generate_key(), source().description)


def test_time_based_cutting_with_fake_clock() -> None:
    chunker = LiveChunker(LiveSource(KEY, source().description))
    out: list[LiveChunk] = []
    # 10 writes per second of 10 bytes, for 3.5 s.
    for k in range(36):
        out += chunker.feed(b"0123456789", T0 + k / 10)
    assert [c.index for c in out] == [0, 1, 2]
    assert all(c.reason == "time" for c in out)
    # Each chunk holds the ten writes of its second; the write at the cut starts the next one.
    assert [len(c.payload) for c in out] == [100, 100, 100]
    assert [c.started for c in out] == pytest.approx([T0, T0 + 1, T0 + 2])
    assert [c.cut for c in out] == pytest.approx([T0 + 1, T0 + 2, T0 + 3])
    assert [c.envelope.timestamp_ms for c in out] == [round((T0 + k) * 1000) for k in range(3)]
    assert chunker.pending == 60
    assert chunker.transport_stream is False
    for chunk in out:
        verify_envelope(chunker.source.description, chunk.envelope, T0 + 3.5)


def test_timer_cuts_without_new_data() -> None:
    chunker = LiveChunker(source(chunk_ms=500))
    assert chunker.next_timer() is None
    assert chunker.feed(b"abc", T0) == []
    assert chunker.next_timer() == pytest.approx(T0 + 0.5)
    assert chunker.poll(T0 + 0.499) == []
    out = chunker.poll(T0 + 0.5)
    assert payloads(out) == [b"abc"]
    assert chunker.next_timer() is None
    assert chunker.poll(T0 + 5) == []  # nothing pending: nothing cut


def test_idle_gap_starts_the_next_chunk_at_its_first_byte() -> None:
    chunker = LiveChunker(source())
    chunker.feed(b"a", T0)
    assert payloads(chunker.poll(T0 + 1)) == [b"a"]
    assert chunker.feed(b"b", T0 + 7.25) == []
    out = chunker.feed(b"c", T0 + 8.25)
    assert payloads(out) == [b"b"]
    assert out[0].started == pytest.approx(T0 + 7.25)


def test_size_cap_cuts_early() -> None:
    chunker = LiveChunker(source(), max_chunk_bytes=1000)
    out = chunker.feed(b"x" * 2500, T0)
    assert [len(p) for p in payloads(out)] == [1000, 1000]
    assert all(c.reason == "size" for c in out)
    assert chunker.pending == 500
    out = chunker.flush(T0 + 0.2)
    assert [len(p) for p in payloads(out)] == [500]
    assert out[0].reason == "flush"
    assert out[0].end and out[0].start
    assert chunker.flush(T0 + 0.3) == []
    assert chunker.poll(T0 + 9) == []
    with pytest.raises(LiveError):
        chunker.feed(b"more", T0 + 9)


def test_transport_stream_cut_at_packet_boundaries() -> None:
    chunker = LiveChunker(source())
    stream = ts_packets(20)
    out: list[LiveChunk] = []
    # Writes of 100 bytes: never aligned with packets.
    for k in range(0, len(stream), 100):
        out += chunker.feed(stream[k : k + 100], T0 + k / 1000)
    out += chunker.feed(b"", T0 + 10)
    assert chunker.transport_stream is True
    assert out, "a time cut happened"
    for chunk in out:
        assert len(chunk.payload) % TS_PACKET_SIZE == 0
        assert looks_like_transport_stream(chunk.payload)
    rest = chunker.flush(T0 + 10)
    assert b"".join(payloads(out + rest)) == stream


def test_transport_stream_partial_packet_waits() -> None:
    chunker = LiveChunker(source())
    first = ts_packets(3)
    assert chunker.feed(first + b"\x47" + b"p" * 49, T0) == []
    assert chunker.transport_stream is True
    out = chunker.poll(T0 + 1)
    assert payloads(out) == [first]
    assert chunker.pending == 50
    # 50 bytes of a packet cannot be cut on time: no timer, no chunk.
    assert chunker.next_timer() is None
    assert chunker.poll(T0 + 3) == []
    out = chunker.feed(b"p" * 138, T0 + 3.5)
    assert [len(p) for p in payloads(out)] == [188]
    assert chunker.pending == 0


def test_transport_stream_size_cap_is_whole_packets() -> None:
    chunker = LiveChunker(source(), max_chunk_bytes=1000)  # 5 packets = 940 bytes
    out = chunker.feed(ts_packets(12), T0)
    assert [len(p) for p in payloads(out)] == [940, 940]
    assert chunker.pending == 2 * TS_PACKET_SIZE


def test_detection_with_few_packets_at_first_cut() -> None:
    chunker = LiveChunker(source())
    chunker.feed(ts_packets(1), T0)
    assert chunker.transport_stream is None
    out = chunker.poll(T0 + 1)
    assert chunker.transport_stream is True
    assert payloads(out) == [ts_packets(1)]


def test_non_ts_starting_with_sync_byte() -> None:
    data = b"\x47" + b"z" * 600
    chunker = LiveChunker(source())
    chunker.feed(data, T0)
    assert chunker.transport_stream is False
    assert payloads(chunker.poll(T0 + 1)) == [data]


def test_forced_modes() -> None:
    plain = LiveChunker(source(), transport_stream=False)
    plain.feed(ts_packets(1) + b"xy", T0)
    assert payloads(plain.poll(T0 + 1)) == [ts_packets(1) + b"xy"]
    aligned = LiveChunker(source(), transport_stream=True)
    aligned.feed(b"q" * 200, T0)
    assert [len(p) for p in payloads(aligned.poll(T0 + 1))] == [188]


def test_bad_cap_rejected() -> None:
    with pytest.raises(ValueError):
        LiveChunker(source(), max_chunk_bytes=100)


@settings(max_examples=60, deadline=None)
@given(
    writes=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 900)), min_size=1, max_size=30),
    ts=st.booleans(),
)
def test_chunker_preserves_the_stream(writes: list[tuple[int, int]], ts: bool) -> None:
    chunker = LiveChunker(source(chunk_ms=500), max_chunk_bytes=1000)
    stream = ts_packets(60) if ts else bytes(range(256)) * 60
    now = T0
    pos = 0
    out: list[LiveChunk] = []
    for size, gap_ms in writes:
        now += gap_ms / 1000
        out += chunker.feed(stream[pos : pos + size], now)
        pos += size
    out += chunker.flush(now + 1)
    assert b"".join(payloads(out)) == stream[:pos]
    assert [c.index for c in out] == list(range(len(out)))
    assert all(0 < len(c.payload) <= 1000 for c in out[:-1])
    assert len(out[-1].payload) <= 1000 and out[-1].end
    assert not any(c.end for c in out[:-1])
    stamps = [c.envelope.timestamp_ms for c in out]
    assert stamps == sorted(stamps)
    if ts and chunker.transport_stream:
        assert all(len(c.payload) % TS_PACKET_SIZE == 0 for c in out[:-1])
    if not chunker.transport_stream:
        assert all(c.start for c in out if c.payload)  # not TS: every chunk is a start point


def test_the_end_is_flagged_even_with_nothing_pending() -> None:
    chunker = LiveChunker(source())
    chunker.feed(b"abc", T0)
    assert payloads(chunker.poll(T0 + 1)) == [b"abc"]
    (last,) = chunker.flush(T0 + 1.5)
    assert last.end and not last.start and last.payload == b""
    assert last.index == 1 and last.reason == "flush"
    assert chunker.ended
    verify_envelope(chunker.source.description, last.envelope, T0 + 2)


# -- MPEG-TS start points --------------------------------------------------------------------

FPS = 25


def stream(
    seconds: float, *, gop_frames: int = 25, key_delay: float = 0.0, tables_every: int = 2
) -> list[tuple[float, bytes]]:
    """Writes of a synthetic TS (time offset, bytes): per frame a video frame of three packets
    and an audio frame; the PAT and PMT every ``tables_every`` frames; key frames every
    ``gop_frames`` frames, arriving ``key_delay`` s late (after the audio of their frame)."""
    writes: list[tuple[float, bytes]] = []
    tables = 0
    for f in range(round(seconds * FPS)):
        t = f / FPS
        key = f % gop_frames == 0
        head = b""
        if f % tables_every == 0:
            head = pat(tables) + pmt(tables)
            tables += 1
        video = b"".join(video_frame(key, 3 * f))
        if key and key_delay:
            writes.append((t, head + audio_frame(f)))
            writes.append((t + key_delay, video))
        else:
            writes.append((t, head + video + audio_frame(f)))
    return writes


def cut(writes: list[tuple[float, bytes]], chunk_ms: int = 500) -> list[LiveChunk]:
    chunker = LiveChunker(source(chunk_ms=chunk_ms))
    out: list[LiveChunk] = []
    for t, data in writes:
        out += chunker.poll(T0 + t)
        out += chunker.feed(data, T0 + t)
    out += chunker.flush(T0 + writes[-1][0] + 0.04)
    return out


def packets_of(data: bytes) -> list[bytes]:
    return [data[k : k + TS_PACKET_SIZE] for k in range(0, len(data), TS_PACKET_SIZE)]


def first_video(chunk: LiveChunk) -> bytes:
    return next(p for p in packets_of(chunk.payload) if pid_of(p) == VIDEO_PID)


def without_copies(chunks: list[LiveChunk]) -> bytes:
    """The stream the chunks carry, less the table copies (duplicates of the previous packet
    of their PID)."""
    last: dict[int, bytes] = {}
    kept: list[bytes] = []
    for chunk in chunks:
        for p in packets_of(chunk.payload):
            if pid_of(p) in (0, PMT_PID) and last.get(pid_of(p)) == p:
                continue
            last[pid_of(p)] = p
            kept.append(p)
    return b"".join(kept)


def test_start_points_begin_with_the_tables_and_a_key_frame() -> None:
    writes = stream(6.0)
    chunks = cut(writes)
    starts = [c for c in chunks if c.start]
    # Every key frame (one a second) starts a chunk, which is a start point; no other is.
    assert len(starts) == 6
    for chunk in starts:
        kinds = [pid_of(p) for p in packets_of(chunk.payload)[:3]]
        assert kinds == [0, PMT_PID, VIDEO_PID], chunk.index
        assert SPS in first_video(chunk)
    for chunk in chunks:
        if not chunk.start and chunk.payload:
            assert SPS not in first_video(chunk)
    # Chunk 0 has the stream's own tables; later start points have copies put in front.
    assert chunks[0].start and chunks[0].reason != "key"
    assert without_copies(chunks) == b"".join(data for _, data in writes)
    # Cut at key frames and on time: 500 ms chunks, each start point a second apart.
    assert [round(c.started - T0, 2) for c in starts] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    lengths = [b.started - a.started for a, b in itertools.pairwise(chunks)]
    assert all(0.25 <= d <= 0.875 for d in lengths[:-1]), lengths


def timer(chunker: LiveChunker) -> float:
    """The chunker's next timer, in seconds after T0."""
    at = chunker.next_timer()
    assert at is not None
    return at - T0


def test_a_time_cut_waits_for_the_key_frame_expected() -> None:
    chunker = LiveChunker(source(chunk_ms=500))
    key = b"".join(video_frame(True, 0))
    chunker.feed(pat() + pmt() + key, T0)
    assert [c.reason for c in chunker.poll(T0 + 0.5)] == ["time"]
    chunker.feed(audio_frame(1), T0 + 0.6)
    assert [c.reason for c in chunker.feed(key, T0 + 1.0)] == ["key"]  # one a second
    assert [c.reason for c in chunker.poll(T0 + 1.5)] == ["time"]
    chunker.feed(audio_frame(2), T0 + 1.6)
    # Due at 2.1, but the next key frame is expected at 2.0: the cut waits, up to 2.125.
    assert timer(chunker) == pytest.approx(2.125, abs=1e-3)
    assert chunker.poll(T0 + 2.1) == []
    assert chunker.feed(audio_frame(3), T0 + 2.1) == []
    (chunk,) = chunker.feed(key, T0 + 2.11)
    assert chunk.reason == "key" and chunk.started - T0 == pytest.approx(1.6, abs=1e-3)
    assert [c.start for c in chunker.poll(T0 + 2.61)] == [True]
    # A key frame that does not come holds the cut only until a quarter chunk after it was
    # expected (2.11 + 1.11 + 0.125).
    chunker.feed(audio_frame(4), T0 + 2.62)
    assert chunker.poll(T0 + 3.3) == []
    assert timer(chunker) == pytest.approx(3.345, abs=1e-3)
    (late,) = chunker.poll(T0 + 3.345)
    assert late.reason == "time" and not late.start


def test_a_time_cut_due_with_a_key_frame_in_the_write_is_made_at_the_key() -> None:
    chunker = LiveChunker(source(chunk_ms=500))
    chunker.feed(pat() + pmt() + b"".join(video_frame(True, 0)), T0)
    # Due at 0.5, and the write of 0.52 has audio, then a key frame: cut at the key frame.
    data = audio_frame(1) + b"".join(video_frame(True, 3))
    (chunk,) = chunker.feed(data, T0 + 0.52)
    assert chunk.reason == "key" and chunk.payload.endswith(audio_frame(1))
    (nxt,) = chunker.flush(T0 + 0.6)
    assert nxt.start and SPS in first_video(nxt)


def test_frequent_random_access_points_are_cut_near_the_time() -> None:
    # Audio only: every audio frame is a random access point; chunks stay about 500 ms.
    writes = []
    for f in range(100):
        head = pat(f) + pmt(f, streams=((0x0F, AUDIO_PID),)) if f % 5 == 0 else b""
        writes.append((f / FPS, head + audio_frame(f)))
    chunks = cut(writes)
    assert all(c.start for c in chunks[:-1])
    lengths = [b.started - a.started for a, b in itertools.pairwise(chunks)]
    assert all(0.4 <= d <= 0.6 for d in lengths[:-1]), lengths


def test_no_start_point_without_a_key_frame_at_the_front() -> None:
    chunker = LiveChunker(source(chunk_ms=500))
    chunker.feed(pat() + pmt() + b"".join(video_frame(False, 0)), T0)
    (chunk,) = chunker.poll(T0 + 0.5)
    assert not chunk.start


def test_transport_stream_without_tables_falls_back_to_every_chunk() -> None:
    chunker = LiveChunker(source(chunk_ms=500))
    out: list[LiveChunk] = []
    for k in range(round(NO_TABLES_FALLBACK_S * 4) + 4):
        out += chunker.feed(b"".join(video_frame(k % 10 == 0, 6 * k, packets=6)), T0 + k / 4)
    early = [c for c in out if c.started - T0 < NO_TABLES_FALLBACK_S - 0.5]
    late = [c for c in out if c.cut - T0 >= NO_TABLES_FALLBACK_S]
    assert early and not any(c.start for c in early)
    assert late and all(c.start for c in late)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(20, 5000), min_size=1, max_size=40),
    gaps=st.lists(st.integers(0, 400), min_size=1, max_size=40),
    gop=st.sampled_from([5, 12, 25, 50]),
    cap=st.sampled_from([2000, 10_000, 1_000_000]),
)
def test_transport_streams_keep_their_bytes_and_start_points_hold(
    cuts: list[int], gaps: list[int], gop: int, cap: int
) -> None:
    original = b"".join(data for _, data in stream(3.0, gop_frames=gop))
    chunker = LiveChunker(source(chunk_ms=500), max_chunk_bytes=cap)
    now, pos, k = T0, 0, 0
    out: list[LiveChunk] = []
    while pos < len(original):
        size = cuts[k % len(cuts)]
        now += gaps[k % len(gaps)] / 1000
        out += chunker.poll(now) + chunker.feed(original[pos : pos + size], now)
        pos += size
        k += 1
    out += chunker.flush(now + 0.1)
    assert without_copies(out) == original
    assert [c.index for c in out] == list(range(len(out)))
    assert all(len(c.payload) <= cap for c in out)
    stamps = [c.envelope.timestamp_ms for c in out]
    assert stamps == sorted(stamps)
    for chunk in out:
        if chunk.start:
            pids = [pid_of(p) for p in packets_of(chunk.payload)]
            lead = pids[: pids.index(VIDEO_PID)]
            assert 0 in lead and PMT_PID in lead, chunk.index
            assert SPS in first_video(chunk)
