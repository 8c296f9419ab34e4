"""Tarpit: a SEED of the highest priority that accepts connections and never answers.

Stored content: a plain TCP listener that reads whatever is sent and never writes a byte
(neither the peer protocol nor chunks).  Live: a relay that answers the peer protocol, claims
the largest chunk map the members hold (PULLed every second, PUSHed to them) and holds every
chunk request without a byte.
"""

from __future__ import annotations

import asyncio
import contextlib

from ppsp.lab.attack.common import (
    AttackSettings,
    Swarm,
    Tally,
    http_session,
    mirror_maps,
    new_peer_id,
    ready,
    tracker_client,
)
from ppsp.lab.attack.member import Chunks, FakeMember


class SilentServer:
    """A TCP listener on one address that reads everything and never answers."""

    def __init__(self, ip: str, tally: Tally) -> None:
        self.ip = ip
        self.tally = tally
        self.port = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        """Listen on any port of ``ip``; returns it."""
        self._server = await asyncio.start_server(self._hold, self.ip, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tally.add("connections_held")
        self._held.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):  # read what is sent, never answer
                pass

    async def stop(self) -> None:
        """Close every held connection and the listener."""
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)


async def run(settings: AttackSettings, tally: Tally) -> None:
    """Run one tarpit until cancelled (see the module docstring)."""
    peer_id = new_peer_id("tarpit")
    tally.peer_ids.append(peer_id)
    async with http_session(settings.ip) as http:
        if settings.content == "live":
            member = FakeMember(
                ip=settings.ip, peer_id=peer_id, swarm_id=settings.swarm, chunks=Chunks.HANG,
                tally=tally,
            )  # fmt: skip
            port = await member.start()
            stop = member.stop
        else:
            server = SilentServer(settings.ip, tally)
            port = await server.start()
            stop = server.stop
        client = tracker_client(settings, peer_id, port, http)
        swarm = Swarm(settings, client, tally)
        tasks: list[asyncio.Task[None]] = []
        try:
            await swarm.join()
            if settings.content == "live":
                tasks.append(asyncio.ensure_future(mirror_maps(swarm, member, http)))
            tasks.append(asyncio.ensure_future(swarm.refreshing(5.0)))
            ready(settings.kind, settings.ip, port)
            await asyncio.Event().wait()  # until cancelled (lifetime, or a stop signal)
        finally:
            for task in tasks:
                task.cancel()
            await stop()
            await client.close()
