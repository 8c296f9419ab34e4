"""INTEGRITY and DATA in one datagram from our seeder, read by libswift's leecher (issue 17).

With chunks larger than one Ethernet datagram (8 KiB, libswift's ``-z 8192``) our seeder puts
the hashes a chunk needs ahead of its DATA in the same datagram, as libswift's own seeder does
(``tests/ppspp/vectors``), instead of a datagram of INTEGRITY before each DATA.  libswift's
leecher verifies every chunk with them and completes; the relay shows every DATA datagram
carrying its hashes, and no datagram of INTEGRITY alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

from e2e.swarm_helpers import Peer
from interop.libswift import TO_LEECHER, Relay
from interop.observe import parse
from ppsp.peer.content.merkle import ppspp_root_hash
from ppsp.peer.net.ppspp_udp import load_content, serve

SEEDER_HOST = "127.0.0.2"
CHUNK_SIZE = 8192
DOWNLOAD_TIMEOUT = 30.0


async def test_libswift_verifies_integrity_sent_with_the_data(swift: Path, tmp_path: Path) -> None:
    size = 40 * CHUNK_SIZE + 1234  # 41 chunks: several peaks, a short last chunk
    data = random.Random(size).randbytes(size)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    content, reader = load_content(source, chunk_size=CHUNK_SIZE)
    root = ppspp_root_hash(data, chunk_size=CHUNK_SIZE).hex()
    assert content.swarm_id.hex() == root
    server = await serve(content, SEEDER_HOST, 0)
    relay = Relay(server.address)
    out = tmp_path / "leech"
    out.mkdir()
    try:
        host, port = await relay.start()
        process = await asyncio.create_subprocess_exec(
            str(swift),
            *("-t", f"{host}:{port}", "-h", root, "-o", str(out)),
            *("-z", str(CHUNK_SIZE), "-w", "0s"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        leecher = Peer("leecher", process)
        try:
            code = await leecher.wait(DOWNLOAD_TIMEOUT)
        except BaseException:
            await leecher.kill()
            raise
        assert code == 0, f"libswift's leecher exited with {code}\n{leecher.output()}"
        await asyncio.sleep(0.05)  # the leecher's closing handshake, still in flight
    finally:
        relay.close()
        with contextlib.suppress(Exception):
            server.close()
        reader.close()
    assert (out / root).read_bytes() == data

    with_data = 0
    for datagram in relay.datagrams:
        if datagram.direction != TO_LEECHER:
            continue
        _, messages = parse(datagram.data)
        names = [message.name for message in messages]
        assert names == [] or names[0] != "INTEGRITY" or "DATA" in names, names
        if "DATA" in names:
            assert names[-1] == "DATA"
            if "INTEGRITY" in names:
                with_data += 1
    # The first DATA carries the peaks; later ones the uncle hashes libswift lacks.
    assert with_data >= 1
    assert (
        server.seeder.stats["data_sent"]
        == server.seeder.stats["datagrams_out"] - 1 - (server.seeder.stats["keepalives_out"])
    )  # one datagram per DATA, besides the handshake reply
