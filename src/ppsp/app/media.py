"""Sample media made with the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships.

Used by the demo, the tests and the benchmarks, so that nothing depends on a video lying around.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class MediaToolMissing(RuntimeError):
    """No ffmpeg binary is available (the ``imageio-ffmpeg`` package is not installed)."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise MediaToolMissing("imageio-ffmpeg is not installed") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_sample_video(
    path: str | Path,
    *,
    seconds: float = 20.0,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    video_bitrate: str = "1500k",
    container: str = "mp4",
) -> Path:
    """Write a test-pattern video with a tone: H.264 and AAC in MP4 (or MPEG-TS).

    MP4 is written with its index first (``+faststart``) so that a player can start before the
    whole file is there, which is what streaming playback needs.
    """
    out = Path(path)
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=duration={seconds}:size={width}x{height}:rate={fps}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        video_bitrate,
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(fps),
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-shortest",
    ]
    if container == "mp4":
        command += ["-movflags", "+faststart", "-f", "mp4"]
    else:
        command += ["-f", "mpegts"]
    command.append(str(out))
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=300)
    return out
