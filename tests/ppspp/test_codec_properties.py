"""Properties of the PPSPP codec: round trips both ways, and only its own error on truncated,
mutated or random bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import MalformedDatagram
from ppsp.wire.ppspp import ChannelParameters, Datagram

from .strategies import datagrams, encoded, handshakes, parameters

PLAIN = EncoderProfile.PLAIN
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(datagrams())
def test_decode_of_encode_is_the_datagram(case: tuple[ChannelParameters, Datagram]) -> None:
    params, datagram = case
    assert decode_datagram(encode_datagram(datagram, params, profile=PLAIN), params) == datagram


@SETTINGS
@given(encoded())
def test_encode_of_decode_is_the_bytes(case: tuple[ChannelParameters, bytes]) -> None:
    params, data = case
    assert encode_datagram(decode_datagram(data, params), params, profile=PLAIN) == data


def _decodes_or_refuses(data: bytes, params: ChannelParameters) -> None:
    """Decoding gives a datagram that re-encodes to the same bytes, or our error only."""
    try:
        datagram = decode_datagram(data, params)
    except MalformedDatagram as error:
        assert error.code in {"truncated", "oversized", "malformed", "unsupported"}
        assert "\n" not in str(error)
    else:
        assert encode_datagram(datagram, params, profile=PLAIN) == data


@SETTINGS
@given(encoded(), st.data())
def test_truncated_datagrams(case: tuple[ChannelParameters, bytes], data: st.DataObject) -> None:
    params, wire = case
    cut = data.draw(st.integers(0, max(0, len(wire) - 1)))
    _decodes_or_refuses(wire[:cut], params)


@SETTINGS
@given(encoded(), st.data())
def test_mutated_datagrams(case: tuple[ChannelParameters, bytes], data: st.DataObject) -> None:
    params, wire = case
    buffer = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(buffer)))
        edit = data.draw(st.sampled_from(("flip", "insert", "delete")))
        if edit == "flip" and position < len(buffer):
            buffer[position] ^= 1 << data.draw(st.integers(0, 7))
        elif edit == "insert":
            buffer[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buffer[position : position + data.draw(st.integers(1, 8))]
    _decodes_or_refuses(bytes(buffer), params)


@SETTINGS
@given(parameters(), st.binary(max_size=200))
def test_random_bytes(params: ChannelParameters, data: bytes) -> None:
    _decodes_or_refuses(data, params)


@SETTINGS
@given(parameters(), handshakes(), st.binary(max_size=120))
def test_random_bytes_after_a_handshake(
    params: ChannelParameters, handshake: object, tail: bytes
) -> None:
    head = encode_datagram(Datagram(channel=0, messages=(handshake,)), params, profile=PLAIN)  # type: ignore[arg-type]
    _decodes_or_refuses(head + tail, params)


@given(encoded())
def test_what_a_decode_holds_is_no_bigger_than_the_datagram(
    case: tuple[ChannelParameters, bytes],
) -> None:
    params, wire = case
    datagram = decode_datagram(wire, params)
    held = 0
    for message in datagram.messages:
        for name in ("data", "hash", "signature", "certificate", "swarm_id"):
            value = getattr(message, name, None)
            held += len(value) if isinstance(value, bytes) else 0
    assert held <= len(wire)
