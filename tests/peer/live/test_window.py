from __future__ import annotations

import pytest

from ppsp.errors import ChunkUnavailable
from ppsp.peer.live import ChunkEnvelope, LiveSource, LiveWindow, generate_key
from ppsp.wire.bitmap import ChunkBitmap

KEY = generate_key()
T0 = 1_700_000_000.0


def env(index: int, t: float) -> ChunkEnvelope:
    # The window does not check signatures; a fixed one keeps these tests fast.
    return ChunkEnvelope(
        index=index, timestamp_ms=round(t * 1000), signature=bytes(64), payload=b""
    )


def test_empty_window() -> None:
    window = LiveWindow(window_s=10, max_chunks=100)
    assert window.floor == 0
    assert window.newest is None
    assert len(window) == 0
    assert window.bitmap() == ChunkBitmap(0, 0)
    with pytest.raises(ChunkUnavailable):
        window.get(0)


def test_holds_the_last_window_seconds() -> None:
    window = LiveWindow(window_s=10, max_chunks=100)
    for i in range(15):
        assert window.add(env(i, T0 + i))
    # Newest at T0+14: chunks stamped before T0+4 are gone.
    assert window.newest == 14
    assert window.floor == 4
    assert list(window) == list(range(4, 15))
    assert window.get(4).index == 4
    with pytest.raises(ChunkUnavailable):
        window.get(3)
    assert 3 not in window


def test_floor_never_goes_back_and_replays_are_refused() -> None:
    window = LiveWindow(window_s=10, max_chunks=100)
    for i in range(15):
        window.add(env(i, T0 + i))
    assert not window.add(env(2, T0 + 2))  # below the floor
    assert not window.add(env(14, T0 + 14))  # already held
    window.set_floor(2)
    assert window.floor == 4


def test_index_bound_caps_memory() -> None:
    window = LiveWindow(window_s=100, max_chunks=5)
    for i in range(20):
        window.add(env(i, T0 + i / 100))  # a burst: far more chunks than nominal
    assert len(window) == 5
    assert window.floor == 15
    assert list(window) == [15, 16, 17, 18, 19]


def test_out_of_order_arrivals_and_too_old_chunk() -> None:
    window = LiveWindow(window_s=10, max_chunks=100)
    assert window.add(env(20, T0 + 20))
    assert window.add(env(18, T0 + 18))
    assert not window.add(env(5, T0 + 5))  # older than newest minus the window
    assert window.newest == 20
    assert window.floor == 0
    assert window.bitmap() == ChunkBitmap.from_indexes([18, 20], 21, 0)


def test_bitmap_starts_at_the_floor() -> None:
    window = LiveWindow(window_s=5, max_chunks=100)
    for i in (10, 11, 13, 16):
        window.add(env(i, T0 + i))
    assert window.floor == 11  # 10 is more than 5 s older than 16
    bitmap = window.bitmap()
    assert (bitmap.start, bitmap.size) == (11, 6)
    assert list(bitmap) == [11, 13, 16]
    assert ChunkBitmap.from_base64(bitmap.to_base64(), bitmap.size, bitmap.start) == bitmap


def test_expire_by_clock() -> None:
    window = LiveWindow(window_s=10, max_chunks=100)
    for i in range(5):
        window.add(env(i, T0 + i))
    assert window.expire(T0 + 12.5) == [0, 1, 2]
    assert window.floor == 3
    assert window.expire(T0 + 100) == [3, 4]
    assert window.newest is None
    assert window.floor == 5
    assert window.bitmap() == ChunkBitmap(0, 5)
    assert window.add(env(5, T0 + 100))
    assert window.newest == 5


def test_for_description() -> None:
    src = LiveSource.start(KEY, now=T0, name="cam", chunk_ms=500, window_s=4)
    window = LiveWindow.for_description(src.description)
    assert window.window_ms == 4000
    assert window.max_chunks == 8 * 4  # 8 nominal chunks, burst 4


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        LiveWindow(window_s=0, max_chunks=1)
    with pytest.raises(ValueError):
        LiveWindow(window_s=1, max_chunks=0)
