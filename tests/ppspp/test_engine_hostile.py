"""The PPSPP seeder engine against hostile and misbehaving peers, and its timers.

Hostile input is normal input: whatever arrives, the engine never raises, keeps its bounds
(channels per address and in all, queued requests), answers nothing to a handshake it refuses
(RFC 7574 section 3.1.1 step 2) and closes a channel on any event its state table does not
list (section 3).  Time is an argument, so the timers are tested without sleeping.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.channel import ChannelState
from ppsp.wire.ppspp import (
    Ack,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    PexReq,
    Request,
    Unchoke,
)

LIBSWIFT = ChannelParameters.libswift()
PEER = ("127.0.0.3", 40000)
OURS = 0x5EED0001
DATA = random.Random(9).randbytes(20_000)  # 20 chunks, the last of 544 bytes
CONTENT = SeededContent.from_bytes(DATA)


def seeder(**config: Any) -> Seeder:
    ids = iter(range(OURS, OURS + 100_000))
    return Seeder(CONTENT, config=SeederConfig(**config), channel_ids=lambda: next(ids))


def opening(source: int = 0x1111, **options: Any) -> bytes:
    handshake = Handshake(
        source_channel=source,
        version=1,
        min_version=1,
        swarm_id=CONTENT.swarm_id,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    extra = options.pop("_extra", ())
    handshake = replace(handshake, **options)
    datagram = Datagram(channel=0, messages=(handshake, *extra))
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def on_channel(*messages: Any, channel: int = OURS) -> bytes:
    datagram = Datagram(channel=channel, messages=messages)
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def data_chunk(datagram: Datagram) -> ChunkRange:
    """The chunk of the DATA that ends a datagram."""
    message = datagram.messages[-1]
    assert isinstance(message, Data) and isinstance(message.chunk, ChunkRange)
    return message.chunk


def sent(engine: Seeder) -> list[Datagram]:
    return [decode_datagram(data, LIBSWIFT) for _, data in engine.datagrams_to_send()]


def established(engine: Seeder, source: int = 0x1111, now: float = 1.0) -> None:
    engine.datagram_received(opening(source), PEER, now)
    assert len(sent(engine)) == 1
    engine.datagram_received(on_channel(), PEER, now)  # a keep-alive confirms our channel


def r(start: int, end: int) -> ChunkRange:
    return ChunkRange(start=start, end=end)


CLOSING = Datagram(channel=0x1111, messages=(Handshake(source_channel=0),))


# --- garbage -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_never_raise(data: bytes, to_channel: bool) -> None:
    engine = seeder()
    established(engine)
    payload = OURS.to_bytes(4, "big") + data if to_channel else data
    engine.datagram_received(payload, PEER, 2.0)
    engine.handle_timer(3.0)
    engine.datagrams_to_send()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_handshakes_and_requests_never_raise(data: st.DataObject) -> None:
    engine = seeder()
    for seed in (opening(), on_channel(Request(chunk=r(0, 3)), PexReq())):
        mutated = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(mutated) - 1))
            mutated[position] = data.draw(st.integers(0, 255))
        engine.datagram_received(bytes(mutated), PEER, 1.0)
    engine.handle_timer(50.0)
    assert len(engine.channels) <= 1


def test_legacy_swift_handshake_is_dropped_unanswered() -> None:
    engine = seeder()
    legacy = bytes.fromhex("00000000047fffffff") + CONTENT.swarm_id + bytes.fromhex("0012345678")
    engine.datagram_received(legacy, PEER, 1.0)
    assert engine.datagrams_to_send() == [] and engine.stats["malformed"] == 1


def test_short_datagrams_and_unknown_channels_are_counted() -> None:
    engine = seeder()
    engine.datagram_received(b"\x00\x01", PEER, 1.0)
    engine.datagram_received(on_channel(channel=0xDEAD), PEER, 1.0)
    assert engine.stats["malformed"] == 1 and engine.stats["unknown_channel"] == 1
    assert engine.datagrams_to_send() == []


def test_a_nat_punch_is_counted_as_one_and_answered_with_nothing() -> None:
    engine = seeder()
    engine.datagram_received(bytes(4), PEER, 1.0)  # peer/nat/punch.py's keep-alive
    assert engine.stats["punches_in"] == 1 and engine.stats["malformed"] == 0
    assert engine.datagrams_to_send() == [] and not engine.channels


# --- handshakes we refuse ------------------------------------------------------------------


def test_refused_handshakes_get_no_answer() -> None:
    cases: dict[str, dict[str, Any]] = {
        "swarm": {"swarm_id": bytes(20)},
        "integrity": {"content_integrity": None},
        "hash": {"merkle_hash": MerkleHashFunction.SHA256},
        "addressing": {"chunk_addressing": ChunkAddressing.BYTE_RANGE_64},
        "version": {"min_version": 2, "version": 2},
        "live": {"live_signature": 13},
        "chunk_size": {"chunk_size": 8192},
        "closing": {"source_channel": 0},
    }
    for reason, options in cases.items():
        engine = seeder()
        engine.datagram_received(opening(**options), PEER, 1.0)
        assert engine.datagrams_to_send() == [], reason
        assert engine.stats[f"refused_handshake:{reason}"] == 1, reason
        assert not engine.channels


def test_opening_datagram_with_heavy_payload_is_refused() -> None:
    engine = seeder()
    payload = Integrity(chunk=r(0, 0), hash=bytes(20))
    engine.datagram_received(opening(_extra=(payload,)), PEER, 1.0)
    assert engine.datagrams_to_send() == [] and not engine.channels


def test_requests_in_the_opening_datagram_wait_for_the_channel_to_be_confirmed() -> None:
    engine = seeder()
    engine.datagram_received(opening(_extra=(Request(chunk=r(0, 0)),)), PEER, 1.0)
    [reply] = sent(engine)
    assert isinstance(reply.messages[0], Handshake) and len(reply.messages) == 3  # 2 peaks
    assert not any(isinstance(m, Data) for m in reply.messages)
    engine.datagram_received(on_channel(), PEER, 1.1)  # the peer heard us: now DATA flows
    [datagram] = sent(engine)
    assert isinstance(datagram.messages[-1], Data)


def test_a_repeated_handshake_is_answered_again_on_the_same_channel() -> None:
    engine = seeder()
    engine.datagram_received(opening(), PEER, 1.0)
    engine.datagram_received(opening(), PEER, 2.2)
    first, second = sent(engine)
    assert first == second and len(engine.channels) == 1
    assert engine.stats["handshake_again"] == 1


# --- misbehaving leechers --------------------------------------------------------------------


def test_a_request_past_the_end_closes_the_channel() -> None:
    engine = seeder()
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(20, 25))), PEER, 2.0)
    assert sent(engine) == [CLOSING]
    assert not engine.channels and engine.stats["protocol_error:request past the end"] == 1
    # Later datagrams on the closed channel are strangers'.
    engine.datagram_received(on_channel(Request(chunk=r(0, 0))), PEER, 2.1)
    assert engine.stats["unknown_channel"] == 1 and engine.datagrams_to_send() == []


def test_a_request_reaching_past_the_end_is_clipped() -> None:
    engine = seeder(ledbat=replace(SeederConfig().ledbat, init_cwnd=8.0))
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(16, 31))), PEER, 2.0)
    chunks = [data_chunk(d) for d in sent(engine)]
    assert chunks == [r(i, i) for i in range(16, 20)] and engine.stats["request_clipped"] == 1


def test_data_or_integrity_sent_to_the_seeder_closes_the_channel() -> None:
    for message in (
        Data(chunk=r(0, 0), timestamp=1, data=b"x"),
        Integrity(chunk=r(0, 0), hash=bytes(20)),
        Handshake(source_channel=0x2222),
    ):
        engine = seeder()
        established(engine)
        engine.datagram_received(on_channel(message), PEER, 2.0)
        assert sent(engine) == [CLOSING], message
        assert not engine.channels and engine.stats["protocol_error"] == 1


def test_a_malformed_datagram_on_a_channel_closes_it() -> None:
    engine = seeder()
    established(engine)
    engine.datagram_received(OURS.to_bytes(4, "big") + b"\x08\x00\x00", PEER, 2.0)
    assert sent(engine) == [CLOSING] and engine.stats["malformed"] == 1


def test_another_address_may_not_speak_on_a_channel() -> None:
    engine = seeder()
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(0, 0))), ("127.0.0.9", 40000), 2.0)
    assert engine.datagrams_to_send() == [] and engine.stats["wrong_address"] == 1
    assert engine.channels[0].state is ChannelState.ESTABLISHED


def test_a_flood_of_handshakes_from_one_host_keeps_its_bound() -> None:
    engine = seeder(max_channels_per_host=4)
    for source in range(1, 101):
        address = ("127.0.0.3", 40000 + source % 7)  # one host, whatever its ports
        engine.datagram_received(opening(source), address, 1.0 + source / 1000)
    assert len(engine.channels) == 4
    assert engine.stats["channels_evicted:half_open"] == 96
    # The newest survive: a peer that restarted its handshake is not locked out.
    assert sorted(c.remote_id for c in engine.channels) == [97, 98, 99, 100]
    engine.datagrams_to_send()
    # Established, the host's channels make room for its own new one: the idlest goes (told
    # with a closing HANDSHAKE), never a channel of another host.
    for channel in engine.channels:
        engine.datagram_received(on_channel(channel=channel.local_id), channel.address, 2.0)
    busy = next(c for c in engine.channels if c.remote_id == 97)
    engine.datagram_received(
        on_channel(Request(chunk=r(0, 0)), channel=busy.local_id), busy.address, 2.5
    )
    engine.datagrams_to_send()
    engine.datagram_received(opening(101), ("127.0.0.3", 1), 3.0)
    closing, _ = engine.datagrams_to_send()
    assert decode_datagram(closing[1], LIBSWIFT).messages == (Handshake(source_channel=0),)
    assert sorted(c.remote_id for c in engine.channels) == [97, 99, 100, 101]
    assert engine.stats["channels_evicted:host"] == 1


def test_the_overall_channel_bound_holds_across_addresses() -> None:
    engine = seeder(max_channels=3)
    for host in range(10):
        engine.datagram_received(opening(7), (f"127.0.1.{host}", 5000), 1.0 + host)
    assert len(engine.channels) == 3 and engine.stats["channels_evicted"] == 7


def test_queued_requests_are_bounded_and_asking_more_is_choked() -> None:
    engine = seeder(max_request_ranges=8, ledbat=replace(SeederConfig().ledbat, init_cwnd=2.0))
    established(engine)
    requests = [Request(chunk=r(i, i)) for i in range(0, 20, 2)]  # ten ranges, none adjacent
    engine.datagram_received(on_channel(*requests), PEER, 2.0)
    # The whole datagram is read before any DATA leaves: 8 ranges queue, the ninth overflows
    # the bound: the peer is choked, its queue discarded, the tenth dropped (section 3.9).
    assert engine.stats["requests_dropped"] == 1
    assert engine.stats["requests_while_choked"] == 1
    assert [d.messages for d in sent(engine)] == [(Choke(),)]  # and no DATA
    (channel,) = engine.channels
    assert channel.choking and not channel.requests
    engine.datagram_received(on_channel(Request(chunk=r(0, 1))), PEER, 2.5)
    assert sent(engine) == [] and engine.stats["requests_while_choked"] == 2
    # Unchoked after choke_time (nothing in flight); a new request is served.
    assert engine.next_deadline() == 2.0 + SeederConfig().choke_time
    engine.handle_timer(4.0)
    assert [d.messages for d in sent(engine)] == [(Unchoke(),)]
    engine.datagram_received(on_channel(Request(chunk=r(0, 1))), PEER, 4.1)
    assert [data_chunk(d) for d in sent(engine)] == [r(0, 0), r(1, 1)]


def test_cancel_and_have_take_chunks_off_the_queue() -> None:
    engine = seeder(ledbat=replace(SeederConfig().ledbat, init_cwnd=2.0, max_cwnd=2.0))
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(0, 9))), PEER, 2.0)
    assert len(sent(engine)) == 2  # chunks 0 and 1 in flight
    engine.datagram_received(on_channel(Cancel(chunk=r(2, 4)), Have(chunk=r(5, 7))), PEER, 2.1)
    engine.datagram_received(on_channel(Ack(chunk=r(0, 1), delay=100)), PEER, 2.2)
    chunks = [data_chunk(d) for d in sent(engine)]
    assert chunks == [r(8, 8), r(9, 9)]


def test_choke_unchoke_and_pex_requests_are_accepted() -> None:
    engine = seeder()
    established(engine)
    engine.datagram_received(on_channel(Choke(), PexReq(), Unchoke()), PEER, 2.0)
    assert engine.datagrams_to_send() == [] and len(engine.channels) == 1


# --- timers ------------------------------------------------------------------------------


def test_a_half_open_channel_expires_at_its_deadline() -> None:
    engine = seeder(half_open_timeout=10.0)
    engine.datagram_received(opening(), PEER, 1.0)
    engine.datagrams_to_send()
    assert engine.next_deadline() == 11.0
    engine.handle_timer(10.9)
    assert engine.channels
    engine.handle_timer(11.0)
    assert not engine.channels and engine.datagrams_to_send() == []  # nothing to a stranger
    assert engine.next_deadline() is None


def test_keepalives_while_the_peer_talks_and_silence_closes() -> None:
    engine = seeder(keepalive_interval=30.0, idle_timeout=180.0, request_timeout=600.0)
    established(engine, now=1.0)
    assert engine.next_deadline() == 31.0
    engine.handle_timer(31.0)
    assert engine.datagrams_to_send() == [(PEER, (0x1111).to_bytes(4, "big"))]
    assert engine.next_deadline() == 61.0
    engine.handle_timer(181.0)
    assert not engine.channels and engine.stats["idle_closed"] == 1


def test_unacknowledged_data_is_sent_again_after_the_timeout() -> None:
    engine = seeder()
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(3, 3))), PEER, 2.0)
    [first] = sent(engine)
    deadline = engine.next_deadline()
    assert deadline is not None and 2.0 < deadline <= 2.0 + SeederConfig().ledbat.max_rto
    engine.handle_timer(deadline)
    [again] = sent(engine)
    assert data_chunk(again) == data_chunk(first) == r(3, 3)
    assert engine.stats["data_lost"] == 1
    engine.datagram_received(on_channel(Ack(chunk=r(3, 3), delay=50)), PEER, deadline + 0.01)
    assert not engine.channels[0].flight


def test_close_all_tells_established_peers_only() -> None:
    engine = seeder()
    established(engine, source=0x1111)
    engine.datagram_received(opening(0x3333), ("127.0.0.8", 1), 1.0)
    engine.datagrams_to_send()
    engine.close_all(5.0)
    assert sent(engine) == [CLOSING] and not engine.channels


def test_a_have_of_a_chunk_in_flight_is_no_loss() -> None:
    # libswift acknowledges a DATA it already held with HAVE only: when its timer runs out,
    # the DATA is not sent again and the window is not cut.
    engine = seeder()
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(3, 3))), PEER, 2.0)
    assert len(sent(engine)) == 1
    engine.datagram_received(on_channel(Have(chunk=r(0, 3))), PEER, 2.1)
    window = engine.channels[0].ledbat.cwnd
    engine.handle_timer(10.0)
    assert engine.stats["data_lost"] == 0 and engine.stats["data_acked_by_have"] == 1
    assert engine.datagrams_to_send() == [] and not engine.channels[0].flight
    assert engine.channels[0].ledbat.cwnd == window


def test_a_datagram_of_too_many_messages_closes_the_channel() -> None:
    engine = seeder(max_messages_per_datagram=100)
    established(engine)
    engine.datagram_received(on_channel(*[Cancel(chunk=r(0, 0))] * 101), PEER, 2.0)
    assert sent(engine) == [CLOSING] and engine.stats["too_many_messages"] == 1


def test_content_that_can_no_longer_be_read_closes_the_channel() -> None:
    class Shrunk:
        def read_chunk(self, index: int, size: int) -> bytes:
            return b""  # the file was cut short after it was hashed

    content = SeededContent(
        size=CONTENT.size, leaf_hashes=CONTENT.tree.leaf_hashes, reader=Shrunk()
    )
    engine = Seeder(content, channel_ids=lambda: OURS)
    established(engine)
    engine.datagram_received(on_channel(Request(chunk=r(0, 0))), PEER, 2.0)
    assert sent(engine) == [CLOSING] and engine.stats["read_error"] == 1
