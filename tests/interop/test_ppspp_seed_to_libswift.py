"""Our PPSPP seeder serves libswift's leecher: byte-identical copies (issue 17).

The seeder (``peer/net/ppspp_udp.py`` around the sans-I/O ``peer/ppspp`` engine) runs in the
test's event loop on 127.0.0.2; libswift's leecher (``swift -t ADDR -h ROOTHASH -o DIR -w 0s``:
exit on completion) downloads through the recording relay of ``interop/libswift.py``, so that
what our seeder put on the wire is checked too, with libswift's own reading of it
(``interop/observe.py``).  Root hashes are ours (``ppspp_root_hash``: SHA-1, 1024-byte chunks).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import socket
from pathlib import Path

import pytest

from e2e.swarm_helpers import Peer, Swarm
from interop.libswift import TO_LEECHER, TO_SEEDER, Relay
from interop.observe import parse
from ppsp.peer.content.merkle import ppspp_root_hash
from ppsp.peer.net.ppspp_udp import load_content, serve

SEEDER_HOST = "127.0.0.2"
DOWNLOAD_TIMEOUT = 30.0
"""Bound on one download (about 0.2 s for 1 MiB on loopback)."""


async def leech(swift: Path, address: tuple[str, int], root: str, out: Path, *args: str) -> Peer:
    """Run libswift's leecher (with ``args`` besides, e.g. ``-z``) to completion (or fail
    after DOWNLOAD_TIMEOUT)."""
    process = await asyncio.create_subprocess_exec(
        str(swift),
        *("-t", f"{address[0]}:{address[1]}", "-h", root, "-o", str(out)),
        *("-w", "0s"),  # wait time 0 with a swarm: exit as soon as the download is complete
        *args,
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
    return leecher


@pytest.mark.parametrize(
    "size",
    [1, 5000, 1_050_000],
    ids=["1-byte", "5000-bytes", "1-MiB-and-more"],
)
async def test_libswift_leecher_downloads_from_our_seeder(
    swift: Path, tmp_path: Path, size: int
) -> None:
    data = random.Random(size).randbytes(size)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    content, reader = load_content(source)
    root = ppspp_root_hash(data).hex()
    assert content.swarm_id.hex() == root
    server = await serve(content, SEEDER_HOST, 0)
    relay = Relay(server.address)
    out = tmp_path / "leech"
    out.mkdir()
    try:
        relay_address = await relay.start()
        await leech(swift, relay_address, root, out)
        await asyncio.sleep(0.05)  # the leecher's closing handshake, still in flight
    finally:
        relay.close()
        with contextlib.suppress(Exception):
            server.close()
        reader.close()
    assert (out / root).read_bytes() == data

    # What our seeder sent, read by libswift's side: a handshake without options 8 and 9,
    # one HAVE per peak, every chunk once in a DATA that ends its datagram.
    chunks: dict[int, bytes] = {}
    first_reply = None
    for datagram in relay.datagrams:
        _, messages = parse(datagram.data)
        if datagram.direction == TO_SEEDER:
            continue
        assert datagram.direction == TO_LEECHER
        if messages and messages[0].name == "HANDSHAKE" and first_reply is None:
            first_reply = messages
        for position, message in enumerate(messages):
            if message.name == "DATA":
                assert position == len(messages) - 1
                chunks[message.fields["start_chunk"]] = bytes.fromhex(message.fields["data"])
    assert first_reply is not None
    options = [name for name, _ in first_reply[0].fields["options"]]
    assert "supported_messages" not in options and "chunk_size" not in options
    peaks = content.peak_ranges()
    haves = [(m.fields["start_chunk"], m.fields["end_chunk"]) for m in first_reply[1:]]
    assert haves == [(peak.start, peak.end) for peak in peaks]
    assert b"".join(chunks[index] for index in range(content.chunk_count)) == data
    assert server.seeder.stats["malformed"] == server.seeder.stats["protocol_error"] == 0
    assert server.seeder.stats["closed_by_peer"] >= 1  # libswift said goodbye


PPSPP_LINE = r"serving over PPSPP at udp ([\d.]+):(\d+), root hash ([0-9a-f]+)"


@pytest.mark.parametrize("merkle_hash", ["sha1", "sha256"])
async def test_ppsp_seed_serves_over_ppspp_too(
    swift: Path, tmp_path: Path, merkle_hash: str
) -> None:
    # `ppsp seed FILE --ppspp-port 0`: the swarm ID, then the RFC 7574 root hash; libswift
    # (which speaks SHA-1 only) downloads a byte-identical copy from the running command.
    data = random.Random(77).randbytes(300_000)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder = await swarm.spawn(
            "seeder", "seed", str(source), "--tracker", swarm.tracker_url,
            "--ppspp-port", "0", "--merkle-hash", merkle_hash,
        )  # fmt: skip
        swarm_id = await seeder.first_stdout_line()
        assert re.fullmatch(r"[0-9a-f]{64}", swarm_id), seeder.output()
        match = await seeder.wait_line(PPSPP_LINE)
        host, port, root = match.group(1), int(match.group(2)), match.group(3)
        assert root == ppspp_root_hash(data, hash_name=merkle_hash).hex()
        await seeder.wait_line(root, stream="stdout")  # also the second line on stdout
        assert seeder.stdout[:2] == [swarm_id, root]
        if merkle_hash == "sha1":
            out = tmp_path / "leech"
            out.mkdir()
            await leech(swift, (host, port), root, out)
            assert (out / root).read_bytes() == data
        seeder.signal(signal.SIGINT)
        assert await seeder.wait() == 0, seeder.output()
        assert not any("Traceback" in line for line in seeder.stderr), seeder.output()


async def test_ppsp_seed_refuses_a_busy_ppspp_port(tmp_path: Path) -> None:
    source = tmp_path / "content.bin"
    source.write_bytes(b"x" * 5000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        async with Swarm(tmp_path) as swarm:
            await swarm.tracker()
            seeder = await swarm.spawn(
                "seeder", "seed", str(source), "--tracker", swarm.tracker_url,
                "--ppspp-port", str(port),
            )  # fmt: skip
            assert await seeder.wait() == 1
            assert any("over PPSPP on udp port" in line for line in seeder.stderr), seeder.output()


@pytest.mark.parametrize("chunk_size", [1024, 8192])
async def test_ppsp_seed_chunk_size_option_serves_libswift(
    swift: Path, tmp_path: Path, chunk_size: int
) -> None:
    # `ppsp seed --ppspp-chunk-size N`: libswift's leecher gets a byte-identical copy with
    # the same -z (its default, 1024, needs none); the root is libswift's for N-byte chunks.
    data = random.Random(chunk_size).randbytes(200_000)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder = await swarm.spawn(
            "seeder", "seed", str(source), "--tracker", swarm.tracker_url,
            "--ppspp-port", "0", "--ppspp-chunk-size", str(chunk_size),
        )  # fmt: skip
        match = await seeder.wait_line(PPSPP_LINE)
        host, port, root = match.group(1), int(match.group(2)), match.group(3)
        assert root == ppspp_root_hash(data, chunk_size=chunk_size).hex()
        assert f"{chunk_size}-byte chunks" in match.string, seeder.output()
        out = tmp_path / "leech"
        out.mkdir()
        extra = () if chunk_size == 1024 else ("-z", str(chunk_size))
        await leech(swift, (host, port), root, out, *extra)
        assert (out / root).read_bytes() == data
        seeder.signal(signal.SIGINT)
        assert await seeder.wait() == 0, seeder.output()
