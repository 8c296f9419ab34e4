"""Tracker client library: a peer's side of PPSP-TP over HTTP.

:class:`TrackerClient` is the I/O half of the tracker client: it moves the requests of a
sans-I/O :class:`~ppsp.tracker.client_session.TrackerSession` over HTTP and hands the answers
back.  The session decides what to send (registration, joins, the 1.1 -> 1.0 fallback and the
1.0 CONNECT/LEAVE forms, transaction IDs, when the next STAT_REPORT is due, the re-join after
the tracker forgot the peer) and which answers are retried; this module does HTTP, TLS, bearer
tokens, the retries with their backoff, the time allowed to each attempt, and the periodic
report task, which waits on the session's next deadline.

Every request is retried on a timeout, a connection error or an answer that cannot be decoded:
the identical bytes with the same transaction ID (RFC 7846 section 4.3), with exponential backoff,
and :class:`~ppsp.errors.TrackerUnreachable` once the retries are spent, whose message is one
sentence saying what went wrong the last time (``tracker 127.0.0.1:7999 refused the connection``,
``tracker 10.0.0.1:7000 did not answer within 5 s``, ``tracker example.org: name not found``,
``tracker answered HTTP 502 Bad Gateway``).  An HTTP status the tracker protocol does not use
(a proxy's 502, for example) is such a failure.  A valid error answer is raised as the
:class:`~ppsp.errors.TrackerProtocolError` subclass of its code.

The tracker URL is checked when the client is built (:func:`check_tracker_url`): a URL without
``http://`` or ``https://`` or without a host is refused at once with
:class:`InvalidTrackerURL`, before any network.

Trust (RFC 7846 section 6.1, docs/PROTOCOL.md "Tracker client"):

- An ``https://`` tracker is verified against the system's trust store plus the extra trust
  anchors of a CA file (:func:`tls_context`).  A certificate that fails verification, or a
  handshake that fails, is not retried (it will not get better): it raises
  :class:`TrackerTLSError` at once, one sentence naming the problem (``tracker
  127.0.0.1:7443: certificate verify failed: self-signed certificate``).  An ``http://``
  tracker costs no TLS here: this module makes no TLS context of its own for it and imports
  :mod:`ssl` only to build trust anchors or to read a TLS failure.
- A bearer token (RFC 6750), given as ``token``, goes with every request as
  ``Authorization: Bearer <token>``.  A 401 answer raises
  :class:`~ppsp.errors.AuthenticationRequired` at once, one sentence saying that a token is
  needed or why the one sent was refused (the ``error_description`` of the answer's
  ``WWW-Authenticate`` challenge).  :func:`token_subject` reads the PeerID a token was issued
  for, without verifying it (only the tracker can).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeVar

import aiohttp
import yarl

from ppsp.errors import (
    AuthenticationRequired,
    PPSPError,
    RemoteTrackerError,
    TrackerProtocolError,
    TrackerUnreachable,
)
from ppsp.tracker.client_session import (
    Accepted,
    InvalidAnswer,
    Operation,
    Refused,
    TrackerSession,
)
from ppsp.wire.fields import is_token
from ppsp.wire.tracker import (
    AnyRequest,
    ContentMap,
    Encoding,
    ErrorResponse,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StreamStatistics,
    TrackerResponse,
)

if TYPE_CHECKING:
    import ssl

    from ppsp.codecs.tracker import TrackerCodec

__all__ = [
    "DEFAULT_REPORT_INTERVAL",
    "Exchange",
    "InvalidToken",
    "InvalidTrackerURL",
    "InvalidTrustAnchors",
    "StatsProvider",
    "Trace",
    "TrackerClient",
    "TrackerTLSError",
    "bearer_challenge",
    "check_token",
    "check_tracker_url",
    "tls_context",
    "token_subject",
]

log = logging.getLogger(__name__)

DEFAULT_REPORT_INTERVAL = 60.0
"""Seconds between periodic STAT_REPORTs: well inside the default 180 s track timer."""

MAX_ANSWER_BYTES = 4 << 20
"""An answer larger than this is treated as invalid (a peer list is a few kilobytes)."""

StatsProvider = Callable[[], tuple[Sequence[StreamStatistics], Sequence[ContentMap]]]
"""Returns the statistics and content maps to put in the next periodic STAT_REPORT."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's replacement."""

