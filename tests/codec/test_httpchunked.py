"""Tests of the chunked transfer coding's decoder (:mod:`ppsp.codecs.httpchunked`, RFC 9112 7.1).

Examples, refusals (only MalformedResponse may escape), and hypothesis properties: any body cut
into any chunks and fed in any pieces decodes to itself, and arbitrary bytes raise nothing but
MalformedResponse.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_targets import load_target
from ppsp.codecs.httpchunked import MAX_CHUNK_LINE_BYTES, ChunkedDecoder
from ppsp.errors import MalformedResponse
from ppsp.wire.fields import MAX_HEAD_BYTES


def decode(*pieces: bytes) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder()
    out = b"".join(part for piece in pieces for part in decoder.feed(piece))
    return out, decoder


def test_a_body_in_chunks_with_extensions_and_trailers() -> None:
    body, decoder = decode(
        b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE ; a\r\n in\r\n\r\nchunks.\r\n0\r\n"
        b"Expires: never\r\n\r\n"
    )
    assert body == b"Wikipedia in\r\n\r\nchunks."
    assert decoder.done and decoder.extra_bytes == 0


def test_a_piece_fed_whole_is_not_copied() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"a\r\n")
    data = b"0123456789"
    assert decoder.feed(data)[0] is data


def test_bytes_after_the_end_are_counted_not_decoded() -> None:
    body, decoder = decode(b"1\r\nx\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert body == b"x" and decoder.done and decoder.extra_bytes == 17


def test_not_done_until_the_trailer_section_ends() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\n")
    assert not decoder.done
    decoder.feed(b"\r\n")
    assert decoder.done


@pytest.mark.parametrize(
    "data",
    [
        b"g\r\n",  # not hexadecimal
        b"\r\n",  # no size
        b"1\nx\r\n",  # a bare LF
        b"1 \r\nx\r\n",  # white space without an extension
        b"-1\r\n",
        b"1\r\nxy\r\n",  # more data than the size says
        b"1\r\nx\n",
        b"11111111111111111\r\n",  # 17 hex digits
        b"10000000001\r\n",  # over MAX_CONTENT_LENGTH
        b"0\r\nnot a field\r\n",
        b"0\r\n: no name\r\n",
        b"1;\x00\r\n",  # a control character in an extension
        b"1" + b" " * MAX_CHUNK_LINE_BYTES,  # an endless size line
        b"0\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 6 + 1),  # an endless trailer section
        b"0\r\n" + b"X: y\r\n" * 101,  # too many trailer fields
    ],
)
def test_what_is_not_the_coding_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedResponse):
        decode(data)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """A body, its chunked coding (random chunk sizes, extensions, trailers) and cut points."""
    body = draw(st.binary(max_size=2000))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    coded = b""
    for chunk in chunks:
        if not chunk:
            continue
        size = b"%x" % len(chunk)
        if draw(st.booleans()):
            size = size.upper()
        extension = draw(st.sampled_from([b"", b";a", b" ;a=b", b';n="q"']))
        coded += size + extension + b"\r\n" + chunk + b"\r\n"
    trailer = draw(st.sampled_from([b"", b"X-Sum: 1\r\n", b"A: 1\r\nB:\r\n"]))
    coded += b"0\r\n" + trailer + b"\r\n"
    feed_cuts = sorted(draw(st.lists(st.integers(0, len(coded)), max_size=12)))
    return body, coded, feed_cuts


@settings(deadline=None)
@given(chunked_bodies())
def test_any_body_in_any_chunks_fed_in_any_pieces_decodes_to_itself(
    case: tuple[bytes, bytes, list[int]],
) -> None:
    body, coded, cuts = case
    pieces = [coded[a:b] for a, b in zip([0, *cuts], [*cuts, len(coded)], strict=True)]
    decoded, decoder = decode(*pieces)
    assert decoded == body and decoder.done and decoder.extra_bytes == 0


@settings(deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_raise_only_malformed_response(pieces: list[bytes]) -> None:
    decoder = ChunkedDecoder()
    try:
        for piece in pieces:
            decoder.feed(piece)
    except MalformedResponse:
        pass


# -- the fuzz target ---------------------------------------------------------------------------


def _fuzz_target() -> ModuleType:
    return load_target("fuzz_http_chunked")


def test_the_fuzz_targets_seeds_decode_and_a_short_run_finds_nothing() -> None:
    target = _fuzz_target()
    for seed in target.SEEDS:
        _, decoder = decode(seed)
        assert decoder.done
    assert target.run_random(500, seed=1) == 500 + len(target.SEEDS)
