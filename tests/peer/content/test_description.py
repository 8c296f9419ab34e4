from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import ChunkUnavailable, ContentError, IntegrityError, InvalidDescription
from ppsp.peer.content.description import (
    DEFAULT_CHUNK_SIZE,
    MAX_DESCRIPTION_BYTES,
    MAX_TOTAL_CHUNKS,
    ContentDescription,
    Representation,
    chunk_size_for,
    is_swarm_id,
    verify_chunk,
    verify_description,
)
from ppsp.peer.content.merkle import MerkleTree, chunk_hash
from ppsp.peer.net.chunkstore import describe_file


def content(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def write(tmp_path: Path, data: bytes, name: str = "movie.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# ---------------------------------------------------------------- describe_file


def test_describe_file_last_chunk_short(tmp_path: Path) -> None:
    data = content(2500)
    desc = describe_file(write(tmp_path, data), chunk_size=1000)
    assert desc.name == "movie.mp4"
    assert desc.media_type == "video/mp4"
    assert desc.size == 2500
    assert desc.chunk_size == 1000
    assert desc.chunk_count == 3
    assert desc.chunk_hashes == tuple(chunk_hash(c) for c in split(data, 1000))
    assert desc.merkle_root == MerkleTree.from_chunks(split(data, 1000)).root
    assert desc.representations[0].merkle_tree().root == desc.merkle_root
    assert [desc.chunk_range(i) for i in range(3)] == [(0, 1000), (1000, 1000), (2000, 500)]
    assert desc.representations[0].id == "main"
    assert desc.representation("main") is desc.representations[0]


def test_describe_file_exactly_one_chunk(tmp_path: Path) -> None:
    data = content(1000)
    desc = describe_file(write(tmp_path, data, "clip.bin"), chunk_size=1000)
    assert desc.chunk_count == 1
    assert desc.chunk_range(0) == (0, 1000)
    assert desc.merkle_root == chunk_hash(data)
    assert desc.media_type == "application/octet-stream"


def test_describe_file_exact_multiple(tmp_path: Path) -> None:
    desc = describe_file(write(tmp_path, content(3000)), chunk_size=1000)
    assert desc.chunk_count == 3
    assert desc.chunk_range(2) == (2000, 1000)


def test_describe_file_default_chunk_size_and_overrides(tmp_path: Path) -> None:
    desc = describe_file(
        write(tmp_path, content(10)), name="Film", media_type="video/webm", bandwidth=800_000
    )
    assert desc.chunk_size == DEFAULT_CHUNK_SIZE == 256 * 1024
    assert (desc.name, desc.media_type, desc.chunk_count) == ("Film", "video/webm", 1)
    assert desc.representations[0].bandwidth == 800_000


def test_empty_content_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidDescription):
        describe_file(write(tmp_path, b""), chunk_size=1000)


def test_describe_file_rejects_bad_chunk_size(tmp_path: Path) -> None:
    path = write(tmp_path, content(10))
    with pytest.raises(InvalidDescription):
        describe_file(path, chunk_size=0)
    with pytest.raises(InvalidDescription):
        describe_file(path, chunk_size=True)


def test_chunk_for_offset() -> None:
    desc = _multi()
    assert desc.chunk_for_offset(0) == 0
    assert desc.chunk_for_offset(999) == 0
    assert desc.chunk_for_offset(1000) == 1
    assert desc.chunk_for_offset(2499) == 2
    with pytest.raises(ChunkUnavailable):
        desc.chunk_for_offset(2500)
    with pytest.raises(ChunkUnavailable):
        desc.chunk_for_offset(-1)
    assert desc.chunk_for_offset(1200, "low") == 1
    with pytest.raises(ChunkUnavailable):
        desc.chunk_range(3)
    with pytest.raises(ChunkUnavailable):
        desc.chunk_range(-1)
    with pytest.raises(ChunkUnavailable):
        desc.chunk_range(0, "nope")
    with pytest.raises(LookupError):
        desc.representation("nope")


# ---------------------------------------------------------------- encoding and swarm ID


def _rep(rep_id: str, data: bytes, chunk_size: int = 1000, **kw: Any) -> Representation:
    hashes = tuple(chunk_hash(c) for c in split(data, chunk_size))
    return Representation(id=rep_id, size=len(data), chunk_hashes=hashes, **kw)


def _multi() -> ContentDescription:
    return ContentDescription(
        name="Big Buck Bunny",
        media_type="video/mp4",
        chunk_size=1000,
        representations=(
            _rep("main", content(2500, 1), bandwidth=2_000_000),
            _rep("low", content(1300, 2), bandwidth=500_000),
        ),
    )


def test_round_trip_and_canonical_form() -> None:
    desc = _multi()
    data = desc.to_bytes()
    assert ContentDescription.from_bytes(data) == desc
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)
    doc = orjson.loads(data)
    assert list(doc) == sorted(doc)
    assert doc["format"] == "ppsp-content/1"
    assert doc["hash"] == "sha-256"
    main = doc["representations"][0]
    assert main["merkle_root"] == desc.merkle_root.hex()
    assert base64.b64decode(main["chunk_hashes"]) == b"".join(desc.chunk_hashes)
    assert (
        "bandwidth"
        not in orjson.loads(
            dataclasses.replace(
                desc, representations=(_rep("main", content(5)),), chunk_size=1000
            ).to_bytes()
        )["representations"][0]
    )


