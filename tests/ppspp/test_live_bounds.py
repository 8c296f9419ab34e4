"""What a spoofed handshake, or one datagram, may cost the live PPSPP server: the seeder's bounds
(``peer/ppspp/opening.py``), sans-I/O and on real loopback UDP sockets.

- **The handshake's answer** to an address that has not shown it receives is one datagram of
  at most ``answer_factor`` times the opening's bytes (RFC 7574 section 13.1.1), the newest
  HAVEs that fit; the rest once the peer confirmed the channel, each live chunk once.
- **The same handshake again** is answered at most every ``answer_interval``.
- **An opening datagram** carries at most ``max_opening_messages`` messages besides its
  HANDSHAKE; a datagram on a channel at most ``max_messages_per_datagram`` (more closes it).
- **A HAVE or ACK** walks the live chunks it names that the peer has not acknowledged whole,
  never the whole window for each message.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.codecs.ppspp import decode_datagram, encode_datagram
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, MUNRO_CHUNKS, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiverConfig
from ppsp.peer.ppspp.live_server import (
    LIVE_PARAMETERS,
    LiveServer,
    LiveServerConfig,
    live_handshake,
)
from ppsp.peer.ppspp.opening import ANSWER_FACTOR
from ppsp.wire.ppspp import Ack, ChunkRange, Datagram, Handshake, Have, Message

from .raw_udp import answers, udp

KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
HELD = 64
NOW = 1_800_000_000.0
SPOOFED = ("127.0.5.5", 5000)
PEER = ("127.0.6.6", 6000)


def source() -> LiveServer:
    """A live source holding a full window of ``HELD`` small live chunks."""
    server = LiveServer(SWARM, window_chunks=HELD, signer=KEY.sign)
    for index in range(HELD):
        server.append(index, bytes([index]) * (2 * LIVE_CHUNK_SIZE), NOW)
    return server


def opening(source_channel: int, *messages: Message) -> bytes:
    hello = live_handshake(source_channel, discard_window=HELD * MUNRO_CHUNKS, swarm_id=SWARM)
    return encode_datagram(Datagram(channel=0, messages=(hello, *messages)), LIVE_PARAMETERS)


def on(channel: int, *messages: Message) -> bytes:
    return encode_datagram(Datagram(channel=channel, messages=messages), LIVE_PARAMETERS)


def haves_in(datagrams: list[bytes]) -> list[int]:
    """The live chunks the HAVEs of ``datagrams`` name, in order."""
    out = []
    for data in datagrams:
        for message in decode_datagram(data, LIVE_PARAMETERS).messages:
            if isinstance(message, Have):
                assert isinstance(message.chunk, ChunkRange)
                out.append(message.chunk.start // MUNRO_CHUNKS)
    return out


def connect(server: LiveServer, address: tuple[str, int], when: float = NOW) -> int:
    """Open and confirm a channel from ``address``: the server's channel ID."""
    server.datagram_received(opening(0x77), address, when)
    [(_, answer)] = server.datagrams_to_send()
    reply = decode_datagram(answer, LIVE_PARAMETERS).messages[0]
    assert isinstance(reply, Handshake)
    server.datagram_received(reply.source_channel.to_bytes(4, "big"), address, when)
    server.datagrams_to_send()
    return reply.source_channel


def test_the_answer_keeps_to_a_few_times_the_opening_and_the_rest_follows_confirmation() -> None:
    server = source()
    hello = opening(0x51)
    server.datagram_received(hello, SPOOFED, NOW)
    [(address, answer)] = server.datagrams_to_send()
    # Before, the answer carried a HAVE of every live chunk held: 64 x 9 bytes, x8.5.
    assert address == SPOOFED and len(answer) <= ANSWER_FACTOR * len(hello)
    first = haves_in([answer])
    assert first and first == list(range(HELD - len(first), HELD))  # the newest
    reply = decode_datagram(answer, LIVE_PARAMETERS).messages[0]
    assert isinstance(reply, Handshake)
    server.datagram_received(reply.source_channel.to_bytes(4, "big"), SPOOFED, NOW + 0.1)
    rest = haves_in([data for _, data in server.datagrams_to_send()])
    assert sorted(first + rest) == list(range(HELD))  # every live chunk, once


def test_the_same_handshake_again_is_answered_at_most_every_half_second() -> None:
    server = source()
    hello = opening(0x52)
    answered = []
    for when in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7):
        server.datagram_received(hello, SPOOFED, NOW + when)
        if server.datagrams_to_send():
            answered.append(when)
    assert answered == [0.0, 0.6]  # before, every copy was answered
    assert server.stats["handshake_again_limited"] == 5 and server.channel_count == 1


def test_an_opening_datagram_of_many_messages_goes_unanswered() -> None:
    server = source()
    everything = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
    server.datagram_received(opening(0x53, *[everything] * 65), SPOOFED, NOW)
    assert server.datagrams_to_send() == [] and server.channel_count == 0
    assert server.stats["refused:too_many_messages"] == 1
    server.datagram_received(opening(0x54, *[everything] * 64), SPOOFED, NOW)
    assert len(server.datagrams_to_send()) == 1


