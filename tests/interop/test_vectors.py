"""The captured libswift vectors (tests/ppspp/vectors/libswift-*.json) are whole and consistent.

They are read by the PPSPP codec's tests; here they are checked against what the capture claims:
every datagram splits into known messages, the header's handshakes and counts are the datagrams',
and every DATA payload is the right slice of the content the header describes.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from interop.observe import parse

VECTOR_DIR = Path(__file__).resolve().parents[1] / "ppspp" / "vectors"
VECTORS = sorted(VECTOR_DIR.glob("libswift-*.json"))


def test_vectors_exist() -> None:
    assert len(VECTORS) >= 2


@pytest.mark.parametrize("path", VECTORS, ids=[path.name for path in VECTORS])
def test_vector_is_consistent(path: Path) -> None:
    vector: dict[str, Any] = json.loads(path.read_text())
    size, chunk = vector["file_size"], vector["chunk_size"]
    data = random.Random(size).randbytes(size)
    assert vector["content"]["recipe"] == f"random.Random({size}).randbytes({size})"
    assert hashlib.sha1(data).hexdigest() == vector["content"]["sha1"]
    if "hex" in vector["content"]:
        assert bytes.fromhex(vector["content"]["hex"]) == data
    handshakes: dict[str, Any] = {}
    for entry in vector["datagrams"]:
        assert set(entry) == {"direction", "hex", "messages"}
        assert entry["direction"] in ("to-seeder", "to-leecher")
        channel, messages = parse(bytes.fromhex(entry["hex"]))
        assert [message.name for message in messages] == entry["messages"]
        for message in messages:
            if message.name == "HANDSHAKE":
                handshakes.setdefault(entry["direction"], (channel, message.fields))
            if message.name == "DATA":
                start = message.fields["start_chunk"]
                payload = bytes.fromhex(message.fields["data"])
                assert payload == data[start * chunk : (start + 1) * chunk]
    for direction, (channel, fields) in handshakes.items():
        seen = vector["handshake"][direction]
        assert seen["destination_channel"] == f"{channel:08x}"
        assert seen["source_channel"] == f"{fields['source_channel']:08x}"
        assert [(o["name"], o["value"]) for o in seen["options"]] == fields["options"]
    assert ("swarm_id", vector["root_hash"]) in handshakes["to-seeder"][1]["options"]
    counts = vector["datagram_count"]
    if vector["truncated"]:
        assert len(vector["datagrams"]) < counts["to-seeder"] + counts["to-leecher"]
    else:
        assert len(vector["datagrams"]) == counts["to-seeder"] + counts["to-leecher"]
        for direction, expected in vector["message_counts"].items():
            seen_counts: dict[str, int] = {}
            for entry in vector["datagrams"]:
                if entry["direction"] == direction:
                    for name in entry["messages"] or ["(keep-alive)"]:
                        seen_counts[name] = seen_counts.get(name, 0) + 1
            assert seen_counts == expected


@pytest.mark.parametrize("path", VECTORS, ids=[path.name for path in VECTORS])
def test_vector_root_hash_is_ours(path: Path) -> None:
    from ppsp.peer.content.merkle import ppspp_root_hash

    vector: dict[str, Any] = json.loads(path.read_text())
    size = vector["file_size"]
    data = random.Random(size).randbytes(size)
    assert ppspp_root_hash(data, vector["chunk_size"], "sha1").hex() == vector["root_hash"]
