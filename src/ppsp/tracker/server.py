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

The storage is checked before the socket listens (:func:`running_tracker`): a tracker whose
storage cannot be used does not start.  A storage that fails later makes requests fail with
``503`` / ``error_code`` 5 and ``/status`` answer ``503`` naming it unreachable; the log says
so once when it fails and once when it answers again.

Several processes serving one port (:mod:`ppsp.tracker.workers`) each write their counters to
a file of a directory they share (``ServerSettings.shared_metrics``), and each ``/metrics``
answer sums them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import gc
import itertools
import logging
import math
import os
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from redis.asyncio.connection import parse_url as parse_redis_url

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
from ppsp.tracker.core import Tracker, TrackerConfig, TrackerStats
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
    "StorageHealth",
    "check_storage_url",
    "create_app",
    "make_storage",
    "run_tracker",
    "runner_for_tracker",
    "running_tracker",
    "serve_tracker",
    "storage_label",
    "verify_storage",
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
    ``shared_metrics``, for one of several processes serving one port, is the file where this
    process keeps its counters (written at most every ``metrics_flush`` seconds, and before each
    ``/metrics`` answer); ``/metrics`` then sums every ``*.json`` file of that file's directory.
    """

    max_body: int = DEFAULT_MAX_BODY
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    expiry_poll: float = 1.0
    shared_metrics: Path | None = None
    metrics_flush: float = 1.0


class _BodyTimeout(Exception):
    """The client did not deliver its body within the bound."""


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the request-duration histogram, in seconds."""


_Counts = dict[tuple[str, str, str], list[float]]
"""(method, encoding, outcome) -> [count, created]."""

_Latencies = dict[str, list[float]]
"""encoding -> [count per bucket (the last one +Inf)..., sum, created]."""


