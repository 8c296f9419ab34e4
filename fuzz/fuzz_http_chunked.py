"""Fuzz harness for the chunked transfer coding's decoder (:mod:`ppsp.codecs.httpchunked`).

Properties checked on every input:

* :meth:`~ppsp.codecs.httpchunked.ChunkedDecoder.feed` raises nothing but
  :class:`~ppsp.errors.MalformedResponse`;
* the outcome does not depend on how the bytes arrive: fed whole, byte by byte or cut at random
  points, the input decodes to the same body, ends (or not) at the same place and counts the
  same bytes after its end, or is refused every time;
* a decoded body is never longer than the input.

Run with atheris when it is installed (``python fuzz/fuzz_http_chunked.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over valid seed bodies runs
(``python fuzz/fuzz_http_chunked.py [iterations] [seed]``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs.httpchunked import ChunkedDecoder
from ppsp.errors import MalformedResponse

SEEDS: tuple[bytes, ...] = (
    b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n",
    b"1;name=value\r\nx\r\n0\r\nExpires: never\r\n\r\n",
    b"A ;a;b=c\r\n0123456789\r\n0\r\nA: 1\r\nB:\r\n\r\nHTTP/1.1 200 OK\r\n",
    b"0\r\n\r\n",
    b"ff\r\n" + b"z" * 255 + b"\r\n0\r\n\r\n",
)
"""Valid chunked bodies (one followed by another answer's bytes): the mutation loop's corpus."""

_TOKENS = (b"\r\n", b"\r", b"\n", b";", b" ", b"\t", b"0", b"f", b"G", b":", b"\x00", b"\xff")

Outcome = tuple[bytes, bool, int] | None


def _decode(pieces: list[bytes]) -> Outcome:
    """``(body, done, extra bytes)`` of the pieces fed in order, or None when refused."""
    decoder = ChunkedDecoder()
    try:
        body = b"".join(part for piece in pieces for part in decoder.feed(piece))
    except MalformedResponse:
        return None
    return body, decoder.done, decoder.extra_bytes


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any exception but MalformedResponse is a finding."""
    whole = _decode([data])
    rng = random.Random(len(data))
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, 6)))
    ways = (
        [data[i : i + 1] for i in range(len(data))],
        [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)],
    )
    for pieces in ways:
        if _decode(pieces) != whole:
            raise AssertionError(f"the outcome depends on how the bytes arrive: {data!r}")
    if whole is not None and len(whole[0]) > len(data):
        raise AssertionError(f"a body longer than its coding: {data!r}")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits of ``data`` (:func:`harness.mutate` over this target's corpus)."""
    return harness.mutate(data, rng, SEEDS, _TOKENS)


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The fallback fuzzer: the seed corpus, then ``iterations`` mutations of it;
    returns inputs run.  A finding is printed to stderr with its input, then raised."""
    return harness.run_random(test_one_input, SEEDS, _TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
