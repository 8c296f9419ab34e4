"""A PPSPP datagram is read no further than its reader's bound on messages.

The codec takes the bound (``decode_datagram(..., max_messages=N)``) and refuses a datagram
(:class:`~ppsp.errors.TooManyMessages`) as message N + 1 begins, before reading it.  Every
engine passes its bound: the seeder and the live server 1 + ``max_opening_messages`` for an
opening datagram and ``max_messages_per_datagram`` on a channel; the client, the leecher and
the live receiver the same per-datagram bound (``opening.MAX_MESSAGES_PER_DATAGRAM``).  What
happens to a datagram over the bound is what happened once it had been read whole: the same
counters, the channel closed or the handshake unanswered.

The engines' tests watch the codec as each engine calls it (:class:`Reads`): how many messages
it handed over, or had read when it stopped.  Before, a datagram of 4,095 HAVEs was read whole
(4,095 messages) and only then refused.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import ppspp as codec
from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import MalformedDatagram, TooManyMessages
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.net.ppspp_get import ppspp_download
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
from ppsp.peer.net.ppspp_udp import serve
from ppsp.peer.ppspp import SeededContent, client, leecher, live_receiver, live_server, seeder
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, MUNRO_CHUNKS, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS, LiveServer, live_handshake
from ppsp.peer.ppspp.opening import MAX_MESSAGES_PER_DATAGRAM, MAX_OPENING_MESSAGES
from ppsp.wire.ppspp import (
    MAX_DATAGRAM_MESSAGES,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Datagram,
    Handshake,
    Have,
    MerkleHashFunction,
    Message,
)

from .raw_udp import answers, seeder_opening, udp
from .strategies import datagrams

PLAIN = EncoderProfile.PLAIN
LIBSWIFT = ChannelParameters.libswift()
EVERYTHING = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
HOSTILE = 4095
"""HAVEs in a hostile datagram (36,859 bytes): the most a datagram may carry but one."""


def _wire(channel: int, messages: tuple[Message, ...], params: ChannelParameters) -> bytes:
    return encode_datagram(Datagram(channel=channel, messages=messages), params, profile=PLAIN)


# --- the codec -----------------------------------------------------------------------------

BINS = ChannelParameters(chunk_addressing=ChunkAddressing.BIN_32)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (LIBSWIFT, EVERYTHING),  # the fast path's shape
        (LIBSWIFT, Choke()),  # the general code's
        (BINS, Choke()),
    ],
)
@pytest.mark.parametrize("bound", [1, 2, 64, 1024])
def test_n_messages_are_read_and_one_more_is_refused_before_it_is_read(
    params: ChannelParameters, message: Message, bound: int
) -> None:
    within = _wire(7, (message,) * bound, params)
    assert decode_datagram(within, params, max_messages=bound).messages == (message,) * bound
    # One more, even a message that would not parse: it is never read.
    over = within + b"\xff"
    with pytest.raises(TooManyMessages, match=f"more than {bound} messages") as caught:
        decode_datagram(over, params, max_messages=bound)
    assert caught.value.messages == (message,) * bound
    assert caught.value.code == "oversized" and isinstance(caught.value, MalformedDatagram)
    with pytest.raises(MalformedDatagram, match="unknown message type 255"):
        decode_datagram(over, params)  # unbounded, it is read and refused for its last byte


def test_an_opening_datagram_is_refused_after_its_handshake_and_the_bound() -> None:
    hello = Handshake(
        source_channel=9,
        version=1,
        min_version=1,
        swarm_id=b"s" * 20,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    wire = _wire(0, (hello, *(EVERYTHING,) * HOSTILE), LIBSWIFT)
    with pytest.raises(TooManyMessages) as caught:
        decode_datagram(wire, LIBSWIFT, max_messages=1 + MAX_OPENING_MESSAGES)
    assert caught.value.messages == (hello, *(EVERYTHING,) * MAX_OPENING_MESSAGES)
    # A datagram to channel 0 that does not open with a HANDSHAKE is malformed at once.
    with pytest.raises(MalformedDatagram, match="must open with a HANDSHAKE") as refused:
        decode_datagram(bytes(4) + (b"\x03" + bytes(8)) * HOSTILE, LIBSWIFT)
    assert not isinstance(refused.value, TooManyMessages)


def test_the_bound_never_exceeds_the_codecs_own() -> None:
    wire = _wire(7, (Choke(),) * MAX_DATAGRAM_MESSAGES, LIBSWIFT) + b"\x0b"
    with pytest.raises(TooManyMessages, match=f"more than {MAX_DATAGRAM_MESSAGES} messages"):
        decode_datagram(wire, LIBSWIFT, max_messages=10 * MAX_DATAGRAM_MESSAGES)


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(datagrams(), st.integers(0, 12))
def test_a_bound_changes_nothing_within_it_and_stops_past_it(
    case: tuple[ChannelParameters, Datagram], bound: int
) -> None:
    params, datagram = case
    wire = codec.encode_datagram(datagram, params, profile=PLAIN)
    whole = decode_datagram(wire, params)
    count = len(whole.messages)
    if count <= bound:
        assert decode_datagram(wire, params, max_messages=bound) == whole
        return
    with pytest.raises(TooManyMessages) as caught:
        decode_datagram(wire, params, max_messages=bound)
    assert caught.value.messages == whole.messages[:bound]


# --- the engines ---------------------------------------------------------------------------


class Reads:
    """The codec as an engine module calls it, counting the messages each call read: those it
    handed over, or those it had read when it refused a datagram for its count."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
        self.counts: list[tuple[int, int]] = []  # (channel, messages read)
        real = module.decode_datagram

        def spy(data: bytes, parameters: ChannelParameters, **bound: Any) -> Datagram:
            channel = int.from_bytes(data[:4], "big")
            try:
                datagram: Datagram = real(data, parameters, **bound)
            except TooManyMessages as error:
                self.counts.append((channel, len(error.messages)))
                raise
            self.counts.append((channel, len(datagram.messages)))
            return datagram

        monkeypatch.setattr(module, "decode_datagram", spy)

    def most(self, *, opening: bool) -> int:
        """The most messages read of one datagram, to channel 0 or to another."""
        return max((n for c, n in self.counts if (c == 0) == opening), default=0)


