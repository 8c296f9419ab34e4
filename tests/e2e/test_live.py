"""Live streaming end to end: ffmpeg -> ``ppsp live`` -> ``ppsp watch -o`` viewers.

Real processes on loopback: the test pattern is encoded live by the ffmpeg binary of the
imageio-ffmpeg wheel (a few seconds of it, then the encoder ends, as a file piped through
``ffmpeg -re`` does), viewers join at different times, one viewer forges the chunks it relays.
What each honest viewer wrote must decode from its first byte on without one error (ffmpeg
counts them), start near the live edge and play to the end; the source and the viewers must
exit 0 on their own once the stream ended; the forger's chunks must be rejected.  Every
process gets its own ``XDG_DATA_HOME``, so no test writes into the real home directory.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from e2e.cli_runner import run_lines
from ppsp.app.media import ffmpeg_exe

PPSP = [sys.executable, "-m", "ppsp"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path / "xdg")}


def _start(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, **kwargs)  # type: ignore[call-overload,no-any-return]


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


def _encoder(seconds: float, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """ffmpeg encoding ``seconds`` of test pattern in real time (H.264, a key frame a second,
    and AAC audio) into MPEG-TS on its standard output; it ends after them."""
    return _start(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
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
            "-c:a",
            "aac",
            "-f",
            "mpegts",
            "-",
        ],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _play(url: str, frames: int, results: list[tuple[int, float]]) -> None:
    """Open the player URL as a player does, decode ``frames`` video frames; note how many and
    when the first one was decoded."""
    decoded = 0
    first = 0.0
    with av.open(url, options={"rw_timeout": "15000000"}) as container:
        for _frame in container.decode(video=0):
            decoded += 1
            if decoded == 1:
                first = time.time()
            if decoded >= frames:
                break
    results.append((decoded, first))


def _decode_errors(path: Path) -> list[str]:
    """What ffmpeg reports as errors decoding a recorded MPEG-TS file from its first byte."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(len(packet.decode()) for packet in container.demux(video=0))


def _tracker(env: dict[str, str], processes: list[subprocess.Popen[bytes]]) -> str:
    tracker = _start(
        [*PPSP, "tracker", "--port", "0", "--log-level", "warning"], env, stdout=subprocess.PIPE
    )
    processes.append(tracker)
    url = _first_line(tracker).rsplit(" ", 1)[-1]
    assert url.startswith("http://127.0.0.1:")
    return url


