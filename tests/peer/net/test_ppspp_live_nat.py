"""A live PPSPP socket behind NAT, in-process on loopback sockets: STUN through the socket
itself, and a peer reached over UDP only at the candidate address that answers.

``LivePpsppEndpoint.reach`` sends a channel's handshake to every candidate address until one
answers (the hole punching of :class:`~ppsp.peer.nat.punch.CandidatePaths`); the answering
address is then the channel's, and what its HAVEs name is the peer's chunk map.
``LivePpsppEndpoint.intercept`` takes the STUN server's answers before any routing, so that
:class:`~ppsp.peer.net.ppspp_nat.PpsppStun` learns the socket's own reflexive address.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.codecs.stun import decode_message, encode_message
from ppsp.errors import ChunkTransferError
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint, live_offer_uri, parse_live_offer
from ppsp.peer.net.ppspp_nat import PpsppStun
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LiveServer
from ppsp.wire.stun import StunClass, StunMessage

KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
RECEIVING = LiveReceiverConfig(window_s=30.0, window_chunks=16, handshake_timeout=1.0)
HOST = "127.0.0.1"


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A loopback UDP socket that never answers (a candidate behind a closed NAT); what it
    got can be read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    got: list[bytes] = []
    while True:
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            return got


async def _viewer() -> LivePpsppEndpoint:
    return await LivePpsppEndpoint.open(HOST, 0, LiveServer(SWARM, window_chunks=16), RECEIVING)


async def test_a_peer_is_reached_at_the_candidate_that_answers(silent: socket.socket) -> None:
    source = await LivePpsppEndpoint.open(
        HOST, 0, LiveServer(SWARM, window_chunks=16, signer=KEY.sign)
    )
    me = await _viewer()
    try:
        chunks = [bytes([i]) * (2 * LIVE_CHUNK_SIZE + i) for i in range(3)]
        for index, data in enumerate(chunks):
            source.append(index, data)
        dead = silent.getsockname()[:2]
        # The silent candidate first, as a HOST address behind a NAT would be.
        chosen = await asyncio.wait_for(me.reach([dead, source.address], RECEIVING), 5)
        assert chosen == source.address
        assert _drain(silent), "the handshake went to every candidate"
        # The peer's map is what its channel's HAVEs name; a fetch uses the chosen channel.
        for _ in range(50):
            if me.peer_map(chosen, 16) == [0, 1, 2]:
                break
            await asyncio.sleep(0.02)
        assert me.peer_map(chosen, 16) == [0, 1, 2]
        assert me.peer_map(dead, 16) == []
        assert await asyncio.wait_for(me.fetch(chosen, 1), 5) == chunks[1]
        # Nothing more goes to the candidate that did not answer.
        await asyncio.sleep(0.1)
        assert not _drain(silent)
        # Reaching it again finds the open channel.
        assert await me.reach([source.address], RECEIVING) == source.address
        uri = live_offer_uri(chosen, SWARM)
        assert parse_live_offer(uri, SWARM) == chosen
    finally:
        source.close()
        me.close()


async def test_nobody_answering_at_any_candidate_is_a_transfer_error(
    silent: socket.socket,
) -> None:
    me = await _viewer()
    try:
        with pytest.raises(ChunkTransferError, match="no answer"):
            await asyncio.wait_for(me.reach([silent.getsockname()[:2]], RECEIVING), 5)
        with pytest.raises(ChunkTransferError, match="no usable candidate"):
            await me.reach([("0.0.0.0", 4000), (HOST, 0)], RECEIVING)
    finally:
        me.close()


class _StunResponder(asyncio.DatagramProtocol):
    """Answers each Binding request with a fixed reflexive address."""

    def __init__(self, mapped: tuple[str, int]) -> None:
        self.mapped = mapped
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = decode_message(data)
        answer = StunMessage(
            cls=StunClass.SUCCESS,
            method=request.method,
            transaction_id=request.transaction_id,
            mapped=self.mapped,
            fingerprint=True,
        )
        assert self.transport is not None
        self.transport.sendto(encode_message(answer), addr)


async def test_stun_runs_on_the_live_socket_itself() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _StunResponder(("198.51.100.7", 40000)), local_addr=(HOST, 0)
    )
    me = await _viewer()
    try:
        stun_address = transport.get_extra_info("sockname")[:2]
        keeper = PpsppStun(me, stun_address)
        assert await keeper.first_mapping(3) == ("198.51.100.7", 40000)
        assert keeper.counts()["answers"] == 1
        assert me.server.stats["malformed"] == 0  # the answer never reached the engine
        keeper.close()
        assert me.intercept is None
    finally:
        me.close()
        transport.close()
