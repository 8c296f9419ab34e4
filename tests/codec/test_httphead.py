"""Tests of the strict HTTP/1.x head parsers (:mod:`ppsp.codecs.httphead`, RFC 9112).

Responses: examples, refusals (only MalformedResponse may escape), the framing helper
``head_length``, and hypothesis properties: round trips of generated heads, and fuzzing with
arbitrary and mutated bytes.  Requests the same way: examples, refusals each with the error
(and so the HTTP status) it must raise, the bounds of ``request_head_length``, round trips of
generated requests, and fuzzing in which only the request errors may escape.
``PPSP_HTTPHEAD_EXAMPLES`` raises the number of hypothesis examples for a long run.
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
    MAX_REQUEST_LINE_BYTES,
    RequestHead,
    ResponseHead,
    head_length,
    parse_request_head,
    parse_response_head,
    request_head_length,
    retry_after_seconds,
)
from ppsp.errors import (
    HTTPRequestError,
    HTTPVersionNotSupported,
    MalformedRequest,
    MalformedResponse,
    RequestBodyTooLarge,
    RequestHeadTooLarge,
    RequestNotImplemented,
    RequestTargetTooLong,
)

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


# === request heads (the peer's server) =========================================================

STATUS_OF = {
    MalformedRequest: 400,
    RequestBodyTooLarge: 413,
    RequestTargetTooLong: 414,
    RequestHeadTooLarge: 431,
    RequestNotImplemented: 501,
    HTTPVersionNotSupported: 505,
}
"""Every error the request parser may raise, with the status it carries."""


def request(request_line: bytes, *fields: bytes) -> bytes:
    """A request head from a request line and whole field lines (without their CRLF)."""
    return b"".join(line + b"\r\n" for line in (request_line, *fields)) + b"\r\n"


def get(*fields: bytes) -> bytes:
    return request(b"GET / HTTP/1.1", b"Host: peer", *fields)


def test_error_classes_carry_their_status() -> None:
    for cls, status in STATUS_OF.items():
        assert cls.status == status
        assert issubclass(cls, HTTPRequestError)
        assert cls.reason


def test_a_chunk_request_of_the_threaded_client() -> None:
    data = request(
        b"GET /swarm/ab12/chunk/main/7 HTTP/1.1",
        b"Host: 127.0.0.1:7001",
        b"Accept-Encoding: identity",
        b"PPSP-Peer-ID: 0123abcd",
    )
    parsed = parse_request_head(data)
    assert parsed == RequestHead(
        method="GET",
        target="/swarm/ab12/chunk/main/7",
        path="/swarm/ab12/chunk/main/7",
        query=None,
        segments=("swarm", "ab12", "chunk", "main", "7"),
        minor_version=1,
        headers=(
            ("host", "127.0.0.1:7001"),
            ("accept-encoding", "identity"),
            ("ppsp-peer-id", "0123abcd"),
        ),
        host="127.0.0.1:7001",
        content_length=0,
        keep_alive=True,
        expect_continue=False,
    )
    assert parsed.header("PPSP-PEER-ID") == "0123abcd"
    assert parsed.header("missing") is None
    assert request_head_length(data + b"next") == len(data)


def test_a_peer_protocol_post() -> None:
    parsed = parse_request_head(
        request(
            b"POST / HTTP/1.1",
            b"Host: [::1]:7001",
            b"Content-Type: text/xml",
            b"Content-Length: 321",
            b"Connection: keep-alive",
        )
    )
    assert (parsed.method, parsed.path, parsed.segments) == ("POST", "/", ("",))
    assert (parsed.host, parsed.content_length, parsed.keep_alive) == ("[::1]:7001", 321, True)


@pytest.mark.parametrize(
    ("target", "path", "query", "segments"),
    [
        (b"/", "/", None, ("",)),
        (b"/?", "/", "", ("",)),
        (b"/a/b/", "/a/b/", None, ("a", "b", "")),
        (b"/a//b", "/a//b", None, ("a", "", "b")),
        (b"/a%2Fb/c", "/a%2Fb/c", None, ("a/b", "c")),
        (b"/%C3%A9t%c3%a9", "/%C3%A9t%c3%a9", None, ("\xe9t\xe9",)),
        (b"/x?a=1&b=/?c", "/x", "a=1&b=/?c", ("x",)),
        (b"/:@!$&'()*+,;=-._~", "/:@!$&'()*+,;=-._~", None, (":@!$&'()*+,;=-._~",)),
        (b"http://peer:80", "/", None, ("",)),
        (b"HTTP://peer/a?b", "/a", "b", ("a",)),
    ],
)
def test_targets(target: bytes, path: str, query: str | None, segments: tuple[str, ...]) -> None:
    parsed = parse_request_head(request(b"GET " + target + b" HTTP/1.1", b"Host: other"))
    assert (parsed.target, parsed.path, parsed.query, parsed.segments) == (
        target.decode(),
        path,
        query,
        segments,
    )


def test_an_absolute_target_names_the_host() -> None:
    parsed = parse_request_head(request(b"GET http://peer:7/x HTTP/1.1", b"Host: other"))
    assert parsed.host == "peer:7"


@pytest.mark.parametrize(
    ("version", "fields", "keep_alive"),
    [
        (b"1.1", (), True),
        (b"1.1", (b"Connection: close",), False),
        (b"1.1", (b"Connection: keep-alive, Close",), False),
        (b"1.0", (), False),
        (b"1.0", (b"Connection: Keep-Alive",), True),
        (b"1.0", (b"Connection: keep-alive", b"Connection: close"), False),
    ],
)
def test_keep_alive(version: bytes, fields: tuple[bytes, ...], keep_alive: bool) -> None:
    parsed = parse_request_head(request(b"GET / HTTP/" + version, b"Host: a", *fields))
    assert parsed.keep_alive is keep_alive


def test_http10_needs_no_host() -> None:
    parsed = parse_request_head(request(b"GET / HTTP/1.0"))
    assert (parsed.minor_version, parsed.host) == (0, None)


def test_a_later_http1_minor_version_is_read_as_http11() -> None:
    assert parse_request_head(request(b"GET / HTTP/1.7", b"Host: a")).minor_version == 1


@pytest.mark.parametrize(
    ("version", "fields", "expected"),
    [
        (b"1.1", (b"Expect: 100-continue",), True),
        (b"1.1", (b"Expect: 100-Continue",), True),
        (b"1.1", (b"Expect: something",), False),
        (b"1.1", (), False),
        (b"1.0", (b"Expect: 100-continue",), False),
    ],
)
def test_expect_continue(version: bytes, fields: tuple[bytes, ...], expected: bool) -> None:
    head = request(b"POST / HTTP/" + version, b"Host: a", b"Content-Length: 1", *fields)
    assert parse_request_head(head).expect_continue is expected


@pytest.mark.parametrize(
    "host",
    [b"", b"peer", b"peer:", b"peer:80", b"10.0.0.1:7", b"[::1]", b"[::ffff:1.2.3.4]:9", b"a%41"],
)
def test_host_forms(host: bytes) -> None:
    assert parse_request_head(request(b"GET / HTTP/1.1", b"Host: " + host)).host == host.decode()


@pytest.mark.parametrize(
    ("fields", "length"),
    [
        ((), 0),
        ((b"Content-Length: 0",), 0),
        ((b"Content-Length: 5, 5",), 5),
        ((b"Content-Length: 5", b"content-length: 5"), 5),
        ((b"Content-Length: 000000000000000000000007",), 7),
        # More zeros than CPython turns into an integer at once (4,300 digits).
        ((b"Content-Length: " + b"0" * 5000 + b"7",), 7),
        ((b"Content-Length: %d" % MAX_CONTENT_LENGTH,), MAX_CONTENT_LENGTH),
    ],
)
def test_content_length(fields: tuple[bytes, ...], length: int) -> None:
    assert parse_request_head(get(*fields)).content_length == length


LONG_LINE = b"GET /" + b"a" * (MAX_REQUEST_LINE_BYTES - 14) + b" HTTP/1.1"

REQUEST_REFUSED: dict[str, tuple[bytes, type[HTTPRequestError]]] = {
    "empty": (b"\r\n\r\n", MalformedRequest),
    "no end": (b"GET / HTTP/1.1\r\nHost: a\r\n", MalformedRequest),
    "body after the head": (get() + b"x", MalformedRequest),
    "leading empty line": (b"\r\n" + get(), MalformedRequest),
    "leading space": (b" " + get(), MalformedRequest),
    "lower-case http": (request(b"GET / http/1.1", b"Host: a"), MalformedRequest),
    "no version": (request(b"GET /", b"Host: a"), MalformedRequest),
    "two-digit version": (request(b"GET / HTTP/1.10", b"Host: a"), MalformedRequest),
    "http/2 without minor": (request(b"GET / HTTP/2", b"Host: a"), MalformedRequest),
    "tab separator": (request(b"GET\t/ HTTP/1.1", b"Host: a"), MalformedRequest),
    "two spaces": (request(b"GET  / HTTP/1.1", b"Host: a"), MalformedRequest),
    "trailing space": (request(b"GET / HTTP/1.1 ", b"Host: a"), MalformedRequest),
    "non-token method": (request(b"G(T / HTTP/1.1", b"Host: a"), MalformedRequest),
    "empty method": (request(b" / HTTP/1.1", b"Host: a"), MalformedRequest),
    "relative target": (request(b"GET a/b HTTP/1.1", b"Host: a"), MalformedRequest),
    "asterisk target": (request(b"OPTIONS * HTTP/1.1", b"Host: a"), MalformedRequest),
    "authority target": (request(b"CONNECT a:1 HTTP/1.1", b"Host: a"), MalformedRequest),
    "https target": (request(b"GET https://a/ HTTP/1.1", b"Host: a"), MalformedRequest),
    "absolute target without host": (
        request(b"GET http:/// HTTP/1.1", b"Host: a"),
        MalformedRequest,
    ),
    "absolute target with userinfo": (
        request(b"GET http://u@a/ HTTP/1.1", b"Host: a"),
        MalformedRequest,
    ),
    "fragment": (request(b"GET /a#b HTTP/1.1", b"Host: a"), MalformedRequest),
    "bad escape": (request(b"GET /a%4 HTTP/1.1", b"Host: a"), MalformedRequest),
    "bad escape digits": (request(b"GET /a%zz HTTP/1.1", b"Host: a"), MalformedRequest),
    "escape not utf-8": (request(b"GET /a%ff HTTP/1.1", b"Host: a"), MalformedRequest),
    "quote in target": (request(b'GET /a"b HTTP/1.1', b"Host: a"), MalformedRequest),
    "brace in target": (request(b"GET /{x} HTTP/1.1", b"Host: a"), MalformedRequest),
    "obs-text in target": (request(b"GET /\xe9 HTTP/1.1", b"Host: a"), MalformedRequest),
    "nul in target": (request(b"GET /\x00 HTTP/1.1", b"Host: a"), MalformedRequest),
    "no host": (request(b"GET / HTTP/1.1"), MalformedRequest),
    "two hosts": (get(b"Host: b"), MalformedRequest),
    "two hosts in http/1.0": (request(b"GET / HTTP/1.0", b"Host: a", b"Host: b"), MalformedRequest),
    "host with space": (request(b"GET / HTTP/1.1", b"Host: a b"), MalformedRequest),
    "host with path": (request(b"GET / HTTP/1.1", b"Host: a/b"), MalformedRequest),
    "host with userinfo": (request(b"GET / HTTP/1.1", b"Host: u@a"), MalformedRequest),
    "host with bad port": (request(b"GET / HTTP/1.1", b"Host: a:x"), MalformedRequest),
    "field without colon": (get(b"Server x"), MalformedRequest),
    "space before colon": (get(b"Server : x"), MalformedRequest),
    "space before colon on host": (request(b"GET / HTTP/1.1", b"Host : a"), MalformedRequest),
    "obs-fold": (get(b"X: a", b" b"), MalformedRequest),
    "nul in value": (get(b"X: a\x00b"), MalformedRequest),
    "bare cr in value": (get(b"X: a\rb"), MalformedRequest),
    "bare lf line end": (b"GET / HTTP/1.1\nHost: a\r\n\r\n", MalformedRequest),
    "conflicting lengths": (get(b"Content-Length: 1, 2"), MalformedRequest),
    "conflicting length fields": (
        get(b"Content-Length: 1", b"Content-Length: 2"),
        MalformedRequest,
    ),
    "negative length": (get(b"Content-Length: -1"), MalformedRequest),
    "signed length": (get(b"Content-Length: +1"), MalformedRequest),
    "empty length": (get(b"Content-Length:"), MalformedRequest),
    "length with a trailing comma": (get(b"Content-Length: 1,"), MalformedRequest),
    "hex length": (get(b"Content-Length: 0x1"), MalformedRequest),
    "length and coding": (
        get(b"Content-Length: 1", b"Transfer-Encoding: chunked"),
        MalformedRequest,
    ),
    "coding and length": (
        get(b"Transfer-Encoding: chunked", b"Content-Length: 1"),
        MalformedRequest,
    ),
    "empty coding": (get(b"Transfer-Encoding:"), MalformedRequest),
    "coding not ending in chunked": (get(b"Transfer-Encoding: chunked, gzip"), MalformedRequest),
    "coding gzip": (get(b"Transfer-Encoding: gzip"), MalformedRequest),
    "coding in http/1.0": (
        request(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"),
        MalformedRequest,
    ),
    "chunked": (get(b"Transfer-Encoding: chunked"), RequestNotImplemented),
    "gzip then chunked": (get(b"Transfer-Encoding: gzip, chunked"), RequestNotImplemented),
    "length over the bound": (
        get(b"Content-Length: %d" % (MAX_CONTENT_LENGTH + 1)),
        RequestBodyTooLarge,
    ),
    "length of 14 digits": (get(b"Content-Length: 10000000000000"), RequestBodyTooLarge),
    "length of 5000 digits": (get(b"Content-Length: " + b"9" * 5000), RequestBodyTooLarge),
    "length of 14 digits after 5000 zeros": (
        get(b"Content-Length: " + b"0" * 5000 + b"1" * 14),
        RequestBodyTooLarge,
    ),
    "request line too long": (request(LONG_LINE + b"a", b"Host: a"), RequestTargetTooLong),
    "too many fields": (
        get(*(b"X-%d: v" % n for n in range(MAX_HEADER_FIELDS))),
        RequestHeadTooLarge,
    ),
    "head too large": (get(b"X: " + b"v" * MAX_HEAD_BYTES), RequestHeadTooLarge),
    "http/2.0": (request(b"GET / HTTP/2.0", b"Host: a"), HTTPVersionNotSupported),
    "http/0.9": (request(b"GET / HTTP/0.9", b"Host: a"), HTTPVersionNotSupported),
    "http/3.0": (request(b"GET / HTTP/3.0", b"Host: a"), HTTPVersionNotSupported),
}


@pytest.mark.parametrize(("data", "error"), REQUEST_REFUSED.values(), ids=REQUEST_REFUSED.keys())
def test_request_refused(data: bytes, error: type[HTTPRequestError]) -> None:
    with pytest.raises(HTTPRequestError) as caught:
        parse_request_head(data)
    assert type(caught.value) is error


def test_refused_requests_are_otherwise_well_formed() -> None:
    # Guards the table: its bases parse, so each refusal is due to its own defect.
    assert parse_request_head(request(LONG_LINE, b"Host: a")).target.startswith("/aaa")
    assert parse_request_head(get(*(b"X-%d: v" % n for n in range(MAX_HEADER_FIELDS - 1))))
    assert parse_request_head(request(b"GET / HTTP/1.0")).host is None
    assert parse_request_head(get(b"Content-Length: 1")).content_length == 1


def test_request_head_length_bounds() -> None:
    line_bound = MAX_REQUEST_LINE_BYTES + 2  # the line and its CRLF
    unended_line = b"GET /" + b"a" * MAX_REQUEST_LINE_BYTES
    assert request_head_length(unended_line[: line_bound - 1]) == 0
    with pytest.raises(RequestTargetTooLong):
        request_head_length(unended_line[:line_bound] + b"a")
    # A line at the bound is fine, and then the head's own bound applies.
    head = request(LONG_LINE, b"Host: a")
    assert request_head_length(head) == len(head)
    with pytest.raises(RequestTargetTooLong):
        request_head_length(request(LONG_LINE + b"a", b"Host: a"))
    unended_head = b"GET / HTTP/1.1\r\nX: " + b"v" * MAX_HEAD_BYTES
    assert request_head_length(unended_head[: MAX_HEAD_BYTES - 1]) == 0
    with pytest.raises(RequestHeadTooLarge):
        request_head_length(unended_head)
    with pytest.raises(RequestHeadTooLarge):
        request_head_length(bytearray(unended_head), MAX_HEAD_BYTES + 5)
    # Bytes beyond ``size`` are not looked at.
    data = bytearray(get() + get())
    assert request_head_length(data, len(get()) - 1) == 0
    assert request_head_length(data, len(get())) == len(get())


def test_a_head_at_the_bound_is_accepted() -> None:
    start = b"GET / HTTP/1.1\r\nHost: a\r\nX: "
    data = start + b"v" * (MAX_HEAD_BYTES - len(start) - 4) + b"\r\n\r\n"
    assert len(data) == MAX_HEAD_BYTES
    assert request_head_length(data + b"body") == MAX_HEAD_BYTES
    assert parse_request_head(data).header("x") == "v" * (MAX_HEAD_BYTES - len(start) - 4)


# --- property: round trip of generated requests ------------------------------------------------

PCHARS = "ABCXYZabcxyz0189-._~!$&'()*+,;=:@"
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "X-CUSTOM", "M.1~"]
segment_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=8)


def encode_segment(draw: st.DrawFn, text: str) -> str:
    """``text`` as a path segment: plain pchars kept or escaped at random, the rest escaped."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in PCHARS and not draw(st.booleans()):
            out.append(char)
        else:
            out.append(draw(st.sampled_from(["%{:02X}", "%{:02x}"])).format(byte))
    return "".join(out)


