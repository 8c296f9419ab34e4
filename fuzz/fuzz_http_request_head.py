"""Fuzz harness for the strict HTTP/1.x request head parser (:mod:`ppsp.codecs.httphead`).

Properties checked on every input:

* :func:`~ppsp.codecs.httphead.request_head_length` and
  :func:`~ppsp.codecs.httphead.parse_request_head` raise nothing but the
  :class:`~ppsp.errors.HTTPRequestError` kinds, each carrying the status the server answers
  with (400, 413, 414, 431, 501, 505);
* whatever parses has an origin-form path, a version of 1.0 or 1.1, a Host when it is HTTP/1.1,
  a ``Content-Length`` within bounds, and is delimited exactly by ``request_head_length``;
* when ``request_head_length`` finds a head in the input, the bytes after it do not move its end
  (nor do bytes past ``size``), and parsing anything longer than it is refused;
* a server's :class:`~ppsp.http.heads.HeadReader` (kept across inputs, so that the rests of
  heads with credentials are found again) gives the parser's result or its refusal.

Run with atheris when it is installed (``python fuzz/fuzz_http_request_head.py [libFuzzer
flags]``); otherwise a bounded random-mutation loop over valid seed requests runs
(``python fuzz/fuzz_http_request_head.py [iterations] [seed]``).
"""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs.httphead import (
    MAX_CONTENT_LENGTH,
    MAX_HEAD_BYTES,
    MAX_REQUEST_LINE_BYTES,
    RequestHead,
    parse_request_head,
    request_head_length,
)
from ppsp.errors import HTTPRequestError
from ppsp.http.heads import HeadReader

STATUSES = frozenset({400, 413, 414, 431, 501, 505})
"""The statuses a refused request head may be answered with."""

SEEDS: tuple[bytes, ...] = (
    b"GET /swarm/ab12/chunk/main/7 HTTP/1.1\r\nHost: 127.0.0.1:7001\r\n"
    b"Accept-Encoding: identity\r\nPPSP-Peer-ID: 0123abcd\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: [::1]:7001\r\nContent-Type: text/xml\r\n"
    b"Content-Length: 5\r\n\r\nhello",
    b"GET /swarm/ab12/description HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /a%2Fb/c?x=1&y=/? HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n",
    b"GET http://peer:80/x HTTP/1.1\r\nHost: other\r\nContent-Length: 0, 0\r\n\r\n",
    b"PUT /up HTTP/1.1\r\nHost: peer\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"\r\nGET / HTTP/1.1\r\nhost:peer\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer eyJ0.e30.c2ln\r\n"
    b"Content-Length: 2\r\n\r\n{}",
)
"""Requests of several shapes (some followed by a body, one after an empty line): the
mutation loop's corpus."""

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
    b"%",
    b"%ff",
    b"%2F",
    b"?",
    b"/",
    b"*",
    b"http://",
    b"-1",
    b"99999999999999999999",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b" HTTP/2.0",
    b"Host: a\r\n",
    b"Host: [::1]:1\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 6\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b"Authorization: Bearer x\r\n",
    b"\r\nAuthorization:",
    b"authorization: a\r\n",
)

_READER = HeadReader()
"""A server's memory of heads, kept from one input to the next."""


def _outcome(data: bytes) -> RequestHead | None:
    """The parse of ``data``, or None when it is refused; other exceptions escape."""
    try:
        return parse_request_head(data)
    except HTTPRequestError as exc:
        if exc.status not in STATUSES:
            raise AssertionError(f"status {exc.status} for {data!r}") from exc
        return None


def _check_reader(head: bytes, parsed: RequestHead | None) -> None:
    """The reader's parse of ``head`` is the parser's (``parsed``, None when refused): the same
    request line and framing, and fields that hold the parser's in order (the reader's head
    may lack the credentials field, which its fields hold)."""
    try:
        read, headers = _READER.parse(head)
    except HTTPRequestError:
        if parsed is not None:
            raise AssertionError(
                f"the head reader refuses what the parser reads: {head!r}"
            ) from None
        return
    if (
        parsed is None
        or replace(read, headers=()) != replace(parsed, headers=())
        or headers.fields != parsed.headers
        or headers.get("authorization") != parsed.header("authorization")
    ):
        raise AssertionError(f"the head reader and the parser differ: {head!r}")


def _check_parsed(data: bytes, parsed: RequestHead) -> None:
    """The invariants of a head that parsed."""
    if not parsed.path.startswith("/") or not parsed.segments:
        raise AssertionError(f"a path that is not absolute: {data!r}")
    if parsed.minor_version not in (0, 1):
        raise AssertionError(f"version 1.{parsed.minor_version}: {data!r}")
    if parsed.minor_version == 1 and parsed.host is None:
        raise AssertionError(f"an HTTP/1.1 request without a host: {data!r}")
    if not 0 <= parsed.content_length <= MAX_CONTENT_LENGTH:
        raise AssertionError(f"Content-Length out of bounds: {data!r}")
    if request_head_length(data) != len(data) or request_head_length(data + b"x") != len(data):
        raise AssertionError(f"request_head_length does not delimit a parsed head: {data!r}")


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; anything but a request error is a finding."""
    parsed = _outcome(data)
    if parsed is not None:
        _check_parsed(data, parsed)
    try:
        length = request_head_length(data)
    except HTTPRequestError as exc:
        if exc.status not in (414, 431) or len(data) <= MAX_REQUEST_LINE_BYTES:
            raise
        return
    if length == 0:
        if parsed is not None or b"\r\n\r\n" in data[:MAX_HEAD_BYTES]:
            raise AssertionError(f"request_head_length missed a head: {data!r}")
        return
    head = data[:length]
    if not head.endswith(b"\r\n\r\n") or request_head_length(head) != length:
        raise AssertionError(f"request_head_length is not stable on its own head: {data!r}")
    other_tail = b"\r\n\r\n" + data[length:][::-1]
    cut = request_head_length(bytearray(data) + b"\r\n\r\ntrailing", length)
    if request_head_length(head + other_tail) != length or cut != length:
        raise AssertionError(f"the bytes after the head move its end: {data!r}")
    prefix = _outcome(head)
    if prefix is not None:
        _check_parsed(head, prefix)
    _check_reader(head, prefix)
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
        extra=[data[: data.find(b"\r\n\r\n", 2) + 4] for data in SEEDS],
    )


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 20_000)
