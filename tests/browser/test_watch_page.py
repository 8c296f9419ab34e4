"""The watch page of ``ppsp watch`` in a real headless Chromium: it plays, seeks and shows the
viewer's figures, for stored content (MP4 through ``/stream``) and for a live stream (HLS
through the hls.js the package ships).

Real processes on loopback: a tracker, a seeder or a live source fed by ffmpeg, and ``ppsp
watch``; the browser opens the player URL's root as a user would.  With ``PPSP_SCREENSHOTS=1``
the pages are saved to docs/screenshots/ (``watch-stored.png``, ``watch-live.png``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.swarm_helpers import Swarm
from e2e.test_watch_player import live_watch
from ppsp.app.media import make_sample_video

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

PLAYER_STATE = """
const video = document.getElementById('video');
return {
  time: video.currentTime,
  error: video.error ? video.error.code + ' ' + video.error.message : null,
  paused: video.paused,
  src: video.currentSrc,
  status: document.getElementById('player-status').textContent,
};
"""

FIGURES = """
const out = {};
for (const cell of document.querySelectorAll('#figures dd')) out[cell.id] = cell.textContent;
return out;
"""


def wait_for(
    check: Callable[[], Any], what: str, timeout: float = 15.0, interval: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def player(browser: Any) -> dict[str, Any]:
    state: dict[str, Any] = browser.execute_script(PLAYER_STATE)
    assert state["error"] is None, state
    return state


def figures(browser: Any) -> dict[str, str]:
    shown: dict[str, str] = browser.execute_script(FIGURES)
    return shown


def plays_on(browser: Any, seconds: float = 2.0) -> None:
    """currentTime advances by most of ``seconds`` over ``seconds``, with no media error."""
    before = player(browser)["time"]
    time.sleep(seconds)
    after = player(browser)["time"]
    assert after - before >= seconds / 2, (before, after, player(browser))


def screenshot(browser: Any, name: str, *, settle: float = 0.0) -> None:
    """Save the page as docs/screenshots/NAME when PPSP_SCREENSHOTS=1, ``settle`` seconds on
    (so that the chart has a few seconds of figures)."""
    if os.environ.get("PPSP_SCREENSHOTS") == "1":
        time.sleep(settle)
        player(browser)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / name))


def test_stored_mp4_plays_seeks_and_shows_its_figures(browser: Any, tmp_path: Path) -> None:
    video = make_sample_video(tmp_path / "video.mp4", seconds=10.0)

    async def run() -> None:
        async with Swarm(tmp_path) as swarm:
            await swarm.tracker()
            _, swarm_id = await swarm.seed(video)
            watcher, url = await swarm.watch(swarm_id, tmp_path / "watched.mp4")
            root = url.removesuffix("stream")
            await asyncio.to_thread(check_page, root, swarm_id)
            assert "Traceback" not in watcher.output()

    def check_page(root: str, swarm_id: str) -> None:
        browser.get(root)
        assert browser.title == "ppsp watch"
        wait_for(lambda: player(browser)["time"] > 0.5, "the video starts")
        plays_on(browser)
        assert player(browser)["src"] == root + "stream"
        shown = wait_for(
            lambda: (f := figures(browser))["fig-progress"].startswith("100.0 %") and f,
            "the figures show the download",
        )
        assert shown["fig-peers"] == "1"
        assert shown["fig-from-source"].endswith("iB")  # from the seeder: about 1 MiB
        assert shown["fig-state"] == "complete"
        assert browser.find_element("id", "swarm").text == swarm_id
        # Seek near the end: the browser asks for another range and plays on from there.
        browser.execute_script("document.getElementById('video').currentTime = 7.0")
        wait_for(lambda: player(browser)["time"] >= 7.3, "playing on after the seek")
        plays_on(browser, 1.5)
        screenshot(browser, "watch-stored.png")

    asyncio.run(run())


def test_live_stream_plays_as_hls_and_shows_its_figures(browser: Any, tmp_path: Path) -> None:
    with live_watch(tmp_path) as root:
        browser.get(root)
        wait_for(lambda: player(browser)["time"] > 0.5, "the live video starts", timeout=20)
        plays_on(browser)
        state = player(browser)
        assert state["src"].startswith("blob:"), state  # Media Source Extensions: hls.js
        assert browser.execute_script("return window.ppspHls instanceof window.Hls")
        shown = wait_for(
            lambda: (f := figures(browser))["fig-continuity"].endswith("%") and f,
            "the figures show the stream",
        )
        assert int(shown["fig-peers"]) >= 1
        assert shown["fig-from-source"].endswith("iB")
        assert shown["fig-delay"].endswith(" s")
        assert shown["fig-state"] == "playing"
        assert browser.find_element("id", "media-url").text == root + "live.m3u8"
        screenshot(browser, "watch-live.png", settle=8.0)


@pytest.fixture(autouse=True)
def _blank_page(browser: Any) -> Any:
    """Leave the browser on a blank page, so that no test's player outlives its processes."""
    yield
    browser.get("about:blank")
