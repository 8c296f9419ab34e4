"""The live chunk envelope fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.errors import ForgedChunk
from ppsp.peer.live import ChunkEnvelope, LiveDescription, verify_envelope


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_live_envelope")


def test_seeds_are_valid_signed_chunks(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 4
    envelopes = [ChunkEnvelope.decode(seed) for seed in target.SEEDS]
    for envelope in envelopes:
        verify_envelope(target.DESCRIPTION, envelope, target.NOW)
        with pytest.raises(ForgedChunk):
            verify_envelope(target.EARLIER_SESSION, envelope, target.NOW)
    assert {envelope.flags for envelope in envelopes} == {0, 1, 2, 3}
    assert any(not envelope.payload for envelope in envelopes)


def test_a_payload_of_another_length_reaches_the_signature_check(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[bytes] = []

    def record(description: LiveDescription, envelope: ChunkEnvelope, *args: object) -> None:
        checked.append(envelope.payload)
        raise ForgedChunk("recorded")

    monkeypatch.setattr(target, "verify_envelope", record)
    seed = target.SEEDS[1]
    target.test_one_input(seed + b"!")
    assert checked and set(checked) == {ChunkEnvelope.decode(seed).payload + b"!"}


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (*target.SEEDS, b"", b"LV", b"LV\x02" + bytes(85), b"\xff" * 200, bytes(256)):
        target.test_one_input(data)


def test_the_fallback_loop_finds_nothing(target: ModuleType) -> None:
    assert target.run_random(2_000, seed=1) == 2_000 + len(target.SEEDS)


def test_a_finding_is_raised(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(target, "verify_envelope", broken)
    with pytest.raises(KeyError):
        target.run_random(10)


def test_a_broken_property_is_a_finding(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A verification that accepts everything is caught on the first seed (below the floor).
    monkeypatch.setattr(target, "verify_envelope", lambda *args: None)
    with pytest.raises(AssertionError):
        target.run_random(10)
