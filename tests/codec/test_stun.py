"""The STUN codec (RFC 8489): RFC 5769's test vector, round trips, and hostile bytes."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.codecs.stun import (
    decode_message,
    encode_message,
    integrity_matches,
    is_stun,
    message_type,
)
from ppsp.errors import StunFormatError
from ppsp.wire.stun import MESSAGE_MAX, Attr, StunClass, StunMessage, StunMethod

# RFC 5769 section 2.2: a Binding success answer (SOFTWARE "test vector", XOR-MAPPED-ADDRESS
# 192.0.2.1:32853, MESSAGE-INTEGRITY under the short-term password, FINGERPRINT).
RFC5769_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RFC5769_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"


def test_rfc5769_ipv4_response() -> None:
    message = decode_message(RFC5769_IPV4_RESPONSE)
    assert message.cls is StunClass.SUCCESS and message.method is StunMethod.BINDING
    assert message.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert message.mapped == ("192.0.2.1", 32853)
    assert message.software == "test vector"
    assert message.fingerprint
    assert [atype for atype, _ in message.other] == [Attr.MESSAGE_INTEGRITY]
    assert integrity_matches(RFC5769_IPV4_RESPONSE, RFC5769_PASSWORD)
    assert not integrity_matches(RFC5769_IPV4_RESPONSE, b"wrong")


def test_message_types_interleave_the_class_bits() -> None:
    assert message_type(StunMethod.BINDING, StunClass.REQUEST) == 0x0001
    assert message_type(StunMethod.BINDING, StunClass.INDICATION) == 0x0011
    assert message_type(StunMethod.BINDING, StunClass.SUCCESS) == 0x0101
    assert message_type(StunMethod.BINDING, StunClass.ERROR) == 0x0111


def test_a_request_is_what_a_server_expects() -> None:
    request = StunMessage(StunClass.REQUEST, StunMethod.BINDING, b"\x01" * 12, fingerprint=True)
    data = encode_message(request)
    assert data[:4] == bytes.fromhex("00010008") and is_stun(data)
    assert decode_message(data) == request


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01\x00", "20-byte header"),
        (bytes.fromhex("c0010000") + b"\x21\x12\xa4\x42" + bytes(12), "first two bits"),
        (bytes.fromhex("00010000") + bytes(4) + bytes(12), "magic cookie"),
        (bytes.fromhex("00010004") + b"\x21\x12\xa4\x42" + bytes(12), "does not match"),
        (bytes.fromhex("00020000") + b"\x21\x12\xa4\x42" + bytes(12), "not one ppsp speaks"),
        (RFC5769_IPV4_RESPONSE[:-1] + b"\x00", "FINGERPRINT does not match"),
        (bytes(MESSAGE_MAX + 1), "more than"),
    ],
)
def test_malformed_messages_are_one_clean_error(data: bytes, reason: str) -> None:
    with pytest.raises(StunFormatError, match=reason):
        decode_message(data)


def test_an_attribute_after_the_fingerprint_is_refused() -> None:
    extra = bytes.fromhex("80220004") + b"abcd"
    data = bytearray(RFC5769_IPV4_RESPONSE + extra)
    data[2:4] = (len(data) - 20).to_bytes(2, "big")
    with pytest.raises(StunFormatError):
        decode_message(bytes(data))


ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
messages = st.builds(
    StunMessage,
    cls=st.sampled_from(StunClass),
    method=st.sampled_from(StunMethod),
    transaction_id=st.binary(min_size=12, max_size=12),
    mapped=st.none() | st.tuples(ipv4 | ipv6, st.integers(0, 65535)),
    software=st.none() | st.text(max_size=40),
    error=st.none() | st.tuples(st.integers(300, 699), st.text(max_size=40)),
    fingerprint=st.booleans(),
    other=st.lists(
        st.tuples(st.sampled_from([0x8029, 0x0024, 0x802A]), st.binary(max_size=16)), max_size=3
    ).map(tuple),
)


@given(messages)
def test_round_trip(message: StunMessage) -> None:
    data = encode_message(message)
    assert is_stun(data)
    assert decode_message(data) == message
    assert encode_message(decode_message(data)) == data


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_the_stun_error(data: bytes) -> None:
    with contextlib.suppress(StunFormatError):
        decode_message(data)


@given(messages, st.data())
def test_truncations_raise_the_stun_error(message: StunMessage, data: st.DataObject) -> None:
    encoded = encode_message(message)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(StunFormatError):
        decode_message(encoded[:cut])


@given(messages.filter(lambda m: m.fingerprint), st.data())
def test_any_single_bit_flip_of_a_fingerprinted_message_is_caught(
    message: StunMessage, data: st.DataObject
) -> None:
    """The CRC covers everything before the FINGERPRINT attribute, not the attribute's own
    header: a flip there (its type, or an earlier attribute's length grown over it) makes it
    read as something else.  So a flipped message either fails to decode or decodes without a
    FINGERPRINT, and never passes as a fingerprinted message."""
    encoded = bytearray(encode_message(message))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    try:
        decoded = decode_message(bytes(encoded))
    except StunFormatError:
        return
    assert not decoded.fingerprint
