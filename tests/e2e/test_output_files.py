"""Where downloads go: FILE.part until verified, resumed by the same command, ``-o -`` to stdout.

Also the seeder's side of files: it says what it serves and stops serving chunks of a file that
changed on disk under it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from e2e.swarm_helpers import CHUNK_SIZE, ENV, Swarm, content, finish


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


def source_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = content(size)
    path = tmp_path / "movie.bin"
    path.write_bytes(data)
    return path, data


async def test_interrupted_download_keeps_part_and_resumes(swarm: Swarm, tmp_path: Path) -> None:
    source, data = source_file(tmp_path, 2 << 20)
    out = tmp_path / "out.bin"
    part = tmp_path / "out.bin.part"
    await swarm.tracker()
    seeder, swarm_id = await swarm.seed(source, "--upload-rate", "512KiB")
    first = await swarm.get(swarm_id, out, name="first")
    await first.wait_line(r"\d+/\d+ bytes", timeout=30)  # some progress made
    first.signal(signal.SIGINT)
    assert await first.wait(20) != 0
    assert "run again to resume" in first.stderr[-1], first.output()
    assert not out.exists()
    assert part.exists()
    seeder.signal(signal.SIGTERM)
    await seeder.wait(20)
    # The same command, against an unthrottled seeder, resumes: it fetches only what is missing.
    _, swarm_id = await swarm.seed(source, name="seeder2")
    report = tmp_path / "report.json"
    second = await swarm.get(swarm_id, out, "--report", str(report), name="second")
    await finish(second)
    assert out.read_bytes() == data
    assert not part.exists()
    session = orjson.loads(report.read_bytes())["sessions"][0]
    assert 0 < session["downloaded_bytes"] < len(data), session


async def test_output_that_exists_is_replaced_only_with_force(swarm: Swarm, tmp_path: Path) -> None:
    source, data = source_file(tmp_path, 300_000)
    out = tmp_path / "out.bin"
    out.write_bytes(b"an earlier, complete file")
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    refused = await swarm.get(swarm_id, out, name="refused")
    assert await refused.wait(20) == 2
    assert "--force" in refused.stderr[-1]
    assert out.read_bytes() == b"an earlier, complete file"
    forced = await swarm.get(swarm_id, out, "--force", name="forced")
    await finish(forced)
    assert out.read_bytes() == data


async def _run_to_stdout(
    tmp_path: Path, *args: str
) -> tuple[bytes, str, asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppsp", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return stdout, stderr.decode(), process


async def test_get_to_standard_output(swarm: Swarm, tmp_path: Path) -> None:
    source, data = source_file(tmp_path, 700_000)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    stdout, stderr, process = await _run_to_stdout(
        tmp_path, "get", swarm_id, "--tracker", swarm.tracker_url, "-o", "-"
    )
    assert process.returncode == 0, stderr
    assert stdout == data
    assert not (tmp_path / "-").exists()
    assert not (tmp_path / "-.part").exists()


async def test_watch_stored_content_to_standard_output(swarm: Swarm, tmp_path: Path) -> None:
    source, data = source_file(tmp_path, 700_000)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppsp", "watch", swarm_id, "--tracker", swarm.tracker_url,
        "--player-port", "0", "-o", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    received = await asyncio.wait_for(process.stdout.readexactly(len(data)), 60)
    assert received == data
    url = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
    assert url.startswith("http://127.0.0.1:") and url.rstrip().endswith("/stream")
    process.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(process.communicate(), 20)
    assert rest == b""
    assert process.returncode == 0


async def test_seeder_says_what_it_serves_and_refuses_changed_chunks(
    swarm: Swarm, tmp_path: Path
) -> None:
    source, data = source_file(tmp_path, 10 * CHUNK_SIZE)
    await swarm.tracker()
    seeder, swarm_id = await swarm.seed(source)
    line = next(line for line in seeder.stderr if line.startswith("seeding "))
    assert "640 KiB" in line and "10 chunks of 64 KiB" in line, line
    # Change the file in place: chunk 3 no longer matches the description.
    with source.open("r+b") as handle:
        handle.seek(3 * CHUNK_SIZE + 10)
        handle.write(b"edited")
    out = tmp_path / "out.bin"
    leecher = await swarm.get(swarm_id, out, "--timeout", "3")
    assert await leecher.wait(60) == 1  # chunk 3 cannot be had from anyone
    await seeder.wait_line(r"changed on disk: chunk 3 no longer matches", timeout=10)
    assert not out.exists()
    held = (tmp_path / "out.bin.part").read_bytes()
    assert held[: 3 * CHUNK_SIZE] == data[: 3 * CHUNK_SIZE]  # the others were served
    assert held[4 * CHUNK_SIZE :] == data[4 * CHUNK_SIZE :]


async def test_two_viewers_on_one_machine(swarm: Swarm, tmp_path: Path) -> None:
    source, _ = source_file(tmp_path, 200_000)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source)
    urls = []
    for name in ("first", "second"):
        viewer = await swarm.spawn(name, "watch", swarm_id, "--tracker", swarm.tracker_url)
        urls.append(await viewer.first_stdout_line())
    assert urls[0] != urls[1]
    assert all(url.startswith("http://127.0.0.1:") for url in urls)
