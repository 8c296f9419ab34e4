"""The per-chunk shortcuts of the PPSPP engines against the definitions they replace.

``bin_level`` counts trailing one bits in constant time, ``Channel.uncles_needed`` walks up
with the level counted and the known-node bits read inline, and ``packing.data_datagrams``
builds a range channel's INTEGRITY and DATA directly: each gives what the plain definition
gives (bin_parent, bin_sibling, knows; chunk_spec of bin_range).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile
from ppsp.peer.ppspp.channel import Channel
from ppsp.peer.ppspp.content import SeededContent, bin_level, bin_parent, bin_range, bin_sibling
from ppsp.peer.ppspp.packing import chunk_spec, data_datagrams
from ppsp.wire.ppspp import (
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    Data,
    Integrity,
    MerkleHashFunction,
)


def _trailing_ones(number: int) -> int:
    level = 0
    while number & (1 << level):
        level += 1
    return level


def test_bin_level_counts_trailing_ones() -> None:
    for number in range(1 << 14):
        assert bin_level(number) == _trailing_ones(number)
    for bits in range(1, 70):
        assert bin_level((1 << bits) - 1) == bits
        assert bin_level((1 << bits) + (1 << (bits - 1)) - 1) == bits - 1


def _uncles(channel: Channel, index: int) -> list[int]:
    """The uncle walk as RFC 7574 section 5.3 words it (the code before the shortcut)."""
    peak = channel.content.peak_for(index)
    node, needed = 2 * index, []
    while node != peak:
        parent = bin_parent(node)
        if channel.knows(parent):
            break
        needed.append(bin_sibling(node))
        node = parent
    needed.reverse()
    return needed


def _channel(chunks: int, bins: bool) -> Channel:
    data = random.Random(chunks).randbytes(chunks * 64 - 5)
    content = SeededContent.from_bytes(data, chunk_size=64, merkle_hash=MerkleHashFunction.SHA256)
    addressing = ChunkAddressing.BIN_32 if bins else ChunkAddressing.CHUNK_RANGE_32
    parameters = ChannelParameters(chunk_addressing=addressing, chunk_size=64)
    return Channel(
        address=("127.0.0.1", 1),
        local_id=1,
        remote_id=2,
        content=content,
        parameters=parameters,
        profile=EncoderProfile.PLAIN,
        now=0.0,
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.booleans(), st.lists(st.integers(0, 299), max_size=12))
def test_uncles_and_data_datagrams_match_the_definitions(
    chunks: int, bins: bool, acked: list[int]
) -> None:
    channel = _channel(chunks, bins)
    assert channel.uses_bins == bins
    content = channel.content
    for index in acked:
        if index < chunks:
            channel.mark_held(ChunkRange(start=index, end=index))
    for index in range(chunks):
        uncles = _uncles(channel, index)
        assert channel.uncles_needed(index) == uncles
        (datagram,) = data_datagrams(channel, index, 77, 65000)
        *hashes, data = datagram.messages
        peaks = [] if channel.acked_any else [number for number, _ in content.peaks]
        assert hashes == [
            Integrity(chunk=chunk_spec(channel, bin_range(number)), hash=content.hash_of(number))
            for number in peaks + uncles
        ]
        assert data == Data(
            chunk=chunk_spec(channel, ChunkRange(start=index, end=index)),
            timestamp=77,
            data=content.read(index),
        )
