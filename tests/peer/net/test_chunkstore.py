"""ChunkStore: chunks verified, written at their offsets, reopened, allocated up front.

The store keeps no map of held chunks (the session's download policy does, tests/peer/download):
it reports the chunks it found intact when it opened a file (``found``) and never changes that.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from peer.content.test_description import _multi, content, split, write
from ppsp.errors import (
    ChunkChanged,
    ChunkUnavailable,
    ContentError,
    HashingCancelled,
    IntegrityError,
)
from ppsp.peer.net import chunkstore
from ppsp.peer.net.chunkstore import ChunkStore, allocate_file, describe_file

# ---------------------------------------------------------------- ChunkStore


def test_chunk_store_parts_verified_then_written(tmp_path: Path) -> None:
    data = content(2500, 1)
    desc = _multi()
    chunks = split(data, 1000)
    path = tmp_path / "download.part"
    with ChunkStore.create(desc, path) as store:
        pieces = [chunks[1][:10], chunks[1][10:999], chunks[1][999:]]
        store.store_parts(1, pieces)
        assert path.read_bytes()[1000:2000] == chunks[1]
        assert store.read(1) == chunks[1]
        assert not store.found  # a new file: nothing found, and the store records nothing
        with pytest.raises(IntegrityError):
            store.store_parts(2, [chunks[2][:100], chunks[1][100:500]])  # wrong bytes and length
        with pytest.raises(IntegrityError):
            store.store_parts(0, [chunks[1][:500], chunks[0][500:]])  # right length, wrong hash
        assert path.read_bytes()[:1000] == bytes(1000)  # nothing written
    with pytest.raises(ChunkUnavailable):
        store.store_parts(0, [chunks[0]])  # closed


def test_chunk_store_write_read_reopen(tmp_path: Path) -> None:
    data = content(2500, 1)
    desc = _multi()
    chunks = split(data, 1000)
    path = tmp_path / "download.part"
    with ChunkStore.create(desc, path) as store:
        assert path.stat().st_size == 2500
        assert not store.found
        store.write(2, chunks[2])
        store.write(2, chunks[2])  # again: the same bytes at the same place
        with pytest.raises(IntegrityError):
            store.write(0, chunks[1])
        assert path.read_bytes()[:1000] == bytes(1000)  # nothing written
        with pytest.raises(ChunkUnavailable):
            store.read(99)
        with pytest.raises(ChunkUnavailable):
            store.sending(-1)
        assert store.read(2) == chunks[2]

    with ChunkStore.open(desc, path) as store:
        assert list(store.found) == [2]
        store.write(0, chunks[0])
        store.write(1, chunks[1])
        assert list(store.found) == [2]  # what was found at opening, never changed
    assert path.read_bytes() == data

    with ChunkStore.open_seed(desc, path) as seed:
        assert seed.found.complete
        assert [seed.read(i) for i in range(3)] == chunks


def test_chunk_store_other_representation(tmp_path: Path) -> None:
    desc = _multi()
    low = content(1300, 2)
    path = write(tmp_path, low, "low.mp4")
    with ChunkStore.open_seed(desc, path, "low") as store:
        assert store.representation.id == "low"
        assert store.read(1) == low[1000:]


def test_open_seed_rejects_damaged_file(tmp_path: Path) -> None:
    data = bytearray(content(2500, 1))
    data[1500] ^= 0xFF
    path = write(tmp_path, bytes(data))
    with pytest.raises(IntegrityError):
        ChunkStore.open_seed(_multi(), path)
    with ChunkStore.open(_multi(), path) as store:
        assert list(store.found) == [0, 2]


def test_open_fixes_wrong_file_size(tmp_path: Path) -> None:
    data = content(2500, 1)
    path = write(tmp_path, data + b"trailing")
    with ChunkStore.open_seed(_multi(), path) as store:
        assert store.found.complete
    assert path.stat().st_size == 2500


def test_allocate_file_reserves_blocks_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "content"
    path.write_bytes(b"kept")
    size = 4 << 20
    with open(path, "r+b") as handle:
        allocated = allocate_file(handle.fileno(), size)
    assert path.stat().st_size == size
    assert path.read_bytes()[:4] == b"kept"
    if allocated:  # the file system has fallocate: no hole left to fill later
        assert path.stat().st_blocks * 512 >= size
    with open(path, "r+b") as handle:
        allocate_file(handle.fileno(), 2)
    assert path.read_bytes() == b"ke"


def test_allocate_file_reports_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import errno

    from ppsp.peer.net import chunkstore as content_module

    def no_space(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(errno.ENOSPC)
        return -1

    def unsupported(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(errno.EOPNOTSUPP)
        return -1

    path = tmp_path / "content"
    with open(path, "w+b") as handle:
        monkeypatch.setattr(content_module, "_fallocate", no_space)
        with pytest.raises(OSError) as raised:
            allocate_file(handle.fileno(), 1 << 20)
        assert raised.value.errno == errno.ENOSPC
        monkeypatch.setattr(content_module, "_fallocate", unsupported)
        assert allocate_file(handle.fileno(), 1 << 20) is False  # sparse instead
    assert os.stat(path).st_size == 1 << 20


def test_created_store_is_allocated_up_front(tmp_path: Path) -> None:
    description = _multi()
    path = tmp_path / "out"
    with ChunkStore.create(description, path) as store:
        assert not store.found
    assert path.stat().st_size == description.representations[0].size


# ---------------------------------------------------------------- seeding, .part, nameless files


def test_seed_file_describes_and_opens_in_one_pass(tmp_path: Path) -> None:
    data = content(2500)
    path = write(tmp_path, data)
    with ChunkStore.seed_file(path, chunk_size=1000) as store:
        assert store.description == describe_file(path, chunk_size=1000)
        assert store.found.complete
        assert store.read(2) == data[2000:]


@pytest.mark.parametrize("kind", ["empty", "directory", "fifo", "too many chunks"])
def test_seed_file_refuses_what_cannot_be_seeded(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing"
    chunk_size = 1000
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
        # Opening a FIFO for reading blocks until a writer comes: give it one that leaves.
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    else:
        with path.open("wb") as handle:
            handle.truncate(1 << 40)  # sparse: 1 TiB is too many chunks of 1 KiB
        chunk_size = 1024
    try:
        with pytest.raises((ContentError, IsADirectoryError)):
            ChunkStore.seed_file(path, chunk_size=chunk_size)
    finally:
        if kind == "fifo":
            os.close(writer)


def test_seed_file_hashing_can_be_given_up(tmp_path: Path) -> None:
    path = write(tmp_path, content(10_000))
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(HashingCancelled):
        ChunkStore.seed_file(path, chunk_size=1000, cancelled=cancelled)
    assert len(asked) == 4  # stopped at once, not at the end of the file


def test_changed_seed_file_stops_serving_chunks_that_no_longer_match(tmp_path: Path) -> None:
    data = content(3000)
    path = write(tmp_path, data)
    with ChunkStore.seed_file(path, chunk_size=1000) as store:
        assert store.read(1) == data[1000:2000]
        with path.open("r+b") as handle:
            handle.seek(1500)
            handle.write(b"edited")
        with pytest.raises(ChunkChanged, match="chunk 1 no longer matches"):
            store.read(1)
        with pytest.raises(ChunkChanged):
            store.sending(1)
        assert store.changed_chunks == {1}
        # Chunks that still match are served on, from the changed file.
        assert store.read(0) == data[:1000]
        _, offset, length = store.sending(2)
        assert (offset, length) == (2000, 1000)


def test_partial_store_resumes_and_commits(tmp_path: Path) -> None:
    data = content(2500)
    desc = describe_file(write(tmp_path, data), chunk_size=1000)
    final = tmp_path / "out.bin"
    with ChunkStore.open_partial(desc, final) as store:
        assert store.path == tmp_path / "out.bin.part"
        store.write(0, data[:1000])
        store.write(2, data[2000:])
    assert not final.exists()
    with ChunkStore.open_partial(desc, final) as store:
        assert list(store.found) == [0, 2]  # resumed: verified chunks are found
        store.write(1, data[1000:2000])
        assert store.commit() == final
        assert store.read(1) == data[1000:2000]  # still open, served on
    assert final.read_bytes() == data
    assert not (tmp_path / "out.bin.part").exists()


def test_a_download_is_flushed_in_the_background_and_leaves_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = content(2500)
    desc = describe_file(write(tmp_path, data), chunk_size=1000)
    flushed = threading.Event()
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        real_fdatasync(fd)
        flushed.set()

    monkeypatch.setattr(chunkstore, "FLUSH_STEP", 1500)
    monkeypatch.setattr(chunkstore.os, "fdatasync", fdatasync)
    descriptors = len(os.listdir("/proc/self/fd"))
    with ChunkStore.open_partial(desc, tmp_path / "out.bin") as store:
        store.write(0, data[:1000])
        assert not flushed.is_set()  # less than a step written
        store.write(1, data[1000:2000])
        assert flushed.wait(10)  # a step written: flushed while the download goes on
        store.write(2, data[2000:])
        store.commit()
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/fd")) > descriptors and time.monotonic() < deadline:
        time.sleep(0.01)  # a flush still running closes its descriptor when it ends
    assert len(os.listdir("/proc/self/fd")) == descriptors
    assert (tmp_path / "out.bin").read_bytes() == data


def test_partial_store_is_locked_against_a_second_download(tmp_path: Path) -> None:
    desc = describe_file(write(tmp_path, content(2500)), chunk_size=1000)
    with (
        ChunkStore.open_partial(desc, tmp_path / "out.bin"),
        pytest.raises(BlockingIOError),
    ):
        ChunkStore.open_partial(desc, tmp_path / "out.bin")


def test_anonymous_store_leaves_nothing(tmp_path: Path) -> None:
    data = content(2500)
    desc = describe_file(write(tmp_path, data, "source.bin"), chunk_size=1000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with ChunkStore.create_anonymous(desc, scratch) as store:
        store.write(1, data[1000:2000])
        assert store.read(1) == data[1000:2000]
        assert list(scratch.iterdir()) == []
        assert store.commit() == store.path  # nothing to rename
    assert list(scratch.iterdir()) == []
