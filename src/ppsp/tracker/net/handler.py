"""The tracker's HTTP request handler: a thin layer over the sans-I/O :class:`Tracker`, served by
the project's own HTTP server (:mod:`ppsp.http.server`).

Every ``POST``, whatever its path, carries one PPSP-TP request (PROFILE.md).  The handler

0. admits the request under its host's rate (:mod:`ppsp.tracker.net.guard`; 503 with
   ``Retry-After`` over it), taking as the host the address a trusted reverse proxy names
   (:mod:`ppsp.tracker.net.proxy`) or the connection's,
1. picks the codec from the ``Content-Type`` (:mod:`ppsp.codecs.tracker`; 415 for anything else),
   and with an auth key checks the bearer token (:mod:`ppsp.tracker.net.auth`; 401 without a valid
   one),
2. reads the body within a size bound (413 before reading more than the bound), a time bound
   (408 for a client that stalls) and the server's budget of bodies being read, charged to the
   observed host (503 SERVICE UNAVAILABLE with ``Retry-After`` when it is spent),
3. decodes it, hands the typed request to :meth:`Tracker.handle` with the observed address and the
   current time from an injectable clock, and
4. writes the answer in the request's encoding.  Every protocol error becomes that encoding's error
   answer; anything unexpected becomes a logged ``500`` / ``error_code`` 4 and never a traceback.

``GET /status`` answers a JSON summary and ``GET /metrics`` the Prometheus exposition of a
registry private to the application (:mod:`ppsp.tracker.net.metrics`); anything else is 404 or
405.  :meth:`TrackerHandler.__call__` dispatches every request (the dashboard's routes when it
has one); the application around the handler is assembled in :mod:`ppsp.tracker.net.app`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE

import ppsp
from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker import (
    JSON_MEDIA_TYPES,
    UNSUPPORTED_MEDIA_TYPE,
    XML_MEDIA_TYPES,
    codec_for,
    encoding_for,
    safe_reason,
    status_line,
)
from ppsp.errors import (
    BearerTokenError,
    HTTPRequestError,
    PayloadTooLarge,
    RemoteTrackerError,
    RequestBodyTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerProtocolError,
)
from ppsp.http.budget import BodyBudget, RequestBodyBusy, body_host
from ppsp.http.server import Request, Response
from ppsp.tracker.core import Tracker, TrackerStats
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.limits import DEFAULT_LIMITS, Limits
from ppsp.tracker.net.auth import (
    REFUSAL_REASONS,
    TokenVerifier,
    bearer_challenge,
    load_public_key,
    refusal_reason,
)
from ppsp.tracker.net.guard import ConnectionGuard, HostRates, RateWarnings, host_of
from ppsp.tracker.net.metrics import TrackerMetrics
from ppsp.tracker.net.proxy import TrustedProxies, parse_networks
from ppsp.tracker.net.settings import DEFAULT_MAX_BODY, ServerSettings, config_limits
from ppsp.tracker.net.upkeep import Clock, StorageHealth
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    Method,
    ProtocolVersion,
    StatReportRequest,
    TrackerResponse,
)

if TYPE_CHECKING:
    from ppsp.tracker.net.dashboard import Dashboard

__all__ = [
    "BODIES_BUSY_REASON",
    "REQUEST_TIMEOUT_STATUS",
    "TRACKER_APP_KEY",
    "AppKey",
    "TrackerHandler",
]

log = logging.getLogger("ppsp.tracker.net.server")
"""The server's log (one name for the HTTP server, whichever module of it writes)."""

_monotonic = time.monotonic

REQUEST_TIMEOUT_STATUS = 408
"""HTTP status for a client that did not deliver its body in time."""

_ENCODERS: dict[Encoding, Callable[[TrackerResponse | ErrorResponse], bytes]] = {
    Encoding.XML: xml_codec.encode_response,
    # Each value is checked as it is written; the output is not decoded again.
    Encoding.JSON: functools.partial(json_codec.encode_response, check=False),
}
"""Answer writers of the hot path, by encoding."""

# Metric labels, looked up rather than read from ``Enum.value`` (a Python-level property).
_ENCODING_LABELS = {encoding: encoding.value for encoding in Encoding}
_METHOD_LABELS = {method: method.value for method in Method}
# The same for the answer's media type, and a request's method by its class (``method`` is a
# property of each request class).
_CONTENT_TYPES = {encoding: encoding.content_type for encoding in Encoding}
_REQUEST_LABELS: dict[type, str] = {
    ConnectRequest: Method.CONNECT.value,
    JoinRequest: Method.JOIN.value,
    DisconnectRequest: Method.DISCONNECT.value,
    FindRequest: Method.FIND.value,
    StatReportRequest: Method.STAT_REPORT.value,
}


