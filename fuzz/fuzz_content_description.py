"""Fuzz harness for a stored content's description (:mod:`ppsp.peer.content.description`).

A downloader fetches the description of a swarm from any peer; the swarm ID certifies it, but
anyone can make a swarm whose ID is the hash of a description he crafted, so the parser sees
arbitrary bytes.  Properties checked on every input:

* :meth:`~ppsp.peer.content.description.ContentDescription.from_bytes` raises nothing but
  :class:`~ppsp.errors.InvalidDescription`;
* whatever it accepts is its own canonical form (``to_bytes`` gives the input back), decodes
  again to an equal description, has the input's hash as its swarm ID, and lays its chunks out
  consistently (each representation's chunks, the last of 1 to ``chunk_size`` bytes, add up to
  its size);
* :func:`~ppsp.peer.content.description.verify_description` raises nothing but
  :class:`~ppsp.errors.InvalidDescription` and :class:`~ppsp.errors.IntegrityError`; under the
  input's own hash (the attacker's swarm) it answers as ``from_bytes`` does, and under a seed's
  swarm ID it accepts that seed's bytes only.

Run with atheris when it is installed (``python fuzz/fuzz_content_description.py [libFuzzer
flags]``); otherwise a bounded random-mutation loop over valid descriptions runs
(``python fuzz/fuzz_content_description.py [iterations] [seed]``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.errors import IntegrityError, InvalidDescription
from ppsp.peer.content.description import (
    ContentDescription,
    Representation,
    verify_description,
)
from ppsp.peer.content.merkle import chunk_hash


def _content(size: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _representation(
    rep_id: str, size: int, chunk_size: int, seed: int, bandwidth: int | None = None
) -> Representation:
    data = _content(size, seed)
    hashes = tuple(chunk_hash(data[i : i + chunk_size]) for i in range(0, size, chunk_size))
    return Representation(id=rep_id, size=size, chunk_hashes=hashes, bandwidth=bandwidth)


DESCRIPTIONS: tuple[ContentDescription, ...] = (
    # Tiny: one byte in one chunk of the default size.
    ContentDescription(
        name="a",
        media_type="application/octet-stream",
        representations=(_representation("main", 1, 256 * 1024, 0),),
    ),
    # One representation, a short last chunk.
    ContentDescription(
        name="movie.mp4",
        media_type="video/mp4",
        chunk_size=1000,
        representations=(_representation("main", 2500, 1000, 1),),
    ),
    # Several representations with bandwidths (multi-bitrate).
    ContentDescription(
        name="Big Buck Bunny",
        media_type="video/mp4",
        chunk_size=1000,
        representations=(
            _representation("main", 2500, 1000, 20, bandwidth=2_000_000),
            _representation("low", 1300, 1000, 21, bandwidth=500_000),
            _representation("audio.aac-1", 1000, 1000, 22),
        ),
    ),
    # Larger: 200 chunks, a name needing escapes and UTF-8 beyond ASCII.
    ContentDescription(
        name='Überraschung "à" \\ 映画 \u2013 part 2.ts',
        media_type="video/mp2t",
        chunk_size=64,
        representations=(_representation("main", 200 * 64 - 5, 64, 3, bandwidth=1),),
    ),
    # Chunks of one byte.
    ContentDescription(
        name="three bytes",
        media_type="text/plain",
        chunk_size=1,
        representations=(_representation("x", 3, 1, 4),),
    ),
)
"""Descriptions as the project builds them (chunk hashes of real bytes), of several shapes; the
content of a single representation is ``_content(size, the position of its description)``."""

SEEDS: tuple[bytes, ...] = tuple(description.to_bytes() for description in DESCRIPTIONS)
"""Their canonical bytes: the mutation loop's corpus."""

SWARM_IDS: tuple[str, ...] = tuple(description.swarm_id for description in DESCRIPTIONS)
"""The seeds' swarm IDs, each of which certifies its seed's bytes only."""

TOKENS = (
    b'"chunk_count":', b'"chunk_hashes":"', b'"bandwidth":1,', b'"merkle_root":"', b'"size":',
    b'{"chunk_count":1,', b"null", b"true", b"false", b"-0", b"1e400", b"1.0",
    b"18446744073709551616", b"9223372036854775807", b"1048576", b"16777217", b"\\u0000",
    b"\\ud800", b"\\u00e9", b"\xc3\xa9", b"\xff", b'"', b"{", b"}", b"[", b"]", b",", b":",
    b"==", b"=", b"AAAA", b" ", b"\n",
)  # fmt: skip


def _check_layout(description: ContentDescription, data: bytes) -> None:
    for rep in description.representations:
        offset, length = description.chunk_range(rep.chunk_count - 1, rep.id)
        if not 1 <= length <= description.chunk_size or offset + length != rep.size:
            raise AssertionError(f"inconsistent chunk layout in {rep.id}: {data!r}")


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    try:
        description: ContentDescription | None = ContentDescription.from_bytes(data)
    except InvalidDescription:
        description = None
    own_id = hashlib.sha256(data).hexdigest()
    if description is not None:
        encoded = description.to_bytes()
        if encoded != data or ContentDescription.from_bytes(encoded) != description:
            raise AssertionError(f"a decoded description does not survive a round trip: {data!r}")
        if description.swarm_id != own_id:
            raise AssertionError(f"a decoded description's swarm ID is not its hash: {data!r}")
        _check_layout(description, data)
    try:
        verified: ContentDescription | None = verify_description(data, own_id)
    except InvalidDescription:
        verified = None
    if verified != description:
        raise AssertionError(f"verify_description under its own hash differs: {data!r}")
    for swarm_id, seed in zip(SWARM_IDS, SEEDS, strict=True):
        try:
            verify_description(data, swarm_id)
        except (InvalidDescription, IntegrityError):
            continue
        if data != seed:
            raise AssertionError(f"a description accepted under another's swarm ID: {data!r}")


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
