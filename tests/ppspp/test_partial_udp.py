"""A downloading peer serves what it holds over PPSPP, on its one UDP socket, in-process.

Peer A downloads description chunks from a seeder over PPSPP (a :class:`PpsppChunkTransport`
on A's :class:`PpsppClientSocket`) and serves them on that same socket (:class:`PartialServer`)
to peer B's transport, which verifies them up to the root and against the description.  A's
chunks newly stored are announced (HAVE) to B, whose chunk map of A, were A reached over UDP
only, is what those HAVEs name.  The subtree hashes travel over the peer's
HTTP route, checked against the root; forged ones are refused.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ppsp.errors import HttpClientError, IntegrityError
from ppsp.http.client import HttpClient
from ppsp.http.server import serve as serve_http
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.ppspp_serving import PartialServer, fetch_subtrees
from ppsp.peer.net.ppspp_transport import (
    PpsppChunkTransport,
    PpsppClientSocket,
    StoreChunks,
    ppspp_uri,
    representation_content,
)
from ppsp.peer.net.ppspp_udp import serve
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.net.transport import PPSPP
from ppsp.peer.net.udp_reach import UdpReach
from ppsp.peer.ppspp.partial import (
    PartialContent,
    SubtreeHashes,
    encode_subtrees,
    subtree_hashes_of_tree,
    subtree_level,
)
from ppsp.wire.peer import TransportOffer, bitmaps_from_chunk_map
from ppsp.wire.tracker import PeerInfo

CHUNK = 16384
SUB = 4096  # 4 PPSPP chunks per description chunk: level 2
HOST = "127.0.0.1"


class _Observer:
    def received(self, nbytes: int) -> None:
        pass

    def delivered(self, nbytes: int) -> bool:
        return True


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown()


def _remote(name: str, port: int, root: bytes) -> RemotePeer:
    return RemotePeer(
        peer_id=name,
        info=PeerInfo(peer_id=name),
        base_url="http://127.0.0.1:9",
        offer=TransportOffer(type=PPSPP, uri=ppspp_uri(HOST, port, root, SUB)),
    )


async def test_a_leecher_serves_what_it_holds_on_its_one_socket(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    size = 10 * CHUNK + 99
    data = random.Random(3).randbytes(size)
    (tmp_path / "source.bin").write_bytes(data)
    seed = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    content = representation_content(seed, chunk_size=SUB)
    seeder = await serve([content], HOST, 0)
    description = seed.description
    level = subtree_level(CHUNK, SUB)
    assert level == 2
    store_a = ChunkStore.create(description, tmp_path / "a")
    store_b = ChunkStore.create(description, tmp_path / "b")
    socket_a = PpsppClientSocket(HOST)
    transport_a = PpsppChunkTransport(store=store_a, store_pool=pool, endpoint=socket_a)
    transport_b = PpsppChunkTransport(store=store_b, store_pool=pool, local_address=HOST)
    server = PartialServer(socket_a)
    held: set[int] = set()
    subtrees = SubtreeHashes(
        content.swarm_id,
        chunk_count=content.chunk_count,
        level=level,
        hashes=subtree_hashes_of_tree(content.tree, level),
    )
    partial = PartialContent(
        subtrees,
        size=size,
        chunk_size=SUB,
        reader=StoreChunks(store_a, SUB),
        holds=held.__contains__,
    )
    server.add(partial)
    try:
        from_seeder = _remote("seeder", seeder.address[1], content.swarm_id)
        for index in (2, 7, 10):  # 10: the short last one
            await transport_a.fetch(from_seeder, index, _Observer())
            held.add(index)
        sent_by_seeder = seeder.seeder.stats["data_sent"]
        from_a = _remote("a", socket_a.address[1], content.swarm_id)
        for index in (7, 10, 2):
            await transport_b.fetch(from_a, index, _Observer())
        for index in (2, 7, 10):
            offset, length = description.chunk_range(index)
            assert (tmp_path / "b").read_bytes()[offset : offset + length] == data[
                offset : offset + length
            ]
        assert seeder.seeder.stats["data_sent"] == sent_by_seeder  # all of B's came from A
        assert server.seeder.stats["data_sent"] == 4 + 4 + 1  # PPSPP chunks of 2, 7, 10 (99 bytes)
        assert socket_a.unrouted == 0
        # A goes on fetching from the seeder on the same socket; the chunk newly held is
        # announced to B's open channel.
        await transport_a.fetch(from_seeder, 4, _Observer())
        held.add(4)
        server.announce(partial, 4)
        await asyncio.sleep(0.05)
        (channel,) = [task.result() for task in transport_b._channels.values()]
        assert all(channel.client.peer_has(i) for i in range(16, 20))
        assert not channel.client.peer_has(20)
        assert server.seeder.stats["haves_announced"] == 1
        # Were A reached over UDP only, B's chunk map of it would be what its HAVEs name.
        reach = UdpReach()
        reach.add_transport(description.swarm_id, transport_b)
        session = SwarmSession.seeding(seed, now=0.0)
        (bitmap,) = bitmaps_from_chunk_map(reach.chunk_map(session, from_a))["main"]
        assert set(bitmap) == {2, 4, 7, 10}
    finally:
        transport_b.close()
        transport_a.close()
        server.close()
        socket_a.close()
        seeder.close()
        for store in (store_a, store_b, seed):
            store.close()


async def test_the_subtrees_route_and_forgeries(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(6 * CHUNK + 7)
    (tmp_path / "source.bin").write_bytes(data)
    seed = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    content = representation_content(seed, chunk_size=SUB)
    seed.close()
    wire = encode_subtrees(subtree_hashes_of_tree(content.tree, 2))
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    node.endpoint.offer_subtrees("swarm", content.swarm_id, wire)
    forged_root = bytes(32)
    node.endpoint.offer_subtrees("swarm", forged_root, wire)  # not this root's hashes
    server = await serve_http(node.endpoint.router(), HOST, 0)
    base = f"http://{HOST}:{server.addresses[0][1]}"
    http = HttpClient()
    count = content.chunk_count
    try:
        got = await fetch_subtrees(
            http, base, "swarm", content.swarm_id, chunk_count=count, level=2
        )
        assert encode_subtrees(got.hashes()) == wire
        with pytest.raises(IntegrityError):
            await fetch_subtrees(http, base, "swarm", forged_root, chunk_count=count, level=2)
        with pytest.raises(HttpClientError):  # larger than the content's subtree hashes
            await fetch_subtrees(
                http, base, "swarm", content.swarm_id, chunk_count=count // 4, level=2
            )
        with pytest.raises(HttpClientError):  # another swarm: 404
            await fetch_subtrees(http, base, "other", content.swarm_id, chunk_count=count, level=2)
    finally:
        await http.close()
        await server.close()
