"""The STUN codec (RFC 8489): bytes <-> :class:`~ppsp.wire.stun.StunMessage`.

Decoding is strict and bounded: a message is at most :data:`~ppsp.wire.stun.MESSAGE_MAX`
bytes, the header's first two bits are zero, the magic cookie is right, the length matches the
datagram and is a multiple of four, every attribute fits, addresses have their family's
length, a FINGERPRINT (when present) is the last attribute and matches.  Anything else raises
:class:`~ppsp.errors.StunFormatError` with a one-line reason.  After a MESSAGE-INTEGRITY only
a FINGERPRINT is read (section 14.5: the rest is ignored).  Encoding writes attributes in the
order XOR-MAPPED-ADDRESS, SOFTWARE, ERROR-CODE, the others, FINGERPRINT.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
import zlib

from ppsp.errors import StunFormatError
from ppsp.wire.stun import (
    ATTRIBUTE_MAX,
    FINGERPRINT_XOR,
    HEADER_SIZE,
    MAGIC_COOKIE,
    MESSAGE_MAX,
    SOFTWARE_MAX,
    TRANSACTION_ID_SIZE,
    Attr,
    StunClass,
    StunMessage,
    StunMethod,
)

__all__ = [
    "decode_message",
    "encode_message",
    "integrity_matches",
    "is_stun",
    "message_type",
    "read_address",
    "xor_address",
]

_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")
_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_FAMILY_IPV4, _FAMILY_IPV6 = 0x01, 0x02
_METHODS = frozenset(int(method) for method in StunMethod)


def message_type(method: StunMethod, cls: StunClass) -> int:
    """The 14-bit message type of ``method`` and ``cls`` (the class bits interleaved, section 5)."""
    m = int(method)
    c = int(cls)
    return (
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    )


def _split_type(value: int) -> tuple[int, int]:
    method = (value & 0x000F) | ((value & 0x00E0) >> 1) | ((value & 0x3E00) >> 2)
    cls = ((value >> 4) & 1) | ((value >> 7) & 2)
    return method, cls


def is_stun(data: bytes, *, limit: int = MESSAGE_MAX) -> bool:
    """Whether ``data`` looks like a STUN message (first bits, cookie, length): how a UDP
    socket that also carries other traffic tells STUN apart (section 7 of RFC 7983's rule).
    ``limit`` is the longest message taken (larger for TURN's Data indications)."""
    return (
        HEADER_SIZE <= len(data) <= limit
        and data[0] < 0x04
        and data[4:8] == _COOKIE
        and int.from_bytes(data[2:4], "big") == len(data) - HEADER_SIZE
    )


# -- decoding -----------------------------------------------------------------------------------


def decode_message(data: bytes, *, limit: int = MESSAGE_MAX) -> StunMessage:
    """Parse one STUN message of at most ``limit`` bytes (larger for TURN's Data
    indications); :class:`~ppsp.errors.StunFormatError` when it is not one."""
    if len(data) < HEADER_SIZE:
        raise StunFormatError(f"a STUN message has a 20-byte header, got {len(data)} bytes")
    if len(data) > limit:
        raise StunFormatError(f"STUN message of {len(data)} bytes, more than {limit}")
    kind, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if kind & 0xC000:
        raise StunFormatError("not a STUN message: its first two bits are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunFormatError("not a STUN message: wrong magic cookie")
    if length != len(data) - HEADER_SIZE or length % 4:
        raise StunFormatError(f"STUN length {length} does not match the {len(data)}-byte message")
    method, cls = _split_type(kind)
    if method not in _METHODS:
        raise StunFormatError(f"STUN method {method:#x} is not one ppsp speaks")
    mapped: tuple[str, int] | None = None
    xor_mapped: tuple[str, int] | None = None
    software: str | None = None
    error: tuple[int, str] | None = None
    fingerprint = False
    integrity_seen = False
    other: list[tuple[int, bytes]] = []
    offset, count = HEADER_SIZE, 0
    while offset < len(data):
        if fingerprint:
            raise StunFormatError("STUN attribute after FINGERPRINT")
        count += 1
        if count > ATTRIBUTE_MAX:
            raise StunFormatError(f"more than {ATTRIBUTE_MAX} STUN attributes")
        if offset + 4 > len(data):
            raise StunFormatError("truncated STUN attribute header")
        atype, alen = _ATTR.unpack_from(data, offset)
        start = offset + 4
        end = start + alen
        if end > len(data):
            raise StunFormatError(f"STUN attribute {atype:#06x} runs past the message")
        value = data[start:end]
        offset = end + (-alen % 4)
        if atype == Attr.FINGERPRINT:
            _check_fingerprint(data, start - 4, value)
            fingerprint = True
        elif integrity_seen:
            continue  # after MESSAGE-INTEGRITY only FINGERPRINT counts (section 14.5)
        elif atype == Attr.XOR_MAPPED_ADDRESS:
            xor_mapped = _address(value, transaction_id, xor=True)
        elif atype == Attr.MAPPED_ADDRESS:
            mapped = _address(value, transaction_id, xor=False)
        elif atype == Attr.SOFTWARE:
            if alen > SOFTWARE_MAX:
                raise StunFormatError(f"SOFTWARE of {alen} bytes, more than {SOFTWARE_MAX}")
            software = _text(value, "SOFTWARE")
        elif atype == Attr.ERROR_CODE:
            error = _error_code(value)
        else:
            if atype == Attr.MESSAGE_INTEGRITY:
                if alen != 20:
                    raise StunFormatError(f"MESSAGE-INTEGRITY of {alen} bytes, not 20")
                integrity_seen = True
            other.append((atype, bytes(value)))
    if offset != len(data):
        raise StunFormatError("STUN attribute padding runs past the message")
    return StunMessage(
        cls=StunClass(cls),
        method=StunMethod(method),
        transaction_id=bytes(transaction_id),
        mapped=xor_mapped if xor_mapped is not None else mapped,
        software=software,
        error=error,
        fingerprint=fingerprint,
        other=tuple(other),
    )


def _check_fingerprint(data: bytes, at: int, value: bytes) -> None:
    if len(value) != 4:
        raise StunFormatError(f"FINGERPRINT of {len(value)} bytes, not 4")
    if at + 8 != len(data):
        raise StunFormatError("STUN FINGERPRINT is not the last attribute")
    if int.from_bytes(value, "big") != _crc(data[:at]):
        raise StunFormatError("STUN FINGERPRINT does not match the message")


def _crc(covered: bytes) -> int:
    return (zlib.crc32(covered) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


def read_address(value: bytes, transaction_id: bytes, *, xor: bool) -> tuple[str, int]:
    """An address attribute's value as ``(ip, port)`` (XOR-ed with the cookie and transaction
    ID when ``xor``: XOR-MAPPED-, XOR-PEER- and XOR-RELAYED-ADDRESS)."""
    return _address(value, transaction_id, xor=xor)


def xor_address(address: tuple[str, int], transaction_id: bytes) -> bytes:
    """The value of an XOR-...-ADDRESS attribute for ``address``."""
    return _xor_address(address, transaction_id)


def _address(value: bytes, transaction_id: bytes, *, xor: bool) -> tuple[str, int]:
    if len(value) < 4:
        raise StunFormatError("STUN address attribute shorter than 4 bytes")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if family == _FAMILY_IPV4:
        if len(raw) != 4:
            raise StunFormatError(f"IPv4 STUN address of {len(raw)} bytes, not 4")
    elif family == _FAMILY_IPV6:
        if len(raw) != 16:
            raise StunFormatError(f"IPv6 STUN address of {len(raw)} bytes, not 16")
    else:
        raise StunFormatError(f"unknown STUN address family {family}")
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = _COOKIE + transaction_id
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=False))
    ip = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
    return str(ip), port


def _text(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise StunFormatError(f"{name} is not UTF-8") from None


def _error_code(value: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise StunFormatError("ERROR-CODE shorter than 4 bytes")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise StunFormatError(f"ERROR-CODE class {klass} number {number} out of range")
    return klass * 100 + number, _text(value[4:], "ERROR-CODE reason")


# -- encoding -----------------------------------------------------------------------------------


def encode_message(
    message: StunMessage, *, integrity_key: bytes | None = None, limit: int = MESSAGE_MAX
) -> bytes:
    """The bytes of ``message``: a MESSAGE-INTEGRITY under ``integrity_key`` after its
    attributes when a key is given (section 14.5), then a FINGERPRINT when
    ``message.fingerprint``; at most ``limit`` bytes (larger for TURN's Send
    indications)."""
    if len(message.transaction_id) != TRANSACTION_ID_SIZE:
        raise StunFormatError("a STUN transaction ID has 12 bytes")
    body = bytearray()
    if message.mapped is not None:
        body += _attr(Attr.XOR_MAPPED_ADDRESS, _xor_address(message.mapped, message.transaction_id))
    if message.software is not None:
        software = message.software.encode()
        if len(software) > SOFTWARE_MAX:
            raise StunFormatError(f"SOFTWARE of {len(software)} bytes, more than {SOFTWARE_MAX}")
        body += _attr(Attr.SOFTWARE, software)
    if message.error is not None:
        code, reason = message.error
        if not 300 <= code <= 699:
            raise StunFormatError(f"STUN error code {code} out of range")
        body += _attr(Attr.ERROR_CODE, bytes((0, 0, code // 100, code % 100)) + reason.encode())
    for atype, value in message.other:
        body += _attr(atype, value)
    kind = message_type(message.method, message.cls)
    if integrity_key is not None:
        # The HMAC covers the header with the length counting up to MESSAGE-INTEGRITY's end.
        head = _HEADER.pack(kind, len(body) + 24, MAGIC_COOKIE, message.transaction_id)
        mac = hmac.new(integrity_key, head + bytes(body), "sha1").digest()
        body += _attr(Attr.MESSAGE_INTEGRITY, mac)
    extra = 8 if message.fingerprint else 0
    head = _HEADER.pack(kind, len(body) + extra, MAGIC_COOKIE, message.transaction_id)
    out = head + bytes(body)
    if message.fingerprint:
        out += _ATTR.pack(Attr.FINGERPRINT, 4) + _crc(out).to_bytes(4, "big")
    if len(out) > limit:
        raise StunFormatError(f"STUN message of {len(out)} bytes, more than {limit}")
    return out


def _attr(atype: int, value: bytes) -> bytes:
    return _ATTR.pack(atype, len(value)) + value + bytes(-len(value) % 4)


def _xor_address(address: tuple[str, int], transaction_id: bytes) -> bytes:
    ip = ipaddress.ip_address(address[0])
    raw = ip.packed
    mask = _COOKIE + transaction_id
    xored = bytes(a ^ b for a, b in zip(raw, mask, strict=False))
    family = _FAMILY_IPV4 if ip.version == 4 else _FAMILY_IPV6
    return bytes((0, family)) + (address[1] ^ (MAGIC_COOKIE >> 16)).to_bytes(2, "big") + xored


def integrity_matches(data: bytes, key: bytes) -> bool:
    """Whether the MESSAGE-INTEGRITY of ``data`` (a decoded-valid message) is the HMAC-SHA1
    under ``key`` (section 14.5: over the header, its length counting up to the attribute's
    end, and the attributes before it).  False when it has none."""
    offset = HEADER_SIZE
    while offset + 4 <= len(data):
        atype, alen = _ATTR.unpack_from(data, offset)
        if atype == Attr.MESSAGE_INTEGRITY and alen == 20:
            length = offset + 24 - HEADER_SIZE
            covered = data[:2] + length.to_bytes(2, "big") + data[4:offset]
            expected = hmac.new(key, covered, "sha1").digest()
            return hmac.compare_digest(expected, data[offset + 4 : offset + 24])
        offset += 4 + alen + (-alen % 4)
    return False
