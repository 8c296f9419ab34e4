"""The PPSPP leecher facing peers that misbehave, fall silent or speak bins; its timers.

Everything here is sans-I/O: datagrams are built with the codec (or are random bytes) and fed
with an explicit time.  Nothing a peer sends may raise, leave unbounded state, or get an
unverified byte written.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.ppspp import SeededContent
from ppsp.peer.ppspp.content import bin_of_range, bin_parent, bin_range, bin_sibling
from ppsp.peer.ppspp.leecher import Leecher, LeecherConfig, LeecherState
from ppsp.wire.ppspp import (
    Ack,
    Bin,
    ChannelParameters,
    Choke,
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
    Message,
    Request,
    Unchoke,
)

LIBSWIFT = ChannelParameters.libswift()
BINS = ChannelParameters(
    chunk_addressing=ChunkAddressing.BIN_32, merkle_hash=MerkleHashFunction.SHA1
)
OURS, THEIRS = 0x11223344, 0x55667788
DATA = random.Random(4).randbytes(5000)
CONTENT = SeededContent.from_bytes(DATA)


def reply(*messages: Message, parameters: ChannelParameters = LIBSWIFT, **options: object) -> bytes:
    """The peer's handshake reply to our channel, then ``messages``."""
    handshake = Handshake(
        source_channel=THEIRS,
        version=1,
        min_version=1,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=parameters.chunk_addressing,
        **options,  # type: ignore[arg-type]
    )
    datagram = Datagram(channel=OURS, messages=(handshake, *messages))
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def on_channel(*messages: Message, parameters: ChannelParameters = LIBSWIFT) -> bytes:
    """A datagram of the peer on our channel."""
    datagram = Datagram(channel=OURS, messages=messages)
    return encode_datagram(datagram, parameters, profile=EncoderProfile.PLAIN)


def peaks() -> tuple[Have, ...]:
    """The HAVEs of the content's peaks (what a seeder sends with its handshake)."""
    return tuple(Have(chunk=chunks) for chunks in CONTENT.peak_ranges())


def leecher(**config: object) -> Leecher:
    """A leecher of the content under our channel ID, its handshake not yet taken."""
    return Leecher(CONTENT.swarm_id, 0.0, LeecherConfig(channel_id=OURS, **config))  # type: ignore[arg-type]


def opened(**config: object) -> Leecher:
    """A leecher whose handshake the peer answered with the content's peaks."""
    result = leecher(**config)
    result.datagrams_to_send()
    result.datagram_received(reply(*peaks()), 0.0)
    assert result.state is LeecherState.DOWNLOADING and result.chunk_count == 5
    return result


def data_datagram(
    index: int,
    *,
    parameters: ChannelParameters = LIBSWIFT,
    peaks_too: bool = True,
    uncles_too: bool = True,
) -> bytes:
    """What a seeder sends for chunk ``index``: peak and uncle hashes, then the DATA."""

    def spec(chunks: ChunkRange) -> ChunkSpec:
        if parameters.chunk_addressing.is_bin:
            number = bin_of_range(chunks)
            assert number is not None
            return Bin(number=number)
        return chunks

    messages: list[Message] = []
    if peaks_too:
        for number, digest in CONTENT.peaks:
            messages.append(Integrity(chunk=spec(bin_range(number)), hash=digest))
    peak = CONTENT.peak_for(index)
    node, uncles = 2 * index, []
    while node != peak:
        uncles.append(bin_sibling(node))
        node = bin_parent(node)
    for number in reversed(uncles if uncles_too else []):
        messages.append(Integrity(chunk=spec(bin_range(number)), hash=CONTENT.hash_of(number)))
    chunk = spec(ChunkRange(start=index, end=index))
    messages.append(Data(chunk=chunk, timestamp=1, data=CONTENT.read(index)))
    return on_channel(*messages, parameters=parameters)


# --- timers -------------------------------------------------------------------------------


def test_an_unanswered_handshake_is_repeated_then_given_up() -> None:
    engine = leecher(handshake_interval=1.0, connect_timeout=3.5)
    (first,) = engine.datagrams_to_send()
    sent = [first]
    while not engine.done:
        deadline = engine.next_deadline()
        assert deadline is not None
        engine.handle_timer(deadline)
        sent += engine.datagrams_to_send()
    assert sent == [first] * 4  # at 0, 1, 2 and 3 s; nothing after giving up (no channel)
    assert engine.state is LeecherState.FAILED
    assert engine.failure == "no answer from the peer after 3.5 s"
    assert engine.next_deadline() is None


