"""Many peers behind one address (a lecture hall behind a campus NAT) at a tracker of default
bounds.

A real ``ppsp tracker`` with its default per-host bounds; 120 peers, each with its own tracker
client (its own kept-alive connection, as every ``ppsp`` process has), all from 127.0.0.77 as
the viewers of one hall reach the tracker through one NAT address.  Each registers, joins one
swarm and reports several times at a live viewer's pace (its connection stays open between
reports, the client's keep-alive outlasting the interval), as the tracker's bounds let it; a
host (127.0.9.9) holding as many connections as it may, and trying more, changes nothing for
them.  The per-host bounds are options of ``ppsp tracker`` (a larger NAT, a stricter server).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import Swarm
from ppsp.errors import PPSPError
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.tracker import PeerMode

pytestmark = pytest.mark.e2e

HALL = "127.0.0.77"
FLOODER = "127.0.9.9"
VIEWERS = 120
SWARM = "ab" * 32


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


async def hold_connections(url: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections from the flooder's address, opened and left idle."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    held = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(host, int(port), local_addr=(FLOODER, 0))
        held.append(writer)
    return held


async def evicted(swarm: Swarm) -> float:
    """Connections the tracker closed, idle, to let a new one of their host in."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(swarm.tracker_url + "/metrics") as answer,
    ):
        metrics = await answer.text()
    line = r'^ppsp_tracker_connections_closed_total\{reason="idle_evicted"\} (\S+)'
    found = re.search(line, metrics, re.MULTILINE)
    assert found is not None, metrics
    return float(found.group(1))


async def test_a_hall_of_viewers_behind_one_address_is_served(swarm: Swarm) -> None:
    assert VIEWERS <= DEFAULT_LIMITS.peers_per_host <= DEFAULT_LIMITS.connections_per_host
    await swarm.tracker()
    # A host holding every connection it may (and more: those are cut) beside the hall.
    held = await hold_connections(swarm.tracker_url, DEFAULT_LIMITS.connections_per_host + 8)
    clients = [
        TrackerClient(swarm.tracker_url, f"hall-{n:03d}", local_address=HALL, retries=1)
        for n in range(VIEWERS)
    ]
    try:
        # Joining within a second, as a hall does at the start of a lecture (two requests
        # each: the per-host rate, 100 a second after a burst of 200, admits them).
        for start in range(0, VIEWERS, 40):
            joined = await asyncio.gather(
                *(c.join(SWARM, PeerMode.LEECH) for c in clients[start : start + 40])
            )
            assert all(isinstance(peers, list) for peers in joined)
            await asyncio.sleep(0.3)
        # Every viewer keeps reporting over its kept-alive connection, all of them at once.
        for _ in range(2):
            await asyncio.sleep(1.3)
            await asyncio.gather(*(c.report() for c in clients))
        status = await swarm.status()
        assert status["peers"] == VIEWERS
        # Within the bound, every viewer kept its own connection: none was closed for another.
        assert await evicted(swarm) == 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        for writer in held:
            writer.close()


async def test_the_per_host_bounds_are_the_operators_to_set(swarm: Swarm) -> None:
    await swarm.tracker("--peers-per-host", "3", "--connections-per-host", "300")
    clients = [
        TrackerClient(swarm.tracker_url, f"hall-{n:03d}", local_address=HALL, retries=1)
        for n in range(4)
    ]
    try:
        for client in clients[:3]:
            await client.join(SWARM, PeerMode.LEECH)
        with pytest.raises(PPSPError, match=r"Too many peers from this host \(at most 3\)"):
            await clients[3].join(SWARM, PeerMode.LEECH)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    # Up to 300 connections of one host are held, the 301st is cut.
    held = await hold_connections(swarm.tracker_url, 300)
    try:
        host, port = swarm.tracker_url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=(FLOODER, 0))
        assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed unread
        writer.close()
        status = await swarm.status()  # from another host: served
        assert status["peers"] == 3
    finally:
        for writer in held:
            writer.close()


async def test_the_request_rate_per_host_is_the_operators_to_set(swarm: Swarm) -> None:
    # 0.5 a second sustained, 1 at once: a host's second request in a row is refused.
    await swarm.tracker("--requests-per-host", "0.5")
    statuses = []
    for _ in range(3):
        client = TrackerClient(swarm.tracker_url, "hall-000", local_address=HALL, retries=1)
        try:
            await client.register()
            statuses.append(200)
        except PPSPError as exc:
            statuses.append(503 if "Service Unavailable" in str(exc) else 0)
        finally:
            await client.close()
    assert statuses[0] == 200 and 503 in statuses[1:], statuses


async def test_more_viewers_than_connections_take_turns_on_their_hosts_bound(
    swarm: Swarm,
) -> None:
    # 48 viewers of one address, 16 connections for it: each new connection closes the
    # address's connection idle longest, so every viewer is served, the host within its bound.
    await swarm.tracker("--connections-per-host", "16")
    clients = [
        TrackerClient(swarm.tracker_url, f"hall-{n:03d}", local_address=HALL) for n in range(48)
    ]
    try:
        for client in clients:
            await client.join(SWARM, PeerMode.LEECH)
        for _ in range(2):
            for client in clients:
                await client.report()
        status = await swarm.status()
        assert status["peers"] == 48
        assert await evicted(swarm) > 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))
