"""Fuzz harness for the strict HTTP/1.x response head parser (:mod:`ppsp.codecs.httphead`).

Properties checked on every input:

* :func:`~ppsp.codecs.httphead.head_length` and :func:`~ppsp.codecs.httphead.parse_response_head`
  raise nothing but :class:`~ppsp.errors.MalformedResponse`;
* whatever parses has a status in 100..999, framing that is not ambiguous (never chunked with a
  Content-Length) and is delimited exactly by ``head_length``;
* when ``head_length`` finds a head in the input, the bytes after it do not move its end (nor do
  bytes past ``size``), parsing exactly that prefix works the same as parsing the head alone
  (same result, same invariants), and parsing anything longer than it is refused.

Run with atheris when it is installed (``python fuzz/fuzz_http_head.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over valid seed heads runs
(``python fuzz/fuzz_http_head.py [iterations] [seed]``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs.httphead import (
    MAX_HEAD_BYTES,
    ResponseHead,
    head_length,
    parse_response_head,
)
from ppsp.errors import MalformedResponse

SEEDS: tuple[bytes, ...] = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Length: 5\r\n"
    b"Date: Mon, 03 Jun 2024 10:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.9.5\r\n"
    b"\r\n"
    b"hello",
    b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
    b"HTTP/1.1 503 \r\nRetry-After: 10\r\ncontent-length:1\r\ncontent-length: 1\r\n\r\nx",
    b"HTTP/1.1 304\r\n\r\n",
)
"""Valid heads (some followed by a body) of several shapes: the mutation loop's corpus."""

_TOKENS = (
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b":",
    b" ",
    b"\t",
    b",",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"-1",
    b"0",
    b"99999999999999999999",
    b"HTTP/1.1 ",
    b"Content-Length: 5\r\n",
    b"Content-Length: 6\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
)


def _outcome(data: bytes) -> ResponseHead | None:
    """The parse of ``data``, or None when it is refused; other exceptions escape."""
    try:
        return parse_response_head(data)
    except MalformedResponse:
        return None


def _check_parsed(data: bytes, parsed: ResponseHead) -> None:
    """The invariants of a head that parsed."""
    if not 100 <= parsed.status <= 999:
        raise AssertionError(f"status {parsed.status} out of 100..999 for {data!r}")
    if parsed.chunked and parsed.content_length is not None:
        raise AssertionError(f"chunked with a Content-Length: {data!r}")
    if head_length(data) != len(data) or head_length(data + b"body") != len(data):
        raise AssertionError(f"head_length does not delimit a parsed head: {data!r}")


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any exception but MalformedResponse is a finding."""
    parsed = _outcome(data)
    if parsed is not None:
        _check_parsed(data, parsed)
    try:
        length = head_length(data)
    except MalformedResponse:
        if len(data) < MAX_HEAD_BYTES:
            raise
        return
    if length == 0:
        if parsed is not None or b"\r\n\r\n" in data:
            raise AssertionError(f"head_length missed a head: {data!r}")
        return
    head = data[:length]
    if not head.endswith(b"\r\n\r\n") or head_length(head) != length:
        raise AssertionError(f"head_length is not stable on its own head: {data!r}")
    other_tail = b"\r\n\r\n" + data[length:][::-1]
    cut = head_length(bytearray(data) + b"\r\n\r\ntrailing", length)
    if head_length(head + other_tail) != length or cut != length:
        raise AssertionError(f"the bytes after the head move its end: {data!r}")
    prefix = _outcome(head)
    if prefix is not None:
        _check_parsed(head, prefix)
    if length < len(data) and parsed is not None:
        raise AssertionError(f"bytes after the head were accepted: {data!r}")
    if length == len(data) and parsed != prefix:
        raise AssertionError(f"the same head parsed two ways: {data!r}")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits of ``data`` (:func:`harness.mutate` over this target's corpus)."""
    return harness.mutate(data, rng, SEEDS, _TOKENS)


def run_random(iterations: int = 20_000, seed: int = 0) -> int:
    """The fallback fuzzer: the seed corpus and each seed's head alone, then ``iterations``
    mutations of the seeds; returns inputs run.  A finding is printed to stderr with its input,
    then raised."""
    return harness.run_random(
        test_one_input,
        SEEDS,
        _TOKENS,
        iterations,
        seed,
        extra=[head[: head_length(head)] for head in SEEDS],
    )


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 20_000)
