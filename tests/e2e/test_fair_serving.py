"""Fair serving against real processes: an honest download beside a flooding host.

A seeder (127.0.2.2) capped at 4 MiB/s serves a 2 MiB file; a flooder (127.0.6.6,
``python -m bench.flood_bench flood``) pulls chunk after chunk over 32 parallel connections
under 32 PeerIDs, bounded in time and count; an honest ``ppsp get`` (127.0.4.4) downloads
meanwhile.  The seeder shares its upload per requesting host (half each at the default
``--host-share``), so the honest host gets about half of what the seeder sent while both were
active (bytes, from the honest report's arrivals and the flooder's counts).  Before fair
serving, the flooder's requests (holding no chunks) went first and the honest host got a few
percent (or the download failed).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.flood_bench import FLOODED, ROOT, SEEDING, honest_share

from e2e.swarm_helpers import CHUNK_SIZE, Peer, Swarm, content, finish

SHARE = 0.5
"""The share the seeder promises each of two hosts (the default ``--host-share``)."""
SLACK = 0.15
"""What the measure may lose to the edges of the window (a chunk or two of 32)."""


async def test_an_honest_download_keeps_its_share_beside_a_flooding_host(tmp_path: Path) -> None:
    data = content(2 << 20)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder, swarm_id = await swarm.seed(
            source, "--host", "127.0.2.2", "--upload-rate", "4MiB", name="seeder"
        )
        seeding = next(m for line in seeder.stderr if (m := SEEDING.match(line)))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.flood_bench", "flood", "--url", seeding.group(2),
            "--swarm", swarm_id, "--chunks", str(len(data) // CHUNK_SIZE), "--ip", "127.0.6.6",
            "--connections", "32", "--seconds", "20", "--requests", "2000",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=swarm.env, cwd=ROOT,
        )  # fmt: skip
        flooder = Peer("flooder", process)
        swarm.peers.append(flooder)  # killed with the swarm
        await flooder.wait_line(r"^flood ready", stream="stdout")
        out = tmp_path / "out.bin"
        report = tmp_path / "get.json"
        get = await swarm.get(swarm_id, out, "--host", "127.0.4.4", "--report", str(report))
        await finish(get, timeout=30)
        await asyncio.sleep(0.2)  # the flooder's count after the download
    assert out.read_bytes() == data
    samples = [
        (float(m.group(2)), int(m.group(1)))
        for line in flooder.stdout
        if (m := FLOODED.match(line))
    ]
    figures = honest_share(json.loads(report.read_text()), samples)
    assert figures["flood_bytes"] > 0, figures  # the flood was on all along
    assert figures["honest_share"] >= SHARE - SLACK, figures
