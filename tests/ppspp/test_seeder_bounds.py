"""What one host, or one datagram, may cost a PPSPP seeder (and the live server), sans-I/O.

- **Channels per host** (``peer/ppspp/admission.py``): one host, whatever its ports, holds at
  most its share; a full table makes room from the most crowded host, or takes an idle
  channel's place; a channel whose peer never asks for anything is closed.
- **Half-open channels** cost the same whatever the content's size: nothing per chunk or per
  tree node is kept for a peer (RFC 7574 section 13.1.2).
- **HAVE and ACK** of ranges cost the same whatever the content's size, and an opening
  datagram (no return path needed) carries at most ``max_opening_messages`` messages.
- **The handshake's answer** to an address that has not shown it receives is one datagram of
  a few times the opening's size (section 13.1.1), the rest once established; the same
  handshake again is answered at most every ``answer_interval``.

Datagrams are built with the codec; time is passed in.
"""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.ppspp import BytesChunks, SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.channel import Channel, ChannelState
from ppsp.peer.ppspp.content import bin_range
from ppsp.peer.ppspp.live import MUNRO_CHUNKS, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_server import (
    LIVE_PARAMETERS,
    LiveServer,
    LiveServerConfig,
    live_handshake,
)
from ppsp.peer.ppspp.partial import (
    PartialContent,
    SubtreeHashes,
    encode_subtrees,
    subtree_hashes_of_tree,
)
from ppsp.wire.ppspp import (
    Ack,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Datagram,
    Handshake,
    Have,
    MerkleHashFunction,
    Message,
    Request,
)

LIBSWIFT = ChannelParameters.libswift()
CROWD = "127.0.0.3"
OTHER = ("127.0.0.1", 7000)
CONTENT = SeededContent.from_bytes(random.Random(5).randbytes(20_000))  # 20 chunks
WINDOW = 4 * MUNRO_CHUNKS  # a live discard window of 4 live chunks


class LargeContent:
    """A stored content of ``chunks`` 1 KiB chunks whose bytes and hashes nobody reads here:
    what a handshake, HAVEs and ACKs touch of a large content, without hashing one."""

    def __init__(self, chunks: int) -> None:
        self.chunk_count = chunks
        self.swarm_id = hashlib.sha1(chunks.to_bytes(8, "big")).digest()
        self.chunk_size = 1024
        self.size = chunks * 1024
        self.merkle_hash = MerkleHashFunction.SHA1
        self.height = (chunks - 1).bit_length()
        self.width = 1 << self.height
        bins, first = [], 0
        for level in range(self.height, -1, -1):
            if chunks & (1 << level):
                bins.append((first >> level) * (2 << level) + (1 << level) - 1)
                first += 1 << level
        self.peaks = tuple((number, bytes(20)) for number in bins)

    def chunk_length(self, index: int) -> int:
        return 1024

    def read(self, index: int) -> bytes:
        return bytes(1024)

    def hash_of(self, number: int) -> bytes:
        return bytes(20)

    def peak_for(self, index: int) -> int:
        return next(n for n, _ in self.peaks if bin_range(n).start <= index <= bin_range(n).end)

    def announced_ranges(self) -> list[ChunkRange]:
        return [bin_range(number) for number, _ in self.peaks]

    def unheld_run(self, index: int) -> int | None:
        return None


def seeder(content: Any = CONTENT, **config: Any) -> Seeder:
    ids = iter(range(0x5EED0001, 0x5EEDFFFF))
    contents = [content] if isinstance(content, LargeContent) else content
    return Seeder(contents, config=SeederConfig(**config), channel_ids=lambda: next(ids))


def opening(
    source: int,
    content: Any = CONTENT,
    *extra: Message,
    addressing: ChunkAddressing = ChunkAddressing.CHUNK_RANGE_32,
    chunk_size: int | None = None,
) -> bytes:
    handshake = Handshake(
        source_channel=source,
        version=1,
        min_version=1,
        swarm_id=content.swarm_id,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=content.merkle_hash,
        chunk_addressing=addressing,
        chunk_size=chunk_size,
    )
    parameters = ChannelParameters(chunk_addressing=addressing, merkle_hash=content.merkle_hash)
    datagram = Datagram(channel=0, messages=(handshake, *extra))
    return encode_datagram(datagram, parameters, profile=EncoderProfile.PLAIN)


