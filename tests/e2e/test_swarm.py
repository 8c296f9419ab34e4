"""Swarms of real ``ppsp`` processes on loopback: seed, get and watch against ``ppsp tracker``.

Every process is killed when its test ends (see :class:`swarm_helpers.Swarm`).  Where a test
needs "this happened before that", it freezes the processes involved (SIGSTOP) and inspects
their output files, so the order is established by a snapshot, never by timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import (
    CHUNK_SIZE,
    Swarm,
    chunk_count,
    closed_port,
    content,
    finish,
    held_chunks,
    step_until,
    throttle,
    wait_for_peers,
)
from ppsp.peer.net.chunkstore import part_path

pytestmark = pytest.mark.e2e

SIZE = 4 << 20  # 64 chunks of 64 KiB
LARGE = 8 << 20  # 128 chunks
CORRUPT_DROP = r"peer (\S+) sent a corrupt chunk \d+: dropping it"
DEFAULT_SLOTS = 2
"""Requests a ``ppsp get`` keeps in flight to one peer (DOWNLOAD_CONFIG default_slots)."""


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


def write_source(directory: Path, size: int, seed: int = 7) -> tuple[Path, bytes]:
    data = content(size, seed)
    path = directory / "source.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("encoding", ["xml", "json"])
async def test_three_leechers_get_identical_copies(
    swarm: Swarm, tmp_path: Path, encoding: str
) -> None:
    source, data = write_source(tmp_path, SIZE)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source, encoding=encoding)
    outputs = [tmp_path / f"leecher{i}.bin" for i in range(3)]
    leechers = [
        await swarm.get(swarm_id, out, "--timeout", "30", encoding=encoding, name=f"leecher{i}")
        for i, out in enumerate(outputs)
    ]
    await asyncio.gather(*(finish(leecher) for leecher in leechers))
    for out in outputs:
        assert out.read_bytes() == data
    for leecher in leechers:
        assert any("%" in line and "bytes" in line for line in leecher.stderr), leecher.output()


async def test_leechers_finish_from_each_other_after_the_seeder_stops(
    swarm: Swarm, tmp_path: Path
) -> None:
    source, data = write_source(tmp_path, LARGE)
    total = chunk_count(data)
    await swarm.tracker()
    seeder, swarm_id = await swarm.seed(source)
    # Leecher i resumes a partial file holding the chunks i (mod 3), except every 32nd chunk,
    # which only the seeder has.  Rarest first, the leechers fetch those seeder-only chunks
    # early, so the union becomes complete while each leecher still misses about half of the
    # file: a wide margin for the snapshot below.  (Starting from empty files, the last unique
    # chunk tends to leave the seeder just before the first leecher completes.  With a seeder-
    # only chunk in every 8, on a busy machine the seeder's share came so slowly beside what the
    # leechers swapped that a leecher could be within its slots of the end when the last one
    # arrived: four of them leave the margin.)
    seeder_only = set(range(0, total, 32))
    outputs = [tmp_path / f"leecher{i}.bin" for i in range(3)]
    for residue, out in enumerate(outputs):
        partial = bytearray(len(data))
        for index in range(residue, total, 3):
            if index not in seeder_only:
                offset = index * CHUNK_SIZE
                partial[offset : offset + CHUNK_SIZE] = data[offset : offset + CHUNK_SIZE]
        part_path(out).write_bytes(partial)  # an interrupted download's .part, resumed
    # The seeder stays frozen until all three leechers have joined, so that none of them gets
    # a head start while the others are still starting up.
    seeder.freeze()
    # A download cap keeps each leecher's request slots at their default (a fast peer gets
    # more): otherwise one 10 ms slice can carry a leecher from half the file to complete.
    capped = ("--seed-after", "--timeout", "30", "--download-rate", "2MiB")
    leechers = [
        await swarm.get(swarm_id, out, *capped, name=f"leecher{i}") for i, out in enumerate(outputs)
    ]
    await wait_for_peers(swarm, 4)
    seeder.thaw()
    snapshot: list[set[int]] = []

    def content_spread_over_leechers() -> bool:
        held = [held_chunks(part_path(out), data) for out in outputs]
        if any(len(h) == total for h in held):
            raise AssertionError("a leecher completed before the union was seen complete")
        # Each leecher must miss more chunks than it can have in flight to the seeder, so
        # that nothing already on its way from the seeder can complete it: the rest must come
        # from the other leechers.
        if len(set().union(*held)) == total and all(total - len(h) > DEFAULT_SLOTS for h in held):
            snapshot[:] = held
            return True
        return False

    await step_until(leechers, content_spread_over_leechers, run_slice=0.01)
    # The leechers are frozen, none complete, together holding everything: stop the seeder.
    seeder.signal(signal.SIGTERM)
    assert await seeder.wait(20) == 0, seeder.output()
    assert (await swarm.status())["peers"] == 3  # the seeder said DISCONNECT
    for leecher in leechers:
        leecher.thaw()
    for leecher in leechers:
        await leecher.wait_line(r": complete, \d+ bytes verified", timeout=60)
    assert seeder_only <= set().union(*snapshot)  # fetched from the seeder before it left
    for out in outputs:
        assert out.read_bytes() == data
    for leecher in leechers:
        leecher.signal(signal.SIGTERM)
        assert await leecher.wait(20) == 0, leecher.output()
        assert not any("Traceback" in line for line in leecher.stderr), leecher.output()


# 1 MiB chunks are fetched in worker threads (THREADED_FETCH_MIN_CHUNK), smaller ones on the
# event loop: both paths must refuse a bad chunk before writing it.
@pytest.mark.parametrize("chunk_size", [CHUNK_SIZE, 1 << 20], ids=["64KiB", "1MiB"])
async def test_corrupt_peer_is_detected_and_dropped(
    swarm: Swarm, tmp_path: Path, chunk_size: int
) -> None:
    source, data = write_source(tmp_path, SIZE)
    size_option = ("--chunk-size", str(chunk_size))
    await swarm.tracker()
    # The liar joins first and is the only peer the leecher can use: its first chunk must be
    # refused and the peer dropped.  The honest seeder joins after that.
    _, swarm_id = await swarm.seed(source, "--corrupt-uploads", *size_option, name="liar")
    out = tmp_path / "leecher.bin"
    leecher = await swarm.get(swarm_id, out, "--timeout", "30")
    await leecher.wait_line(CORRUPT_DROP)
    assert held_chunks(part_path(out), data, chunk_size) == set()
    _, honest_id = await swarm.seed(source, *size_option, name="honest")
    assert honest_id == swarm_id
    await finish(leecher)
    assert out.read_bytes() == data
    dropped = {m.group(1) for m in map(re.compile(CORRUPT_DROP).search, leecher.stderr) if m}
    assert len(dropped) == 1, leecher.output()  # only the liar, never the honest seeder


async def test_corrupt_peer_alongside_honest_seeder(swarm: Swarm, tmp_path: Path) -> None:
    source, data = write_source(tmp_path, SIZE)
    await swarm.tracker()
    await swarm.seed(source, name="honest")
    _, swarm_id = await swarm.seed(source, "--corrupt-uploads", name="liar")
    out = tmp_path / "leecher.bin"
    leecher = await swarm.get(swarm_id, out, "--timeout", "30")
    await finish(leecher)
    assert out.read_bytes() == data


async def test_a_corrupt_host_stays_banned_under_a_new_peer_id(
    swarm: Swarm, tmp_path: Path
) -> None:
    """A liar caught at 127.0.5.5 under PeerID A comes back there under PeerID B: the leecher
    learns of B but never connects to it nor asks it for a chunk (the host is banned)."""
    source, data = write_source(tmp_path, SIZE)
    liar_host = ("--host", "127.0.5.5")
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source, "--corrupt-uploads", *liar_host, name="liar-a")
    out, report = tmp_path / "leecher.bin", tmp_path / "leecher.json"
    leecher = await swarm.get(
        swarm_id, out, "--host", "127.0.4.4", "--timeout", "20", "--report", str(report)
    )
    liar_a = (await leecher.wait_line(CORRUPT_DROP)).group(1)
    finds = await swarm.tracker_requests("FIND")
    b_report = tmp_path / "liar-b.json"
    liar_b, _ = await swarm.seed(
        source, "--corrupt-uploads", *liar_host, "--report", str(b_report), name="liar-b"
    )
    # The leecher (with no usable peer, it asks every 3 s) looks the swarm up again: it now
    # knows B, and would have asked it at once before the host ban.
    async with asyncio.timeout(10):
        while await swarm.tracker_requests("FIND") <= finds:
            await asyncio.sleep(0.1)
    await swarm.seed(source, "--host", "127.0.3.3", name="honest")
    await finish(leecher)
    assert out.read_bytes() == data
    liar_b.signal(signal.SIGTERM)
    assert await liar_b.wait() == 0
    b_session = json.loads(b_report.read_text())["sessions"][0]
    assert b_session["uploaded_bytes"] == 0 and b_session["uploaded_to"] == {}
    session = json.loads(report.read_text())["sessions"][0]
    assert session["banned_hosts"] == ["127.0.5.5"]
    known_b = session["peers"][b_session["peer_id"]]  # listed to the leecher...
    assert known_b["banned"] and not known_b["connected"], known_b  # ... and never asked
    dropped = {m.group(1) for m in map(re.compile(CORRUPT_DROP).search, leecher.stderr) if m}
    assert dropped == {liar_a}, leecher.output()


async def test_seeder_killed_mid_transfer_costs_only_a_retry(swarm: Swarm, tmp_path: Path) -> None:
    source, data = write_source(tmp_path, LARGE)
    total = chunk_count(data)
    await swarm.tracker()
    first, swarm_id = await swarm.seed(source, name="seeder1")
    second, _ = await swarm.seed(source, name="seeder2")
    out = tmp_path / "leecher.bin"
    # Capped, so that the leecher keeps its default request slots and one step of the loop
    # below cannot take it past half-way (see the test above).
    leecher = await swarm.get(swarm_id, out, "--timeout", "30", "--download-rate", "2MiB")
    held_at_kill: set[int] = set()

    def partly_done() -> bool:
        held = held_chunks(part_path(out), data)
        if len(held) == total:
            raise AssertionError("the download completed before the snapshot")
        held_at_kill.update(held)
        return total // 4 <= len(held) <= total // 2

    # Both seeders slowed down, so that the leecher is caught half-way with requests to both.
    async with throttle(first), throttle(second):
        await step_until([leecher], partly_done)
    await first.kill()  # SIGKILL: no DISCONNECT, its connections reset, the tracker still lists it
    leecher.thaw()
    await finish(leecher)
    assert 0 < len(held_at_kill) < total
    assert out.read_bytes() == data


async def test_seeder_killed_mid_transfer_of_large_chunks_costs_only_a_retry(
    swarm: Swarm, tmp_path: Path
) -> None:
    # 1 MiB chunks without a download cap: the leecher fetches them in worker threads
    # (THREADED_FETCH_MIN_CHUNK), so the killed seeder's connections reset under those threads.
    chunk_size = 1 << 20
    source, data = write_source(tmp_path, 32 << 20)
    total = chunk_count(data, chunk_size)
    size_option = ("--chunk-size", str(chunk_size))
    await swarm.tracker()
    first, swarm_id = await swarm.seed(source, *size_option, name="seeder1")
    second, _ = await swarm.seed(source, *size_option, name="seeder2")
    out = tmp_path / "leecher.bin"
    leecher = await swarm.get(swarm_id, out, "--timeout", "30")
    held_at_kill: set[int] = set()

    def partly_done() -> bool:
        held = held_chunks(part_path(out), data, chunk_size)
        if len(held) == total:
            raise AssertionError("the download completed before the snapshot")
        held_at_kill.update(held)
        return total // 4 <= len(held) <= 3 * total // 4

    # Seeders running 2 ms in every 52 and the leecher in slices of 10 ms: a loopback transfer
    # of 1 MiB takes about 1 ms, so one step cannot take the download past three quarters.
    async with throttle(first, run=0.002, pause=0.05), throttle(second, run=0.002, pause=0.05):
        await step_until([leecher], partly_done, run_slice=0.01)
    await first.kill()
    leecher.thaw()
    await finish(leecher)
    assert 0 < len(held_at_kill) < total
    assert out.read_bytes() == data


async def test_watch_serves_a_range_before_the_download_completes(
    swarm: Swarm, tmp_path: Path
) -> None:
    source, data = write_source(tmp_path, LARGE)
    total = chunk_count(data)
    await swarm.tracker()
    seeder, swarm_id = await swarm.seed(source)
    out = tmp_path / "watched.bin"
    first = len(data) // 2 + 12345  # unaligned, spans three chunks
    last = first + 2 * CHUNK_SIZE + 999
    async with throttle(seeder):
        watcher, url = await swarm.watch(swarm_id, out, "--timeout", "30")
        assert url.startswith("http://127.0.0.1:") and url.endswith("/stream"), watcher.output()
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers={"Range": f"bytes={first}-{last}"}) as answer,
        ):
            body = await answer.read()
            watcher.freeze()
            held = held_chunks(part_path(out), data)
            watcher.thaw()
        assert answer.status == 206
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert body == data[first : last + 1]
        assert len(held) < total, "the range was only served once everything was there"
        assert {first // CHUNK_SIZE, last // CHUNK_SIZE} <= held
    await watcher.wait_line("download complete", timeout=60)
    assert out.read_bytes() == data


@pytest.mark.parametrize("encoding", ["xml", "json"])
async def test_swarm_works_against_a_10_tracker(
    swarm: Swarm, tmp_path: Path, encoding: str
) -> None:
    source, data = write_source(tmp_path, SIZE)
    await swarm.tracker("--max-version", "1.0")
    assert (await swarm.status())["version"] == "1.0"
    _, swarm_id = await swarm.seed(source, encoding=encoding)
    outputs = [tmp_path / f"leecher{i}.bin" for i in range(2)]
    leechers = [
        await swarm.get(swarm_id, out, "--timeout", "30", encoding=encoding, name=f"leecher{i}")
        for i, out in enumerate(outputs)
    ]
    await asyncio.gather(*(finish(leecher) for leecher in leechers))
    for out in outputs:
        assert out.read_bytes() == data


async def test_get_of_unknown_swarm_fails_in_one_line(swarm: Swarm, tmp_path: Path) -> None:
    await swarm.tracker()
    unknown = hashlib.sha256(b"nobody seeds this").hexdigest()
    leecher = await swarm.get(unknown, tmp_path / "x.bin", "--timeout", "2")
    code = await leecher.wait(30)
    assert code != 0
    assert_one_line_reason(leecher.stderr, "no peers")
    assert leecher.stdout == []


async def test_get_with_unreachable_tracker_fails_in_one_line(swarm: Swarm, tmp_path: Path) -> None:
    swarm.tracker_url = f"http://127.0.0.1:{closed_port()}"
    unknown = hashlib.sha256(b"anything").hexdigest()
    leecher = await swarm.get(unknown, tmp_path / "x.bin", "--timeout", "2")
    code = await leecher.wait(60)
    assert code != 0
    assert_one_line_reason(leecher.stderr, "tracker unreachable")
    assert leecher.stdout == []


async def test_get_into_an_unwritable_path_fails_in_one_line(swarm: Swarm, tmp_path: Path) -> None:
    await swarm.tracker()
    source, _ = write_source(tmp_path, 100_000)
    _, swarm_id = await swarm.seed(source)
    output = tmp_path / "no such directory" / "x.bin"
    leecher = await swarm.get(swarm_id, output, "--timeout", "10")
    code = await leecher.wait(60)
    assert code != 0
    assert_one_line_reason(leecher.stderr, f"cannot write {output}")
    assert leecher.stdout == []


def assert_one_line_reason(stderr: list[str], expected: str) -> None:
    lines = [line for line in stderr if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ppsp: ") and expected in lines[0], lines
    assert "Traceback" not in lines[0]