class _BodyTimeout(Exception):
    """The client did not deliver its body within the bound."""


class _BodyBusy(Exception):
    """The server's budget of request bodies being read cannot take this one now."""


class TrackerHandler:
    """Request handlers of one application: the tracker, its clock, settings and metrics.

    Before a request reaches the codecs it passes, in this order: the per-host request rate
    (503 with ``Retry-After``), the media type (415) and, with an auth key, the bearer token
    (401).  Each refusal costs no decoding and no storage access.
    """

    def __init__(self, tracker: Tracker, clock: Clock, settings: ServerSettings) -> None:
        self.tracker = tracker
        self.clock = clock
        self.settings = settings
        limits = settings.limits or _tracker_limits(tracker)
        self.limits = limits
        """The bounds this handler and its server apply."""
        self.body_budget = BodyBudget.shared_by(settings.processes, per_host=limits.per_host)
        """The bytes of request bodies being read, per host (not with ``--limits off``) and in
        all: this process's part of the bounds when several processes serve the port (the
        server charges them, :mod:`ppsp.http.budget`)."""
        self.metrics = TrackerMetrics(settings.shared_metrics, self.body_budget)
        self.health = StorageHealth()
        self.version = _max_version(tracker)
        self.body_timeout = limits.body_timeout
        self.proxies = TrustedProxies(
            parse_networks(settings.trusted_proxies), settings.proxy_header
        )
        self.warnings = RateWarnings()
        self.guard = ConnectionGuard(
            limits,
            processes=settings.processes,
            proxies=self.proxies,
            warnings=self.warnings,
            counts=self.metrics.refusals,
        )
        self.rates: HostRates | None = None
        if limits.per_host:
            self.rates = HostRates(
                limits.requests_per_second_per_host, limits.request_burst_per_host
            )
        self.verifier: TokenVerifier | None = None
        if settings.auth_key is not None:
            key = settings.auth_key
            if isinstance(key, Path | str):
                key = load_public_key(Path(key))
            self.verifier = TokenVerifier(key, leeway=settings.token_leeway)
            for reason in REFUSAL_REASONS:  # every reason on /metrics from the start
                self.metrics.refusals.unauthenticated.setdefault(reason, 0)
        # The core takes the credentials of a request once it knows them (issue 12); a core
        # without the parameter is called as before.
        self.pass_credentials = "credentials" in inspect.signature(tracker.handle).parameters
        self.dashboard: Dashboard | None = None
        """The dashboard whose routes are served too (set by the application that has one)."""

    def use_token_key(self, key: Ed25519PublicKey | tuple[Ed25519PublicKey, ...]) -> None:
        """Verify bearer tokens with ``key`` (or keys) from now on (a key file read again):
        tokens only a key no longer given signed are refused from the next request.  ValueError
        for a tracker that takes no tokens (started without a key)."""
        if self.verifier is None:
            raise ValueError("this tracker takes no bearer tokens")
        self.verifier = TokenVerifier(key, leeway=self.settings.token_leeway)

    # -- dispatch ----------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        """Answer any request: a POST is PPSP-TP whatever its path; GET and HEAD of the pages
        (and of the dashboard's, when it has one); anything else 404 or 405."""
        method = request.method
        if method == "POST":
            return await self.ppsp(request)
        if method == "GET" or method == "HEAD":
            path = request.path
            if path == "/status":
                return await self.status(request)
            if path == "/metrics":
                return await self.metrics_page(request)
            dashboard = self.dashboard
            if dashboard is not None:
                page = dashboard.route(request)
                if page is not None:
                    return await page(request)
        return await self.elsewhere(request)

    # -- what every request passes ---------------------------------------------------------

    def _observe(self, request: Request) -> tuple[str, int]:
        """The request's observed address: its connection's, or what a trusted proxy says."""
        peer = _observed(request)
        if self.proxies.networks:
            return self._forwarded(request, peer)
        return peer

    def _forwarded(self, request: Request, peer: tuple[str, int]) -> tuple[str, int]:
        """The client a trusted proxy at ``peer`` names, else ``peer``."""
        proxies = self.proxies
        return proxies.client(peer, request.headers.getall(proxies.header))

    def _over_rate(self, host: str) -> float:
        """0.0 when the host may send a request now, else the seconds until it may again."""
        rates = self.rates
        if rates is None:
            return 0.0
        wait = rates.admit(host_of(host), _monotonic())
        if wait:
            self.metrics.refusals.rate_limited += 1
            self._warn_rate(host)
        return wait

    def _warn_rate(self, host: str) -> None:
        """The warning about a host over its rate (once a minute at most, see RateWarnings)."""
        assert self.rates is not None
        self.warnings.warn(
            host_of(host),
            "refusing requests from %s: over %g requests per second",
            host,
            self.rates.rate,
        )

    def _credentials(self, request: Request) -> Credentials | BearerTokenError | None:
        """The request's verified credentials (None without an auth key), or why it has none."""
        verifier = self.verifier
        if verifier is None:
            return None
        try:
            # A token's expiry is a Unix time (JWT "exp"), not the tracker's (monotonic) clock.
            return verifier.check(request.headers.get("authorization"), time.time())
        except BearerTokenError as exc:
            self.metrics.refusals.count_unauthenticated(refusal_reason(exc))
            return exc

    # -- PPSP-TP ---------------------------------------------------------------------------

    async def ppsp(self, request: Request) -> Response:
        """Answer one PPSP-TP request."""
        started = time.perf_counter()
        headers = request.headers
        encoding = encoding_for(headers.get("content-type"))
        observed = _observed(request)
        if self.proxies.networks:
            observed = self._forwarded(request, observed)
        rates = self.rates
        if rates is not None:
            wait = rates.admit(host_of(observed[0]), _monotonic())
            if wait:
                self.metrics.refusals.rate_limited += 1
                self._warn_rate(observed[0])
                label = "unknown" if encoding is None else _ENCODING_LABELS[encoding]
                self.metrics.count_request("unknown", label, "rate_limited")
                return _overloaded(request, encoding, wait)
        if encoding is None or not _identity_coding(request):
            self.metrics.count_request("unknown", "unknown", "unsupported_media_type")
            return _unsupported_media_type(request)
        credentials: Credentials | None = None
        if self.verifier is not None:
            checked = self._credentials(request)
            if isinstance(checked, BearerTokenError):
                label = _ENCODING_LABELS[encoding]
                self.metrics.count_request("unknown", label, "unauthenticated")
                return _unauthorized(request, encoding, checked)
            credentials = checked

        codec = codec_for(encoding)
        method = "unknown"
        version = ProtocolVersion.V1_0
        force_close = False
        status_override: int | None = None
        answer: TrackerResponse | ErrorResponse
        try:
            body = request.body_if_arrived(self.settings.max_body)
            if body is None:
                body = await self._read_body(request, observed[0])
            message: AnyRequest = codec.decode_request(body)
            method = _REQUEST_LABELS.get(message.__class__) or _METHOD_LABELS[message.method]
            version = message.version
            if self.pass_credentials:
                answer = await self.tracker.handle(
                    message,  # type: ignore[call-arg, unused-ignore]
                    observed=observed,
                    now=self.clock(),
                    credentials=credentials,
                )
            else:
                answer = await self.tracker.handle(message, observed=observed, now=self.clock())
        except PayloadTooLarge as exc:
            force_close = True
            answer = _error(version, exc)
        except _BodyBusy:
            self.metrics.refusals.body_busy += 1
            self.metrics.count_request("unknown", _ENCODING_LABELS[encoding], "body_busy")
            self._warn_bodies(observed[0])
            return _bodies_busy(request, encoding)
        except _BodyTimeout:
            force_close = True
            status_override = REQUEST_TIMEOUT_STATUS
            answer = ErrorResponse(
                version=version,
                transaction_id=None,
                code=TrackerErrorCode.BAD_REQUEST,
                reason="Request Timeout",
            )
        except TrackerProtocolError as exc:
            if exc.code is TrackerErrorCode.UNSUPPORTED_VERSION:
                # Refuse a version in one this tracker speaks: its highest.
                version = self.version
            elif exc.code is TrackerErrorCode.SERVICE_UNAVAILABLE:
                self.health.failed(exc, f"answering a {method} request")
            answer = _error(version, exc)
        except (ConnectionError, HTTPRequestError):
            raise  # the client went away, or its body's framing is bad: the server answers
        except Exception:
            log.exception("unexpected error answering a %s request", method)
            answer = ErrorResponse(
                version=version, transaction_id=None, code=TrackerErrorCode.INTERNAL_ERROR
            )

        response = self._encode(encoding, answer, status_override)
        if force_close:
            request.close_after()
        outcome = "ok" if answer.__class__ is TrackerResponse else answer.code.name.lower()  # type: ignore[union-attr]
        if status_override == REQUEST_TIMEOUT_STATUS:
            outcome = "timeout"
        label = _ENCODING_LABELS[encoding]
        counts = self.metrics.request_metrics  # its methods called directly: one call less each
        counts.count((method, label, outcome))
        elapsed = time.perf_counter() - started
        counts.observe(label, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s %s -> %d %s%s (%.3f ms)",
                observed[0],
                encoding.value,
                version.value,
                method,
                response.status,
                outcome,
                "" if response.status == 200 else f": {response.reason}",
                elapsed * 1000,
            )
        return response

    def _encode(
        self,
        encoding: Encoding,
        answer: TrackerResponse | ErrorResponse,
        status_override: int | None,
    ) -> Response:
        encode = _ENCODERS[encoding]
        try:
            body = encode(answer)
        except Exception:
            # The core produced something the codec cannot write: a bug, reported as one.
            log.exception("could not encode the answer %r", answer)
            answer = ErrorResponse(
                version=answer.version,
                transaction_id=None,
                code=TrackerErrorCode.INTERNAL_ERROR,
            )
            try:
                body = encode(answer)
            except Exception:
                log.exception("could not encode an internal-error answer")
                body = b""
        if answer.__class__ is TrackerResponse:
            return Response(200, body, content_type=_CONTENT_TYPES[encoding])
        status, reason = status_line(answer)
        if status_override is not None:
            status = status_override
        return Response(status, body, content_type=_CONTENT_TYPES[encoding], reason=reason)

    async def _read_body(self, request: Request, client: str) -> bytes:
        """Read the body, refusing more than ``max_body`` bytes, a stall of ``body_timeout``
        (the server's body timeout, set from the same limits) or a body the budget of bodies
        being read cannot take, charged to ``client``'s host (the observed address: behind a
        trusted proxy, the client it names)."""
        try:
            return await request.read_body(self.settings.max_body, client)
        except RequestBodyTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except RequestTimeout:
            raise _BodyTimeout from None
        except RequestBodyBusy:
            raise _BodyBusy from None

    def _warn_bodies(self, host: str) -> None:
        """The warning about a body refused for the budget (once a minute per host at most)."""
        budget = self.body_budget
        self.warnings.warn(
            host_of(host),
            "refusing request bodies from %s: %d bytes being read from it, %d in all",
            host,
            budget.held(body_host(host)),
            budget.in_use,
        )

    # -- the other endpoints -----------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        """``GET /status``: a JSON summary of the tracker's state.

        ``storage`` is ``ok``, or ``unreachable`` (with the error, HTTP 503, and no counts)
        when the storage does not answer.
        """
        return await self._other(request, self._status)

    async def metrics_page(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text exposition of this application's registry.

        The peer, swarm and membership gauges are NaN while the storage does not answer; the
        counters are there whatever the storage does.
        """
        return await self._other(request, self._metrics_page)

    async def elsewhere(self, request: Request) -> Response:
        """Any request that is neither a POST nor a GET of ``/status`` or ``/metrics``.

        404 for a GET or HEAD of another path, 405 (with ``Allow``) for another method.  Such
        requests pass the same rate bound as the others (they are requests all the same).
        """
        return await self._other(request, _elsewhere)

    async def _other(
        self, request: Request, answer: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Answer a request that is not PPSP-TP, after the rate bound and (for pages) a token."""
        wait = self._over_rate(self._observe(request)[0])
        if wait:
            return _overloaded(request, None, wait)
        if answer is not _elsewhere:
            credentials = self._credentials(request)
            if isinstance(credentials, BearerTokenError):
                return _unauthorized(request, None, credentials)
        return await answer(request)

    async def _stats(self, doing: str) -> TrackerStats | ServiceUnavailable:
        """The tracker's counts, or the error of a storage that does not answer."""
        try:
            stats = await self.tracker.stats()
        except ServiceUnavailable as exc:
            self.health.failed(exc, doing)
            return exc
        self.health.answered()
        return stats

    async def _status(self, request: Request) -> Response:
        payload: dict[str, object]
        stats = await self._stats("reading the status")
        if isinstance(stats, ServiceUnavailable):
            payload = {"storage": "unreachable", "error": str(stats)}
            http_status = stats.http_status
        else:
            payload = {
                "peers": stats.peers,
                "swarms": stats.swarms,
                "memberships": stats.memberships,
                "reported": stats.reported,
                "suspects": stats.suspects,
                "state": _text(stats.state),
                "storage": "ok",
            }
            http_status = 200
        budget = self.body_budget
        payload["request_bodies"] = {
            "bytes": budget.in_use,
            "hosts": budget.hosts,
            "bodies": budget.bodies,
            "evicted": budget.evicted,
            "bound": budget.total,
            "bound_per_host": budget.per_host,
        }
        payload["version"] = self.version.value
        payload["software"] = f"ppsp/{ppsp.__version__}"
        return Response(http_status, orjson.dumps(payload), content_type="application/json")

    async def _metrics_page(self, request: Request) -> Response:
        stats = await self._stats("reading the metrics")
        counts: tuple[float, ...]
        if isinstance(stats, ServiceUnavailable):
            counts = (math.nan,) * 5
        else:
            counts = (
                stats.peers,
                stats.swarms,
                stats.memberships,
                stats.reported,
                stats.suspects,
            )
        self.metrics.peers.set(counts[0])
        self.metrics.swarms.set(counts[1])
        self.metrics.memberships.set(counts[2])
        self.metrics.reported.set(counts[3])
        self.metrics.suspects.set(counts[4])
        body = self.metrics.exposition()
        return Response(200, body, content_type=PROMETHEUS_CONTENT_TYPE)


_T = TypeVar("_T")


class AppKey(Generic[_T]):
    """The key of one part of a tracker application (``app[key]``), typed by that part."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<AppKey {self.name}>"


TRACKER_APP_KEY: AppKey[TrackerHandler] = AppKey("ppsp_tracker_app")
"""Where the application keeps its handler state (tests reach metrics and tracker through it)."""


def _tracker_limits(tracker: Tracker) -> Limits:
    """The limits of the tracker's config (the defaults for a tracker without any)."""
    config = getattr(tracker, "config", None)
    return DEFAULT_LIMITS if config is None else config_limits(config)


def _max_version(tracker: Tracker) -> ProtocolVersion:
    config = getattr(tracker, "config", None)
    version = getattr(config, "max_version", ProtocolVersion.V1_1)
    return version if isinstance(version, ProtocolVersion) else ProtocolVersion.V1_1


def _text(value: Any) -> Any:
    """An enum's value, anything else unchanged (for JSON output)."""
    return getattr(value, "value", value)


def _observed(request: Request) -> tuple[str, int]:
    """The address the request came from, as the tracker records it (REFLEXIVE)."""
    remote = request.remote
    if "%" in remote[0]:
        # A link-local IPv6 peer comes with its zone ("fe80::1%eth0"), which means nothing to
        # anyone else and is not an address on the wire.
        return remote[0].partition("%")[0], remote[1]
    return remote


def _identity_coding(request: Request) -> bool:
    """Whether the body has no content coding (compressed requests are refused: no bombs)."""
    coding = request.headers.get("content-encoding")
    return coding is None or coding.strip().lower() in ("", "identity")


def _error(version: ProtocolVersion, exc: TrackerProtocolError) -> ErrorResponse:
    """The answer to a refused request, its reason phrase saying why (docs/PROTOCOL.md,
    "Refusals and their reasons"): the reason the error was raised with, or for a message that
    could not be read, what the codec found wrong with it; printable ASCII, one line, at most
    100 characters (whatever of the request a codec's message quotes is bounded so too)."""
    reason = exc.reason
    if reason == exc.code.reason and isinstance(exc, RemoteTrackerError):
        reason = str(exc) or reason
    return ErrorResponse(
        version=version,
        transaction_id=exc.transaction_id,
        code=exc.code,
        reason=safe_reason(reason),
    )


_TEXT = "text/plain; charset=utf-8"
"""The media type of the plain-text answers."""


def _text_response(
    status: int, text: str, headers: dict[str, str] | None = None, reason: str | None = None
) -> Response:
    return Response(
        status, text.encode("utf-8"), content_type=_TEXT, headers=headers, reason=reason
    )


def _unsupported_media_type(request: Request) -> Response:
    accepted = ", ".join(sorted(XML_MEDIA_TYPES | JSON_MEDIA_TYPES))
    response = _text_response(
        UNSUPPORTED_MEDIA_TYPE,
        f"PPSP-TP requests must be sent as one of: {accepted}, without content coding\n",
        {"Accept-Post": accepted},
        reason="Unsupported Media Type",
    )
    if request.content_length > DEFAULT_MAX_BODY:
        request.close_after()
    return response


_OVERLOADED_BODIES: dict[Encoding, bytes] = {}
"""The answer to a request over its host's rate, by encoding (it never changes)."""

_UNAUTHORIZED_BODIES: dict[Encoding, bytes] = {}
"""The AUTHENTICATION REQUIRED answer, by encoding."""


def _error_body(cache: dict[Encoding, bytes], encoding: Encoding, code: TrackerErrorCode) -> bytes:
    body = cache.get(encoding)
    if body is None:
        answer = ErrorResponse(version=ProtocolVersion.V1_0, transaction_id=None, code=code)
        body = cache[encoding] = _ENCODERS[encoding](answer)
    return body


def close_unless_read(request: Request) -> None:
    """Close the connection after the answer unless the request's body is all in.

    The body of a refused request is not read: if more of it is on its way, closing costs
    less than draining it.
    """
    if not request.body_arrived:
        request.close_after()


def _overloaded(request: Request, encoding: Encoding | None, wait: float) -> Response:
    """503 to a request over its host's rate: SERVICE UNAVAILABLE in its encoding (plain text
    when it has none), with ``Retry-After`` in whole seconds (at least 1).

    The connection closes after it: what else the client pipelined on it is not answered
    (a refusal costs the server little, but a connection sending requests over its rate
    as fast as it can would be answered for as long as it kept sending)."""
    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    code = TrackerErrorCode.SERVICE_UNAVAILABLE
    request.close_after()
    if encoding is None:
        return _text_response(503, "too many requests from this address\n", headers)
    body = _error_body(_OVERLOADED_BODIES, encoding, code)
    return Response(
        503, body, content_type=encoding.content_type, headers=headers, reason=code.reason
    )


BODIES_BUSY_REASON = "Too many request bodies being read"
"""The reason phrase of a 503 for the budget of request bodies (docs/PROTOCOL.md)."""

_BODIES_BUSY_RETRY = str(RequestBodyBusy.retry_after)


def _bodies_busy(request: Request, encoding: Encoding) -> Response:
    """503 to a request whose body the budget of bodies being read cannot take: SERVICE
    UNAVAILABLE in its encoding, as over the rate, with ``Retry-After`` and the reason
    :data:`BODIES_BUSY_REASON`.  The body is unread: the connection closes after the answer."""
    request.close_after()
    body = _error_body(_OVERLOADED_BODIES, encoding, TrackerErrorCode.SERVICE_UNAVAILABLE)
    return Response(
        503,
        body,
        content_type=encoding.content_type,
        headers={"Retry-After": _BODIES_BUSY_RETRY},
        reason=BODIES_BUSY_REASON,
    )


def _unauthorized(request: Request, encoding: Encoding | None, error: BearerTokenError) -> Response:
    """401 to a request without a usable bearer token (RFC 6750 section 3).

    ``WWW-Authenticate: Bearer realm="ppsp"``, with ``error="invalid_token"`` and a
    description when a token was presented; the body is AUTHENTICATION REQUIRED in the
    request's encoding (XML status 401, JSON ``error_code`` 6), or plain text for the pages.
    """
    headers = {"WWW-Authenticate": bearer_challenge(error)}
    code = TrackerErrorCode.AUTHENTICATION_REQUIRED
    close_unless_read(request)
    if encoding is None:
        return _text_response(401, f"authentication required: {error}\n", headers)
    body = _error_body(_UNAUTHORIZED_BODIES, encoding, code)
    return Response(
        401, body, content_type=encoding.content_type, headers=headers, reason=code.reason
    )


_ALLOWED = "GET, HEAD, POST"
"""The methods the tracker answers (POST anywhere; GET and HEAD of its pages)."""


async def _elsewhere(request: Request) -> Response:
    """404 for a GET or HEAD of a page that does not exist, 405 for any other method."""
    if request.method in ("GET", "HEAD"):
        pages = "/ (the dashboard), /api/swarms, /status or /metrics"
        return _text_response(404, f"no such page: GET {pages}\n")
    close_unless_read(request)
    return _text_response(405, "PPSP-TP requests are POSTs\n", {"Allow": _ALLOWED})
