"""The PPSPP datagram fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from fuzz_targets import load_target


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_ppspp_datagram")


def test_seeds_cover_every_message_type(target: ModuleType) -> None:
    from ppsp.codecs.ppspp import decode_datagram
    from ppsp.wire.ppspp import MessageType

    kinds = set()
    for (params, datagram), seed in zip(target.SEED_DATAGRAMS, target.SEEDS, strict=True):
        assert decode_datagram(seed, params) == datagram
        kinds |= {type(message).__name__.upper() for message in datagram.messages}
    assert kinds >= {kind.name.replace("_", "") for kind in MessageType}
    assert any(not datagram.messages for _, datagram in target.SEED_DATAGRAMS)  # keep-alive


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (*target.SEEDS, b"", b"\x00", bytes(4), b"\xff" * 70_000, bytes(range(256))):
        target.test_one_input(data)


def test_short_random_run(target: ModuleType) -> None:
    assert target.run_random(3_000, 7) == 3_000 + len(target.SEEDS)


def test_mutation_changes_input(target: ModuleType) -> None:
    rng = random.Random(3)
    seed = target.SEEDS[0]
    assert any(target.mutate(seed, rng) != seed for _ in range(10))


def test_target_lets_other_exceptions_through(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes, params: object) -> None:
        raise KeyError(data)

    monkeypatch.setattr(target, "decode_datagram", broken)
    with pytest.raises(KeyError):
        target.test_one_input(b"\x00\x00\x00\x01")
