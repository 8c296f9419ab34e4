"""The PPSPP codec's fast path for the common datagram shapes against its general code.

``codecs/ppspp_common.py`` reads and writes INTEGRITY, DATA, ACK, HAVE and REQUEST on channels of
32-bit chunk ranges in one loop (``decode_common``, ``encode_common``) and hands anything
else to the general reader and writer, which decide every refusal.  Differential properties:
on generated datagrams (the common shapes, and every shape of the shared strategies), cut,
damaged and random bytes, the fast path either declines (None) or gives exactly what the
general code gives, and it never accepts what the general code refuses.  A fast path that
always declined would pass those: the first property checks that it takes the common shapes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import ppspp as codec
from ppsp.codecs import ppspp_common as common_shapes
from ppsp.codecs.ppspp import EncoderProfile
from ppsp.errors import LocalProtocolError, MalformedDatagram, TooManyMessages
from ppsp.wire.ppspp import (
    VARIABLE_CHUNK_SIZE,
    Ack,
    Bin,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Datagram,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    Request,
)

from .strategies import datagrams, timestamps

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN = EncoderProfile.PLAIN
U32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def _range(draw: st.DrawFn) -> ChunkRange:
    first, last = sorted((draw(U32), draw(U32)))
    return ChunkRange(start=first, end=last)


@st.composite
def common(draw: st.DrawFn) -> tuple[ChannelParameters, Datagram]:
    """A datagram of the shapes a transfer sends: INTEGRITY and a DATA, or ACK, HAVE and
    REQUEST messages, on a channel of 32-bit chunk ranges."""
    params = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        merkle_hash=draw(st.sampled_from(MerkleHashFunction)),
        chunk_size=draw(st.one_of(st.integers(1, 64), st.just(VARIABLE_CHUNK_SIZE))),
    )
    size = params.hash_length
    body: list[Message] = draw(
        st.lists(
            st.one_of(
                st.builds(Integrity, chunk=_range(), hash=st.binary(min_size=size, max_size=size)),
                st.builds(Ack, chunk=_range(), delay=timestamps),
                st.builds(Have, chunk=_range()),
                st.builds(Request, chunk=_range()),
            ),
            max_size=8,
        )
    )
    for _ in range(draw(st.integers(0, 2))):
        full = params.chunk_size != VARIABLE_CHUNK_SIZE and draw(st.booleans())
        length = params.chunk_size if full else draw(st.integers(1, min(64, params.chunk_size)))
        index = draw(U32)
        body.append(
            Data(
                chunk=ChunkRange(start=index, end=index),
                timestamp=draw(timestamps),
                data=draw(st.binary(min_size=length, max_size=length)),
            )
        )
        if length != params.chunk_size:
            break  # a short DATA comes last
    channel = draw(st.integers(1, 0xFFFFFFFF))
    return params, Datagram(channel=channel, messages=tuple(body))


def _same_decoding(wire: bytes, params: ChannelParameters) -> None:
    if params.chunk_addressing is not ChunkAddressing.CHUNK_RANGE_32:
        return  # decode_datagram takes the fast path on such channels only
    fast = common_shapes.decode_common(wire, params)
    if fast is None:
        return
    assert codec._decode_general(wire, params) == fast  # and it does not refuse


def _same_encoding(datagram: Datagram, params: ChannelParameters) -> None:
    if params.chunk_addressing is not ChunkAddressing.CHUNK_RANGE_32:
        return
    fast = common_shapes.encode_common(datagram, params)
    if fast is None:
        return
    assert codec._encode_general(datagram, params, PLAIN) == fast


@SETTINGS
@given(common())
def test_the_common_shapes_take_the_fast_path_both_ways(
    case: tuple[ChannelParameters, Datagram],
) -> None:
    params, datagram = case
    wire = common_shapes.encode_common(datagram, params)
    assert wire is not None
    assert wire == codec._encode_general(datagram, params, PLAIN)
    assert common_shapes.decode_common(wire, params) == datagram
    assert codec._decode_general(wire, params) == datagram


@SETTINGS
@given(datagrams())
def test_any_datagram_encodes_the_same(case: tuple[ChannelParameters, Datagram]) -> None:
    params, datagram = case
    _same_encoding(datagram, params)
    wire = codec.encode_datagram(datagram, params, profile=PLAIN)
    _same_decoding(wire, params)
    range32 = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        merkle_hash=params.merkle_hash,
        chunk_size=params.chunk_size,
    )
    _same_decoding(wire, range32)  # bytes of other addressings read as ranges


@SETTINGS
@given(st.one_of(common(), datagrams()), st.data())
def test_cut_and_damaged_datagrams_decode_the_same(
    case: tuple[ChannelParameters, Datagram], data: st.DataObject
) -> None:
    params, datagram = case
    params = ChannelParameters(
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        merkle_hash=params.merkle_hash,
        chunk_size=params.chunk_size,
    )
    try:
        wire = codec.encode_datagram(datagram, params, profile=PLAIN)
    except LocalProtocolError:  # drawn for another addressing
        return
    buffer = bytearray(wire)
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(buffer)))
        edit = data.draw(st.sampled_from(("flip", "insert", "delete", "cut")))
        if edit == "flip" and position < len(buffer):
            buffer[position] ^= 1 << data.draw(st.integers(0, 7))
        elif edit == "insert":
            buffer[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del buffer[position : position + data.draw(st.integers(1, 8))]
        else:
            del buffer[position:]
    _same_decoding(bytes(buffer), params)


@SETTINGS
@given(st.sampled_from(MerkleHashFunction), st.binary(max_size=120))
def test_random_bytes_decode_the_same(hash_function: MerkleHashFunction, wire: bytes) -> None:
    _same_decoding(wire, ChannelParameters(merkle_hash=hash_function, chunk_size=16))


RANGE = ChunkRange(start=1, end=1)
HASH = bytes(32)
BAD = [
    Datagram(channel=0, messages=(Request(chunk=RANGE),)),  # channel 0 needs a HANDSHAKE
    Datagram(channel=1 << 32, messages=()),
    Datagram(channel=True, messages=()),
    Datagram(channel=1, messages=(Integrity(chunk=RANGE, hash=bytes(20)),)),  # SHA-1 length
    Datagram(channel=1, messages=(Integrity(chunk=RANGE, hash=bytearray(32)),)),  # type: ignore[arg-type]
    Datagram(channel=1, messages=(Request(chunk=Bin(number=2)),)),
    Datagram(channel=1, messages=(Request(chunk=ChunkRange(start=2, end=1)),)),
    Datagram(channel=1, messages=(Request(chunk=ChunkRange(start=0, end=1 << 32)),)),
    Datagram(channel=1, messages=(Request(chunk=ChunkRange(start=False, end=1)),)),
    Datagram(channel=1, messages=(Ack(chunk=RANGE, delay=1 << 64),)),
    Datagram(channel=1, messages=(Ack(chunk=RANGE, delay=-1),)),
    Datagram(channel=1, messages=(Data(chunk=ChunkRange(start=1, end=2), timestamp=0, data=b"x"),)),
    Datagram(channel=1, messages=(Data(chunk=RANGE, timestamp=0, data=b""),)),
    Datagram(channel=1, messages=(Data(chunk=RANGE, timestamp=1 << 64, data=b"x"),)),
    Datagram(channel=1, messages=(Data(chunk=RANGE, timestamp=0, data=bytes(17)),)),  # > size
    # A short DATA followed by anything: its end is the datagram's.
    Datagram(
        channel=1,
        messages=(Data(chunk=RANGE, timestamp=0, data=b"x"), Request(chunk=RANGE)),
    ),
    Datagram(channel=1, messages=(Integrity(chunk=RANGE, hash=HASH),) * 4097),
    Datagram(
        channel=1, messages=(Data(chunk=RANGE, timestamp=0, data=bytes(16)),) * 4000
    ),  # over the largest datagram
]


@pytest.mark.parametrize("datagram", BAD)
def test_what_the_general_encoder_refuses_the_fast_path_declines(datagram: Datagram) -> None:
    params = ChannelParameters(chunk_size=16)
    assert common_shapes.encode_common(datagram, params) is None
    with pytest.raises(LocalProtocolError):
        codec.encode_datagram(datagram, params)


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00\x00\x00\x01\x08\x00\x00\x00\x02\x00\x00\x00\x01",  # range ends before it starts
        b"\x00\x00\x00\x01\x08\x00\x00\x00\x02\x00\x00",  # cut inside a REQUEST
        b"\x00\x00\x00\x01\x01" + bytes(16),  # DATA without data
        b"\x00\x00\x00\x01\x01\x00\x00\x00\x01\x00\x00\x00\x02" + bytes(9),  # two chunks
        b"\x00\x00\x00\x01\x04" + bytes(8) + bytes(31),  # cut inside a hash
        b"\x00\x00\x00\x01" + b"\x08" + bytes(8) * 1 + b"\x63",  # unknown type 99
        b"\x00\x00\x00\x00\x08" + bytes(8),  # channel 0 without a HANDSHAKE
        b"\x00\x00\x00",
        b"\x00\x00\x00\x01" + b"\x03" + bytes(8) + b"\x00" * 65500,  # oversized
    ],
)
def test_what_the_general_decoder_refuses_the_fast_path_declines(wire: bytes) -> None:
    params = ChannelParameters(chunk_size=16)
    assert common_shapes.decode_common(wire, params) is None
    with pytest.raises(MalformedDatagram):
        codec.decode_datagram(wire, params)


@pytest.mark.parametrize("limit", [1, 64, 1024, 4096, 5000])
def test_too_many_messages_the_fast_path_refuses_as_the_general_code(limit: int) -> None:
    # The one refusal the fast path makes itself: at the same message, with the same words
    # and the same messages read before it (the general code would read them again).
    params = ChannelParameters(chunk_size=16)
    wire = b"\x00\x00\x00\x01" + (b"\x03" + bytes(8)) * 4097
    with pytest.raises(TooManyMessages) as fast:
        common_shapes.decode_common(wire, params, min(limit, 4096))
    with pytest.raises(TooManyMessages) as general:
        codec._decode_general(wire, params, min(limit, 4096))
    with pytest.raises(TooManyMessages) as public:
        codec.decode_datagram(wire, params, max_messages=limit)
    assert str(fast.value) == str(general.value) == str(public.value)
    assert fast.value.messages == general.value.messages == public.value.messages
    assert len(fast.value.messages) == min(limit, 4096) and fast.value.code == "oversized"


def test_a_datagram_of_full_chunks_after_another_reads_the_same() -> None:
    params = ChannelParameters(chunk_size=4)
    wire = b"\x00\x00\x00\x07" + (b"\x01" + bytes(16) + b"abcd") * 2 + b"\x01" + bytes(16) + b"z"
    fast = common_shapes.decode_common(wire, params)
    assert fast is not None and len(fast.messages) == 3
    assert fast == codec._decode_general(wire, params)
    assert codec.encode_datagram(fast, params) == wire


def test_other_input_types_take_the_general_path() -> None:
    params = ChannelParameters(chunk_size=16)
    wire = b"\x00\x00\x00\x01\x08" + bytes(8)
    expected = codec.decode_datagram(wire, params)
    for other in (bytearray(wire), memoryview(wire)):
        assert codec.decode_datagram(other, params) == expected  # type: ignore[arg-type]


def test_the_client_reads_integrity_and_data_without_changing_its_state() -> None:
    # ChannelClient skips its transition table for these (client._STAYING): the table must
    # keep an open or choked channel as it is for them.
    from ppsp.peer.ppspp.channel import Event
    from ppsp.peer.ppspp.client import _STAYING, TRANSITIONS, ChannelState

    events = {Integrity: Event.INTEGRITY, Data: Event.DATA}
    for kind in _STAYING:
        for state in (ChannelState.OPEN, ChannelState.CHOKED):
            assert TRANSITIONS[(state, events[kind])] is state


@given(U32, U32, timestamps, st.binary(max_size=40))
def test_the_message_builders_build_what_the_constructors_do(
    start: int, length: int, stamp: int, value: bytes
) -> None:
    chunk = ChunkRange(start=start, end=start + length)
    built = common_shapes.integrity_message(start, start + length, value)
    assert built == Integrity(chunk=chunk, hash=value)
    assert hash(built) == hash(Integrity(chunk=chunk, hash=value))
    data = common_shapes.data_message(start, stamp, value)
    assert data == Data(chunk=ChunkRange(start=start, end=start), timestamp=stamp, data=value)
