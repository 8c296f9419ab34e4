"""End to end: ``--ppspp-chunk-size`` on ``ppsp seed`` and ``ppsp get --peer`` (issue 17).

One seeder with ``--ppspp-port 0 --ppspp-chunk-size 4096`` serves both its PPSPP contents in
4 KiB chunks: the swarm's peers (``ppsp get --transport ppspp``) take the size from its offer
(``ppspp://HOST:PORT/ROOT?chunk=4096``), and ``ppsp get ROOTHASH --peer ppspp://...
--ppspp-chunk-size 4096`` names the whole file's root, which depends on it.  Out-of-range
sizes are one-line usage errors before any network.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from e2e.swarm_helpers import Swarm, chunk_count, content, finish
from ppsp.peer.content.merkle import ppspp_root_hash

SIZE = 300_000
PPSPP_CHUNK = 4096
SERVING = re.compile(r"serving over PPSPP at udp (\S+):(\d+), root hash ([0-9a-f]+) \((.*)\)")
OFFERING = re.compile(r"offering PPSPP to the swarm's peers at udp \S+ \(.*, (\d+)-byte chunks\)")


async def test_a_seeder_serves_ppspp_in_the_chunk_size_asked(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = content(SIZE, seed=52)
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder, swarm_id = await swarm.seed(
            source, "--host", "127.0.52.1", "--ppspp-port", "0",
            "--ppspp-chunk-size", str(PPSPP_CHUNK), "--report", str(tmp_path / "seed.json"),
        )  # fmt: skip
        served = await seeder.wait_line(SERVING)
        offered = await seeder.wait_line(OFFERING)
        host, port, root = served.group(1), served.group(2), served.group(3)
        # The file's root is libswift's construction over 4 KiB chunks (SHA-1 by default).
        assert root == ppspp_root_hash(data, chunk_size=PPSPP_CHUNK).hex()
        assert f"{PPSPP_CHUNK}-byte chunks" in served.group(4), seeder.output()
        assert offered.group(1) == str(PPSPP_CHUNK), seeder.output()
        # A swarm peer over PPSPP only: the offer's chunk size is the one its channel uses
        # (the seeder drops a handshake with any other chunk size unanswered).
        getter = await swarm.get(
            swarm_id, tmp_path / "swarm.bin", "--host", "127.0.52.2", "--transport", "ppspp",
            "--report", str(tmp_path / "get.json"),
        )  # fmt: skip
        # The whole file by its root hash, without a tracker.
        direct = await swarm.spawn(
            "direct", "get", root, "--peer", f"ppspp://{host}:{port}",
            "--ppspp-chunk-size", str(PPSPP_CHUNK), "-o", str(tmp_path / "direct.bin"),
        )  # fmt: skip
        await finish(getter)
        assert await direct.wait() == 0, direct.output()
        seeder.signal(signal.SIGINT)
        assert await seeder.wait() == 0, seeder.output()
    assert (tmp_path / "swarm.bin").read_bytes() == data
    assert (tmp_path / "direct.bin").read_bytes() == data
    (session,) = json.loads((tmp_path / "get.json").read_text())["sessions"]
    assert [peer["transport"] for peer in session["peers"].values()] == ["PPSPP"], session
    stats = json.loads((tmp_path / "seed.json").read_text())["ppspp"]
    assert stats.get("refused_handshake", 0) == 0, stats
    # Both downloads took every 4 KiB chunk (8 KiB ones for the swarm would be half as many).
    assert stats["data_sent"] >= 2 * chunk_count(data, PPSPP_CHUNK), stats


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["seed", "{file}", "--ppspp-port", "0", "--ppspp-chunk-size", "1023"], ["1023", "1024"]),
        (["seed", "{file}", "--ppspp-port", "0", "--ppspp-chunk-size", "65479"], ["65478"]),
        (["seed", "{file}", "--ppspp-chunk-size", "8192"], ["needs --ppspp-port"]),
        (["get", "ab" * 20, "--peer", "ppspp://127.0.0.1:9", "-o", "{out}",
          "--ppspp-chunk-size", "512"], ["--ppspp-chunk-size", "512"]),
        (["get", "ab" * 32, "-o", "{out}", "--ppspp-chunk-size", "8192"],
         ["--ppspp-chunk-size goes with --peer"]),
    ],
    ids=["seed-too-small", "seed-too-large", "seed-without-port", "get-too-small", "get-swarm"],
)  # fmt: skip
async def test_chunk_size_usage_errors(tmp_path: Path, args: list[str], words: list[str]) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 5000)
    out = tmp_path / "out.bin"
    argv = [arg.format(file=source, out=out) for arg in args]
    async with Swarm(tmp_path) as swarm:
        # A tracker URL where nothing listens: a command that went to the network first
        # would fail otherwise (exit 1), not with a usage error.
        process = await swarm.spawn("peer", *argv, "--tracker", "http://127.0.0.1:9")
        assert await process.wait() == 2, process.output()
    lines = [line for line in process.stderr if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ppsp: "), process.output()
    assert all(word in lines[0] for word in words), lines[0]
    assert not out.exists()