async def test_the_seeder_reads_a_hostile_datagram_no_further_than_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(monkeypatch, seeder)
    data = random.Random(25).randbytes(200 * 1024 + 3)
    content = SeededContent.from_bytes(data)
    server = await serve(content, "127.0.0.2", 0, config=seeder.SeederConfig())
    hostile = udp("127.0.0.3")
    loop = asyncio.get_running_loop()
    try:
        target = server.address
        # The hostile host opens a channel, confirms it, then sends 4,095 HAVEs on it while
        # an honest download from 127.0.0.1 runs.
        await loop.sock_sendto(hostile, seeder_opening(content.swarm_id, 0x3131), target)
        [answer, *_] = await answers(hostile)
        reply = decode_datagram(answer, LIBSWIFT).messages[0]
        assert isinstance(reply, Handshake) and reply.source_channel
        await loop.sock_sendto(hostile, reply.source_channel.to_bytes(4, "big"), target)
        await answers(hostile, 0.1)
        download = asyncio.ensure_future(
            ppspp_download(content.swarm_id, target, tmp_path / "got.bin")
        )
        flood = _wire(reply.source_channel, (EVERYTHING,) * HOSTILE, LIBSWIFT)
        await loop.sock_sendto(hostile, flood, target)
        closing = [decode_datagram(d, LIBSWIFT).messages for d in await answers(hostile)]
        assert (Handshake(source_channel=0),) in closing
        # And opening datagrams of a HANDSHAKE and 4,094 HAVEs, each a new source channel.
        for n in range(8):
            opening = seeder_opening(content.swarm_id, 0x4000 + n, *(EVERYTHING,) * (HOSTILE - 1))
            await loop.sock_sendto(hostile, opening, target)
            await asyncio.sleep(0.02)
        got = await asyncio.wait_for(download, 20.0)
        assert got.path.read_bytes() == data
        stats = server.seeder.stats
        assert stats["too_many_messages"] == 1
        assert stats["refused_handshake:too_many_messages"] >= 1
        assert {c.address[0] for c in server.seeder.channels} <= {"127.0.0.1"}
        # Read no further than the bounds (before: 4,095 messages of each).
        assert reads.most(opening=False) == MAX_MESSAGES_PER_DATAGRAM
        assert reads.most(opening=True) == 1 + MAX_OPENING_MESSAGES
    finally:
        hostile.close()
        server.close()


KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
HELD = 16


