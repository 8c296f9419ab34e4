"""Forged PUSH: empty chunk maps in the members' names, and PUSHes under made-up PeerIDs.

The forger joins the swarm as a LEECH (its endpoint holds nothing) and learns the members from
the tracker (its JOIN's list, then a FIND every 2 s).  Then, at ``--rate`` messages a second in
all (sent in tenths of a second), it sends every member in turn a CHUNK_AVAILABILITY PUSH with
an empty map in another member's PeerID (the seeders' and peers' own), and as many PUSHes
under PeerIDs nobody has, each new.  Answers are counted by HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import aiohttp

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.lab.attack.common import (
    AttackSettings,
    Swarm,
    Tally,
    http_session,
    new_peer_id,
    ready,
    tracker_client,
)
from ppsp.lab.attack.member import Chunks, FakeMember
from ppsp.peer.protocol.handler import PeerProtocolClient
from ppsp.wire.tracker import PeerMode

TICK_S = 0.1
"""The forger sends a tenth of a second's messages at once."""
MAX_TICKS = 100_000
"""Bound on the forger's rounds (the lifetime bounds it in time)."""


async def _push(
    http: aiohttp.ClientSession,
    client: PeerProtocolClient,
    base: str,
    swarm_id: str,
    kind: str,
    tally: Tally,
) -> None:
    data = client.send(client.push_chunk_map(swarm_id, ()), time.monotonic())
    try:
        async with http.post(
            f"{base}/", data=data, headers={"Content-Type": PEER_CONTENT_TYPE}
        ) as answer:
            await answer.read()
            tally.add(f"{kind}_{answer.status}")
    except (aiohttp.ClientError, TimeoutError, OSError):
        tally.add(f"{kind}_unanswered")


async def forge(swarm: Swarm, http: aiohttp.ClientSession, tally: Tally) -> None:
    """Send forged and stranger PUSHes at the settings' rate until cancelled."""
    settings = swarm.settings
    per_tick = max(1, round(settings.rate * TICK_S))
    strangers = itertools.count()
    rounds = itertools.count()
    for _ in range(MAX_TICKS):
        began = time.monotonic()
        members = list(swarm.urls.items())
        sends = []
        if len(members) >= 1:
            turn = next(rounds)
            for i in range(per_tick):
                target_id, base = members[(turn * per_tick + i) % len(members)]
                if i % 2 == 0 and len(members) >= 2:
                    # In the name of another member (never the target's own).
                    others = [peer for peer, _ in members if peer != target_id]
                    name, kind = others[(turn + i) % len(others)], "forged"
                else:
                    name, kind = f"stranger-{next(strangers)}-{settings.ip}", "unknown"
                client = PeerProtocolClient(name)
                sends.append(_push(http, client, base, settings.swarm, kind, tally))
        if sends:
            await asyncio.gather(*sends)
        await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - began)))


async def run(settings: AttackSettings, tally: Tally) -> None:
    """Run one forger until cancelled (see the module docstring)."""
    peer_id = new_peer_id("forger")
    tally.peer_ids.append(peer_id)
    async with http_session(settings.ip) as http:
        member = FakeMember(
            ip=settings.ip, peer_id=peer_id, swarm_id=settings.swarm, chunks=Chunks.NONE,
            tally=tally,
        )  # fmt: skip
        port = await member.start()
        client = tracker_client(settings, peer_id, port, http, priority=None)
        swarm = Swarm(settings, client, tally)
        tasks: list[asyncio.Task[None]] = []
        try:
            await swarm.join(PeerMode.LEECH)
            tasks.append(asyncio.ensure_future(swarm.refreshing(2.0)))
            tasks.append(asyncio.ensure_future(forge(swarm, http, tally)))
            ready(settings.kind, settings.ip, port)
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await member.stop()
            await client.close()
