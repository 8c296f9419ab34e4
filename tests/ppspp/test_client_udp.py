"""The PPSPP chunk transport (``peer/net/ppspp_transport.py``) on real UDP sockets, in-process.

A seeded store's representation is served by our seeder on a loopback socket as an RFC 7574
content of small chunks (as ``ppsp seed --ppspp-port`` does); a :class:`PpsppChunkTransport`
fetches description chunks of it into another store over one channel, each assembled from the
PPSPP chunks covering it, verified up to the offered root and then against the description.
All the channels of a transport share one UDP socket (one address seen by every seeder).
A seeder whose PPSPP chunks do not verify, or verify against its own root but differ from the
description, raises IntegrityError; nobody on the port is a transfer error (the handshake's
timeout: an unconnected socket hears no ICMP), a cancelled fetch
cancels its requests; a node offers PPSPP only for swarms it serves over it, and uses the
transport only when asked.
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
    PpsppOffer,
    parse_ppspp_uri,
    ppspp_uri,
    representation_content,
)
from ppsp.peer.net.ppspp_udp import PpsppSeederServer, serve
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.net.transport import PPSPP, TRANSFER_ERRORS, choose_offer
from ppsp.peer.ppspp import SeededContent
from ppsp.peer.ppspp.client import ClientConfig
from ppsp.peer.ppspp.content import BytesChunks
from ppsp.wire.peer import HTTP, TransportOffer
from ppsp.wire.tracker import PeerInfo, PeerMode

CHUNK = 16384
SUB = 4096
HOST = "127.0.0.1"


@dataclass
class Served:
    data: bytes
    seed: ChunkStore
    server: PpsppSeederServer
    content: SeededContent

    @property
    def port(self) -> int:
        return self.server.address[1]


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


async def _serve(
    tmp_path: Path,
    *,
    corrupt: bool = False,
    size: int = 10 * CHUNK + 99,
    chunk: int = CHUNK,
    sub: int | None = SUB,
) -> Served:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    seed = ChunkStore.seed_file(path, chunk_size=chunk)
    content = representation_content(seed, chunk_size=sub, corrupt=corrupt)
    server = await serve([content], HOST, 0)
    return Served(data, seed, server, content)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    result = await _serve(tmp_path)
    yield result
    result.server.close()
    result.seed.close()


def _remote(port: int, content: SeededContent) -> RemotePeer:
    return RemotePeer(
        peer_id="seeder",
        info=PeerInfo(peer_id="seeder"),
        base_url="http://127.0.0.1:9",
        offer=TransportOffer(
            type=PPSPP, uri=ppspp_uri(HOST, port, content.swarm_id, content.chunk_size)
        ),
    )


def test_uris() -> None:
    root = bytes(range(32))
    uri = ppspp_uri("::1", 7000, root, 8192)
    assert uri == f"ppspp://[::1]:7000/{root.hex()}?chunk=8192"
    assert parse_ppspp_uri(uri) == PpsppOffer("::1", 7000, root, 8192)
    assert parse_ppspp_uri(f"PPSPP://10.0.0.1:1/{root.hex().upper()}?chunk=1") == PpsppOffer(
        "10.0.0.1", 1, root, 1
    )
    path = f"/{root.hex()}"
    for bad in (
        "http://h:1" + path + "?chunk=1",
        "ppspp://h" + path + "?chunk=1",
        "ppspp://h:0" + path + "?chunk=1",
        "ppspp://u@h:1" + path + "?chunk=1",
        "ppspp://h:1",  # no content named
        "ppspp://h:1" + path,
        "ppspp://h:1" + path[:-2] + "?chunk=1",  # not a SHA-256 root
        "ppspp://h:1/" + "zz" * 32 + "?chunk=1",
        "ppspp://h:1" + path + "?chunk=0",
        "ppspp://h:1" + path + "?chunk=65536",  # does not fit a datagram
        "ppspp://h:1" + path + "?chunk=1&x=2",
        "ppspp://h:1" + path + "?chunk=1#f",
    ):
        with pytest.raises(ValueError):
            parse_ppspp_uri(bad)


@pytest.mark.parametrize(
    ("chunk", "sub"),
    # Chunks not a multiple of the PPSPP chunk size; description chunks of the default PPSPP
    # chunk size (None), which are served as they are.
    [(CHUNK, SUB), (10000, 4096), (8192, None)],
)
async def test_chunks_come_verified_into_the_store(
    tmp_path: Path, pool: ThreadPoolExecutor, chunk: int, sub: int | None
) -> None:
    served = await _serve(tmp_path, chunk=chunk, sub=sub)
    description = served.seed.description
    if sub is None:
        assert served.content.swarm_id == description.merkle_root
    assert served.server.seeder.channels == ()
    with ChunkStore.create(description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool, local_address=HOST)
        remote = _remote(served.port, served.content)
        count = description.chunk_count
        order = random.Random(1).sample(range(count), count)
        observers = [_Observer() for _ in order]
        # All at once: with 10000-byte chunks, neighbours share a PPSPP chunk.
        sizes = await asyncio.gather(
            *(transport.fetch(remote, i, o) for i, o in zip(order, observers, strict=True))
        )
        assert sum(sizes) == len(served.data)
        assert all(o.delivered_bytes == sum(o.counts) for o in observers)
        assert len(served.server.seeder.channels) == 1  # one channel, kept for the session
        transport.close()
        await asyncio.sleep(0.05)  # the closing handshake reaches the seeder
        assert served.server.seeder.channels == ()
    served.server.close()
    served.seed.close()
    assert (tmp_path / "out").read_bytes() == served.data


async def test_ppspp_chunks_that_do_not_verify_raise_integrity_error(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    # The offered root is that of the true bytes; the seeder sends others.
    honest = await _serve(tmp_path)
    honest.server.close()
    content = honest.content
    damaged = bytes(b ^ 1 for b in honest.data)
    liar = SeededContent(
        size=content.size,
        leaf_hashes=[content.hash_of(2 * j) for j in range(content.chunk_count)],
        reader=BytesChunks(damaged, SUB),
        chunk_size=SUB,
        merkle_hash=content.merkle_hash,
    )
    server = await serve([liar], HOST, 0)
    try:
        with ChunkStore.create(honest.seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool)
            remote = _remote(server.address[1], liar)
            with pytest.raises(IntegrityError, match="does not verify against the root"):
                await transport.fetch(remote, 3, _Observer())
            transport.close()
    finally:
        server.close()
        honest.seed.close()


async def test_ppspp_content_other_than_the_description_raises_integrity_error(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    # --corrupt-uploads: the PPSPP content is consistent with its own root (which the seeder
    # offers) but its bytes are not the description's: the description's hash catches it.
    liar = await _serve(tmp_path, corrupt=True)
    try:
        with ChunkStore.create(liar.seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool)
            with pytest.raises(IntegrityError, match="does not match its hash"):
                await transport.fetch(_remote(liar.port, liar.content), 3, _Observer())
            transport.close()
        offset, length = liar.seed.description.chunk_range(3)
        assert (tmp_path / "out").read_bytes()[offset : offset + length] == bytes(length)
    finally:
        liar.server.close()
        liar.seed.close()


async def test_an_offer_of_too_small_ppspp_chunks_is_refused(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    remote = _remote(served.port, served.content)
    assert remote.offer is not None and remote.offer.uri is not None
    tiny = TransportOffer(type=PPSPP, uri=remote.offer.uri.replace(f"chunk={SUB}", "chunk=32"))
    with ChunkStore.create(served.seed.description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool)
        with pytest.raises(TRANSFER_ERRORS, match="too small"):
            await transport.fetch(
                RemotePeer(peer_id="p", info=PeerInfo(peer_id="p"), base_url="", offer=tiny),
                0,
                _Observer(),
            )
        transport.close()


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
            await asyncio.wait_for(
                transport.fetch(_remote(port, served.content), 0, _Observer()), 5
            )
        transport.close()


async def test_cancelling_a_fetch_cancels_the_request(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    seeder = served.server.seeder
    with ChunkStore.create(served.seed.description, tmp_path / "out") as store:
        transport = PpsppChunkTransport(store=store, store_pool=pool)
        remote = _remote(served.port, served.content)
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
        assert client.stats["unwanted_data"] == seeder.stats["data_sent"] - CHUNK // SUB
        assert client.wanted == frozenset()
        offset, length = served.seed.description.chunk_range(5)
        assert (tmp_path / "out").read_bytes()[offset : offset + length] == bytes(length)
        transport.close()


async def test_a_node_offers_ppspp_only_where_it_serves_it(served: Served) -> None:
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    swarm_id = served.seed.description.swarm_id
    assert [offer.type for offer in node.transports(swarm_id)] == [HTTP]
    root = served.content.swarm_id
    node.offer_ppspp(swarm_id, 7000, root, SUB)
    offers = node.transports(swarm_id)
    assert [offer.type for offer in offers] == [HTTP, PPSPP]
    assert offers[1].uri == f"ppspp://127.0.0.1:7000/{root.hex()}?chunk={SUB}"
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
    # the swarm's representation (SHA-256, PPSPP chunks of its own) on one port.
    from ppsp.peer.net.ppspp_get import ppspp_download
    from ppsp.peer.net.ppspp_udp import seed_file

    data = random.Random(3).randbytes(5 * CHUNK + 1)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    seed = ChunkStore.seed_file(path, chunk_size=CHUNK)
    content = representation_content(seed)
    seeding = await seed_file(path, HOST, 0, contents=[content])
    try:
        port = seeding.address[1]
        got = await ppspp_download(seeding.root_hash, (HOST, port), tmp_path / "libswift.bin")
        assert got.path.read_bytes() == data
        with ChunkStore.create(seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool)
            for index in range(seed.description.chunk_count):
                await transport.fetch(_remote(port, content), index, _Observer())
            transport.close()
        assert (tmp_path / "out").read_bytes() == data
    finally:
        seeding.close()
        seed.close()


async def test_every_channel_of_a_transport_uses_one_socket(
    tmp_path: Path, served: Served, pool: ThreadPoolExecutor
) -> None:
    # Two seeders of the same content: each sees the transport's channel coming from the same
    # address, the one socket a NAT maps once (and STUN learns the reflexive address of).
    other = await serve([served.content], HOST, 0)
    try:
        with ChunkStore.create(served.seed.description, tmp_path / "out") as store:
            transport = PpsppChunkTransport(store=store, store_pool=pool, local_address=HOST)
            first = _remote(served.port, served.content)
            second = _remote(other.address[1], served.content)
            second.peer_id = "other"
            count = served.seed.description.chunk_count
            await asyncio.gather(
                *(transport.fetch(first if i % 2 else second, i, _Observer()) for i in range(count))
            )
            (a,) = served.server.seeder.channels
            (b,) = other.seeder.channels
            (endpoint,) = transport._endpoints.values()
            assert tuple(a.address[:2]) == tuple(b.address[:2]) == endpoint.address
            assert endpoint.unrouted == 0
            transport.close()
            assert endpoint.closed
        assert (tmp_path / "out").read_bytes() == served.data
    finally:
        other.close()
