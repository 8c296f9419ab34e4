"""The I/O around a relayed seeder, in-process with test doubles: the FIND loop's hook hands
each listed peer's candidates to the relay, which permits their IPs; datagrams coming through
the relay reach an engine of its own, whose answers leave through it; closing releases it.
A downloading peer's relay starts empty and is given the partial content (and each chunk
newly held) by its :class:`PartialServing`."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import StunError
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
from ppsp.peer.net.ppspp_nat import PpsppPunch
from ppsp.peer.net.ppspp_relay import PpsppRelay, TurnServer
from ppsp.peer.net.ppspp_serving import PartialServer, PartialServing
from ppsp.peer.net.turn import TurnRelay
from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.live import LiveChunkRecord, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiver, LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LiveServer
from ppsp.peer.ppspp.partial import PartialContent
from ppsp.wire.common import AddressType, PeerAddress
from ppsp.wire.ppspp import ChunkAddressing, ChunkRange
from ppsp.wire.tracker import PeerInfo
from ppspp.test_engine import ModelLeecher

LEECHER = ("203.0.113.5", 41000)
STRANGER = ("192.0.2.66", 1234)


class FakeRelay:
    """What :class:`PpsppRelay` uses of a :class:`TurnRelay`, recorded."""

    def __init__(self) -> None:
        self.relayed = ("198.51.100.1", 50000)
        self.server = ("198.51.100.1", 3478)
        self.failure: str | None = None
        self.dropped = 0
        self.on_failure: object = None
        self.permitted: list[str] = []
        self.forgotten: list[str] = []
        self.refuse = {"10.9.9.9"}
        self.sent: asyncio.Queue[tuple[Address, bytes]] = asyncio.Queue()
        self.inbox: asyncio.Queue[tuple[Address, bytes]] = asyncio.Queue()
        self.closed = False

    async def permit(self, ip: str) -> None:
        if ip in self.refuse:
            raise StunError(f"permission for {ip}: 403 Forbidden IP")
        self.permitted.append(ip)

    def forget(self, ip: str) -> None:
        self.forgotten.append(ip)

    def send(self, peer: Address, data: bytes) -> None:
        if peer[0] not in self.permitted:
            raise StunError(f"{peer[0]} is not permitted on this relay")
        self.sent.put_nowait((peer, data))

    async def receive(self) -> tuple[Address, bytes]:
        return await self.inbox.get()

    async def close(self) -> None:
        self.closed = True


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_peer_gets_the_content_through_the_relay() -> None:
    data = random.Random(3).randbytes(50_000)
    content = SeededContent.from_bytes(data)
    fake = FakeRelay()
    relay = PpsppRelay(cast(TurnRelay, fake), Seeder([content]))
    relay.listed("leecher", [("10.9.9.9", 6778), LEECHER])
    await _settle()
    assert fake.permitted == [LEECHER[0]]  # the private one was refused
    assert relay.counts()["refused"] == 1 and relay.counts()["permitted"] == 1
    leecher = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=True)
    fake.inbox.put_nowait((LEECHER, leecher.opening()))
    loop = asyncio.get_running_loop()
    while len(leecher.receiver.chunks) < content.chunk_count:
        peer, datagram = await asyncio.wait_for(fake.sent.get(), 5)
        assert peer == LEECHER
        # DATA timestamps are the wall clock (the engine's offset): ACK delays from it.
        for answer in leecher.on(datagram, loop.time() + relay.seeder.timestamp_offset):
            fake.inbox.put_nowait((LEECHER, answer))
    got = b"".join(leecher.receiver.chunks[i] for i in range(content.chunk_count))
    assert got == data
    # A peer whose IP is not permitted is answered by nobody: the engine's reply is not sent.
    other = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=True)
    fake.inbox.put_nowait((STRANGER, other.opening()))
    await _settle()
    assert relay.unsent >= 1
    await relay.close()
    assert fake.closed
    counts = relay.counts()
    assert counts["relayed"] == "198.51.100.1:50000"
    assert cast(dict[str, int], counts["ppspp"])["data_sent"] >= content.chunk_count


class FakeSocket:
    """What :class:`PpsppPunch` uses of a PPSPP socket."""

    intercept = None

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    @property
    def address(self) -> tuple[str, int]:
        return ("10.234.0.2", 6778)

    def sendto(self, data: bytes, address: Address) -> None:
        self.sent.append((data, address))


def _ppspp(ip: str, port: int, kind: AddressType) -> PeerAddress:
    return PeerAddress(ip=ip, port=port, type=kind, peer_protocol="PPSPP")


async def test_the_find_loop_hands_each_listed_peer_to_the_relay_without_punching() -> None:
    listed: list[tuple[str, list[Address]]] = []
    peers = [
        PeerInfo(peer_id="me", addresses=(_ppspp("10.234.0.2", 6778, AddressType.HOST),)),
        PeerInfo(peer_id="http-only", addresses=(PeerAddress(ip="192.0.2.1", port=80),)),
        PeerInfo(
            peer_id="leecher",
            addresses=(
                _ppspp("10.233.0.2", 5000, AddressType.HOST),
                _ppspp(*LEECHER, AddressType.REFLEXIVE),
                _ppspp("2001:db8::1", 5000, AddressType.HOST),  # another family
            ),
        ),
    ]

    async def find() -> Sequence[PeerInfo]:
        return peers

    socket = FakeSocket()
    punch = PpsppPunch(
        socket,
        find,
        peer_id="me",
        interval=0.01,
        on_listed=lambda peer_id, candidates: listed.append((peer_id, candidates)),
        punch=False,
    )
    try:
        while punch.finds < 2:
            await asyncio.sleep(0.01)
    finally:
        punch.close()
    assert listed[:2] == [("leecher", [("10.233.0.2", 5000), LEECHER])] * 2
    assert socket.sent == [] and punch.counts()["punches"] == 0


def test_the_turn_password_is_never_shown() -> None:
    server = TurnServer(("turn.example", 3478), "viewer", "s3cret")
    assert "s3cret" not in repr(server) and "s3cret" not in str(server)
    assert str(TurnServer(("2001:db8::1", 3478), "u", "p")) == "[2001:db8::1]:3478"


async def test_a_downloading_peer_s_relay_serves_the_content_once_given_it() -> None:
    data = random.Random(4).randbytes(20_000)
    content = SeededContent.from_bytes(data)
    fake = FakeRelay()
    relay = PpsppRelay(cast(TurnRelay, fake), Seeder(()))
    relay.listed("leecher", [LEECHER])
    await _settle()
    leecher = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=True)
    # Before the content can be named, a handshake for it opens nothing.
    fake.inbox.put_nowait((LEECHER, leecher.opening()))
    await _settle()
    assert relay.seeder.stats.get("data_sent", 0) == 0
    relay.add(content)
    leecher = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=True)
    fake.inbox.put_nowait((LEECHER, leecher.opening()))
    loop = asyncio.get_running_loop()
    while len(leecher.receiver.chunks) < content.chunk_count:
        _, datagram = await asyncio.wait_for(fake.sent.get(), 5)
        for answer in leecher.on(datagram, loop.time() + relay.seeder.timestamp_offset):
            fake.inbox.put_nowait((LEECHER, answer))
    assert b"".join(leecher.receiver.chunks[i] for i in range(content.chunk_count)) == data
    await relay.close()
    relay.announce(content.swarm_id, ChunkRange(start=0, end=0))  # closed: nothing, no error


class FakeContent:
    """What :class:`PartialServing` asks of a partial content when a chunk is stored."""

    swarm_id = b"r" * 32

    def span(self, index: int) -> ChunkRange:
        return ChunkRange(start=4 * index, end=4 * index + 3)


class RecordingRelay:
    """What :class:`PartialServing` uses of a :class:`PpsppRelay`, recorded."""

    def __init__(self) -> None:
        self.seeder = Seeder(())
        self.added: list[object] = []
        self.announced: list[tuple[bytes, ChunkRange]] = []

    def add(self, content: object) -> None:
        self.added.append(content)

    def announce(self, swarm_id: bytes, chunks: ChunkRange) -> None:
        self.announced.append((swarm_id, chunks))


class RecordingServer:
    """What :class:`PartialServing` uses of its socket's server, recorded."""

    def __init__(self) -> None:
        self.announced: list[int] = []

    def announce(self, content: object, index: int) -> None:
        self.announced.append(index)


