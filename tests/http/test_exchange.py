"""Response heads as :func:`ppsp.http.exchange.encode_head` writes them: the common answer's
head, whose beginning is kept for the current second, is byte for byte what the general path
writes, and its date follows the clock."""

from __future__ import annotations

import pytest

from ppsp.errors import LocalProtocolError
from ppsp.http import exchange
from ppsp.http.exchange import encode_head


def _general(status: int, content_type: str, length: int, reason: str | None = None) -> bytes:
    # A reason given explicitly takes the general path; the status's usual one is the same.
    return encode_head(
        status,
        content_type=content_type,
        content_length=length,
        headers=None,
        keep_alive=True,
        minor_version=1,
        reason=exchange._reason(status) if reason is None else reason,
    )


def _common(status: int, content_type: str, length: int) -> bytes:
    return encode_head(
        status,
        content_type=content_type,
        content_length=length,
        headers=None,
        keep_alive=True,
        minor_version=1,
    )


@pytest.mark.parametrize(
    ("status", "content_type", "length"),
    [
        (200, "application/ppsp-tracker+xml", 3012),
        (200, "application/ppsp-tracker+xml", 0),
        (200, "application/ppsp-tracker+json", 17),
        (404, "text/plain; charset=utf-8", 14),
        (299, "text/plain", 1),  # a status without a usual reason phrase
    ],
)
def test_the_common_head_is_the_general_one(status: int, content_type: str, length: int) -> None:
    first = _common(status, content_type, length)
    assert first == _general(status, content_type, length)
    assert _common(status, content_type, length) == first  # from what was kept: the same
    assert first.endswith(b"Content-Length: %d\r\n\r\n" % length)


def test_the_kept_beginning_of_a_head_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.2]
    monkeypatch.setattr(exchange.time, "time", lambda: now[0])
    before = _common(200, "text/plain", 5)
    assert b"Date: Fri, 15 Jan 2027 08:00:00 GMT\r\n" in before
    now[0] += 0.5  # the same second: the same head
    assert _common(200, "text/plain", 5) == before
    now[0] += 1.0
    after = _common(200, "text/plain", 5)
    assert b"Date: Fri, 15 Jan 2027 08:00:01 GMT\r\n" in after
    assert after == _general(200, "text/plain", 5)


def test_a_content_type_with_a_line_break_is_refused_every_time() -> None:
    for _ in range(2):  # never kept, so refused again
        with pytest.raises(LocalProtocolError):
            _common(200, "text/plain\r\nX-Injected: 1", 5)
