"""Tests of the strict HTTP/1.x response head parser (:mod:`ppsp.codecs.httphead`, RFC 9112).

Examples, refusals (only MalformedResponse may escape), the framing helper ``head_length``, and
hypothesis properties: round trips of generated heads, and fuzzing with arbitrary and mutated
bytes.  ``PPSP_HTTPHEAD_EXAMPLES`` raises the number of hypothesis examples for a long run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.httphead import (
    MAX_CONTENT_LENGTH,
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
    ResponseHead,
    head_length,
    parse_response_head,
    retry_after_seconds,
)
from ppsp.errors import MalformedResponse

# PPSP_HTTPHEAD_EXAMPLES raises the number of examples for a long fuzzing run.
SETTINGS = settings(
    max_examples=int(os.environ.get("PPSP_HTTPHEAD_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

AIOHTTP_200 = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Length: 5\r\n"
    b"Date: Mon, 03 Jun 2024 10:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.9.5\r\n"
    b"\r\n"
)


def head(status_line: bytes, *fields: bytes) -> bytes:
    """A response head from a status line and whole field lines (without their CRLF)."""
    return b"".join(line + b"\r\n" for line in (status_line, *fields)) + b"\r\n"


def ok(*fields: bytes) -> bytes:
    return head(b"HTTP/1.1 200 OK", *fields)


# --- examples ----------------------------------------------------------------------------------


def test_aiohttp_answer() -> None:
    parsed = parse_response_head(AIOHTTP_200)
    assert parsed == ResponseHead(
        minor_version=1,
        status=200,
        reason="OK",
        headers=(
            ("content-type", "application/octet-stream"),
            ("content-length", "5"),
            ("date", "Mon, 03 Jun 2024 10:00:00 GMT"),
            ("server", "Python/3.11 aiohttp/3.9.5"),
        ),
        content_length=5,
        chunked=False,
        keep_alive=True,
    )
    body = b"hello"
    assert head_length(AIOHTTP_200 + body) == len(AIOHTTP_200)


def test_http10_closes_by_default() -> None:
    parsed = parse_response_head(head(b"HTTP/1.0 200 OK", b"Content-Length: 3"))
    assert parsed.minor_version == 0
    assert parsed.content_length == 3
    assert parsed.keep_alive is False


@pytest.mark.parametrize("value", [b"keep-alive", b"Keep-Alive", b"foo, keep-alive"])
def test_http10_keep_alive(value: bytes) -> None:
    parsed = parse_response_head(head(b"HTTP/1.0 200 OK", b"Connection: " + value))
    assert parsed.minor_version == 0
    assert parsed.keep_alive is True


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close", b"upgrade,close"])
def test_http11_connection_close(value: bytes) -> None:
    parsed = parse_response_head(ok(b"Connection: " + value, b"Content-Length: 0"))
    assert parsed.keep_alive is False
    assert parsed.content_length == 0


def test_http11_keep_alive_by_default() -> None:
    assert parse_response_head(ok(b"Connection: keep-alive")).keep_alive is True
    assert parse_response_head(ok()).keep_alive is True


def test_http10_close_wins_over_keep_alive() -> None:
    parsed = parse_response_head(head(b"HTTP/1.0 200 OK", b"Connection: keep-alive, close"))
    assert parsed.keep_alive is False


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 ", b"HTTP/1.1 200"])
def test_empty_reason(status_line: bytes) -> None:
    parsed = parse_response_head(head(status_line, b"Content-Length: 1"))
    assert (parsed.status, parsed.reason, parsed.content_length) == (200, "", 1)


def test_reason_keeps_its_spaces_and_obs_text() -> None:
    parsed = parse_response_head(head(b"HTTP/1.1 404 Not  Found \xe9"))
    assert parsed.status == 404
    assert parsed.reason == "Not  Found \xe9"


@pytest.mark.parametrize(
    "fields",
    [
        (b"Content-Length: 5, 5",),
        (b"Content-Length: 5,5 ,  5",),
        (b"Content-Length: 5", b"Content-Length: 5"),
        (b"Content-Length: 5", b"content-length:5, 5"),
    ],
)
def test_repeated_identical_content_length(fields: tuple[bytes, ...]) -> None:
    parsed = parse_response_head(ok(*fields))
    assert parsed.content_length == 5
    assert len(parsed.headers) == len(fields)


def test_content_length_bounds() -> None:
    assert parse_response_head(ok(b"Content-Length: 0")).content_length == 0
    top = str(MAX_CONTENT_LENGTH).encode()
    assert parse_response_head(ok(b"Content-Length: " + top)).content_length == MAX_CONTENT_LENGTH
    assert parse_response_head(ok(b"Content-Length: 007")).content_length == 7


def test_no_content_length() -> None:
    parsed = parse_response_head(ok(b"Server: x"))
    assert parsed.content_length is None
    assert parsed.chunked is False


def test_header_lookup_is_case_insensitive() -> None:
    parsed = parse_response_head(ok(b"X-Thing: first", b"x-THING: second", b"Server: s"))
    assert parsed.headers == (("x-thing", "first"), ("x-thing", "second"), ("server", "s"))
    for name in ("x-thing", "X-Thing", "X-THING"):
        assert parsed.header(name) == "first"
    assert parsed.header("SERVER") == "s"
    assert parsed.header("missing") is None


def test_values_are_stripped_of_optional_whitespace() -> None:
    parsed = parse_response_head(ok(b"A:\t  x \t y\t ", b"B:", b"C:   "))
    assert parsed.headers == (("a", "x \t y"), ("b", ""), ("c", ""))


@pytest.mark.parametrize(
    "fields",
    [
        (b"Transfer-Encoding: chunked",),
        (b"Transfer-Encoding: Chunked",),
        (b"Transfer-Encoding: gzip, chunked",),
        (b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"),
    ],
)
def test_chunked(fields: tuple[bytes, ...]) -> None:
    parsed = parse_response_head(ok(*fields))
    assert parsed.chunked is True
    assert parsed.content_length is None


@pytest.mark.parametrize("minor", [0, 1])
@pytest.mark.parametrize("status", [100, 204, 304, 404, 599])
def test_status_and_version(minor: int, status: int) -> None:
    parsed = parse_response_head(head(b"HTTP/1.%d %d Whatever" % (minor, status)))
    assert (parsed.minor_version, parsed.status, parsed.reason) == (minor, status, "Whatever")


def test_bytearray_input() -> None:
    data = bytearray(AIOHTTP_200 + b"hello")
    assert head_length(data) == len(AIOHTTP_200)
    assert parse_response_head(AIOHTTP_200).content_length == 5


# --- refusals ----------------------------------------------------------------------------------

REFUSED = {
    "http2": head(b"HTTP/2 200 OK"),
    "http2.0": head(b"HTTP/2.0 200 OK"),
    "http0.9": head(b"HTTP/0.9 200 OK"),
    "lowercase http": head(b"http/1.1 200 OK"),
    "mixed-case http": head(b"Http/1.1 200 OK"),
    "two-digit status": head(b"HTTP/1.1 20 OK"),
    "one-digit status": head(b"HTTP/1.1 2 OK"),
    "no status": head(b"HTTP/1.1  OK"),
    "status not digits": head(b"HTTP/1.1 2x0 OK"),
    "no space after version": head(b"HTTP/1.1200 OK"),
    "two spaces after version": head(b"HTTP/1.1  200 OK"),
    "tab after version": head(b"HTTP/1.1\t200 OK"),
    "version only": head(b"HTTP/1.1"),
    "leading space": head(b" HTTP/1.1 200 OK"),
    "leading empty line": b"\r\n" + ok(),
    "empty status line": head(b""),
    "nul in reason": head(b"HTTP/1.1 200 O\x00K"),
    "cr in reason": head(b"HTTP/1.1 200 O\rK"),
    "lf in reason": head(b"HTTP/1.1 200 O\nK"),
    "bare lf line ending": b"HTTP/1.1 200 OK\nServer: x\r\n\r\n",
    "field without colon": ok(b"Server x"),
    "empty field name": ok(b": x"),
    "space before colon": ok(b"Server : x"),
    "tab before colon": ok(b"Server\t: x"),
    "space before colon on content-length": ok(b"Content-Length : 5"),
    "non-token name": ok(b"Ser(ver): x"),
    "non-ascii name": ok(b"Serv\xe9r: x"),
    "obs-fold space": ok(b"Server: a", b" b"),
    "obs-fold tab": ok(b"Server: a", b"\tb"),
    "obs-fold first field": ok(b" Server: a"),
    "empty line inside head": b"HTTP/1.1 200 OK\r\n\r\nServer: x\r\n\r\n",
    "nul in value": ok(b"Server: a\x00b"),
    "soh in value": ok(b"Server: a\x01b"),
    "unit separator in value": ok(b"Server: a\x1fb"),
    "del in value": ok(b"Server: a\x7fb"),
    "bare cr in value": ok(b"Server: a\rb"),
    "bare lf in value": ok(b"Server: a\nb"),
    "lf ending a value": ok(b"Server: a\n"),
    "conflicting content-length list": ok(b"Content-Length: 5, 6"),
    "conflicting content-length fields": ok(b"Content-Length: 5", b"Content-Length: 6"),
    "negative content-length": ok(b"Content-Length: -1"),
    "signed content-length": ok(b"Content-Length: +5"),
    "hex content-length": ok(b"Content-Length: 0x10"),
    "decimal content-length": ok(b"Content-Length: 5.0"),
    "spaced digits content-length": ok(b"Content-Length: 5 5"),
    "empty content-length": ok(b"Content-Length:"),
    "empty content-length item": ok(b"Content-Length: 5,"),
    "letters content-length": ok(b"Content-Length: five"),
    "huge content-length": ok(b"Content-Length: 99999999999999999999"),
    "content-length just out of bounds": ok(b"Content-Length: %d" % (MAX_CONTENT_LENGTH + 1)),
    "14-digit content-length": ok(b"Content-Length: 10000000000000"),
    "transfer-encoding then content-length": ok(
        b"Transfer-Encoding: chunked", b"Content-Length: 5"
    ),
    "content-length then transfer-encoding": ok(
        b"Content-Length: 5", b"Transfer-Encoding: chunked"
    ),
    "transfer-encoding gzip": ok(b"Transfer-Encoding: gzip"),
    "transfer-encoding chunked then gzip": ok(b"Transfer-Encoding: chunked, gzip"),
    "transfer-encoding chunked then gzip fields": ok(
        b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"
    ),
    "transfer-encoding identity": ok(b"Transfer-Encoding: identity"),
    "too many fields": ok(*(b"X-%d: v" % i for i in range(MAX_HEADER_FIELDS + 1))),
    "no end": b"HTTP/1.1 200 OK\r\nServer: x\r\n",
    "only one crlf at the end": b"HTTP/1.1 200 OK\r\n",
    "lf lf end": b"HTTP/1.1 200 OK\n\n",
    "body after the head": ok(b"Content-Length: 5") + b"hello",
    "empty input": b"",
    "end only": b"\r\n\r\n",
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_refused(data: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_response_head(data)


def test_refused_heads_are_otherwise_well_formed() -> None:
    # Guards the refusal table: its base heads parse, so each refusal is due to its own defect.
    assert parse_response_head(ok(b"Server: ab", b"Content-Length: 5")).content_length == 5
    assert parse_response_head(ok(*(b"X-%d: v" % i for i in range(MAX_HEADER_FIELDS))))


def _head_of_length(length: int) -> bytes:
    start = b"HTTP/1.1 200 OK\r\nX-Pad: "
    end = b"\r\n\r\n"
    data = start + b"a" * (length - len(start) - len(end)) + end
    assert len(data) == length
    return data


def test_head_at_the_size_bound_is_accepted() -> None:
    data = _head_of_length(MAX_HEAD_BYTES)
    assert head_length(data + b"body") == MAX_HEAD_BYTES
    parsed = parse_response_head(data)
    assert parsed.header("x-pad") == "a" * (MAX_HEAD_BYTES - 28)


def test_head_over_the_size_bound_is_refused_by_both_functions() -> None:
    data = _head_of_length(MAX_HEAD_BYTES + 1)
    with pytest.raises(MalformedResponse):
        parse_response_head(data)
    with pytest.raises(MalformedResponse):
        head_length(data)
    with pytest.raises(MalformedResponse):
        head_length(data + b"body")


# --- head_length -------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 8, 17, len(AIOHTTP_200) - 2, len(AIOHTTP_200) - 1])
def test_head_length_incomplete(cut: int) -> None:
    assert head_length(AIOHTTP_200[:cut]) == 0
    assert head_length(bytearray(AIOHTTP_200[:cut])) == 0


def test_head_length_with_body() -> None:
    n = len(AIOHTTP_200)
    assert head_length(AIOHTTP_200) == n
    assert head_length(AIOHTTP_200 + b"hello") == n
    # The body may itself contain an empty line: the first one ends the head.
    assert head_length(AIOHTTP_200 + b"\r\n\r\nmore\r\n\r\n") == n


def test_head_length_honours_size() -> None:
    n = len(AIOHTTP_200)
    buffer = bytearray(AIOHTTP_200 + b"hello" + bytes(1000))
    assert head_length(buffer, n - 1) == 0
    assert head_length(buffer, n) == n
    assert head_length(buffer, n + 3) == n
    # Bytes after ``size`` are not looked at: stale bytes of a reused buffer end no head.
    stale = bytearray(b"\r\n\r\n" * 50)
    stale[:10] = AIOHTTP_200[:10]
    assert head_length(stale) == 14
    assert head_length(stale, 14) == 14
    assert head_length(stale, 13) == 0
    assert head_length(stale, 10) == 0
    assert head_length(stale, 0) == 0


def test_head_length_raises_at_the_bound_without_an_end() -> None:
    junk = b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES
    assert head_length(junk, MAX_HEAD_BYTES - 1) == 0
    with pytest.raises(MalformedResponse):
        head_length(junk, MAX_HEAD_BYTES)
    with pytest.raises(MalformedResponse):
        head_length(junk)
    with pytest.raises(MalformedResponse):
        head_length(bytearray(junk), MAX_HEAD_BYTES + 10)
    # An end that only lies beyond the bound does not count.
    with pytest.raises(MalformedResponse):
        head_length(junk + b"\r\n\r\n")


# --- findings (see the reasons) ----------------------------------------------------------------


def _refuses(data: bytes) -> bool:
    try:
        parse_response_head(data)
    except MalformedResponse:
        return True
    return False


@pytest.mark.parametrize(
    "status_line", [b"HTTP/1.1 200OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 200\tOK"]
)
def test_status_code_must_be_followed_by_space(status_line: bytes) -> None:
    assert _refuses(head(status_line))


@pytest.mark.parametrize("status", [b"000", b"099"])
def test_status_below_100_refused(status: bytes) -> None:
    assert _refuses(head(b"HTTP/1.1 " + status + b" X"))


@pytest.mark.parametrize("value", [b"", b" ,"])
def test_empty_transfer_encoding_beside_content_length_refused(value: bytes) -> None:
    assert _refuses(ok(b"Transfer-Encoding:" + value, b"Content-Length: 5"))


def test_http10_transfer_encoding_does_not_keep_alive() -> None:
    data = head(b"HTTP/1.0 200 OK", b"Connection: keep-alive", b"Transfer-Encoding: chunked")
    assert _refuses(data) or parse_response_head(data).keep_alive is False


# --- property: round trip of generated heads ---------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SPECIAL = {"content-length", "transfer-encoding", "connection"}
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))

names = st.text(st.sampled_from(TCHAR), min_size=1, max_size=16).filter(
    lambda name: name.lower() not in SPECIAL
)
values = st.just("") | st.builds(
    lambda first, middle, last: first + middle + last if last else first,
    st.sampled_from(VCHAR),
    st.text(st.sampled_from(VCHAR + " \t"), max_size=30),
    st.sampled_from(VCHAR) | st.just(""),
)
ows = st.sampled_from(["", " ", "\t", "  ", " \t "])
reasons = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


def random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


@dataclass(frozen=True)
class Generated:
    data: bytes
    minor: int
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    content_length: int | None
    keep_alive: bool


@st.composite
def generated_heads(draw: st.DrawFn) -> Generated:
    minor = draw(st.sampled_from([0, 1]))
    status = draw(st.integers(100, 599))
    reason = draw(reasons)
    fields: list[tuple[str, str]] = draw(st.lists(st.tuples(names, values), max_size=12))
    content_length = draw(st.none() | st.integers(0, MAX_CONTENT_LENGTH))
    if content_length is not None:
        fields.append((random_case(draw, "Content-Length"), str(content_length)))
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    if connection is not None:
        fields.append((random_case(draw, "Connection"), random_case(draw, connection)))
    fields = list(draw(st.permutations(fields)))
    if reason or draw(st.booleans()):
        status_line = f"HTTP/1.{minor} {status} {reason}"
    else:
        status_line = f"HTTP/1.{minor} {status}"
    lines = [status_line]
    lines += [f"{name}:{draw(ows)}{value}{draw(ows)}" for name, value in fields]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    keep_alive = connection != "close" and (minor == 1 or connection == "keep-alive")
    return Generated(
        data=data,
        minor=minor,
        status=status,
        reason=reason,
        headers=tuple((name.lower(), value) for name, value in fields),
        content_length=content_length,
        keep_alive=keep_alive,
    )


@SETTINGS
@given(generated_heads(), st.binary(max_size=64))
def test_round_trip(generated: Generated, body: bytes) -> None:
    data = generated.data
    assert head_length(data + body) == len(data)
    assert head_length(bytearray(data + body), len(data)) == len(data)
    assert head_length(data[:-1]) == 0
    parsed = parse_response_head(data)
    assert parsed.minor_version == generated.minor
    assert parsed.status == generated.status
    assert parsed.reason == generated.reason
    assert parsed.headers == generated.headers
    assert parsed.content_length == generated.content_length
    assert parsed.keep_alive is generated.keep_alive
    assert parsed.chunked is False
    for name, _ in generated.headers:
        first = next(v for n, v in generated.headers if n == name)
        assert parsed.header(name.upper()) == first
        assert parsed.header(name) == first


# --- property: only MalformedResponse escapes --------------------------------------------------


def check(data: bytes) -> None:
    """Parse and frame ``data``; anything but MalformedResponse escapes and fails the test."""
    try:
        parsed = parse_response_head(data)
    except MalformedResponse:
        parsed = None
    if parsed is not None:
        # A whole head ends at its first empty line, so head_length delimits exactly it.
        assert head_length(data) == len(data)
        assert head_length(data + b"tail") == len(data)
        assert all(name == name.lower() for name, _ in parsed.headers)
        assert parsed.content_length is None or 0 <= parsed.content_length <= MAX_CONTENT_LENGTH
        assert not (parsed.chunked and parsed.content_length is not None)
    try:
        length = head_length(data)
    except MalformedResponse:
        assert len(data) >= MAX_HEAD_BYTES
        return
    if length:
        assert data[length - 4 : length] == b"\r\n\r\n"
        assert head_length(data[:length]) == length
        if length < len(data):
            # Only the exact head parses: anything after its end is refused.
            with pytest.raises(MalformedResponse):
                parse_response_head(data)
            check(data[:length])
    else:
        assert b"\r\n\r\n" not in data
        assert parsed is None


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_a_status_line(data: bytes) -> None:
    check(b"HTTP/1.1 200 OK\r\n" + data)
    check(b"HTTP/1.1 200 OK\r\n" + data + b"\r\n\r\n")


FRAGMENTS = [
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
    b"99999999999999999999",
    b"Content-Length: 5\r\n",
    b"Content-Length: 6\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"HTTP/1.1 ",
]


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(generated_heads()).data + draw(st.just(b"") | st.binary(max_size=16)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
        if action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[position:position] = draw(st.sampled_from(FRAGMENTS) | st.binary(max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        else:
            start = draw(st.integers(0, len(data)))
            data[position:position] = data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


@SETTINGS
@given(mutated_heads())
def test_mutated_heads(data: bytes) -> None:
    check(data)


def test_check_catches_other_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    # The property helper must not swallow foreign exceptions.
    def broken(data: bytes) -> ResponseHead:
        raise KeyError(data)

    monkeypatch.setitem(globals(), "parse_response_head", broken)
    with pytest.raises(KeyError):
        check(b"HTTP/1.1 200 OK\r\n\r\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("120", 120.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("9" * 10, None),
        ("\uff13", None),
    ],
)
def test_retry_after_reads_delay_seconds_only(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected
