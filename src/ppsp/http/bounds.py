"""The HTTP server's bounds and timeouts, each defined once (:mod:`ppsp.http.server` serves
within them; the tracker and the peers pass other values where they need them).

Layer: I/O (see :mod:`ppsp.http`): the standard library and ``ppsp.wire`` only.
"""

from __future__ import annotations

from typing import Final

from ppsp.wire.fields import MAX_MESSAGE_BYTES

__all__ = [
    "BODY_BARRED_HOSTS",
    "BODY_BUDGET",
    "BODY_BUDGET_PER_HOST",
    "BODY_BUSY_RETRY_AFTER",
    "BODY_EVICTION_LOOKS",
    "BODY_GRACE",
    "BODY_TIMEOUT",
    "CLOSE_GRACE",
    "DEFAULT_BODY_LIMIT",
    "DISCARD_LIMIT",
    "HEAD_CACHE_BYTES",
    "HEAD_CACHE_SIZE",
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "LINGER",
    "MAX_CHUNK_LINE",
    "READ_HIGH_WATER",
    "SEND_TIMEOUT",
]

DEFAULT_BODY_LIMIT: Final = MAX_MESSAGE_BYTES
"""Largest request body read when the handler names no bound (a peer protocol message's)."""

BODY_BUDGET_PER_HOST: Final = 4 << 20
"""Bytes of request bodies one host (an IPv4 address, an IPv6 /64) may have being read at once
(:class:`~ppsp.http.budget.BodyBudget`): four peer protocol messages of the largest size.  A
body the server must wait for is charged its whole ``Content-Length`` before any of it is
waited for (a chunked body each chunk as it comes) and given back once its handler returned;
beyond this bound it is answered 503 with ``Retry-After`` unread.  A host with nothing charged
may read one body over this share, within :data:`BODY_BUDGET`."""

BODY_BUDGET: Final = 64 << 20
"""Bytes of request bodies all hosts together may have being read at once (what a small machine
affords); beyond it, as beyond :data:`BODY_BUDGET_PER_HOST`.  With nothing charged, one body
may always be read."""

BODY_BUSY_RETRY_AFTER: Final = 1
"""Seconds the ``Retry-After`` of a body refused for the budget asks the client to wait."""

BODY_GRACE: Final = 1.0
"""Seconds a charged body may lag behind its pace (its declared length within its body
timeout) before a body the budget cannot take evicts it (:class:`~ppsp.http.budget.BodyBudget`):
a body is never evicted in its first second, nor while its bytes keep that pace."""

BODY_BARRED_HOSTS: Final = 4096
"""Hosts a body budget remembers as having had a body evicted (each may evict no other body
for one body timeout); beyond, the oldest is forgotten."""

BODY_EVICTION_LOOKS: Final = 64
"""Charged bodies a body the budget cannot take looks at, at most, for ones to evict (the
slowest first): the work of one refusal is bounded whatever the number of bodies charged."""

HEAD_TIMEOUT: Final = 10.0
"""Seconds a request head may take, from its first byte (a connection's first request: from
the connection), however its bytes are spread: a client trickling a head is cut."""

IDLE_TIMEOUT: Final = 75.0
"""Seconds a kept-alive connection may wait for its next request."""

BODY_TIMEOUT: Final = 30.0
"""Seconds a request body may take once its handler reads it."""

SEND_TIMEOUT: Final = 30.0
"""Seconds an answer's bytes may wait for a client that reads nothing: a client that asks
and never reads is cut, so that it holds no upload slot for long."""

CLOSE_GRACE: Final = 0.25
"""Seconds :meth:`HTTPServer.close` lets running requests finish by default."""

DISCARD_LIMIT: Final = 65536
"""Most bytes of a body its handler left unread that are read and dropped to keep the
connection; with more left, the connection closes after the answer."""

READ_HIGH_WATER: Final = 256 * 1024
"""Buffered bytes beyond which reading pauses until they are consumed (pipelined requests)."""

LINGER: Final = 1.0
"""Seconds a connection closed with request bytes unread keeps reading (and dropping) them
after its answer, its sending side shut: closed at once, the unread bytes would reset the
connection and the answer could be lost (RFC 9112 9.6)."""

MAX_CHUNK_LINE: Final = 1024
"""Longest line of a chunked request body's framing (a chunk size with extensions, a trailer
field)."""

HEAD_CACHE_SIZE: Final = 256
"""Request heads whose parse a server remembers (see :meth:`HTTPServer.parse_head`)."""

HEAD_CACHE_BYTES: Final = 1024
"""Longest request head whose parse is remembered."""
