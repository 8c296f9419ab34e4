"""The tracker's dashboard in a real headless Chromium, against real processes.

A ``ppsp tracker``, a ``ppsp seed`` of a small file (a stored swarm), a ``ppsp live`` fed by
ffmpeg through a named pipe and one ``ppsp watch`` viewer of it (a live swarm), all on
loopback.  The page at ``/`` must list both swarms with their kind and counts, and a swarm's
page its peers with their addresses masked.  With ``PPSP_SCREENSHOTS=1`` the overview is
saved to docs/screenshots/dashboard.png (never on ordinary runs).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from e2e.swarm_helpers import Swarm, content
from ppsp.app.media import ffmpeg_exe

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "dashboard.png"
WAIT = 30.0
"""Bound on the page showing what the processes reported (they report every 5 s)."""

_T = TypeVar("_T")


async def _until(check: Callable[[], _T | None], what: str, timeout: float = WAIT) -> _T:
    """Run the blocking ``check`` (Selenium) in a thread until it returns something."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not show {what} within {timeout} s")
        await asyncio.sleep(0.3)


def _cells(browser: Any, swarm_id: str) -> dict[str, str] | None:
    """The fields of a swarm's row in the overview, as shown (None: no such row yet)."""
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#swarm-table tbody tr")
    for row in rows:
        if row.get_attribute("data-swarm-id") == swarm_id:
            cells = row.find_elements(By.CSS_SELECTOR, "td[data-field]")
            return {cell.get_attribute("data-field"): cell.text.strip() for cell in cells}
    return None


async def _encoder(pipe: Path) -> asyncio.subprocess.Process:
    """ffmpeg writing a minute of test pattern in real time, MPEG-TS, into ``pipe``."""
    return await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=60",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "600k",
        "-g", "25", "-pix_fmt", "yuv420p", "-f", "mpegts", "-y", str(pipe),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_the_dashboard_shows_stored_and_live_swarms_and_masks_peers(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    source_file = tmp_path / "file.bin"
    source_file.write_bytes(content(400_000))
    pipe = tmp_path / "live.ts"
    os.mkfifo(pipe)
    encoder = await _encoder(pipe)
    try:
        async with Swarm(tmp_path) as swarm:
            await swarm.tracker()
            _, stored_id = await swarm.seed(source_file)
            live = await swarm.spawn(
                "live", "live", "--tracker", swarm.tracker_url, "--input", str(pipe),
                "--key", str(tmp_path / "source.key"), "--chunk-ms", "500",
            )  # fmt: skip
            live_id = await live.first_stdout_line()
            await swarm.watch(live_id, tmp_path / "viewer.ts")
            url = swarm.tracker_url + "/"

            def overview() -> tuple[dict[str, str], dict[str, str]] | None:
                browser.get(url)  # loaded again: the page itself refreshes every 10 s only
                stored, live_row = _cells(browser, stored_id), _cells(browser, live_id)
                if stored is None or live_row is None or live_row["kind"] != "live":
                    return None
                if live_row["leechers"] != "1" or not live_row["viewers"].isdigit():
                    return None
                return stored, live_row

            await asyncio.to_thread(browser.get, url)
            stored_row, live_row = await _until(overview, "both swarms with their kinds")
            assert stored_row["kind"] == "stored"
            assert (stored_row["seeders"], stored_row["leechers"]) == ("1", "0")
            assert (live_row["seeders"], live_row["leechers"], live_row["viewers"]) == (
                "1",
                "1",
                "1",
            )
            assert live_row["continuity"].endswith("%"), live_row
            charts = await asyncio.to_thread(
                browser.find_elements, By.CSS_SELECTOR, "figure.chart svg"
            )
            assert len(charts) == 3
            if os.environ.get("PPSP_SCREENSHOTS") == "1":
                # A few samples of history first (one every 10 s), so that the charts show.
                def sampled() -> bool:
                    browser.get(url)
                    return len(browser.find_elements(By.CSS_SELECTOR, "svg path.line")) >= 5

                await _until(sampled, "charts of three samples", timeout=60.0)
                await asyncio.to_thread(browser.set_window_size, 1280, 820)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(browser.save_screenshot, str(SCREENSHOT))

            # A swarm's page: its peers, their addresses masked (the network only, no port).
            def peers() -> list[dict[str, str]] | None:
                rows = browser.find_elements(By.CSS_SELECTOR, "#peer-table tbody tr")
                found = []
                for row in rows:
                    cells = row.find_elements(By.CSS_SELECTOR, "td[data-field]")
                    found.append({c.get_attribute("data-field"): c.text.strip() for c in cells})
                return found or None

            await asyncio.to_thread(browser.get, f"{url}#/swarms/{stored_id}")
            (seeder,) = await _until(peers, "the stored swarm's peer")
            assert seeder["mode"] == "seed"
            assert seeder["addresses"] == "127.0.0.x"
            assert seeder["coverage"].startswith("100.0 %"), seeder
            page = await asyncio.to_thread(lambda: browser.page_source)
            assert "127.0.0.1" not in page
            shown_id = await asyncio.to_thread(browser.find_element, By.ID, "swarm-id")
            assert shown_id.text == stored_id

            await asyncio.to_thread(browser.get, f"{url}#/swarms/{live_id}")
            live_peers = await _until(
                lambda: (rows := peers()) and len(rows) == 2 and rows, "the live swarm's peers"
            )
            assert [p["mode"] for p in live_peers] == ["seed", "leech"]
            assert all(p["addresses"] == "127.0.0.x" for p in live_peers)
    finally:
        if encoder.returncode is None:
            encoder.kill()
        await encoder.wait()