def test_live_stream_reaches_viewers_that_join_at_different_times(
    tmp_path: Path, env: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    url = _tracker(env, processes)
    encoder = _encoder(12, env)
    processes.append(encoder)
    source = _start(
        [*PPSP, "live", "--tracker", url, "--key", str(tmp_path / "source.key")],
        env,
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
            env,
            stdout=stdout,
            stderr=open(tmp_path / f"{name}.err", "wb"),  # noqa: SIM115
        )
        processes.append(proc)
        return proc

    time.sleep(1.5)
    forger = watch("forger", "--corrupt-uploads")
    viewers = {}
    player_frames: list[tuple[int, float]] = []
    url_seen = 0.0
    for name in ("viewer-1", "viewer-2", "viewer-3"):
        time.sleep(2.0)
        if name == "viewer-1":
            viewers[name] = watch(name, stdout=subprocess.PIPE)
            player_url = _first_line(viewers[name])
            url_seen = time.time()
            player = threading.Thread(
                target=_play, args=(player_url, 50, player_frames), daemon=True
            )
            player.start()
        else:
            viewers[name] = watch(name)
    # The encoder ends 12 s in: the source announces the end, and everyone exits on its own.
    assert encoder.wait(timeout=30) == 0
    assert source.wait(timeout=30) == 0
    for proc in [*viewers.values(), forger]:
        assert proc.wait(timeout=30) == 0
    player.join(timeout=20)
    source_err = (tmp_path / "source.err").read_text()
    assert "Traceback" not in source_err
    assert "start points" in source_err

    forged_rejected = 0
    for name in viewers:
        report = json.loads((tmp_path / f"{name}.json").read_text())
        live = report["sessions"][0]["live"]
        stderr = (tmp_path / f"{name}.err").read_text()
        assert "Traceback" not in stderr
        assert "the live stream ended" in stderr
        assert live["continuity_index"] is not None, stderr
        assert live["continuity_index"] >= 0.99, (name, live)
        # viewer-3 joins about 7.5 s into the 12 s stream (24 chunks), after its process
        # starts: 8 chunks leave room for a start slowed by a loaded machine.
        assert live["chunks_played"] >= 8, (name, live)
        # Joined near the live edge: a few seconds behind the source, never at the first chunk
        # of a stream that had been running for a while.
        assert live["delay_behind_source"] < 6.0, (name, live)
        if name == "viewer-3":  # joined about 7.5 s (15 chunks) into the stream
            assert live["first_index"] >= 6, (name, live)
        assert "qoe: startup delay" in stderr
        forged_rejected += live["forged_rejected"]
        # From its very first byte, the output decodes: tables, then a key frame.
        assert _decode_errors(tmp_path / f"{name}.ts") == [], name
        assert _frames(tmp_path / f"{name}.ts") >= 100, name
    # The forger's chunks were caught by signature checks and never played.
    assert forged_rejected >= 1
    # A player (FFmpeg's HTTP demuxer, as in mpv and ffplay) decoded the continuous stream,
    # its first frame soon after the viewer wrote its first chunk (the reported startup).
    assert len(player_frames) == 1 and player_frames[0][0] == 50
    report = json.loads((tmp_path / "viewer-1.json").read_text())
    startup = report["sessions"][0]["live"]["startup_delay"]
    assert player_frames[0][1] - url_seen < startup + 1.0, (player_frames, url_seen, startup)


def test_a_finite_stream_ends_and_everyone_exits(
    tmp_path: Path, env: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    url = _tracker(env, processes)
    encoder = _encoder(4, env)
    processes.append(encoder)
    source = _start(
        [*PPSP, "live", "--tracker", url, "--name", "cam"],
        env,
        stdin=encoder.stdout,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "source.err", "wb"),  # noqa: SIM115
        cwd=tmp_path,
    )
    processes.append(source)
    swarm_id = _first_line(source)
    assert len(swarm_id) == 64, swarm_id
    viewer = _start(
        [
            *PPSP,
            "watch",
            swarm_id,
            "--tracker",
            url,
            "--player-port",
            "0",
            "-o",
            str(tmp_path / "out.ts"),
            "--report",
            str(tmp_path / "viewer.json"),
        ],
        env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "viewer.err", "wb"),  # noqa: SIM115
    )
    processes.append(viewer)
    assert source.wait(timeout=30) == 0
    assert viewer.wait(timeout=30) == 0
    live = json.loads((tmp_path / "viewer.json").read_text())["sessions"][0]["live"]
    assert live["continuity_index"] == 1.0, live
    assert live["chunks_skipped"] == 0, live
    assert "the live stream ended" in (tmp_path / "viewer.err").read_text()
    assert _decode_errors(tmp_path / "out.ts") == []
    assert _frames(tmp_path / "out.ts") >= 75  # most of the 100 frames (it joins as they come)
    # The key is the stream's own, in the user's data directory, private.
    key = tmp_path / "xdg" / "ppsp" / "live-keys" / "cam.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert str(key) in (tmp_path / "source.err").read_text()
    assert not list(tmp_path.glob("*.key"))


def test_an_input_that_cannot_be_read_is_one_line_before_anything_is_announced(
    tmp_path: Path, env: dict[str, str]
) -> None:
    cases = ((tmp_path / "missing.ts", "No such file"), (tmp_path, "directory"))
    results = run_lines(
        # No tracker listens there: the input is checked before any network.
        [
            (["live", "--tracker", "http://127.0.0.1:9", "--input", str(path)], tmp_path, {})
            for path, _ in cases
        ],
        env=env,
    )
    for (path, reason), result in zip(cases, results, strict=True):
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""  # no swarm ID: nothing was announced
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ppsp: cannot read the live input"), lines
        assert reason in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "xdg").exists()  # not even a key was made
