"""Corrupt: a member that claims every chunk and serves damaged ones.

It fetches the swarm's real description from a member (the source), so that its map and
chunk lengths are right: stored content, it claims every chunk (joined as a SEED of the highest
priority) and answers each chunk request with random bytes of the chunk's length; live, it
claims the largest map the members hold (PULLed every second, PUSHed to them) and answers each
chunk request with an envelope carrying a random signature.
"""

from __future__ import annotations

import asyncio

from ppsp.errors import PPSPError
from ppsp.lab.attack.common import (
    AttackSettings,
    Swarm,
    Tally,
    fetch_description,
    http_session,
    mirror_maps,
    new_peer_id,
    ready,
    tracker_client,
)
from ppsp.lab.attack.member import Chunks, FakeMember
from ppsp.peer.content.description import ContentDescription
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import chunk_map_from_bitmaps

DESCRIPTION_TRIES = 20
"""Rounds of asking the members for the description (0.5 s apart) before giving up."""


async def run(settings: AttackSettings, tally: Tally) -> None:
    """Run one corrupt member until cancelled (see the module docstring)."""
    peer_id = new_peer_id("corrupt")
    tally.peer_ids.append(peer_id)
    async with http_session(settings.ip) as http:
        member = FakeMember(
            ip=settings.ip, peer_id=peer_id, swarm_id=settings.swarm, chunks=Chunks.CORRUPT,
            tally=tally,
        )  # fmt: skip
        port = await member.start()
        client = tracker_client(settings, peer_id, port, http)
        swarm = Swarm(settings, client, tally)
        tasks: list[asyncio.Task[None]] = []
        try:
            await swarm.join()
            for _ in range(DESCRIPTION_TRIES):
                found = await fetch_description(
                    http, list(swarm.urls.values()), settings.swarm, settings.content
                )
                if found is not None:
                    member.description, member.parsed = found
                    break
                await asyncio.sleep(0.5)
                await swarm.refresh()
            else:
                raise PPSPError("no member served the swarm's description")
            parsed = member.parsed
            if isinstance(parsed, ContentDescription):
                full = ChunkBitmap.full(parsed.chunk_count)
                member.state.claimed = chunk_map_from_bitmaps({parsed.representation().id: [full]})
            else:
                tasks.append(asyncio.ensure_future(mirror_maps(swarm, member, http)))
            tasks.append(asyncio.ensure_future(swarm.refreshing(5.0)))
            ready(settings.kind, settings.ip, port)
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            await member.stop()
            await client.close()
