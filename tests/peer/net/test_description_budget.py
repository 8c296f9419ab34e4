"""The bytes of descriptions a download holds, every peer asked together, on real sockets.

A download (127.0.4.41) looks for a swarm's description among the peers it knows, asked at
once: two liars (127.0.5.61, 127.0.5.62) that announce a large description, send most of it
quickly and then nothing; then an honest seeder (127.0.2.41) too.  The session's budget for
description bytes (shrunk to 1 MiB here; ``DESCRIPTION_BYTES_IN_FLIGHT`` in use) holds them
all: what one liar sent past it is dropped at once, every byte taken is given back, and the
honest description is found.  The tracker is none.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from ppsp.http.client import HttpClient
from ppsp.http.server import serve
from ppsp.peer.download.describing import ByteBudget
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.download import obtain_description
from ppsp.peer.net.node import PEER_PROTOCOL, PeerNode
from ppsp.peer.net.session import DownloadFailed, SwarmSession
from ppsp.wire.tracker import AddressFamily, PeerAddress, PeerInfo, PeerMode

LIARS, SEEDER, DOWNLOADER = ("127.0.5.61", "127.0.5.62"), "127.0.2.41", "127.0.4.41"
BUDGET = 1 << 20
SENT = 600 << 10  # of a description said to be 900 KiB


def _listed(peer_id: str, host: str, port: int) -> PeerInfo:
    address = PeerAddress(
        ip=host, port=port, family=AddressFamily.IPV4, peer_protocol=PEER_PROTOCOL
    )
    return PeerInfo(peer_id=peer_id, addresses=(address,))


async def test_descriptions_in_flight_stay_within_the_budget(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (900 << 10))
        writer.write(b"{" * SENT)
        await stop.wait()  # then nothing
        writer.close()

    liars = [await asyncio.start_server(liar, host, 0) for host in LIARS]
    (tmp_path / "source.bin").write_bytes(random.Random(7).randbytes(100_000))
    store = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=16384)
    seeder = PeerNode(tracker_url="http://127.0.0.1:9/", host=SEEDER)
    seeded = SwarmSession.seeding(store, now=seeder.clock())
    seeder.sessions[seeded.swarm_id] = seeded
    server = await serve(seeder.endpoint.router(), SEEDER, 0)
    node = PeerNode(tracker_url="http://127.0.0.1:9/", host=DOWNLOADER)
    node._http = HttpClient(local_address=DOWNLOADER)  # what start() makes, without a tracker
    session = SwarmSession(
        swarm_id=seeded.swarm_id, description=None, store=None, mode=PeerMode.LEECH
    )
    session.description_bytes = budget = ByteBudget(BUDGET)
    node.sessions[session.swarm_id] = session
    listed = [
        _listed(f"11a{n}" * 4, host, liar.sockets[0].getsockname()[1])
        for n, (host, liar) in enumerate(zip(LIARS, liars, strict=True))
    ]
    honest = _listed("5eed" * 4, SEEDER, server.addresses[0][1])
    try:
        # The liars alone: one is held whole, the other's bytes past the budget dropped.
        assert len(node.add_peers(session, listed)) == 2
        with pytest.raises(DownloadFailed):
            await asyncio.wait_for(obtain_description(node, session, 1.0), 30)
        assert SENT <= budget.peak <= BUDGET
        assert budget.held == 0  # every byte given back once its request ended
        # With the honest seeder listed too, its description is found.
        assert len(node.add_peers(session, [honest])) == 1
        found = await asyncio.wait_for(obtain_description(node, session, 20.0), 30)
    finally:
        stop.set()
        await node.stop(disconnect=False)
        await server.close(0.1)
        for liar_server in liars:
            liar_server.close()
        store.close()
    assert found == store.description
    assert budget.peak <= BUDGET and budget.held == 0
