"""A server's memory of request heads: heads with credentials read as their kept rest plus the
one field, always to the parser's own result or refusal."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.httphead import parse_request_head
from ppsp.errors import HTTPRequestError, MalformedRequest, RequestHeadTooLarge
from ppsp.http.bounds import HEAD_CACHE_SIZE
from ppsp.http.exchange import Request, Response
from ppsp.http.heads import HeadReader
from ppsp.http.server import serve
from ppsp.wire.fields import MAX_HEADER_FIELDS

SETTINGS = settings(
    max_examples=int(os.environ.get("PPSP_HTTPHEAD_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
SPECIAL = {"content-length", "transfer-encoding", "connection", "host", "authorization"}

names = st.text(st.sampled_from(TCHAR), min_size=1, max_size=12).filter(
    lambda name: name.lower() not in SPECIAL
)
values = st.text(st.sampled_from(VCHAR + " \t"), max_size=24)
# Credentials: mostly well formed, sometimes with a byte the parser refuses.
tokens = st.text(st.sampled_from(VCHAR), min_size=1, max_size=80) | st.text(
    st.sampled_from(VCHAR + "\x00\x07\x7f"), max_size=20
)


def head_of(request_line: str, fields: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([request_line, *(f"{n}:{v}" for n, v in fields)]) + "\r\n\r\n").encode(
        "latin-1"
    )


@st.composite
def credential_heads(draw: st.DrawFn) -> tuple[list[bytes], int]:
    """Heads alike but for their ``Authorization`` field, and where that field sits."""
    request_line = draw(
        st.sampled_from(["POST / HTTP/1.1", "GET /s?x=1 HTTP/1.0", "PUT / HTTP/1.1"])
    )
    fields: list[tuple[str, str]] = draw(st.lists(st.tuples(names, values), max_size=8))
    if draw(st.booleans()):
        fields.append(("Host", draw(st.sampled_from(["tracker", "127.0.0.1:80", "bad host"]))))
    if draw(st.booleans()):
        fields.append(("Content-Length", draw(st.sampled_from(["0", "17", "x"]))))
    if draw(st.booleans()):
        # Another credentials field in any spelling: the full parse decides.
        fields.append((draw(st.sampled_from(["authorization", "AUTHORIZATION"])), "Basic a"))
    if draw(st.booleans()):
        # Up to and past the bound on fields.
        fields += [(f"X-{i}", "v") for i in range(MAX_HEADER_FIELDS - len(fields) - 1)]
        fields += [("X-Over", "v")] * draw(st.integers(0, 2))
    index = draw(st.integers(0, len(fields)))
    heads = []
    for token in draw(st.lists(tokens, min_size=2, max_size=4)):
        spaced = draw(st.sampled_from(["", " ", "\t "])) + "Bearer " + token
        heads.append(
            head_of(request_line, [*fields[:index], ("Authorization", spaced), *fields[index:]])
        )
    return heads, index


def parsed_or_refused(read: object, head: bytes) -> object:
    """What ``read`` makes of ``head``: the request line and framing (the head without its
    ``headers``, which may lack the credentials field the reader keeps apart), every field in
    order, the fields as a mapping and as looked up one by one; or the refusal."""
    try:
        result = read(head)  # type: ignore[operator]
    except HTTPRequestError as error:
        return type(error), str(error)
    assert isinstance(result, tuple)
    parsed, headers = result
    assert all(field in headers.fields for field in parsed.headers)
    looked_up = {
        name: (headers.get(name.upper()), headers[name], name in headers) for name in headers
    }
    return (
        replace(parsed, headers=()),
        headers.fields,
        dict(headers),
        looked_up,
        len(headers),
        headers.get("authorization"),
        headers.getall("Authorization"),
    )


def reference(head: bytes) -> object:
    from ppsp.http.headers import Headers

    return parsed_or_refused(
        lambda data: (lambda p: (p, Headers(p.headers)))(parse_request_head(data)), head
    )


@SETTINGS
@given(credential_heads())
def test_heads_with_credentials_read_as_the_parser_reads_them(
    case: tuple[list[bytes], int],
) -> None:
    heads, _ = case
    reader = HeadReader()
    for head in heads + heads:  # each head first, then each again (the rest is kept by then)
        assert parsed_or_refused(reader.parse, head) == reference(head)


def test_the_credentials_field_keeps_its_place_and_the_rest_is_kept_once() -> None:
    reader = HeadReader()
    for peer in range(HEAD_CACHE_SIZE * 2):
        parsed, headers = reader.parse(
            b"POST / HTTP/1.1\r\nHost: t\r\nAuthorization:  Bearer tok-%d \r\n"
            b"Content-Length: 3\r\n\r\n" % peer
        )
        assert headers.fields == (
            ("host", "t"),
            ("authorization", f"Bearer tok-{peer}"),
            ("content-length", "3"),
        )
        assert headers["Authorization"] == f"Bearer tok-{peer}" and parsed.content_length == 3
        # Only the credentials are new: the head of the rest is the one kept.
        assert parsed is reader.parse(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")[0]
    # Every head but its credentials alike: one parse kept, not one per peer.
    assert len(reader) == 1


@pytest.mark.parametrize(
    ("head", "refusal"),
    [
        (b"POST / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \x01\r\n\r\n", MalformedRequest),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer a\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADER_FIELDS - 1))
            + b"\r\n",
            RequestHeadTooLarge,
        ),
        (b"POST / HTTP/1.1\r\nAuthorization: Bearer a\r\n\r\n", MalformedRequest),  # no Host
    ],
)
def test_a_head_with_credentials_is_refused_as_the_parser_refuses_it(
    head: bytes, refusal: type[HTTPRequestError]
) -> None:
    reader = HeadReader()
    with pytest.raises(refusal):
        parse_request_head(head)
    for _ in range(2):
        with pytest.raises(refusal):
            reader.parse(head.replace(b"Bearer", b"Bearer x"))
        with pytest.raises(refusal):
            reader.parse(head)


async def test_a_server_answers_each_peer_with_its_own_credentials() -> None:
    seen: list[str | None] = []

    async def handler(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        return Response(200, b"ok")

    server = await serve(handler, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][1])
        for peer in range(20):
            writer.write(
                b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer peer-%d\r\n\r\n" % peer
            )
            await reader.readuntil(b"ok")
        writer.close()
    finally:
        await server.close(0.5)
    assert seen == [f"Bearer peer-{peer}" for peer in range(20)]
    assert len(server._heads) == 1