T = TypeVar("T")

_PROTOCOL_STATUSES = frozenset({200, 400, 401, 403, 404, 413, 500, 503})
"""HTTP statuses a PPSP tracker answers with (docs/PROTOCOL.md); any other is not the tracker's
answer (a proxy's 502, a redirect, ...) and counts as a failed attempt."""

_SCHEMES = ("http", "https")

TOKEN_HINT = "give --token or set PPSP_TOKEN"
"""What a user without a token is told to do when the tracker asks for one."""

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 section 2.1 ``b64token``: what may follow ``Bearer`` in the header (a JWT fits)."""

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')
"""One ``name=value`` or ``name="quoted value"`` of a ``WWW-Authenticate`` challenge."""

_GENERIC_401_PHRASES = frozenset({"unauthorized", "authentication required", ""})
"""Reason phrases of a 401 that say nothing about the token."""

MAX_CHALLENGE_CHARS = 2048
"""How much of a ``WWW-Authenticate`` header is read; the rest is ignored."""


class InvalidTrackerURL(PPSPError, ValueError):
    """A tracker URL the client cannot use: no ``http://`` or ``https://``, no host, a bad port.

    Both a :class:`~ppsp.errors.PPSPError` and a ValueError; its message is one line.
    """


def check_tracker_url(url: str) -> str:
    """``url`` checked and normalised for use as a tracker URL; raises :class:`InvalidTrackerURL`
    (a ValueError) with a one-line message otherwise.

    The URL needs the scheme ``http`` or ``https`` and a host; a port, if given, is 1-65535.
    Surrounding whitespace is dropped, and the scheme and host are written in lower case.  No
    name is resolved and nothing is sent.
    """
    if not isinstance(url, str):
        raise InvalidTrackerURL(f"the tracker URL must be text, not {type(url).__name__}")
    text = url.strip()
    shown = repr(text[:80])
    if not text:
        raise InvalidTrackerURL("the tracker URL is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidTrackerURL(f"tracker URL {shown} contains spaces or control characters")
    try:
        parsed = yarl.URL(text)
        port = parsed.explicit_port
    except (ValueError, TypeError) as exc:
        raise InvalidTrackerURL(f"tracker URL {shown} is not a valid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES:
        if "://" not in text:  # "localhost:7000" reads as the scheme "localhost"
            raise InvalidTrackerURL(
                f"tracker URL {shown} has no scheme: write it as http://{text.lstrip('/')}"
                " (or https://)"
            )
        raise InvalidTrackerURL(
            f"tracker URL {shown} uses the scheme {scheme}: only http:// and https:// work"
        )
    if not parsed.host:
        raise InvalidTrackerURL(f"tracker URL {shown} names no host")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidTrackerURL(f"tracker URL {shown} has port {port}, not 1-65535")
    return str(parsed.with_fragment(None))


class InvalidTrustAnchors(PPSPError, ValueError):
    """A CA file that cannot be used as trust anchors (missing, unreadable, no certificate)."""


class InvalidToken(PPSPError, ValueError):
    """A bearer token the client cannot send or read: not a JWT, no subject, bad characters."""


class TrackerTLSError(TrackerUnreachable):
    """The TLS connection to the tracker failed in a way no retry mends: an untrusted, expired
    or mismatched certificate, or a server that does not speak TLS on the port.  Its message is
    one sentence naming the problem."""


def tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The TLS settings for ``https://`` trackers: the system's trust store, TLS 1.2 or later,
    and, with ``ca_file``, the certificates of that PEM file as extra trust anchors.

    Raises :class:`InvalidTrustAnchors` (a ValueError) with a one-line message when the file
    cannot be read or holds no certificate.
    """
    import ssl  # only for https:// trackers (aiohttp's own import of it is not ours to skip)

    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is None:
        return context
    path = Path(ca_file)
    if path.is_dir():
        raise InvalidTrustAnchors(f"CA file {path} is a directory: give a PEM file")
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:  # an SSLError is an OSError: first
        raise InvalidTrustAnchors(
            f"CA file {path} holds no usable PEM certificate ({_ssl_words(exc)})"
        ) from None
    except OSError as exc:
        raise InvalidTrustAnchors(f"CA file {path}: {_os_reason(exc)}") from None
    return context


