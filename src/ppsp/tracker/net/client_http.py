"""The tracker client's HTTP transport: POST a request's bytes, read the answer's bytes.

:class:`HttpChannel` is all the tracker client knows of HTTP: the headers every request
carries (the encoding's media type, ``Authorization: Bearer <token>`` with a token), the TLS
settings of an ``https://`` tracker (none at all for ``http://``), the address connections
leave from, the time allowed to an attempt, and a bound on the answer's size.  It makes no
decision about what an answer means (:func:`ppsp.tracker.client_policy.read_answer` does) or
whether to send again (:class:`ppsp.tracker.client_policy.Attempts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ppsp.http.client import HttpClient, Timeout
from ppsp.tracker.client_policy import MAX_ANSWER_BYTES
from ppsp.tracker.client_session import InvalidAnswer
from ppsp.wire.tracker import Encoding

if TYPE_CHECKING:
    import ssl

__all__ = ["HttpChannel", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer as it came: ``status``, ``reason`` phrase, ``body`` and the
    ``WWW-Authenticate`` header (``challenge``, None when absent)."""

    status: int
    reason: str
    body: bytes
    challenge: str | None


class HttpChannel:
    """POSTs tracker requests over one HTTP client (:mod:`ppsp.http.client`) and reads their
    answers.

    ``encoding`` sets the media type of requests and of the answers accepted; ``token``, when
    given, goes with every request as a bearer token; ``tls`` is the TLS settings of an
    ``https://`` tracker (None: the system's trust store, made only if an ``https://`` URL is
    used); ``session`` an HTTP client to share, whose own TLS settings and local address then
    apply (else the channel makes one at its first request and closes it in :meth:`close`);
    ``local_address`` the IP address of this host connections leave from.
    """

    def __init__(
        self,
        *,
        encoding: Encoding,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        session: HttpClient | None = None,
        local_address: str | None = None,
    ) -> None:
        self._session = session
        self._own_session = session is None
        self._local_address = local_address
        # An http:// tracker needs no TLS: the client makes no context for it.
        self._tls = tls
        self._headers = {"Content-Type": encoding.content_type, "Accept": encoding.content_type}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"

    async def post(self, url: str, body: bytes, *, timeout: float, tracker: str) -> Reply:
        """POST ``body`` to ``url`` and return the answer, allowing ``timeout`` seconds.

        Raises the HTTP client's errors (:class:`~ppsp.errors.HttpClientError`: OSErrors, the
        timeouts TimeoutErrors) as they come, and an
        :class:`~ppsp.tracker.client_session.InvalidAnswer` for an answer over
        :data:`~ppsp.tracker.client_policy.MAX_ANSWER_BYTES` (``tracker`` names the tracker in
        its sentence), read no further.
        """
        async with self._get_session().post(
            url, body=body, headers=self._headers, timeout=Timeout(total=timeout)
        ) as response:
            too_large = f"tracker {tracker} sent an answer over {MAX_ANSWER_BYTES} bytes"
            if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
                raise InvalidAnswer(too_large)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.content:
                total += len(chunk)
                if total > MAX_ANSWER_BYTES:
                    raise InvalidAnswer(too_large)
                chunks.append(chunk)
            return Reply(
                status=response.status,
                reason=response.reason or "",
                body=b"".join(chunks),
                challenge=response.headers.get("WWW-Authenticate"),
            )

    async def close(self) -> None:
        """Close the HTTP client if this channel made it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> HttpClient:
        if self._session is None:
            self._session = HttpClient(local_address=self._local_address, ssl_context=self._tls)
            self._own_session = True
        return self._session
