"""The PPSPP codec's fast path: the common datagram shapes read and written at once.

Nearly every datagram of a transfer is INTEGRITY messages and a DATA (seeder to client), or
ACKs, REQUESTs and HAVEs (client to seeder), on a channel of 32-bit chunk ranges.
:func:`decode_common` and :func:`encode_common` read and write these in one loop over the
bytes, with every bound the general code of :mod:`ppsp.codecs.ppspp` checks; anything else, or
anything the general code would refuse, they decline (None), and the general code then
decides and words the refusal.  One refusal :func:`decode_common` makes itself: a datagram
whose messages go on past the reader's bound raises :func:`too_many`'s error as the general
code would at the same message (the messages before it read alike), so that they are not read
twice.  :func:`~ppsp.codecs.ppspp.decode_datagram` and
:func:`~ppsp.codecs.ppspp.encode_datagram` try them first.  tests/ppspp/test_codec_fast.py
checks that both give the same result on generated and damaged datagrams.
"""

from __future__ import annotations

import struct
from typing import Any, cast

from ppsp.errors import TooManyMessages
from ppsp.wire.ppspp import (
    CHANNEL_ID_BYTES,
    MAX_DATAGRAM_BYTES,
    MAX_DATAGRAM_MESSAGES,
    VARIABLE_CHUNK_SIZE,
    Ack,
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Datagram,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    MessageType,
    Request,
)

__all__ = [
    "CHUNK_RANGE_32",
    "data_message",
    "decode_common",
    "encode_common",
    "integrity_message",
    "too_many",
]

CHUNK_RANGE_32 = ChunkAddressing.CHUNK_RANGE_32
_MAX32 = 0xFFFFFFFF
_MAX64 = (1 << 64) - 1
_RANGE = struct.Struct(">II")
_RANGE_STAMP = struct.Struct(">IIQ")
_HEAD_RANGE = struct.Struct(">BII")
_HEAD_RANGE_STAMP = struct.Struct(">BIIQ")
_DIGEST_BYTES = tuple(
    next((m.digest_size for m in MerkleHashFunction if m == code), 0)
    for code in range(max(MerkleHashFunction) + 1)
)
"""Hash length per Merkle hash function code, read by index (an enum's own hash, which a
dict lookup would call, is a Python function)."""
# Building the messages: the frozen dataclasses' own ``__init__`` sets each field through
# ``object.__setattr__`` by name, about three times the cost of setting the slots directly
# through their descriptors, which is what these do (none of these classes has a
# ``__post_init__``; the result compares and hashes as one built the usual way, which the
# differential tests check).
_new = object.__new__
_set_start = cast(Any, ChunkRange).start.__set__
_set_end = cast(Any, ChunkRange).end.__set__
_set_integrity_chunk = cast(Any, Integrity).chunk.__set__
_set_integrity_hash = cast(Any, Integrity).hash.__set__
_set_data_chunk = cast(Any, Data).chunk.__set__
_set_data_timestamp = cast(Any, Data).timestamp.__set__
_set_data_data = cast(Any, Data).data.__set__


def _chunk_range(start: int, end: int) -> ChunkRange:
    chunk = _new(ChunkRange)
    _set_start(chunk, start)
    _set_end(chunk, end)
    return chunk


def integrity_message(start: int, end: int, value: bytes) -> Integrity:
    """``Integrity(chunk=ChunkRange(start=start, end=end), hash=value)``, built at a third of
    the cost (for engines that send many); the caller passes valid values."""
    message = _new(Integrity)
    _set_integrity_chunk(message, _chunk_range(start, end))
    _set_integrity_hash(message, value)
    return message


def data_message(index: int, timestamp: int, value: bytes) -> Data:
    """``Data(chunk=ChunkRange(start=index, end=index), timestamp=timestamp, data=value)``,
    built at a third of the cost; the caller passes valid values."""
    message = _new(Data)
    _set_data_chunk(message, _chunk_range(index, index))
    _set_data_timestamp(message, timestamp)
    _set_data_data(message, value)
    return message


_INTEGRITY, _DATA, _ACK, _HAVE, _REQUEST = (
    int(MessageType.INTEGRITY),
    int(MessageType.DATA),
    int(MessageType.ACK),
    int(MessageType.HAVE),
    int(MessageType.REQUEST),
)


def too_many(limit: int, messages: list[Message]) -> TooManyMessages:
    """The error of a datagram whose message ``limit + 1`` begins after ``messages``."""
    return TooManyMessages(f"datagram of more than {limit} messages", messages=tuple(messages))


_SMALLEST = 9
"""The bytes of the smallest message :func:`decode_common` reads (a HAVE or a REQUEST)."""


