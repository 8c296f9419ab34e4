"""SIGHUP: the tracker reads its TLS certificate and its token key again, without a restart.

A certificate from an ACME CA lasts 90 days or less and is renewed by a tool that then tells
the servers (``certbot --deploy-hook``, ``systemctl reload``); a restart would cost a tracker
on memory storage its swarms for up to half a minute (docs/OPERATIONS.md).  So on SIGHUP a
tracker process reads the files it was started with again (``ServerSettings.tls_files``,
``auth_key_file``), checks them as at start-up, and:

- uses the new TLS context for every connection accepted from then on (open connections keep
  theirs, as a TLS session does);
- verifies bearer tokens with the new key from the next request (tokens the previous key signed
  are refused from then on: issue new ones before the key changes);
- keeps what it had when a file cannot be used (missing, unreadable, a key that does not belong
  to its certificate): one warning line naming the file, and the tracker serves on.

Each outcome is one log line, the certificate's end of validity in it.  With several worker
processes the parent passes SIGHUP on to each worker (:mod:`ppsp.tracker.net.workers`), and each
reads the files itself.  A tracker without TLS files or a key file logs that it has nothing to
read again.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ppsp.errors import KeyFileError
from ppsp.tracker.net.app import TrackerApp
from ppsp.tracker.net.auth import load_public_key
from ppsp.tracker.net.settings import ServerSettings
from ppsp.tracker.net.tls import server_tls_context

__all__ = ["read_again", "reload_trust"]

log = logging.getLogger("ppsp.tracker.net.server")
"""The server's log (one name for the HTTP server, whichever module of it writes)."""


def reload_trust(app: TrackerApp) -> None:
    """Read the TLS certificate and key and the token key of ``app`` again, and serve with
    them (see the module)."""
    handler = app.handler
    settings = handler.settings
    if settings.tls_files is None and settings.auth_key_file is None:
        log.info("SIGHUP: nothing to read again (no TLS files, no token key file)")
        return
    fresh = read_again(settings)
    server = app.server
    context = fresh.ssl_context
    if context is not settings.ssl_context and context is not None and server is not None:
        server.use_tls(context)
    key = fresh.auth_key
    if key is not settings.auth_key and isinstance(key, Ed25519PublicKey | tuple):
        handler.use_token_key(key)
    handler.settings = fresh


def read_again(settings: ServerSettings, *, quiet: bool = False) -> ServerSettings:
    """``settings`` (loaded: :meth:`~ppsp.tracker.net.settings.ServerSettings.loaded`) with the
    TLS context and the token key read again from their files; what cannot be read is kept as
    it was, with a warning naming the file.  Each file read is logged (at debug level when
    ``quiet``: a worker process started again reads them so, see
    :mod:`ppsp.tracker.net.workers`)."""
    context, public_key = settings.ssl_context, settings.auth_key
    said = log.debug if quiet else log.info
    if settings.tls_files is not None:
        cert, key = settings.tls_files
        try:
            context = server_tls_context(cert, key)
        except KeyFileError as exc:
            log.warning("TLS certificate not read again, the previous one serves on: %s", exc)
        else:
            said("TLS certificate read from %s%s", cert, _validity(cert))
    if settings.auth_key_file is not None:
        try:
            public_key = load_public_key(settings.auth_key_file)
        except KeyFileError as exc:
            log.warning("token key not read again, the previous one serves on: %s", exc)
        else:
            said("token key read from %s", settings.auth_key_file)
    return dataclasses.replace(settings, ssl_context=context, auth_key=public_key)


def _validity(cert: Path) -> str:
    """``", valid until ..."`` of the first certificate in ``cert`` (the leaf), or nothing when
    it cannot be read (the TLS context took the file: its date is for the log only)."""
    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
        until = leaf.not_valid_after_utc
    except (OSError, ValueError):
        return ""
    if until <= datetime.datetime.now(datetime.UTC):
        return f", EXPIRED on {until:%Y-%m-%d %H:%M} UTC"
    return f", valid until {until:%Y-%m-%d %H:%M} UTC"
