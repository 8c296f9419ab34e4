"""``ppsp get ROOTHASH --peer ppspp://HOST:PORT`` as a real process, against our own seeder.

Our PPSPP seeder (``peer/net/ppspp_udp.py``) runs in the test's event loop; ``ppsp get`` runs
as a subprocess.  SHA-256 is selected by a 64-digit root hash; the errors a user meets (a bad
root hash, a peer that does not answer, options that do not go together) are one line.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from e2e.swarm_helpers import Swarm
from ppsp.peer.net.ppspp_udp import serve
from ppsp.peer.ppspp import SeededContent
from ppsp.wire.ppspp import MerkleHashFunction

HOST = "127.0.0.1"


@pytest.mark.parametrize("merkle_hash", [MerkleHashFunction.SHA1, MerkleHashFunction.SHA256])
async def test_get_from_our_seeder(tmp_path: Path, merkle_hash: MerkleHashFunction) -> None:
    data = random.Random(8).randbytes(200_000)
    content = SeededContent.from_bytes(data, merkle_hash=merkle_hash)
    server = await serve(content, HOST, 0)
    out = tmp_path / "copy.bin"
    try:
        async with Swarm(tmp_path) as swarm:
            root = content.swarm_id.hex()
            port = server.address[1]
            getter = await swarm.spawn("get", "get", root, "--peer", f"ppspp://{HOST}:{port}",
                                       "-o", str(out))  # fmt: skip
            assert await getter.wait() == 0, getter.output()
    finally:
        server.close()
    assert out.read_bytes() == data
    assert server.seeder.stats["closed_by_peer"] == 1
    assert server.seeder.stats["malformed"] == server.seeder.stats["protocol_error"] == 0


async def test_a_peer_that_does_not_answer_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))  # bound, never read: datagrams vanish without an ICMP error
        port = silent.getsockname()[1]
        out = tmp_path / "copy.bin"
        async with Swarm(tmp_path) as swarm:
            getter = await swarm.spawn("get", "get", "ab" * 20, "--peer", f"ppspp://{HOST}:{port}",
                                       "-o", str(out), "--timeout", "1")  # fmt: skip
            assert await getter.wait() == 1
    assert getter.stderr == [f"ppsp: {HOST}:{port}: no answer from the peer after 1 s"]
    assert not out.exists() and not (tmp_path / "copy.bin.part").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["xyz", "--peer", "ppspp://127.0.0.1:9"], "'xyz' is not a root hash"),
        (["AB" * 20, "--peer", "ppspp://127.0.0.1:9"], "lower case"),
        (["ab" * 20, "--peer", "ppspp://127.0.0.1:9", "--merkle-hash", "sha256"],
         "a sha256 root hash has 64 hexadecimal digits, not 40"),
        (["ab" * 20, "--peer", "http://127.0.0.1:9"], "is not a PPSPP peer"),
        (["ab" * 20, "--peer", "ppspp://127.0.0.1:70000"], "port 70000 outside"),
        (["ab" * 20, "--peer", "ppspp://127.0.0.1:9", "--tracker", "http://127.0.0.1:1"],
         "give --tracker or --peer"),
        (["ab" * 32], "Missing option '--tracker'"),
        (["ab" * 32, "--tracker", "http://127.0.0.1:1", "--merkle-hash", "sha1"],
         "--merkle-hash goes with --peer"),
        (["ab" * 20, "--tracker", "http://127.0.0.1:1"], "is not a swarm ID"),
    ],
)  # fmt: skip
async def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    async with Swarm(tmp_path) as swarm:
        getter = await swarm.spawn("get", "get", *args, "-o", str(tmp_path / "out"))
        assert await getter.wait() == 2, getter.output()
    assert any(message in line for line in getter.stderr), getter.output()
    assert not (tmp_path / "out").exists()
