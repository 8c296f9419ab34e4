import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.core.ratelimit import TokenBucket, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2MiB", 2 * 1024 * 1024),
        ("2MiB/s", 2 * 1024 * 1024),
        ("500KB", 500_000),
        ("8Mbit", 1_000_000),
        ("8Mbps", 1_000_000),
        ("1000000", 1_000_000),
        ("1.5MB", 1_500_000),
    ],
)
def test_parse_rate(text: str, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "fast", "0", "2 parsecs", "-1MB", "1e9"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_bucket_allows_burst_then_paces() -> None:
    bucket = TokenBucket(1000.0, burst=1000.0, now=0.0)
    assert bucket.reserve(1000, 0.0) == 0.0
    assert bucket.reserve(500, 0.0) == pytest.approx(0.5)
    assert bucket.reserve(500, 0.0) == pytest.approx(1.0)
    # After the waits have elapsed the balance is back to zero.
    assert bucket.available(1.0) == pytest.approx(0.0)


def test_bucket_refill_is_capped_by_burst() -> None:
    bucket = TokenBucket(1000.0, burst=200.0, now=0.0)
    assert bucket.available(100.0) == pytest.approx(200.0)


@given(st.lists(st.integers(min_value=1, max_value=100_000), min_size=1, max_size=50))
def test_long_run_rate_never_exceeds_limit(sizes: list[int]) -> None:
    rate = 10_000.0
    bucket = TokenBucket(rate, burst=5_000.0, now=0.0)
    now = 0.0
    for size in sizes:
        wait = bucket.reserve(size, now)
        now += wait
    # Everything sent by ``now`` fits in the burst plus ``rate`` per elapsed second.
    assert sum(sizes) <= 5_000.0 + rate * now + 1e-6
