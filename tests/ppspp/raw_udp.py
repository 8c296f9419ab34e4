"""Raw UDP for the PPSPP tests that play a hostile or hand-written peer on a real socket: a
bound non-blocking socket, the datagrams that come back, and a libswift-style opening datagram
to a seeder."""

from __future__ import annotations

import asyncio
import socket

from ppsp.codecs.ppspp import EncoderProfile, encode_datagram
from ppsp.wire.ppspp import (
    ChannelParameters,
    ChunkAddressing,
    ContentIntegrity,
    Datagram,
    Handshake,
    MerkleHashFunction,
    Message,
)

LIBSWIFT = ChannelParameters.libswift()
"""The channel parameters libswift uses (SHA-1 Merkle hashes, 32-bit chunk ranges)."""


def udp(host: str) -> socket.socket:
    """A non-blocking UDP socket bound to ``host`` on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def answers(sock: socket.socket, quiet: float = 0.3) -> list[bytes]:
    """The datagrams arriving until ``quiet`` seconds pass without one (at most 200)."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    for _ in range(200):
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 65536), quiet))
        except TimeoutError:
            break
    return got


def seeder_opening(root: bytes, source: int, *messages: Message) -> bytes:
    """An opening datagram to a seeder of ``root``, as libswift writes one: its HANDSHAKE from
    channel ``source``, then ``messages``."""
    handshake = Handshake(
        source_channel=source,
        version=1,
        min_version=1,
        swarm_id=root,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    datagram = Datagram(channel=0, messages=(handshake, *messages))
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)
