"""Fewer datagrams per chunk (issue 17): INTEGRITY with its DATA, ACKs of chunk ranges.

* The seeder puts a chunk's INTEGRITY messages in its DATA's datagram when the DATA alone is
  larger than one Ethernet datagram (8 KiB chunks: fragmented anyway), and still sends them
  ahead in datagrams of their own when they would push a small DATA past 1472 bytes.
* The channel client acknowledges a run of consecutive chunks verified within ``ack_delay``
  with one ACK of their range (at most ``max_ack_run`` chunks); the seeder reads such an ACK
  as acknowledging each chunk of it, without shrinking its LEDBAT window.
* The chunk transport reads every datagram queued on its socket at each wakeup.
"""

from __future__ import annotations

import asyncio
import socket
import time

from ppsp.codecs.ppspp import decode_datagram, encode_datagram
from ppsp.peer.ppspp import Seeder
from ppsp.peer.ppspp.client import ChannelClient, ClientConfig
from ppsp.wire.ppspp import (
    Ack,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Datagram,
    Integrity,
    MerkleHashFunction,
    Message,
    Request,
)

from .test_client import ADDRESS, SHA256, Pair, client_for, content_of


def _parameters(chunk_size: int) -> ChannelParameters:
    return ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        merkle_hash=MerkleHashFunction.SHA256,
        chunk_size=chunk_size,
    )


class Recording(Pair):
    """A pair that also keeps every datagram, decoded, each way."""

    def __init__(self, chunk_size: int, size: int, **config: object) -> None:
        self.data, content = content_of(size, chunk_size)
        client = client_for(content, **config)
        self.to_seeder_log: list[tuple[Message, ...]] = []
        self.to_client_log: list[tuple[Message, ...]] = []
        parameters = _parameters(chunk_size)

        def upstream(data: bytes) -> bytes:
            if data[:4] != bytes(4):  # past the opening handshake
                self.to_seeder_log.append(decode_datagram(data, parameters).messages)
            return data

        def downstream(data: bytes) -> bytes:
            self.to_client_log.append(decode_datagram(data, parameters).messages)
            return data

        super().__init__(content, client, to_seeder=upstream, to_client=downstream)

    def fetch_all(self) -> None:
        count = self.client.chunk_count
        self.client.request_many(range(count), self.now)
        self.run(lambda: len(self.results) == count)
        self.flush()
        assert self.verified() == {
            index: self.data[index * self.client.chunk_size : (index + 1) * self.client.chunk_size]
            for index in range(count)
        }

    def flush(self) -> None:
        """Let a pending ACK go out and deliver what is left to deliver."""
        self.now += 1.0
        self.client.handle_timer(self.now)
        for data in self.client.datagrams_to_send():
            self.seeder.datagram_received(data, ADDRESS, self.now)
            self.to_seeder(data)  # recorded

    def acks(self) -> list[Ack]:
        return [m for messages in self.to_seeder_log for m in messages if isinstance(m, Ack)]

    def ranges(self) -> list[tuple[int, int]]:
        """The chunk ranges the client's ACKs covered, in order."""
        out = []
        for ack in self.acks():
            assert isinstance(ack.chunk, ChunkRange)
            out.append((ack.chunk.start, ack.chunk.end))
        return out


# --- INTEGRITY with DATA -------------------------------------------------------------------


def test_large_chunks_travel_with_their_hashes_in_one_datagram() -> None:
    pair = Recording(8192, 8192 * 37 + 100)  # 38 chunks: several peaks, a short last one
    pair.fetch_all()
    stats = pair.seeder.stats
    # One datagram per DATA (and the handshake reply): no INTEGRITY datagram of its own.
    assert stats["datagrams_out"] == stats["data_sent"] + 1
    with_data = [messages for messages in pair.to_client_log if isinstance(messages[-1], Data)]
    assert len(with_data) == stats["data_sent"]
    assert all(isinstance(m, Data | Integrity) for messages in with_data for m in messages)
    assert any(isinstance(messages[0], Integrity) for messages in with_data)
    assert not any(
        all(isinstance(m, Integrity) for m in messages) for messages in pair.to_client_log
    )
    sizes = [len(encoded) for encoded in _encoded(pair, with_data)]
    assert sum(size > 1472 for size in sizes) == len(sizes) - 1  # all but the short last chunk


