import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.codecs.rangehdr import ByteSpan, RangeNotSatisfiable, parse_range


def test_absent_or_foreign_unit_means_whole() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("", 100) is None
    assert parse_range("items=0-5", 100) is None
    assert parse_range("bytes=abc", 100) is None


def test_closed_open_and_suffix_ranges() -> None:
    assert parse_range("bytes=0-9", 100) == ByteSpan(first=0, last=9, total=100)
    assert parse_range("bytes=50-", 100) == ByteSpan(first=50, last=99, total=100)
    assert parse_range("bytes=-10", 100) == ByteSpan(first=90, last=99, total=100)
    assert parse_range("bytes=90-1000", 100) == ByteSpan(first=90, last=99, total=100)
    assert parse_range("bytes=-1000", 100) == ByteSpan(first=0, last=99, total=100)


def test_first_of_several_ranges() -> None:
    assert parse_range("bytes=10-19, 30-39", 100) == ByteSpan(first=10, last=19, total=100)


def test_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 100)


def test_content_range_header() -> None:
    span = parse_range("bytes=5-9", 10)
    assert span is not None
    assert span.content_range == "bytes 5-9/10"
    assert span.length == 5


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**12))
def test_never_crashes_and_spans_are_inside(header: str, total: int) -> None:
    try:
        span = parse_range(header, total)
    except RangeNotSatisfiable:
        return
    if span is not None:
        assert 0 <= span.first <= span.last < total
