"""The watch page's server side (``ppsp.app.web``) and the live player's HLS endpoints.

The figures are pure functions of a session; the routes run on a real aiohttp server on
loopback, asked by a real client, with stand-ins for the viewer (the end-to-end and browser
tests run the real one).
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ppsp.app import live_commands
from ppsp.app.hls import LiveSegmenter
from ppsp.app.live_commands import LivePlayerEndpoint, offers_hls
from ppsp.app.web import (
    PAGE_SECURITY_POLICY,
    STATIC_FILES,
    WatchPage,
    live_figures,
    render_page,
    stored_figures,
)
from ppsp.peer.live import QoE
from ppsp.peer.live.playback import PlaybackState
from ppsp.wire.bitmap import ChunkBitmap

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "ppsp" / "app" / "static"
SWARM = "ab" * 32


def remote(received: int, bitmap: ChunkBitmap | None, *, connected: bool = True) -> Any:
    return SimpleNamespace(
        bytes_received=received,
        bitmap=bitmap,
        offer=object() if connected else None,
        banned=False,
    )


def stored_session(*, held: int, chunks: int = 10) -> Any:
    mine = ChunkBitmap(chunks)
    for index in range(held):
        mine.add(index)
    rep = SimpleNamespace(chunk_count=chunks)
    return SimpleNamespace(
        swarm_id=SWARM,
        description=SimpleNamespace(
            size=chunks * 1000, media_type="video/mp4", representation=lambda: rep
        ),
        complete=held == chunks,
        bitmap=lambda: mine,
        uploaded_bytes=123,
        remotes={
            "seeder": remote(6000, ChunkBitmap.full(chunks)),
            "leecher": remote(2000, ChunkBitmap(chunks)),
            "gone": remote(500, None, connected=False),
        },
    )


# -- figures ----------------------------------------------------------------------------------


def test_stored_figures_split_seeders_from_other_peers() -> None:
    figures = stored_figures(stored_session(held=4))
    assert figures == {
        "kind": "stored",
        "swarm_id": SWARM,
        "state": "downloading",
        "peers": 2,  # connected ones
        "size": 10_000,
        "media_type": "video/mp4",
        "chunks": 10,
        "chunks_held": 4,
        "progress": 0.4,
        "bytes_from_seeders": 6000,
        "bytes_from_peers": 2500,
        "uploaded_bytes": 123,
    }
    assert stored_figures(stored_session(held=10))["state"] == "complete"
    assert stored_figures(None) == {"kind": "stored", "state": "joining", "peers": 0}


def test_live_figures_are_the_viewers_qoe() -> None:
    session: Any = SimpleNamespace(
        swarm_id=SWARM, uploaded_bytes=5, remotes={"source": remote(9000, None)}
    )
    qoe = QoE(
        startup_delay=1.5,
        chunks_played=99,
        chunks_skipped=1,
        delay_behind_source=3.25,
        bytes_from_source=9000,
        bytes_from_peers=1000,
    )
    segmenter = LiveSegmenter(500)
    for index in range(5):
        segmenter.played(index, b"x", timestamp_ms=index * 500, start=True)
    figures = live_figures(session, qoe, PlaybackState.PLAYING, segmenter)
    assert figures["continuity"] == 0.99
    assert figures["delay_behind_source"] == 3.25
    assert figures["bytes_from_source"] == 9000 and figures["bytes_from_peers"] == 1000
    assert figures["peers"] == 1 and figures["state"] == "playing"
    assert figures["hls"] == {
        "segments": 4,
        "media_sequence": 0,
        "target_duration": 2,
        "ended": False,
    }
    assert live_figures(session, QoE(), PlaybackState.JOINING, None)["hls"] is None


# -- the page and its files ---------------------------------------------------------------------


def test_the_page_names_its_swarm_escaped_and_refuses_unknown_kinds() -> None:
    page = render_page(kind="live", swarm_id='"><script>alert(1)</script>', hls=True)
    assert "<script>alert" not in page
    assert 'data-kind="live"' in page and 'data-hls="1"' in page
    assert "{{" not in page
    with pytest.raises(ValueError):
        render_page(kind="<b>", swarm_id=SWARM, hls=False)


def test_every_served_file_ships_in_the_package() -> None:
    for name in [*STATIC_FILES, "watch.html", "hls.js-LICENSE", "README.md"]:
        assert (STATIC / name).is_file(), name
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "app/static/*" in settings["tool"]["setuptools"]["package-data"]["ppsp"]
    readme = (STATIC / "README.md").read_text(encoding="utf-8")
    assert "hls.js` **1.7.4**" in readme
    assert (STATIC / "hls.min.js").read_bytes().startswith(b"!function")


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    app = web.Application()
    WatchPage(
        kind="stored",
        swarm_id=lambda: SWARM,
        figures=lambda: stored_figures(stored_session(held=3)),
    ).add_routes(app)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/"))


async def test_the_page_its_figures_and_its_files_are_served(page_server: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(page_server) as answer:
            assert answer.status == 200
            assert answer.content_type == "text/html"
            assert answer.headers["Content-Security-Policy"] == PAGE_SECURITY_POLICY
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert f'data-swarm="{SWARM}"' in await answer.text()
        async with http.head(page_server) as answer:
            assert answer.status == 200
        async with http.get(page_server + "stats.json") as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "no-store"
            assert (await answer.json())["chunks_held"] == 3
        for name, media_type in STATIC_FILES.items():
            async with http.get(page_server + "static/" + name) as answer:
                assert answer.status == 200, name
                assert answer.headers["Content-Type"] == media_type
                assert await answer.read() == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "static/",
        "static/watch.html",  # the template is rendered at /, not served raw
        "static/README.md",
        "static/hls.js-LICENSE",
        "static/..%2fweb.py",
        "static/%2e%2e/web.py",
        "static/../../pyproject.toml",
        "static/" + "a" * 4000,
        "stream",  # the page alone: no content route here
        "index.html",
    ],
)
async def test_any_other_path_is_a_404(page_server: str, path: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(page_server + path, allow_redirects=False) as answer,
    ):
        assert answer.status == 404, path


async def test_other_methods_are_refused(page_server: str) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("POST", "PUT", "DELETE"):
            async with http.request(method, page_server + "stats.json") as answer:
                assert answer.status == 405, method


# -- the live player's HLS endpoints -----------------------------------------------------------


def stand_in_viewer(segmenter: LiveSegmenter | None) -> Any:
    session: Any = SimpleNamespace(swarm_id=SWARM, uploaded_bytes=0, remotes={})
    return SimpleNamespace(
        segmenter=segmenter,
        segments_changed=asyncio.Event(),
        session=session,
        figures=lambda: live_figures(session, QoE(), PlaybackState.JOINING, segmenter),
    )


@pytest.fixture
async def live_server() -> AsyncIterator[tuple[str, Any]]:
    viewer = stand_in_viewer(LiveSegmenter(500))
    endpoint = LivePlayerEndpoint(SimpleNamespace(), "video/mp2t", viewer=viewer)  # type: ignore[arg-type]
    assert endpoint.hls
    async with TestServer(endpoint.app(), host="127.0.0.1") as server:
        yield str(server.make_url("/")), viewer


async def test_the_playlist_waits_for_its_first_segment(
    live_server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, viewer = live_server
    segmenter: LiveSegmenter = viewer.segmenter
    monkeypatch.setattr(live_commands, "PLAYLIST_WAIT_S", 0.2)
    async with aiohttp.ClientSession() as http:
        async with http.get(root + "live.m3u8") as answer:
            assert answer.status == 503  # nothing within the wait: a player asks again
            assert answer.headers["Retry-After"] == "1"
        monkeypatch.setattr(live_commands, "PLAYLIST_WAIT_S", 10.0)
        waiting = asyncio.ensure_future(http.get(root + "live.m3u8"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        for index in range(3):
            segmenter.played(index, b"\x47" * 188, timestamp_ms=index * 500, start=True)
            viewer.segments_changed.set()
            viewer.segments_changed.clear()
        async with await waiting as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            assert answer.headers["Cache-Control"] == "no-cache"
            text = await answer.text()
        assert text.splitlines()[-1] == "segments/1.ts"
        async with http.get(root + "segments/1.ts") as answer:
            assert answer.status == 200
            assert answer.content_type == "video/mp2t"
            assert await answer.read() == b"\x47" * 188
        for name in ("2.ts", "01.ts", "1.ts.bak", "x", "-1.ts", "9" * 30 + ".ts"):
            async with http.get(root + "segments/" + name) as answer:
                assert answer.status == 404, name
        async with http.get(root + "stats.json") as answer:
            assert (await answer.json())["hls"]["segments"] == 2
        async with http.get(root) as answer:
            assert 'data-hls="1"' in await answer.text()


async def test_a_stream_that_is_not_mpeg_ts_is_not_offered_as_hls() -> None:
    description: Any = SimpleNamespace(media_type="audio/ogg")
    assert not offers_hls(description)
    assert offers_hls(SimpleNamespace(media_type="video/MP2T"))  # type: ignore[arg-type]
    viewer = stand_in_viewer(None)
    endpoint = LivePlayerEndpoint(SimpleNamespace(), "audio/ogg", viewer=viewer)  # type: ignore[arg-type]
    assert not endpoint.hls
    async with (
        TestServer(endpoint.app(), host="127.0.0.1") as server,
        aiohttp.ClientSession() as http,
    ):
        for path in ("/live.m3u8", "/segments/0.ts"):
            async with http.get(server.make_url(path)) as answer:
                assert answer.status == 404, path
                assert "MPEG-TS" in await answer.text()
        async with http.get(server.make_url("/")) as answer:
            assert 'data-hls="0"' in await answer.text()  # the page plays /stream instead
