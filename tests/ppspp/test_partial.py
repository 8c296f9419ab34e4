"""Serving a content over PPSPP while holding part of it (``peer/ppspp/partial.py``).

The subtree hashes (one per description chunk) are checked against the root and refused when
forged; a partial server's peaks and inner hashes are the complete tree's; the seeding engine
serving partial content announces the held ranges, serves held chunks that our channel client
verifies up to the root, drops requests of chunks not held, and announces chunks newly held.
Pair-wise, without sockets.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_targets import load_target
from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import IntegrityError
from ppsp.peer.ppspp import BytesChunks, SeededContent, Seeder
from ppsp.peer.ppspp.client import (
    MAX_PEER_RANGES,
    ChannelClient,
    ChannelState,
    ChunkVerified,
    ClientConfig,
)
from ppsp.peer.ppspp.content import bin_parent, bin_range, bin_sibling
from ppsp.peer.ppspp.partial import (
    PartialContent,
    SubtreeHashes,
    cover_bins,
    encode_subtrees,
    subtree_hashes_of_tree,
    subtree_level,
)
from ppsp.peer.ppspp.verify import ChunkRanges
from ppsp.wire.ppspp import (
    Bin,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Datagram,
    Handshake,
    Have,
    MerkleHashFunction,
    Message,
)

SHA256 = MerkleHashFunction.SHA256
ADDRESS = ("127.0.0.6", 40000)
CHUNK = 1024
_PLAIN = EncoderProfile.PLAIN
LEVEL = 3  # description chunks of 8 KiB: 8 PPSPP chunks each


def full_content(size: int, chunk_size: int = CHUNK) -> tuple[bytes, SeededContent]:
    data = random.Random(size).randbytes(size)
    return data, SeededContent.from_bytes(data, chunk_size=chunk_size, merkle_hash=SHA256)


def partial_of(
    data: bytes, full: SeededContent, held: set[int], level: int = LEVEL, **options: int
) -> PartialContent:
    subtrees = SubtreeHashes.decode(
        encode_subtrees(subtree_hashes_of_tree(full.tree, level)),
        full.swarm_id,
        chunk_count=full.chunk_count,
        level=level,
    )
    return PartialContent(
        subtrees,
        size=full.size,
        chunk_size=full.chunk_size,
        reader=BytesChunks(data, full.chunk_size),
        holds=held.__contains__,
        **options,
    )


class Pair:
    """A seeding engine and a channel client exchanging datagrams, 1 ms per datagram."""

    def __init__(self, seeder: Seeder, client: ChannelClient) -> None:
        self.seeder = seeder
        self.client = client
        self.now = 0.0
        self.verified: dict[int, bytes] = {}

    def run(self, until: Callable[[], bool], limit: float = 60.0) -> None:
        seeder, client = self.seeder, self.client
        while not until() and self.now < limit:
            moved = False
            for data in client.datagrams_to_send():
                moved = True
                self.now += 0.001
                seeder.datagram_received(data, ADDRESS, self.now)
            for _, data in seeder.datagrams_to_send():
                moved = True
                self.now += 0.001
                client.datagram_received(data, self.now)
            self._take()
            if moved:
                continue
            deadlines = [d for d in (seeder.next_deadline(), client.next_deadline()) if d]
            if not deadlines:
                return
            self.now = max(self.now, min(deadlines))
            seeder.handle_timer(self.now)
            client.handle_timer(self.now)
            self._take()

    def _take(self) -> None:
        for result in self.client.take_results():
            assert isinstance(result, ChunkVerified), result
            self.verified[result.index] = result.data


def client_of(content: PartialContent) -> ChannelClient:
    return ChannelClient(
        content.swarm_id,
        size=content.size,
        chunk_size=content.chunk_size,
        now=0.0,
        config=ClientConfig(ack_delay=0.0),
    )


def test_subtree_level() -> None:
    assert subtree_level(262144, 8192) == 5  # the defaults
    assert subtree_level(8192, 8192) == 0
    assert subtree_level(1000, 1000) == 0  # PPSPP chunks are the description's own
    assert subtree_level(3 * 8192, 8192) is None  # not a power-of-two multiple: off
    assert subtree_level(100000, 8192) is None
    assert subtree_level(4096, 8192) is None


@given(count=st.integers(1, 300), level=st.integers(0, 6), data=st.data())
def test_subtree_hashes_rebuild_the_root_and_forgeries_are_refused(
    count: int, level: int, data: st.DataObject
) -> None:
    leaves = [bytes([i % 251, i // 251]) * 16 for i in range(count)]
    full = SeededContent(
        size=count, leaf_hashes=leaves, reader=BytesChunks(b""), chunk_size=1, merkle_hash=SHA256
    )
    hashes = subtree_hashes_of_tree(full.tree, level)
    bins = cover_bins(count, level)
    # One hash per description chunk, more (at most ``level``) for a short last one.
    spans = -(-count // (1 << level))
    assert spans <= len(hashes) < spans + max(level, 1)
    # The bins cover the content exactly, left to right.
    covered = [bin_range(number) for number in bins]
    assert covered[0].start == 0 and covered[-1].end == count - 1
    assert all(a.end + 1 == b.start for a, b in itertools.pairwise(covered))
    wire = encode_subtrees(hashes)
    checked = SubtreeHashes.decode(wire, full.swarm_id, chunk_count=count, level=level)
    assert checked.hashes() == hashes
    for number, value in full.peaks:
        assert checked.nodes[number] == value
    # Any byte changed, a hash missing or one too many: refused.
    at = data.draw(st.integers(0, len(wire) - 1))
    forged = wire[:at] + bytes([wire[at] ^ 1]) + wire[at + 1 :]
    for bad in (forged, wire[:-32], wire + bytes(32), wire[:-1]):
        with pytest.raises(IntegrityError):
            SubtreeHashes.decode(bad, full.swarm_id, chunk_count=count, level=level)


def test_partial_content_hashes_are_the_complete_trees() -> None:
    data, full = full_content(100 * CHUNK + 500)  # 101 chunks: 12 full spans and one of 5
    partial = partial_of(data, full, held={0, 3, 12}, cache_size=1)
    assert partial.peaks == full.peaks
    assert partial.description_chunks == 13
    assert partial.held_ranges() == [
        ChunkRange(start=0, end=7),
        ChunkRange(start=24, end=31),
        ChunkRange(start=96, end=100),
    ]
    for index in [*range(8), *range(24, 32), *range(96, 101)]:
        node = 2 * index
        while node != partial.peak_for(index):  # every uncle a DATA may need, and the node
            assert partial.hash_of(bin_sibling(node)) == full.hash_of(bin_sibling(node))
            assert partial.hash_of(node) == full.hash_of(node)
            node = bin_parent(node)
        assert partial.read(index) == full.read(index)
    assert partial.unheld_run(9) == 15 and partial.unheld_run(3) is None
    with pytest.raises(ValueError, match="not held"):
        partial.read(9)
    with pytest.raises(ValueError, match="not held"):
        partial.hash_of(2 * 9)


def test_bytes_that_do_not_match_the_root_are_not_served() -> None:
    data, full = full_content(32 * CHUNK)
    damaged = bytearray(data)
    damaged[CHUNK * 9] ^= 1  # in description chunk 1
    partial = partial_of(bytes(damaged), full, held={0, 1})
    assert partial.hash_of(2 * 0 + 2) == full.hash_of(2)
    with pytest.raises(ValueError, match="does not match"):
        partial.hash_of(2 * 8)


@pytest.mark.parametrize(
    ("held", "wanted"),
    [({1, 11}, [9, 15, 88, 95, 8]), ({12, 0}, [96, 100, 7, 0, 97])],
)
def test_a_partial_server_serves_what_it_holds_to_our_client(
    held: set[int], wanted: list[int]
) -> None:
    data, full = full_content(100 * CHUNK + 500)  # 101 chunks: the last span is 96-100
    partial = partial_of(data, full, held=held)
    pair = Pair(Seeder(partial), client_of(partial))
    client = pair.client
    pair.run(lambda: client.state is ChannelState.OPEN)
    # The answer announced the held ranges, not the peaks: the client accepts them.
    announced = [i for i in range(full.chunk_count) if client.peer_has(i)]
    assert announced == [i for i in range(full.chunk_count) if i // 8 in held]
    assert not client.peer_complete
    assert all(client.peer_holds(8 * d, min(8 * d + 7, 100)) == (d in held) for d in range(13))
    client.request_many(wanted, pair.now)
    pair.run(lambda: len(pair.verified) == len(wanted))
    assert pair.verified == {i: data[i * CHUNK : (i + 1) * CHUNK] for i in wanted}
    assert client.stats["chunks_rejected"] == 0


def test_a_request_for_a_chunk_not_held_is_dropped_until_it_is_held() -> None:
    data, full = full_content(64 * CHUNK)
    held = {0}
    partial = partial_of(data, full, held=held)
    seeder = Seeder(partial)
    pair = Pair(seeder, client_of(partial))
    client = pair.client
    pair.run(lambda: client.state is ChannelState.OPEN)
    client.request_many([20, 21, 22, 3], pair.now)
    pair.run(lambda: 3 in pair.verified)
    assert set(pair.verified) == {3}
    assert seeder.stats["request_not_held"] == 3  # 20-22: dropped, nothing sent
    assert seeder.stats["data_sent"] == 1 and seeder.stats["read_error"] == 0
    assert not client.peer_has(20)
    # Description chunk 2 (chunks 16-23) arrives: announced, and the request asked again
    # (the client's request timer) is served.
    held.add(2)
    seeder.announce(partial.swarm_id, partial.span(2), pair.now)
    assert seeder.stats["haves_announced"] == 1
    pair.run(lambda: client.peer_has(20))
    assert all(client.peer_has(i) for i in range(16, 24)) and not client.peer_has(24)
    pair.run(lambda: len(pair.verified) == 4)
    assert pair.verified[21] == data[21 * CHUNK : 22 * CHUNK]
    assert client.state is ChannelState.OPEN


def test_announcements_go_to_established_channels_only_and_catch_up() -> None:
    data, full = full_content(64 * CHUNK)
    held = {0}
    partial = partial_of(data, full, held=held)
    seeder = Seeder(partial)
    client = client_of(partial)
    seeder.datagram_received(client.datagrams_to_send()[0], ADDRESS, 0.1)
    answer = seeder.datagrams_to_send()
    assert len(answer) == 1
    # Chunks held while the channel is half-open: nothing is sent to it now ...
    held.add(5)
    seeder.announce(partial.swarm_id, partial.span(5), 0.2)
    assert seeder.datagrams_to_send() == [] and seeder.stats["haves_announced"] == 0
    # ... and the held ranges go again once the client's first datagram establishes it.
    client.datagram_received(answer[0][1], 0.3)
    client.request(3, 0.3)
    for data_out in client.datagrams_to_send():
        seeder.datagram_received(data_out, ADDRESS, 0.4)
    for _, data_in in seeder.datagrams_to_send():
        client.datagram_received(data_in, 0.5)
    assert seeder.stats["haves_announced"] == 1
    assert client.peer_has(40) and client.peer_has(7) and not client.peer_has(8)


def test_a_complete_content_is_a_partial_one_holding_everything() -> None:
    # The same datagrams whether the content is served complete or as a partial content
    # holding every description chunk (but the HAVEs: peaks vs held ranges, the same chunks).
    data, full = full_content(40 * CHUNK + 3)
    partial = partial_of(data, full, held=set(range(6)))
    assert partial.held_ranges() == [ChunkRange(start=0, end=full.chunk_count - 1)]
    client = client_of(partial)
    pair = Pair(Seeder(partial), client)
    client.request_many(range(full.chunk_count), 0.0)
    pair.run(lambda: len(pair.verified) == full.chunk_count)
    assert b"".join(pair.verified[i] for i in range(full.chunk_count)) == data
    assert client.peer_complete


def _opening(
    content: PartialContent, addressing: ChunkAddressing
) -> tuple[bytes, ChannelParameters]:
    parameters = ChannelParameters(chunk_addressing=addressing, merkle_hash=SHA256)
    handshake = Handshake(
        source_channel=0x4321,
        version=1,
        min_version=1,
        swarm_id=content.swarm_id,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=SHA256,
        chunk_addressing=addressing,
        chunk_size=content.chunk_size,
    )
    datagram = Datagram(channel=0, messages=(handshake,))
    return encode_datagram(datagram, parameters, profile=EncoderProfile.RFC7574), parameters


@pytest.mark.parametrize("addressing", [ChunkAddressing.CHUNK_RANGE_32, ChunkAddressing.BIN_32])
def test_held_ranges_are_announced_in_the_channels_addressing_and_datagrams_that_fit(
    addressing: ChunkAddressing,
) -> None:
    # 512 chunks, a description chunk each (level 0), every other one held: 256 ranges.  The
    # handshake's answer is one datagram a few times the opening's size (RFC 7574 section
    # 13.1.1: the address has not shown it receives); the rest once the channel is established.
    data, full = full_content(512 * CHUNK)
    held = set(range(0, 512, 2)) | {501}
    partial = partial_of(data, full, held=held, level=0)
    seeder = Seeder(partial)
    opening, parameters = _opening(partial, addressing)
    seeder.datagram_received(opening, ADDRESS, 0.0)
    (answer,) = seeder.datagrams_to_send()
    assert len(answer[1]) <= seeder.config.answer_factor * len(opening)
    (channel,) = seeder.channels
    seeder.datagram_received(channel.local_id.to_bytes(4, "big"), ADDRESS, 0.1)  # keep-alive
    rest = seeder.datagrams_to_send()
    assert rest
    announced: set[int] = set()
    for number, (_, data_out) in enumerate([answer, *rest]):
        assert len(data_out) <= seeder.config.max_datagram_bytes
        messages = decode_datagram(data_out, parameters).messages
        if number == 0:
            assert isinstance(messages[0], Handshake)
            messages = messages[1:]
        for message in messages:
            assert isinstance(message, Have)
            spec = message.chunk
            assert isinstance(spec, Bin) == addressing.is_bin
            chunks = bin_range(spec.number) if isinstance(spec, Bin) else spec
            announced |= set(range(chunks.start, chunks.end + 1))
    assert announced == held


def test_the_peers_have_ranges_are_bounded() -> None:
    # A peer announcing ever more disjoint ranges: kept up to the bound, the rest counted.
    _, full = full_content(3 * MAX_PEER_RANGES * CHUNK)
    client = ChannelClient(
        full.swarm_id, size=full.size, chunk_size=CHUNK, now=0.0, config=ClientConfig()
    )
    parameters = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32, merkle_hash=SHA256, chunk_size=CHUNK
    )
    reply = Handshake(
        source_channel=9,
        version=1,
        min_version=1,
        merkle_hash=SHA256,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        chunk_size=CHUNK,
    )
    haves: list[Message] = [
        Have(chunk=ChunkRange(start=2 * i, end=2 * i)) for i in range(MAX_PEER_RANGES + 10)
    ]
    for start in range(0, len(haves), 1000):
        ahead: list[Message] = [reply] if start == 0 else []
        messages = (*ahead, *haves[start : start + 1000])
        datagram = Datagram(channel=client.local_id, messages=messages)
        client.datagram_received(encode_datagram(datagram, parameters, profile=_PLAIN), 0.1)
    assert client.state is ChannelState.OPEN
    assert client.stats["have_dropped"] == 10
    assert client.peer_has(0) and client.peer_has(2 * (MAX_PEER_RANGES - 1))
    assert not client.peer_has(1) and not client.peer_has(2 * MAX_PEER_RANGES)
    # A HAVE joining kept ranges is still taken: 0-2 merge into one.
    datagram = Datagram(channel=client.local_id, messages=(Have(chunk=ChunkRange(start=1, end=1)),))
    client.datagram_received(encode_datagram(datagram, parameters), 0.2)
    assert client.peer_has(1) and client.stats["have_dropped"] == 10


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 6)), max_size=40))
def test_the_have_range_set_is_a_set(ranges: list[tuple[int, int]]) -> None:
    model: set[int] = set()
    kept = ChunkRanges(1000)
    for start, length in ranges:
        assert kept.add(ChunkRange(start=start, end=start + length))
        model |= set(range(start, start + length + 1))
    assert {i for i in range(80) if i in kept} == model
    for first in range(0, 70, 7):
        assert kept.covers(first, first + 3) == all(i in model for i in range(first, first + 4))


def test_the_subtrees_fuzz_target_runs() -> None:
    module = load_target("fuzz_ppspp_subtrees")
    for junk in (b"", bytes(32), b"\xff" * 4000):
        module.test_one_input(junk)
    assert module.run_random(2_000, 3) == 2_000 + len(module.SEEDS)


def test_a_holder_of_nothing_answers_requests_with_nothing() -> None:
    # Requests for every chunk, several times: dropped a description chunk at a time, no
    # DATA, no read of the content, the channel kept.
    _, full = full_content(64 * CHUNK)
    partial = partial_of(b"", full, held=set())
    seeder = Seeder(partial)
    pair = Pair(seeder, client_of(partial))
    client = pair.client
    pair.run(lambda: client.state is ChannelState.OPEN)
    assert not any(client.peer_has(i) for i in range(64))
    client.request_many(range(64), pair.now)
    pair.run(lambda: seeder.stats["request_not_held"] >= 3 * 64, limit=pair.now + 10)
    assert seeder.stats["request_not_held"] >= 3 * 64  # asked again every 2 s
    assert seeder.stats["data_sent"] == seeder.stats["read_error"] == 0
    assert pair.verified == {} and client.state is ChannelState.OPEN
    assert len(seeder.channels) == 1


@given(
    count=st.integers(1, 200),
    level=st.integers(0, 5),
    held_bits=st.integers(0, (1 << 200) - 1),
)
def test_every_hash_a_partial_server_sends_is_the_complete_trees(
    count: int, level: int, held_bits: int
) -> None:
    # Random shapes: peaks, and for every held chunk each uncle up to its peak.
    data = bytes(range(256)) * (count // 256 + 1)
    full = SeededContent.from_bytes(data[:count], chunk_size=1, merkle_hash=SHA256)
    spans = -(-count >> level)
    held = {d for d in range(spans) if held_bits >> d & 1}
    partial = partial_of(data[:count], full, held=held, level=level, cache_size=2)
    assert partial.peaks == full.peaks
    for index in range(count):
        if index >> level not in held:
            assert partial.unheld_run(index) == partial.span(index >> level).end
            continue
        node = 2 * index
        while node != partial.peak_for(index):
            assert partial.hash_of(bin_sibling(node)) == full.hash_of(bin_sibling(node))
            node = bin_parent(node)
