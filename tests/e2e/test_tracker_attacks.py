"""The attacks of issue 12 against real processes: one host lies, the others still download.

The tracker, the seeders and the leecher are ``ppsp`` processes on distinct loopback networks
(127.0.2.2, 127.0.3.3, 127.0.4.4: distinct /24s, as distinct machines would be); the attacker
sends the drafts' XML from 127.0.9.9 (the message builders of ``bench.tracker_attacks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bench.tracker_attacks import ATTACKER, Host, connect, disconnect, join

from e2e.swarm_helpers import Swarm, content, finish


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


async def seeders(swarm: Swarm, tmp_path: Path, size: int = 400_000) -> tuple[str, bytes]:
    data = content(size)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source, "--host", "127.0.2.2", name="seeder-a")
    await swarm.seed(source, "--host", "127.0.3.3", name="seeder-b")
    return swarm_id, data


async def test_fake_seeders_of_one_host_do_not_hide_the_real_ones(
    swarm: Swarm, tmp_path: Path
) -> None:
    swarm_id, data = await seeders(swarm, tmp_path)
    attacker = Host(swarm.tracker_url, ATTACKER)
    try:
        for i in range(30):
            # Unreachable addresses, the highest priority, every one a SEED.
            assert (await attacker.post(connect(f"fake{i}", ATTACKER, 9, 4294967295)))[0] == 200
            assert (await attacker.post(join(f"fake{i}", swarm_id)))[0] == 200
    finally:
        await attacker.close()
    out = tmp_path / "out.bin"
    await finish(await swarm.get(swarm_id, out, "--host", "127.0.4.4", "--timeout", "20"))
    assert out.read_bytes() == data


async def test_a_seeder_cannot_be_removed_in_its_name(swarm: Swarm, tmp_path: Path) -> None:
    swarm_id, data = await seeders(swarm, tmp_path)
    status = await swarm.status()
    assert status["peers"] == 2
    # The attacker learns the seeders' PeerIDs the way any peer does: from a peer list.
    attacker = Host(swarm.tracker_url, ATTACKER)
    try:
        assert (await attacker.post(connect("curious", ATTACKER)))[0] == 200
        _, listing = await attacker.post(join("curious", swarm_id, mode="LEECH"))
        victims = [v for v in _peer_ids(listing) if v != "curious"]
        assert len(victims) == 2, listing
        for victim in victims:
            assert (await attacker.post(disconnect(victim, swarm_id)))[0] == 403
            moved = connect(victim, "203.0.113.1", leave=swarm_id)
            assert (await attacker.post(moved))[0] == 403
    finally:
        await attacker.close()
    out = tmp_path / "out.bin"
    await finish(await swarm.get(swarm_id, out, "--host", "127.0.4.4", "--timeout", "20"))
    assert out.read_bytes() == data


async def test_a_flood_from_one_host_leaves_others_served(swarm: Swarm, tmp_path: Path) -> None:
    swarm_id, data = await seeders(swarm, tmp_path)
    attacker = Host(swarm.tracker_url, ATTACKER)
    answers: dict[int, int] = {}

    async def flood() -> None:
        deadline = time.monotonic() + 30.0
        for i in range(20_000):  # bounded in count and in time
            if time.monotonic() > deadline:
                return
            status, _ = await attacker.post(connect(f"flood{i}", ATTACKER))
            answers[status] = answers.get(status, 0) + 1

    flooding = asyncio.ensure_future(flood())
    try:
        await asyncio.sleep(1.0)  # the flood is on
        out = tmp_path / "out.bin"
        await finish(await swarm.get(swarm_id, out, "--host", "127.0.4.4", "--timeout", "20"))
        assert out.read_bytes() == data
    finally:
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flooding
        await attacker.close()
    assert answers.get(200, 0) <= 256  # peers_per_host
    assert answers.get(403, 0) + answers.get(503, 0) > 0, answers
    assert (await swarm.status())["peers"] <= 256 + 3


def _peer_ids(listing: str) -> list[str]:
    import re

    return re.findall(r"<PeerID>([^<]+)</PeerID>", listing)
