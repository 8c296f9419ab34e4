"""Stopping a command as a user does (Ctrl-C, SIGTERM, kill -9) at every stage of its life.

Each command must end soon after SIGINT or SIGTERM, whatever it is doing (a player waiting for a
chunk, a tracker that does not answer, a large file being hashed), and leave nothing in the
temporary directory.  The bound used, STOP_BOUND, is far below the tens of seconds a stuck
command takes (aiohttp's 60 s shutdown, the tracker client's retries) yet loose enough for a
loaded machine; the aim is under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import Peer, Swarm, content

STOP_BOUND = 5.0
"""Seconds a command may take to exit after a stop signal, in these tests."""


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    """The TMPDIR of every process the test starts."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@pytest.fixture
async def swarm(tmp_path: Path, temp_dir: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path, env={"TMPDIR": str(temp_dir)}) as running:
        yield running


async def stop_within(peer: Peer, signum: int = signal.SIGINT) -> int:
    """Send ``signum``; the exit code, once the process ended within STOP_BOUND."""
    peer.signal(signum)
    started = time.monotonic()
    code = await peer.wait(timeout=30)
    took = time.monotonic() - started
    assert took < STOP_BOUND, f"{peer.name} took {took:.1f} s to stop\n{peer.output()}"
    return code


def assert_quiet(peer: Peer) -> None:
    """No traceback and no error-level log line in what the process printed."""
    text = peer.output()
    for marker in ("Traceback", "Error handling request", "Unclosed", " ERROR "):
        assert marker not in text, text


@contextlib.asynccontextmanager
async def silent_tracker() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A tracker URL whose server accepts connections and never answers, and an event set once
    a request's first bytes came (the peer is in its first request, its start-up over)."""
    held: list[asyncio.StreamWriter] = []
    asked = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if await reader.read(1):
            asked.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_watch_stops_at_once_while_players_wait_and_seek(
    swarm: Swarm, tmp_path: Path, temp_dir: Path
) -> None:
    data = content(2 << 20)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    await swarm.tracker()
    # A slow seeder: the end of the content is far away when the player asks for it.
    _, swarm_id = await swarm.seed(source, "--upload-rate", "64KiB")
    watcher = await swarm.spawn(
        "watch", "watch", swarm_id, "--tracker", swarm.tracker_url, "--player-port", "0"
    )
    url = await watcher.first_stdout_line()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        # A player that seeks: it reads a little of one range, drops it, asks for another.
        async with http.get(url, headers={"Range": "bytes=0-"}) as first:
            await first.content.readexactly(1024)
        waiting = await http.get(url, headers={"Range": f"bytes={len(data) - 100}-"})
        assert waiting.status == 206
        code = await stop_within(watcher)
        waiting.close()
    assert code == 0, watcher.output()
    assert_quiet(watcher)
    assert list(temp_dir.iterdir()) == []


async def test_watch_killed_outright_leaves_no_copy_behind(
    swarm: Swarm, tmp_path: Path, temp_dir: Path
) -> None:
    source = tmp_path / "movie.bin"
    source.write_bytes(content(1 << 20))
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    watcher = await swarm.spawn(
        "watch", "watch", swarm_id, "--tracker", swarm.tracker_url, "--player-port", "0"
    )
    await watcher.wait_line("download complete", timeout=60)
    await watcher.kill()
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["watch", "get", "seed"])
async def test_stop_while_the_tracker_does_not_answer(
    swarm: Swarm, tmp_path: Path, temp_dir: Path, command: str
) -> None:
    swarm_id = "ab" * 32
    source = tmp_path / "movie.bin"
    source.write_bytes(content(100_000))
    async with silent_tracker() as (url, asked):
        args = {
            "watch": ["watch", swarm_id, "--player-port", "0"],
            "get": ["get", swarm_id, "-o", str(tmp_path / "out.bin")],
            "seed": ["seed", str(source)],
        }[command]
        peer = await swarm.spawn(command, *args, "--tracker", url)
        # In its first request (a loaded machine may take seconds to start the process), then
        # a moment more, short of the request's timeout.
        await asyncio.wait_for(asked.wait(), 60)
        await asyncio.sleep(0.5)
        assert peer.alive, peer.output()
        code = await stop_within(peer, signal.SIGTERM)
    assert code != 0
    assert peer.stderr[-1].startswith("ppsp: interrupted"), peer.output()
    assert_quiet(peer)
    assert list(temp_dir.iterdir()) == []
    assert not (tmp_path / "out.bin").exists()


