"""Fuzz harness for a live stream's signed description (:mod:`ppsp.peer.live.identity`).

A viewer fetches the description of a live swarm from any peer.  Properties checked on every
input:

* :func:`~ppsp.peer.live.identity.is_live_description` raises nothing;
* :meth:`~ppsp.peer.live.identity.LiveDescription.from_bytes` raises nothing but
  :class:`~ppsp.errors.InvalidDescription` and :class:`~ppsp.errors.IntegrityError` (a bad
  signature);
* whatever it accepts is its own canonical form (``to_bytes`` gives the input back), decodes
  again to an equal description, is sniffed as a live description, and is one of the seeds:
  the source's signature covers every field, so no other bytes can be accepted;
* :func:`~ppsp.peer.live.identity.verify_live_description` raises nothing but those two
  errors, and accepts an input only under its own key's swarm ID, as ``from_bytes`` decodes it.

Run with atheris when it is installed (``python fuzz/fuzz_live_description.py [libFuzzer
flags]``); otherwise a bounded random-mutation loop over signed descriptions runs
(``python fuzz/fuzz_live_description.py [iterations] [seed]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import IntegrityError, InvalidDescription
from ppsp.peer.live.identity import (
    MAX_CHUNK_MS,
    MAX_START_MS,
    MAX_WINDOW_S,
    LiveDescription,
    is_live_description,
    verify_live_description,
)

KEYS = (
    Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
    Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132))),
)
"""Fixed source keys, so that the seeds (Ed25519 signatures are deterministic) are too."""

DESCRIPTIONS: tuple[LiveDescription, ...] = (
    LiveDescription.create(
        KEYS[0],
        name="camera one",
        media_type="video/mp2t",
        chunk_ms=1000,
        window_s=30,
        start_ms=1_700_000_000_000,
    ),
    LiveDescription.create(KEYS[0], name="a", media_type="a/b", chunk_ms=1, window_s=1, start_ms=0),
    LiveDescription.create(
        KEYS[1],
        name='Übertragung "live" \\ 直播 \u2013 ' + "x" * 200,
        media_type="application/vnd.apple.mpegurl",
        chunk_ms=MAX_CHUNK_MS,
        window_s=MAX_WINDOW_S,
        start_ms=MAX_START_MS,
    ),
    LiveDescription.create(
        KEYS[1],
        name="radio",
        media_type="audio/aac",
        chunk_ms=2000,
        window_s=120,
        start_ms=1_712_345_678_901,
    ),
)
"""Descriptions signed by the project's own code, of several shapes and two keys."""

SEEDS: tuple[bytes, ...] = tuple(description.to_bytes() for description in DESCRIPTIONS)
"""Their canonical bytes: the mutation loop's corpus."""

SWARM_IDS: tuple[str, ...] = tuple(sorted({description.swarm_id for description in DESCRIPTIONS}))
"""The live swarm IDs of the two keys."""

TOKENS = (
    b'"algorithm":"ed25519",', b'"chunk_ms":', b'"format":"ppsp-live/1",', b'"public_key":"',
    b'"signature":"', b'"start_ms":', b'"window_s":', b"null", b"true", b"-0", b"1e400",
    b"1.0", b"9007199254740991", b"9007199254740992", b"18446744073709551616", b"60001",
    b"86401", b"\\u0000", b"\\ud800", b"\\u00e9", b"\xc3\xa9", b"\xff", b'"', b"{", b"}", b"[",
    b"]", b",", b":", b"00" * 32, b"ff" * 32, b"AB", b" ",
)  # fmt: skip


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    sniffed = is_live_description(data)
    if not isinstance(sniffed, bool):
        raise AssertionError(f"is_live_description answered {sniffed!r}: {data!r}")
    try:
        description: LiveDescription | None = LiveDescription.from_bytes(data)
    except (InvalidDescription, IntegrityError):
        description = None
    if description is not None:
        encoded = description.to_bytes()
        if encoded != data or LiveDescription.from_bytes(encoded) != description:
            raise AssertionError(f"a decoded description does not survive a round trip: {data!r}")
        if not sniffed:
            raise AssertionError(f"a valid live description is not sniffed as one: {data!r}")
        if data not in SEEDS:
            raise AssertionError(f"a description accepted without the source's key: {data!r}")
    for swarm_id in SWARM_IDS:
        try:
            verified = verify_live_description(data, swarm_id)
        except (InvalidDescription, IntegrityError):
            continue
        if description is None or verified != description or description.swarm_id != swarm_id:
            raise AssertionError(f"a description accepted under another swarm ID: {data!r}")


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