class _RequestMetrics(Collector):
    """Request counts and durations as plain numbers, turned into Prometheus samples on collection.

    Every request updates both; prometheus_client's labelled children take a lock and several
    Python calls per update, a dictionary entry and a list slot do not (about 12,000 fewer
    instructions a request).  The exposition is the one a labelled Counter and Histogram give.
    The count of expired peers is kept here too (``expired``: [count, created]) and exposed by
    :class:`_ExpiredPeers`.

    ``view``, when set, is what collection exposes instead of this process's own numbers (the
    sum over several processes, see :class:`_SharedMetrics`).
    """

    def __init__(self) -> None:
        self.counts: _Counts = {}
        self.latencies: _Latencies = {}
        self.expired: list[float] = [0, time.time()]
        self.view: tuple[_Counts, _Latencies, list[float]] | None = None

    def count(self, key: tuple[str, str, str]) -> None:
        """Count one request under its labels."""
        entry = self.counts.get(key)
        if entry is None:
            entry = self.counts[key] = [0, time.time()]
        entry[0] += 1

    def observe(self, encoding: str, seconds: float) -> None:
        """Record one request's duration."""
        entry = self.latencies.get(encoding)
        if entry is None:
            entry = self.latencies[encoding] = [0.0] * (len(_LATENCY_BUCKETS) + 1)
            entry += [0.0, time.time()]
        entry[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        entry[-2] += seconds

    def count_expired(self, peers: int) -> None:
        """Count peers removed by the expiry task."""
        self.expired[0] += peers

    def exposed(self) -> tuple[_Counts, _Latencies, list[float]]:
        """The numbers collection exposes: the view when set, else this process's own."""
        return self.view if self.view is not None else (self.counts, self.latencies, self.expired)

    def collect(self) -> Iterator[Metric]:
        """The request counter and the duration histogram, as Prometheus metric families."""
        counts, latencies, _ = self.exposed()
        requests = CounterMetricFamily(
            "ppsp_tracker_requests",
            "PPSP-TP requests by method, encoding and outcome.",
            labels=["method", "encoding", "outcome"],
        )
        for key, (count, created) in counts.items():
            requests.add_metric(key, count, created=created)
        yield requests
        name = "ppsp_tracker_request_duration_seconds"
        latency = HistogramMetricFamily(
            name, "Time from the start of a request to its answer.", labels=["encoding"]
        )
        bounds = [*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"]
        for encoding, entry in latencies.items():
            cumulative = list(itertools.accumulate(entry[:-2]))
            latency.add_metric([encoding], list(zip(bounds, cumulative, strict=True)), entry[-2])
            latency.samples.append(Sample(name + "_created", {"encoding": encoding}, entry[-1]))
        yield latency


class _ExpiredPeers(Collector):
    """The counter of expired peers, as a prometheus_client Counter would expose it."""

    def __init__(self, source: _RequestMetrics) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The expired-peers counter family."""
        count, created = self._source.exposed()[2]
        yield CounterMetricFamily(
            "ppsp_tracker_expired_peers",
            "Peers removed because a timer ran out.",
            value=count,
            created=created,
        )


class _SharedMetrics:
    """The counters of several processes serving one port, through files in one directory.

    Each process writes its own numbers to its file (``{pid}.json``: a replaced worker's file
    stays, so the sums never go down) by writing a temporary file and renaming it, so a reader
    sees a whole file.  A scrape writes this process's file first, then sums every file:
    counters and histogram buckets add up, the creation time is the earliest.
    """

    def __init__(self, path: Path, metrics: _RequestMetrics) -> None:
        self.path = path
        self._metrics = metrics
        self._written = -1.0

    def _total(self) -> float:
        counts = self._metrics.counts
        return sum(entry[0] for entry in counts.values()) + self._metrics.expired[0]

    def write(self) -> None:
        """Write this process's numbers (a failure is logged, the next write tries again)."""
        metrics = self._metrics
        snapshot = {
            "requests": [[*key, *entry] for key, entry in metrics.counts.items()],
            "latency": metrics.latencies,
            "expired": metrics.expired,
        }
        total = self._total()
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_bytes(orjson.dumps(snapshot))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.debug("could not write the metrics file %s: %s", self.path, exc)
        else:
            self._written = total

    def write_if_changed(self) -> None:
        """Write this process's numbers if any changed since the last write."""
        if self._total() != self._written:
            self.write()

    def summed(self) -> tuple[_Counts, _Latencies, list[float]]:
        """This process's numbers written out, then the sum over every process's file.

        A file that cannot be read or does not hold what :meth:`write` writes is left out.
        """
        self.write()
        counts: _Counts = {}
        latencies: _Latencies = {}
        expired = [0.0, math.inf]
        for path in sorted(self.path.parent.glob("*.json")):
            snapshot = _read_snapshot(path)
            if snapshot is None:
                continue
            for key, entry in snapshot[0].items():
                _add(counts.setdefault(key, [0, math.inf]), entry)
            for encoding, entry in snapshot[1].items():
                _add(latencies.setdefault(encoding, [0.0] * _LATENCY_FIELDS + [math.inf]), entry)
            _add(expired, snapshot[2])
        if expired[1] == math.inf:  # no file could be read, not even this process's
            return self._metrics.counts, self._metrics.latencies, self._metrics.expired
        return counts, latencies, expired


_LATENCY_FIELDS = len(_LATENCY_BUCKETS) + 2
"""Numbers of a latency entry before its creation time: the buckets, +Inf, the sum."""


def _read_snapshot(path: Path) -> tuple[_Counts, _Latencies, list[float]] | None:
    """The numbers a :class:`_SharedMetrics` file holds, or None (logged) when it holds others."""
    try:
        raw = orjson.loads(path.read_bytes())
        counts: _Counts = {}
        for method, encoding, outcome, count, created in raw["requests"]:
            counts[str(method), str(encoding), str(outcome)] = [float(count), float(created)]
        latencies: _Latencies = {}
        for encoding, entry in raw["latency"].items():
            numbers = [float(value) for value in entry]
            if len(numbers) != _LATENCY_FIELDS + 1:
                raise ValueError(f"a latency entry of {len(numbers)} numbers")
            latencies[str(encoding)] = numbers
        expired_count, expired_created = raw["expired"]
        return counts, latencies, [float(expired_count), float(expired_created)]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.debug("leaving out the metrics file %s: %s", path, exc)
        return None


def _add(total: list[float], entry: list[float]) -> None:
    """Add ``entry``'s numbers into ``total``, whose last item is the earliest creation time."""
    for index in range(len(total) - 1):
        total[index] += entry[index]
    total[-1] = min(total[-1], entry[-1])


class _Metrics:
    """Prometheus instruments of one application, on a registry of their own.

    With ``shared`` (this process's file among those of the processes serving one port), the
    counters exposed are the sums over every process (:class:`_SharedMetrics`); the gauges are
    the storage's counts, shared already.
    """

    def __init__(self, shared: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_metrics = _RequestMetrics()
        self.registry.register(self.request_metrics)
        self.peers = Gauge("ppsp_tracker_peers", "Registered peers.", registry=self.registry)
        self.swarms = Gauge("ppsp_tracker_swarms", "Swarms with members.", registry=self.registry)
        self.memberships = Gauge(
            "ppsp_tracker_memberships", "Peer-in-swarm memberships.", registry=self.registry
        )
        self.registry.register(_ExpiredPeers(self.request_metrics))
        self.shared = _SharedMetrics(shared, self.request_metrics) if shared else None

    def count_request(self, method: str, encoding: str, outcome: str) -> None:
        """Count one request under its labels."""
        self.request_metrics.count((method, encoding, outcome))

    def observe_latency(self, encoding: str, seconds: float) -> None:
        """Record one request's duration."""
        self.request_metrics.observe(encoding, seconds)

    def count_expired(self, peers: int) -> None:
        """Count peers removed by the expiry task."""
        self.request_metrics.count_expired(peers)

    def exposition(self) -> bytes:
        """The Prometheus text exposition (summed over processes when shared)."""
        if self.shared is None:
            return generate_latest(self.registry)
        self.request_metrics.view = self.shared.summed()
        try:
            return generate_latest(self.registry)
        finally:
            self.request_metrics.view = None


class StorageHealth:
    """Whether the storage answered when last used; each change is logged once.

    Requests, the expiry task and ``/status`` report their failures and successes here, so
    that a storage that goes away gives one warning (not one per request or per second) and
    one line when it answers again.
    """

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, exc: Exception, doing: str) -> None:
        """Record that the storage failed while ``doing`` something."""
        if self.error is None:
            log.warning("%s failed: %s", doing, exc)
        else:
            log.debug("%s failed: %s", doing, exc)
        self.error = str(exc)

    def answered(self) -> None:
        """Record that the storage answered."""
        if self.error is not None:
            log.warning("the storage answers again (it failed with: %s)", self.error)
            self.error = None


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
        health: StorageHealth | None = None,
    ) -> None:
        self._tracker = tracker
        self._clock = clock
        self._poll = poll
        self._on_expired = on_expired
        self._health = health if health is not None else StorageHealth()
        # Whether an expire() has succeeded: until then every tick tries one, since with a
        # shared storage (Redis) that is how the core learns the timers already stored.
        self._primed = False

    async def tick(self) -> float:
        """Expire what is due now; return the delay until the next look (0 < delay <= poll).

        While the storage is failing (or has never answered) every tick tries again, so that
        its return is noticed within ``poll`` seconds.
        """
        now = self._clock()
        deadline = self._tracker.next_deadline()
        due = deadline is not None and deadline <= now
        if due or not self._primed or self._health.error is not None:
            await self._expire(now)
            deadline = self._tracker.next_deadline()
            now = self._clock()
        if deadline is None:
            return self._poll
        # A floor keeps a core whose deadline does not move from turning this into a busy loop.
        return min(self._poll, max(deadline - now, 0.01))

    async def _expire(self, now: float) -> None:
        try:
            count = await self._tracker.expire(now)
        except ServiceUnavailable as exc:
            self._health.failed(exc, "expiring peers")
        except Exception:
            log.exception("expiring peers failed")
        else:
            self._primed = True
            self._health.answered()
            if count:
                log.debug("expired %d peer(s)", count)
                if self._on_expired is not None:
                    self._on_expired(count)

    async def run(self) -> None:
        """Expire peers at their deadlines until cancelled (the first tick always looks)."""
        task = asyncio.current_task()
        while True:
            delay = await self.tick()
            if task is not None and task.cancelling():
                # The storage client swallowed the cancellation (redis-py can, when it comes
                # while a connection is being set up): stop anyway, or shutdown would wait
                # for this task forever.
                raise asyncio.CancelledError
            await asyncio.sleep(delay)


class _TrackerApp:
    """Request handlers of one application: the tracker, its clock, settings and metrics."""

    def __init__(self, tracker: Tracker, clock: Clock, settings: ServerSettings) -> None:
        self.tracker = tracker
        self.clock = clock
        self.settings = settings
        self.metrics = _Metrics(settings.shared_metrics)
        self.health = StorageHealth()
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
            elif exc.code is TrackerErrorCode.SERVICE_UNAVAILABLE:
                self.health.failed(exc, f"answering a {method} request")
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

    async def _stats(self, doing: str) -> TrackerStats | ServiceUnavailable:
        """The tracker's counts, or the error of a storage that does not answer."""
        try:
            stats = await self.tracker.stats()
        except ServiceUnavailable as exc:
            self.health.failed(exc, doing)
            return exc
        self.health.answered()
        return stats

    async def status(self, request: web.Request) -> web.Response:
        """``GET /status``: a JSON summary of the tracker's state.

        ``storage`` is ``ok``, or ``unreachable`` (with the error, HTTP 503, and no counts)
        when the storage does not answer.
        """
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
                "state": _text(stats.state),
                "storage": "ok",
            }
            http_status = 200
        payload["version"] = self.version.value
        payload["software"] = f"ppsp/{ppsp.__version__}"
        return web.Response(
            status=http_status, body=orjson.dumps(payload), content_type="application/json"
        )

    async def metrics_page(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text exposition of this application's registry.

        The peer, swarm and membership gauges are NaN while the storage does not answer; the
        counters are there whatever the storage does.
        """
        stats = await self._stats("reading the metrics")
        if isinstance(stats, ServiceUnavailable):
            counts = (math.nan, math.nan, math.nan)
        else:
            counts = (stats.peers, stats.swarms, stats.memberships)
        self.metrics.peers.set(counts[0])
        self.metrics.swarms.set(counts[1])
        self.metrics.memberships.set(counts[2])
        body = self.metrics.exposition()
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
            tracker,
            clock,
            poll=settings.expiry_poll,
            on_expired=state.metrics.count_expired,
            health=state.health,
        )

        async def expiry_task(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(expirer.run(), name="ppsp-tracker-expiry")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(expiry_task)

    shared = state.metrics.shared
    if shared is not None:
        flush = settings.metrics_flush

        async def metrics_writer() -> None:
            while True:
                await asyncio.sleep(flush)
                shared.write_if_changed()

        async def metrics_task(app: web.Application) -> AsyncIterator[None]:
            shared.write()
            task = asyncio.create_task(metrics_writer(), name="ppsp-tracker-metrics")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            shared.write()  # the last requests of a worker that stops count too

        app.cleanup_ctx.append(metrics_task)
    return app


def check_storage_url(url: str | None) -> None:
    """Raise ValueError, with a one-line message, unless ``url`` names a storage.

    ``memory`` (or nothing), or a well-formed ``redis://``, ``rediss://`` or ``unix://`` URL.
    Nothing is connected to.
    """
    if url is None or url == "memory":
        return
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unknown storage {storage_label(url)}: use 'memory' or a redis:// URL")
    try:
        parse_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"invalid storage URL {storage_label(url)}: {exc}") from None


def make_storage(url: str | None) -> MemoryStorage | RedisStorage:
    """The storage a ``--storage`` value names: ``memory`` (or nothing) or a ``redis://`` URL.

    Raises ValueError as :func:`check_storage_url` does.
    """
    check_storage_url(url)
    if url is None or url == "memory":
        return MemoryStorage()
    return RedisStorage(url)


def storage_label(url: str | None) -> str:
    """A storage URL fit for messages and logs: any password replaced by ``***``."""
    if url is None:
        return "memory"
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "the storage URL"


async def verify_storage(url: str | None) -> None:
    """Raise :class:`~ppsp.errors.ServiceUnavailable` (or ValueError) unless ``url`` is usable.

    The check a tracker makes before it listens (:meth:`Storage.check`), for a caller that
    starts its servers later (the parent of several worker processes).
    """
    storage = make_storage(url)
    try:
        await storage.check()
    finally:
        await storage.close()


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
    check_storage: bool = True,
) -> AsyncIterator[RunningTracker]:
    """Serve a tracker on ``host:port`` (a free port when 0) for the duration of the block.

    With ``sock``, a listening socket (shared by several workers, see
    :mod:`ppsp.tracker.workers`), the tracker serves on it instead.  On exit the listening
    socket is closed, connections are finished, the expiry task stops and the storage is closed.

    The storage is checked first (``check_storage``; a worker whose parent checked it skips
    this): one that cannot be used raises :class:`~ppsp.errors.ServiceUnavailable` before
    anything listens.  A malformed storage URL raises ValueError.
    """
    storage = make_storage(storage_url)
    if check_storage:
        try:
            await storage.check()
        except BaseException:
            await storage.close()
            raise
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
    check_storage: bool = True,
) -> None:
    """Serve a tracker until ``stop`` is set (or SIGINT/SIGTERM arrives), then shut down cleanly.

    ``on_ready`` receives the base URL once the socket listens (with the real port when ``port``
    is 0): announcing it is the caller's (the log has it at debug level only, so that several
    worker processes do not each announce the port).  With ``sock``, the tracker serves on that
    listening socket instead of ``host:port``.  ``check_storage``: see :func:`running_tracker`.
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
            check_storage=check_storage,
        ) as running:
            log.debug(
                "tracker process %d (PPSP-TP/%s) serving on %s",
                os.getpid(),
                config.max_version.value,
                running.url,
            )
            _tune_garbage_collector()
            if on_ready is not None:
                on_ready(running.url)
            await stop.wait()
            log.debug("tracker process %d shutting down", os.getpid())


def run_tracker(
    host: str,
    port: int,
    config: TrackerConfig,
    storage_url: str | None = None,
    *,
    settings: ServerSettings | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run a tracker in the foreground until SIGINT or SIGTERM (uvloop when it is installed).

    Raises :class:`~ppsp.errors.ServiceUnavailable` when the storage cannot be used, ValueError
    for a malformed storage URL and OSError when the socket cannot be bound, all before
    ``on_ready`` is called.
    """
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
        # A link-local IPv6 peer comes with its zone ("fe80::1%eth0"), which means nothing to
        # anyone else and is not an address on the wire.
        return str(peer[0]).partition("%")[0], int(peer[1])
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
