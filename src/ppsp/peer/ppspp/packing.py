"""How a serving engine packs messages into datagrams, sans-I/O: HAVEs, INTEGRITY and DATA.

A seeder's channel speaks either chunk ranges or bins (section 4); what it announces and what
it sends are written in the channel's addressing here, and split so that each datagram stays
within the bound the engine is configured with.
"""

from __future__ import annotations

from ppsp.codecs.ppspp_common import data_message, integrity_message
from ppsp.peer.ppspp.channel import Channel, aligned_bins
from ppsp.peer.ppspp.content import bin_level, bin_of_range, bin_range
from ppsp.peer.ppspp.partial import PartialContent
from ppsp.wire.ppspp import (
    CHANNEL_ID_BYTES,
    MAX_DATAGRAM_BYTES,
    TIMESTAMP_BYTES,
    Bin,
    ChunkRange,
    ChunkSpec,
    Data,
    Datagram,
    Have,
    Integrity,
    Message,
)

__all__ = [
    "answer_haves",
    "chunk_spec",
    "data_datagrams",
    "have_bytes",
    "have_datagrams",
    "have_messages",
]

_INTEGRITY_BYTES = 1 + 16 + 64
"""An upper bound on one INTEGRITY message (64-bit ranges, SHA-512), for splitting datagrams."""


def chunk_spec(channel: Channel, chunks: ChunkRange) -> ChunkSpec:
    """A chunk range in the channel's addressing: itself, or its bin (always aligned here)."""
    if not channel.uses_bins:
        return chunks
    number = bin_of_range(chunks)
    assert number is not None, f"{chunks} is no subtree"
    return Bin(number=number)


def have_bytes(channel: Channel) -> int:
    """The bytes of one HAVE in the channel's addressing."""
    addressing = channel.parameters.chunk_addressing
    return 1 + addressing.field_bytes * (1 if addressing.is_bin else 2)


def have_messages(channel: Channel, ranges: list[ChunkRange]) -> list[Message]:
    """A HAVE of each range (aligned bins when the channel speaks bins), left to right."""
    if not channel.uses_bins:
        return [Have(chunk=chunks) for chunks in ranges]
    return [Have(chunk=Bin(number=n)) for chunks in ranges for n in aligned_bins(chunks)]


def answer_haves(channel: Channel, haves: list[Message], room: int) -> int:
    """How many of ``haves`` go in the handshake's answer, which has ``room`` bytes left for
    them: all of a complete content's (its peaks, at most one per bit of the chunk count: the
    answer libswift expects), as many as fit of a partial content's (the rest once the
    channel is established, RFC 7574 section 13.1.1)."""
    if not isinstance(channel.content, PartialContent):
        return len(haves)
    return max(0, min(len(haves), room // have_bytes(channel)))


def have_datagrams(channel: Channel, haves: list[Message], limit: int) -> list[Datagram]:
    """``haves`` in as few datagrams of at most ``limit`` bytes as they need."""
    per = max(1, (limit - CHANNEL_ID_BYTES) // have_bytes(channel))
    remote = channel.remote_id
    return [
        Datagram(channel=remote, messages=tuple(haves[i : i + per]))
        for i in range(0, len(haves), per)
    ]


def data_datagrams(channel: Channel, index: int, timestamp: int, limit: int) -> list[Datagram]:
    """INTEGRITY messages (peaks first while needed, then uncles top-down) and the DATA of
    chunk ``index``, in one datagram, or the INTEGRITY ahead in their own when it would be
    too large.

    "Too large" is past ``limit`` for a DATA that fits it alone (libswift's 1 KiB chunks:
    section 5.4), and past the largest UDP payload for a DATA that does not (a larger chunk
    is IP-fragmented whatever it carries: a few hundred bytes of hashes in it cost fewer
    datagrams than a datagram of their own, and arrive with it or not at all).  The size is
    reckoned before encoding, so each datagram is encoded once.  Reading the chunk may raise
    what the content's ``read`` raises (``OSError``, ``ValueError``).
    """
    content = channel.content
    hashes: list[Message] = []
    if not channel.acked_any:
        hashes += [
            Integrity(chunk=chunk_spec(channel, bin_range(number)), hash=value)
            for number, value in content.peaks
        ]
    chunk = content.read(index)
    if channel.uses_bins:
        hashes += [
            Integrity(chunk=Bin(number=number), hash=content.hash_of(number))
            for number in channel.uncles_needed(index)
        ]
        data = Data(chunk=Bin(number=2 * index), timestamp=timestamp, data=chunk)
    else:
        # Chunk ranges, the common case: bin_range inline, the messages built directly.
        hash_of = content.hash_of
        for number in channel.uncles_needed(index):
            level = bin_level(number)
            start = (number >> (level + 1)) << level
            hashes.append(integrity_message(start, start + (1 << level) - 1, hash_of(number)))
        data = data_message(index, timestamp, chunk)
    remote = channel.remote_id
    if not hashes:
        return [Datagram(channel=remote, messages=(data,))]
    addressing = channel.parameters.chunk_addressing
    spec = addressing.field_bytes * (1 if addressing.is_bin else 2)
    alone = CHANNEL_ID_BYTES + 1 + spec + TIMESTAMP_BYTES + len(chunk)
    whole = alone + len(hashes) * (1 + spec + content.merkle_hash.digest_size)
    if whole <= (limit if alone <= limit else MAX_DATAGRAM_BYTES):
        return [Datagram(channel=remote, messages=(*hashes, data))]
    per = max(1, (limit - CHANNEL_ID_BYTES) // _INTEGRITY_BYTES)
    out = [
        Datagram(channel=remote, messages=tuple(hashes[i : i + per]))
        for i in range(0, len(hashes), per)
    ]
    out.append(Datagram(channel=remote, messages=(data,)))
    return out