def decode_common(
    data: bytes, parameters: ChannelParameters, limit: int = MAX_DATAGRAM_MESSAGES
) -> Datagram | None:
    """``data`` read as INTEGRITY, DATA, ACK, HAVE and REQUEST messages on a channel of 32-bit
    chunk ranges, or None when it holds anything else or anything malformed; a message beyond
    the ``limit``-th raises :func:`too_many`'s error before it is read."""
    size = len(data)
    if not CHANNEL_ID_BYTES <= size <= MAX_DATAGRAM_BYTES:
        return None
    channel = int.from_bytes(data[:CHANNEL_ID_BYTES], "big")
    if channel == 0:
        return None  # a HANDSHAKE opens it, or it is malformed
    digest = _DIGEST_BYTES[parameters.merkle_hash]
    chunk_size = parameters.chunk_size
    messages: list[Message] = []
    append = messages.append
    pos = CHANNEL_ID_BYTES
    # Counted only where the bytes could hold more messages than the bound (not a transfer's).
    bounded = size - CHANNEL_ID_BYTES > _SMALLEST * limit
    while pos < size:
        if bounded and len(messages) == limit:
            raise too_many(limit, messages)
        kind = data[pos]
        if kind == _INTEGRITY:
            end = pos + 9 + digest
            if end > size:
                return None
            first, last = _RANGE.unpack_from(data, pos + 1)
            if first > last:
                return None
            append(integrity_message(first, last, data[pos + 9 : end]))
        elif kind == _DATA:
            start = pos + 17
            if start > size:
                return None
            first, last, stamp = _RANGE_STAMP.unpack_from(data, pos + 1)
            left = size - start
            if first != last or left == 0:
                return None
            end = start + (left if chunk_size == VARIABLE_CHUNK_SIZE else min(left, chunk_size))
            append(data_message(first, stamp, data[start:end]))
        elif kind == _ACK:
            end = pos + 17
            if end > size:
                return None
            first, last, delay = _RANGE_STAMP.unpack_from(data, pos + 1)
            if first > last:
                return None
            append(Ack(chunk=_chunk_range(first, last), delay=delay))
        elif kind in (_REQUEST, _HAVE):
            end = pos + 9
            if end > size:
                return None
            first, last = _RANGE.unpack_from(data, pos + 1)
            if first > last:
                return None
            chunk = _chunk_range(first, last)
            append(Request(chunk=chunk) if kind == _REQUEST else Have(chunk=chunk))
        else:
            return None
        pos = end
    return Datagram(channel=channel, messages=tuple(messages))


_COMMON_KINDS = frozenset((Integrity, Data, Ack, Request, Have))


def encode_common(datagram: Datagram, parameters: ChannelParameters) -> bytes | None:
    """The bytes of a datagram of INTEGRITY, DATA, ACK, HAVE and REQUEST messages on a channel
    of 32-bit chunk ranges, or None when it holds anything else or anything the general
    encoder would refuse."""
    channel = datagram.channel
    messages = datagram.messages
    if type(channel) is not int or not 0 < channel <= _MAX32:
        return None
    count = len(messages)
    if count > MAX_DATAGRAM_MESSAGES:
        return None
    digest = _DIGEST_BYTES[parameters.merkle_hash]
    chunk_size = parameters.chunk_size
    variable = chunk_size == VARIABLE_CHUNK_SIZE
    parts = [channel.to_bytes(CHANNEL_ID_BYTES, "big")]
    append = parts.append
    last_index = count - 1
    for index, message in enumerate(messages):
        kind = type(message)
        if kind not in _COMMON_KINDS:
            return None
        chunk = message.chunk  # type: ignore[union-attr]
        if type(chunk) is not ChunkRange:
            return None
        first, last = chunk.start, chunk.end
        if type(first) is not int or type(last) is not int or not 0 <= first <= last <= _MAX32:
            return None
        if kind is Integrity:
            value = message.hash  # type: ignore[union-attr]
            if type(value) is not bytes or len(value) != digest:
                return None
            append(_HEAD_RANGE.pack(_INTEGRITY, first, last))
            append(value)
        elif kind is Data:
            payload, stamp = message.data, message.timestamp  # type: ignore[union-attr]
            if type(payload) is not bytes or type(stamp) is not int or first != last:
                return None
            length = len(payload)
            if not 0 <= stamp <= _MAX64 or length == 0 or (not variable and length > chunk_size):
                return None
            if index != last_index and (variable or length < chunk_size):
                return None  # a short DATA must come last
            append(_HEAD_RANGE_STAMP.pack(_DATA, first, last, stamp))
            append(payload)
        elif kind is Ack:
            delay = message.delay  # type: ignore[union-attr]
            if type(delay) is not int or not 0 <= delay <= _MAX64:
                return None
            append(_HEAD_RANGE_STAMP.pack(_ACK, first, last, delay))
        elif kind is Request:
            append(_HEAD_RANGE.pack(_REQUEST, first, last))
        else:  # a HAVE
            append(_HEAD_RANGE.pack(_HAVE, first, last))
    out = b"".join(parts)
    if len(out) > MAX_DATAGRAM_BYTES:
        return None
    return out
