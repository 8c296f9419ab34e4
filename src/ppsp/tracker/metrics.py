"""The tracker's Prometheus metrics: request counts and durations, expired peers, peer counts.

Each application has a registry of its own (:class:`TrackerMetrics`).  Request counts and
durations are plain numbers turned into samples on collection (:class:`RequestMetrics`), far
cheaper per request than prometheus_client's labelled children.  Several processes serving one
port share their numbers through files in one directory (:class:`SharedMetrics`), and each
``/metrics`` answer sums them (docs/PROTOCOL.md, "Tracker HTTP layer").
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

import orjson
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["LATENCY_BUCKETS", "ExpiredPeers", "RequestMetrics", "SharedMetrics", "TrackerMetrics"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the request-duration histogram, in seconds."""


_Counts = dict[tuple[str, str, str], list[float]]
"""(method, encoding, outcome) -> [count, created]."""

_Latencies = dict[str, list[float]]
"""encoding -> [count per bucket (the last one +Inf)..., sum, created]."""


class RequestMetrics(Collector):
    """Request counts and durations as plain numbers, turned into Prometheus samples on collection.

    Every request updates both; prometheus_client's labelled children take a lock and several
    Python calls per update, a dictionary entry and a list slot do not (about 12,000 fewer
    instructions a request).  The exposition is the one a labelled Counter and Histogram give.
    The count of expired peers is kept here too (``expired``: [count, created]) and exposed by
    :class:`ExpiredPeers`.

    ``view``, when set, is what collection exposes instead of this process's own numbers (the
    sum over several processes, see :class:`SharedMetrics`).
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
            entry = self.latencies[encoding] = [0.0] * (len(LATENCY_BUCKETS) + 1)
            entry += [0.0, time.time()]
        entry[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
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


class SharedMetrics:
    """The counters of several processes serving one port, through files in one directory.

    Each process writes its own numbers to its file (``{pid}.json``: a replaced worker's file
    stays, so the sums never go down) by writing a temporary file and renaming it, so a reader
    sees a whole file.  A scrape writes this process's file first, then sums every file:
    counters and histogram buckets add up, the creation time is the earliest.
    """

    def __init__(self, path: Path, metrics: RequestMetrics) -> None:
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


_LATENCY_FIELDS = len(LATENCY_BUCKETS) + 2
"""Numbers of a latency entry before its creation time: the buckets, +Inf, the sum."""


def _read_snapshot(path: Path) -> tuple[_Counts, _Latencies, list[float]] | None:
    """The numbers a :class:`SharedMetrics` file holds, or None (logged) when it holds others."""
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


class TrackerMetrics:
    """Prometheus instruments of one application, on a registry of their own.

    With ``shared`` (this process's file among those of the processes serving one port), the
    counters exposed are the sums over every process (:class:`SharedMetrics`); the gauges are
    the storage's counts, shared already.
    """

    def __init__(self, shared: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_metrics = RequestMetrics()
        self.registry.register(self.request_metrics)
        self.peers = Gauge("ppsp_tracker_peers", "Registered peers.", registry=self.registry)
        self.swarms = Gauge("ppsp_tracker_swarms", "Swarms with members.", registry=self.registry)
        self.memberships = Gauge(
            "ppsp_tracker_memberships", "Peer-in-swarm memberships.", registry=self.registry
        )
        self.registry.register(ExpiredPeers(self.request_metrics))
        self.shared = SharedMetrics(shared, self.request_metrics) if shared else None

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
