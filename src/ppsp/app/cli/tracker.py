"""``ppsp tracker``: run a tracker in the foreground.

Imports the tracker's server and nothing of the peer: the tracker's modules are imported
inside the command, once its options are parsed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=7000, show_default=True, help="0: any."
)
@click.option(
    "--max-version",
    type=click.Choice(["1.0", "1.1"]),
    default="1.1",
    show_default=True,
    help="Highest PPSP-TP version served (1.0 refuses 1.1 requests, to exercise fallback).",
)
@click.option(
    "--init-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a registered peer may stay without a swarm.",
)
@click.option(
    "--track-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=180.0,
    show_default=True,
    help="Seconds a tracked peer may stay silent.",
)
@click.option(
    "--max-peers",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Largest peer list returned.",
)
@click.option(
    "--storage",
    default="memory",
    show_default=True,
    help="'memory', a redis:// URL, or redis+cluster://host:port[,host:port...] (Redis Cluster).",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=256),
    default=64 * 1024,
    show_default=True,
    help="Largest request body in bytes.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the port together (more than 1 needs a redis:// or "
    "redis+cluster:// --storage: the state and the request rates are shared there).",
)
@click.option(
    "--stop-grace",
    type=click.FloatRange(min=0.1, max=3600),
    default=10.0,
    show_default=True,
    help="With --workers: seconds stopping workers get to finish their connections before "
    "they are killed.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (chain) to serve HTTPS with; needs --tls-key. The port then speaks "
    "TLS only.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert (unencrypted).",
)
@click.option(
    "--auth-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Ed25519 public key (PEM, from ppsp keygen or openssl) that signs bearer tokens: "
    "every request then needs a token from ppsp token. The file may hold up to 8 keys (a key "
    "being rotated); SIGHUP reads it again, as it does the TLS files.",
)
@click.option(
    "--limits",
    type=click.Choice(["on", "off"], case_sensitive=False),
    default="on",
    show_default=True,
    help="Per-host bounds on registrations, request rate and connections (docs/SECURITY.md); "
    "off for labs and benchmarks that run many peers from one address.",
)
@click.option(
    "--peers-per-host",
    type=click.IntRange(1, 1_000_000),
    default=256,  # Limits.peers_per_host (literal: the command line imports no tracker module)
    show_default=True,
    help="Peers one host address may register (viewers behind one NAT share its address: "
    "raise it for a large one).",
)
@click.option(
    "--connections-per-host",
    type=click.IntRange(1, 1_000_000),
    default=256,  # Limits.connections_per_host
    show_default=True,
    help="Open connections from one host address (each peer keeps one between its reports).",
)
@click.option(
    "--requests-per-host",
    type=click.FloatRange(0.1, 1_000_000.0),
    default=100.0,  # Limits.requests_per_second_per_host
    show_default=True,
    help="Requests a second one host address may send, sustained (twice as many at once).",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="CIDR",
    help="Network of a reverse proxy whose X-Forwarded-For (or --proxy-header) names the "
    "client's address (repeatable).",
)
@click.option(
    "--proxy-header",
    type=click.Choice(["X-Forwarded-For", "Forwarded"], case_sensitive=False),
    default="X-Forwarded-For",
    show_default=True,
    help="The header a --trusted-proxy adds the client's address to (Forwarded: RFC 7239).",
)
@click.option(
    "--dashboard",
    type=click.Choice(["on", "off"], case_sensitive=False),
    default="on",
    show_default=True,
    help="Serve the dashboard at / and its JSON API at /api/swarms (with --auth-key, the API "
    "needs an operator token: ppsp token --operator).",
)
@click.option(
    "--dashboard-addresses",
    type=click.Choice(["masked", "full"], case_sensitive=False),
    default="masked",
    show_default=True,
    help="How the dashboard shows peers' addresses: masked (an IPv4 /24, an IPv6 /48, no "
    "port) or full.",
)
def tracker(
    host: str,
    port: int,
    max_version: str,
    init_timeout: float,
    track_timeout: float,
    max_peers: int,
    storage: str,
    max_body: int,
    workers: int,
    stop_grace: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    auth_key: Path | None,
    limits: str,
    peers_per_host: int,
    connections_per_host: int,
    requests_per_host: float,
    trusted_proxies: tuple[str, ...],
    proxy_header: str,
    dashboard: str,
    dashboard_addresses: str,
) -> None:
    """Run a PPSP tracker until SIGINT or SIGTERM.

    Prints one line when it listens, and exits with status 1 and a one-line error, without
    listening, when the port or the storage cannot be used.  Bad TLS, key or proxy options
    are usage errors, also before anything listens.
    """
    import dataclasses
    import math

    from ppsp.errors import ServiceUnavailable
    from ppsp.tracker.core import TrackerConfig
    from ppsp.tracker.dashboard import AddressDisplay
    from ppsp.tracker.limits import DEFAULT_LIMITS
    from ppsp.tracker.net.server import (
        ServerSettings,
        check_storage_url,
        run_tracker,
        storage_label,
    )
    from ppsp.wire.tracker import ProtocolVersion

    try:
        check_storage_url(storage)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--storage") from exc
    trust = _tracker_trust(tls_cert, tls_key, auth_key, trusted_proxies)
    trust["proxy_header"] = "Forwarded" if proxy_header.lower() == "forwarded" else proxy_header
    if workers > 1 and storage == "memory":
        raise click.BadParameter(
            "several workers share their state only through Redis: give a redis:// or "
            "redis+cluster:// --storage",
            param_hint="--workers",
        )
    for hint, seconds in (("--init-timeout", init_timeout), ("--track-timeout", track_timeout)):
        if not math.isfinite(seconds):
            raise click.BadParameter("give a finite number of seconds", param_hint=hint)
    bounds = dataclasses.replace(
        DEFAULT_LIMITS,
        peers_per_host=peers_per_host,
        connections_per_host=connections_per_host,
        requests_per_second_per_host=requests_per_host,
        request_burst_per_host=max(1, round(2 * requests_per_host)),
    )
    if limits.lower() == "off":
        bounds = bounds.off()
    config = TrackerConfig(
        max_version=ProtocolVersion(max_version),
        init_timeout=init_timeout,
        track_timeout=track_timeout,
        max_peers=max_peers,
        limits=bounds,
    )
    settings = ServerSettings(
        max_body=max_body,
        limits=bounds,
        dashboard=dashboard.lower() == "on",
        dashboard_addresses=AddressDisplay(dashboard_addresses.lower()),
        **trust,
    )
    processes = f", {workers} workers" if workers > 1 else ""
    extras = "".join(
        [
            ", tokens required" if auth_key is not None else "",
            ", per-host limits off" if not bounds.per_host else "",
        ]
    )

    def ready(url: str) -> None:
        # The one line that says the tracker listens (tests and the lab wait for it).
        if tls_cert is not None and url.startswith("http://"):
            url = "https://" + url.removeprefix("http://")
        click.echo(f"ppsp tracker (PPSP-TP/{max_version}{processes}{extras}) listening on {url}")
        sys.stdout.flush()

    try:
        if workers > 1:
            from ppsp.tracker.net.workers import run_tracker_workers

            run_tracker_workers(
                host,
                port,
                config,
                storage,
                workers=workers,
                settings=settings,
                on_ready=ready,
                stop_grace=stop_grace,
            )
        else:
            run_tracker(
                host,
                port,
                config,
                None if storage == "memory" else storage,
                settings=settings,
                on_ready=ready,
            )
    except ServiceUnavailable as exc:
        where = storage_label(storage)
        raise click.ClickException(f"cannot use the storage {where}: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
    click.echo("ppsp tracker stopped")


def _tracker_trust(
    tls_cert: Path | None,
    tls_key: Path | None,
    auth_key: Path | None,
    trusted_proxies: tuple[str, ...],
) -> dict[str, Any]:
    """The tracker's trust settings, every file read and checked before anything listens.

    Returns ServerSettings arguments (a ready TLS context, the public key); a problem is a
    usage error naming the option.
    """
    if (tls_cert is None) != (tls_key is None):
        given, missing = (
            ("--tls-cert", "--tls-key") if tls_key is None else ("--tls-key", "--tls-cert")
        )
        raise click.UsageError(f"{given} needs {missing} too", click.get_current_context())
    settings: dict[str, Any] = {}
    if tls_cert is not None and tls_key is not None:
        from ppsp.tracker.net.tls import server_tls_context

        try:
            settings["ssl_context"] = server_tls_context(tls_cert, tls_key)
            settings["tls_files"] = (tls_cert, tls_key)  # read again on SIGHUP
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--tls-cert / --tls-key") from exc
    if auth_key is not None:
        from ppsp.tracker.net.auth import load_public_key

        try:
            settings["auth_key"] = load_public_key(auth_key)
            settings["auth_key_file"] = auth_key  # read again on SIGHUP
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--auth-key") from exc
    if trusted_proxies:
        from ppsp.tracker.net.proxy import parse_networks

        try:
            settings["trusted_proxies"] = parse_networks(trusted_proxies)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from exc
    return settings
