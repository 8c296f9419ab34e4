"""The PPSPP codec on real libswift datagrams (tests/ppspp/vectors/libswift-*.json).

Each captured datagram decodes with libswift's channel parameters (the capture's chunk size,
SHA-1, 32-bit chunk ranges) into the messages the capture lists, and re-encodes byte for byte,
with the plain profile and with libswift's; the content it carries checks out against the
project's own SHA-1 Merkle tree: every INTEGRITY hash is the tree's node for its range, every
DATA the content's chunk, the swarm ID the root hash.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.content.merkle import MerkleTree, ppspp_root_hash
from ppsp.wire.ppspp import (
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Handshake,
    Integrity,
    MerkleHashFunction,
    MessageType,
)

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
VECTORS = sorted(VECTOR_DIR.glob("libswift-*.json"))

_NAMES = {
    "Handshake": MessageType.HANDSHAKE,
    "Data": MessageType.DATA,
    "Ack": MessageType.ACK,
    "Have": MessageType.HAVE,
    "Integrity": MessageType.INTEGRITY,
    "PexResV4": MessageType.PEX_RESV4,
    "PexReq": MessageType.PEX_REQ,
    "SignedIntegrity": MessageType.SIGNED_INTEGRITY,
    "Request": MessageType.REQUEST,
    "Cancel": MessageType.CANCEL,
    "Choke": MessageType.CHOKE,
    "Unchoke": MessageType.UNCHOKE,
    "PexResV6": MessageType.PEX_RESV6,
    "PexResCert": MessageType.PEX_RESCERT,
}


def _parameters(vector: dict[str, Any]) -> ChannelParameters:
    assert vector["merkle_hash"] == "sha1"
    assert vector["chunk_addressing"] == "32-bit chunk ranges"
    return ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_size=vector["chunk_size"],
    )


def test_there_are_captures() -> None:
    if not VECTORS:
        pytest.skip("no libswift captures in tests/ppspp/vectors yet")
    assert all(path.stat().st_size for path in VECTORS)


@pytest.mark.parametrize("path", VECTORS, ids=[path.name for path in VECTORS])
def test_captured_datagrams_decode_and_reencode_byte_identically(path: Path) -> None:
    vector: dict[str, Any] = json.loads(path.read_text())
    params = _parameters(vector)
    size, chunk_size = vector["file_size"], vector["chunk_size"]
    content = random.Random(size).randbytes(size)
    chunks = [content[i : i + chunk_size] for i in range(0, size, chunk_size)]
    tree = MerkleTree.from_chunks(chunks, hash_name="sha1")
    root = bytes.fromhex(vector["root_hash"])
    assert tree.root == root == ppspp_root_hash(content, chunk_size, "sha1")

    seen: set[MessageType] = set()
    for entry in vector["datagrams"]:
        wire = bytes.fromhex(entry["hex"])
        datagram = decode_datagram(wire, params)
        kinds = [_NAMES[type(message).__name__] for message in datagram.messages]
        assert [kind.name for kind in kinds] == entry["messages"], entry
        seen.update(kinds)
        for profile in (EncoderProfile.PLAIN, EncoderProfile.LIBSWIFT):
            assert encode_datagram(datagram, params, profile=profile) == wire, entry
        for message in datagram.messages:
            if isinstance(message, Integrity):
                assert isinstance(message.chunk, ChunkRange)
                count = message.chunk.count
                level = count.bit_length() - 1
                assert count == 1 << level and message.chunk.start % count == 0
                assert message.hash == tree.node(level, message.chunk.start >> level)
            elif isinstance(message, Data):
                assert isinstance(message.chunk, ChunkRange)
                assert message.data == chunks[message.chunk.start]
            elif isinstance(message, Handshake) and message.swarm_id is not None:
                assert message.swarm_id == root
                assert message.merkle_hash == MerkleHashFunction.SHA1
    assert {MessageType.HANDSHAKE, MessageType.DATA, MessageType.INTEGRITY} <= seen