def check_token(token: str) -> str:
    """``token`` if it can be sent as a bearer token (RFC 6750 ``b64token``, which every JWT is);
    raises :class:`InvalidToken` (a ValueError) with a one-line message otherwise."""
    text = token.strip()
    if not text:
        raise InvalidToken("the token is empty")
    if not _B64TOKEN.fullmatch(text):
        raise InvalidToken(
            "the token contains characters a bearer token cannot (spaces, quotes, controls)"
        )
    return text


def token_subject(token: str) -> str:
    """The PeerID ``token`` was issued for: its ``sub`` claim, read without verifying it.

    A peer cannot verify its own token (it has no key for that) and does not need to: the
    tracker does.  Raises :class:`InvalidToken` (a ValueError) with a one-line message when the
    token is not a JWT, names no subject, or names one that is not a PeerID.
    """
    import jwt  # PyJWT: imported here, only peers with a token pay for it

    text = check_token(token)
    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is not a JWT ({_one_line(str(exc))})") from None
    subject = claims.get("sub")
    if subject is None:
        raise InvalidToken("the token names no PeerID (it has no 'sub' claim)")
    if not isinstance(subject, str) or not is_token(subject):
        raise InvalidToken(
            "the token's subject is not a PeerID (1 to 256 characters, no spaces or controls)"
        )
    return subject


def _token_swarms(token: str) -> frozenset[str] | None:
    """The swarms a JWT's ``swarms`` claim lists (read without verifying, only to explain a
    refusal); None when it has no such list or is no JWT (an opaque token)."""
    import jwt

    try:
        listed = jwt.decode(token, options={"verify_signature": False}).get("swarms")
    except jwt.PyJWTError:
        return None
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        return None
    return frozenset(listed)


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line of printable characters, at most ``limit`` of them."""
    words = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return words[:limit]


def _ssl_words(exc: BaseException) -> str:
    """What an ssl error says, without OpenSSL's bracketed prefix and source location."""
    text = (
        exc.strerror
        if isinstance(exc, OSError) and isinstance(exc.strerror, str) and exc.strerror
        else str(exc)
    )
    text = re.sub(r"^\[[A-Z0-9_: ]+\]\s*", "", text)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    return _one_line(text, 160) or type(exc).__name__