def _encoded(pair: Recording, datagrams: list[tuple[Message, ...]]) -> list[bytes]:
    parameters = _parameters(pair.client.chunk_size)
    return [
        encode_datagram(Datagram(channel=pair.client.local_id, messages=m), parameters)
        for m in datagrams
    ]


def test_small_chunks_still_send_hashes_ahead_when_they_would_pass_1472_bytes() -> None:
    # 1023 chunks of 1 KiB: ten peaks and nine uncles of 41 bytes each would push the first
    # DATA datagram (about 1060 bytes) past 1472 bytes (section 5.4).
    pair = Recording(1024, 1024 * 1023)
    pair.client.request_many(range(8), pair.now)
    pair.run(lambda: len(pair.results) == 8)
    first = pair.to_client_log[1:]  # after the handshake reply
    ahead = first[: [type(m) for m in (messages[-1] for messages in first)].index(Data)]
    assert ahead and all(isinstance(m, Integrity) for messages in ahead for m in messages)
    assert [type(m) for m in first[len(ahead)]] == [Data]
    sizes = [len(encoded) for encoded in _encoded(pair, first[: len(ahead) + 1])]
    assert all(size <= 1472 for size in sizes)
    assert sum(sizes) - 4 * len(ahead) > 1472  # in one datagram they would not have fitted
    # Later chunks need fewer hashes: INTEGRITY and DATA in one datagram of at most 1472.
    later = [m for m in first[len(ahead) + 1 :] if isinstance(m[-1], Data)]
    assert all(len(e) <= 1472 for e in _encoded(pair, later))
    assert any(isinstance(m[0], Integrity) for m in later)


# --- ACKs of chunk ranges ------------------------------------------------------------------


def test_consecutive_chunks_are_acknowledged_in_ranges() -> None:
    pair = Recording(8192, 8192 * 64, ack_delay=0.5, max_ack_run=16)
    pair.fetch_all()
    ranges = pair.ranges()
    assert any(end > start for start, end in ranges)
    assert len(ranges) < 64
    assert all(end - start + 1 <= 16 for start, end in ranges)
    acked = [index for start, end in ranges for index in range(start, end + 1)]
    assert sorted(acked) == list(range(64))  # each chunk once
    stats = pair.seeder.stats
    assert stats["data_acked"] == stats["data_sent"] == 64
    assert stats["data_lost"] == 0


def test_no_ack_delay_acknowledges_each_chunk_alone() -> None:
    pair = Recording(8192, 8192 * 16, ack_delay=0.0)
    pair.fetch_all()
    ranges = pair.ranges()
    assert sorted(ranges) == [(index, index) for index in range(16)]


def test_range_acks_let_the_seeders_window_grow() -> None:
    # Each ACK covers everything in flight: the window must still grow by about one
    # datagram per round trip (RFC 6817's flight size is what was in flight before the ACK).
    pair = Recording(8192, 8192 * 256, ack_delay=0.05, max_ack_run=1024)
    pair.client.request_many(range(256), pair.now)
    pair.run(lambda: len(pair.results) >= 200)  # mid-transfer (the tail's flight is small)
    (channel,) = pair.seeder.channels
    assert channel.ledbat.cwnd >= 8  # about 17 here; 2 when the ACK's range shrank it
    assert pair.seeder.stats["data_lost"] == 0


def _open_client(chunks: int) -> tuple[ChannelClient, Seeder, float]:
    """A client whose channel to a seeder is open; the datagrams exchanged so far delivered."""
    _, content = content_of(8192 * chunks, 8192)
    client = client_for(content, ack_delay=0.001, max_ack_run=4)
    seeder = Seeder(content)
    now = 0.0
    for data in client.datagrams_to_send():
        seeder.datagram_received(data, ADDRESS, now)
    for _, data in seeder.datagrams_to_send():
        client.datagram_received(data, now)
    return client, seeder, now


def _serve(client: ChannelClient, seeder: Seeder, indexes: list[int], now: float) -> None:
    """Request ``indexes`` and deliver the seeder's DATA (not the client's ACKs)."""
    client.request_many(indexes, now)
    for data in client.datagrams_to_send():
        seeder.datagram_received(data, ADDRESS, now)
    for _, data in seeder.datagrams_to_send():
        client.datagram_received(data, now)


def _sent(client: ChannelClient) -> list[tuple[Message, ...]]:
    parameters = _parameters(client.chunk_size)
    return [decode_datagram(d, parameters).messages for d in client.datagrams_to_send()]


