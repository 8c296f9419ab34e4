"""Fuzz harness for the HTTP Range header parser (:mod:`ppsp.codecs.rangehdr`).

The player endpoint reads the ``Range`` header any client sends.  The input is read as the
header's value (Latin-1, as HTTP heads are), and tried against contents of several sizes (empty,
one byte, a few KiB, a TiB).  Properties checked on every input and size:

* :func:`~ppsp.codecs.rangehdr.parse_range` returns None or a
  :class:`~ppsp.codecs.rangehdr.ByteSpan`, or raises
  :class:`~ppsp.codecs.rangehdr.RangeNotSatisfiable`, nothing else;
* a span is consistent: ``0 <= first <= last < total``, of the size it was asked against, with
  its length and ``Content-Range`` agreeing;
* nothing is satisfiable in empty content.

Run with atheris when it is installed (``python fuzz/fuzz_range_header.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over valid headers runs
(``python fuzz/fuzz_range_header.py [iterations] [seed]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs.rangehdr import ByteSpan, RangeNotSatisfiable, parse_range

TOTALS = (0, 1, 4096, 1 << 40)
"""Content sizes each input is parsed against."""

SEEDS: tuple[bytes, ...] = (
    b"bytes=0-",
    b"bytes=0-99",
    b"bytes=-500",
    b"bytes=100-",
    b"bytes=0-0,5-9",
    b"Bytes = 10 - 20 , -3",
    b"bytes=0-18446744073709551615",
    b"bytes=-99999999999999999999",
)
"""Valid headers (each satisfiable in a TiB): the mutation loop's corpus."""

TOKENS = (
    b"bytes=", b"bytes", b"=", b"-", b",", b" ", b"\t", b"0", b"1", b"9" * 20, b"9" * 21,
    b"\xa0", b"\x85", b"\xb2", b"\xb9", b"\xbd", b"\x00", b"+", b"_", b"items=",
)  # fmt: skip


def _check_span(span: ByteSpan, total: int, data: bytes) -> None:
    if type(span) is not ByteSpan or not 0 <= span.first <= span.last < total:
        raise AssertionError(f"span {span!r} outside {total} bytes: {data!r}")
    if span.total != total or span.length != span.last - span.first + 1:
        raise AssertionError(f"inconsistent span {span!r} of {total} bytes: {data!r}")
    if span.content_range != f"bytes {span.first}-{span.last}/{total}":
        raise AssertionError(f"Content-Range {span.content_range!r} of {span!r}: {data!r}")


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    header = data.decode("latin-1")
    for total in TOTALS:
        try:
            span = parse_range(header, total)
        except RangeNotSatisfiable:
            continue
        if span is not None:
            _check_span(span, total, data)


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
