"""Fuzz harness for a live chunk's signed envelope (:mod:`ppsp.peer.live.envelope`).

A viewer receives every live chunk from a peer in a :class:`~ppsp.peer.live.envelope.ChunkEnvelope`
and checks it before it stores, plays or serves it.

Each input is checked as it is and, when it holds a header, with its length field set to the
bytes that follow the header, so that mutated headers and payloads reach the signature check.
Properties:

* :meth:`~ppsp.peer.live.envelope.ChunkEnvelope.decode` raises nothing but
  :class:`~ppsp.errors.InvalidEnvelope`, reads bytes, a bytearray and a memoryview alike, and
  what it accepts encodes back to the input (the length field accounts for every byte);
* decoding under a smaller ``max_payload`` accepts exactly what the default bound accepts with a
  payload within the smaller one;
* :func:`~ppsp.peer.live.envelope.verify_envelope` raises nothing but
  :class:`~ppsp.errors.InvalidEnvelope`, :class:`~ppsp.errors.FutureChunk`,
  :class:`~ppsp.errors.StaleChunk` and :class:`~ppsp.errors.ForgedChunk`, and accepts a chunk
  only when it is one the source signed for that stream and session (a seed): never one of
  another session of the same key, nor below the window's floor.

Run with atheris when it is installed (``python fuzz/fuzz_live_envelope.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over signed envelopes runs
(``python fuzz/fuzz_live_envelope.py [iterations] [seed]``).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import ForgedChunk, FutureChunk, InvalidEnvelope, StaleChunk
from ppsp.peer.live.envelope import (
    ENVELOPE_HEADER_SIZE,
    FLAG_END,
    FLAG_START,
    ChunkEnvelope,
    LivePolicy,
    verify_envelope,
)
from ppsp.peer.live.identity import LiveDescription
from ppsp.peer.live.source import LiveSource

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
"""A fixed source key, so that the seeds (Ed25519 signatures are deterministic) are too."""

START_MS = 1_700_000_000_000
"""The stream's start reference (Unix ms)."""

NOW = START_MS / 1000 + 20.0
"""When the chunks are checked (Unix s): 20 s into the stream."""

DESCRIPTION = LiveDescription.create(
    KEY, name="cam", media_type="video/mp2t", chunk_ms=1000, window_s=30, start_ms=START_MS
)
"""The stream the seeds belong to."""

EARLIER_SESSION = LiveDescription.create(
    KEY, name="cam", media_type="video/mp2t", chunk_ms=1000, window_s=30, start_ms=START_MS - 1
)
"""Another session of the same key: none of the seeds may verify under it."""

POLICY = LivePolicy()
SMALL_PAYLOAD = 100
"""The smaller ``max_payload`` the input is also decoded under."""


class _Floor:
    """A live window's floor (:class:`~ppsp.peer.live.envelope.HasFloor`)."""

    floor = 2


def _signed(index: int, offset_ms: int, payload: bytes, flags: int) -> bytes:
    source = LiveSource(KEY, DESCRIPTION, next_index=index)
    return source.sign(payload, START_MS + offset_ms, flags=flags).encode()


SEEDS: tuple[bytes, ...] = (
    _signed(0, 0, b"", FLAG_START),
    _signed(3, 3_000, b"media", 0),
    _signed(7, 7_250, bytes(range(256)) * 2, FLAG_START),
    _signed(19, 19_999, b"\x47" + bytes(187), FLAG_END),
    _signed(100, 19_000, b"last", FLAG_START | FLAG_END),
)
"""Chunks the project's source signed, all valid at :data:`NOW`: the mutation loop's corpus."""

TOKENS = (
    b"LV\x02", b"\x00" * 4, b"\xff" * 4, b"\x00\x00\x00\x64", b"\x00\x00\x00\x65",
    b"\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x80" + bytes(7), b"\x00\x00\x01\x8b\xcf\xe5\x68\x00",
    bytes(8), b"\x01", b"\x02", b"\x03", b"\x04", b"\x47",
)  # fmt: skip


def _decode(data: bytes | bytearray | memoryview, max_payload: int) -> ChunkEnvelope | None:
    try:
        return ChunkEnvelope.decode(data, max_payload=max_payload)
    except InvalidEnvelope:
        return None


def _verified(description: LiveDescription, envelope: ChunkEnvelope, floor: _Floor | None) -> bool:
    try:
        verify_envelope(description, envelope, NOW, floor, POLICY)
    except (InvalidEnvelope, FutureChunk, StaleChunk, ForgedChunk):
        return False
    return True


def test_one_input(data: bytes) -> None:
    """Check the properties on one input, and on the input with its length field set to the
    bytes that follow its header (so that mutated payloads and headers reach the signature
    check); any other exception is a finding."""
    _check(data)
    if len(data) >= ENVELOPE_HEADER_SIZE:
        length = struct.pack(">I", len(data) - ENVELOPE_HEADER_SIZE)
        framed = data[: ENVELOPE_HEADER_SIZE - 4] + length + data[ENVELOPE_HEADER_SIZE:]
        if framed != data:
            _check(framed)


def _check(data: bytes) -> None:
    envelope = _decode(data, POLICY.max_payload)
    if envelope is not None and envelope.encode() != data:
        raise AssertionError(f"a decoded envelope does not encode back: {data!r}")
    for other in (bytearray(data), memoryview(data)):
        if _decode(other, POLICY.max_payload) != envelope:
            raise AssertionError(f"{type(other).__name__} decodes otherwise: {data!r}")
    small = _decode(data, SMALL_PAYLOAD)
    expected = envelope if envelope is not None and len(envelope.payload) <= SMALL_PAYLOAD else None
    if small != expected:
        raise AssertionError(f"max_payload={SMALL_PAYLOAD} decodes otherwise: {data!r}")
    if envelope is None:
        return
    if _verified(DESCRIPTION, envelope, None) and data not in SEEDS:
        raise AssertionError(f"a chunk the source never signed verifies: {data!r}")
    if _verified(DESCRIPTION, envelope, _Floor()) and envelope.index < _Floor.floor:
        raise AssertionError(f"a chunk below the window floor verifies: {data!r}")
    if _verified(EARLIER_SESSION, envelope, None):
        raise AssertionError(f"a chunk verifies for another session: {data!r}")


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