def test_a_silent_peer_fails_the_download_after_the_idle_timeout() -> None:
    engine = opened(idle_timeout=5.0, request_timeout=1.5, keepalive_interval=2.0)
    engine.datagrams_to_send()
    now = 0.0
    sent: list[bytes] = []
    while not engine.done:
        deadline = engine.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
        engine.handle_timer(now)
        sent += engine.datagrams_to_send()
    assert now == 5.0 and engine.failure == "no data from the peer for 5 s"
    # Requests went again after each request timeout; the last datagram closes the channel.
    requests = [d for d in sent if isinstance(decode_datagram(d, LIBSWIFT).messages[0], Request)]
    assert len(requests) >= 2
    assert sent[-1] == THEIRS.to_bytes(4, "big") + bytes(5) + b"\xff"


def test_keepalives_go_out_when_nothing_else_does() -> None:
    engine = opened(keepalive_interval=1.0, request_timeout=100.0, idle_timeout=100.0)
    engine.datagrams_to_send()
    engine.handle_timer(1.0)
    assert engine.datagrams_to_send() == [THEIRS.to_bytes(4, "big")]


# --- what the peer sends ------------------------------------------------------------------


def test_completes_from_handcrafted_datagrams_in_any_order() -> None:
    engine = opened()
    written: dict[int, bytes] = {}
    for index in (3, 0, 4, 1, 2):
        engine.datagram_received(data_datagram(index), 1.0)
        written.update(engine.take_chunks())
    assert engine.state is LeecherState.COMPLETE, engine.stats
    assert b"".join(written[i] for i in range(5)) == DATA and engine.size == 5000


def test_bin_addressing_is_spoken_when_the_peer_answers_with_it() -> None:
    engine = leecher()
    engine.datagrams_to_send()
    haves = tuple(Have(chunk=Bin(number=n)) for n, _ in CONTENT.peaks)
    engine.datagram_received(reply(*haves, parameters=BINS), 0.0)
    (requests,) = engine.datagrams_to_send()
    assert decode_datagram(requests, BINS).messages == (
        Request(chunk=Bin(number=3)),
        Request(chunk=Bin(number=8)),
    )
    for index in range(5):
        engine.datagram_received(data_datagram(index, parameters=BINS), 1.0)
    assert engine.state is LeecherState.COMPLETE, engine.stats
    replies = [decode_datagram(d, BINS).messages for d in engine.datagrams_to_send()[:-1]]
    specs = [m.chunk for ms in replies for m in ms if isinstance(m, Have | Ack)]
    assert len(specs) == 10 and all(isinstance(spec, Bin) for spec in specs)


def test_a_wrong_peak_is_never_trusted() -> None:
    engine = opened()
    damaged = bytearray(data_datagram(0))
    damaged[4 + 9 + 3] ^= 1  # inside the first peak's hash
    engine.datagram_received(bytes(damaged), 1.0)
    assert engine.take_chunks() == [] and engine.stats["bad_peaks"] == 1
    engine.datagram_received(data_datagram(0), 1.0)
    assert [index for index, _ in engine.take_chunks()] == [0]


def test_a_peer_announcing_fewer_chunks_than_the_content_has_never_completes_it() -> None:
    # Seven chunks under the root; the peer announces five (the tree's height is the same)
    # and sends, with each chunk, the real hashes of every uncle up to the root, those of
    # the two chunks it keeps quiet about included: the padding beyond its five chunks must
    # be the empty hash, whatever it sends, so that chunk 4 cannot rebuild the root.
    content = SeededContent.from_bytes(random.Random(5).randbytes(7 * 1024))
    assert content.chunk_count == 7
    engine = Leecher(content.swarm_id, 0.0, LeecherConfig(channel_id=OURS, max_failures=3))
    engine.datagrams_to_send()
    engine.datagram_received(reply(Have(chunk=ChunkRange(start=0, end=4))), 0.0)
    assert engine.chunk_count == 5
    kept: dict[int, bytes] = {}
    for attempt in range(3):
        for index in range(5):
            node, uncles = 2 * index, []
            while node != 7:  # the root of a tree of eight leaves
                uncles.append(bin_sibling(node))
                node = bin_parent(node)
            messages: list[Message] = [
                Integrity(chunk=bin_range(number), hash=content.hash_of(number))
                for number in reversed(uncles)
            ]
            chunk = ChunkRange(start=index, end=index)
            messages.append(Data(chunk=chunk, timestamp=1, data=content.read(index)))
            engine.datagram_received(on_channel(*messages), 1.0 + attempt)
            kept.update(engine.take_chunks())
    assert sorted(kept) == [0, 1, 2, 3]
    assert engine.state is LeecherState.FAILED, engine.stats
    assert engine.failure is not None and "chunk 4 does not verify" in engine.failure


def test_huge_content_is_refused_before_anything_is_allocated() -> None:
    engine = leecher(max_chunks=1000)
    engine.datagrams_to_send()
    engine.datagram_received(reply(Have(chunk=ChunkRange(start=0, end=0xFFFFFFFE))), 0.0)
    assert engine.state is LeecherState.FAILED
    assert engine.failure == "the peer announces 4294967295 chunks, more than 1000"


