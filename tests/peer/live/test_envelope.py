from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import (
    ForgedChunk,
    FutureChunk,
    IntegrityError,
    InvalidEnvelope,
    StaleChunk,
)
from ppsp.peer.live import (
    ENVELOPE_HEADER_SIZE,
    FLAG_END,
    FLAG_START,
    ChunkEnvelope,
    LivePolicy,
    LiveSource,
    LiveWindow,
    generate_key,
    live_swarm_id,
    max_index_at,
    signing_message,
    verify_envelope,
)

KEY = generate_key()
START = 1_700_000_000.0  # Unix seconds


def source(key: object = KEY, start: float = START) -> LiveSource:
    return LiveSource.start(key, now=start, name="cam", chunk_ms=1000, window_s=30)  # type: ignore[arg-type]


def signed_at(src: LiveSource, index: int, t: float, payload: bytes = b"media") -> ChunkEnvelope:
    src.next_index = index
    return src.sign(payload, round(t * 1000))


def test_genuine_chunk_verifies() -> None:
    src = source()
    env = signed_at(src, 0, START)
    verify_envelope(src.description, env, START + 0.5)
    window = LiveWindow.for_description(src.description)
    verify_envelope(src.description, env, START + 0.5, window)


def test_forged_signature_rejected() -> None:
    src = source()
    env = signed_at(src, 3, START + 3)
    for bad in (
        ChunkEnvelope(
            index=3, timestamp_ms=env.timestamp_ms, signature=bytes(64), payload=env.payload
        ),
        ChunkEnvelope(
            index=3, timestamp_ms=env.timestamp_ms, signature=env.signature, payload=b"evil"
        ),
        ChunkEnvelope(
            index=4, timestamp_ms=env.timestamp_ms, signature=env.signature, payload=env.payload
        ),
        ChunkEnvelope(
            index=3,
            timestamp_ms=env.timestamp_ms + 1,
            signature=env.signature,
            payload=env.payload,
        ),
    ):
        with pytest.raises(ForgedChunk) as info:
            verify_envelope(src.description, bad, START + 4)
        assert isinstance(info.value, IntegrityError)


def test_flags_are_signed() -> None:
    # A relay cannot mark a chunk as a start point or as the end, nor unmark it.
    src = source()
    src.next_index = 5
    env = src.sign(b"media", round((START + 5) * 1000), flags=FLAG_START)
    assert env.start and not env.end
    verify_envelope(src.description, env, START + 6)
    for flags in (0, FLAG_END, FLAG_START | FLAG_END):
        forged = ChunkEnvelope(
            index=5,
            timestamp_ms=env.timestamp_ms,
            signature=env.signature,
            payload=env.payload,
            flags=flags,
        )
        with pytest.raises(ForgedChunk):
            verify_envelope(src.description, forged, START + 6)
    src.next_index = 6
    last = src.sign(b"", round((START + 6) * 1000), flags=FLAG_END)
    assert last.end and not last.start
    decoded = ChunkEnvelope.decode(last.encode())
    assert decoded.flags == FLAG_END
    verify_envelope(src.description, decoded, START + 7)


def test_unknown_flags_refused() -> None:
    with pytest.raises(InvalidEnvelope):
        ChunkEnvelope(index=0, timestamp_ms=0, signature=bytes(64), payload=b"", flags=4)


def test_chunk_signed_by_another_source_rejected() -> None:
    mine = source()
    theirs = source(generate_key())
    env = signed_at(theirs, 0, START)
    with pytest.raises(ForgedChunk):
        verify_envelope(mine.description, env, START + 1)


def test_chunk_signed_for_another_swarm_rejected() -> None:
    # The right key signs, but over another swarm ID: the swarm ID is part of what is signed.
    src = source()
    other_swarm = live_swarm_id(generate_key())
    timestamp_ms = round(START * 1000)
    message = signing_message(other_swarm, src.description.start_ms, 0, timestamp_ms, b"media")
    env = ChunkEnvelope(
        index=0, timestamp_ms=timestamp_ms, signature=KEY.sign(message), payload=b"media"
    )
    with pytest.raises(ForgedChunk):
        verify_envelope(src.description, env, START + 1)
    genuine = signing_message(src.swarm_id, src.description.start_ms, 0, timestamp_ms, b"media")
    ok = ChunkEnvelope(
        index=0, timestamp_ms=timestamp_ms, signature=KEY.sign(genuine), payload=b"media"
    )
    verify_envelope(src.description, ok, START + 1)


def test_chunk_of_an_earlier_session_rejected() -> None:
    old = source(start=START - 10)
    new = source(start=START)
    assert old.swarm_id == new.swarm_id
    env = signed_at(old, 2, START)
    verify_envelope(old.description, env, START + 1)
    with pytest.raises(ForgedChunk):
        verify_envelope(new.description, env, START + 1)


def test_replay_below_window_floor_rejected() -> None:
    src = source()
    window = LiveWindow(window_s=30, max_chunks=5)
    for i in range(10):
        env = signed_at(src, i, START + i)
        verify_envelope(src.description, env, START + i, window)
        window.add(env)
    assert window.floor == 5
    old = signed_at(src, 2, START + 2)
    with pytest.raises(StaleChunk):
        verify_envelope(src.description, old, START + 10, window)


