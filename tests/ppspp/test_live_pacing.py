"""Live PPSPP channels' pace, sans-I/O, on a simulated clock: LEDBAT and the upload cap.

A :class:`LiveServer` (the source) and :class:`LiveReceiver` channels are driven pair-wise over
a simulated link (a one-way delay each way, datagrams that may be lost), the clock moved to
the next delivery or deadline, never polled: the upload cap holds and hosts share it, LEDBAT's
window shrinks when the one-way delay grows, and a lost DATA is sent again by the server.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.codecs.ppspp import decode_datagram
from ppsp.core.ratelimit import TokenBucket
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiver, LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS, LiveServer, LiveServerConfig
from ppsp.peer.upload.pacing import QUANTUM, UploadPacer
from ppsp.wire.ppspp import Ack, Cancel, ChunkRange, Data, Have

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
WINDOW = 8
PIECES = 32
"""PPSPP chunks (8 KiB pieces) per live chunk: 256 KiB live chunks."""
RATE = 100_000.0
"""The upload cap, bytes per second."""

Address = tuple[str, int]


def source(pacer: UploadPacer | None = None) -> LiveServer:
    """A source holding WINDOW live chunks of PIECES pieces each."""
    server = LiveServer(SWARM, window_chunks=WINDOW, signer=KEY.sign, pacer=pacer)
    for index in range(WINDOW):
        server.append(index, bytes([index]) * (PIECES * LIVE_CHUNK_SIZE), NOW)
    return server


@dataclass
class Link:
    """The simulated network: datagrams in flight, with their delivery times."""

    server: LiveServer
    receivers: dict[Address, LiveReceiver]
    delay: Callable[[float], float] = lambda now: 0.005
    """One-way delay of a datagram the server sends at ``now``."""
    back_delay: float = 0.005
    lose: Callable[[bytes], bool] = lambda data: False
    """Whether a datagram from the server is lost."""
    lose_back: Callable[[bytes], bool] = lambda data: False
    """Whether a datagram to the server is lost."""
    now: float = NOW
    received: dict[Address, int] = field(default_factory=dict)
    """Live chunk bytes each receiver completed."""
    _queue: list[tuple[float, int, bool, Address, bytes]] = field(default_factory=list)
    _seq: int = 0

    def _post(self, when: float, to_server: bool, address: Address, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, to_server, address, data))

    def _collect(self) -> None:
        for address, receiver in self.receivers.items():
            for data in receiver.datagrams_to_send():
                if not self.lose_back(data):
                    self._post(self.now + self.back_delay, True, address, data)
            for record in receiver.take_completed():
                self.received[address] = self.received.get(address, 0) + len(record.data)
        for address, data in self.server.datagrams_to_send():
            if not self.lose(data):
                self._post(self.now + self.delay(self.now), False, address, data)

    def run(self, until: float, step: Callable[[Link], None] | None = None) -> None:
        """Move datagrams and time until ``until``; ``step`` looks at the link after each
        event."""
        self._collect()
        for _ in range(1_000_000):
            deadlines = [self.server.next_deadline()]
            deadlines += [r.next_deadline() for r in self.receivers.values()]
            if self._queue:
                deadlines.append(self._queue[0][0])
            when = min((d for d in deadlines if d is not None), default=None)
            if when is None or when > until:
                self.now = until
                return
            self.now = max(self.now, when)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, to_server, address, data = heapq.heappop(self._queue)
                if to_server:
                    self.server.datagram_received(data, address, self.now)
                else:
                    self.receivers[address].datagram_received(data, self.now)
            if (deadline := self.server.next_deadline()) is not None and deadline <= self.now:
                self.server.handle_timer(self.now)
            for receiver in self.receivers.values():
                if (deadline := receiver.next_deadline()) is not None and deadline <= self.now:
                    receiver.handle_timer(self.now)
            self._collect()
            if step is not None:
                step(self)
        raise AssertionError("the simulation did not settle")


def receivers(*addresses: Address, request_timeout: float = 0.5) -> dict[Address, LiveReceiver]:
    """A receiving channel at each address, asking for every live chunk the source holds."""
    config = LiveReceiverConfig(
        window_s=30.0, window_chunks=WINDOW, request_timeout=request_timeout
    )
    out = {}
    for number, address in enumerate(addresses, start=1):
        receiver = LiveReceiver(SWARM, channel_id=100 + number, config=config, now=NOW)
        for index in range(WINDOW):
            receiver.request(index, NOW)
        out[address] = receiver
    return out


def test_live_data_keeps_to_the_upload_cap() -> None:
    bucket = TokenBucket(RATE, now=NOW)
    server = source(UploadPacer(bucket))
    attributed: dict[Address, int] = {}

    def on_data(swarm: bytes, address: Address, nbytes: int) -> None:
        assert swarm == SWARM
        attributed[address] = attributed.get(address, 0) + nbytes

    server.on_data = on_data
    peer = ("127.0.0.2", 4000)
    link = Link(server, receivers(peer))
    link.run(NOW + 3.0)
    sent = server.stats["data_bytes"]
    # Datagrams count whole (hashes, headers): the chunk bytes stay under the cap, overdrawn
    # by at most the burst and a quantum, and not far under it either.
    assert 0.8 * 3 * RATE < sent <= 3 * RATE + bucket.burst + QUANTUM
    assert server.stats["paced_waits"] > 0
    assert attributed == {peer: sent}  # every DATA told, to its channel's address
    assert link.received.get(peer, 0) <= sent


def test_two_hosts_share_the_cap() -> None:
    bucket = TokenBucket(RATE, now=NOW)
    server = source(UploadPacer(bucket))
    attributed: dict[Address, int] = {}
    server.on_data = lambda swarm, address, n: attributed.update(
        {address: attributed.get(address, 0) + n}
    )
    first, second = ("127.0.0.2", 4000), ("127.0.0.3", 4000)
    link = Link(server, receivers(first, second))
    link.run(NOW + 4.0)
    total = sum(attributed.values())
    assert total <= 4 * RATE + bucket.burst + 2 * QUANTUM
    assert min(attributed.values()) >= 0.4 * total  # about half each


def test_ledbat_window_shrinks_when_the_delay_grows() -> None:
    server = source()
    peer = ("127.0.0.2", 4000)
    grown: list[float] = []  # when the one-way delay grew (a queue on the path)

    def delay(now: float) -> float:
        return 0.150 if grown else 0.005

    windows: list[float] = []

    def watch(link: Link) -> None:
        (channel,) = server._channels.values()
        windows.append(channel.ledbat.cwnd)
        if not grown and channel.ledbat.cwnd >= 10:
            grown.append(link.now)

    link = Link(server, receivers(peer), delay=delay)
    link.run(NOW + 3.0, watch)
    assert grown, "the window never opened"
    peak = max(windows)
    (channel,) = server._channels.values()
    # 145 ms of queuing delay, over LEDBAT's 100 ms target: the window closes, with no loss.
    assert channel.ledbat.cwnd <= peak - 3
    assert server.stats["data_lost"] == 0
    assert server.stats["data_acked"] > 0


def test_a_lost_data_is_sent_again_by_the_server() -> None:
    server = source()
    peer = ("127.0.0.2", 4000)
    lost: list[bytes] = []

    def lose_one(data: bytes) -> bool:
        messages = decode_datagram(data, LIVE_PARAMETERS).messages
        last = messages[-1] if messages else None
        if not lost and isinstance(last, Data) and last.chunk == ChunkRange(start=3, end=3):
            lost.append(data)
            return True
        return False

    # The receivers never ask again: only the server's retransmission timer can make it whole.
    link = Link(server, receivers(peer, request_timeout=60.0), lose=lose_one)
    link.run(NOW + 5.0)
    assert lost
    assert server.stats["data_lost"] == 1
    assert server.stats["data_sent"] == WINDOW * PIECES + 1
    assert link.received[peer] == WINDOW * PIECES * LIVE_CHUNK_SIZE
    assert link.receivers[peer].stats["requested_again"] == 0


def test_a_request_again_does_not_duplicate_chunks_in_flight_or_acknowledged() -> None:
    server = source()
    peer = ("127.0.0.2", 4000)
    link = Link(server, receivers(peer, request_timeout=0.02), delay=lambda now: 0.05)
    link.run(NOW + 5.0)
    # Requests again come every 20 ms while the chunks take 50 ms to arrive: none sent twice.
    assert link.receivers[peer].stats["requested_again"] > 0
    assert server.stats["data_sent"] == WINDOW * PIECES
    assert link.received[peer] == WINDOW * PIECES * LIVE_CHUNK_SIZE


@pytest.mark.parametrize("cancel_lost", [False, True])
def test_a_live_chunk_given_up_and_asked_again_is_sent_whole(cancel_lost: bool) -> None:
    server = source()
    peer = ("127.0.0.2", 4000)
    blocked = [True]

    def lose_piece_1(data: bytes) -> bool:
        messages = decode_datagram(data, LIVE_PARAMETERS).messages
        last = messages[-1] if messages else None
        return blocked[0] and isinstance(last, Data) and last.chunk.start == 1

    def lose_cancel(data: bytes) -> bool:
        messages = decode_datagram(data, LIVE_PARAMETERS).messages
        return cancel_lost and any(isinstance(m, Cancel) for m in messages)

    config = LiveReceiverConfig(window_s=30.0, window_chunks=WINDOW)
    receiver = LiveReceiver(SWARM, channel_id=101, config=config, now=NOW)
    receiver.request(0, NOW)
    link = Link(server, {peer: receiver}, lose=lose_piece_1, lose_back=lose_cancel)
    link.run(NOW + 1.0)
    assert not link.received  # every piece but the second acknowledged; the chunk not whole
    # The viewer gives the chunk up, then asks for it again: its pieces are gone from the
    # receiver, and the server sends them all again (the CANCEL told it so; when the CANCEL
    # was lost, the REQUEST starting at a piece acknowledged tells it).
    receiver.cancel(0, link.now)
    blocked[0] = False
    receiver.request(0, link.now)
    link.run(link.now + 2.0)
    assert link.received == {peer: PIECES * LIVE_CHUNK_SIZE}


@pytest.mark.parametrize("slots", [2, 4])
def test_under_the_cap_a_few_channels_send_at_a_time_so_their_chunks_complete_early(
    slots: int,
) -> None:
    """Four receivers on four hosts ask for the same live chunk (2.6 s at the cap alone):
    sharing the cap among all four at once finishes every copy at 9.8-11 s, together; two
    channels at a time finish two copies by 6 s (their receivers can pass them on), the others
    by 12 s; the cap is kept all along."""
    bucket = TokenBucket(RATE, now=NOW)
    server = LiveServer(
        SWARM,
        window_chunks=WINDOW,
        signer=KEY.sign,
        pacer=UploadPacer(bucket),
        config=LiveServerConfig(send_slots=slots),
    )
    for index in range(WINDOW):
        server.append(index, bytes([index]) * (PIECES * LIVE_CHUNK_SIZE), NOW)
    config = LiveReceiverConfig(window_s=30.0, window_chunks=WINDOW)
    peers = [(f"127.0.0.{n}", 4000) for n in range(2, 6)]
    channels = {}
    for number, peer in enumerate(peers, start=1):
        channels[peer] = LiveReceiver(SWARM, channel_id=100 + number, config=config, now=NOW)
        channels[peer].request(0, NOW)
    link = Link(server, channels)
    link.run(NOW + 6.0)
    early = len(link.received)
    link.run(NOW + 12.0)
    assert len(link.received) == 4
    assert early == (2 if slots == 2 else 0)
    assert server.stats["data_bytes"] <= 12.0 * RATE + bucket.burst + 4 * QUANTUM


def test_a_channel_that_never_acknowledges_does_not_keep_a_send_slot() -> None:
    """One send slot; a receiver that acknowledges nothing (its LEDBAT window stays full, its
    DATA time out and are sent again) gives the slot up whenever it may not send, and the
    honest receiver asking after it gets its chunk."""
    server = LiveServer(
        SWARM,
        window_chunks=WINDOW,
        signer=KEY.sign,
        pacer=UploadPacer(TokenBucket(RATE, now=NOW)),
        config=LiveServerConfig(send_slots=1),
    )
    for index in range(WINDOW):
        server.append(index, bytes([index]) * (PIECES * LIVE_CHUNK_SIZE), NOW)
    config = LiveReceiverConfig(window_s=30.0, window_chunks=WINDOW)
    mute, honest = ("127.0.0.2", 4000), ("127.0.0.3", 4000)
    muted = LiveReceiver(SWARM, channel_id=101, config=config, now=NOW)
    sends = muted.datagrams_to_send

    def without_acknowledgements() -> list[bytes]:
        return [
            data
            for data in sends()
            if not any(
                isinstance(m, Ack | Have) for m in decode_datagram(data, LIVE_PARAMETERS).messages
            )
        ]

    muted.datagrams_to_send = without_acknowledgements  # type: ignore[method-assign]
    for index in range(WINDOW):
        muted.request(index, NOW)
    channels = {mute: muted, honest: LiveReceiver(SWARM, channel_id=102, config=config, now=NOW)}
    channels[honest].request(0, NOW)
    link = Link(server, channels)
    link.run(NOW + 8.0)
    assert link.received.get(honest) == PIECES * LIVE_CHUNK_SIZE
