"""The tracker's HTTP server: a thin layer over the sans-I/O :class:`Tracker` on ppsp.http.

Every ``POST``, whatever its path, carries one PPSP-TP request (PROFILE.md); ``GET /status``
answers a JSON summary and ``GET /metrics`` the Prometheus exposition.  The server is made of
one part per responsibility, each importable from here:

- :mod:`ppsp.tracker.net.handler`: the request handler (rates, media type, token, bounded body,
  the core, the answer in the request's encoding; the pages);
- :mod:`ppsp.tracker.net.app`: the application around it (:func:`create_app`: the
  handler, expiry, rate pruning and sharing, shared metrics) and its
  serving on a socket (:func:`serve_app`: the guard's hooks, timeouts, TLS;
  :func:`running_tracker`: storage checked first);
- :mod:`ppsp.tracker.net.runner`: the process (:func:`serve_tracker` until a stop signal,
  :func:`run_tracker` on uvloop with the collector tuned);
- :mod:`ppsp.tracker.net.settings`: :class:`ServerSettings`, the I/O layer's settings;
- :mod:`ppsp.tracker.net.upkeep`: storages, clocks, the expirer and the storage's health.

The storage is checked before the socket listens: a tracker whose storage cannot be used does
not start.  A storage that fails later makes requests fail with ``503`` / ``error_code`` 5 and
``/status`` answer ``503`` naming it unreachable; the log says so once when it fails and once
when it answers again.

Several processes serving one port (:mod:`ppsp.tracker.net.workers`) each write their counters to
a file of a directory they share (``ServerSettings.shared_metrics``), and each ``/metrics``
answer sums them (:mod:`ppsp.tracker.net.metrics`).
"""

from __future__ import annotations

from ppsp.tracker.net.app import RunningTracker, TrackerApp, create_app, running_tracker, serve_app
from ppsp.tracker.net.handler import TRACKER_APP_KEY, TrackerHandler
from ppsp.tracker.net.handler import _observed as _observed
from ppsp.tracker.net.runner import run_tracker, runner_for_tracker, serve_tracker
from ppsp.tracker.net.settings import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, ServerSettings
from ppsp.tracker.net.upkeep import (
    Expirer,
    StorageHealth,
    check_storage_url,
    make_storage,
    storage_label,
    verify_storage,
)

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY",
    "TRACKER_APP_KEY",
    "Expirer",
    "RunningTracker",
    "ServerSettings",
    "StorageHealth",
    "TrackerApp",
    "TrackerHandler",
    "check_storage_url",
    "create_app",
    "make_storage",
    "run_tracker",
    "runner_for_tracker",
    "running_tracker",
    "serve_app",
    "serve_tracker",
    "storage_label",
    "verify_storage",
]