def bearer_challenge(header: str | None) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` challenge (RFC 6750 section 3).

    Names in lower case, quoted values unquoted; an empty dict when the header is missing or
    holds no Bearer challenge.  Hostile input is normal: only the first
    :data:`MAX_CHALLENGE_CHARS` characters are read.
    """
    if not header:
        return {}
    text = header[:MAX_CHALLENGE_CHARS]
    match = re.search(r"(?i)(?:^|,)\s*bearer(?:\s+|$)", text)
    if match is None:
        return {}
    params: dict[str, str] = {}
    for param in _AUTH_PARAM.finditer(text, match.end()):
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name, value)
    return params


def _tracker_name(url: str, *, with_port: bool = True) -> str:
    """How messages name the tracker of ``url``: its host, and the port the URL gives."""
    parsed = yarl.URL(url)
    host = parsed.host or url
    if ":" in host:
        host = f"[{host}]"
    port = parsed.explicit_port
    return f"{host}:{port}" if with_port and port is not None else host


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One HTTP round trip, as seen by the client: what went out and what came back.

    ``answer`` is the decoded answer, or ``None`` when it could not be decoded.
    """

    request: AnyRequest
    request_body: bytes
    status: int
    reason: str
    answer_body: bytes
    answer: TrackerResponse | ErrorResponse | None


Trace = Callable[[Exchange], None]
"""Called after every round trip (the demo prints them; tests inspect them)."""


class TrackerClient:
    """An asynchronous PPSP-TP client for one peer and one tracker.

    ``url`` is the tracker's URL (any path); ``peer_id`` the peer's identifier; ``addresses`` the
    addresses the peer advertises (each gets ``peer_protocol`` unless it names one).  ``session``
    is an aiohttp session to share (the client makes and closes its own otherwise).  ``clock`` and
    ``sleep`` drive the periodic reports; ``retries`` is the number of re-sends after the first
    attempt, ``timeout`` the time allowed for each attempt and ``backoff`` the first pause between
    attempts (doubled each time).  ``trace``, if given, sees every round trip.

    ``tls`` is the TLS settings for an ``https://`` tracker (:func:`tls_context`; the system's
    trust store when None); ``token`` a bearer token sent with every request (checked with
    :func:`check_token`).  ``local_address``, an IP address of this host, is where the client's
    connections leave from (a peer serving on one address of a host with several talks to the
    tracker from that address too, so that the tracker sees the host it will list).

    What the client knows of its relation with the tracker is :attr:`state`, a sans-I/O
    :class:`~ppsp.tracker.client_session.TrackerSession`.
    """

    def __init__(
        self,
        url: str,
        peer_id: str,
        *,
        encoding: Encoding = Encoding.XML,
        version: ProtocolVersion = ProtocolVersion.V1_1,
        addresses: Sequence[PeerAddress] = (),
        peer_protocol: str = "PPSP-PP/0.1",
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 3,
        timeout: float = 5.0,
        backoff: float = 0.25,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        trace: Trace | None = None,
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
        local_address: str | None = None,
    ) -> None:
        checked = check_tracker_url(url)
        self._token = None if token is None else check_token(token)
        rng = rng or random.SystemRandom()
        self.state = TrackerSession(
            peer_id,
            addresses=addresses,
            peer_protocol=peer_protocol,
            version=version,
            first_transaction_id=rng.randrange(1, 1 << 30) + 1,
            tracker=_tracker_name(checked),
            token_swarms=None if self._token is None else _token_swarms(self._token),
        )
        self.url = checked
        self._local_address = local_address
        self.peer_id = peer_id
        self.encoding = encoding
        self.peer_protocol = peer_protocol
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._sleep = sleep
        self._retries = max(0, retries)
        self._timeout = timeout
        self._backoff = backoff
        self._reporter: asyncio.Task[None] | None = None
        self._trace = trace
        # An http:// tracker needs no TLS: aiohttp is told nothing (it makes no context for it).
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._codec_of: TrackerCodec | None = None
        self._headers = {"Content-Type": encoding.content_type, "Accept": encoding.content_type}
        if self._token is not None:
            self._headers["Authorization"] = f"Bearer {self._token}"
            if yarl.URL(self.url).scheme == "http":
                log.warning(
                    "sending a bearer token to %s in clear text: use https:// (RFC 6750)",
                    _tracker_name(self.url),
                )

    # -- state -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The tracker's URL (may be changed: the next request goes to the new one)."""
        return self._url

    @url.setter
    def url(self, value: str) -> None:
        self._url = value
        self.state.tracker = _tracker_name(value)

    @property
    def version(self) -> ProtocolVersion:
        """The protocol version in use (1.0 after a fallback)."""
        return self.state.version

    @property
    def registered(self) -> bool:
        """Whether the tracker has (or, in 1.0 form, will have at the first join) registered us."""
        return self.state.registered

    @property
    def joined(self) -> Mapping[str, PeerMode]:
        """Swarms joined, with the mode each was joined in."""
        return self.state.joined

    @property
    def requester(self) -> PeerInfo | None:
        """How the tracker last saw this peer (its REFLEXIVE address), when it said so."""
        return self.state.requester

    # -- operations --------------------------------------------------------------------------

    async def register(self) -> None:
        """Register: a 1.1 CONNECT without swarms (in 1.0 form, deferred to the first join)."""
        await self._run(self.state.register())

    async def join(
        self,
        swarm_id: str,
        mode: PeerMode,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Join ``swarm_id`` as SEED or LEECH; returns the peer list the tracker gave (without us).

        ``content_group`` is the 1.1 joining point; it is dropped in 1.0 form.  A 1.1 client that
        has not registered yet registers first.

        In 1.0 form a peer names its swarms when it connects: a CONNECT with JOIN actions is
        accepted only from a peer the tracker does not track yet.  Joining one more swarm is
        therefore a CONNECT that leaves every joined swarm followed by a CONNECT that joins them
        all again together with the new one.

        A refusal (403) of a swarm that the token's ``swarms`` claim does not list says so.
        """
        operation = self.state.join(swarm_id, mode, peer_num=peer_num, content_group=content_group)
        return await self._run(operation)

    async def find(
        self,
        swarm_id: str,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Peers of ``swarm_id`` (holding chunks of ``content_group`` in 1.1), without us."""
        operation = self.state.find(swarm_id, peer_num=peer_num, content_group=content_group)
        return await self._run(operation)

    async def report(
        self,
        stream_stats: Sequence[StreamStatistics] = (),
        content_maps: Sequence[ContentMap] = (),
    ) -> None:
        """Send a STAT_REPORT (content maps are dropped in 1.0 form); empty, it is a keep-alive.

        It postpones the next periodic report by a whole interval.
        """
        await self._run(self.state.report(stream_stats, content_maps, now=self._clock()))

    async def disconnect(self, swarm_ids: Sequence[str] | Literal["ALL"] | None = None) -> None:
        """Leave the named swarms, every swarm (``"ALL"``), or the system (``None``).

        In 1.0 form this is a CONNECT with a LEAVE action for each swarm left; leaving the system
        leaves every joined swarm (and sends nothing when none is joined).
        """
        await self._run(self.state.disconnect(swarm_ids))

    async def rejoin(self) -> list[PeerInfo]:
        """Register again and re-join every swarm joined so far (after the tracker forgot us)."""
        return await self._run(self.state.rejoin())

    # -- periodic reports --------------------------------------------------------------------

    def start_reporting(
        self, stats_provider: StatsProvider, interval: float | None = None
    ) -> asyncio.Task[None]:
        """Send a STAT_REPORT every ``interval`` seconds (default 60 s) until stopped or closed.

        Each report carries what ``stats_provider`` returns at that moment.  A report that finds
        the tracker has forgotten this peer (403/404) triggers :meth:`rejoin`; an unreachable
        tracker is logged and tried again at the next interval.
        """
        self.stop_reporting()
        period = DEFAULT_REPORT_INTERVAL if interval is None else interval
        self.state.start_reporting(period, now=self._clock())  # ValueError unless positive
        self._reporter = asyncio.create_task(
            self._report_loop(stats_provider), name=f"ppsp-report-{self.peer_id}"
        )
        return self._reporter

    def stop_reporting(self) -> None:
        """Stop the periodic reports, if running."""
        self.state.stop_reporting()
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None

    async def _report_loop(self, provider: StatsProvider) -> None:
        """Wait for the session's next deadline and report then (a report sent meanwhile
        moves the deadline: it is read again after each wait)."""
        state = self.state
        while (deadline := state.next_deadline()) is not None:
            delay = deadline - self._clock()
            if delay > 0:
                await self._sleep(delay)
                continue
            stream_stats, content_maps = provider()
            try:
                await self._run(state.report(stream_stats, content_maps, now=self._clock()))
            except TrackerUnreachable as exc:
                log.warning("periodic report failed: %s", exc)
            except TrackerProtocolError as exc:
                mend = state.recovery(exc)
                if mend is None:
                    log.warning("tracker refused a periodic report: %s", exc)
                    continue
                log.info("tracker forgot peer %s (%s); joining again", self.peer_id, exc)
                with contextlib.suppress(TrackerProtocolError, TrackerUnreachable):
                    await self._run(mend)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop reporting and close the HTTP session if this client made it."""
        task = self._reporter
        self.stop_reporting()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- machinery ---------------------------------------------------------------------------

    async def _run(self, operation: Operation[T]) -> T:
        """Carry ``operation`` out: send each request it makes, hand it each answer or refusal.

        A refusal the session does not recover from is raised (as the operation words it); a
        tracker that cannot be reached abandons the operation.
        """
        state = self.state
        request = operation.request
        try:
            while request is not None:
                before = state.version
                try:
                    response = await self._exchange(request)
                except TrackerProtocolError as refusal:
                    request = operation.refused(refusal)
                else:
                    request = operation.answered(response)
                if state.version is not before:
                    log.info("tracker %s refused PPSP-TP/1.1; falling back to 1.0", self.url)
        finally:
            if not operation.done:
                operation.abandon()
        return operation.result

    async def _exchange(self, request: AnyRequest) -> TrackerResponse:
        """Send ``request`` (re-sending the identical bytes on failure) and return its answer;
        a refusal is raised as its :class:`~ppsp.errors.TrackerProtocolError`."""
        body = self._codec().encode_request(request)
        last: BaseException | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(self._backoff * (2 ** (attempt - 1)))
                log.debug("re-sending transaction %s (attempt %d)", request.transaction_id, attempt)
            try:
                answer, status = await self._post(request, body)
            except aiohttp.ClientSSLError as exc:
                # A certificate or handshake failure: the same again next time.
                raise TrackerTLSError(self._failure(exc)) from exc
            except (aiohttp.ClientError, TimeoutError, InvalidAnswer) as exc:
                log.debug("transaction %s failed: %r", request.transaction_id, exc)
                last = exc
                continue
            verdict = self.state.receive(request, answer, status)
            if isinstance(verdict, Accepted):
                return verdict.response
            if isinstance(verdict, Refused):
                raise verdict.error
            log.debug("transaction %s to be sent again: %s", request.transaction_id, verdict.error)
            last = verdict.error
        # The sentence of the last failure: what a user reads (docs/PROTOCOL.md).
        raise TrackerUnreachable(self._failure(last)) from last

    def _codec(self) -> TrackerCodec:
        """The codec of the client's encoding, imported at its first use: a peer loads only the
        codec it speaks."""
        codec = self._codec_of
        if codec is None:
            if self.encoding is Encoding.JSON:
                from ppsp.codecs import tracker_json as json_codec

                codec = json_codec
            else:
                from ppsp.codecs import tracker_xml as xml_codec

                codec = xml_codec
            self._codec_of = codec
        return codec

    def _failure(self, exc: BaseException | None) -> str:
        """One sentence saying what ``exc``, the failure of an attempt, means for the user."""
        where = _tracker_name(self.url)
        if isinstance(exc, TrackerProtocolError):  # 503 on every attempt
            return f"tracker {where} is unavailable ({exc.reason})"
        if isinstance(exc, InvalidAnswer):
            return str(exc)
        if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
            return f"tracker {where} did not answer within {self._timeout:g} s"
        if isinstance(exc, aiohttp.ClientConnectorDNSError) or (
            isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, socket.gaierror)
        ):
            return f"tracker {_tracker_name(self.url, with_port=False)}: name not found"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return f"tracker {where}: {_certificate_problem(exc.certificate_error)}"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"tracker {where}: {_handshake_problem(exc)}"
        if isinstance(exc, aiohttp.ClientConnectorError):
            if isinstance(exc.os_error, ConnectionRefusedError):
                return f"tracker {where} refused the connection"
            return f"tracker {where} could not be reached: {_os_reason(exc.os_error)}"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"tracker {where} closed the connection without answering"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return f"tracker {where} sent an incomplete answer"
        if isinstance(exc, aiohttp.ClientResponseError):
            return f"tracker answered HTTP {exc.status}"
        if isinstance(exc, OSError):
            if isinstance(exc, ConnectionResetError):
                return f"tracker {where} reset the connection"
            return f"tracker {where}: {_os_reason(exc)}"
        text = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
        kind = "no answer" if exc is None else type(exc).__name__
        return f"tracker {where}: {kind}" + (f" ({text[:120]})" if text else "")

    async def _post(
        self, request: AnyRequest, body: bytes
    ) -> tuple[TrackerResponse | ErrorResponse, int]:
        """One attempt: the decoded answer and its HTTP status.

        Raises :class:`~ppsp.errors.AuthenticationRequired` for a 401 and
        :class:`~ppsp.tracker.client_session.InvalidAnswer` for an answer that is not the
        tracker protocol's (another status, too large, unreadable).
        """
        session = self._get_session()
        async with session.post(
            self.url,
            data=body,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            ssl=self._tls,
        ) as response:
            too_large = (
                f"tracker {_tracker_name(self.url)} sent an answer over {MAX_ANSWER_BYTES} bytes"
            )
            if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
                raise InvalidAnswer(too_large)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.content.iter_any():
                total += len(chunk)
                if total > MAX_ANSWER_BYTES:
                    raise InvalidAnswer(too_large)
                chunks.append(chunk)
            data = b"".join(chunks)
            status, reason = response.status, response.reason or ""
            challenge = response.headers.get("WWW-Authenticate")
        codec = self._codec()
        if status == 401:
            # Whatever the body says (a proxy's page, the tracker's error in our encoding),
            # 401 means the credentials: not retried, one sentence for the user.
            answer401: TrackerResponse | ErrorResponse | None = None
            with contextlib.suppress(RemoteTrackerError):
                answer401 = codec.decode_response(data, status, reason)
            self._traced(request, body, status, reason, data, answer401)
            raise self._authentication_failure(challenge, answer401)
        if status not in _PROTOCOL_STATUSES:
            # Not an answer of the tracker protocol: a proxy's, a redirect, another server's.
            self._traced(request, body, status, reason, data, None)
            raise InvalidAnswer(
                f"tracker answered HTTP {status}" + (f" {reason}" if reason else "")
            )
        answer: TrackerResponse | ErrorResponse | None = None
        try:
            answer = codec.decode_response(data, status, reason)
        except RemoteTrackerError as exc:
            raise InvalidAnswer(
                f"tracker {_tracker_name(self.url)} sent an answer that cannot be read"
                f" (HTTP {status}): {' '.join(str(exc).split())[:200]}"
            ) from exc
        finally:
            self._traced(request, body, status, reason, data, answer)
        return answer, status

    def _authentication_failure(
        self, challenge: str | None, answer: TrackerResponse | ErrorResponse | None
    ) -> AuthenticationRequired:
        """The error a 401 answer stands for, its message one sentence for the user."""
        where = _tracker_name(self.url)
        params = bearer_challenge(challenge)
        if self._token is None:
            message = f"tracker {where} requires a token: {TOKEN_HINT}"
            reason = "token required"
        else:
            reason = _one_line(params.get("error_description", "")) or _one_line(
                params.get("error", "")
            )
            if not reason and isinstance(answer, ErrorResponse) and answer.reason:
                # The tracker's own words, unless they only repeat the status.
                said = _one_line(answer.reason)
                if said.lower() not in _GENERIC_401_PHRASES:
                    reason = said
            reason = reason or "invalid token"
            message = f"tracker {where} refused the token: {reason}"
        return AuthenticationRequired(
            message,
            transaction_id=answer.transaction_id if isinstance(answer, ErrorResponse) else None,
            reason=reason,
        )

    def _traced(
        self,
        request: AnyRequest,
        body: bytes,
        status: int,
        reason: str,
        data: bytes,
        answer: TrackerResponse | ErrorResponse | None,
    ) -> None:
        if self._trace is not None:
            self._trace(
                Exchange(
                    request=request,
                    request_body=body,
                    status=status,
                    reason=reason,
                    answer_body=data,
                    answer=answer,
                )
            )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            local = None if self._local_address is None else (self._local_address, 0)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local))
            self._own_session = True
        return self._session


_UNTRUSTED_ISSUER_CODES = frozenset({2, 18, 19, 20, 21})
"""OpenSSL verify codes meaning "nothing in the trust store vouches for this certificate":
unable to get the issuer, self-signed leaf, self-signed in chain, no local issuer, unable to
verify the first certificate."""


def _certificate_problem(error: BaseException) -> str:
    """``certificate verify failed: <OpenSSL's words>``, with a hint when a CA file would help."""
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        words = _one_line(error.verify_message or "", 160) or _ssl_words(error)
        hint = ""
        if error.verify_code in _UNTRUSTED_ISSUER_CODES:
            hint = " (give --ca-file with the certificate of the CA that issued it)"
        return f"certificate verify failed: {words}{hint}"
    if isinstance(error, ssl.CertificateError):
        return f"certificate verify failed: {_ssl_words(error)}"
    return f"certificate not accepted: {_ssl_words(error)}"


def _handshake_problem(exc: BaseException) -> str:
    """What a failed TLS handshake means: most often, no TLS at all on the other end."""
    import ssl

    error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    reason = getattr(error, "reason", None) if isinstance(error, ssl.SSLError) else None
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "TLS handshake failed: it does not speak TLS (write its URL with http://?)"
    return f"TLS handshake failed: {_ssl_words(error if error is not None else exc)}"


def _os_reason(error: OSError | None) -> str:
    """The words of an operating-system error, without its number."""
    if error is None:
        return "connection failed"
    return (error.strerror or str(error) or type(error).__name__).splitlines()[0][:120]
