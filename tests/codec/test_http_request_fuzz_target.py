"""The HTTP request head fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.codecs.httphead import parse_request_head, request_head_length
from ppsp.errors import MalformedRequest, RequestHeadTooLarge


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_http_request_head")


def test_seeds_are_valid_requests(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 5
    for seed in target.SEEDS:
        data = seed[2:] if seed.startswith(b"\r\n") else seed  # the server skips empty lines
        length = request_head_length(data)
        assert length > 0
        parse_request_head(data[:length])


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (
        *target.SEEDS,
        b"",
        b"\x00",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"x" * 20_000,
        b"GET / HTTP/1.1\r\nX: " + b"v" * 20_000,
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

    monkeypatch.setattr(target, "parse_request_head", broken)
    with pytest.raises(KeyError):
        target.test_one_input(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(KeyError):
        target.run_random(5, 0)


def test_target_checks_the_status(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # A refusal carrying a status the server must not answer with is a finding.
    class Teapot(MalformedRequest):
        status = 418

    def teapot(data: bytes) -> None:
        raise Teapot("short and stout")

    monkeypatch.setattr(target, "parse_request_head", teapot)
    with pytest.raises(AssertionError):
        target.test_one_input(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")


def test_target_checks_the_framing(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # A request_head_length that misses the end of a parsed head is a finding, not a pass.
    monkeypatch.setattr(target, "request_head_length", lambda data, size=None: 0)
    with pytest.raises(AssertionError):
        target.test_one_input(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")


def test_target_refuses_size_errors_from_short_input(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A head too large is only expected once the bound is reached.
    def too_large(data: bytes, size: int | None = None) -> int:
        raise RequestHeadTooLarge("too large")

    monkeypatch.setattr(target, "request_head_length", too_large)
    with pytest.raises(RequestHeadTooLarge):
        target.test_one_input(b"GET / HTTP/1.1")


def test_short_fallback_run(target: ModuleType) -> None:
    assert target.run_random(20_000, 7) == 20_000 + 2 * len(target.SEEDS)