@dataclass(frozen=True)
class GeneratedRequest:
    data: bytes
    method: str
    path: str
    query: str | None
    segments: tuple[str, ...]
    minor: int
    headers: tuple[tuple[str, str], ...]
    host: str | None
    content_length: int
    keep_alive: bool


@st.composite
def generated_requests(draw: st.DrawFn) -> GeneratedRequest:
    method = draw(st.sampled_from(METHODS))
    segments = tuple(draw(st.lists(segment_text, min_size=1, max_size=5)))
    path = "/" + "/".join(encode_segment(draw, segment) for segment in segments)
    query = draw(st.none() | st.text(st.sampled_from(PCHARS + "/?"), max_size=20))
    target = path if query is None else f"{path}?{query}"
    minor = draw(st.sampled_from([0, 1]))
    special = SPECIAL | {"host", "expect"}
    fields: list[tuple[str, str]] = draw(
        st.lists(st.tuples(names.filter(lambda n: n.lower() not in special), values), max_size=8)
    )
    host: str | None = draw(st.sampled_from(["peer", "127.0.0.1:7001", "[::1]:80", ""]))
    if host is not None and (minor == 1 or draw(st.booleans())):
        fields.append((random_case(draw, "Host"), host))
    else:
        host = None
    content_length = draw(st.none() | st.integers(0, MAX_CONTENT_LENGTH))
    if content_length is not None:
        fields.append((random_case(draw, "Content-Length"), str(content_length)))
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    if connection is not None:
        fields.append((random_case(draw, "Connection"), random_case(draw, connection)))
    fields = list(draw(st.permutations(fields)))
    lines = [f"{method} {target} HTTP/1.{minor}"]
    lines += [f"{name}:{draw(ows)}{value}{draw(ows)}" for name, value in fields]
    return GeneratedRequest(
        data=("\r\n".join(lines) + "\r\n\r\n").encode("ascii"),
        method=method,
        path=path,
        query=query,
        segments=segments,
        minor=minor,
        headers=tuple((name.lower(), value) for name, value in fields),
        host=host,
        content_length=content_length or 0,
        keep_alive=connection != "close" and (minor == 1 or connection == "keep-alive"),
    )


