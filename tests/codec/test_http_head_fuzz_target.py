"""The HTTP head fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.errors import MalformedResponse


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_http_head")


def test_seeds_are_valid_heads(target: ModuleType) -> None:
    from ppsp.codecs.httphead import head_length, parse_response_head

    assert len(target.SEEDS) >= 5
    for seed in target.SEEDS:
        length = head_length(seed)
        assert length > 0
        parse_response_head(seed[:length])


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (
        *target.SEEDS,
        b"",
        b"\x00",
        b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"x" * 20_000,
    ):
        target.test_one_input(data)


def test_mutation_changes_input(target: ModuleType) -> None:
    rng = random.Random(3)
    seed = target.SEEDS[0]
    assert any(target.mutate(seed, rng) != seed for _ in range(10))


def test_target_lets_other_exceptions_through(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes) -> None:
        raise KeyError(data)

    monkeypatch.setattr(target, "parse_response_head", broken)
    with pytest.raises(KeyError):
        target.test_one_input(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(KeyError):
        target.run_random(5, 0)


def test_target_checks_the_framing(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # A head_length that misses the end of a parsed head is a finding, not a pass.
    monkeypatch.setattr(target, "head_length", lambda data, size=None: 0)
    with pytest.raises(AssertionError):
        target.test_one_input(b"HTTP/1.1 200 OK\r\n\r\n")


def test_target_refuses_malformed_errors_from_short_input(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MalformedResponse from head_length is only expected once the bound is reached.
    def too_long(data: bytes, size: int | None = None) -> int:
        raise MalformedResponse("too long")

    monkeypatch.setattr(target, "head_length", too_long)
    with pytest.raises(MalformedResponse):
        target.test_one_input(b"HTTP/1.1 200")


def test_short_fallback_run(target: ModuleType) -> None:
    assert target.run_random(20_000, 7) == 20_000 + 2 * len(target.SEEDS)
