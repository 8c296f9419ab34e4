"""STUN messages (RFC 8489) as the peers use them: Binding requests and their answers, to
learn the reflexive transport address a NAT gives a peer's UDP socket.

What a Binding client needs is modelled as fields: the message class and method, the
transaction ID, and the attributes a server answers with (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS,
SOFTWARE, ERROR-CODE) and those a client may add (SOFTWARE, FINGERPRINT).  Other attributes,
TURN's among them (RFC 8656: :mod:`ppsp.codecs.turn` reads and writes their values), are kept
as raw ``(type, value)`` pairs in order, so that a message can be checked without being
understood (section 14: unknown comprehension-optional attributes are ignored; unknown
comprehension-required ones make a request fail with 420).  Every bound is here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ATTRIBUTE_MAX",
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "MAGIC_COOKIE",
    "MESSAGE_MAX",
    "SOFTWARE_MAX",
    "TRANSACTION_ID_SIZE",
    "Attr",
    "StunClass",
    "StunMessage",
    "StunMethod",
]

MAGIC_COOKIE = 0x2112A442
"""The fixed value of a STUN header's second word (section 5)."""
HEADER_SIZE = 20
"""Bytes of a STUN header: type, length, magic cookie, transaction ID."""
TRANSACTION_ID_SIZE = 12
"""Bytes of a transaction ID (96 bits)."""
MESSAGE_MAX = 1280
"""Largest STUN message read or written: a Binding exchange is far smaller, and section 6.1
keeps messages under the path MTU (576 bytes for IPv4 when it is unknown); 1280 is IPv6's
minimum MTU, so anything longer is not a STUN message of ours."""
SOFTWARE_MAX = 763
"""Longest SOFTWARE value in bytes (section 14.14: fewer than 128 characters, 763 bytes)."""
ATTRIBUTE_MAX = 32
"""Most attributes read from one message (a Binding answer carries four or five)."""
FINGERPRINT_XOR = 0x5354554E
"""The constant the CRC-32 of a FINGERPRINT is XORed with (section 14.7)."""


class StunClass(IntEnum):
    """The class bits of a STUN message type (section 5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class StunMethod(IntEnum):
    """The STUN methods ppsp speaks: Binding (RFC 8489 section 18.2) and TURN's (RFC 8656
    section 17)."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class Attr(IntEnum):
    """The attribute types ppsp reads or writes (section 18.3)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    XOR_MAPPED_ADDRESS = 0x0020
    SOFTWARE = 0x8022
    FINGERPRINT = 0x8028
    # TURN (RFC 8656 section 18)
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_TRANSPORT = 0x0019


@dataclass(frozen=True, slots=True)
class StunMessage:
    """One STUN message.

    ``mapped`` is the reflexive address (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an old
    server) as ``(ip, port)``; ``error`` is an ERROR-CODE's ``(code, reason)``;
    ``fingerprint`` says whether the message carries (or, written, gets) a FINGERPRINT;
    ``other`` holds the attributes not modelled, as ``(type, value)`` in order.
    """

    cls: StunClass
    method: StunMethod
    transaction_id: bytes
    mapped: tuple[str, int] | None = None
    software: str | None = None
    error: tuple[int, str] | None = None
    fingerprint: bool = False
    other: tuple[tuple[int, bytes], ...] = ()