@SETTINGS
@given(generated_requests(), st.binary(max_size=64))
def test_request_round_trip(generated: GeneratedRequest, body: bytes) -> None:
    data = generated.data
    assert request_head_length(data + body) == len(data)
    assert request_head_length(data[:-1]) == 0
    parsed = parse_request_head(data)
    assert parsed.method == generated.method
    assert parsed.path == generated.path
    assert parsed.query == generated.query
    assert parsed.segments == generated.segments
    assert parsed.minor_version == generated.minor
    assert parsed.headers == generated.headers
    assert parsed.host == generated.host
    assert parsed.content_length == generated.content_length
    assert parsed.keep_alive is generated.keep_alive
    assert parsed.expect_continue is False


# --- property: only the request errors escape, each with its status ----------------------------


def check_request(data: bytes) -> None:
    """Frame and parse ``data`` as a request; anything but an HTTPRequestError escapes."""
    try:
        parsed: RequestHead | None = parse_request_head(data)
    except HTTPRequestError as exc:
        assert STATUS_OF[type(exc)] == exc.status
        parsed = None
    if parsed is not None:
        assert request_head_length(data) == len(data)
        assert request_head_length(data + b"tail") == len(data)
        assert parsed.path.startswith("/")
        assert all(name == name.lower() for name, _ in parsed.headers)
        assert 0 <= parsed.content_length <= MAX_CONTENT_LENGTH
        assert parsed.minor_version in (0, 1)
        assert parsed.host is not None or parsed.minor_version == 0
    try:
        length = request_head_length(data)
    except (RequestTargetTooLong, RequestHeadTooLarge):
        assert len(data) > MAX_REQUEST_LINE_BYTES
        return
    if length:
        assert data[length - 4 : length] == b"\r\n\r\n"
        if length < len(data):
            with pytest.raises(HTTPRequestError):
                parse_request_head(data)
            check_request(data[:length])
    else:
        assert b"\r\n\r\n" not in data
        assert parsed is None


