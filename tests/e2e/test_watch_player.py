"""``ppsp watch`` as a player sees it: FFmpeg's HTTP demuxer (through PyAV) plays and seeks.

mpv, ffplay and VLC open the player URL with the same kind of client: Range requests for the
MP4 index, then for the media, and new Range requests on a seek.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import av
import pytest

from e2e.swarm_helpers import Swarm
from ppsp.app.media import make_sample_video


@pytest.fixture
async def swarm(tmp_path: Path) -> Swarm:  # type: ignore[misc]
    async with Swarm(tmp_path) as running:
        yield running


def _play_and_seek(url: str) -> tuple[int, int, float]:
    """Decode frames from the start, then seek to the middle and decode again."""
    with av.open(url, options={"rw_timeout": "20000000"}) as container:
        stream = container.streams.video[0]
        duration = float(container.duration or 0) / av.time_base
        first = 0
        for _frame in container.decode(stream):
            first += 1
            if first >= 25:
                break
        target = int((duration / 2) / stream.time_base)
        container.seek(target, stream=stream)
        after = 0
        position = 0.0
        for frame in container.decode(stream):
            if after == 0:
                position = float(frame.pts * stream.time_base)
            after += 1
            if after >= 25:
                break
    return first, after, position


async def test_ffmpeg_plays_and_seeks_the_player_url(swarm: Swarm, tmp_path: Path) -> None:
    video = await asyncio.to_thread(make_sample_video, tmp_path / "video.mp4", seconds=8.0)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(video)
    watcher, url = await swarm.watch(swarm_id, tmp_path / "watched.mp4")
    first, after, position = await asyncio.wait_for(
        asyncio.to_thread(_play_and_seek, url), timeout=60
    )
    assert first == 25
    assert after == 25
    assert 2.0 <= position <= 6.0  # landed near the middle of the 8 s video
    await watcher.wait_line("download complete", timeout=60)
    assert (tmp_path / "watched.mp4").read_bytes() == video.read_bytes()
    # A player's seek closes its connection: normal, so nothing is logged as an error.
    watcher.signal(signal.SIGINT)
    assert await watcher.wait(20) == 0
    for marker in ("Traceback", "Error handling request", "ERROR"):
        assert marker not in watcher.output(), watcher.output()
