"""A seeder's channel bookkeeping (``peer/ppspp/channel.py``, ``content.py``): bins, what the
peer holds, the uncle hashes a DATA needs, the request queue, the state table."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile
from ppsp.peer.ppspp.channel import TRANSITIONS, Channel, ChannelState, Event, aligned_bins
from ppsp.peer.ppspp.content import (
    SeededContent,
    bin_level,
    bin_of_range,
    bin_parent,
    bin_range,
    bin_sibling,
)
from ppsp.wire.ppspp import ChannelParameters, ChunkRange


def r(start: int, end: int) -> ChunkRange:
    return ChunkRange(start=start, end=end)


def channel_over(chunks: int) -> Channel:
    content = SeededContent.from_bytes(random.Random(chunks).randbytes(chunks * 1024))
    return Channel(
        address=("127.0.0.1", 1),
        local_id=1,
        remote_id=2,
        content=content,
        parameters=ChannelParameters.libswift(),
        profile=EncoderProfile.LIBSWIFT,
        now=0.0,
    )


def test_bins_of_rfc_7574_figure_2() -> None:
    # Section 4.2: bin 7 covers chunks 0-7, bin 3 chunks 0-3, bin 9 chunks 4-5, bin 12 chunk 6.
    assert [bin_range(n) for n in (7, 3, 9, 12)] == [r(0, 7), r(0, 3), r(4, 5), r(6, 6)]
    assert [bin_level(n) for n in (0, 1, 3, 7, 12)] == [0, 1, 2, 3, 0]
    assert bin_parent(0) == bin_parent(2) == 1 and bin_parent(1) == bin_parent(5) == 3
    assert bin_sibling(3) == 11 and bin_sibling(12) == 14
    assert bin_of_range(r(4, 7)) == 11 and bin_of_range(r(3, 4)) is None


@given(st.integers(0, 5000), st.integers(0, 5000))
def test_aligned_bins_cover_a_range_exactly(a: int, b: int) -> None:
    chunks = r(min(a, b), max(a, b))
    covered = [index for n in aligned_bins(chunks) for index in range(*_half_open(n))]
    assert covered == list(range(chunks.start, chunks.end + 1))
    assert len(aligned_bins(chunks)) <= 2 * 14


def _half_open(number: int) -> tuple[int, int]:
    chunks = bin_range(number)
    return chunks.start, chunks.end + 1


def test_uncle_hashes_of_a_progressive_download_are_rfc_7574_table_1() -> None:
    # Section 5.5: 8 chunks downloaded in order need hashes 2,5,11 / - / 6 / - / 10,13 / - /
    # 14 / -, seven in all (sent top-down, section 5.4).
    channel = channel_over(8)
    needed = []
    for index in range(8):
        needed.append(channel.uncles_needed(index))
        channel.mark_held(r(index, index))
    assert needed == [[11, 5, 2], [], [6], [], [13, 10], [], [14], []]


def test_uncles_stop_at_the_chunks_peak() -> None:
    channel = channel_over(5)  # peaks 0-3 (bin 3) and 4-4 (bin 8)
    assert channel.content.peaks[0][0] == 3 and channel.content.peaks[1][0] == 8
    assert channel.uncles_needed(4) == []
    assert channel.uncles_needed(0) == [5, 2]
    channel.mark_held(r(4, 4))
    assert channel.acked_any and channel.uncles_needed(1) == [5, 0]


def test_a_held_range_makes_its_chunks_held_and_its_ancestors_known() -> None:
    channel = channel_over(16)
    channel.mark_held(r(4, 7))
    assert [channel.has_chunk(i) for i in range(3, 9)] == [False, True, True, True, True, False]
    assert channel.knows(11) and channel.knows(7) and channel.knows(15) and not channel.knows(3)
    # Chunk 0 needs its sibling and 1-... up to a known node: 2-3 (bin 5), then stop at 0-7.
    assert channel.uncles_needed(0) == [5, 2]
    channel.mark_held(r(10, 99))  # clipped to the content
    assert channel.has_chunk(15)


def test_the_request_queue_merges_cancels_and_skips() -> None:
    channel = channel_over(32)
    assert channel.add_request(r(0, 3), limit=2)
    assert channel.add_request(r(4, 5), limit=2)  # adjacent: merged
    assert channel.add_request(r(10, 12), limit=2)
    assert not channel.add_request(r(20, 20), limit=2)
    assert list(channel.requests) == [r(0, 5), r(10, 12)]
    channel.cancel(r(2, 10))
    assert list(channel.requests) == [r(0, 1), r(11, 12)]
    channel.mark_held(r(1, 1))
    channel.flight[11] = 0.0
    assert [channel.next_chunk() for _ in range(3)] == [0, 12, None]
    channel.requeue(7)
    assert channel.next_chunk() == 7


def test_the_state_table_lets_data_flow_only_once_confirmed() -> None:
    half, established = ChannelState.HALF_OPEN, ChannelState.ESTABLISHED
    assert TRANSITIONS[(half, Event.CONFIRM)] is established
    assert (half, Event.ACK) not in TRANSITIONS and (half, Event.CANCEL) not in TRANSITIONS
    for event in (Event.DATA, Event.INTEGRITY, Event.SIGNED_INTEGRITY):
        assert (half, event) not in TRANSITIONS and (established, event) not in TRANSITIONS
    # PEX_RES unasked (libswift's reverse PEX) is ignored on an established channel only.
    assert (half, Event.PEX_RES) not in TRANSITIONS
    assert TRANSITIONS[(established, Event.PEX_RES)] is established
    assert TRANSITIONS[(established, Event.CLOSE)] is ChannelState.CLOSED
    assert not any(state is ChannelState.CLOSED for state, _ in TRANSITIONS)
