"""The content description fuzz target runs, and its fallback loop finds nothing in a short run."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from fuzz_targets import load_target
from ppsp.peer.content.description import ContentDescription, verify_description
from ppsp.peer.net.chunkstore import describe_file


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("fuzz_content_description")


def test_seeds_are_valid_descriptions_of_several_shapes(target: ModuleType) -> None:
    assert len(target.SEEDS) >= 4
    decoded = [
        verify_description(seed, swarm_id)
        for seed, swarm_id in zip(target.SEEDS, target.SWARM_IDS, strict=True)
    ]
    assert decoded == list(target.DESCRIPTIONS)
    counts = {len(description.representations) for description in decoded}
    assert 1 in counts and max(counts) > 1
    chunks = [description.chunk_count for description in decoded]
    assert min(chunks) == 1 and max(chunks) >= 100


def test_single_representation_seeds_are_what_describe_file_makes(
    target: ModuleType, tmp_path: Path
) -> None:
    single = [(n, d) for n, d in enumerate(target.DESCRIPTIONS) if len(d.representations) == 1]
    assert len(single) >= 2
    for number, description in single:
        rep = description.representations[0]
        path = tmp_path / f"content-{number}"
        path.write_bytes(target._content(rep.size, number))
        described = describe_file(
            path,
            chunk_size=description.chunk_size,
            name=description.name,
            media_type=description.media_type,
            representation_id=rep.id,
            bandwidth=rep.bandwidth,
        )
        assert described == description


def test_target_accepts_seeds_and_junk(target: ModuleType) -> None:
    for data in (*target.SEEDS, b"", b"{}", b"[]", b"null", b"\xff", b"[" * 5_000, bytes(256)):
        target.test_one_input(data)


def test_the_fallback_loop_finds_nothing(target: ModuleType) -> None:
    assert target.run_random(2_000, seed=1) == 2_000 + len(target.SEEDS)


def test_a_finding_is_raised(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, swarm_id: str) -> ContentDescription:
        raise KeyError(swarm_id)

    monkeypatch.setattr(target, "verify_description", broken)
    with pytest.raises(KeyError):
        target.run_random(10)


def test_a_broken_property_is_a_finding(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A verification that accepts any bytes under any swarm ID is caught on the first seed.
    monkeypatch.setattr(
        target, "verify_description", lambda data, swarm_id: ContentDescription.from_bytes(data)
    )
    with pytest.raises(AssertionError, match="another's swarm ID"):
        target.run_random(10)