def test_a_pending_ack_waits_for_its_deadline_then_goes_out() -> None:
    client, seeder, now = _open_client(8)
    _serve(client, seeder, [0, 1], now)
    assert len(client.take_results()) == 2
    assert _sent(client) == []  # held: the next chunks of the run may follow
    assert client.next_deadline() == now + 0.001
    client.handle_timer(now + 0.001)
    assert _sent(client) == [(Ack(chunk=ChunkRange(start=0, end=1), delay=_delay(client)),)]
    assert client.next_deadline() != now + 0.001


def _delay(client: ChannelClient) -> int:
    # The pair's clocks agree (offset 0, same now): the delay sample is 0.
    return 0


def test_runs_stop_at_max_ack_run_and_at_gaps() -> None:
    pair = Recording(8192, 8192 * 16, ack_delay=0.5, max_ack_run=4)
    wanted = [0, 1, 2, 3, 4, 5, 6, 8, 9]  # chunk 7 is not asked for
    pair.client.request_many(wanted, pair.now)
    pair.run(lambda: len(pair.results) == len(wanted))
    pair.flush()
    ranges = pair.ranges()
    assert all(end - start + 1 <= 4 for start, end in ranges)
    assert all(not start <= 7 <= end for start, end in ranges)
    acked = sorted(index for start, end in ranges for index in range(start, end + 1))
    assert acked == wanted


def test_a_pending_ack_goes_ahead_of_a_request() -> None:
    client, seeder, now = _open_client(8)
    _serve(client, seeder, [0, 1], now)
    client.request(5, now)
    (messages,) = _sent(client)
    assert isinstance(messages[0], Ack) and messages[0].chunk == ChunkRange(start=0, end=1)
    assert messages[1] == Request(chunk=ChunkRange(start=5, end=5))
    assert client.next_deadline() != now + 0.001


def test_the_ack_settings_are_checked() -> None:
    for bad in ({"ack_delay": -1.0}, {"max_ack_run": 0}):
        try:
            ClientConfig(**bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


# --- the seeder's reading of an ACK of a range ----------------------------------------------


def test_the_seeder_takes_an_ack_of_a_range_for_each_of_its_chunks() -> None:
    _, content = content_of(8192 * 8, 8192)
    client = client_for(content, ack_delay=0.0)
    seeder = Seeder(content)
    for data in client.datagrams_to_send():
        seeder.datagram_received(data, ADDRESS, 0.0)
    for _, data in seeder.datagrams_to_send():
        client.datagram_received(data, 0.0)
    client.request_many(range(8), 0.0)
    for data in client.datagrams_to_send():
        seeder.datagram_received(data, ADDRESS, 0.0)
    (channel,) = seeder.channels
    in_flight = sorted(channel.flight)
    assert len(in_flight) >= 2
    cwnd = channel.ledbat.cwnd
    ack = Ack(chunk=ChunkRange(start=in_flight[0], end=in_flight[-1]), delay=0)
    datagram = Datagram(channel=channel.local_id, messages=(ack,))
    seeder.datagram_received(encode_datagram(datagram, _parameters(8192)), ADDRESS, 0.01)
    assert seeder.stats["data_acked"] == len(in_flight)
    assert all(channel.has_chunk(index) for index in in_flight)
    assert channel.ledbat.cwnd >= cwnd  # not shrunk to what was left in flight
    assert not set(in_flight) & set(channel.flight)


# --- the transport reads every queued datagram at once --------------------------------------


async def test_the_transport_drains_its_socket_at_each_wakeup() -> None:
    from ppsp.peer.net.ppspp_transport import PpsppClientSocket, _Channel

    _, content = content_of(8192 * 4, 8192)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    endpoint = PpsppClientSocket("127.0.0.1")
    peer.connect(endpoint.address)
    client = ChannelClient(
        content.swarm_id,
        size=content.size,
        chunk_size=8192,
        now=asyncio.get_running_loop().time(),
        config=ClientConfig(merkle_hash=SHA256),
    )
    channel = _Channel(client, "test", endpoint, peer.getsockname())
    try:
        for _ in range(5):
            # Malformed, to the channel's ID: routed to it, counted and dropped.
            peer.send(client.local_id.to_bytes(4, "big") + b"\xff")
        time.sleep(0.05)  # queued on the socket; the event loop does not run meanwhile
        endpoint._readable()  # one wakeup
        assert client.stats["malformed"] == 5
    finally:
        channel.close()
        endpoint.close()
        peer.close()
