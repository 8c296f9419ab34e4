"""Settings of the tracker's HTTP server: bounds, timing, trust, several processes.

The protocol's settings live in :class:`~ppsp.tracker.core.TrackerConfig`; these are the I/O
layer's (:mod:`ppsp.tracker.net.server`).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.dashboard import AddressDisplay
from ppsp.tracker.limits import DEFAULT_LIMITS, Limits
from ppsp.tracker.net.auth import DEFAULT_LEEWAY, load_public_key
from ppsp.tracker.net.proxy import X_FORWARDED_FOR, Network, TrustedProxies, parse_networks
from ppsp.tracker.net.tls import server_tls_context

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_MAX_BODY", "ServerSettings", "config_limits"]

DEFAULT_MAX_BODY = 64 * 1024
"""Default bound on a request body, in bytes."""

DEFAULT_BODY_TIMEOUT = DEFAULT_LIMITS.body_timeout
"""Default time a client has to deliver a whole request body, in seconds (``Limits``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """I/O-level settings of the tracker's HTTP server (the protocol's live in TrackerConfig).

    Bounds and timing:

    - ``max_body`` bounds a request body in bytes;
    - ``limits`` bounds what hosts may hold and do (:class:`~ppsp.tracker.limits.Limits`:
      connections, request rates, head, body and idle timeouts here; registrations and
      memberships in the core); ``limits.off()`` for ``--limits off``.  None: the tracker
      config's (``TrackerConfig.limits``); when given, the core gets these too;
    - ``expiry_poll`` bounds how long the expiry task sleeps between looks at the next deadline.

    Trust:

    - ``trusted_proxies``: networks (``ipaddress`` networks, or CIDR text such as
      ``"10.0.0.0/8"``, checked when the settings are made) of reverse proxies whose
      ``proxy_header`` (``X-Forwarded-For`` or ``Forwarded``) names the client's address
      (:mod:`ppsp.tracker.net.proxy`);
    - ``tls_cert`` and ``tls_key`` (PEM files), or a ready ``ssl_context``: the port serves
      HTTPS only (:mod:`ppsp.tracker.net.tls`);
    - ``auth_key``: the Ed25519 public key (or several, or their PEM file) that signs bearer
      tokens; with it every request needs ``Authorization: Bearer <token>``
      (:mod:`ppsp.tracker.net.auth`), ``token_leeway`` seconds of clock difference allowed;
    - ``tls_files`` (certificate, key) and ``auth_key_file``: where the TLS context and the key
      were read from, read again on SIGHUP (:mod:`ppsp.tracker.net.reload`); :meth:`loaded`
      sets them from ``tls_cert``, ``tls_key`` and a key given as a file.

    Several processes:

    - ``processes``: how many processes serve the port together (their connection bounds are
      shared out, see :mod:`ppsp.tracker.net.guard`);
    - ``shared_metrics``, for one of them, is the file where this process keeps its counters
      (written at most every ``metrics_flush`` seconds, and before each ``/metrics`` answer);
      ``/metrics`` then sums every ``*.json`` file of that file's directory.

    Dashboard (:mod:`ppsp.tracker.net.dashboard`):

    - ``dashboard``: serve the dashboard at ``/`` and its JSON API under ``/api/``;
    - ``dashboard_addresses``: how it shows peers' addresses (``masked``, the default: the
      network only; ``full``), an :class:`~ppsp.tracker.dashboard.AddressDisplay` or its name.
    """

    max_body: int = DEFAULT_MAX_BODY
    limits: Limits | None = None
    expiry_poll: float = 1.0
    trusted_proxies: Sequence[Network | str] = ()
    proxy_header: str = X_FORWARDED_FOR
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ssl_context: ssl.SSLContext | None = None
    auth_key: Ed25519PublicKey | tuple[Ed25519PublicKey, ...] | Path | None = None
    token_leeway: float = DEFAULT_LEEWAY
    tls_files: tuple[Path, Path] | None = None
    auth_key_file: Path | None = None
    processes: int = 1
    shared_metrics: Path | None = None
    metrics_flush: float = 1.0
    dashboard: bool = True
    dashboard_addresses: AddressDisplay = AddressDisplay.MASKED

    def __post_init__(self) -> None:
        # The name ("masked", "full") is taken too; anything else is a ValueError.
        object.__setattr__(self, "dashboard_addresses", AddressDisplay(self.dashboard_addresses))
        # Checked (and CIDR text read) when made, so that a bad value is a one-line error.
        object.__setattr__(self, "trusted_proxies", parse_networks(self.trusted_proxies))
        TrustedProxies((), self.proxy_header)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key")
        if self.tls_cert is not None and self.ssl_context is not None:
            raise ValueError("give either TLS files or a TLS context, not both")
        if self.processes < 1:
            raise ValueError("processes must be 1 or more")

    @property
    def tls(self) -> bool:
        """Whether the port serves HTTPS."""
        return self.ssl_context is not None or self.tls_cert is not None

    def loaded(self) -> ServerSettings:
        """These settings with the key files read: a TLS context and a public key object.

        Raises :class:`~ppsp.errors.KeyFileError` (one line, naming the file) for a file that
        cannot be used.  Done before listening (and, with several processes, before forking,
        so that every process uses the same objects).
        """
        context, tls_files = self.ssl_context, self.tls_files
        if self.tls_cert is not None and self.tls_key is not None:
            context = server_tls_context(self.tls_cert, self.tls_key)
            tls_files = (self.tls_cert, self.tls_key)
        key, key_file = self.auth_key, self.auth_key_file
        if isinstance(key, Path | str):
            key_file = Path(key)
            key = load_public_key(key_file)
        return dataclasses.replace(
            self,
            tls_cert=None,
            tls_key=None,
            ssl_context=context,
            auth_key=key,
            tls_files=tls_files,
            auth_key_file=key_file,
        )


def config_limits(config: TrackerConfig) -> Limits:
    """The limits of a tracker config (the defaults for a config without any)."""
    limits = getattr(config, "limits", None)
    return limits if isinstance(limits, Limits) else DEFAULT_LIMITS
