"""The tracker's HTTP server: a thin aiohttp layer over the sans-I/O :class:`Tracker`.

Every ``POST``, whatever its path, carries one PPSP-TP request (PROFILE.md).  The server

1. picks the codec from the ``Content-Type`` (:mod:`ppsp.tracker.codec`; 415 for anything else),
2. reads the body within a size bound (413 before reading more than the bound) and a time bound
   (408 for a client that stalls),
3. decodes it, hands the typed request to :meth:`Tracker.handle` with the observed address and the
   current time from an injectable clock, and
4. writes the answer in the request's encoding.  Every protocol error becomes that encoding's error
   answer; anything unexpected becomes a logged ``500`` / ``error_code`` 4 and never a traceback.

``GET /status`` answers a JSON summary and ``GET /metrics`` the Prometheus exposition of a
registry private to the application.  A background task expires peers whose timers ran out: it
sleeps until the core's :meth:`Tracker.next_deadline` (re-read after every wake-up, the way
aioquic re-arms its single timer), never longer than ``expiry_poll`` seconds so that deadlines
created by new requests are noticed promptly.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import gc
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import ppsp
from ppsp.errors import (
    PayloadTooLarge,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerProtocolError,
)
from ppsp.signals import on_signals
from ppsp.tracker import json_codec, xml_codec
from ppsp.tracker.codec import (
    JSON_MEDIA_TYPES,
    UNSUPPORTED_MEDIA_TYPE,
    XML_MEDIA_TYPES,
    codec_for,
    encoding_for,
    safe_reason,
    status_line,
)
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.messages import (
    AnyRequest,
    Encoding,
    ErrorResponse,
    Method,
    ProtocolVersion,
    TrackerResponse,
)
from ppsp.tracker.storage import MemoryStorage, RedisStorage

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY",
    "Expirer",
    "RunningTracker",
    "ServerSettings",
    "create_app",
    "make_storage",
    "run_tracker",
    "runner_for_tracker",
    "running_tracker",
    "serve_tracker",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024
"""Default bound on a request body, in bytes."""

DEFAULT_BODY_TIMEOUT = 10.0
"""Default time a client has to deliver a whole request body, in seconds."""

REQUEST_TIMEOUT_STATUS = 408
"""HTTP status for a client that did not deliver its body in time."""

Clock = Callable[[], float]
"""A source of the current time in seconds (``time.monotonic`` or a test's fake)."""

_ENCODERS: dict[Encoding, Callable[[TrackerResponse | ErrorResponse], bytes]] = {
    Encoding.XML: xml_codec.encode_response,
    # Each value is checked as it is written; the output is not decoded again.
    Encoding.JSON: functools.partial(json_codec.encode_response, check=False),
}
"""Answer writers of the hot path, by encoding."""

# Metric labels, looked up rather than read from ``Enum.value`` (a Python-level property).
_ENCODING_LABELS = {encoding: encoding.value for encoding in Encoding}
_METHOD_LABELS = {method: method.value for method in Method}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """I/O-level settings of the tracker's HTTP server (the protocol's live in TrackerConfig).

    ``max_body`` bounds a request body in bytes; ``body_timeout`` bounds the time to read it;
    ``expiry_poll`` bounds how long the expiry task sleeps between looks at the next deadline.
    """

    max_body: int = DEFAULT_MAX_BODY
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    expiry_poll: float = 1.0


class _BodyTimeout(Exception):
    """The client did not deliver its body within the bound."""


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the request-duration histogram, in seconds."""


class _RequestMetrics(Collector):
    """Request counts and durations as plain numbers, turned into Prometheus samples on collection.

    Every request updates both; prometheus_client's labelled children take a lock and several
    Python calls per update, a dictionary entry and a list slot do not (about 12,000 fewer
    instructions a request).  The exposition is the one a labelled Counter and Histogram give.
    """

    def __init__(self) -> None:
        # (method, encoding, outcome) -> [count, created]
        self._counts: dict[tuple[str, str, str], list[float]] = {}
        # encoding -> [count per bucket (the last one +Inf)..., sum, created]
        self._latencies: dict[str, list[float]] = {}

    def count(self, key: tuple[str, str, str]) -> None:
        """Count one request under its labels."""
        entry = self._counts.get(key)
        if entry is None:
            entry = self._counts[key] = [0, time.time()]
        entry[0] += 1

    def observe(self, encoding: str, seconds: float) -> None:
        """Record one request's duration."""
        entry = self._latencies.get(encoding)
        if entry is None:
            entry = self._latencies[encoding] = [0.0] * (len(_LATENCY_BUCKETS) + 1)
            entry += [0.0, time.time()]
        entry[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        entry[-2] += seconds

    def collect(self) -> Iterator[Metric]:
        """The request counter and the duration histogram, as Prometheus metric families."""
        requests = CounterMetricFamily(
            "ppsp_tracker_requests",
            "PPSP-TP requests by method, encoding and outcome.",
            labels=["method", "encoding", "outcome"],
        )
        for key, (count, created) in self._counts.items():
            requests.add_metric(key, count, created=created)
        yield requests
        name = "ppsp_tracker_request_duration_seconds"
        latency = HistogramMetricFamily(
            name, "Time from the start of a request to its answer.", labels=["encoding"]
        )
        bounds = [*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"]
        for encoding, entry in self._latencies.items():
            cumulative = list(itertools.accumulate(entry[:-2]))
            latency.add_metric([encoding], list(zip(bounds, cumulative, strict=True)), entry[-2])
            latency.samples.append(Sample(name + "_created", {"encoding": encoding}, entry[-1]))
        yield latency


class _Metrics:
    """Prometheus instruments of one application, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_metrics = _RequestMetrics()
        self.registry.register(self.request_metrics)
        self.peers = Gauge("ppsp_tracker_peers", "Registered peers.", registry=self.registry)
        self.swarms = Gauge("ppsp_tracker_swarms", "Swarms with members.", registry=self.registry)
        self.memberships = Gauge(
            "ppsp_tracker_memberships", "Peer-in-swarm memberships.", registry=self.registry
        )
        self.expired = Counter(
            "ppsp_tracker_expired_peers",
            "Peers removed because a timer ran out.",
            registry=self.registry,
        )

    def count_request(self, method: str, encoding: str, outcome: str) -> None:
        """Count one request under its labels."""
        self.request_metrics.count((method, encoding, outcome))

    def observe_latency(self, encoding: str, seconds: float) -> None:
        """Record one request's duration."""
        self.request_metrics.observe(encoding, seconds)


class Expirer:
    """Calls :meth:`Tracker.expire` when the core's next deadline has passed.

    :meth:`tick` does one step without sleeping and returns how long to sleep before the next;
    :meth:`run` loops over it.  Tests drive :meth:`tick` with a fake clock.
    """

    def __init__(
        self,
        tracker: Tracker,
        clock: Clock,
        *,
        poll: float = 1.0,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        self._tracker = tracker
        self._clock = clock
        self._poll = poll
        self._on_expired = on_expired

    async def tick(self) -> float:
        """Expire what is due now; return the delay until the next look (0 < delay <= poll)."""
        now = self._clock()
        deadline = self._tracker.next_deadline()
        if deadline is not None and deadline <= now:
            try:
                count = await self._tracker.expire(now)
            except ServiceUnavailable as exc:
                log.warning("expiring peers failed, trying again: %s", exc)
            except Exception:
                log.exception("expiring peers failed")
            else:
                if count:
                    log.debug("expired %d peer(s)", count)
                    if self._on_expired is not None:
                        self._on_expired(count)
            deadline = self._tracker.next_deadline()
            now = self._clock()
        if deadline is None:
            return self._poll
        # A floor keeps a core whose deadline does not move from turning this into a busy loop.
        return min(self._poll, max(deadline - now, 0.01))

    async def run(self) -> None:
        """Expire peers at their deadlines until cancelled.

        The first look calls :meth:`Tracker.expire` unconditionally: with a shared storage
        (Redis) that is how the core learns the timers already stored.
        """
        try:
            await self._tracker.expire(self._clock())
        except ServiceUnavailable as exc:
            log.warning("expiring peers failed, trying again: %s", exc)
        except Exception:
            log.exception("expiring peers failed")
        while True:
            delay = await self.tick()
            await asyncio.sleep(delay)


class _TrackerApp:
    """Request handlers of one application: the tracker, its clock, settings and metrics."""

    def __init__(self, tracker: Tracker, clock: Clock, settings: ServerSettings) -> None:
        self.tracker = tracker
        self.clock = clock
        self.settings = settings
        self.metrics = _Metrics()
        self.version = _max_version(tracker)

    async def ppsp(self, request: web.Request) -> web.StreamResponse:
        """Answer one PPSP-TP request."""
        started = time.perf_counter()
        encoding = encoding_for(request.headers.get("Content-Type"))
        if encoding is None or not _identity_coding(request):
            self.metrics.count_request("unknown", "unknown", "unsupported_media_type")
            return _unsupported_media_type(request)

        codec = codec_for(encoding)
        method = "unknown"
        version = ProtocolVersion.V1_0
        force_close = False
        status_override: int | None = None
        answer: TrackerResponse | ErrorResponse
        try:
            body = await self._read_body(request)
            message: AnyRequest = codec.decode_request(body)
            method = _METHOD_LABELS[message.method]
            version = message.version
            answer = await self.tracker.handle(
                message, observed=_observed(request), now=self.clock()
            )
        except PayloadTooLarge as exc:
            force_close = True
            answer = _error(version, exc)
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
            answer = _error(version, exc)
        except Exception:
            log.exception("unexpected error answering a %s request", method)
            answer = ErrorResponse(
                version=version, transaction_id=None, code=TrackerErrorCode.INTERNAL_ERROR
            )

        response = self._encode(encoding, answer, status_override)
        if force_close:
            response.force_close()
        outcome = "ok" if isinstance(answer, TrackerResponse) else answer.code.name.lower()
        if status_override == REQUEST_TIMEOUT_STATUS:
            outcome = "timeout"
        label = _ENCODING_LABELS[encoding]
        self.metrics.count_request(method, label, outcome)
        elapsed = time.perf_counter() - started
        self.metrics.observe_latency(label, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s %s -> %d %s (%.3f ms)",
                request.remote,
                encoding.value,
                version.value,
                method,
                response.status,
                outcome,
                elapsed * 1000,
            )
        return response

    def _encode(
        self,
        encoding: Encoding,
        answer: TrackerResponse | ErrorResponse,
        status_override: int | None,
    ) -> web.Response:
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
        status, reason = status_line(answer)
        if status_override is not None:
            status = status_override
        return web.Response(
            status=status,
            reason=reason,
            body=body,
            headers={"Content-Type": encoding.content_type},
        )

    async def _read_body(self, request: web.Request) -> bytes:
        """Read the body, refusing more than ``max_body`` bytes or a stall of ``body_timeout``."""
        limit = self.settings.max_body
        declared = request.content_length
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds {limit}")
        content = request.content
        if content.is_eof() and content.exception() is None:
            # The whole body has already arrived: nothing can stall, no timer is needed.
            body = content.read_nowait()
            if len(body) > limit:
                raise PayloadTooLarge(f"body exceeds {limit} bytes")
            return body
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise PayloadTooLarge(f"body exceeds {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise _BodyTimeout from exc
        return b"".join(chunks)

    async def status(self, request: web.Request) -> web.Response:
        """``GET /status``: a JSON summary of the tracker's state."""
        stats = await self.tracker.stats()
        payload = {
            "peers": stats.peers,
            "swarms": stats.swarms,
            "memberships": stats.memberships,
            "state": _text(stats.state),
            "version": self.version.value,
            "software": f"ppsp/{ppsp.__version__}",
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def metrics_page(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text exposition of this application's registry."""
        stats = await self.tracker.stats()
        self.metrics.peers.set(stats.peers)
        self.metrics.swarms.set(stats.swarms)
        self.metrics.memberships.set(stats.memberships)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


TRACKER_APP_KEY = web.AppKey("ppsp_tracker_app", _TrackerApp)
"""Where the application keeps its handler state (tests reach metrics and tracker through it)."""


def create_app(
    tracker: Tracker,
    *,
    clock: Clock = time.monotonic,
    settings: ServerSettings | None = None,
    run_expiry: bool = True,
) -> web.Application:
    """Build the aiohttp application that serves ``tracker``.

    ``clock`` gives the ``now`` passed to the core; ``run_expiry`` starts the background task that
    expires peers at their deadlines (tests that drive :class:`Expirer` themselves turn it off).
    """
    settings = settings or ServerSettings()
    state = _TrackerApp(tracker, clock, settings)
    # client_max_size is a second line of defence: handlers read the body with their own bound.
    app = web.Application(client_max_size=settings.max_body)
    app[TRACKER_APP_KEY] = state
    app.router.add_get("/status", state.status)
    app.router.add_get("/metrics", state.metrics_page)
    app.router.add_post("/{path:.*}", state.ppsp)

    if run_expiry:
        expirer = Expirer(
            tracker, clock, poll=settings.expiry_poll, on_expired=state.metrics.expired.inc
        )

        async def expiry_task(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(expirer.run(), name="ppsp-tracker-expiry")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(expiry_task)
    return app


def make_storage(url: str | None) -> MemoryStorage | RedisStorage:
    """The storage a ``--storage`` value names: ``memory`` (or nothing) or a ``redis://`` URL."""
    if url is None or url == "memory":
        return MemoryStorage()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStorage(url)
    raise ValueError(f"unknown storage {url!r}: use 'memory' or a redis:// URL")


def clock_for(storage_url: str | None) -> Clock:
    """The clock that suits a storage.

    In memory the monotonic clock is immune to wall-clock steps.  Redis may be shared by several
    tracker processes, whose monotonic clocks do not agree, so there the wall clock is used.
    """
    if storage_url is None or storage_url == "memory":
        return time.monotonic
    return time.time


@dataclass(frozen=True, slots=True)
class RunningTracker:
    """A tracker listening on a socket: its base URL and the service behind it."""

    url: str
    tracker: Tracker
    app: web.Application


@contextlib.asynccontextmanager
async def running_tracker(
    config: TrackerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    storage_url: str | None = None,
    settings: ServerSettings | None = None,
    sock: socket.socket | None = None,
) -> AsyncIterator[RunningTracker]:
    """Serve a tracker on ``host:port`` (a free port when 0) for the duration of the block.

    With ``sock``, a listening socket (shared by several workers, see
    :mod:`ppsp.tracker.workers`), the tracker serves on it instead.  On exit the listening
    socket is closed, connections are finished, the expiry task stops and the storage is closed.
    """
    storage = make_storage(storage_url)
    tracker = Tracker(storage, config)
    app = create_app(tracker, clock=clock_for(storage_url), settings=settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site: web.BaseSite
        if sock is None:
            site = web.TCPSite(runner, host, port, backlog=1024)
        else:
            site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        yield RunningTracker(url=_site_url(runner, host, port), tracker=tracker, app=app)
    finally:
        await runner.cleanup()
        close = getattr(storage, "close", None)
        if close is not None:
            await close()


async def serve_tracker(
    host: str = "127.0.0.1",
    port: int = 0,
    config: TrackerConfig | None = None,
    storage_url: str | None = None,
    *,
    settings: ServerSettings | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve a tracker until ``stop`` is set (or SIGINT/SIGTERM arrives), then shut down cleanly.

    ``on_ready`` receives the base URL once the socket listens (with the real port when ``port``
    is 0).  With ``sock``, the tracker serves on that listening socket instead of ``host:port``.
    """
    stop = stop or asyncio.Event()
    config = config or TrackerConfig()
    with on_signals(stop.set):
        async with running_tracker(
            config,
            host=host,
            port=port,
            storage_url=storage_url,
            settings=settings,
            sock=sock,
        ) as running:
            log.info("ppsp tracker %s listening on %s", config.max_version.value, running.url)
            _tune_garbage_collector()
            if on_ready is not None:
                on_ready(running.url)
            await stop.wait()
            log.info("ppsp tracker shutting down")


def run_tracker(
    host: str,
    port: int,
    config: TrackerConfig,
    storage_url: str | None = None,
    *,
    settings: ServerSettings | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run a tracker in the foreground until SIGINT or SIGTERM (uvloop when it is installed)."""
    with runner_for_tracker() as runner:
        runner.run(
            serve_tracker(host, port, config, storage_url, settings=settings, on_ready=on_ready)
        )


GC_THRESHOLD = 50_000
"""Allocations between young-generation collections in a serving tracker (CPython: 700)."""


def _tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running server.

    Everything alive once the server listens (modules, the application) is moved out of the
    collector's sight, and young collections run every 50,000 allocations instead of 700: a
    request allocates a few hundred short-lived objects that reference counting frees anyway.
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


def runner_for_tracker() -> asyncio.Runner:
    """An asyncio runner on uvloop when it is installed: the tracker's many small requests."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _site_url(runner: web.AppRunner, host: str, port: int) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound_host, bound_port = str(address[0]), int(address[1])
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            return f"http://{shown}:{bound_port}"
    return f"http://{host}:{port}"


def _max_version(tracker: Tracker) -> ProtocolVersion:
    config = getattr(tracker, "config", None)
    version = getattr(config, "max_version", ProtocolVersion.V1_1)
    return version if isinstance(version, ProtocolVersion) else ProtocolVersion.V1_1


def _text(value: Any) -> Any:
    """An enum's value, anything else unchanged (for JSON output)."""
    return getattr(value, "value", value)


def _observed(request: web.Request) -> tuple[str, int]:
    """The address the request came from, as the tracker records it (REFLEXIVE)."""
    # The connection's peer name, cached once per connection by aiohttp.
    peer = getattr(request.protocol, "peername", None)
    if not (isinstance(peer, tuple) and len(peer) >= 2):
        peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return request.remote or "0.0.0.0", 0


def _identity_coding(request: web.Request) -> bool:
    """Whether the body has no content coding (compressed requests are refused: no bombs)."""
    coding = request.headers.get("Content-Encoding")
    return coding is None or coding.strip().lower() in ("", "identity")


def _error(version: ProtocolVersion, exc: TrackerProtocolError) -> ErrorResponse:
    return ErrorResponse(
        version=version,
        transaction_id=exc.transaction_id,
        code=exc.code,
        reason=safe_reason(exc.reason),
    )


def _unsupported_media_type(request: web.Request) -> web.Response:
    accepted = ", ".join(sorted(XML_MEDIA_TYPES | JSON_MEDIA_TYPES))
    response = web.Response(
        status=UNSUPPORTED_MEDIA_TYPE,
        text=f"PPSP-TP requests must be sent as one of: {accepted}, without content coding\n",
        headers={"Accept-Post": accepted},
    )
    if request.content_length is None or request.content_length > DEFAULT_MAX_BODY:
        response.force_close()
    return response
