"""The tracker's Prometheus metrics: request counts and durations, expired peers, peer counts,
the bytes of request bodies being read, and what the tracker refused (connections over a
bound, heads and idle connections timed out, requests over their host's rate, without a usable
bearer token, or whose body the budget of bodies being read could not take) and the bodies
that budget evicted for lagging their pace.

Each application has a registry of its own (:class:`TrackerMetrics`).  Request counts and
durations are plain numbers turned into samples on collection (:class:`RequestMetrics`), far
cheaper per request than prometheus_client's labelled children; so are the refusals
(:class:`RefusalCounts`), which the guard and the server count in place.  Several processes
serving one port share their numbers through files in one directory (:class:`SharedMetrics`),
and each ``/metrics`` answer sums them (docs/PROTOCOL.md, "Tracker HTTP layer").
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ppsp.http.budget import BodyBudget

__all__ = [
    "CLOSE_REASONS",
    "CONNECTION_BOUNDS",
    "LATENCY_BUCKETS",
    "ExpiredPeers",
    "RefusalCounts",
    "Refusals",
    "RequestMetrics",
    "SharedMetrics",
    "TrackerMetrics",
]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the request-duration histogram, in seconds."""


_Counts = dict[tuple[str, str, str], list[float]]
"""(method, encoding, outcome) -> [count, created]."""

_Latencies = dict[str, list[float]]
"""encoding -> [count per bucket (the last one +Inf)..., sum, created]."""

CONNECTION_BOUNDS = ("per_host", "total")
"""Labels of refused connections: the bound a new connection was over."""

CLOSE_REASONS = ("header_timeout", "idle_timeout", "idle_evicted")
"""Labels of connections the guard closed: no request head in time, idle too long, or idle
when a new connection of its host came at the host's bound (``ppsp.http.idle``)."""


class RefusalCounts:
    """What the tracker refused before a request reached the protocol, as plain counts.

    The guard and the server update these in place when they refuse (one dictionary entry or
    attribute incremented: nothing on the path of a request that is served):

    - ``connections_refused``: connections closed as soon as made, by the bound they were over
      (``per_host``, ``total``);
    - ``connections_closed``: connections the guard's watchdog closed (``header_timeout``: no
      complete request head in time; ``idle_timeout``: idle too long between requests;
      ``idle_evicted``: idle between requests when a new connection of its host came at the
      host's bound, closed to let it in);
    - ``rate_limited``: requests answered 503 because their host was over its rate (PPSP-TP
      requests and pages alike);
    - ``unauthenticated``: requests answered 401, by what was wrong with the bearer token
      (:func:`ppsp.tracker.net.auth.refusal_reason`);
    - ``body_busy``: requests answered 503 because the budget of request bodies being read
      (:mod:`ppsp.http.budget`: their host's share, or all hosts') could not take their body;
    - ``body_evictions``: request bodies that budget evicted for lagging their pace (each also
      answered 503, so counted in ``body_busy`` when its handler was reading it).  The budget
      counts them (:attr:`~ppsp.http.budget.BodyBudget.evicted`); its count is copied here
      before it is written or exposed (:func:`_copy_evictions`).

    ``created`` is when counting started (the counters' ``_created``).
    """

    __slots__ = (
        "body_busy",
        "body_evictions",
        "connections_closed",
        "connections_refused",
        "created",
        "rate_limited",
        "unauthenticated",
    )

    def __init__(self, created: float | None = None) -> None:
        self.connections_refused: dict[str, float] = dict.fromkeys(CONNECTION_BOUNDS, 0)
        self.connections_closed: dict[str, float] = dict.fromkeys(CLOSE_REASONS, 0)
        self.rate_limited: float = 0
        self.unauthenticated: dict[str, float] = {}
        self.body_busy: float = 0
        self.body_evictions: float = 0
        self.created = time.time() if created is None else created

    def count_unauthenticated(self, reason: str) -> None:
        """Count one request refused for want of a usable bearer token, under ``reason``."""
        counts = self.unauthenticated
        counts[reason] = counts.get(reason, 0) + 1

    def total(self) -> float:
        """Every refusal counted, in all (for noticing a change)."""
        return (
            sum(self.connections_refused.values())
            + sum(self.connections_closed.values())
            + self.rate_limited
            + sum(self.unauthenticated.values())
            + self.body_busy
            + self.body_evictions
        )

    def snapshot(self) -> dict[str, object]:
        """The counts as JSON-ready data (what :meth:`from_snapshot` reads)."""
        return {
            "connections_refused": self.connections_refused,
            "connections_closed": self.connections_closed,
            "rate_limited": self.rate_limited,
            "unauthenticated": self.unauthenticated,
            "body_busy": self.body_busy,
            "body_evictions": self.body_evictions,
            "created": self.created,
        }

    @classmethod
    def from_snapshot(cls, raw: Any) -> RefusalCounts:
        """The counts of a :meth:`snapshot` (ValueError, TypeError, KeyError or AttributeError
        when ``raw`` is something else)."""
        counts = cls(float(raw["created"]))
        for name in ("connections_refused", "connections_closed", "unauthenticated"):
            target: dict[str, float] = getattr(counts, name)
            for label, value in raw[name].items():
                target[str(label)] = target.get(str(label), 0) + float(value)
        counts.rate_limited = float(raw["rate_limited"])
        counts.body_busy = float(raw.get("body_busy", 0))  # none in an earlier release's file
        counts.body_evictions = float(raw.get("body_evictions", 0))  # nor these
        return counts

    def add(self, other: RefusalCounts) -> None:
        """Add ``other``'s counts to these (the creation time becomes the earlier one)."""
        for name in ("connections_refused", "connections_closed", "unauthenticated"):
            target: dict[str, float] = getattr(self, name)
            for label, value in getattr(other, name).items():
                target[label] = target.get(label, 0) + value
        self.rate_limited += other.rate_limited
        self.body_busy += other.body_busy
        self.body_evictions += other.body_evictions
        self.created = min(self.created, other.created)


