"""The values of TURN's attributes (RFC 8656 section 18) inside STUN messages.

A STUN message keeps attributes it has no field for as raw ``(type, value)`` pairs
(:attr:`~ppsp.wire.stun.StunMessage.other`); these functions write and read TURN's, with
the bounds of each.  Malformed values raise :class:`~ppsp.errors.StunFormatError`.
"""

from __future__ import annotations

from ppsp.codecs.stun import read_address, xor_address
from ppsp.errors import StunFormatError
from ppsp.wire.stun import Attr, StunMessage

__all__ = [
    "TEXT_MAX",
    "UDP",
    "data",
    "find",
    "lifetime",
    "peer_address",
    "read_lifetime",
    "read_text",
    "relayed_address",
    "requested_transport_udp",
    "text",
]

UDP = 17
"""REQUESTED-TRANSPORT's protocol number for UDP (the only one RFC 8656 allocates)."""
TEXT_MAX = 763
"""Longest USERNAME, REALM or NONCE in bytes (RFC 8489 sections 14.3, 14.9, 14.10)."""


def find(message: StunMessage, atype: int) -> bytes | None:
    """The value of the first attribute of type ``atype`` in ``message.other`` (None: none)."""
    for kind, value in message.other:
        if kind == atype:
            return value
    return None


def requested_transport_udp() -> tuple[int, bytes]:
    """REQUESTED-TRANSPORT asking for a UDP relay."""
    return Attr.REQUESTED_TRANSPORT, bytes((UDP, 0, 0, 0))


def lifetime(seconds: int) -> tuple[int, bytes]:
    """LIFETIME of ``seconds`` (0 releases an allocation)."""
    if not 0 <= seconds < 2**32:
        raise StunFormatError(f"LIFETIME {seconds} out of range")
    return Attr.LIFETIME, seconds.to_bytes(4, "big")


def read_lifetime(value: bytes) -> int:
    """A LIFETIME's seconds."""
    if len(value) != 4:
        raise StunFormatError(f"LIFETIME of {len(value)} bytes, not 4")
    return int.from_bytes(value, "big")


def text(atype: int, value: str) -> tuple[int, bytes]:
    """USERNAME, REALM or NONCE (UTF-8, at most :data:`TEXT_MAX` bytes)."""
    raw = value.encode()
    if len(raw) > TEXT_MAX:
        raise StunFormatError(f"attribute {atype:#06x} of {len(raw)} bytes, more than {TEXT_MAX}")
    return atype, raw


def read_text(value: bytes) -> str:
    """A USERNAME, REALM or NONCE value."""
    if len(value) > TEXT_MAX:
        raise StunFormatError(f"text attribute of {len(value)} bytes, more than {TEXT_MAX}")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise StunFormatError("text attribute is not UTF-8") from None


def peer_address(address: tuple[str, int], transaction_id: bytes) -> tuple[int, bytes]:
    """XOR-PEER-ADDRESS for ``address``."""
    try:
        return Attr.XOR_PEER_ADDRESS, xor_address(address, transaction_id)
    except ValueError:
        raise StunFormatError(f"{address[0]!r} is not an IP address") from None


def relayed_address(message: StunMessage) -> tuple[str, int] | None:
    """The XOR-RELAYED-ADDRESS of an Allocate success answer (None: none)."""
    value = find(message, Attr.XOR_RELAYED_ADDRESS)
    return None if value is None else read_address(value, message.transaction_id, xor=True)


def data(message: StunMessage) -> tuple[tuple[str, int], bytes] | None:
    """The peer and payload of a Data indication (None when either is missing)."""
    peer, payload = find(message, Attr.XOR_PEER_ADDRESS), find(message, Attr.DATA)
    if peer is None or payload is None:
        return None
    return read_address(peer, message.transaction_id, xor=True), payload
