"""The PPSPP chunk transport (``peer/net/ppspp_transport.py``) on real UDP sockets, in-process.

A seeded store's representation is served by our seeder on a loopback socket (as ``ppsp seed
--ppspp-port`` does); a :class:`PpsppChunkTransport` fetches chunks of it into another store
over one channel, verified up to the representation's ``merkle_root``.  A lying seeder's chunk
raises IntegrityError, nobody on the port a transfer error, a cancelled fetch cancels the
request; a node offers PPSPP only for swarms it serves over it, and uses the transport only
when asked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppsp.errors import IntegrityError
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.ppspp_transport import (
    PpsppChunkTransport,
    parse_ppspp_uri,
    ppspp_uri,
    representation_content,
)
from ppsp.peer.net.ppspp_udp import PpsppSeederServer, serve
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.net.transport import PPSPP, TRANSFER_ERRORS, choose_offer
from ppsp.peer.ppspp.client import ClientConfig
from ppsp.wire.peer import HTTP, TransportOffer
from ppsp.wire.tracker import PeerInfo, PeerMode

CHUNK = 16384
HOST = "127.0.0.1"


@dataclass
class Served:
    data: bytes
    seed: ChunkStore
    server: PpsppSeederServer


class _Observer:
    def __init__(self) -> None:
        self.counts: list[int] = []
        self.delivered_bytes: int | None = None

    def received(self, nbytes: int) -> None:
        self.counts.append(nbytes)

    def delivered(self, nbytes: int) -> bool:
        self.delivered_bytes = nbytes
        return True


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown()


async def _serve(tmp_path: Path, *, corrupt: bool = False, size: int = 10 * CHUNK + 99) -> Served:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    seed = ChunkStore.seed_file(path, chunk_size=CHUNK)
    server = await serve([representation_content(seed, corrupt=corrupt)], HOST, 0)
    return Served(data, seed, server)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    result = await _serve(tmp_path)
    yield result
    result.server.close()
    result.seed.close()


def _remote(port: int) -> RemotePeer:
    return RemotePeer(
        peer_id="seeder",
        info=PeerInfo(peer_id="seeder"),
        base_url="http://127.0.0.1:9",
        offer=TransportOffer(type=PPSPP, uri=ppspp_uri(HOST, port)),
    )


def test_uris() -> None:
    assert ppspp_uri("::1", 7000) == "ppspp://[::1]:7000"
    assert parse_ppspp_uri("ppspp://[::1]:7000") == ("::1", 7000)
    assert parse_ppspp_uri("PPSPP://10.0.0.1:1/") == ("10.0.0.1", 1)
    for bad in ("http://h:1", "ppspp://h", "ppspp://h:0", "ppspp://h:1/x", "ppspp://u@h:1"):
        with pytest.raises(ValueError):
            parse_ppspp_uri(bad)


async def test_chunks_come_verified_into_the_store(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    description = served.seed.description
    assert served.server.seeder.channels == ()
    with ChunkStore.create(description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool, local_address=HOST)
        remote = _remote(served.server.address[1])
        count = description.chunk_count
        order = random.Random(1).sample(range(count), count)
        observers = [_Observer() for _ in order]
        sizes = await asyncio.gather(
            *(transport.fetch(remote, i, o) for i, o in zip(order, observers, strict=True))
        )
        assert sum(sizes) == len(served.data)
        assert all(o.delivered_bytes == o.counts[-1] for o in observers)
        assert len(served.server.seeder.channels) == 1  # one channel, kept for the session
        transport.close()
        await asyncio.sleep(0.05)  # the closing handshake reaches the seeder
        assert served.server.seeder.channels == ()
    assert (tmp_path / "out").read_bytes() == served.data


async def test_a_lying_seeder_raises_integrity_error(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    liar = await _serve(tmp_path, corrupt=True)
    try:
        with ChunkStore.create(liar.seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool)
            with pytest.raises(IntegrityError, match="does not verify"):
                await transport.fetch(_remote(liar.server.address[1]), 3, _Observer())
            transport.close()
    finally:
        liar.server.close()
        liar.seed.close()


async def test_nobody_on_the_port_is_a_transfer_error(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    port = served.server.address[1]
    served.server.close()  # the port is free: an ICMP port unreachable answers
    await asyncio.sleep(0.01)
    config = ClientConfig(connect_timeout=2.0)
    with ChunkStore.create(served.seed.description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool, config=config)
        with pytest.raises(TRANSFER_ERRORS):
            await asyncio.wait_for(transport.fetch(_remote(port), 0, _Observer()), 5)
        transport.close()


async def test_cancelling_a_fetch_cancels_the_request(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    seeder = served.server.seeder
    with ChunkStore.create(served.seed.description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool)
        remote = _remote(served.server.address[1])
        await transport.fetch(remote, 0, _Observer())  # the channel is open
        served.server._transport.pause_reading()  # type: ignore[union-attr]  # seeder deaf
        fetch = asyncio.ensure_future(transport.fetch(remote, 5, _Observer()))
        await asyncio.sleep(0.05)
        fetch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetch
        served.server._transport.resume_reading()  # type: ignore[union-attr]
        await asyncio.sleep(0.1)
        # The seeder read the REQUEST before the CANCEL and sent the chunk: the channel
        # acknowledged it (it verified) and dropped it; nothing reached the store.
        (channel,) = seeder.channels
        assert not channel.requests and not channel.flight
        client = transport._channels["seeder"].result().client
        assert client.stats["unwanted_data"] == seeder.stats["data_sent"] - 1
        assert client.wanted == frozenset()
        offset, length = served.seed.description.chunk_range(5)
        assert (tmp_path / "out").read_bytes()[offset : offset + length] == bytes(length)
        transport.close()


async def test_a_node_offers_ppspp_only_where_it_serves_it(served: Served) -> None:
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    swarm_id = served.seed.description.swarm_id
    assert [offer.type for offer in node.transports(swarm_id)] == [HTTP]
    node.offer_ppspp(swarm_id, 7000)
    offers = node.transports(swarm_id)
    assert [offer.type for offer in offers] == [HTTP, PPSPP]
    assert offers[1].uri == "ppspp://127.0.0.1:7000"
    assert [offer.type for offer in node.transports("another")] == [HTTP]
    # A download asks for what its preference names, in order.
    assert choose_offer(offers, (PPSPP, HTTP)) == offers[1]
    assert choose_offer(offers) == offers[0]


async def test_a_node_uses_ppspp_only_when_asked(tmp_path: Path, served: Served) -> None:
    description = served.seed.description
    for preference, kinds in (((HTTP,), {HTTP}), ((PPSPP, HTTP), {HTTP, PPSPP})):
        node = PeerNode(tracker_url="http://127.0.0.1:9/", transport_preference=preference)
        node._http = object()  # type: ignore[assignment]  # what start() makes
        with ChunkStore.create(description, tmp_path / "out") as store:
            session = SwarmSession(
                swarm_id=description.swarm_id,
                description=description,
                store=store,
                mode=PeerMode.LEECH,
            )
            transports = node.chunk_transports(session)
            assert set(transports) == kinds
            for transport in transports.values():
                transport.close()
        node._store_pool.shutdown()


async def test_one_socket_serves_the_libswift_content_and_the_representation(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    # What `ppsp seed --ppspp-port` runs: the whole file for libswift (SHA-1, 1 KiB chunks) and
    # the swarm's representation (SHA-256, the description's chunks) on one port.
    from ppsp.peer.net.ppspp_get import ppspp_download
    from ppsp.peer.net.ppspp_udp import seed_file

    data = random.Random(3).randbytes(5 * CHUNK + 1)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    seed = ChunkStore.seed_file(path, chunk_size=CHUNK)
    seeding = await seed_file(path, HOST, 0, contents=[representation_content(seed)])
    try:
        port = seeding.address[1]
        got = await ppspp_download(seeding.root_hash, (HOST, port), tmp_path / "libswift.bin")
        assert got.path.read_bytes() == data
        with ChunkStore.create(seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool)
            for index in range(seed.description.chunk_count):
                await transport.fetch(_remote(port), index, _Observer())
            transport.close()
        assert (tmp_path / "out").read_bytes() == data
    finally:
        seeding.close()
        seed.close()