def test_replay_of_an_old_timestamp_rejected() -> None:
    src = source()
    env = signed_at(src, 0, START)
    policy = LivePolicy(clock_skew_s=2.0)
    verify_envelope(src.description, env, START + 31.9, policy=policy)
    with pytest.raises(StaleChunk):
        verify_envelope(src.description, env, START + 32.1, policy=policy)


def test_future_timestamp_rejected() -> None:
    src = source()
    env = signed_at(src, 0, START + 10)
    policy = LivePolicy(clock_skew_s=2.0)
    verify_envelope(src.description, env, START + 8.5, policy=policy)
    with pytest.raises(FutureChunk):
        verify_envelope(src.description, env, START + 7.5, policy=policy)


def test_future_index_rejected() -> None:
    src = source()
    policy = LivePolicy(clock_skew_s=0.0, burst=2.0, future_slack_chunks=3)
    now = START + 10
    limit = max_index_at(src.description, now, policy)
    assert limit == (10_000 * 2 // 1000) + 1 + 3
    verify_envelope(src.description, signed_at(src, limit, START + 9), now, policy=policy)
    with pytest.raises(FutureChunk):
        verify_envelope(src.description, signed_at(src, limit + 1, START + 9), now, policy=policy)
    with pytest.raises(FutureChunk):
        verify_envelope(src.description, signed_at(src, 10**12, START + 9), now, policy=policy)


def test_payload_over_policy_bound_rejected() -> None:
    src = source()
    env = signed_at(src, 0, START, b"x" * 100)
    with pytest.raises(InvalidEnvelope):
        verify_envelope(src.description, env, START, policy=LivePolicy(max_payload=99))


def test_round_trip() -> None:
    env = signed_at(source(), 7, START + 7, b"\x47" * 376)
    data = env.encode()
    assert len(data) == ENVELOPE_HEADER_SIZE + 376
    assert data[:4] == b"LV\x02\x01"  # version 2, START (the source's default)
    assert ChunkEnvelope.decode(data) == env
    assert ChunkEnvelope.decode(bytearray(data)) == env
    assert ChunkEnvelope.decode(memoryview(data)) == env
    assert env.timestamp == pytest.approx(START + 7)


@settings(max_examples=100, deadline=None)
@given(
    index=st.integers(0, 2**63 - 1),
    timestamp_ms=st.integers(0, 2**63 - 1),
    signature=st.binary(min_size=64, max_size=64),
    payload=st.binary(max_size=512),
    flags=st.integers(0, 3),
)
def test_round_trip_property(
    index: int, timestamp_ms: int, signature: bytes, payload: bytes, flags: int
) -> None:
    env = ChunkEnvelope(
        index=index, timestamp_ms=timestamp_ms, signature=signature, payload=payload, flags=flags
    )
    assert ChunkEnvelope.decode(env.encode()) == env


def header(
    *,
    magic: bytes = b"LV",
    version: int = 2,
    flags: int = 0,
    index: int = 0,
    timestamp_ms: int = 0,
    length: int = 0,
) -> bytes:
    return struct.pack(">2sBBQQ64sI", magic, version, flags, index, timestamp_ms, bytes(64), length)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"LV",
        header()[:-1],
        header(magic=b"XX"),
        header(version=1),
        header(version=3),
        header(flags=4),
        header(flags=0x80),
        header(length=5) + b"1234",
        header(length=5) + b"123456",
        header(length=0xFFFFFFFF),
        header(index=2**64 - 1),
        header(timestamp_ms=2**63),
    ],
)
def test_hostile_decode_cases(data: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        ChunkEnvelope.decode(data)


def test_decode_honours_max_payload() -> None:
    data = header(length=10) + bytes(10)
    assert len(ChunkEnvelope.decode(data, max_payload=10).payload) == 10
    with pytest.raises(InvalidEnvelope):
        ChunkEnvelope.decode(data, max_payload=9)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(InvalidEnvelope):
        ChunkEnvelope.decode("LV" * 60)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_decode_random(data: bytes) -> None:
    with contextlib.suppress(InvalidEnvelope):
        ChunkEnvelope.decode(data)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        lambda prefix, body: prefix + body,
        st.sampled_from([b"LV\x02\x00", b"LV\x02\x03", b"LV\x02\x04", b"LV\x01\x00", b"LV"]),
        st.binary(max_size=200),
    )
)
def test_hostile_decode_near_valid(data: bytes) -> None:
    try:
        env = ChunkEnvelope.decode(data)
    except InvalidEnvelope:
        return
    assert env.encode() == data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_envelope_verification(data: bytes) -> None:
    # Decoded garbage never verifies; only the live errors escape.
    src = source()
    try:
        stamped = header(length=len(data), timestamp_ms=round(START * 1000))
        env = ChunkEnvelope.decode(stamped + data)
        verify_envelope(src.description, env, START)
    except (InvalidEnvelope, ForgedChunk, StaleChunk, FutureChunk):
        return
    raise AssertionError("garbage verified")
