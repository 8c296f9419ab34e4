"""Flood: a host that pulls chunks from every member as fast as it can, over many connections.

The flooder joins as a LEECH (its endpoint holds nothing), learns the members (JOIN, then a
FIND every 5 s) and the description (from a member), then runs ``--connections`` workers that
each GET chunk after chunk, member after member, with its PeerID in the request like any peer:
stored content, chunk indexes at random; live, the newest chunks of the largest map a member
answers a PULL with (re-read every second).  It keeps nothing.  Bytes and answers are counted.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp

from ppsp.lab.attack.common import (
    AttackSettings,
    Swarm,
    Tally,
    fetch_description,
    http_session,
    new_peer_id,
    pull_map,
    ready,
    tracker_client,
)
from ppsp.lab.attack.member import Chunks, FakeMember
from ppsp.peer.content.description import ContentDescription
from ppsp.peer.net.http_common import PEER_ID_HEADER
from ppsp.peer.protocol.handler import PeerProtocolClient
from ppsp.wire.peer import bitmaps_from_chunk_map
from ppsp.wire.tracker import PeerMode

MAX_REQUESTS = 1_000_000
"""Bound on one worker's requests (the lifetime bounds it in time)."""
NEWEST = 8
"""Live: the flooder asks for the newest this many chunks of the map it last read."""


class Targets:
    """What there is to ask for: (representation, indexes), updated as the swarm goes on."""

    def __init__(self) -> None:
        self.representation = ""
        self.indexes: list[int] = []


async def _track_live(
    swarm: Swarm, http: aiohttp.ClientSession, targets: Targets, peer_id: str
) -> None:
    asker = PeerProtocolClient(peer_id)
    while True:
        for base in list(swarm.urls.values())[:4]:
            chunk_map = await pull_map(http, asker, base, swarm.settings.swarm)
            for representation, bitmaps in bitmaps_from_chunk_map(chunk_map or ()).items():
                held = sorted(i for bitmap in bitmaps for i in bitmap)
                if held:
                    targets.representation, targets.indexes = representation, held[-NEWEST:]
                    break
        await asyncio.sleep(1.0)


async def _worker(
    number: int, swarm: Swarm, http: aiohttp.ClientSession, targets: Targets, peer_id: str
) -> None:
    rng = random.Random(f"flood-{peer_id}-{number}")
    for turn in range(number, number + MAX_REQUESTS):
        members = list(swarm.urls.values())
        if not members or not targets.indexes:
            await asyncio.sleep(0.2)
            continue
        base = members[turn % len(members)]
        index = rng.choice(targets.indexes)
        url = f"{base}/swarm/{swarm.settings.swarm}/chunk/{targets.representation}/{index}"
        try:
            async with http.get(url, headers={PEER_ID_HEADER: peer_id}) as answer:
                nbytes = 0
                async for piece in answer.content.iter_chunked(65536):
                    nbytes += len(piece)
                swarm.tally.add(f"answers_{answer.status}")
                swarm.tally.add("bytes_pulled", nbytes)
        except (aiohttp.ClientError, TimeoutError, OSError):
            swarm.tally.add("requests_failed")
            await asyncio.sleep(0.05)


async def run(settings: AttackSettings, tally: Tally) -> None:
    """Run one flooder until cancelled (see the module docstring)."""
    peer_id = new_peer_id("flood")
    tally.peer_ids.append(peer_id)
    async with http_session(settings.ip, limit=settings.connections) as http:
        member = FakeMember(
            ip=settings.ip, peer_id=peer_id, swarm_id=settings.swarm, chunks=Chunks.NONE,
            tally=tally,
        )  # fmt: skip
        port = await member.start()
        client = tracker_client(settings, peer_id, port, http, priority=None)
        swarm = Swarm(settings, client, tally)
        targets = Targets()
        tasks: list[asyncio.Task[None]] = []
        try:
            await swarm.join(PeerMode.LEECH)
            tasks.append(asyncio.ensure_future(swarm.refreshing(5.0)))
            if settings.content == "live":
                tasks.append(asyncio.ensure_future(_track_live(swarm, http, targets, peer_id)))
            else:
                found = await fetch_description(
                    http, list(swarm.urls.values()), settings.swarm, settings.content
                )
                if found is not None and isinstance(found[1], ContentDescription):
                    description = found[1]
                    targets.representation = description.representation().id
                    targets.indexes = list(range(description.chunk_count))
            ready(settings.kind, settings.ip, port)
            tasks += [
                asyncio.ensure_future(_worker(n, swarm, http, targets, peer_id))
                for n in range(settings.connections)
            ]
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await member.stop()
            await client.close()