_Exposed = tuple[_Counts, _Latencies, list[float], RefusalCounts]
"""What collection exposes: request counts, latencies, expired peers, refusals."""


class RequestMetrics(Collector):
    """Request counts and durations as plain numbers, turned into Prometheus samples on collection.

    Every request updates both; prometheus_client's labelled children take a lock and several
    Python calls per update, a dictionary entry and a list slot do not (about 12,000 fewer
    instructions a request).  The exposition is the one a labelled Counter and Histogram give.
    The count of expired peers is kept here too (``expired``: [count, created]) and exposed by
    :class:`ExpiredPeers`, and so are the refusals (``refusals``), exposed by :class:`Refusals`.

    ``view``, when set, is what collection exposes instead of this process's own numbers (the
    sum over several processes, see :class:`SharedMetrics`).
    """

    def __init__(self) -> None:
        self.counts: _Counts = {}
        self.latencies: _Latencies = {}
        self.expired: list[float] = [0, time.time()]
        self.refusals = RefusalCounts()
        self.view: _Exposed | None = None

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
            entry = self.latencies[encoding] = [0.0] * (len(LATENCY_BUCKETS) + 1)
            entry += [0.0, time.time()]
        entry[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        entry[-2] += seconds

    def count_expired(self, peers: int) -> None:
        """Count peers removed by the expiry task."""
        self.expired[0] += peers

    def exposed(self) -> _Exposed:
        """The numbers collection exposes: the view when set, else this process's own."""
        if self.view is not None:
            return self.view
        return self.counts, self.latencies, self.expired, self.refusals

    def collect(self) -> Iterator[Metric]:
        """The request counter and the duration histogram, as Prometheus metric families."""
        counts, latencies, _, _ = self.exposed()
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
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        for encoding, entry in latencies.items():
            cumulative = list(itertools.accumulate(entry[:-2]))
            latency.add_metric([encoding], list(zip(bounds, cumulative, strict=True)), entry[-2])
            latency.samples.append(Sample(name + "_created", {"encoding": encoding}, entry[-1]))
        yield latency


class ExpiredPeers(Collector):
    """The counter of expired peers, as a prometheus_client Counter would expose it."""

    def __init__(self, source: RequestMetrics) -> None:
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


class Refusals(Collector):
    """The refusal counters (:class:`RefusalCounts`), as labelled prometheus_client Counters
    would expose them: every known label from the start, at zero until something is refused."""

    def __init__(self, source: RequestMetrics) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The families of refused and closed connections and of refused requests."""
        refusals = self._source.exposed()[3]
        created = refusals.created
        refused = CounterMetricFamily(
            "ppsp_tracker_connections_refused",
            "Connections closed as soon as made, by the bound they were over.",
            labels=["bound"],
        )
        for bound, count in refusals.connections_refused.items():
            refused.add_metric([bound], count, created=created)
        yield refused
        closed = CounterMetricFamily(
            "ppsp_tracker_connections_closed",
            "Connections closed by the tracker: no complete request head within the header "
            "timeout, idle longer than the idle timeout, or idle when a new connection of "
            "their host came at its bound.",
            labels=["reason"],
        )
        for reason, count in refusals.connections_closed.items():
            closed.add_metric([reason], count, created=created)
        yield closed
        yield CounterMetricFamily(
            "ppsp_tracker_rate_limited_requests",
            "Requests refused (503) because their host was over its request rate.",
            value=refusals.rate_limited,
            created=created,
        )
        unauthenticated = CounterMetricFamily(
            "ppsp_tracker_unauthenticated_requests",
            "Requests refused (401) for want of a usable bearer token, by what was wrong.",
            labels=["reason"],
        )
        for reason, count in sorted(refusals.unauthenticated.items()):
            unauthenticated.add_metric([reason], count, created=created)
        yield unauthenticated
        yield CounterMetricFamily(
            "ppsp_tracker_body_busy_requests",
            "Requests refused (503) because the bytes of request bodies being read, their "
            "host's share or all hosts', could not take their body.",
            value=refusals.body_busy,
            created=created,
        )
        yield CounterMetricFamily(
            "ppsp_tracker_body_evictions",
            "Request bodies evicted (answered 503) for lagging their pace while a body the "
            "bytes of all hosts' bodies being read could not take needed their bytes.",
            value=refusals.body_evictions,
            created=created,
        )


def _copy_evictions(refusals: RefusalCounts, budget: BodyBudget | None) -> None:
    """Copy the bodies ``budget`` evicted so far into ``refusals`` (the budget counts them)."""
    if budget is not None:
        refusals.body_evictions = budget.evicted


class SharedMetrics:
    """The counters of several processes serving one port, through files in one directory.

    Each process writes its own numbers to its file (``{pid}.json``: a replaced worker's file
    stays, so the sums never go down) by writing a temporary file and renaming it, so a reader
    sees a whole file.  A scrape writes this process's file first, then sums every file:
    counters and histogram buckets add up, the creation time is the earliest.
    """

    def __init__(
        self, path: Path, metrics: RequestMetrics, body_budget: BodyBudget | None = None
    ) -> None:
        self.path = path
        self._metrics = metrics
        self._budget = body_budget
        self._written = -1.0
        self.body_bytes = 0.0
        """The bytes of request bodies being read, summed over the files at the last
        :meth:`summed` (each process's as of its last write)."""

    def _own_body_bytes(self) -> int:
        return 0 if self._budget is None else self._budget.in_use

    def _total(self) -> float:
        metrics = self._metrics
        requests = sum(entry[0] for entry in metrics.counts.values())
        _copy_evictions(metrics.refusals, self._budget)
        # The bytes being read are not a count, but a change of them is a change to write.
        changed = metrics.expired[0] + metrics.refusals.total() + self._own_body_bytes()
        return requests + changed

    def write(self) -> None:
        """Write this process's numbers (a failure is logged, the next write tries again)."""
        metrics = self._metrics
        _copy_evictions(metrics.refusals, self._budget)
        snapshot = {
            "requests": [[*key, *entry] for key, entry in metrics.counts.items()],
            "latency": metrics.latencies,
            "expired": metrics.expired,
            "refusals": metrics.refusals.snapshot(),
            "body_bytes": self._own_body_bytes(),
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

    def summed(self) -> _Exposed:
        """This process's numbers written out, then the sum over every process's file.

        A file that cannot be read or does not hold what :meth:`write` writes is left out.
        """
        self.write()
        counts: _Counts = {}
        latencies: _Latencies = {}
        expired = [0.0, math.inf]
        refusals = RefusalCounts(math.inf)
        body_bytes = 0.0
        for path in sorted(self.path.parent.glob("*.json")):
            read = _read_snapshot(path)
            if read is None:
                continue
            snapshot, held = read
            if held and _alive(path):  # a gone process's bodies are read by nobody
                body_bytes += held
            for key, entry in snapshot[0].items():
                _add(counts.setdefault(key, [0, math.inf]), entry)
            for encoding, entry in snapshot[1].items():
                _add(latencies.setdefault(encoding, [0.0] * _LATENCY_FIELDS + [math.inf]), entry)
            _add(expired, snapshot[2])
            refusals.add(snapshot[3])
        if expired[1] == math.inf:  # no file could be read, not even this process's
            metrics = self._metrics
            self.body_bytes = self._own_body_bytes()
            return metrics.counts, metrics.latencies, metrics.expired, metrics.refusals
        self.body_bytes = body_bytes
        return counts, latencies, expired, refusals


_LATENCY_FIELDS = len(LATENCY_BUCKETS) + 2
"""Numbers of a latency entry before its creation time: the buckets, +Inf, the sum."""


def _read_snapshot(path: Path) -> tuple[_Exposed, float] | None:
    """The numbers a :class:`SharedMetrics` file holds and its bytes of request bodies being
    read, or None (logged) when it holds others.

    A file without refusals or body bytes (written by an earlier release) counts none.
    """
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
        expired = [float(expired_count), float(expired_created)]
        held = raw.get("refusals")
        refusals = RefusalCounts(expired[1]) if held is None else RefusalCounts.from_snapshot(held)
        body_bytes = float(raw.get("body_bytes", 0))
        return (counts, latencies, expired, refusals), body_bytes
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.debug("leaving out the metrics file %s: %s", path, exc)
        return None


def _alive(path: Path) -> bool:
    """Whether the process whose file ``path`` is (``{pid}.json``) still runs."""
    try:
        os.kill(int(path.stem), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError):
        return True  # not a PID, or another user's process: counted as written
    return True


def _add(total: list[float], entry: list[float]) -> None:
    """Add ``entry``'s numbers into ``total``, whose last item is the earliest creation time."""
    for index in range(len(total) - 1):
        total[index] += entry[index]
    total[-1] = min(total[-1], entry[-1])


class TrackerMetrics:
    """Prometheus instruments of one application, on a registry of their own.

    With ``shared`` (this process's file among those of the processes serving one port), the
    counters exposed are the sums over every process (:class:`SharedMetrics`); the gauges are
    the storage's counts, shared already.
    """

    def __init__(self, shared: Path | None = None, body_budget: BodyBudget | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.body_budget = body_budget
        """The server's budget of request bodies being read, shown as a gauge (when given)."""
        self.request_metrics = RequestMetrics()
        self.registry.register(self.request_metrics)
        self.peers = Gauge("ppsp_tracker_peers", "Registered peers.", registry=self.registry)
        self.swarms = Gauge("ppsp_tracker_swarms", "Swarms with members.", registry=self.registry)
        self.memberships = Gauge(
            "ppsp_tracker_memberships", "Peer-in-swarm memberships.", registry=self.registry
        )
        self.reported = Gauge(
            "ppsp_tracker_reported_peers",
            "Memberships of peers other members reported for corrupt data (believed reports).",
            registry=self.registry,
        )
        self.suspects = Gauge(
            "ppsp_tracker_suspect_peers",
            "Memberships reported for corrupt data by enough distinct hosts: listed last.",
            registry=self.registry,
        )
        self.body_bytes = Gauge(
            "ppsp_tracker_request_body_bytes",
            "Bytes of request bodies being read, charged to the budget of bodies being read "
            "(summed over the processes serving the port; each holds its part of the budget).",
            registry=self.registry,
        )
        self.registry.register(ExpiredPeers(self.request_metrics))
        self.registry.register(Refusals(self.request_metrics))
        self.shared = SharedMetrics(shared, self.request_metrics, body_budget) if shared else None

    def count_request(self, method: str, encoding: str, outcome: str) -> None:
        """Count one request under its labels."""
        self.request_metrics.count((method, encoding, outcome))

    def observe_latency(self, encoding: str, seconds: float) -> None:
        """Record one request's duration."""
        self.request_metrics.observe(encoding, seconds)

    def count_expired(self, peers: int) -> None:
        """Count peers removed by the expiry task."""
        self.request_metrics.count_expired(peers)

    @property
    def refusals(self) -> RefusalCounts:
        """This process's refusal counts (the guard and the server count in them)."""
        return self.request_metrics.refusals

    def exposition(self) -> bytes:
        """The Prometheus text exposition (summed over processes when shared)."""
        budget = self.body_budget
        if self.shared is None:
            self.body_bytes.set(0 if budget is None else budget.in_use)
            _copy_evictions(self.refusals, budget)
            return generate_latest(self.registry)
        self.request_metrics.view = self.shared.summed()
        self.body_bytes.set(self.shared.body_bytes)
        try:
            return generate_latest(self.registry)
        finally:
            self.request_metrics.view = None
