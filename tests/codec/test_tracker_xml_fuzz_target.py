"""The tracker XML fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from fuzz_targets import load_target


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_tracker_xml")


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    seeds = target.seeds()
    assert len(seeds) >= 2
    for data in (*seeds, b"", b"\x00", b"<", b"<PPSPTrackerProtocol/>"):
        target.test_one_input(data)


def test_mutation_changes_input(target: ModuleType) -> None:
    rng = random.Random(3)
    seed = target.FALLBACK_SEED
    assert any(target.mutate(rng, seed, [seed]) != seed for _ in range(10))


def test_target_lets_other_exceptions_through(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes) -> None:
        raise KeyError(data)

    monkeypatch.setattr(target, "decode_request", broken)
    with pytest.raises(KeyError):
        target.test_one_input(b"x")
    assert target.run_without_atheris(5, 0) == 1


def test_short_fallback_run(target: ModuleType) -> None:
    assert target.run_without_atheris(1500, 7) == 0
