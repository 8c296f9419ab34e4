"""The PPSPP channel client (``peer/ppspp/client.py``) driven pair-wise with our seeder.

The content is what a swarm's description names: SHA-256 chunk hashes whose RFC 7574 root is
the representation's ``merkle_root``.  The client asks for given chunks in any order and hands
out only chunks verified up to that root; a forged chunk, forged hashes and hostile datagrams
are caught, counted, and never raise.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.content.merkle import chunk_hash, merkle_root
from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.client import (
    ChannelClient,
    ChannelState,
    ChunkRejected,
    ChunkResult,
    ChunkVerified,
    ClientConfig,
)
from ppsp.wire.ppspp import (
    MAX_DATAGRAM_BYTES,
    Bin,
    Cancel,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
)

SHA256 = MerkleHashFunction.SHA256
ADDRESS = ("127.0.0.5", 40000)
_PLAIN = EncoderProfile.PLAIN

Tamper = Callable[[bytes], bytes | None]
"""What happens to a datagram on its way: changed, or None (lost)."""


def content_of(size: int, chunk_size: int) -> tuple[bytes, SeededContent]:
    data = random.Random(size ^ chunk_size).randbytes(size)
    return data, SeededContent.from_bytes(data, chunk_size=chunk_size, merkle_hash=SHA256)


def client_for(content: SeededContent, **config: object) -> ChannelClient:
    return ChannelClient(
        content.swarm_id,
        size=content.size,
        chunk_size=content.chunk_size,
        now=0.0,
        config=ClientConfig(**config),  # type: ignore[arg-type]
    )


class Pair:
    """A seeder and a client exchanging datagrams, time advancing 1 ms per datagram."""

    def __init__(
        self,
        content: SeededContent,
        client: ChannelClient,
        *,
        to_client: Tamper = lambda d: d,
        to_seeder: Tamper = lambda d: d,
    ) -> None:
        self.seeder = Seeder(content, timestamp_offset=0.0)
        self.client = client
        self.to_client = to_client
        self.to_seeder = to_seeder
        self.now = 0.0
        self.results: list[ChunkResult] = []

    def run(self, until: Callable[[], bool], limit: float = 120.0) -> None:
        """Exchange datagrams (and run timers when idle) until ``until()`` or ``limit`` s."""
        seeder, client = self.seeder, self.client
        while not until() and self.now < limit:
            moved = False
            for data in client.datagrams_to_send():
                moved = True
                self.now += 0.001
                forwarded = self.to_seeder(data)
                if forwarded is not None:
                    seeder.datagram_received(forwarded, ADDRESS, self.now)
            for _, data in seeder.datagrams_to_send():
                moved = True
                self.now += 0.001
                forwarded = self.to_client(data)
                if forwarded is not None:
                    client.datagram_received(forwarded, self.now)
            self.results += client.take_results()
            if moved:
                continue
            deadlines = [d for d in (seeder.next_deadline(), client.next_deadline()) if d]
            if not deadlines:
                return
            self.now = max(self.now, min(deadlines))
            seeder.handle_timer(self.now)
            client.handle_timer(self.now)
            self.results += client.take_results()

    def verified(self) -> dict[int, bytes]:
        return {r.index: r.data for r in self.results if isinstance(r, ChunkVerified)}


def test_the_description_root_is_the_rfc7574_root() -> None:
    # A representation's merkle_root (SHA-256 chunk hashes) names the RFC 7574 content.
    data, content = content_of(5 * 32768 + 100, 32768)
    leaves = [chunk_hash(data[i : i + 32768]) for i in range(0, len(data), 32768)]
    assert content.swarm_id == merkle_root(leaves)


@pytest.mark.parametrize(
    ("size", "chunk_size"), [(1, 1024), (7162, 1024), (20 * 32768 + 5, 32768), (9 * 16384, 16384)]
)
def test_fetches_the_chunks_asked_for_in_any_order(size: int, chunk_size: int) -> None:
    data, content = content_of(size, chunk_size)
    client = client_for(content)
    pair = Pair(content, client)
    count = content.chunk_count
    order = list(range(count))
    random.Random(size).shuffle(order)
    asked = order[: max(1, count // 2)]
    for index in asked:
        client.request(index, 0.0)
    pair.run(lambda: len(pair.results) == len(asked))
    chunks = pair.verified()
    assert sorted(chunks) == sorted(asked)
    for index, chunk in chunks.items():
        assert chunk == data[index * chunk_size : (index + 1) * chunk_size]
    assert client.state is ChannelState.OPEN and not client.wanted
    # The rest, asked for later on the same channel, with fewer hashes needed.
    rest = [index for index in range(count) if index not in chunks]
    for index in rest:
        client.request(index, pair.now)
    pair.run(lambda: len(pair.results) == count)
    assert b"".join(pair.verified()[i] for i in range(count)) == data
    assert pair.seeder.stats["data_sent"] == count


def test_lost_datagrams_both_ways_are_made_good() -> None:
    data, content = content_of(64 * 1024 + 17, 1024)
    client = client_for(content)
    rng = random.Random(7)

    def lossy(datagram: bytes) -> bytes | None:
        return None if rng.random() < 0.1 else datagram

    pair = Pair(content, client, to_client=lossy, to_seeder=lossy)
    for index in range(content.chunk_count):
        client.request(index, 0.0)
    pair.run(lambda: len(pair.results) == content.chunk_count, limit=600.0)
    assert b"".join(pair.verified()[i] for i in range(content.chunk_count)) == data


def test_many_chunks_asked_at_once_go_in_one_request() -> None:
    # A description chunk is fetched as the run of PPSPP chunks covering it: one REQUEST.
    data, content = content_of(64 * 1024, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    pair.run(lambda: client.state is ChannelState.OPEN)
    client.request_many(range(8, 40), pair.now)
    (datagram,) = client.datagrams_to_send()
    parameters = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32, merkle_hash=SHA256, chunk_size=1024
    )
    (request,) = decode_datagram(datagram, parameters).messages
    assert request.chunk == ChunkRange(start=8, end=39)  # type: ignore[attr-defined]
    pair.seeder.datagram_received(datagram, ADDRESS, pair.now)
    pair.run(lambda: len(pair.results) == 32)
    assert b"".join(pair.verified()[i] for i in range(8, 40)) == data[8 * 1024 : 40 * 1024]
    with pytest.raises(ValueError):
        client.request_many([3, content.chunk_count], pair.now)
    assert 3 not in client.wanted  # nothing asked for when one is outside


def test_256_kib_chunks_do_not_fit_a_datagram_the_ppspp_chunks_do() -> None:
    # A description's default chunk (256 KiB) cannot travel in one UDP datagram: it is
    # carried as PPSPP chunks of PPSPP_CHUNK_SIZE; smaller description chunks as they are.
    from ppsp.peer.net.ppspp_transport import PPSPP_CHUNK_SIZE, fits_datagram, ppspp_chunk_size

    assert not fits_datagram(256 * 1024)
    assert fits_datagram(PPSPP_CHUNK_SIZE) and fits_datagram(32 * 1024)
    assert not fits_datagram(MAX_DATAGRAM_BYTES)
    assert ppspp_chunk_size(256 * 1024) == PPSPP_CHUNK_SIZE
    assert ppspp_chunk_size(1000) == 1000


@pytest.mark.parametrize(
    ("size", "chunk", "sub"),
    [
        (5 * 262144 + 1000, 262144, 8192),  # the defaults; a short last chunk
        (10 * 10000 + 1, 10000, 4096),  # not a multiple: PPSPP chunks shared by two
        (3 * 1000, 1000, 8192),  # a PPSPP chunk larger than a description chunk
        (4 * 8192, 8192, 8192),  # the same size: one to one
    ],
)
def test_description_chunks_map_onto_ppspp_chunks(size: int, chunk: int, sub: int) -> None:
    from ppsp.peer.net.ppspp_transport import chunk_pieces, covering_chunks

    data = random.Random(size).randbytes(size)
    ppspp = [data[j : j + sub] for j in range(0, size, sub)]
    count = -(-size // chunk)
    seen: set[int] = set()
    for index in range(count):
        offset, length = index * chunk, min(chunk, size - index * chunk)
        numbers = covering_chunks(offset, length, sub)
        assert numbers.start * sub <= offset < (numbers.start + 1) * sub
        assert numbers[-1] * sub <= offset + length - 1 < (numbers[-1] + 1) * sub
        assert numbers[-1] < len(ppspp)
        pieces = chunk_pieces(offset, length, sub, [ppspp[j] for j in numbers])
        assert b"".join(pieces) == data[offset : offset + length]
        seen.update(numbers)
    assert seen == set(range(len(ppspp)))  # every PPSPP chunk, none past the end
    # The first and the last description chunk, by hand for the defaults.
    if chunk == 262144:
        assert covering_chunks(0, chunk, sub) == range(0, 32)
        assert covering_chunks(5 * chunk, 1000, sub) == range(160, 161)


def _corrupt_data(datagram: bytes) -> bytes:
    """The DATA of a datagram with its last byte flipped (other datagrams as they are)."""
    return datagram[:-1] + bytes([datagram[-1] ^ 0xFF]) if len(datagram) > 1000 else datagram


def test_a_forged_chunk_is_rejected_and_never_handed_out() -> None:
    _, content = content_of(8 * 1024, 1024)
    client = client_for(content)
    pair = Pair(content, client, to_client=_corrupt_data)
    client.request(3, 0.0)
    pair.run(lambda: bool(pair.results))
    assert pair.results == [ChunkRejected(3, "chunk 3 does not verify against the root hash")]
    assert client.stats["chunks_rejected"] == 1
    # The channel goes on: asked again and delivered intact, it verifies.
    pair.to_client = lambda d: d
    client.request(3, pair.now)
    pair.run(lambda: len(pair.results) == 2)
    assert isinstance(pair.results[1], ChunkVerified)


def test_forged_hashes_are_caught() -> None:
    # A peer that sends another content's hashes and chunk: nothing verifies against our root.
    _, content = content_of(8 * 1024, 1024)
    forged = SeededContent.from_bytes(b"x" * (8 * 1024), chunk_size=1024, merkle_hash=SHA256)
    client = client_for(content)
    pair = Pair(forged, client)
    # The forger answers under our root hash, serving its own bytes and hashes.
    pair.seeder._contents[content.swarm_id] = forged
    client.request(5, 0.0)
    client.request(0, 0.0)
    pair.run(lambda: len(pair.results) == 2)
    assert all(isinstance(r, ChunkRejected) for r in pair.results)
    assert client.stats["chunks_verified"] == 0


def test_cancel_tells_the_peer_and_late_data_is_acknowledged_not_kept() -> None:
    _, content = content_of(8 * 1024, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    pair.run(lambda: client.state is ChannelState.OPEN)
    client.request(2, pair.now)
    sent = client.datagrams_to_send()
    client.cancel(2, pair.now)
    [cancel] = client.datagrams_to_send()
    messages = decode_datagram(cancel, client._parameters).messages
    assert messages == (Cancel(chunk=ChunkRange(start=2, end=2)),)
    for datagram in sent:  # the request reaches the seeder anyway: DATA comes
        pair.seeder.datagram_received(datagram, ADDRESS, pair.now)
    pair.run(lambda: client.stats["unwanted_data"] > 0)
    assert pair.results == []
    pair.run(lambda: False, limit=pair.now + 5)
    assert pair.seeder.stats["data_acked"] == 1 and pair.seeder.stats["data_lost"] == 0


def test_no_answer_closes_the_channel() -> None:
    _, content = content_of(4096, 1024)
    client = client_for(content, connect_timeout=3.0)
    client.request(0, 0.0)
    handshakes = len(client.datagrams_to_send())
    now = 0.0
    while not client.closed:
        deadline = client.next_deadline()
        assert deadline is not None
        now = deadline
        client.handle_timer(now)
        handshakes += len(client.datagrams_to_send())
    assert now == 3.0 and handshakes == 3
    assert client.failure == "no answer from the peer after 3 s"
    assert client.next_deadline() is None


def _reply(client: ChannelClient, **options: object) -> bytes:
    """A seeder's answer to ``client`` with these handshake options and HAVE of its extent."""
    handshake = Handshake(
        source_channel=99,
        version=1,
        min_version=1,
        content_integrity=None,
        merkle_hash=SHA256,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        chunk_size=client.chunk_size,
    )
    fields = {name: getattr(handshake, name) for name in handshake.__dataclass_fields__}
    fields.update(options)
    extent = fields.pop("extent", client.chunk_count)
    assert isinstance(extent, int)
    reply = Handshake(**fields)
    have: Have = Have(chunk=ChunkRange(start=0, end=extent - 1))
    if fields["chunk_addressing"] is ChunkAddressing.BIN_32:
        have = Have(chunk=Bin(number=extent - 1))
    parameters = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32, merkle_hash=SHA256
    )
    datagram = Datagram(channel=client.local_id, messages=(reply, have))
    return encode_datagram(datagram, parameters.with_handshake(reply), profile=_PLAIN)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"chunk_size": 2048}, "chunk size 2048"),
        ({"merkle_hash": MerkleHashFunction.SHA1}, "Merkle hash function SHA1"),
        ({"chunk_addressing": ChunkAddressing.BIN_32}, "chunk addressing method BIN_32"),
        ({"extent": 5}, "5 chunks, not 4"),
        ({"version": 2}, "protocol version 2"),
    ],
)
def test_an_answer_we_cannot_use_closes_the_channel(
    options: dict[str, object], problem: str
) -> None:
    _, content = content_of(4096, 1024)
    client = client_for(content)
    client.datagrams_to_send()
    client.datagram_received(_reply(client, **options), 0.1)
    assert client.closed
    assert client.failure == f"the peer answered with {problem}"
    assert client.stats["refused_reply"] == 1