def on(channel: Channel, *messages: Message) -> bytes:
    datagram = Datagram(channel=channel.local_id, messages=messages)
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def r(start: int, end: int) -> ChunkRange:
    return ChunkRange(start=start, end=end)


def connect(
    engine: Seeder, address: tuple[Any, ...], source: int, now: float, content: Any = CONTENT
) -> Channel | None:
    """Open and confirm a channel (a keep-alive on our channel ID); None when unanswered."""
    engine.datagram_received(opening(source, content), address, now)
    answers = [d for a, d in engine.datagrams_to_send() if a == address]
    if not answers:
        return None
    ours = decode_datagram(answers[-1], LIBSWIFT).messages[0]
    assert isinstance(ours, Handshake)
    channel = next(c for c in engine.channels if c.local_id == ours.source_channel)
    engine.datagram_received(on(channel), address, now)
    return channel


def traced(action: Callable[[], None]) -> tuple[int, int]:
    """The memory ``action`` leaves allocated, and the most it allocated at once (bytes)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return kept - before, peak - before


# --- channels per host (F2) ----------------------------------------------------------------


def test_one_host_holds_its_share_whatever_its_ports_and_others_still_get_in() -> None:
    # 256 ports x 4 handshakes from one host, each answer confirmed: before, 1024 channels
    # (4 per port) filled the table and nobody else was answered.
    engine = seeder()
    for port in range(256):
        for k in range(4):
            connect(engine, (CROWD, 20000 + port), 0x100000 + 8 * port + k, 1.0 + port / 1000)
    assert len(engine.channels) == SeederConfig().max_channels_per_host == 16
    assert all(c.state is ChannelState.ESTABLISHED for c in engine.channels)
    assert connect(engine, OTHER, 0x77, 2.0) is not None


def test_a_full_table_makes_room_from_the_most_crowded_host() -> None:
    engine = seeder(max_channels=8)
    crowd = [connect(engine, (CROWD, 20000 + i), 0x100 + i, 1.0) for i in range(8)]
    assert all(crowd) and len(engine.channels) == 8
    for channel in crowd[1:]:  # each asks for something but the first
        assert channel is not None
        engine.datagram_received(on(channel, Request(chunk=r(0, 0))), channel.address, 1.5)
    engine.datagrams_to_send()
    newcomer = connect(engine, OTHER, 0x77, 2.0)
    assert newcomer is not None and newcomer.state is ChannelState.ESTABLISHED
    assert crowd[0] not in engine.channels and len(engine.channels) == 8
    assert engine.stats["channels_evicted:crowded"] == 1
    # No host holding more than another: a newcomer is refused while every channel asks for
    # something, and takes the place of one that asked for nothing for evict_idle.
    small = seeder(max_channels=2)
    first = connect(small, ("127.0.0.4", 1), 1, 1.0)
    second = connect(small, ("127.0.0.5", 1), 2, 1.0)
    assert first is not None and second is not None
    small.datagram_received(on(second, Request(chunk=r(0, 0))), second.address, 5.0)
    assert connect(small, ("127.0.0.6", 1), 3, 5.0) is None
    assert small.stats["refused_handshake:full"] == 1
    assert connect(small, ("127.0.0.6", 1), 4, 1.0 + SeederConfig().evict_idle) is not None
    assert first not in small.channels and second in small.channels


def test_one_host_is_an_ipv6_slash_64() -> None:
    engine = seeder(max_channels_per_host=2)
    for n in range(5):
        connect(engine, (f"2001:db8:1:2::{n + 1}", 4000, 0, 0), 10 + n, 1.0)
    connect(engine, ("2001:db8:1:3::1", 4000, 0, 0), 20, 1.0)
    hosts = sorted(str(c.address[0]) for c in engine.channels)
    assert hosts == ["2001:db8:1:2::4", "2001:db8:1:2::5", "2001:db8:1:3::1"]


def test_a_channel_whose_peer_never_asks_is_closed() -> None:
    timeout = SeederConfig().request_timeout
    engine = seeder()
    idle = connect(engine, (CROWD, 1), 1, 1.0)
    asking = connect(engine, OTHER, 2, 1.0)
    assert idle is not None and asking is not None
    engine.datagram_received(on(asking, Request(chunk=r(0, 0))), OTHER, 2.0)
    engine.datagram_received(on(asking, Ack(chunk=r(0, 0), delay=1)), OTHER, 2.1)
    engine.datagrams_to_send()
    assert engine.next_deadline() == 1.0 + timeout
    for second in range(2, int(timeout)):  # keep-alives do not count as asking
        engine.datagram_received(on(idle), idle.address, float(second))
        engine.datagram_received(on(asking), OTHER, float(second))
    engine.handle_timer(1.0 + timeout)
    assert engine.channels == (asking,) and engine.stats["unasked_closed"] == 1
    [(address, closing)] = engine.datagrams_to_send()
    assert address == idle.address
    assert decode_datagram(closing, LIBSWIFT).messages == (Handshake(source_channel=0),)


def test_the_live_server_bounds_channels_per_host() -> None:
    server = LiveServer(
        live_ppspp_swarm_id(bytes(32)), window_chunks=4, config=LiveServerConfig(max_channels=32)
    )
    for port in range(64):  # one host: before, 4 per port filled the table
        hello = live_handshake(0x100 + port, discard_window=WINDOW, swarm_id=server.swarm_id)
        datagram = encode_datagram(Datagram(channel=0, messages=(hello,)), LIVE_PARAMETERS)
        server.datagram_received(datagram, (CROWD, 20000 + port), 1.0)
        for address, answer in server.datagrams_to_send():
            reply = decode_datagram(answer, LIVE_PARAMETERS).messages[0]
            if isinstance(reply, Handshake) and reply.source_channel:
                echo = reply.source_channel.to_bytes(4, "big")
                server.datagram_received(echo, address, 1.0)
    assert server.channel_count == LiveServerConfig().max_channels_per_host
    hello = live_handshake(7, discard_window=WINDOW, swarm_id=server.swarm_id)
    server.datagram_received(
        encode_datagram(Datagram(channel=0, messages=(hello,)), LIVE_PARAMETERS), OTHER, 2.0
    )
    assert [a for a, _ in server.datagrams_to_send()] == [OTHER]


# --- half-open channels (F3) ---------------------------------------------------------------


def test_channels_cost_the_same_whatever_the_contents_size() -> None:
    # 32 handshakes (spoofable: no answer read), then each confirmed.  Before, each channel
    # allocated a byte per chunk and a bit per tree node: 1.25 MB per channel here.
    def cost(chunks: int) -> tuple[int, int]:
        content = LargeContent(chunks)
        engine = seeder(content)
        addresses = [(f"127.0.{n}.1", 5000) for n in range(32)]

        def handshakes() -> None:
            for n, address in enumerate(addresses):
                engine.datagram_received(opening(n + 1, content), address, 1.0)

        half_open, _ = traced(handshakes)
        engine.datagrams_to_send()
        by_address = {c.address: c for c in engine.channels}

        def confirm() -> None:
            for address in addresses:
                engine.datagram_received(on(by_address[address]), address, 1.1)

        established, _ = traced(confirm)
        assert len(engine.channels) == 32
        return half_open, established

    small, large = cost(1000), cost(1 << 20)
    assert large[0] < small[0] + 8192 and large[1] < small[1] + 8192
    assert large[0] < 32 * 8192


# --- HAVE and ACK (F4) ---------------------------------------------------------------------


def test_haves_and_acks_of_the_whole_content_cost_the_same_whatever_its_size() -> None:
    # 1024 HAVEs and ACKs of everything (held already after the first): before, each wrote a
    # byte per chunk of the content.
    def peak(chunks: int) -> int:
        content = LargeContent(chunks)
        engine = seeder(content)
        channel = connect(engine, OTHER, 1, 1.0, content)
        assert channel is not None
        everything = r(0, 0xFFFFFFFF)
        flood = on(channel, *[Have(chunk=everything), Ack(chunk=everything, delay=1)] * 512)
        _, most = traced(lambda: engine.datagram_received(flood, OTHER, 2.0))
        assert channel.holds_all(r(0, chunks - 1)) and channel in engine.channels
        return most

    assert peak(1 << 20) < peak(1000) + 65536


def test_an_opening_datagram_carries_few_messages() -> None:
    content = LargeContent(1 << 20)
    engine = seeder(content)
    limit = SeederConfig().max_opening_messages
    everything = Have(chunk=r(0, 0xFFFFFFFF))
    engine.datagram_received(opening(1, content, *[everything] * (limit + 1)), OTHER, 1.0)
    assert engine.datagrams_to_send() == [] and not engine.channels
    assert engine.stats["refused_handshake:too_many_messages"] == 1
    # Up to the limit it is minor payload: kept (as ranges), answered.
    _, most = traced(
        lambda: engine.datagram_received(opening(2, content, *[everything] * limit), OTHER, 1.0)
    )
    assert len(engine.datagrams_to_send()) == 1 and most < 65536
    (channel,) = engine.channels
    assert channel.holds_all(r(0, content.chunk_count - 1))


# --- the handshake's answer (F5) -----------------------------------------------------------


def _partial_every_other(chunks: int) -> PartialContent:
    data = random.Random(chunks).randbytes(chunks * 1024)
    full = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA256)
    subtrees = SubtreeHashes.decode(
        encode_subtrees(subtree_hashes_of_tree(full.tree, 0)),
        full.swarm_id,
        chunk_count=full.chunk_count,
        level=0,
    )
    return PartialContent(
        subtrees,
        size=full.size,
        chunk_size=1024,
        reader=BytesChunks(data, 1024),
        holds=lambda index: index % 2 == 0,
    )


def test_the_answer_to_a_handshake_is_one_small_datagram_and_the_rest_follows() -> None:
    # A downloading peer serving half of 1024 chunks (512 ranges): before, the answer was
    # four datagrams, about 80 times the handshake's bytes, to an unverified address.
    partial = _partial_every_other(1024)
    engine = seeder([partial])
    for addressing in (ChunkAddressing.CHUNK_RANGE_64, ChunkAddressing.BIN_32):
        hello = opening(9, partial, addressing=addressing, chunk_size=1024)
        engine.datagram_received(hello, OTHER, 1.0)
        (answer,) = engine.datagrams_to_send()
        assert len(answer[1]) <= SeederConfig().answer_factor * len(hello)
        channel = engine.channels[-1]
        parameters = replace_addressing(addressing)
        held = _announced(decode_datagram(answer[1], parameters).messages[1:])
        assert 0 < len(held) < 512
        engine.datagram_received(on(channel), OTHER, 1.1)  # established: the rest
        for _, data in engine.datagrams_to_send():
            held |= _announced(decode_datagram(data, parameters).messages)
        assert held == set(range(0, 1024, 2))
        engine.close_all(1.2)
        engine.datagrams_to_send()


def replace_addressing(addressing: ChunkAddressing) -> ChannelParameters:
    return ChannelParameters(
        chunk_addressing=addressing, merkle_hash=MerkleHashFunction.SHA256, chunk_size=1024
    )


def _announced(messages: tuple[Message, ...]) -> set[int]:
    held: set[int] = set()
    for message in messages:
        assert isinstance(message, Have)
        spec = message.chunk
        chunks = spec if isinstance(spec, ChunkRange) else bin_range(spec.number)
        held |= set(range(chunks.start, chunks.end + 1))
    return held


def test_a_repeated_handshake_is_answered_at_most_every_answer_interval() -> None:
    interval = SeederConfig().answer_interval
    engine = seeder()
    for n in range(10):  # ten copies within the interval: one answer
        engine.datagram_received(opening(5), OTHER, 1.0 + n * interval / 20)
    assert len(engine.datagrams_to_send()) == 1
    assert engine.stats["handshake_again_limited"] == 9
    engine.datagram_received(opening(5), OTHER, 1.0 + interval)  # lost? answered again
    assert len(engine.datagrams_to_send()) == 1 and len(engine.channels) == 1
