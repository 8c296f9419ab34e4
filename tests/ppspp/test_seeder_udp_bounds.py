"""A seeder on a real UDP socket that one host tries to fill with channels (in-process).

The crowding host, 127.0.0.3, opens channels from many ports and confirms each answer with a
keep-alive, as many as the seeder lets it hold; then a download from another host, 127.0.0.1
(``ppsp get --peer``'s code), completes: the crowding host keeps at most its share, and a full
table makes room from the most crowded host.
"""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

from ppsp.codecs.ppspp import decode_datagram
from ppsp.peer.net.ppspp_get import ppspp_download
from ppsp.peer.net.ppspp_udp import serve
from ppsp.peer.ppspp import SeededContent, SeederConfig
from ppsp.wire.ppspp import (
    ChannelParameters,
    Handshake,
)

from .raw_udp import seeder_opening

SEEDER_HOST = "127.0.0.1"
CROWD_HOST = "127.0.0.3"
LIBSWIFT = ChannelParameters.libswift()


async def _crowd(root: bytes, seeder: tuple[str, int], ports: int, per_port: int) -> int:
    """Open ``per_port`` channels from each of ``ports`` sockets on the crowding host, each
    answer confirmed with a keep-alive; the number of answers."""
    socks = []
    for _ in range(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((CROWD_HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    answered = 0
    try:
        for n, sock in enumerate(socks):
            for k in range(per_port):
                sock.sendto(seeder_opening(root, 0x1000 + n * per_port + k), seeder)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            for sock in socks:
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    reply = decode_datagram(data, LIBSWIFT).messages[0]
                    if isinstance(reply, Handshake) and reply.source_channel:
                        sock.sendto(reply.source_channel.to_bytes(4, "big"), seeder)
                        answered += 1
        await asyncio.sleep(0.1)  # the last keep-alives reach the seeder
    finally:
        for sock in socks:
            sock.close()
    return answered


async def test_one_host_filling_the_seeder_does_not_keep_another_out(tmp_path: Path) -> None:
    data = random.Random(11).randbytes(64 * 1024 + 5)
    content = SeededContent.from_bytes(data)
    # A table of 16 channels, one host's share: the crowding host fills it, and the download
    # takes the place of its idlest channel.  Before (4 channels per UDP address, established
    # ones never evicted), 4 of its ports filled it and the download had no answer.
    server = await serve(content, SEEDER_HOST, 0, config=SeederConfig(max_channels=16))
    try:
        address = server.address
        answered = await _crowd(content.swarm_id, address, ports=8, per_port=4)
        channels = server.seeder.channels
        assert answered >= 16
        assert 0 < len(channels) <= SeederConfig().max_channels_per_host
        assert {c.address[0] for c in channels} == {CROWD_HOST}
        got = await asyncio.wait_for(
            ppspp_download(content.swarm_id, address, tmp_path / "got.bin"), 20.0
        )
        assert got.path.read_bytes() == data
    finally:
        server.close()
