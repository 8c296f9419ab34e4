"""The PPSPP seeder engine (``peer/ppspp``) against the leecher side of real libswift exchanges.

The captured vectors (``vectors/libswift-*.json``) hold every datagram a libswift leecher sent
to a libswift seeder.  Replaying the leecher's datagrams against our engine (under the channel
ID libswift's seeder had, so that they need no rewriting), our answers must let the exchange
proceed: the same handshake reply, the same message types in a compatible order, and every DATA
verifiable against the root hash by a receiver that knows only what we sent (:class:`Receiver`,
a model of libswift's hash checking).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.content.merkle import chunk_hash, parent_hash, ppspp_root_hash, tree_height
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.content import bin_level, bin_of_range, bin_parent, bin_range, bin_sibling
from ppsp.wire.ppspp import (
    Ack,
    Bin,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    ChunkSpec,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    Request,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
LIBSWIFT = ChannelParameters.libswift()
PEER = ("127.0.0.3", 40000)


def load(name: str) -> dict[str, Any]:
    """A captured vector and its content."""
    vector: dict[str, Any] = json.loads((VECTORS / name).read_text())
    size = vector["file_size"]
    vector["data"] = random.Random(size).randbytes(size)
    return vector


def as_range(spec: ChunkSpec) -> ChunkRange:
    """A chunk specification as a range."""
    return bin_range(spec.number) if isinstance(spec, Bin) else spec


class Receiver:
    """What a leecher can verify from what it was sent (libswift's checks, in a model).

    It trusts only the root hash: peak hashes are accepted once they rebuild the root, other
    hashes are kept unverified until a chunk's path up to a verified node checks out.
    """

    def __init__(self, root: bytes, chunk_count: int, hash_name: str = "sha1") -> None:
        self.root = root
        self.chunk_count = chunk_count
        self.height = tree_height(chunk_count)
        self.hash_name = hash_name
        self.verified: dict[int, bytes] = {}
        self.offered: dict[int, bytes] = {}
        self.chunks: dict[int, bytes] = {}

    def integrity(self, message: Integrity) -> None:
        """Keep an offered hash; accept the peaks once they rebuild the root."""
        number = bin_of_range(as_range(message.chunk))
        assert number is not None, f"INTEGRITY of {message.chunk}: not a subtree"
        self.offered[number] = message.hash
        if not self.verified:
            self._try_peaks()

    def _try_peaks(self) -> None:
        peaks: list[int] = []
        first = 0
        for level in range(self.height, -1, -1):
            if self.chunk_count & (1 << level):
                peaks.append((first >> level) * (2 << level) + (1 << level) - 1)
                first += 1 << level
        if not all(number in self.offered for number in peaks):
            return
        stack = [(number, self.offered[number]) for number in peaks]
        number, value = stack.pop()
        zero = bytes(len(value))
        while bin_level(number) < self.height:
            sibling = bin_sibling(number)
            if sibling < number:
                left, left_value = stack.pop()
                assert left == sibling
                value = parent_hash(left_value, value, self.hash_name)
            else:
                value = parent_hash(value, zero, self.hash_name)
            number = bin_parent(number)
        assert not stack
        assert value == self.root, "peak hashes do not rebuild the root hash"
        for peak in peaks:
            self.verified[peak] = self.offered[peak]

    def data(self, message: Data) -> int:
        """Verify a chunk against what is known; returns its index."""
        chunks = as_range(message.chunk)
        assert chunks.count == 1
        index = chunks.start
        node, value = 2 * index, chunk_hash(message.data, self.hash_name)
        path: dict[int, bytes] = {}
        while node not in self.verified:
            sibling = bin_sibling(node)
            other = self.verified.get(sibling, self.offered.get(sibling))
            assert other is not None, f"chunk {index}: hash of bin {sibling} never sent"
            path[node], path[sibling] = value, other
            left, right = (other, value) if sibling < node else (value, other)
            value = parent_hash(left, right, self.hash_name)
            node = bin_parent(node)
        assert value == self.verified[node], f"chunk {index} does not verify"
        self.verified.update(path)
        self.chunks[index] = message.data
        return index


def replay(vector: dict[str, Any], seeder: Seeder) -> list[tuple[int, Datagram]]:
    """Feed the vector's leecher datagrams to ``seeder``; returns what it sent, each with the
    number of leecher datagrams fed before it."""
    answers: list[tuple[int, Datagram]] = []
    now = 100.0
    fed = 0
    for entry in vector["datagrams"]:
        if entry["direction"] != "to-seeder":
            continue
        now += 0.001
        seeder.datagram_received(bytes.fromhex(entry["hex"]), PEER, now)
        fed += 1
        for address, data in seeder.datagrams_to_send():
            assert address == PEER
            answers.append((fed, decode_datagram(data, LIBSWIFT)))
    return answers


def seeder_for(vector: dict[str, Any], **config: Any) -> Seeder:
    """A seeder of the vector's content under the channel ID libswift's seeder had."""
    ours = int(vector["handshake"]["to-leecher"]["source_channel"], 16)
    content = SeededContent.from_bytes(vector["data"])
    assert content.swarm_id.hex() == vector["root_hash"]
    return Seeder(content, config=SeederConfig(**config), channel_ids=lambda: ours)


def test_handshake_reply_is_libswifts_byte_for_byte() -> None:
    vector = load("libswift-5000-bytes.json")
    seeder = seeder_for(vector)
    first = bytes.fromhex(vector["datagrams"][0]["hex"])
    seeder.datagram_received(first, PEER, 1.0)
    [(address, reply)] = seeder.datagrams_to_send()
    # libswift's seeder answered: HANDSHAKE (options 0, 1, 3, 4, 6, 255), HAVE 0-3, HAVE 4-4.
    assert (address, reply.hex()) == (PEER, vector["datagrams"][1]["hex"])
    assert 0x08 not in reply[10:24] and 0x09 not in reply[10:24]  # no option 8 nor 9


def test_replay_of_the_5000_byte_exchange_delivers_every_chunk() -> None:
    vector = load("libswift-5000-bytes.json")
    seeder = seeder_for(vector)
    answers = replay(vector, seeder)
    receiver = Receiver(bytes.fromhex(vector["root_hash"]), 5)
    kinds = []
    for _, datagram in answers:
        kinds.append([type(message).__name__ for message in datagram.messages])
        for message in datagram.messages:
            if isinstance(message, Integrity):
                receiver.integrity(message)
            elif isinstance(message, Data):
                receiver.data(message)
    data = vector["data"]
    assert {i: receiver.chunks[i] for i in range(5)} == {
        i: data[i * 1024 : (i + 1) * 1024] for i in range(5)
    }
    # As libswift: the reply, then for chunk 0 every peak, its uncles top-down, the DATA.
    assert kinds[0] == ["Handshake", "Have", "Have"]
    assert kinds[1] == ["Integrity"] * 4 + ["Data"]
    first_data = answers[1][1].messages
    assert [as_range(m.chunk) for m in first_data if isinstance(m, Integrity)] == [
        ChunkRange(start=s, end=e) for s, e in ((0, 3), (4, 4), (2, 3), (1, 1))
    ]
    # Every DATA is the last message of its datagram, with our timestamp.
    for datagram_kinds in kinds:
        assert "Data" not in datagram_kinds[:-1]
    # The leecher's closing handshake closed the channel; every chunk went once.
    assert not seeder.channels and seeder.stats["closed_by_peer"] == 1
    assert seeder.stats["data_sent"] == seeder.stats["data_acked"] == 5


def test_replay_of_the_100000_byte_exchange_verifies_every_data() -> None:
    vector = load("libswift-100000-bytes.json")
    seeder = seeder_for(vector)
    answers = replay(vector, seeder)
    receiver = Receiver(bytes.fromhex(vector["root_hash"]), 98)
    sent = []
    for _, datagram in answers:
        for message in datagram.messages:
            if isinstance(message, Integrity):
                receiver.integrity(message)
            elif isinstance(message, Data):
                sent.append(receiver.data(message))
    assert sent, "no DATA in answer to the captured requests"
    data = vector["data"]
    for index in sent:
        assert receiver.chunks[index] == data[index * 1024 : (index + 1) * 1024]
    # The peaks of 98 chunks (0-63, 64-95, 96-97) are announced as libswift does.
    haves = [as_range(m.chunk) for m in answers[0][1].messages if isinstance(m, Have)]
    assert haves == [ChunkRange(start=s, end=e) for s, e in ((0, 63), (64, 95), (96, 97))]
    assert seeder.stats["malformed"] == seeder.stats["protocol_error"] == 0


# --- a whole download against a model leecher ---------------------------------------------


class ModelLeecher:
    """A leecher driving the engine without sockets: requests everything in ranges, verifies
    every chunk, acknowledges with HAVE and ACK as libswift does."""

    def __init__(
        self, content: SeededContent, *, addressing: ChunkAddressing, chunk_size: bool
    ) -> None:
        self.content = content
        self.parameters = ChannelParameters(
            chunk_addressing=addressing,
            merkle_hash=content.merkle_hash,
            chunk_size=content.chunk_size,
        )
        self.receiver = Receiver(
            content.swarm_id, content.chunk_count, content.merkle_hash.hashlib_name
        )
        self.channel = 0x1234
        self.remote = 0
        self.announce_chunk_size = chunk_size

    def spec(self, chunks: ChunkRange) -> ChunkSpec:
        if self.parameters.chunk_addressing.is_bin:
            number = bin_of_range(chunks)
            assert number is not None
            return Bin(number=number)
        return chunks

    def opening(self) -> bytes:
        handshake = Handshake(
            source_channel=self.channel,
            version=1,
            min_version=1,
            swarm_id=self.content.swarm_id,
            content_integrity=ContentIntegrity.MERKLE,
            merkle_hash=self.content.merkle_hash,
            chunk_addressing=self.parameters.chunk_addressing,
            chunk_size=self.content.chunk_size if self.announce_chunk_size else None,
        )
        profile = EncoderProfile.RFC7574 if self.announce_chunk_size else EncoderProfile.LIBSWIFT
        datagram = Datagram(channel=0, messages=(handshake,))
        return encode_datagram(datagram, self.parameters, profile=profile)

    def on(self, data: bytes, now: float) -> list[bytes]:
        datagram = decode_datagram(data, self.parameters)
        assert datagram.channel == self.channel
        out: list[bytes] = []
        for message in datagram.messages:
            if isinstance(message, Handshake):
                self.remote = message.source_channel
                # Ask for everything, in ranges of up to 16 chunks, last range first.
                count = self.content.chunk_count
                requests = tuple(
                    Request(chunk=self.spec(ChunkRange(start=s, end=min(s + 15, count - 1))))
                    for s in reversed(range(0, count, 16))
                    if bin_of_range(ChunkRange(start=s, end=min(s + 15, count - 1))) is not None
                    or not self.parameters.chunk_addressing.is_bin
                )
                out.append(self.encode(requests))
            elif isinstance(message, Integrity):
                self.receiver.integrity(message)
            elif isinstance(message, Data):
                index = self.receiver.data(message)
                delay = int(now * 1e6) - message.timestamp
                chunk = self.spec(ChunkRange(start=index, end=index))
                out.append(self.encode((Have(chunk=chunk), Ack(chunk=chunk, delay=delay))))
        return out

    def encode(self, messages: tuple[Any, ...]) -> bytes:
        return encode_datagram(Datagram(channel=self.remote, messages=messages), self.parameters)


def download(seeder: Seeder, leecher: ModelLeecher, now: float = 10.0) -> float:
    """Run a download to the end (or until nothing moves); returns the time it ended."""
    pending = [leecher.opening()]
    while pending:
        now += 0.0005
        for data in pending:
            seeder.datagram_received(data, PEER, now)
        pending = []
        for _, data in seeder.datagrams_to_send():
            pending += leecher.on(data, now)
    return now


@pytest.mark.parametrize(
    ("size", "addressing", "rfc"),
    [
        (1, ChunkAddressing.CHUNK_RANGE_32, False),
        (5000, ChunkAddressing.CHUNK_RANGE_32, False),
        (200_000, ChunkAddressing.CHUNK_RANGE_32, False),
        (200_000, ChunkAddressing.CHUNK_RANGE_64, True),
        (65_536, ChunkAddressing.BIN_32, True),
        (65_536, ChunkAddressing.BIN_64, False),
    ],
)
def test_model_leecher_gets_every_chunk(size: int, addressing: ChunkAddressing, rfc: bool) -> None:
    data = random.Random(size).randbytes(size)
    content = SeededContent.from_bytes(data)
    assert content.swarm_id == ppspp_root_hash(data)
    seeder = Seeder(content)
    leecher = ModelLeecher(content, addressing=addressing, chunk_size=rfc)
    download(seeder, leecher)
    got = b"".join(leecher.receiver.chunks[i] for i in range(content.chunk_count))
    assert got == data
    assert seeder.stats["data_sent"] == content.chunk_count  # nothing twice, nothing lost


def test_sha256_content_is_served_to_a_peer_asking_for_sha256() -> None:
    data = random.Random(3).randbytes(10_000)
    content = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA256)
    assert content.swarm_id == ppspp_root_hash(data, hash_name="sha256")
    leecher = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=True)
    download(Seeder(content), leecher)
    assert b"".join(leecher.receiver.chunks[i] for i in range(10)) == data


def test_rfc_peer_gets_a_strict_handshake_and_libswift_does_not() -> None:
    content = SeededContent.from_bytes(b"x" * 3000)
    for rfc in (True, False):
        seeder = Seeder(content)
        leecher = ModelLeecher(content, addressing=ChunkAddressing.CHUNK_RANGE_32, chunk_size=rfc)
        seeder.datagram_received(leecher.opening(), PEER, 1.0)
        [(_, data)] = seeder.datagrams_to_send()
        reply = decode_datagram(data, LIBSWIFT).messages[0]
        assert isinstance(reply, Handshake)
        assert (reply.chunk_size == 1024) is rfc
        assert (reply.supported_messages is not None) is rfc
        assert reply.version == reply.min_version == 1 and reply.swarm_id is None
        assert reply.content_integrity is ContentIntegrity.MERKLE
        assert reply.merkle_hash is MerkleHashFunction.SHA1
