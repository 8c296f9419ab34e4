"""A peer reached over PPSPP only (no offer over HTTP), in-process on loopback sockets.

Once a chunk fetched over PPSPP verified (up to its offer's root and against the
description), the transport opens channels on that root to a peer's candidate addresses,
all at once, and keeps the one that answers (``PpsppChunkTransport.connect_direct``).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ppsp.errors import ChunkTransferError
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.ppspp_transport import (
    PpsppChunkTransport,
    parse_ppspp_uri,
    ppspp_uri,
    representation_content,
)
from ppsp.peer.net.ppspp_udp import serve
from ppsp.peer.net.session import RemotePeer
from ppsp.peer.net.transport import PPSPP
from ppsp.wire.peer import TransportOffer
from ppsp.wire.tracker import PeerInfo

HOST = "127.0.0.1"
CHUNK, SUB = 16384, 4096


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


def _silent_port() -> int:
    """A loopback UDP port nobody answers on (bound, never read, while the test runs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    _held.append(sock)
    return int(sock.getsockname()[1])


_held: list[socket.socket] = []


async def test_a_peer_is_reached_at_the_candidate_that_answers(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    data = random.Random(5).randbytes(6 * CHUNK + 17)
    (tmp_path / "source.bin").write_bytes(data)
    seed = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    content = representation_content(seed, chunk_size=SUB)
    public, natted = await serve([content], HOST, 0), await serve([content], HOST, 0)
    description = seed.description
    try:
        with ChunkStore.create(description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool, local_address=HOST)
            source = RemotePeer(
                "source",
                PeerInfo(peer_id="source"),
                "http://127.0.0.1:9",
                offer=TransportOffer(
                    type=PPSPP,
                    uri=ppspp_uri(HOST, public.address[1], content.swarm_id, SUB),
                ),
            )
            behind = RemotePeer("behind", PeerInfo(peer_id="behind"), "http://127.0.0.1:9")
            silent, port = _silent_port(), natted.address[1]
            candidates = [(HOST, silent), ("0.0.0.0", 1), (HOST, port)]
            # No chunk verified yet: no root to ask the peer for.
            with pytest.raises(ChunkTransferError, match="no PPSPP root verified"):
                await transport.connect_direct(behind, candidates, root_wait=0.05)
            await transport.fetch(source, 0, _Observer())
            assert transport.verified == (content.swarm_id, SUB)
            uri = await asyncio.wait_for(transport.connect_direct(behind, candidates), 5)
            offer = parse_ppspp_uri(uri)
            assert (offer.host, offer.port) == (HOST, port)
            assert (offer.root_hash, offer.chunk_size) == (content.swarm_id, SUB)
            behind.offer = TransportOffer(type=PPSPP, uri=uri)
            for index in range(1, description.chunk_count):
                await asyncio.wait_for(transport.fetch(behind, index, _Observer()), 5)
            # The answering candidate served them, over the channel connect_direct opened.
            assert len(natted.seeder.channels) == 1
            assert natted.seeder.stats["data_sent"] >= description.chunk_count - 1
            transport.close()
    finally:
        public.close()
        natted.close()
        seed.close()
        for sock in _held:
            sock.close()
        _held.clear()
    assert (tmp_path / "out").read_bytes() == data


async def test_no_usable_candidate_is_a_transfer_error(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    (tmp_path / "source.bin").write_bytes(b"x" * 5000)
    seed = ChunkStore.seed_file(tmp_path / "source.bin", chunk_size=CHUNK)
    with ChunkStore.create(seed.description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool, local_address=HOST)
        transport.verified = (bytes(32), SUB)
        behind = RemotePeer("behind", PeerInfo(peer_id="behind"), "http://127.0.0.1:9")
        with pytest.raises(ChunkTransferError, match="no usable PPSPP address"):
            await transport.connect_direct(behind, [("0.0.0.0", 5), ("224.0.0.1", 5)])
        transport.close()
    seed.close()
