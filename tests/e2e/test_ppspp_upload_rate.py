"""End to end: ``--upload-rate`` binds a seeder's PPSPP uploads, shared per host (issue 17).

A seeder capped at 256 KiB/s serves 4 MiB over PPSPP (and HTTP) to two ``ppsp get --transport
ppspp`` peers on two hosts.  For about two seconds they download; then the seeder stops, and
its report says what it sent to each (its PPSPP uploads attributed to the PeerIDs the tracker
lists at the channels' addresses).  Before the cap bound PPSPP, the seeder sent at loopback
speed (both copies complete in well under a second); now about the cap, and each host about
half of it.  The bounds are generous: the measure is what the seeder sent between the
getters' start and its stop, against the cap over that time.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from e2e.swarm_helpers import Swarm, content, wait_for_peers

RATE = 256 * 1024
SIZE = 4 << 20
WINDOW = 2.0


async def test_ppspp_uploads_keep_to_the_upload_rate_per_host(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(content(SIZE, seed=53))
    seed_report = tmp_path / "seed.json"
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder, swarm_id = await swarm.seed(
            source, "--host", "127.0.53.1", "--ppspp-port", "0", "--upload-rate", str(RATE),
            "--report", str(seed_report),
        )  # fmt: skip
        await seeder.wait_line("offering PPSPP to the swarm's peers")
        loop = asyncio.get_running_loop()
        started = loop.time()
        getters = [
            await swarm.get(
                swarm_id, tmp_path / f"copy{n}.bin", "--host", f"127.0.53.{n}",
                "--transport", "ppspp", "--report", str(tmp_path / f"get{n}.json"),
                name=f"get{n}",
            )
            for n in (2, 3)
        ]  # fmt: skip
        # Both getters registered (they start fetching at once): the window starts there,
        # so a getter slow to start on a busy machine still has its share of it.
        await wait_for_peers(swarm, 3)
        await asyncio.sleep(WINDOW)
        seeder.signal(signal.SIGINT)  # its report: what it sent, and to whom
        elapsed = loop.time() - started
        assert await seeder.wait() == 0, seeder.output()
        for getter in getters:
            getter.signal(signal.SIGINT)
            await getter.wait()
    getter_ids = [json.loads((tmp_path / f"get{n}.json").read_text())["peer_id"] for n in (2, 3)]
    (session,) = json.loads(seed_report.read_text())["sessions"]
    sent = [session["uploaded_to"].get(peer_id, 0) for peer_id in getter_ids]
    total = session["uploaded_bytes"]
    # The cap over the time the getters ran, with room for the bucket's burst and each
    # host's reservation.  Uncapped, 8 MiB would have gone in well under a second.
    assert total <= RATE * elapsed * 1.2 + 128 * 1024, (total, elapsed, sent)
    assert total >= RATE * 0.5, (total, elapsed, sent)  # it did send
    # Every byte went to a PeerID the tracker listed at the channel's address...
    assert sum(sent) == total and session["uploaded_unattributed"] == 0, session
    # ...and per host, neither got much more than the other (the first getter registered may
    # have had the cap to itself for a moment before the window).
    assert min(sent) >= 0.25 * total, sent
