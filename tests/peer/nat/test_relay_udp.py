"""The I/O around a relayed seeder, in-process with test doubles: the FIND loop's hook hands
each listed peer's candidates to the relay, which permits their IPs; datagrams coming through
the relay reach an engine of its own, whose answers leave through it; closing releases it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import cast

from ppsp.errors import StunError
from ppsp.peer.net.ppspp_nat import PpsppPunch
from ppsp.peer.net.ppspp_relay import PpsppRelay, TurnServer
from ppsp.peer.net.turn import TurnRelay
from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.channel import Address
from ppsp.wire.common import AddressType, PeerAddress
from ppsp.wire.ppspp import ChunkAddressing
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
