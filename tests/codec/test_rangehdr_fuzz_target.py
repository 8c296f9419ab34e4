"""The Range header fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.codecs.rangehdr import ByteSpan, parse_range


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_range_header")


def test_seeds_are_valid_ranges(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 4
    assert {0, 1} <= set(target.TOTALS) and max(target.TOTALS) >= 1 << 32
    for seed in target.SEEDS:
        assert isinstance(parse_range(seed.decode("latin-1"), max(target.TOTALS)), ByteSpan)


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (*target.SEEDS, b"", b"=", b"bytes=-", b"bytes=\xb2-", b"bytes=" + b"9" * 5_000):
        target.test_one_input(data)


def test_the_fallback_loop_finds_nothing(target: ModuleType) -> None:
    assert target.run_random(2_000, seed=1) == 2_000 + len(target.SEEDS)


def test_a_finding_is_raised(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(header: str | None, total: int) -> ByteSpan | None:
        raise OverflowError(header)

    monkeypatch.setattr(target, "parse_range", broken)
    with pytest.raises(OverflowError):
        target.run_random(10)


def test_a_broken_property_is_a_finding(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A span one byte past the end is caught on the first seed.
    def past_the_end(header: str | None, total: int) -> ByteSpan | None:
        return ByteSpan(first=0, last=total, total=total)

    monkeypatch.setattr(target, "parse_range", past_the_end)
    with pytest.raises(AssertionError, match="outside"):
        target.run_random(10)