def test_a_datagram_of_too_many_messages_closes_its_channel() -> None:
    server = source()
    channel = connect(server, PEER)
    everything = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
    limit = LiveServerConfig().max_messages_per_datagram
    server.datagram_received(on(channel, *[everything] * limit), PEER, NOW + 1)
    assert server.channel_count == 1
    server.datagram_received(on(channel, *[everything] * (limit + 1)), PEER, NOW + 2)
    assert server.channel_count == 0 and server.stats["too_many_messages"] == 1
    [(address, closing)] = server.datagrams_to_send()
    assert address == PEER
    assert decode_datagram(closing, LIVE_PARAMETERS).messages == (Handshake(source_channel=0),)


class _Walked(OrderedDict[int, object]):
    """The server's held chunks, counting every chunk a lookup or a walk touches."""

    touched = 0

    def get(self, key: int, default: object = None) -> object:
        _Walked.touched += 1
        return super().get(key, default)

    def items(self) -> Iterator[tuple[int, object]]:  # type: ignore[override]
        for item in super().items():
            _Walked.touched += 1
            yield item


def test_haves_and_acks_walk_only_what_the_peer_has_not_acknowledged_whole() -> None:
    server = source()
    channel = connect(server, PEER)
    server._held = _Walked(server._held)  # type: ignore[assignment]
    everything = ChunkRange(start=0, end=2**32 - 1)
    flood: list[Message] = [Have(chunk=everything), Ack(chunk=everything, delay=1)] * 512
    _Walked.touched = 0
    server.datagram_received(on(channel, *flood), PEER, NOW + 1)
    # Before, each of the 1,024 messages walked the 64 chunks held (65,536 touched).
    assert _Walked.touched <= 2 * HELD
    # Acknowledged whole: nothing is sent when asked for, nothing walked again.
    server.datagram_received(on(channel, *flood[:2]), PEER, NOW + 2)
    assert _Walked.touched <= 2 * HELD
    assert server.stats["data_sent"] == 0 and server.channel_count == 1


# --- on real sockets ---------------------------------------------------------------------------


async def test_spoofed_handshakes_and_floods_on_real_sockets_leave_a_viewer_served() -> None:
    server = LiveServer(SWARM, window_chunks=HELD, signer=KEY.sign)
    source_end = await LivePpsppEndpoint.open("127.0.0.1", 0, server)
    viewer = await LivePpsppEndpoint.open(
        "127.0.0.2",
        0,
        LiveServer(SWARM, window_chunks=HELD),
        LiveReceiverConfig(window_s=60.0, window_chunks=HELD, handshake_timeout=2.0),
    )
    spoofer, flooder = udp("127.0.5.5"), udp("127.0.6.6")
    loop = asyncio.get_running_loop()
    try:
        chunks = [bytes([i]) * (LIVE_CHUNK_SIZE + i) for i in range(HELD)]
        for index, data in enumerate(chunks):
            source_end.append(index, data)
        target = source_end.address
        # A handshake never followed, then the same 10 times at once.
        hello = opening(0x5151)
        await loop.sock_sendto(spoofer, hello, target)
        [answer] = await answers(spoofer)
        assert len(answer) <= ANSWER_FACTOR * len(hello)  # before: 612 bytes for 72
        for _ in range(10):
            await loop.sock_sendto(spoofer, hello, target)
        assert len(await answers(spoofer)) <= 2  # before: 10
        # A peer that opens a channel, then floods it with more messages than a datagram may
        # carry: its channel is closed.
        await loop.sock_sendto(flooder, opening(0x6161), target)
        [reply_bytes, *_] = await answers(flooder)
        reply = decode_datagram(reply_bytes, LIVE_PARAMETERS).messages[0]
        assert isinstance(reply, Handshake)
        await loop.sock_sendto(flooder, reply.source_channel.to_bytes(4, "big"), target)
        await answers(flooder)
        everything = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
        await loop.sock_sendto(flooder, on(reply.source_channel, *[everything] * 1025), target)
        closing = [decode_datagram(d, LIVE_PARAMETERS).messages for d in await answers(flooder)]
        assert (Handshake(source_channel=0),) in closing
        # An honest viewer gets the oldest and the newest chunk, and learns of every one
        # (the HAVEs the answer had no room for came after confirmation).
        got = await asyncio.wait_for(
            asyncio.gather(viewer.fetch(target, 0), viewer.fetch(target, HELD - 1)), 10
        )
        assert list(got) == [chunks[0], chunks[-1]]
        for _ in range(50):
            if len(viewer.peer_map(target, HELD)) == HELD:
                break
            await asyncio.sleep(0.05)
        assert viewer.peer_map(target, HELD) == list(range(HELD))
        assert server.stats["too_many_messages"] == 1
    finally:
        spoofer.close()
        flooder.close()
        viewer.close()
        source_end.close()
