"""The STUN fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.codecs.stun import decode_message


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_stun")


def test_seeds_are_valid_messages(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 4
    for seed in target.SEEDS:
        decode_message(seed)


def test_the_fallback_loop_finds_nothing(target: ModuleType) -> None:
    assert target.run_random(2_000, seed=1) == 2_000 + len(target.SEEDS)


def test_a_finding_is_raised(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> None:
        raise RuntimeError("boom")

    harness = sys.modules["harness"]
    with pytest.raises(RuntimeError):
        harness.run_random(broken, target.SEEDS, target.TOKENS, 10)
