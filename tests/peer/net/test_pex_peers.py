"""Addresses learned by PEX become peers a download tries, in-process on loopback sockets.

A download is listed one peer, A (its peer protocol over HTTP, its representation over PPSPP,
under an upload cap); A's PPSPP engine knows a peer B (B's socket opened a channel to it), and
names B when the download's channel asks it for peers (PEX_REQ).  The download tries B at that
address over PPSPP alone, under a name of its own, and fetches chunks from it once B answered
its handshake on the swarm's ID.  An address where nobody answers costs one failed try: the
download completes from A, nobody banned.  The tracker is none (a port nobody listens on).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppsp.core.ratelimit import TokenBucket
from ppsp.http.client import HttpClient
from ppsp.http.server import HTTPServer
from ppsp.http.server import serve as serve_http
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.node import PEER_PROTOCOL, PeerNode
from ppsp.peer.net.ppspp_transport import representation_content
from ppsp.peer.net.ppspp_udp import PpsppSeederServer, serve
from ppsp.peer.net.session import SwarmSession
from ppsp.peer.net.transport import PPSPP
from ppsp.peer.ppspp import SeededContent
from ppsp.peer.ppspp.client import ChannelClient
from ppsp.peer.protocol.addressing import ppspp_addresses
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.peer import HTTP
from ppsp.wire.tracker import AddressFamily, PeerAddress, PeerInfo, PeerMode

CHUNK, SUB = 16384, 4096
A_HOST, B_HOST = "127.0.0.2", "127.0.0.3"
A_ID = "a0a0a0a0a0a0a0a0"


@dataclass
class Swarm:
    data: bytes
    seed: ChunkStore
    content: SeededContent
    a_node: PeerNode
    a_http: HTTPServer
    a_udp: PpsppSeederServer
    b_udp: PpsppSeederServer


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    data = random.Random(17).randbytes(32 * CHUNK + 5)
    (tmp_path / "source.bin").write_bytes(data)
    seed = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    content = representation_content(seed, chunk_size=SUB)
    loop = asyncio.get_running_loop()
    # A under an upload cap (about 1.3 s for the content), so that B has its share to give.
    pacer = UploadPacer(TokenBucket(400_000.0, burst=16_000.0, now=loop.time()))
    a_udp = await serve([content], A_HOST, 0, pacer=pacer)
    b_udp = await serve([content], B_HOST, 0)
    a_node = PeerNode(tracker_url="http://127.0.0.1:9/", host=A_HOST, peer_id=A_ID)
    session = SwarmSession.seeding(seed, now=a_node.clock())
    a_node.sessions[session.swarm_id] = session
    a_node.offer_ppspp(session.swarm_id, a_udp.address[1], content.swarm_id, SUB)
    a_http = await serve_http(a_node.endpoint.router(), A_HOST, 0)  # A's endpoint, no tracker
    a_node.port = a_http.addresses[0][1]
    await _hello(b_udp, a_udp.address, content)
    yield Swarm(data, seed, content, a_node, a_http, a_udp, b_udp)
    await a_http.close(0.1)
    a_udp.close()
    b_udp.close()
    seed.close()


async def _hello(server: PpsppSeederServer, to: tuple[str, int], content: SeededContent) -> None:
    """Open a channel from ``server``'s socket to the seeder at ``to``, as a peer fetching from
    it would: that seeder's engine names ``server``'s address in its PEX answers from then on."""
    loop = asyncio.get_running_loop()
    client = ChannelClient(content.swarm_id, size=content.size, chunk_size=SUB, now=loop.time())

    def heard(data: bytes, source: tuple[str, int]) -> bool:
        if source[:2] != to:
            return False
        client.datagram_received(data, loop.time())
        if client.answered:
            client.request_peers(loop.time())  # a datagram on its channel: established
        for out in client.datagrams_to_send():
            server.sendto(out, to)
        return True

    server.intercept = heard
    for out in client.datagrams_to_send():  # the handshake
        server.sendto(out, to)
    for _ in range(200):
        if client.stats["pex_req_sent"]:
            break
        await asyncio.sleep(0.01)
    server.intercept = None  # B's own engine serves from now on
    assert client.stats["pex_req_sent"] == 1


async def _download(swarm: Swarm, tmp_path: Path) -> dict[str, object]:
    """Download the swarm listed A only; the session's report."""
    node = PeerNode(tracker_url="http://127.0.0.1:9/", transport_preference=(PPSPP, HTTP))
    node._http = HttpClient()  # what start() makes, without a tracker
    description = swarm.seed.description
    session = SwarmSession(
        swarm_id=description.swarm_id,
        description=None,
        store=None,
        mode=PeerMode.LEECH,
    )
    http_port = swarm.a_http.addresses[0][1]
    info = PeerInfo(
        peer_id=A_ID,
        addresses=(
            PeerAddress(
                ip=A_HOST, port=http_port, family=AddressFamily.IPV4, peer_protocol=PEER_PROTOCOL
            ),
            *ppspp_addresses(A_HOST, swarm.a_udp.address[1]),
        ),
    )
    assert session.add_remote(info, f"http://{A_HOST}:{http_port}") is not None
    node.sessions[session.swarm_id] = session
    try:
        await asyncio.wait_for(
            node.download(
                description.swarm_id, tmp_path / "out", session=session, no_progress_timeout=10
            ),
            30,
        )
    finally:
        await node.stop(disconnect=False)
    assert (tmp_path / "out").read_bytes() == swarm.data
    return session.report(node.peer_id)


async def test_a_peer_named_by_pex_gives_chunks_too(swarm: Swarm, tmp_path: Path) -> None:
    report = await _download(swarm, tmp_path)
    b = f"pex:{B_HOST}:{swarm.b_udp.address[1]}"
    received = report["received_from"]
    assert isinstance(received, dict)
    assert received[b] > 0 and received[A_ID] > 0
    assert swarm.b_udp.seeder.stats["data_sent"] > 0
    # Never a listed peer in the report: counted apart.
    peers = report["peers"]
    assert isinstance(peers, dict) and set(peers) == {A_ID}
    assert (report["pex_candidates"], report["pex_connected"]) == (1, 1)


async def test_an_address_where_nobody_answers_costs_one_failed_try(
    swarm: Swarm, tmp_path: Path
) -> None:
    swarm.b_udp.close()  # A names B's address all the same: it heard from it a moment ago
    report = await _download(swarm, tmp_path)
    assert (report["pex_candidates"], report["pex_connected"]) == (1, 0)
    received = report["received_from"]
    assert isinstance(received, dict) and received[A_ID] == len(swarm.data)
    assert sum(received.values()) == len(swarm.data)
    peers = report["peers"]
    assert isinstance(peers, dict)
    assert peers[A_ID]["banned"] is False and peers[A_ID]["failures"] == 0
    assert report["banned_hosts"] == []
