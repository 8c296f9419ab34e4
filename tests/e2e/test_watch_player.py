"""``ppsp watch`` as a player sees it: FFmpeg's HTTP demuxer (through PyAV) plays and seeks;
FFmpeg's HLS demuxer plays a live stream's playlist.

mpv, ffplay and VLC open the player URL with the same kind of client: Range requests for the
MP4 index, then for the media, and new Range requests on a seek.  For a live stream they (and
Safari) open ``/live.m3u8``, an ordinary HLS playlist, as FFmpeg does here.

:func:`live_watch` (tracker, live encoder, ``ppsp live``, ``ppsp watch``) is shared with the
browser tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from e2e.swarm_helpers import Swarm
from ppsp.app.media import ffmpeg_exe, make_sample_video

PPSP = [sys.executable, "-m", "ppsp"]


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


# -- live, as HLS ------------------------------------------------------------------------------


def _first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """The first line ``proc`` prints on standard output (empty if it exits first)."""
    assert proc.stdout is not None
    result: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        result.append(proc.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode().strip() if result else ""


@contextlib.contextmanager
def live_watch(workdir: Path, seconds: float = 30.0) -> Iterator[str]:
    """A tracker, ``seconds`` of test pattern encoded live (H.264 with a key frame a second,
    AAC) into ``ppsp live``, and one ``ppsp watch``; yields the player's root URL.  Every
    process is killed on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], name: str, **kwargs: object) -> subprocess.Popen[bytes]:
        err = (workdir / f"{name}.err").open("wb")
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            args, env=env, stderr=err, cwd=workdir, **kwargs
        )
        err.close()
        started.append(proc)
        return proc

    try:
        tracker = start(
            [*PPSP, "tracker", "--port", "0", "--log-level", "warning"],
            "tracker",
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        tracker_url = _first_line(tracker).rsplit(" ", 1)[-1]
        assert tracker_url.startswith("http://127.0.0.1:"), tracker_url
        encoder = start(
            [
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
                "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "1M",
                "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", "-",
            ],
            "encoder",
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        source = start(
            [*PPSP, "live", "--tracker", tracker_url, "--key", str(workdir / "source.key")],
            "source",
            stdin=encoder.stdout,
            stdout=subprocess.PIPE,
        )
        assert encoder.stdout is not None
        encoder.stdout.close()  # the source holds it now
        swarm_id = _first_line(source)
        assert re.fullmatch(r"[0-9a-f]{64}", swarm_id), (workdir / "source.err").read_text()
        watcher = start(
            [*PPSP, "watch", swarm_id, "--tracker", tracker_url, "--player-port", "0"],
            "watch",
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        url = _first_line(watcher)
        assert url.endswith("/stream"), (workdir / "watch.err").read_text()
        yield url.removesuffix("stream")
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
    watch_err = (workdir / "watch.err").read_text()
    assert "Traceback" not in watch_err, watch_err


def _get(url: str) -> tuple[int, bytes, str]:
    """GET ``url``: status, body and content type (4xx and 5xx too)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def _decode_hls(url: str) -> tuple[int, int, str]:
    """ffmpeg plays three seconds of ``url`` as a plain HLS client: exit code, frames decoded,
    errors reported."""
    result = subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error", "-rw_timeout", "20000000",
            "-i", url, "-t", "3", "-map", "0:v", "-f", "null", "-progress", "pipe:1", "-",
        ],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    frames = [int(n) for n in re.findall(r"^frame=(\d+)$", result.stdout, re.MULTILINE)]
    return result.returncode, max(frames, default=0), result.stderr


def test_ffmpeg_plays_the_live_stream_as_hls(tmp_path: Path) -> None:
    with live_watch(tmp_path) as root:
        status, body, media_type = _get(root + "live.m3u8")  # waits for its first segment
        assert status == 200, body
        assert media_type == "application/vnd.apple.mpegurl"
        playlist = body.decode()
        assert playlist.startswith("#EXTM3U\n")
        assert "#EXT-X-TARGETDURATION:2\n" in playlist
        assert "#EXT-X-ENDLIST" not in playlist  # live: the list goes on
        names = re.findall(r"^segments/(\d+)\.ts$", playlist, re.MULTILINE)
        assert names, playlist
        status, segment, media_type = _get(root + f"segments/{names[0]}.ts")
        assert status == 200 and media_type == "video/mp2t"
        assert segment[0] == 0x47 and len(segment) % 188 == 0  # whole transport stream packets

        code, frames, errors = _decode_hls(root + "live.m3u8")
        assert code == 0, errors
        assert frames >= 50, (frames, errors)  # three seconds at 25 frames a second
        # Every segment a player starts with begins with the tables and a key frame.
        assert errors == "", errors

        # The window slides: a later playlist starts further on, and lists no segment twice.
        # (Asked again until it lists a newer segment than the first did: 30 s at most.)
        deadline = time.monotonic() + 30.0
        while True:
            later = _get(root + "live.m3u8")[1].decode()
            later_names = re.findall(r"^segments/(\d+)\.ts$", later, re.MULTILINE)
            if later_names and int(later_names[-1]) > int(names[-1]):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        first = int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)[0])
        assert int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", later)[0]) >= first
        assert int(later_names[-1]) > int(names[-1])
        assert len(later_names) == len(set(later_names))

        # Bad paths are clean 4xx answers.
        for path, expected in (
            ("segments/abc.ts", 404),
            ("segments/01.ts", 404),
            ("segments/" + "9" * 40 + ".ts", 404),
            ("segments/999999999.ts", 404),
            ("segments/%2e%2e/live.m3u8", 404),
            ("static/../web.py", 404),
            ("static/watch.html", 404),
            ("live.m3u8/x", 404),
        ):
            status, body, _ = _get(root + path)
            assert status == expected, (path, status, body)
        request = urllib.request.Request(root + "live.m3u8", method="POST", data=b"x")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