async def test_stop_while_a_large_file_is_hashed(swarm: Swarm, tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as handle:
        handle.truncate(64 << 30)  # sparse: 64 GiB to hash, none of it on disk
    await swarm.tracker()
    seeder = await swarm.spawn("seed", "seed", str(huge), "--tracker", swarm.tracker_url)
    await asyncio.sleep(1.0)
    assert seeder.alive, seeder.output()
    code = await stop_within(seeder)
    assert code != 0
    assert seeder.stderr[-1] == "ppsp: interrupted", seeder.output()
    assert_quiet(seeder)


async def test_a_second_signal_ends_the_process_at_once(swarm: Swarm, tmp_path: Path) -> None:
    source = tmp_path / "movie.bin"
    source.write_bytes(content(100_000))
    async with silent_tracker() as (url, asked):
        peer = await swarm.spawn("seed", "seed", str(source), "--tracker", url)
        await asyncio.wait_for(asked.wait(), 60)
        peer.signal(signal.SIGINT)
        code = await stop_within(peer)
    assert code != 0


async def test_demo_interrupted_cleans_up(swarm: Swarm, temp_dir: Path) -> None:
    demo = await swarm.spawn("demo", "demo", "--leechers", "3")
    await demo.wait_line("Tracker at", stream="stdout", timeout=60)
    await asyncio.sleep(1.0)
    code = await stop_within(demo)
    assert code == 130, demo.output()
    assert_quiet(demo)
    assert list(temp_dir.iterdir()) == []


async def test_player_seeks_and_closes_are_not_errors(swarm: Swarm, tmp_path: Path) -> None:
    data = content(8 << 20)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    watcher = await swarm.spawn(
        "watch", "watch", swarm_id, "--tracker", swarm.tracker_url, "--player-port", "0"
    )
    url = await watcher.first_stdout_line()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        # What a player does on each seek: drop the running request, open another range.
        for start in (0, 3 << 20, 6 << 20, 1 << 20):
            answer = await http.get(url, headers={"Range": f"bytes={start}-"})
            assert await answer.content.readexactly(100_000) == data[start : start + 100_000]
            answer.close()
    await watcher.wait_line("download complete", timeout=60)
    assert await stop_within(watcher) == 0
    assert_quiet(watcher)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that mention ``text`` (this test's directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                if text.encode() in cmdline:
                    found.append(cmdline.decode(errors="replace"))
    return found


@pytest.mark.parametrize("kind", ["vod", "live"])
async def test_lab_stops_with_all_its_processes(swarm: Swarm, tmp_path: Path, kind: str) -> None:
    out = tmp_path / f"lab-{kind}"
    args = {
        "vod": ["--peers", "3", "--size-mb", "16", "--no-baseline"],
        "live": ["--peers", "2", "--duration", "60"],
    }[kind]
    # Started as a script starts a background job: with SIGINT ignored (asyncio's own Ctrl-C
    # handling is then off; the command's must not be).
    command = shlex.join([sys.executable, "-m", "ppsp", "lab", kind, *args, "--out", str(out)])
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", f"trap '' INT; exec {command}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=swarm.env, cwd=tmp_path,
    )  # fmt: skip
    lab = Peer("lab", process)
    swarm.peers.append(lab)
    await lab.wait_line(r"(peers|viewers) started", timeout=60)
    code = await stop_within(lab)
    assert code == 1
    assert lab.stderr[-1].startswith("ppsp: interrupted"), lab.output()
    assert _processes_mentioning(str(out)) == []


async def test_live_source_stops_within_a_second(swarm: Swarm, tmp_path: Path) -> None:
    growing = tmp_path / "growing.ts"  # a regular file is followed as it grows: it never ends
    growing.write_bytes(bytes(188 * 100))
    await swarm.tracker()
    source = await swarm.spawn(
        "live", "live", "--input", str(growing), "--tracker", swarm.tracker_url
    )
    await source.first_stdout_line()
    await asyncio.sleep(1.0)
    assert await stop_within(source) == 0
    assert_quiet(source)
