"""Live streaming end to end: ffmpeg -> ``ppsp live`` -> several ``ppsp watch -o`` viewers.

Real processes on loopback: the test pattern is encoded live by the ffmpeg binary of the
imageio-ffmpeg wheel, viewers join at different times, one viewer forges the chunks it relays.
What each honest viewer wrote must decode with PyAV, start near the live edge and play with a
continuity index of at least 0.99; the forger's chunks must be rejected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from ppsp.media import ffmpeg_exe

PPSP = [sys.executable, "-m", "ppsp"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _start(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=ENV, **kwargs)  # type: ignore[call-overload,no-any-return]


def _first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        line += proc.stdout.readline()
        if proc.poll() is not None and not line:
            break
    return line.decode().strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _play(url: str, frames: int, results: list[int]) -> None:
    """Open the player URL as a player does, decode ``frames`` video frames, note how many."""
    decoded = 0
    with av.open(url, options={"rw_timeout": "15000000"}) as container:
        for _frame in container.decode(video=0):
            decoded += 1
            if decoded >= frames:
                break
    results.append(decoded)


def _decode(path: Path) -> tuple[int, int]:
    """Video frames decoded and decoding errors in a recorded MPEG-TS file."""
    frames = errors = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames += len(packet.decode())
            except av.error.InvalidDataError:
                errors += 1
    return frames, errors


def test_live_stream_reaches_viewers_that_join_at_different_times(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    tracker = _start(
        [*PPSP, "tracker", "--port", "0", "--log-level", "warning"], stdout=subprocess.PIPE
    )
    processes.append(tracker)
    url = _first_line(tracker).rsplit(" ", 1)[-1]
    assert url.startswith("http://127.0.0.1:")

    encoder = _start(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=40",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-b:v",
            "1M",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    processes.append(encoder)
    source = _start(
        [*PPSP, "live", "--tracker", url, "--key", str(tmp_path / "source.key")],
        stdin=encoder.stdout,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "source.err", "wb"),  # noqa: SIM115
        cwd=tmp_path,
    )
    processes.append(source)
    swarm_id = _first_line(source)
    assert len(swarm_id) == 64, swarm_id

    def watch(name: str, *extra: str, stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        proc = _start(
            [
                *PPSP,
                "watch",
                swarm_id,
                "--tracker",
                url,
                "--player-port",
                "0",
                "-o",
                str(tmp_path / f"{name}.ts"),
                "--report",
                str(tmp_path / f"{name}.json"),
                *extra,
            ],
            stdout=stdout,
            stderr=open(tmp_path / f"{name}.err", "wb"),  # noqa: SIM115
        )
        processes.append(proc)
        return proc

    time.sleep(1.5)
    forger = watch("forger", "--corrupt-uploads")
    viewers = {}
    player_frames: list[int] = []
    for name in ("viewer-1", "viewer-2", "viewer-3"):
        time.sleep(2.0)
        if name == "viewer-1":
            viewers[name] = watch(name, stdout=subprocess.PIPE)
            player = threading.Thread(
                target=_play,
                args=(_first_line(viewers[name]), 50, player_frames),
                daemon=True,
            )
            player.start()
        else:
            viewers[name] = watch(name)
    time.sleep(10.0)
    player.join(timeout=20)
    for proc in [*viewers.values(), forger]:
        proc.send_signal(signal.SIGINT)
    for proc in [*viewers.values(), forger]:
        assert proc.wait(timeout=20) == 0
    source.send_signal(signal.SIGINT)
    assert source.wait(timeout=20) == 0

    forged_rejected = 0
    for name in viewers:
        report = json.loads((tmp_path / f"{name}.json").read_text())
        live = report["sessions"][0]["live"]
        stderr = (tmp_path / f"{name}.err").read_text()
        assert "Traceback" not in stderr
        assert live["continuity_index"] is not None, stderr
        assert live["continuity_index"] >= 0.99, (name, live)
        assert live["chunks_played"] >= 10, (name, live)
        # Joined near the live edge: a few seconds behind the source, never at the first chunk
        # of a stream that had been running for a while.
        assert live["delay_behind_source"] < 5.0, (name, live)
        if name == "viewer-3":  # joined about 8 s (16 chunks) into the stream
            assert live["first_index"] >= 6, (name, live)
        assert "qoe: startup delay" in stderr
        forged_rejected += live["forged_rejected"]
        frames, errors = _decode(tmp_path / f"{name}.ts")
        assert errors == 0, name
        assert frames >= 100, (name, frames)
    # The forger's chunks were caught by signature checks and never played.
    assert forged_rejected >= 1
    # A player (FFmpeg's HTTP demuxer, as in mpv and ffplay) decoded the continuous stream.
    assert player_frames == [50]
