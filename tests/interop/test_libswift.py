"""libswift against itself through a recording relay, and its root hashes against ours.

The counterpart for PPSPP interop (issue 17): these tests prove the harness works (a copy through
the relay is byte-identical and every chunk is seen crossing it) and pin the RFC 7574 root hash of
stored content (SHA-1 Merkle tree of 1024-byte chunks) to what libswift computes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from interop.libswift import TO_LEECHER, TO_SEEDER, exchange, root_hash
from interop.observe import parse

CHUNK = 1024


async def test_copy_through_relay_is_identical(swift: Path, tmp_path: Path) -> None:
    data = random.Random(17).randbytes(20_000)
    result = await exchange(swift, data, tmp_path)
    assert result.copy == data
    assert {datagram.direction for datagram in result.datagrams} == {TO_SEEDER, TO_LEECHER}
    # The leecher opens with a handshake on channel 0 naming the swarm by its root hash.
    first = result.datagrams[0]
    assert first.direction == TO_SEEDER
    channel, messages = parse(first.data)
    assert channel == 0 and messages[0].name == "HANDSHAKE"
    assert ("swarm_id", result.root_hash) in messages[0].fields["options"]
    # Every chunk crossed the relay towards the leecher, intact.
    chunks: dict[int, bytes] = {}
    for datagram in result.datagrams:
        for message in parse(datagram.data)[1]:
            if message.name == "DATA":
                assert datagram.direction == TO_LEECHER
                assert message.fields["start_chunk"] == message.fields["end_chunk"]
                chunks[message.fields["start_chunk"]] = bytes.fromhex(message.fields["data"])
    assert b"".join(chunks[index] for index in range(len(chunks))) == data


def test_empty_file_is_refused(swift: Path, tmp_path: Path) -> None:
    # libswift prints "cannot open swarm" and exits 1: an empty file has no root hash there.
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert root_hash(swift, empty, CHUNK) is None


def test_known_vector(swift: Path, tmp_path: Path) -> None:
    # The shared folder's README vector: 1028 bytes of '$' (two leaves, the second of 4 bytes).
    path = tmp_path / "dollars.bin"
    path.write_bytes(b"$" * 1028)
    assert root_hash(swift, path, CHUNK) == "5b53677d3a695f29f1b4e18ab6d705312ef7f8c3"


@pytest.mark.parametrize(
    "data",
    [b"\x7f", b"$" * 1028, random.Random(70).randbytes(70 * 1024)],
    ids=["1-byte", "1028-bytes", "70-KiB"],
)
def test_root_hash_matches_ours(swift: Path, tmp_path: Path, data: bytes) -> None:
    from ppsp.peer.content.merkle import ppspp_root_hash  # being written alongside

    path = tmp_path / "content.bin"
    path.write_bytes(data)
    expected = root_hash(swift, path, CHUNK)
    assert expected is not None
    assert ppspp_root_hash(data, CHUNK, "sha1").hex() == expected