def test_swarm_id_is_sha256_of_canonical_bytes() -> None:
    desc = _multi()
    assert desc.swarm_id == hashlib.sha256(desc.to_bytes()).hexdigest()
    assert is_swarm_id(desc.swarm_id)
    assert verify_description(desc.to_bytes(), desc.swarm_id) == desc
    # Any change to the content changes the ID.
    other = dataclasses.replace(desc, name="Big Buck Bunny 2")
    assert other.swarm_id != desc.swarm_id
    tweaked = dataclasses.replace(
        desc, representations=(_rep("main", content(2500, 9)), desc.representations[1])
    )
    assert tweaked.swarm_id != desc.swarm_id


def test_swarm_id_mismatch() -> None:
    desc = _multi()
    with pytest.raises(IntegrityError):
        verify_description(desc.to_bytes(), _multi_alt().swarm_id)
    with pytest.raises(InvalidDescription):
        verify_description(desc.to_bytes(), desc.swarm_id.upper())
    with pytest.raises(InvalidDescription):
        verify_description(desc.to_bytes(), "abc")
    assert not is_swarm_id(None)


def _multi_alt() -> ContentDescription:
    return dataclasses.replace(_multi(), media_type="video/webm")


def _mutated(mutate: Any) -> bytes:
    doc = orjson.loads(_multi().to_bytes())
    mutate(doc)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def mutate(doc: Any) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Any:
    def mutate(doc: Any) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


HOSTILE = [
    _set(("name",), 5),
    _set(("name",), ""),
    _set(("name",), "a\nb"),
    _set(("name",), "x" * 2000),
    _set(("media_type",), "video"),
    _set(("media_type",), None),
    _set(("chunk_size",), "1000"),
    _set(("chunk_size",), 1000.0),
    _set(("chunk_size",), True),
    _set(("chunk_size",), 0),
    _set(("chunk_size",), 1 << 40),
    _set(("chunk_size",), 2000),
    _set(("format",), "ppsp-content/2"),
    _set(("hash",), "sha-1"),
    _set(("extra",), 1),
    _delete(("name",)),
    _set(("representations",), []),
    _set(("representations",), {}),
    _set(("representations",), [None]),
    _set(("representations",), [{"id": "main"}] * 17),
    _set(("representations", 1, "id"), "main"),
    _set(("representations", 0, "id"), "has space"),
    _set(("representations", 0, "id"), "../../etc"),
    _set(("representations", 0, "size"), -5),
    _set(("representations", 0, "size"), 3001),
    _set(("representations", 0, "size"), "2500"),
    _set(("representations", 0, "chunk_count"), 2),
    _set(("representations", 0, "chunk_count"), 0),
    _set(("representations", 0, "chunk_count"), MAX_TOTAL_CHUNKS + 1),
    _set(("representations", 0, "chunk_count"), 2**62),
    _set(("representations", 0, "chunk_hashes"), "AAAA"),
    _set(("representations", 0, "chunk_hashes"), ["x"]),
    _set(("representations", 0, "chunk_hashes"), "!" * 128),
    _set(("representations", 0, "merkle_root"), "00" * 32),
    _set(("representations", 0, "merkle_root"), 7),
    _set(("representations", 0, "bandwidth"), 0),
    _set(("representations", 0, "bandwidth"), 1.5),
    _set(("representations", 0, "oops"), 1),
    _delete(("representations", 0, "merkle_root")),
]