@SETTINGS
@given(st.binary(max_size=400))
def test_request_arbitrary_bytes(data: bytes) -> None:
    check_request(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_request_arbitrary_bytes_after_a_request_line(data: bytes) -> None:
    check_request(b"GET / HTTP/1.1\r\n" + data)
    check_request(b"GET / HTTP/1.1\r\n" + data + b"\r\n\r\n")


REQUEST_FRAGMENTS = [
    *FRAGMENTS,
    b"Host: a\r\n",
    b"Host: b\r\n",
    b"Expect: 100-continue\r\n",
    b"%",
    b"%ff",
    b"?",
    b"/",
    b"http://",
    b" HTTP/1.1",
    b" HTTP/2.0",
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(generated_requests()).data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
        if action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[position:position] = draw(
                st.sampled_from(REQUEST_FRAGMENTS) | st.binary(max_size=8)
            )
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        else:
            start = draw(st.integers(0, len(data)))
            data[position:position] = data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


@SETTINGS
@given(mutated_requests())
def test_request_mutated_heads(data: bytes) -> None:
    check_request(data)


def test_check_request_catches_other_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> RequestHead:
        raise ValueError(data)

    monkeypatch.setitem(globals(), "parse_request_head", broken)
    with pytest.raises(ValueError):
        check_request(get())