async def test_partial_serving_serves_through_a_relay_added_before_or_after_it_is_ready() -> None:
    server = RecordingServer()
    serving = PartialServing(cast(PeerNode, None), cast(PartialServer, server), lambda: None)
    early = RecordingRelay()
    serving.add_relay(cast(PpsppRelay, early))
    assert early.added == []  # nothing to serve yet
    content = FakeContent()
    serving.content = cast(PartialContent, content)
    late = RecordingRelay()
    serving.add_relay(cast(PpsppRelay, late))
    assert late.added == [content]
    # A chunk newly stored is announced on the socket and through every relay.
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.add_done_callback(serving._stored_callback(cast(PartialContent, content), 2))
    future.set_result(None)
    await _settle()
    assert server.announced == [2]
    expected = [(content.swarm_id, ChunkRange(start=8, end=11))]
    assert early.announced == expected and late.announced == expected


async def test_a_live_viewer_s_relay_serves_each_chunk_it_is_given_on_unix_time() -> None:
    key = Ed25519PrivateKey.generate()
    swarm = live_ppspp_swarm_id(public_key_bytes(key))
    now = time.time()
    record = LiveChunkRecord.sign(0, b"live" * 3000, now, key.sign)
    fake = FakeRelay()
    server = LiveServer(swarm, window_chunks=8)
    relay = PpsppRelay(cast(TurnRelay, fake), server, clock=time.time)
    relay.listed("viewer", [LEECHER])
    await _settle()
    relay.add_record(record)
    assert server.holds(0)
    config = LiveReceiverConfig(window_s=30.0, window_chunks=8)
    receiver = LiveReceiver(swarm, channel_id=77, config=config, now=now)
    requested = False
    completed: list[LiveChunkRecord] = []
    while not completed:
        for data in receiver.datagrams_to_send():
            fake.inbox.put_nowait((LEECHER, data))
        _, datagram = await asyncio.wait_for(fake.sent.get(), 5)
        receiver.datagram_received(datagram, time.time())
        if receiver.answered and not requested and receiver.peer_has(0):
            receiver.request(0, time.time())
            requested = True
        completed += receiver.take_completed()
    assert [got.data for got in completed] == [record.data] and receiver.forged == 0
    await relay.close()
    assert fake.closed and cast(dict[str, int], relay.counts()["ppspp"])["data_sent"] >= 1


async def test_a_live_source_s_chunks_go_to_its_relays_as_it_signs_them() -> None:
    key = Ed25519PrivateKey.generate()
    swarm = live_ppspp_swarm_id(public_key_bytes(key))
    endpoint = LivePpsppEndpoint(LiveServer(swarm, window_chunks=8, signer=key.sign), None)
    given: list[LiveChunkRecord] = []

    class Relay:
        def add_record(self, record: LiveChunkRecord) -> None:
            given.append(record)

    endpoint.relays.append(cast(PpsppRelay, Relay()))
    endpoint.append(0, b"live" * 3000)
    endpoint.append(1, b"more" * 3000)
    # ``live --turn``: every chunk the source signs is the relay's to serve, the very record
    # the socket serves (its munro signed once).
    assert [record.index for record in given] == [0, 1]
    assert given[0] is endpoint.server.get(0) and given[1].data == b"more" * 3000
