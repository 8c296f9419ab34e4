"""The live description fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.peer.live import LiveDescription, verify_live_description


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_live_description")


def test_seeds_are_valid_signed_descriptions(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 4
    for seed, description in zip(target.SEEDS, target.DESCRIPTIONS, strict=True):
        assert verify_live_description(seed, description.swarm_id) == description
    assert len(target.SWARM_IDS) == 2


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (*target.SEEDS, b"", b"{}", b"[]", b"null", b"\xff", b"[" * 5_000, bytes(256)):
        target.test_one_input(data)


def test_the_fallback_loop_finds_nothing(target: ModuleType) -> None:
    assert target.run_random(2_000, seed=1) == 2_000 + len(target.SEEDS)


def test_a_finding_is_raised(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, swarm_id: str) -> LiveDescription:
        raise KeyError(swarm_id)

    monkeypatch.setattr(target, "verify_live_description", broken)
    with pytest.raises(KeyError):
        target.run_random(10)


def test_a_broken_property_is_a_finding(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A verification that ignores the swarm ID is caught on the first seed.
    monkeypatch.setattr(
        target, "verify_live_description", lambda data, swarm_id: LiveDescription.from_bytes(data)
    )
    with pytest.raises(AssertionError, match="another swarm ID"):
        target.run_random(10)