def test_hostile_datagrams_are_dropped_and_counted() -> None:
    _, content = content_of(8 * 1024, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    client.request(1, 0.0)
    pair.run(lambda: bool(pair.results))
    parameters = client._parameters
    ours = client.local_id

    def datagram(*messages: object) -> bytes:
        return encode_datagram(
            Datagram(channel=ours, messages=messages),  # type: ignore[arg-type]
            parameters,
            profile=_PLAIN,
        )

    hostile = [
        b"",
        b"\x00\x01",
        ours.to_bytes(4, "big") + b"\xff\xff",
        encode_datagram(Datagram(channel=ours ^ 1, messages=()), parameters),
        datagram(Data(chunk=ChunkRange(start=8, end=8), timestamp=0, data=b"x" * 1024)),
        datagram(Data(chunk=ChunkRange(start=6, end=6), timestamp=0, data=b"x" * 1024)),
        datagram(Have(chunk=ChunkRange(start=0, end=1 << 31))),
        datagram(Integrity(chunk=ChunkRange(start=1, end=2), hash=bytes(32))),
        datagram(Integrity(chunk=ChunkRange(start=0, end=(1 << 20) - 1), hash=bytes(32))),
        datagram(*[Integrity(chunk=ChunkRange(start=i, end=i), hash=bytes(32)) for i in range(8)]),
    ]
    for data in hostile:
        client.datagram_received(data, pair.now)
    assert client.state is ChannelState.OPEN
    assert client.take_results() == []
    stats = client.stats
    assert stats["malformed"] == 3 and stats["wrong_channel"] == 1
    assert stats["data_out_of_range"] == 1 and stats["unwanted_data"] == 1
    assert stats["have_past_end"] == 1 and stats["bad_integrity"] == 2
    # Forged candidates for verified nodes conflict; the next chunk still verifies.
    assert stats["integrity_conflict"] >= 1
    client.request(6, pair.now)
    pair.run(lambda: len(pair.results) == 2)
    assert isinstance(pair.results[1], ChunkVerified)


def test_the_peer_closing_closes_the_channel() -> None:
    _, content = content_of(4096, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    client.request(0, 0.0)
    pair.run(lambda: bool(pair.results))
    pair.seeder.close_all(pair.now)
    pair.run(lambda: client.closed)
    assert client.failure == "the peer closed the channel"
    client.request(1, pair.now)  # nothing more goes out
    assert client.datagrams_to_send() == [] and client.wanted == frozenset()
