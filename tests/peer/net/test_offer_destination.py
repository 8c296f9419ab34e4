"""A transport offer is used only where its peer was reached, on real sockets (peer/net/node.py).

A download (127.0.4.40) is listed two peers holding the content: an honest seeder (127.0.2.40)
and a liar (127.0.5.50) whose TRANSPORT_NEGOTIATION answer offers HTTP at a URI on another
host (a web server on 127.0.7.70 standing for an intranet host).  The liar is treated as
offering no transport: the download completes from the seeder, the other host never hears a
request, and the ignored offer is counted in the report.  The tracker is none.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

from ppsp.http.client import HttpClient
from ppsp.http.server import HTTPServer, serve
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.node import PEER_PROTOCOL, PeerNode
from ppsp.peer.net.session import SwarmSession
from ppsp.wire.peer import HTTP, TransportOffer
from ppsp.wire.tracker import AddressFamily, PeerAddress, PeerInfo, PeerMode

SEEDER, LIAR, VICTIM, DOWNLOADER = "127.0.2.40", "127.0.5.50", "127.0.7.70", "127.0.4.40"
CHUNK = 16384


class _Liar(PeerNode):
    """A seeder whose offers send chunk requests elsewhere."""

    elsewhere = ""

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        return (TransportOffer(type=HTTP, uri=self.elsewhere),)


async def _seed(node: PeerNode, store: ChunkStore, host: str) -> HTTPServer:
    session = SwarmSession.seeding(store, now=node.clock())
    node.sessions[session.swarm_id] = session
    server = await serve(node.endpoint.router(), host, 0)  # its endpoint, no tracker
    node.port = server.addresses[0][1]
    return server


def _listed(peer_id: str, host: str, port: int) -> PeerInfo:
    address = PeerAddress(
        ip=host, port=port, family=AddressFamily.IPV4, peer_protocol=PEER_PROTOCOL
    )
    return PeerInfo(peer_id=peer_id, addresses=(address,))


async def test_an_offer_leading_to_another_host_is_ignored(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(24 * CHUNK + 7)
    (tmp_path / "source.bin").write_bytes(data)
    store = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    requests: list[bytes] = []

    async def victim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()

    web = await asyncio.start_server(victim, VICTIM, 0)
    seeder = PeerNode(tracker_url="http://127.0.0.1:9/", host=SEEDER, peer_id="5eed" * 4)
    liar = _Liar(tracker_url="http://127.0.0.1:9/", host=LIAR, peer_id="11a7" * 4)
    port = web.sockets[0].getsockname()[1]
    liar.elsewhere = f"http://{VICTIM}:{port}/admin/action?item={{chunk}}"
    servers = [await _seed(seeder, store, SEEDER), await _seed(liar, store, LIAR)]
    node = PeerNode(tracker_url="http://127.0.0.1:9/", host=DOWNLOADER)
    node._http = HttpClient(local_address=DOWNLOADER)  # what start() makes, without a tracker
    swarm_id = store.description.swarm_id
    session = SwarmSession(swarm_id=swarm_id, description=None, store=None, mode=PeerMode.LEECH)
    node.sessions[swarm_id] = session
    listed = [_listed(liar.peer_id, LIAR, liar.port), _listed(seeder.peer_id, SEEDER, seeder.port)]
    assert len(node.add_peers(session, listed)) == 2
    try:
        await asyncio.wait_for(
            node.download(swarm_id, tmp_path / "out", session=session, no_progress_timeout=10), 30
        )
    finally:
        await node.stop(disconnect=False)
        for server in servers:
            await server.close(0.1)
        web.close()
        store.close()
    assert (tmp_path / "out").read_bytes() == data
    assert requests == []  # not one request to the host the liar named
    report = session.report(node.peer_id)
    assert report["refused_offers"] == 1
    peers = report["peers"]
    assert isinstance(peers, dict) and peers[liar.peer_id]["connected"] is False
    assert report["received_from"] == {liar.peer_id: 0, seeder.peer_id: len(data)}
