"""Waiting for a growing file: woken by a write, never by time alone (Linux: inotify)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from ppsp.peer.net.filegrowth import FileGrowth

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@linux
def test_a_wait_blocks_until_the_file_is_written(tmp_path: Path) -> None:
    path = tmp_path / "recording.ts"
    path.write_bytes(b"first")
    growth = FileGrowth(str(path))
    try:
        assert growth.inotify
        assert growth.wait(timeout=0.2) is False  # nothing written: no wake-up
        woke = threading.Event()

        def waiter() -> None:
            if growth.wait(timeout=10):
                woke.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        with path.open("ab") as sink:
            sink.write(b"more")
        thread.join(10)
        assert woke.is_set()
    finally:
        growth.close()


@linux
def test_a_write_before_the_wait_is_not_missed(tmp_path: Path) -> None:
    # The reader found the end of the file; the writer appends before the reader waits.
    path = tmp_path / "recording.ts"
    path.write_bytes(b"")
    growth = FileGrowth(str(path))
    try:
        with path.open("ab") as sink:
            sink.write(b"between")
        assert growth.wait(timeout=0) is True
        assert growth.wait(timeout=0.1) is False  # one wake-up for everything queued
    finally:
        growth.close()


def test_a_file_that_cannot_be_watched_falls_back_to_a_short_sleep(tmp_path: Path) -> None:
    growth = FileGrowth(str(tmp_path / "missing"))
    assert not growth.inotify
    assert growth.wait(timeout=0.01) is True
    growth.close()


async def test_a_live_source_follows_a_recording_as_it_is_written(tmp_path: Path) -> None:
    import asyncio

    from ppsp.peer.net.live_io import LiveInput, read_input

    path = tmp_path / "recording.ts"
    path.write_bytes(b"head")
    live_input = LiveInput.open(str(path))
    assert live_input.follow
    queue = await read_input(live_input)
    assert await asyncio.wait_for(queue.get(), 5) == b"head"
    for piece in (b"one", b"two"):
        await asyncio.sleep(0.1)  # the reader is waiting at the end of the file
        with path.open("ab") as sink:
            sink.write(piece)
        assert await asyncio.wait_for(queue.get(), 5) == piece