def test_odd_messages_are_counted_and_dropped() -> None:
    engine = opened()
    engine.datagrams_to_send()
    engine.datagram_received(b"\x00\x01", 1.0)  # shorter than a channel ID
    engine.datagram_received(THEIRS.to_bytes(4, "big") + b"\x0a", 1.0)  # another channel
    engine.datagram_received(
        on_channel(Integrity(chunk=ChunkRange(start=1, end=2), hash=bytes(20))), 1.0
    )
    engine.datagram_received(
        on_channel(Data(chunk=ChunkRange(start=7, end=7), timestamp=0, data=b"x")), 1.0
    )
    engine.datagram_received(on_channel(Have(chunk=ChunkRange(start=0, end=9))), 1.0)
    engine.datagram_received(on_channel(Handshake(source_channel=999)), 1.0)
    engine.datagram_received(on_channel(Request(chunk=ChunkRange(start=0, end=0))), 1.0)
    assert engine.stats["malformed"] == engine.stats["wrong_channel"] == 1
    assert engine.stats["bad_integrity"] == engine.stats["data_out_of_range"] == 1
    assert engine.stats["have_past_end"] == engine.stats["handshake_other"] == 1
    assert engine.stats["ignored_request"] == 1
    assert engine.state is LeecherState.DOWNLOADING and engine.take_chunks() == []


def test_a_chunk_without_its_hashes_waits_for_them() -> None:
    # libswift does not send again uncle hashes it sent in a datagram that was lost: chunk 1
    # comes without them, is kept (not asked again at once), and verifies when chunk 0 brings
    # them.
    engine = opened()
    engine.datagrams_to_send()
    engine.datagram_received(data_datagram(1, uncles_too=False), 1.0)
    assert engine.take_chunks() == [] and engine.stats["missing_hashes"] == 1
    assert engine.datagrams_to_send() == []  # no ACK, and no REQUEST of chunk 1 again
    engine.datagram_received(data_datagram(0, peaks_too=False), 1.1)
    assert [index for index, _ in engine.take_chunks()] == [0, 1]
    assert engine.stats["verified_later"] == 1


def test_a_short_middle_chunk_is_rejected() -> None:
    engine = opened()
    datagram = data_datagram(0)
    engine.datagram_received(datagram[:-1], 1.0)
    assert engine.stats["chunks_rejected"] == 1 and engine.take_chunks() == []


def test_unverified_hashes_are_bounded() -> None:
    # Hashes of nodes of the tree only (5 chunks: 8 leaves wide), the newest few of them.
    engine = opened(max_pending_hashes=3)
    for start in range(1000):
        spec = ChunkRange(start=start, end=start)
        engine.datagram_received(on_channel(Integrity(chunk=spec, hash=bytes(20))), 1.0)
    assert list(engine._hashes.pending) == [10, 12, 14]
    assert engine.stats["bad_integrity"] == 1000 - 8


def test_choke_stops_requests_until_unchoke() -> None:
    engine = opened(min_window=1, request_timeout=1.0)
    engine.datagrams_to_send()
    engine.datagram_received(on_channel(Choke()), 0.5)
    engine.handle_timer(1.0)  # the request of chunk 0 times out: not asked again while choked
    assert engine.datagrams_to_send() == []
    engine.datagram_received(on_channel(Unchoke()), 1.2)
    (again,) = engine.datagrams_to_send()
    assert decode_datagram(again, LIBSWIFT).messages == (Request(chunk=ChunkRange(start=0, end=0)),)


def test_the_peer_closing_the_channel_fails_the_download() -> None:
    engine = opened()
    engine.datagram_received(on_channel(Handshake(source_channel=0)), 1.0)
    assert engine.state is LeecherState.FAILED and engine.failure == "the peer closed the channel"
    engine.datagram_received(data_datagram(0), 1.0)
    assert engine.take_chunks() == [] and engine.stats["after_close"] == 1


def test_a_refusing_reply_fails_without_a_word() -> None:
    engine = leecher()
    engine.datagrams_to_send()
    engine.datagram_received(on_channel(Handshake(source_channel=0)), 0.5)
    assert engine.failure == "the peer refused the channel (closing handshake)"
    assert engine.datagrams_to_send() == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_never_raise(noise: bytes, on_our_channel: bool) -> None:
    engine = opened()
    engine.datagrams_to_send()
    prefix = OURS.to_bytes(4, "big") if on_our_channel else b""
    engine.datagram_received(prefix + noise, 1.0)
    assert engine.take_chunks() == []
    engine.datagram_received(data_datagram(2), 1.0)
    assert [index for index, _ in engine.take_chunks()] in ([2], [])