@pytest.mark.parametrize("mutate", HOSTILE)
def test_hostile_descriptions_are_rejected(mutate: Any) -> None:
    with pytest.raises(InvalidDescription):
        ContentDescription.from_bytes(_mutated(mutate))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"null",
        b"{",
        b"\xff\xfe",
        b'{"a":1e999}',
        b'{"chunk_size":123456789012345678901234567890}',
    ],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidDescription):
        ContentDescription.from_bytes(data)


def test_truncated_and_non_canonical_are_rejected() -> None:
    data = _multi().to_bytes()
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(InvalidDescription):
            ContentDescription.from_bytes(data[:cut])
    pretty = orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    with pytest.raises(InvalidDescription):
        ContentDescription.from_bytes(pretty)
    with pytest.raises(InvalidDescription):
        ContentDescription.from_bytes(orjson.dumps(orjson.loads(data)) + b" ")


def test_oversized_input_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidDescription):
        ContentDescription.from_bytes(b" " * (MAX_DESCRIPTION_BYTES + 1))


def test_bad_direct_construction() -> None:
    with pytest.raises(InvalidDescription):
        Representation(id="main", size=10, chunk_hashes=())
    with pytest.raises(InvalidDescription):
        Representation(id="main", size=10, chunk_hashes=(b"short",))
    with pytest.raises(InvalidDescription):
        ContentDescription(name="x", media_type="a/b", representations=())
    with pytest.raises(InvalidDescription):
        ContentDescription(name="\ud800", media_type="a/b", representations=(_rep("m", b"x"),))
    assert issubclass(InvalidDescription, ContentError)


@settings(max_examples=30, deadline=None)
@given(
    st.text(min_size=1, max_size=40).filter(
        lambda s: not any(ord(c) < 32 or c == "\x7f" for c in s)
    ),
    st.lists(st.integers(1, 5000), min_size=1, max_size=4),
    st.integers(1, 2000),
)
def test_round_trip_property(name: str, sizes: list[int], chunk_size: int) -> None:
    reps = tuple(_rep(f"r{i}", content(size, i), chunk_size) for i, size in enumerate(sizes))
    try:
        desc = ContentDescription(
            name=name, media_type="video/mp4", chunk_size=chunk_size, representations=reps
        )
    except InvalidDescription:
        # Only names orjson cannot encode (lone surrogates) may fail.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in name)
        return
    data = desc.to_bytes()
    assert ContentDescription.from_bytes(data) == desc
    assert verify_description(data, desc.swarm_id) == desc


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 10_000), st.binary(min_size=0, max_size=4))
def test_fuzz_only_invalid_description_escapes(junk: bytes, at: int, patch: bytes) -> None:
    valid = _multi().to_bytes()
    at %= len(valid)
    for data in (junk, valid[:at] + patch + valid[at + len(patch) :]):
        with contextlib.suppress(InvalidDescription):
            assert ContentDescription.from_bytes(data).to_bytes() == data


# ---------------------------------------------------------------- verify_chunk


def test_verify_chunk() -> None:
    data = content(2500, 1)
    desc = _multi()
    chunks = split(data, 1000)
    for i, chunk in enumerate(chunks):
        verify_chunk(desc, i, chunk)
    with pytest.raises(IntegrityError):
        verify_chunk(desc, 0, chunks[1])
    with pytest.raises(IntegrityError):
        verify_chunk(desc, 2, chunks[2] + b"\x00")  # last chunk: wrong (long) length
    with pytest.raises(IntegrityError):
        verify_chunk(desc, 1, chunks[1][:500])  # short non-last chunk
    with pytest.raises(IntegrityError):
        verify_chunk(desc, 0, bytes([chunks[0][0] ^ 1]) + chunks[0][1:])
    with pytest.raises(ChunkUnavailable):
        verify_chunk(desc, 3, chunks[0])
    low = split(content(1300, 2), 1000)
    verify_chunk(desc, 1, low[1], "low")
    with pytest.raises(IntegrityError):
        verify_chunk(desc, 1, low[1])


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (0, 256 << 10),
        (1, 256 << 10),
        (64 << 20, 256 << 10),  # 256 chunks
        ((64 << 20) + 1, 512 << 10),
        (128 << 20, 512 << 10),
        (256 << 20, 1 << 20),
        (4 << 30, 1 << 20),  # never more than 1 MiB: 4096 chunks
    ],
)
def test_chunk_size_for_grows_with_large_content(size: int, chunk_size: int) -> None:
    assert chunk_size_for(size) == chunk_size
    assert chunk_size_for(size) >= DEFAULT_CHUNK_SIZE
