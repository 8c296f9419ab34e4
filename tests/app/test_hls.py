"""The HLS playlist of a live stream (``ppsp.app.hls``): played chunks in, playlist text out.

Sans-I/O: every test feeds chunks with their source timestamps and reads the playlist and the
segments; no clock, no network.
"""

from __future__ import annotations

import re

import pytest

from ppsp.app.hls import (
    KEPT_BYTES,
    KEPT_SEGMENTS,
    MAX_SEGMENT_CHUNKS,
    PLAYLIST_SEGMENTS,
    LiveSegmenter,
    Segment,
    parse_segment_name,
    render_playlist,
    target_duration,
)
from ppsp.peer.live.envelope import MAX_CHUNK_PAYLOAD, MAX_INDEX

T0 = 1_700_000_000_000  # a source timestamp, ms


def feed(
    segmenter: LiveSegmenter,
    indexes: range | list[int],
    *,
    key_every: int = 2,
    chunk_ms: int = 500,
    skip_start: int = 0,
) -> None:
    """Play ``indexes``: chunk i stamped ``chunk_ms`` apart, a start point every ``key_every``."""
    for index in indexes:
        segmenter.played(
            index,
            b"c%d;" % index,
            timestamp_ms=T0 + index * chunk_ms,
            start=(index - skip_start) % key_every == 0,
        )


def tags(text: str, name: str) -> list[str]:
    return re.findall(rf"^#{name}:?(.*)$", text, re.MULTILINE)


def uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_segments_begin_at_start_points_and_last_to_the_next_one() -> None:
    segmenter = LiveSegmenter(500)
    assert segmenter.playlist() is None  # nothing to list yet: the endpoint waits
    feed(segmenter, range(7))  # start points 0, 2, 4, 6
    text = segmenter.playlist()
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
        "#EXTINF:1.000,\n"
        "segments/0.ts\n"
        "#EXTINF:1.000,\n"
        "segments/2.ts\n"
        "#EXTINF:1.000,\n"
        "segments/4.ts\n"
    )  # chunk 6 opened a segment that closes when chunk 7 comes: not listed yet, no ENDLIST
    assert segmenter.segment(2) == b"c2;c3;"
    assert segmenter.segment(3) is None  # inside a segment: not a segment's name
    assert segmenter.segment(6) is None  # not closed yet


def test_a_key_frame_in_every_chunk_makes_one_chunk_per_segment() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, range(5), key_every=1)
    text = segmenter.playlist()
    assert text is not None
    assert uris(text) == [f"segments/{i}.ts" for i in range(4)]
    assert tags(text, "EXTINF") == ["0.500,"] * 4


def test_durations_come_from_the_source_timestamps_and_stay_within_the_target() -> None:
    segmenter = LiveSegmenter(500)
    stamps = [0, 700, 1100, 1900, 9000, 9500]  # the input paused after chunk 3
    for index, stamp in enumerate(stamps):
        segmenter.played(index, b"x", timestamp_ms=T0 + stamp, start=True)
    text = segmenter.playlist()
    assert text is not None
    # 0.7, 0.4, 0.8, then a chunk followed by a 7.1 s pause: at most two nominal durations.
    assert tags(text, "EXTINF") == ["0.700,", "0.400,", "0.800,", "1.000,", "0.500,"]
    assert tags(text, "EXT-X-TARGETDURATION") == ["2"]


def test_the_target_duration_is_fixed_from_the_nominal_chunk_duration() -> None:
    assert target_duration(500) == 2
    assert target_duration(1) == 2
    assert target_duration(1500) == 3
    assert target_duration(60_000) == 120
    with pytest.raises(ValueError):
        target_duration(0)


def test_a_long_group_of_pictures_is_split_so_that_no_segment_exceeds_the_target() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, range(25), key_every=12)  # a key frame every 6 s
    text = segmenter.playlist()
    assert text is not None
    target = int(tags(text, "EXT-X-TARGETDURATION")[0])
    for value in tags(text, "EXTINF"):
        assert round(float(value.rstrip(","))) <= target
    names = uris(text)
    assert names[0] == "segments/0.ts" and "segments/12.ts" in names
    assert len(names) > 2  # split between key frames


def test_a_skipped_chunk_is_a_discontinuity_at_the_next_start_point() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, [0, 1, 2, 3, 5, 6, 7, 8, 9])  # 4 skipped; 5 and 7 are not start points
    text = segmenter.playlist()
    assert text is not None
    # 0-1, 2-3 (its last chunk's successor was skipped: nominal), then 6-7 after the gap
    # (5 cannot be decoded without what was lost), 8-9 not closed yet.
    assert text.splitlines()[5:] == [
        "#EXTINF:1.000,",
        "segments/0.ts",
        "#EXTINF:1.000,",
        "segments/2.ts",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:1.000,",
        "segments/6.ts",
    ]
    assert segmenter.segment(6) == b"c6;c7;"
    assert [s.sequence for s in segmenter.segments] == [0, 1, 2]


def test_the_window_slides_and_counts_the_discontinuities_that_left_it() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, range(4))
    feed(segmenter, range(10, 10 + 2 * (PLAYLIST_SEGMENTS + 10)))  # a gap, then many segments
    text = segmenter.playlist()
    assert text is not None
    listed = uris(text)
    assert len(listed) == PLAYLIST_SEGMENTS
    sequence = int(tags(text, "EXT-X-MEDIA-SEQUENCE")[0])
    first = segmenter.listed()[0]
    assert sequence == first.sequence > 0
    assert listed[0] == f"segments/{first.index}.ts"
    # The discontinuity (before chunk 10) left the playlist: the header counts it.
    assert tags(text, "EXT-X-DISCONTINUITY-SEQUENCE") == ["1"]
    assert "#EXT-X-DISCONTINUITY\n" not in text
    # Segments that just left the playlist can still be fetched; older ones are gone.
    kept = segmenter.segments
    assert len(kept) == KEPT_SEGMENTS or kept[0].index == 0
    assert segmenter.segment(kept[0].index) is not None
    assert segmenter.segment(kept[0].index - 2) is None


