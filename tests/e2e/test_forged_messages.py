"""Peer protocol messages in other peers' names, against real processes (issue 14).

A tracker, two seeders (127.0.2.2, 127.0.3.3) and a leecher (127.0.4.4) are ``ppsp``
processes; the forger writes the peer protocol's XML from 127.0.9.9.  It learns the seeders'
PeerIDs the way any peer does (a JOIN at the tracker), then, while the leecher downloads,
PUSHes empty chunk maps in the seeders' names and floods PUSHes under PeerIDs nobody knows.
The download completes, and the leecher's FINDs at the tracker stay few.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
from bench.tracker_attacks import ATTACKER, Host, connect, join

from e2e.swarm_helpers import Swarm, closed_port, content, finish
from ppsp.codecs.peer_xml import CONTENT_TYPE, encode_request
from ppsp.peer.protocol.handler import PeerProtocolClient

LEECHER = "127.0.4.4"
FORGED_STATUS = 403


async def _seeder_ids(swarm: Swarm, swarm_id: str) -> list[str]:
    attacker = Host(swarm.tracker_url, ATTACKER)
    try:
        assert (await attacker.post(connect("forger", ATTACKER, 9)))[0] == 200
        _, listing = await attacker.post(join("forger", swarm_id, mode="LEECH"))
    finally:
        await attacker.close()
    ids = [i for i in re.findall(r"<PeerID>([^<]+)</PeerID>", listing) if i != "forger"]
    assert len(ids) == 2, listing
    return ids


async def _tracker_finds(swarm: Swarm) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(swarm.tracker_url + "/metrics") as answer,
    ):
        text = await answer.text()
    return sum(
        int(float(count))
        for count in re.findall(
            r'^ppsp_tracker_requests_total\{[^}]*method="FIND"[^}]*\} (\S+)', text, re.MULTILINE
        )
    )


async def test_forged_and_unknown_pushes_do_not_stop_a_download(
    tmp_path: Path,
) -> None:
    data = content(2 << 20)  # 32 chunks of 64 KiB
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        # Capped seeders: the download lasts a few seconds, long enough to be attacked.
        rate = ("--upload-rate", "384KiB")
        _, swarm_id = await swarm.seed(source, "--host", "127.0.2.2", *rate, name="seeder-a")
        await swarm.seed(source, "--host", "127.0.3.3", *rate, name="seeder-b")
        seeders = await _seeder_ids(swarm, swarm_id)
        finds_before = await _tracker_finds(swarm)

        port = closed_port()
        out = tmp_path / "out.bin"
        leecher = await swarm.get(
            swarm_id, out, "--host", LEECHER, "--port", str(port), "--timeout", "12"
        )
        answers: dict[str, dict[int, int]] = {"forged": {}, "unknown": {}}

        async def forge() -> None:
            url = f"http://{LEECHER}:{port}/"
            connector = aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
            async with aiohttp.ClientSession(connector=connector) as http:

                async def push(peer_id: str, kind: str) -> None:
                    request = PeerProtocolClient(peer_id).push_chunk_map(swarm_id, ())
                    headers = {"Content-Type": CONTENT_TYPE}
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with http.post(
                            url, data=encode_request(request), headers=headers
                        ) as a:
                            counts = answers[kind]
                            counts[a.status] = counts.get(a.status, 0) + 1

                for round_ in range(2000):  # bounded; the test cancels it once the leecher ends
                    await asyncio.gather(
                        *(push(seeder, "forged") for seeder in seeders),
                        *(push(f"stranger{round_}-{i}", "unknown") for i in range(3)),
                    )
                    await asyncio.sleep(0.02)

        forging = asyncio.ensure_future(forge())
        try:
            await finish(leecher, timeout=25.0)
        finally:
            forging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forging
        assert out.read_bytes() == data
        forged, unknown = answers["forged"], answers["unknown"]
        # Refused once the leecher knows the seeders (before, a stranger's: acknowledged, not
        # believed).
        assert forged.get(FORGED_STATUS, 0) > 10 and set(forged) <= {200, FORGED_STATUS}, answers
        assert sum(unknown.values()) > 30, answers
        # Without the bound each unknown PUSH made the leecher FIND at the tracker.
        finds = await _tracker_finds(swarm) - finds_before
        assert finds <= 15, (finds, answers)