def _live_opening(source: int, *messages: Message) -> bytes:
    hello = live_handshake(source, discard_window=HELD * MUNRO_CHUNKS, swarm_id=SWARM)
    return _wire(0, (hello, *messages), LIVE_PARAMETERS)


async def test_the_live_server_reads_a_hostile_datagram_no_further_than_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = Reads(monkeypatch, live_server)
    server = LiveServer(SWARM, window_chunks=HELD, signer=KEY.sign)
    source = await LivePpsppEndpoint.open("127.0.0.1", 0, server)
    viewer = await LivePpsppEndpoint.open(
        "127.0.0.2",
        0,
        LiveServer(SWARM, window_chunks=HELD),
        LiveReceiverConfig(window_s=60.0, window_chunks=HELD, handshake_timeout=2.0),
    )
    flooder = udp("127.0.6.6")
    loop = asyncio.get_running_loop()
    try:
        chunks = [bytes([i]) * (LIVE_CHUNK_SIZE + i) for i in range(HELD)]
        for index, data in enumerate(chunks):
            source.append(index, data)
        target = source.address
        await loop.sock_sendto(flooder, _live_opening(0x6161), target)
        [reply_bytes, *_] = await answers(flooder)
        reply = decode_datagram(reply_bytes, LIVE_PARAMETERS).messages[0]
        assert isinstance(reply, Handshake)
        await loop.sock_sendto(flooder, reply.source_channel.to_bytes(4, "big"), target)
        await answers(flooder)
        fetching = asyncio.gather(viewer.fetch(target, 0), viewer.fetch(target, HELD - 1))
        flood = _wire(reply.source_channel, (EVERYTHING,) * HOSTILE, LIVE_PARAMETERS)
        await loop.sock_sendto(flooder, flood, target)
        closing = [decode_datagram(d, LIVE_PARAMETERS).messages for d in await answers(flooder)]
        assert (Handshake(source_channel=0),) in closing
        for n in range(8):
            opening = _live_opening(0x7000 + n, *(EVERYTHING,) * (HOSTILE - 1))
            await loop.sock_sendto(flooder, opening, target)
            await asyncio.sleep(0.02)
        assert list(await asyncio.wait_for(fetching, 10)) == [chunks[0], chunks[-1]]
        assert server.stats["too_many_messages"] == 1
        assert server.stats["refused:too_many_messages"] >= 1
        assert reads.most(opening=False) == MAX_MESSAGES_PER_DATAGRAM
        assert reads.most(opening=True) == 1 + MAX_OPENING_MESSAGES
    finally:
        flooder.close()
        viewer.close()
        source.close()


def test_the_downloading_engines_read_a_peers_datagram_no_further_than_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .test_client import Pair, client_for, content_of
    from .test_leecher_hostile import on_channel, opened
    from .test_live import connected
    from .test_live import source as live_source

    reads = {m: Reads(monkeypatch, m) for m in (client, leecher, live_receiver)}
    bound = MAX_MESSAGES_PER_DATAGRAM
    # The channel client (a swarm session's PPSPP transport).
    _, content = content_of(8 * 1024, 1024)
    fetcher = client_for(content)
    pair = Pair(content, fetcher)
    fetcher.request(1, 0.0)
    pair.run(lambda: bool(pair.results))
    params, ours = fetcher._parameters, fetcher.local_id
    first = Have(chunk=ChunkRange(start=0, end=0))
    fetcher.datagram_received(_wire(ours, (first,) * bound, params), pair.now)
    fetcher.datagram_received(_wire(ours, (first,) * HOSTILE, params), pair.now)
    assert fetcher.stats["too_many_messages"] == 1 and fetcher.stats["malformed"] == 0
    # The leecher (``ppsp get --peer``).
    downloader = opened()
    downloader.datagram_received(on_channel(*(first,) * bound), 0.5)
    downloader.datagram_received(on_channel(*(first,) * HOSTILE), 0.5)
    assert downloader.stats["too_many_messages"] == 1
    # The live receiver.
    server = live_source()
    receiver = connected(server)
    assert receiver.local_id is not None
    flood = _wire(receiver.local_id, (first,) * HOSTILE, LIVE_PARAMETERS)
    receiver.datagram_received(flood, 1_800_000_001.0)
    assert receiver.stats["too_many_messages"] == 1
    for module in (client, leecher, live_receiver):
        assert max(n for _, n in reads[module].counts) == bound, module.__name__