def test_a_discontinuity_at_the_head_of_the_playlist_is_counted_not_tagged() -> None:
    segment = Segment(
        sequence=7,
        index=40,
        chunks=1,
        duration=0.5,
        discontinuity=True,
        discontinuity_sequence=3,
        data=b"x",
    )
    text = render_playlist([segment], target=2, ended=False)
    assert "#EXT-X-DISCONTINUITY\n" not in text
    assert tags(text, "EXT-X-DISCONTINUITY-SEQUENCE") == ["3"]
    assert tags(text, "EXT-X-MEDIA-SEQUENCE") == ["7"]
    with pytest.raises(ValueError):
        render_playlist([], target=2, ended=False)
    assert render_playlist([], target=2, ended=True, allow_empty=True).endswith("#EXT-X-ENDLIST\n")


def test_the_end_closes_the_last_segment_and_ends_the_playlist() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, range(5))
    segmenter.played(5, b"", timestamp_ms=T0 + 5 * 500, start=False, end=True)  # empty END
    text = segmenter.playlist()
    assert text is not None
    assert uris(text) == ["segments/0.ts", "segments/2.ts", "segments/4.ts"]
    assert text.endswith("#EXTINF:0.500,\nsegments/4.ts\n#EXT-X-ENDLIST\n")
    assert segmenter.ended
    assert not segmenter.played(6, b"late", timestamp_ms=T0 + 3000, start=True)
    segmenter.finish()  # again: nothing changes
    assert segmenter.playlist() == text


def test_a_viewer_that_stops_before_any_segment_ends_an_empty_playlist() -> None:
    segmenter = LiveSegmenter(500)
    segmenter.finish()
    text = segmenter.playlist()
    assert text is not None and uris(text) == [] and text.endswith("#EXT-X-ENDLIST\n")


def test_indexes_that_do_not_rise_and_impossible_values_are_ignored() -> None:
    segmenter = LiveSegmenter(500)
    feed(segmenter, range(4))
    before = segmenter.playlist()
    for index in (3, 2, 0, -1, MAX_INDEX + 1):
        assert not segmenter.played(index, b"again", timestamp_ms=T0, start=True)
    assert segmenter.playlist() == before
    # A timestamp running backwards or negative is no duration below zero.
    assert segmenter.played(4, b"a", timestamp_ms=T0 - 10_000, start=True)
    assert segmenter.played(5, b"b", timestamp_ms=-5, start=True)
    assert segmenter.played(6, b"c", timestamp_ms=None, start=True)
    text = segmenter.playlist()
    assert text is not None
    assert all(float(v.rstrip(",")) >= 0 for v in tags(text, "EXTINF"))
    # The largest index there is still works, and nothing comes after it.
    assert segmenter.played(MAX_INDEX, b"z", timestamp_ms=T0, start=True)
    segmenter.finish()
    assert f"segments/{MAX_INDEX}.ts" in (segmenter.playlist() or "")


def test_chunks_without_a_start_point_make_bounded_segments() -> None:
    segmenter = LiveSegmenter(500)
    segmenter.played(0, b"k", timestamp_ms=T0, start=True)
    # A source stamping every chunk alike (no duration) and never a key frame again.
    for index in range(1, 3 * MAX_SEGMENT_CHUNKS):
        segmenter.played(index, b"p", timestamp_ms=T0, start=False)
    assert [s.chunks for s in segmenter.segments] == [MAX_SEGMENT_CHUNKS, MAX_SEGMENT_CHUNKS]
    # The bitstream goes on: the next segment begins with an ordinary chunk, no discontinuity.
    assert not any(s.discontinuity for s in segmenter.segments)


def test_kept_bytes_are_bounded_and_the_newest_segment_always_kept() -> None:
    segmenter = LiveSegmenter(500)
    big = bytes(MAX_CHUNK_PAYLOAD)  # the largest chunk a source may sign
    count = KEPT_BYTES // MAX_CHUNK_PAYLOAD + 4
    for index in range(count + 1):
        segmenter.played(index, big, timestamp_ms=T0 + index * 500, start=True)
    kept = segmenter.segments
    assert sum(len(s.data) for s in kept) <= KEPT_BYTES
    assert kept[-1].index == count - 1
    assert segmenter.segment(0) is None
    text = segmenter.playlist()
    assert text is not None
    assert uris(text)[0] == f"segments/{kept[0].index}.ts"  # lists only what can be fetched


@pytest.mark.parametrize(
    ("name", "index"),
    [("0.ts", 0), ("12.ts", 12), (f"{MAX_INDEX}.ts", MAX_INDEX)],
)
def test_segment_names_are_decimal_indexes(name: str, index: int) -> None:
    assert parse_segment_name(name) == index


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".ts",
        "-1.ts",
        "+1.ts",
        "01.ts",
        "1.TS",
        "1.ts.ts",
        "1.m3u8",
        "1",
        " 1.ts",
        "1.ts\n",
        "../1.ts",
        "%31.ts",
        "\u0661.ts",  # an Arabic-Indic digit one: a digit, but not ASCII
        f"{MAX_INDEX + 1}.ts",
        "9" * 20 + ".ts",
        "1" * 10_000 + ".ts",
    ],
)
def test_any_other_segment_name_is_refused(name: str) -> None:
    assert parse_segment_name(name) is None
