"""``ppsp get ROOTHASH --peer ppspp://HOST:PORT`` downloads from libswift's seeder (issue 17).

libswift seeds a file (``swift -f FILE -l 127.0.0.2:PORT``, which prints its root hash: SHA-1
Merkle tree over 1024-byte chunks); ``ppsp get`` runs as a real process and must write a
byte-identical copy, without a tracker.  A root hash libswift does not seed gets no answer:
the command fails in one line after its timeout and leaves no file behind.  Through a relay
that loses datagrams both ways, the download still completes (libswift does not send again the
uncle hashes of a lost datagram: the chunks that miss them wait or are asked again).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from e2e.swarm_helpers import Peer, Swarm
from interop.libswift import ROOT_HASH, SEEDER_HOST, Relay, free_udp_port
from ppsp.peer.net.ppspp_get import ppspp_download

DOWNLOAD_TIMEOUT = 60.0
"""Bound on one ``ppsp get`` (16 MiB take about 3 s on loopback, 1 MiB a fraction of one)."""


async def libswift_seeder(swarm: Swarm, swift: Path, source: Path) -> tuple[Peer, str, int]:
    """Start libswift seeding ``source``; its process, root hash and UDP port."""
    port = free_udp_port(SEEDER_HOST)
    process = await _spawn(swarm, swift, "-f", str(source), "-l", f"{SEEDER_HOST}:{port}")
    match = await process.wait_line(ROOT_HASH, stream="stdout")
    await process.wait_line("Mainloop")  # on stderr: its socket is bound
    return process, match.group(1), port


async def _spawn(swarm: Swarm, swift: Path, *args: str) -> Peer:
    process = await asyncio.create_subprocess_exec(
        str(swift),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=swarm.workdir,
    )
    peer = Peer("libswift-seeder", process)
    swarm.peers.append(peer)  # killed when the swarm closes
    return peer


@pytest.mark.parametrize(
    "size",
    [1, 5000, 1_050_000, 16 << 20],
    ids=["1-byte", "5000-bytes", "1-MiB-and-more", "16-MiB"],
)
async def test_ppsp_get_downloads_from_libswift(swift: Path, tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    out = tmp_path / "copy.bin"
    async with Swarm(tmp_path) as swarm:
        seeder, root, port = await libswift_seeder(swarm, swift, source)
        getter = await swarm.spawn(
            "get", "get", root, "--peer", f"ppspp://{SEEDER_HOST}:{port}", "-o", str(out)
        )
        code = await getter.wait(DOWNLOAD_TIMEOUT)
        assert code == 0, getter.output() + "\n" + seeder.output()
        assert any(f"{size} bytes verified" in line for line in getter.stderr), getter.output()
    assert out.read_bytes() == data
    assert not (tmp_path / "copy.bin.part").exists()


async def test_a_root_hash_libswift_does_not_seed_fails_cleanly(
    swift: Path, tmp_path: Path
) -> None:
    source = tmp_path / "content.bin"
    source.write_bytes(random.Random(1).randbytes(5000))
    out = tmp_path / "copy.bin"
    async with Swarm(tmp_path) as swarm:
        _, root, port = await libswift_seeder(swarm, swift, source)
        wrong = format(int(root, 16) ^ 1, "040x")
        getter = await swarm.spawn(
            "get", "get", wrong, "--peer", f"ppspp://{SEEDER_HOST}:{port}",
            "-o", str(out), "--timeout", "2",
        )  # fmt: skip
        assert await getter.wait(DOWNLOAD_TIMEOUT) == 1, getter.output()
    assert getter.stderr == [f"ppsp: {SEEDER_HOST}:{port}: no answer from the peer after 2 s"]
    assert not out.exists() and not (tmp_path / "copy.bin.part").exists()


class LossyRelay(Relay):
    """A relay that loses each datagram, either way, with probability ``loss``."""

    def __init__(self, seeder: tuple[str, int], loss: float, seed: int) -> None:
        super().__init__(seeder)
        self.loss = loss
        self.rng = random.Random(seed)
        self.lost = 0

    def _lose(self) -> bool:
        lost = self.rng.random() < self.loss
        self.lost += lost
        return lost

    def _from_leecher(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self._lose():
            super()._from_leecher(data, addr)

    def _from_seeder(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self._lose():
            super()._from_seeder(data, addr)


async def test_download_from_libswift_survives_lost_datagrams(swift: Path, tmp_path: Path) -> None:
    data = random.Random(21).randbytes(300_000)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    out = tmp_path / "copy.bin"
    async with Swarm(tmp_path) as swarm:
        _, root, port = await libswift_seeder(swarm, swift, source)
        relay = LossyRelay((SEEDER_HOST, port), loss=0.05, seed=3)
        try:
            address = await relay.start()
            result = await asyncio.wait_for(
                ppspp_download(bytes.fromhex(root), address, out), DOWNLOAD_TIMEOUT
            )
        finally:
            relay.close()
    assert out.read_bytes() == data and result.size == len(data)
    assert relay.lost > 0 and result.stats.get("chunks_rejected", 0) == 0


async def test_ppsp_get_chunk_size_option_downloads_from_libswift(
    swift: Path, tmp_path: Path
) -> None:
    # libswift seeding in 8 KiB chunks (-z 8192, not announced on the wire): the root depends
    # on the chunk size, and `ppsp get --ppspp-chunk-size 8192` must say the same.
    data = random.Random(8192).randbytes(300_000)
    source = tmp_path / "content.bin"
    source.write_bytes(data)
    out = tmp_path / "copy.bin"
    async with Swarm(tmp_path) as swarm:
        port = free_udp_port(SEEDER_HOST)
        seeder = await _spawn(
            swarm, swift, "-f", str(source), "-l", f"{SEEDER_HOST}:{port}", "-z", "8192"
        )
        root = (await seeder.wait_line(ROOT_HASH, stream="stdout")).group(1)
        await seeder.wait_line("Mainloop")
        getter = await swarm.spawn(
            "get", "get", root, "--peer", f"ppspp://{SEEDER_HOST}:{port}", "-o", str(out),
            "--ppspp-chunk-size", "8192",
        )  # fmt: skip
        code = await getter.wait(DOWNLOAD_TIMEOUT)
        assert code == 0, getter.output() + "\n" + seeder.output()
        assert any("37 chunks" in line for line in getter.stderr), getter.output()
    assert out.read_bytes() == data
