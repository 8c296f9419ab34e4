"""Live content over PPSPP, sans-I/O: the source's server and a receiver driven pair-wise.

Unified Merkle Tree with signed munros (RFC 7574 section 6.1.2): every chunk a receiver hands
out verified against a munro the source signed; forged signatures, chunks off their munro,
munros outside the window and DATA without any signature are refused, each counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.ppspp.live import (
    LIVE_CHUNK_SIZE,
    MUNRO_CHUNKS,
    LiveChunkRecord,
    SignedMunro,
    from_ntp,
    live_ppspp_swarm_id,
    munro_range,
    to_ntp,
    verify_munro_signature,
)
from ppsp.peer.ppspp.live_receiver import LiveReceiver, LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS, LiveServer, live_handshake
from ppsp.wire.ppspp import (
    ChunkRange,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    Request,
    SignedIntegrity,
)

NOW = 1_800_000_000.0
PEER = ("127.0.0.1", 4000)
KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
CONFIG = LiveReceiverConfig(window_s=30.0, window_chunks=8)

Tamper = Callable[[bytes], bytes | None]


def source(window: int = 8) -> LiveServer:
    return LiveServer(SWARM, window_chunks=window, signer=KEY.sign)


def exchange(
    server: LiveServer,
    receiver: LiveReceiver,
    now: float = NOW,
    *,
    to_receiver: Tamper | None = None,
    rounds: int = 20,
) -> None:
    """Carry datagrams both ways until neither side has any (or ``rounds`` passes)."""
    for _ in range(rounds):
        moved = False
        for data in receiver.datagrams_to_send():
            moved = True
            server.datagram_received(data, PEER, now)
        for address, data in server.datagrams_to_send():
            assert address == PEER
            moved = True
            if to_receiver is not None:
                changed = to_receiver(data)
                if changed is None:
                    continue
                data = changed
            receiver.datagram_received(data, now)
        if not moved:
            return


def connected(
    server: LiveServer,
    *,
    config: LiveReceiverConfig = CONFIG,
    to_receiver: Tamper | None = None,
) -> LiveReceiver:
    receiver = LiveReceiver(SWARM, channel_id=77, config=config, now=NOW)
    exchange(server, receiver, to_receiver=to_receiver)
    assert receiver.answered
    return receiver


def payload(index: int, size: int) -> bytes:
    return bytes((index + i) % 251 for i in range(size))


def rewrite(data: bytes, change: Callable[[Datagram], Datagram]) -> bytes:
    return encode_datagram(change(decode_datagram(data, LIVE_PARAMETERS)), LIVE_PARAMETERS)


# --- the tree and the signature ---------------------------------------------------------------


def test_record_uncles_rebuild_the_signed_munro() -> None:
    data = payload(3, 5 * LIVE_CHUNK_SIZE + 100)
    record = LiveChunkRecord.sign(3, data, NOW, KEY.sign)
    assert record.pieces == 6
    assert record.held == ChunkRange(start=3 * MUNRO_CHUNKS, end=3 * MUNRO_CHUNKS + 5)
    assert verify_munro_signature(
        public_key_bytes(KEY), 3, record.munro.timestamp, record.munro.hash, record.munro.signature
    )
    # Another index, timestamp or hash under the same signature does not verify.
    munro = record.munro
    key = public_key_bytes(KEY)
    assert not verify_munro_signature(key, 4, munro.timestamp, munro.hash, munro.signature)
    assert not verify_munro_signature(key, 3, munro.timestamp + 1, munro.hash, munro.signature)
    assert not verify_munro_signature(key, 3, munro.timestamp, bytes(32), munro.signature)
    assert LiveChunkRecord.build(data, munro).munro == munro
    with pytest.raises(Exception, match="does not match its munro"):
        LiveChunkRecord.build(data[:-1], munro)
    uncles = record.uncles(5)
    assert len(uncles) == 9 and uncles[0][0] == ChunkRange(start=1540, end=1540)
    assert uncles[-1][0] == ChunkRange(start=1536 + 256, end=1536 + 511)


def test_ntp_timestamps_round_trip() -> None:
    assert abs(from_ntp(to_ntp(NOW + 0.25)) - (NOW + 0.25)) < 1e-6
    assert to_ntp(0.0) >> 32 == 2_208_988_800


def test_swarm_id_is_the_dnskey() -> None:
    assert SWARM[0] == 15 and SWARM[1:] == public_key_bytes(KEY) and len(SWARM) == 33


def test_handshakes_carry_rfc_options() -> None:
    opening = live_handshake(5, discard_window=8 * MUNRO_CHUNKS, swarm_id=SWARM)
    data = encode_datagram(Datagram(channel=0, messages=(opening,)), LIVE_PARAMETERS)
    decoded = decode_datagram(data, LIVE_PARAMETERS).messages[0]
    assert isinstance(decoded, Handshake)
    assert decoded.content_integrity is ContentIntegrity.UNIFIED_MERKLE
    assert decoded.live_signature == 15 and decoded.live_discard_window == 4096


# --- pair-wise ----------------------------------------------------------------------------------


def test_chunks_verify_and_the_receiver_can_serve_them_again() -> None:
    server = source()
    for index in range(3):
        server.append(index, payload(index, 20_000 + index), NOW)
    receiver = connected(server)
    assert all(receiver.peer_has(i) for i in range(3)) and not receiver.peer_has(3)
    receiver.request(1, NOW)
    exchange(server, receiver)
    (record,) = receiver.take_completed()
    assert record.index == 1 and record.data == payload(1, 20_001)
    # A viewer re-serves it under the source's signature to a third peer.
    relay = LiveServer(SWARM, window_chunks=8)
    assert relay.add(record, NOW)
    other = connected(relay)
    other.request(1, NOW)
    exchange(relay, other)
    assert [r.data for r in other.take_completed()] == [payload(1, 20_001)]
    assert other.forged == 0 and receiver.forged == 0


def test_a_new_chunk_is_announced_and_fetched() -> None:
    server = source()
    receiver = connected(server)
    assert not receiver.peer_has(0)
    server.append(0, payload(0, 100), NOW)
    exchange(server, receiver)
    assert receiver.peer_has(0)
    receiver.request(0, NOW)
    exchange(server, receiver)
    assert [r.data for r in receiver.take_completed()] == [payload(0, 100)]


def test_exact_multiple_of_the_chunk_size_completes() -> None:
    server = source()
    server.append(0, payload(0, 2 * LIVE_CHUNK_SIZE), NOW)
    receiver = connected(server)
    receiver.request(0, NOW)
    exchange(server, receiver)
    assert [len(r.data) for r in receiver.take_completed()] == [2 * LIVE_CHUNK_SIZE]


def test_a_lost_datagram_is_asked_for_again() -> None:
    server = source()
    server.append(0, payload(0, 3 * LIVE_CHUNK_SIZE + 5), NOW)
    receiver = connected(server)
    receiver.request(0, NOW)
    dropped: list[bytes] = []

    def lose_the_second_data(data: bytes) -> bytes | None:
        datagram = decode_datagram(data, LIVE_PARAMETERS)
        last = datagram.messages[-1] if datagram.messages else None
        if isinstance(last, Data) and last.chunk == ChunkRange(start=1, end=1) and not dropped:
            dropped.append(data)
            return None
        return data

    exchange(server, receiver, to_receiver=lose_the_second_data)
    assert not receiver.take_completed()
    deadline = receiver.next_deadline()
    assert deadline is not None
    receiver.handle_timer(deadline)
    exchange(server, receiver, deadline)
    assert [len(r.data) for r in receiver.take_completed()] == [3 * LIVE_CHUNK_SIZE + 5]
    assert receiver.stats["requested_again"] == 1


def test_forged_signature_is_refused() -> None:
    server = source()
    server.append(0, payload(0, 1000), NOW)
    receiver = connected(server)
    receiver.request(0, NOW)

    def forge(data: bytes) -> bytes:
        def change(datagram: Datagram) -> Datagram:
            return replace(
                datagram,
                messages=tuple(
                    replace(m, signature=bytes(64)) if isinstance(m, SignedIntegrity) else m
                    for m in datagram.messages
                ),
            )

        return rewrite(data, change)

    exchange(server, receiver, to_receiver=forge, rounds=3)
    assert not receiver.take_completed()
    assert receiver.stats["forged_signature"] == 1 and receiver.forged == 1
    # A liar's channel ends there: closed (the server is told), nothing more is read.
    assert receiver.closed == "forged (forged_signature)"
    assert server.channel_count == 0


def test_another_keys_munro_is_refused() -> None:
    # A server signing with another key, under our swarm ID: every munro is forged.
    impostor = LiveServer(SWARM, window_chunks=8, signer=Ed25519PrivateKey.generate().sign)
    impostor.append(0, payload(0, 1000), NOW)
    receiver = connected(impostor)
    receiver.request(0, NOW)
    exchange(impostor, receiver, rounds=3)
    assert not receiver.take_completed() and receiver.stats["forged_signature"] == 1


def test_chunk_with_a_wrong_hash_is_refused() -> None:
    server = source()
    server.append(0, payload(0, 1000), NOW)
    receiver = connected(server)
    receiver.request(0, NOW)

    def corrupt(data: bytes) -> bytes:
        def change(datagram: Datagram) -> Datagram:
            return replace(
                datagram,
                messages=tuple(
                    replace(m, data=b"X" + m.data[1:]) if isinstance(m, Data) else m
                    for m in datagram.messages
                ),
            )

        return rewrite(data, change)

    exchange(server, receiver, to_receiver=corrupt, rounds=3)
    assert not receiver.take_completed()
    assert receiver.stats["bad_hash"] == 1 and receiver.forged == 1


def test_munro_outside_the_window_is_refused() -> None:
    server = source(window=64)
    for index in range(20):
        server.append(index, payload(index, 300), NOW)
    receiver = connected(server)  # its window: 8 live chunks
    receiver.request(19, NOW)
    exchange(server, receiver)
    assert [r.index for r in receiver.take_completed()] == [19]
    receiver.request(5, NOW)  # 14 behind the newest verified munro
    exchange(server, receiver, rounds=3)
    assert not receiver.take_completed()
    assert receiver.stats["outside_window"] == 1 and receiver.forged == 0


def test_stale_and_future_munros_are_refused() -> None:
    server = source()
    server.append(0, payload(0, 300), NOW - 3600)  # signed an hour ago: a replay
    server.append(1, payload(1, 300), NOW + 3600)  # stamped an hour ahead
    receiver = connected(server)
    receiver.request(0, NOW)
    receiver.request(1, NOW)
    exchange(server, receiver, rounds=3)
    assert not receiver.take_completed()
    # Each refused, on tune-in and with the chunk, never verified.
    assert receiver.stats["stale_munro"] >= 1 and receiver.stats["future_munro"] >= 1
    assert receiver.stats["munros_verified"] == 0


def test_a_source_that_never_signs_is_refused() -> None:
    # A peer that answers with hashes and DATA but no SIGNED_INTEGRITY.
    def unsign(data: bytes) -> bytes:
        def change(datagram: Datagram) -> Datagram:
            kept = tuple(m for m in datagram.messages if not isinstance(m, SignedIntegrity))
            return replace(datagram, messages=kept)

        return rewrite(data, change)

    server = source()
    server.append(0, payload(0, 300), NOW)
    receiver = connected(server, to_receiver=unsign)
    receiver.request(0, NOW)
    exchange(server, receiver, to_receiver=unsign, rounds=3)
    assert not receiver.take_completed() and receiver.stats["unsigned"] >= 1


def test_signature_without_the_munro_hash_is_refused() -> None:
    server = source()
    server.append(0, payload(0, 300), NOW)

    def drop_munro_hash(data: bytes) -> bytes:
        munro = munro_range(0)

        def change(datagram: Datagram) -> Datagram:
            kept = tuple(
                m for m in datagram.messages if not (isinstance(m, Integrity) and m.chunk == munro)
            )
            return replace(datagram, messages=kept)

        return rewrite(data, change)

    receiver = connected(server, to_receiver=drop_munro_hash)
    receiver.request(0, NOW)
    exchange(server, receiver, to_receiver=drop_munro_hash, rounds=3)
    assert receiver.stats["signature_without_hash"] >= 1 and not receiver.take_completed()


def test_discard_window_filters_the_peers_haves() -> None:
    server = source(window=4)
    for index in range(10):
        server.append(index, payload(index, 300), NOW)
    assert [i for i in range(10) if server.holds(i)] == [6, 7, 8, 9]
    receiver = connected(server)
    assert receiver.peer_window == 4 * MUNRO_CHUNKS
    # A HAVE of an old chunk from the peer: outside its own discard window, not held.
    receiver.datagram_received(
        encode_datagram(
            Datagram(channel=77, messages=(Have(chunk=ChunkRange(start=0, end=0)),)),
            LIVE_PARAMETERS,
        ),
        NOW,
    )
    assert not receiver.peer_has(0) and receiver.peer_has(6) and receiver.peer_has(9)


def test_refused_handshakes_get_no_answer() -> None:
    server = source()
    other = live_ppspp_swarm_id(bytes(32))
    receiver = LiveReceiver(other, channel_id=5, config=CONFIG, now=NOW)
    exchange(server, receiver)
    assert not receiver.answered and server.stats["refused:swarm_id"] == 1
    stored = Handshake(
        source_channel=9,
        version=1,
        min_version=1,
        swarm_id=SWARM,
        content_integrity=ContentIntegrity.MERKLE,
        chunk_size=LIVE_CHUNK_SIZE,
    )
    opening = encode_datagram(
        Datagram(channel=0, messages=(stored,)), LIVE_PARAMETERS, profile=EncoderProfile.PLAIN
    )
    server.datagram_received(opening, PEER, NOW)
    assert not server.datagrams_to_send() and server.stats["refused:integrity_method"] == 1
    deadline = receiver.next_deadline()
    assert deadline is not None
    receiver.handle_timer(NOW + 10)
    assert receiver.closed == "no answer"


def test_hostile_bytes_never_raise() -> None:
    server = source()
    server.append(0, payload(0, 300), NOW)
    receiver = connected(server)
    for junk in (b"", b"\x00", b"\x00\x00\x00\x4d\xff", b"\x00\x00\x00\x4d\x07" + bytes(90)):
        receiver.datagram_received(junk, NOW)
        server.datagram_received(junk, PEER, NOW)
    assert receiver.stats["malformed"] >= 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 5 * LIVE_CHUNK_SIZE), min_size=1, max_size=6))
def test_any_sequence_the_source_appends_verifies(sizes: list[int]) -> None:
    server = source(window=8)
    receiver = connected(server)
    for index, size in enumerate(sizes):
        server.append(index, payload(index, size), NOW + index)
        exchange(server, receiver, NOW + index)
        receiver.request(index, NOW + index)
        exchange(server, receiver, NOW + index)
    got = {r.index: r.data for r in receiver.take_completed()}
    assert got == {i: payload(i, size) for i, size in enumerate(sizes)}
    assert receiver.forged == 0 and receiver.stats["bad_hash"] == 0


def test_signed_munro_sign_helper() -> None:
    munro = SignedMunro.sign(2, bytes(32), NOW, KEY.sign)
    assert munro.chunks == munro_range(2)
    assert verify_munro_signature(
        public_key_bytes(KEY), 2, munro.timestamp, munro.hash, munro.signature
    )


@settings(max_examples=200, deadline=None)
@given(junk=st.lists(st.binary(max_size=200), max_size=8), opening=st.booleans())
def test_any_datagrams_never_raise(junk: list[bytes], opening: bool) -> None:
    # Random bytes after a channel prefix the engines route: both sides drop and count.
    server = source()
    server.append(0, payload(0, 300), NOW)
    receiver = connected(server)
    receiver.request(0, NOW)
    for data in junk:
        prefix = (0).to_bytes(4, "big") if opening else (77).to_bytes(4, "big")
        receiver.datagram_received(prefix + data, NOW)
        server.datagram_received(prefix + data, PEER, NOW)
        server.datagram_received(data, PEER, NOW)
    exchange(server, receiver)


def test_signature_checks_per_datagram_are_bounded() -> None:
    server = source()
    record = server.append(0, payload(0, 300), NOW)
    receiver = connected(server)
    munro = record.munro
    flood: list[Integrity | SignedIntegrity] = [Integrity(chunk=munro.chunks, hash=munro.hash)]
    flood += [
        SignedIntegrity(chunk=munro.chunks, timestamp=munro.timestamp + n, signature=bytes(64))
        for n in range(1, 50)
    ]
    receiver.datagram_received(
        encode_datagram(Datagram(channel=77, messages=tuple(flood)), LIVE_PARAMETERS), NOW
    )
    # The first forged signature ends the channel: one check, not 49.
    assert receiver.stats["forged_signature"] == 1 and receiver.closed is not None
    # Valid signatures of ten munros in one datagram (a replay of the real ones), and stale
    # ones: the stale cost no check, and at most 4 checks are made per datagram.
    many = source(window=16)
    records = [many.append(i, payload(i, 300), NOW) for i in range(10)]
    other = connected(many)
    messages: list[Integrity | SignedIntegrity] = []
    for r in records:
        m = r.munro
        messages.append(Integrity(chunk=m.chunks, hash=m.hash))
        messages.append(
            SignedIntegrity(chunk=m.chunks, timestamp=m.timestamp, signature=m.signature)
        )
        messages.append(SignedIntegrity(chunk=m.chunks, timestamp=1, signature=bytes(64)))
    other.datagram_received(
        encode_datagram(Datagram(channel=77, messages=tuple(messages)), LIVE_PARAMETERS), NOW
    )
    # Chunk 9's came on tune-in (verified then, free now); 0 and 1 are outside the receiver's
    # window of 8 behind it (no check), 2-5 are checked, 6-8 dropped.
    assert other.stats["munros_verified"] == 5 and other.stats["too_many_signatures"] == 3
    assert other.stats["outside_window"] == 2
    assert other.stats["stale_munro"] == 10 and other.closed is None


def test_a_have_of_every_chunk_costs_the_server_nothing() -> None:
    server = source()
    server.append(0, payload(0, 300), NOW)
    receiver = connected(server)
    everything = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
    request = Request(chunk=ChunkRange(start=0, end=2**32 - 1))
    server.datagram_received(
        encode_datagram(
            Datagram(channel=_server_channel(server), messages=(everything, request)),
            LIVE_PARAMETERS,
        ),
        PEER,
        NOW,
    )
    # Over what is held, not the 2^23 munros named: the one piece held is sent, nothing else.
    assert server.stats["data_sent"] == 1 and server.stats["request_not_held"] == 0
    del receiver


def _server_channel(server: LiveServer) -> int:
    (channel,) = server._channels  # the test speaks on the server's one channel
    return channel


def test_secure_tune_in_exchanges_right_most_signed_munros() -> None:
    server = source()
    for index in range(3):
        server.append(index, payload(index, 300), NOW)
    # The server's right-most signed munro comes once the channel is confirmed.
    receiver = connected(server)
    assert receiver.stats["munros_verified"] == 1 and server.stats["tune_in_out"] == 1
    # A new chunk's HAVE comes with its signed munro.
    server.append(3, payload(3, 300), NOW)
    exchange(server, receiver)
    assert receiver.stats["munros_verified"] == 2 and receiver.peer_has(3)
    # A receiver that holds chunks sends its own right-most one in the third datagram.
    relay = LiveServer(SWARM, window_chunks=8)
    record = server.get(3)
    assert record is not None
    other = LiveReceiver(SWARM, channel_id=78, config=CONFIG, now=NOW, tune_in=record.munro)
    exchange(relay, other)
    assert relay.stats["tune_in_in"] == 1 and other.answered
