"""``ppsp demo``: the main job, a demo swarm over loopback, as a user runs it."""

import subprocess
import sys


def test_demo_swarm_delivers_identical_copies_mostly_between_peers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ppsp", "demo", "--leechers", "3"],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3/3 leechers hold a byte-identical copy" in result.stdout
    assert "What each peer sent and received" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
