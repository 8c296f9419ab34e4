"""The PPSPP leecher (``peer/ppspp/leecher.py``) against libswift's seeder and our own.

The captured vectors (``vectors/libswift-*.json``) hold every datagram a libswift seeder sent a
libswift leecher.  Replayed into our leecher (under the channel ID libswift's leecher had, so
that they need no rewriting), they must let it verify and keep every chunk: the download
completes with the right bytes and closes the channel as libswift does.  Our seeder
(``peer/ppspp/seeder.py``) drives it pair-wise without sockets, with SHA-1 and SHA-256 and
datagrams lost on the way.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ppsp.codecs.ppspp import decode_datagram
from ppsp.peer.content.merkle import ppspp_root_hash
from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.leecher import Leecher, LeecherConfig, LeecherState
from ppsp.wire.ppspp import (
    Ack,
    ChannelParameters,
    ChunkRange,
    Data,
    Handshake,
    Have,
    MerkleHashFunction,
    Request,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
LIBSWIFT = ChannelParameters.libswift()
LEECHER_ADDRESS = ("127.0.0.3", 40000)

Tamper = Callable[[bytes], bytes | None]
"""What happens to a datagram from the seeder on its way: changed, or None (lost)."""


def load(name: str) -> dict[str, Any]:
    """A captured vector and its content."""
    vector: dict[str, Any] = json.loads((VECTORS / name).read_text())
    size = vector["file_size"]
    vector["data"] = random.Random(size).randbytes(size)
    return vector


def replay_leecher(vector: dict[str, Any]) -> tuple[Leecher, dict[int, bytes], list[bytes]]:
    """Feed libswift's seeder datagrams of ``vector`` to a leecher with libswift's channel
    ID; returns it, the chunks it handed out and everything it sent."""
    ours = int(vector["handshake"]["to-seeder"]["source_channel"], 16)
    root = bytes.fromhex(vector["root_hash"])
    leecher = Leecher(root, 0.0, LeecherConfig(channel_id=ours))
    sent = leecher.datagrams_to_send()
    chunks: dict[int, bytes] = {}
    now = 0.0
    for datagram in vector["datagrams"]:
        if datagram["direction"] != "to-leecher":
            continue
        now += 0.001
        leecher.datagram_received(bytes.fromhex(datagram["hex"]), now)
        sent += leecher.datagrams_to_send()
        for index, data in leecher.take_chunks():
            assert index not in chunks
            chunks[index] = data
    return leecher, chunks, sent


def test_handshake_is_libswifts_byte_for_byte() -> None:
    # What libswift's leecher sends first, under its channel ID: the same bytes from ours.
    for name in ("libswift-5000-bytes.json", "libswift-100000-bytes.json"):
        vector = load(name)
        ours = int(vector["handshake"]["to-seeder"]["source_channel"], 16)
        leecher = Leecher(bytes.fromhex(vector["root_hash"]), 0.0, LeecherConfig(channel_id=ours))
        first = next(d for d in vector["datagrams"] if d["direction"] == "to-seeder")
        assert leecher.datagrams_to_send() == [bytes.fromhex(first["hex"])]


def test_replay_of_libswifts_seeder_completes_with_the_right_bytes() -> None:
    vector = load("libswift-5000-bytes.json")
    leecher, chunks, sent = replay_leecher(vector)
    assert leecher.state is LeecherState.COMPLETE, leecher.stats
    assert leecher.size == 5000 and leecher.chunk_count == 5
    assert b"".join(chunks[index] for index in range(5)) == vector["data"]
    assert leecher.stats["chunks_rejected"] == leecher.stats["malformed"] == 0
    seeder_channel = vector["handshake"]["to-leecher"]["source_channel"]
    # Each chunk is acknowledged (libswift's way: HAVE, then ACK of the chunk) ...
    acked: list[int] = []
    for data in sent[1:-1]:
        assert data[:4].hex() == seeder_channel
        messages = decode_datagram(data, LIBSWIFT).messages
        for position, message in enumerate(messages):
            if isinstance(message, Ack):
                assert isinstance(message.chunk, ChunkRange)
                assert isinstance(messages[position - 1], Have)
                acked.append(message.chunk.start)
    assert sorted(acked) == [0, 1, 2, 3, 4]
    # ... and the channel closed as libswift closes it: source channel 0, the End option.
    assert sent[-1] == bytes.fromhex(seeder_channel + "0000000000ff")
    assert leecher.next_deadline() is None


def test_replay_of_a_cut_capture_keeps_every_chunk_it_carries() -> None:
    # The 100000-byte capture holds the first 40 datagrams of each direction only: every
    # DATA in it verifies (peaks and uncles as libswift sent them), nothing is rejected.
    vector = load("libswift-100000-bytes.json")
    leecher, chunks, _ = replay_leecher(vector)
    data_count = sum(d["messages"].count("DATA") for d in vector["datagrams"][:80]
                     if d["direction"] == "to-leecher")  # fmt: skip
    assert leecher.chunk_count == 98 and leecher.state is LeecherState.DOWNLOADING
    assert len(chunks) == data_count > 10
    for index, data in chunks.items():
        assert data == vector["data"][index * 1024 : (index + 1) * 1024]
    assert leecher.stats["chunks_rejected"] == leecher.stats["missing_hashes"] == 0


# --- pair-wise with our seeder ------------------------------------------------------------


def run_pair(
    data: bytes,
    *,
    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1,
    tamper: Tamper | None = None,
    config: LeecherConfig | None = None,
    limit: float = 120.0,
) -> tuple[Leecher, bytes, Seeder]:
    """Download ``data`` from our seeder; returns the leecher, what it wrote and the seeder."""
    content = SeededContent.from_bytes(data, merkle_hash=merkle_hash)
    seeder = Seeder(content)
    config = config or LeecherConfig(merkle_hash=merkle_hash)
    now = 0.0
    leecher = Leecher(content.swarm_id, now, config)
    written = bytearray()
    while not leecher.done and now < limit:
        for datagram in leecher.datagrams_to_send():
            seeder.datagram_received(datagram, LEECHER_ADDRESS, now)
        moved = False
        for _, datagram in seeder.datagrams_to_send():
            changed = tamper(datagram) if tamper else datagram
            if changed is not None:
                leecher.datagram_received(changed, now)
            moved = True
        for index, chunk in leecher.take_chunks():
            offset = index * content.chunk_size
            if len(written) < offset + len(chunk):
                written.extend(bytes(offset + len(chunk) - len(written)))
            written[offset : offset + len(chunk)] = chunk
        if moved:
            continue
        deadlines = [t for t in (leecher.next_deadline(), seeder.next_deadline()) if t is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        leecher.handle_timer(now)
        seeder.handle_timer(now)
    for datagram in leecher.datagrams_to_send():  # the closing handshake
        seeder.datagram_received(datagram, LEECHER_ADDRESS, now)
    return leecher, bytes(written), seeder


@pytest.mark.parametrize("size", [1, 1024, 1025, 5000, 100_000])
@pytest.mark.parametrize("merkle_hash", [MerkleHashFunction.SHA1, MerkleHashFunction.SHA256])
def test_downloads_from_our_seeder(size: int, merkle_hash: MerkleHashFunction) -> None:
    data = random.Random(size).randbytes(size)
    leecher, written, seeder = run_pair(data, merkle_hash=merkle_hash)
    assert leecher.state is LeecherState.COMPLETE, (leecher.failure, leecher.stats)
    assert written == data and leecher.size == size
    assert leecher.root_hash == ppspp_root_hash(data, hash_name=merkle_hash.hashlib_name)
    assert seeder.stats["closed_by_peer"] == 1 and not seeder.channels
    assert seeder.stats["protocol_error"] == seeder.stats["malformed"] == 0


def test_survives_lost_datagrams() -> None:
    data = random.Random(3).randbytes(60_000)
    rng = random.Random(5)
    leecher, written, seeder = run_pair(data, tamper=lambda d: None if rng.random() < 0.2 else d)
    assert leecher.state is LeecherState.COMPLETE, (leecher.failure, leecher.stats)
    assert written == data
    assert seeder.stats["data_lost"] > 0


def flip_once(predicate: Callable[[bytes], bool], position: int) -> Tamper:
    """A tamper that flips one byte (``position`` from the end) of the first datagram
    matching ``predicate``."""
    done = False

    def tamper(datagram: bytes) -> bytes:
        nonlocal done
        if done or not predicate(datagram):
            return datagram
        done = True
        changed = bytearray(datagram)
        changed[len(changed) - position] ^= 0x01
        return bytes(changed)

    return tamper


def carries_data(datagram: bytes) -> bool:
    """True for a datagram of our seeder ending with a full-size DATA (chunk 0 excepted)."""
    try:
        messages = decode_datagram(datagram, LIBSWIFT).messages
    except Exception:
        return False
    return (
        bool(messages)
        and isinstance(messages[-1], Data)
        and messages[-1].chunk != ChunkRange(start=0, end=0)
    )


def test_a_damaged_chunk_is_caught_and_fetched_again() -> None:
    data = random.Random(9).randbytes(20_000)
    leecher, written, _ = run_pair(data, tamper=flip_once(carries_data, 1))
    assert leecher.state is LeecherState.COMPLETE, (leecher.failure, leecher.stats)
    assert leecher.stats["chunks_rejected"] == 1
    assert written == data


def test_a_wrong_hash_is_caught() -> None:
    # The first DATA datagram's last INTEGRITY (chunk 1's hash, an uncle of chunk 0) damaged:
    # chunk 0 does not verify through it; nothing wrong is written, the download completes.
    data = random.Random(10).randbytes(20_000)

    def first_integrity(datagram: bytes) -> bool:
        return len(datagram) > 1024 and datagram[4] == 4

    leecher, written, _ = run_pair(data, tamper=flip_once(first_integrity, 1 + 8 + 8 + 1024 + 1))
    assert leecher.state is LeecherState.COMPLETE, (leecher.failure, leecher.stats)
    assert leecher.stats["chunks_rejected"] == 1
    assert written == data


def test_a_seeder_sending_only_wrong_chunks_fails_the_download() -> None:
    data = random.Random(11).randbytes(10_000)

    def damage(datagram: bytes) -> bytes:
        if carries_data(datagram) or len(datagram) > 1000:
            return datagram[:-1] + bytes([datagram[-1] ^ 0xFF])
        return datagram

    config = LeecherConfig(max_failures=5)
    leecher, written, _ = run_pair(data, tamper=damage, config=config)
    assert leecher.state is LeecherState.FAILED
    assert leecher.failure is not None and "failed verification" in leecher.failure
    assert leecher.stats["chunks_rejected"] == 5
    assert written == b""  # never an unverified byte


def test_sha256_leecher_and_sha1_root_disagree_cleanly() -> None:
    with pytest.raises(ValueError, match="root hash"):
        Leecher(bytes(20), 0.0, LeecherConfig(merkle_hash=MerkleHashFunction.SHA256))


def test_requests_are_contiguous_ranges_within_the_window() -> None:
    data = random.Random(12).randbytes(100 * 1024)
    content = SeededContent.from_bytes(data)
    seeder = Seeder(content)
    leecher = Leecher(content.swarm_id, 0.0, LeecherConfig(min_window=16))
    for datagram in leecher.datagrams_to_send():
        seeder.datagram_received(datagram, LEECHER_ADDRESS, 0.0)
    for _, datagram in seeder.datagrams_to_send():
        leecher.datagram_received(datagram, 0.0)
    (first,) = leecher.datagrams_to_send()
    messages = decode_datagram(first, LIBSWIFT).messages
    assert messages == (Request(chunk=ChunkRange(start=0, end=15)),)
    assert leecher.chunk_count == 100


def test_a_handshake_reply_with_another_hash_function_fails() -> None:
    data = b"x" * 3000
    content = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA256)
    leecher = Leecher(content.swarm_id, 0.0, LeecherConfig(merkle_hash=MerkleHashFunction.SHA256))
    seeder = Seeder(content)
    for datagram in leecher.datagrams_to_send():
        seeder.datagram_received(datagram, LEECHER_ADDRESS, 0.0)
    (reply,) = (d for _, d in seeder.datagrams_to_send())
    # The reply's option 4 (Merkle hash function) says SHA-1 instead.
    index = reply.index(bytes([4, MerkleHashFunction.SHA256]))
    leecher.datagram_received(reply[:index] + bytes([4, 0]) + reply[index + 2 :], 0.0)
    assert leecher.state is LeecherState.FAILED
    assert leecher.failure is not None and "SHA1" in leecher.failure
    assert isinstance(
        decode_datagram(leecher.datagrams_to_send()[-1], LIBSWIFT).messages[0], Handshake
    )
