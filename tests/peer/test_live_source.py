from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert chunker.flush(T0 + 0.3) == []


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
    assert all(0 < len(c.payload) <= 1000 for c in out)
    stamps = [c.envelope.timestamp_ms for c in out]
    assert stamps == sorted(stamps)
    if ts and chunker.transport_stream:
        assert all(len(c.payload) % TS_PACKET_SIZE == 0 for c in out[:-1])
