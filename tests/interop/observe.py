"""A minimal reader of the datagrams libswift sends, to describe captured exchanges.

This is a test tool, not the project's PPSPP codec: it knows only what libswift emits for stored
content (32-bit chunk ranges, SHA-1 Merkle hashes, version-1 handshakes) and splits a datagram
into named messages so that captures can be summarised (message types seen, handshake options)
and checked for completeness.  It raises ValueError on anything it does not understand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MESSAGE_NAMES = {
    0: "HANDSHAKE",
    1: "DATA",
    2: "ACK",
    3: "HAVE",
    4: "INTEGRITY",
    5: "PEX_RESv4",
    6: "PEX_REQ",
    7: "SIGNED_INTEGRITY",
    8: "REQUEST",
    9: "CANCEL",
    10: "CHOKE",
    11: "UNCHOKE",
    12: "PEX_RESv6",
    13: "PEX_REScert",
}
OPTION_NAMES = {
    0: "version",
    1: "minimum_version",
    2: "swarm_id",
    3: "content_integrity_protection_method",
    4: "merkle_hash_function",
    5: "live_signature_algorithm",
    6: "chunk_addressing_method",
    7: "live_discard_window",
    8: "supported_messages",
    9: "chunk_size",
    255: "end",
}
CHUNK_RANGE = 8
"""32-bit chunk ranges (chunk addressing method 2): start and end chunk, 4 bytes each."""
HASH_SIZE = 20
"""SHA-1."""


@dataclass(frozen=True)
class Message:
    """One message of a datagram: its type name and its fields (bytes as hex)."""

    name: str
    fields: dict[str, Any]


def _chunks(body: bytes, at: int) -> dict[str, Any]:
    start, end = struct.unpack_from(">II", body, at)
    return {"start_chunk": start, "end_chunk": end}


def _need(body: bytes, at: int, size: int) -> None:
    if len(body) < at + size:
        raise ValueError(f"truncated message at offset {at}: {size} bytes needed")


def handshake_options(body: bytes, at: int) -> tuple[list[tuple[str, Any]], int]:
    """The protocol options from ``at`` up to and including END, and the offset after them."""
    options: list[tuple[str, Any]] = []
    while True:
        _need(body, at, 1)
        code = body[at]
        at += 1
        name = OPTION_NAMES.get(code)
        if name is None:
            raise ValueError(f"unknown handshake option {code}")
        if code == 255:
            options.append((name, None))
            return options, at
        if code == 2:
            _need(body, at, 2)
            (size,) = struct.unpack_from(">H", body, at)
            _need(body, at + 2, size)
            options.append((name, body[at + 2 : at + 2 + size].hex()))
            at += 2 + size
        elif code == 7:
            _need(body, at, 4)
            options.append((name, struct.unpack_from(">I", body, at)[0]))
            at += 4
        elif code == 8:
            _need(body, at, 1)
            size = body[at]
            _need(body, at + 1, size)
            options.append((name, body[at + 1 : at + 1 + size].hex()))
            at += 1 + size
        elif code == 9:
            _need(body, at, 4)
            options.append((name, struct.unpack_from(">I", body, at)[0]))
            at += 4
        else:
            _need(body, at, 1)
            options.append((name, body[at]))
            at += 1


def parse(datagram: bytes) -> tuple[int, list[Message]]:
    """The destination channel ID and the messages of one datagram (empty list: keep-alive)."""
    if len(datagram) < 4:
        raise ValueError("datagram shorter than its channel ID")
    (channel,) = struct.unpack_from(">I", datagram, 0)
    messages: list[Message] = []
    at = 4
    while at < len(datagram):
        code = datagram[at]
        name = MESSAGE_NAMES.get(code)
        if name is None:
            raise ValueError(f"unknown message type {code} at offset {at}")
        at += 1
        fields: dict[str, Any]
        if code == 0:
            _need(datagram, at, 4)
            (source,) = struct.unpack_from(">I", datagram, at)
            options, at = handshake_options(datagram, at + 4)
            fields = {"source_channel": source, "options": options}
        elif code == 1:
            # DATA: chunk range, 8-byte timestamp, then the chunk up to the end of the datagram.
            _need(datagram, at, CHUNK_RANGE + 8)
            fields = _chunks(datagram, at)
            fields["timestamp"] = struct.unpack_from(">Q", datagram, at + CHUNK_RANGE)[0]
            fields["data"] = datagram[at + CHUNK_RANGE + 8 :].hex()
            at = len(datagram)
        elif code == 2:
            _need(datagram, at, CHUNK_RANGE + 8)
            fields = _chunks(datagram, at)
            fields["delay_sample"] = struct.unpack_from(">Q", datagram, at + CHUNK_RANGE)[0]
            at += CHUNK_RANGE + 8
        elif code in (3, 8, 9):
            _need(datagram, at, CHUNK_RANGE)
            fields = _chunks(datagram, at)
            at += CHUNK_RANGE
        elif code == 4:
            _need(datagram, at, CHUNK_RANGE + HASH_SIZE)
            fields = _chunks(datagram, at)
            fields["hash"] = datagram[at + CHUNK_RANGE : at + CHUNK_RANGE + HASH_SIZE].hex()
            at += CHUNK_RANGE + HASH_SIZE
        elif code == 5:
            _need(datagram, at, 6)
            fields = {"ip": ".".join(str(b) for b in datagram[at : at + 4])}
            fields["port"] = struct.unpack_from(">H", datagram, at + 4)[0]
            at += 6
        elif code in (6, 10, 11):
            fields = {}
        else:
            raise ValueError(f"{name} is not expected from libswift for stored content")
        messages.append(Message(name, fields))
    return channel, messages
