"""The ``ppsp`` command line: one click group, one function per subcommand.

``ppsp tracker`` runs a tracker in the foreground; ``ppsp demo`` replays the seed's example
session against an in-process tracker.  A new subcommand is a function decorated with
``@main.command()`` (add ``@log_level_option`` to get ``--log-level``); its heavy imports belong
inside the function so that ``ppsp --help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

import ppsp

if TYPE_CHECKING:
    from ppsp.app.commands import PeerOptions

_F = TypeVar("_F", bound=Callable[..., Any])

LOG_LEVELS = ("debug", "info", "warning", "error")
"""Values of ``--log-level``."""


def configure_logging(level: str) -> None:
    """Send log records to stderr: through rich on a terminal, as plain lines otherwise."""
    numeric = getattr(logging, level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric)


def log_level_option(func: _F) -> _F:
    """Add ``--log-level`` to a subcommand and configure logging before it runs."""

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        configure_logging(value)
        return value

    option = click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="Verbosity of the log on stderr.",
    )
    return option(func)


ERROR_PREFIX = "ppsp: "
"""How every error line of every command begins (see also :func:`ppsp.app.commands.fail`)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Commands(click.Group):
    """The ``ppsp`` group: every failure is one line on stderr, never a traceback.

    Usage errors (a bad option value, a missing argument) exit 2, other failures 1, and an
    interruption before a command could install its own signal handling 130.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line as click does, with the errors described above."""
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _error(exc.format_message() + hint)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _error(exc.format_message())
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _error("interrupted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def _error(message: str) -> None:
    click.echo(ERROR_PREFIX + _one_line(message), err=True)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ppsp.__version__, prog_name="ppsp")
def main() -> None:
    """PPSP: a tracker (PPSP-TP/1.1, 1.0, RFC 7846) and streaming peers."""


PORT = click.IntRange(0, 65535)
"""A TCP or UDP port number; 0 asks for any free port where the option allows it."""


class SwarmIdParam(click.ParamType[str]):
    """A swarm ID: 64 lower-case hex digits (a stored content's or a live stream's)."""

    name = "swarm_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The swarm ID, or click's usage error naming what is wrong with it."""
        text = str(value)
        from ppsp.peer.content.description import is_swarm_id

        if is_swarm_id(text):
            return text
        if is_swarm_id(text.lower()):
            self.fail(f"swarm IDs are written in lower case: {text.lower()}", param, ctx)
        self.fail(f"{text!r} is not a swarm ID (64 hexadecimal digits)", param, ctx)


SWARM_ID = SwarmIdParam()


class TrackerUrlParam(click.ParamType[str]):
    """A tracker URL: http:// or https://, with a host (checked before any network)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The tracker URL, or click's usage error."""
        from ppsp.tracker.net.client import check_tracker_url

        try:
            return check_tracker_url(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TRACKER_URL = TrackerUrlParam()


class SeedFileParam(click.ParamType[Path]):
    """A file to seed: a regular, readable, non-empty file."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        """The path, or click's usage error saying why it cannot be seeded."""
        import os
        import stat

        path = Path(value)
        try:
            info = path.stat()
        except OSError as exc:
            self.fail(f"{path}: {exc.strerror or exc}", param, ctx)
        if stat.S_ISDIR(info.st_mode):
            self.fail(f"{path} is a directory: seed a file", param, ctx)
        if not stat.S_ISREG(info.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
            self.fail(
                f"{path} is {kind}: seed a regular file (ppsp live streams pipes)", param, ctx
            )
        if info.st_size == 0:
            self.fail(f"{path} is empty: there is nothing to seed", param, ctx)
        if not os.access(path, os.R_OK):
            self.fail(f"{path}: permission denied", param, ctx)
        return path


SEED_FILE = SeedFileParam()


class AdvertiseParam(click.ParamType[tuple[str, int | None]]):
    """``HOST[:PORT]`` (``[V6]:PORT`` for IPv6): the address other peers reach this peer at."""

    name = "host[:port]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int | None]:
        """``(ip, port or None)``, or click's usage error."""
        if isinstance(value, tuple):
            return value
        from ppsp.peer.protocol.addressing import parse_advertise

        try:
            return parse_advertise(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ADVERTISE = AdvertiseParam()


@main.command()
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
@click.option("--storage", default="memory", show_default=True, help="'memory' or a redis:// URL.")
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
    help="Processes serving the port together (more than 1 needs a redis:// --storage).",
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
    "every request then needs a token from ppsp token.",
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
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="CIDR",
    help="Network of a reverse proxy whose X-Forwarded-For names the client's address "
    "(repeatable).",
)
@log_level_option
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
    tls_cert: Path | None,
    tls_key: Path | None,
    auth_key: Path | None,
    limits: str,
    trusted_proxies: tuple[str, ...],
) -> None:
    """Run a PPSP tracker until SIGINT or SIGTERM.

    Prints one line when it listens, and exits with status 1 and a one-line error, without
    listening, when the port or the storage cannot be used.  Bad TLS, key or proxy options
    are usage errors, also before anything listens.
    """
    import math

    from ppsp.errors import ServiceUnavailable
    from ppsp.tracker.core import TrackerConfig
    from ppsp.tracker.limits import DEFAULT_LIMITS
    from ppsp.tracker.net.server import (
        ServerSettings,
        check_storage_url,
        run_tracker,
        storage_label,
    )
    from ppsp.tracker.net.workers import run_tracker_workers
    from ppsp.wire.tracker import ProtocolVersion

    try:
        check_storage_url(storage)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--storage") from exc
    trust = _tracker_trust(tls_cert, tls_key, auth_key, trusted_proxies)
    if workers > 1 and storage == "memory":
        raise click.BadParameter(
            "several workers share their state only through Redis: give a redis:// --storage",
            param_hint="--workers",
        )
    for hint, seconds in (("--init-timeout", init_timeout), ("--track-timeout", track_timeout)):
        if not math.isfinite(seconds):
            raise click.BadParameter("give a finite number of seconds", param_hint=hint)
    bounds = DEFAULT_LIMITS if limits.lower() == "on" else DEFAULT_LIMITS.off()
    config = TrackerConfig(
        max_version=ProtocolVersion(max_version),
        init_timeout=init_timeout,
        track_timeout=track_timeout,
        max_peers=max_peers,
        limits=bounds,
    )
    settings = ServerSettings(max_body=max_body, limits=bounds, **trust)
    processes = f", {workers} workers" if workers > 1 else ""
    extras = "".join(
        [
            ", tokens required" if auth_key is not None else "",
            ", per-host limits off" if bounds is not DEFAULT_LIMITS else "",
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
            run_tracker_workers(
                host,
                port,
                config,
                storage,
                workers=workers,
                settings=settings,
                on_ready=ready,
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


class PeerIdParam(click.ParamType[str]):
    """A PeerID: 1 to 256 characters, no whitespace or control characters (a protocol token)."""

    name = "peer_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The PeerID, or click's usage error."""
        from ppsp.wire.fields import is_token

        text = str(value)
        if not is_token(text):
            self.fail(
                f"{text[:80]!r} is not a PeerID (1 to 256 characters, no spaces or controls)",
                param,
                ctx,
            )
        return text


class TokenSwarmParam(click.ParamType[str]):
    """A swarm ID a token may name: any protocol token but ``ALL`` and ``nil``."""

    name = "swarm_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The swarm ID, or click's usage error."""
        from ppsp.peer.content.description import is_swarm_id as is_content_swarm_id
        from ppsp.wire.fields import is_swarm_id

        text = str(value)
        if is_content_swarm_id(text.lower()) and not is_content_swarm_id(text):
            self.fail(f"swarm IDs are written in lower case: {text.lower()}", param, ctx)
        if not is_swarm_id(text):
            self.fail(f"{text[:80]!r} is not a swarm ID", param, ctx)
        return text


TTL_MAX = 10 * 366 * 86400
"""Longest token lifetime ``ppsp token`` makes, in seconds (ten years)."""


@main.command()
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Ed25519 private key (PEM: from ppsp keygen or openssl genpkey -algorithm ed25519).",
)
@click.option(
    "--peer-id", required=True, type=PeerIdParam(), help="The PeerID the token is issued for."
)
@click.option(
    "--swarm",
    "swarms",
    multiple=True,
    type=TokenSwarmParam(),
    help="A swarm the peer may join (repeatable); without any, the peer may join every swarm.",
)
@click.option(
    "--ttl",
    type=click.IntRange(1, TTL_MAX),
    default=86400,
    show_default=True,
    help="Seconds the token stays valid.",
)
def token(key_path: Path, peer_id: str, swarms: tuple[str, ...], ttl: int) -> None:
    """Print a bearer token (a JWT signed with Ed25519) for a peer of a tracker run with
    --auth-key: its subject is the PeerID, and the peer takes that PeerID when it uses it.

    Give it to the peer as $PPSP_TOKEN (or --token); the token alone is printed, on one line.
    """
    import datetime
    import time

    from ppsp.tracker.net.auth import issue_token, load_private_key

    try:
        key = load_private_key(key_path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    now = time.time()
    text = issue_token(key, peer_id, swarms=swarms or None, ttl=ttl, now=now)
    click.echo(text)
    until = datetime.datetime.fromtimestamp(now + ttl, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    scope = f"{len(swarms)} swarm{'s' if len(swarms) != 1 else ''}" if swarms else "any swarm"
    click.echo(f"token for PeerID {peer_id}, {scope}, valid until {until}", err=True)


@main.command()
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the keys: PREFIX-private.pem (mode 0600) and PREFIX-public.pem.",
)
def keygen(prefix: Path) -> None:
    """Make an Ed25519 key pair for tokens: the private key signs them (ppsp token --key), the
    public key lets the tracker check them (ppsp tracker --auth-key).

    PEM files, as openssl genpkey -algorithm ed25519 writes them; existing files are never
    overwritten.
    """
    from ppsp.tracker.net.auth import write_key_pair

    private = prefix.with_name(prefix.name + "-private.pem")
    public = prefix.with_name(prefix.name + "-public.pem")
    if not private.parent.is_dir():
        raise click.BadParameter(f"no directory {private.parent}", param_hint="--out")
    try:
        write_key_pair(private, public)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"private key (keep it secret; ppsp token --key): {private}")
    click.echo(f"public key (ppsp tracker --auth-key): {public}")


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
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--tls-cert / --tls-key") from exc
    if auth_key is not None:
        from ppsp.tracker.net.auth import load_public_key

        try:
            settings["auth_key"] = load_public_key(auth_key)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--auth-key") from exc
    if trusted_proxies:
        from ppsp.tracker.net.proxy import parse_networks

        try:
            settings["trusted_proxies"] = parse_networks(trusted_proxies)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from exc
    return settings


@main.command()
@click.option(
    "--session",
    is_flag=True,
    help="Replay the seed's PPSP-TP/1.1 example session against a tracker instead.",
)
@click.option(
    "--encoding",
    "encodings",
    type=click.Choice(["xml", "json"], case_sensitive=False),
    multiple=True,
    help="Tracker encoding(s): for --session, XML then JSON by default; the swarm uses the first.",
)
@click.option(
    "--leechers",
    type=click.IntRange(1, 64),
    default=6,
    show_default=True,
    help="Number of leechers in the swarm.",
)
@log_level_option
def demo(session: bool, encodings: tuple[str, ...], leechers: int) -> None:
    """Run a local demo swarm: tracker, seeder of a sample video, leechers, and a final table.

    With --session, replay the seed's example tracker session and print each request and answer.
    """
    from ppsp.wire.tracker import Encoding

    chosen = [Encoding(e.lower()) for e in encodings]
    if session:
        from ppsp.app.demo import run_demo

        sys.exit(run_demo(chosen or [Encoding.XML, Encoding.JSON]))
    from ppsp.app.demo_swarm import SwarmDemoSettings, run_demo_swarm

    settings = SwarmDemoSettings(leechers=leechers, encoding=chosen[0] if chosen else Encoding.XML)
    sys.exit(run_demo_swarm(settings))


class RateParam(click.ParamType[float]):
    """A rate such as ``2MiB`` or ``8Mbit``, converted to bytes per second."""

    name = "rate"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Parse the rate or fail with click's usage error."""
        if isinstance(value, float):
            return value
        from ppsp.core.ratelimit import parse_rate

        try:
            return parse_rate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


RATE = RateParam()


def _writable_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Check, before anything runs, that a file can be written where ``value`` says."""
    import os

    if value is not None:
        if str(value) == "-":
            raise click.BadParameter("'-' (standard output) is not taken here: give a file name")
        directory = value.parent
        if not directory.is_dir():
            raise click.BadParameter(f"no directory {directory}")
        if not os.access(directory, os.W_OK):
            raise click.BadParameter(f"cannot write in {directory}")
    return value


TOKEN_ENVVAR = "PPSP_TOKEN"
"""The environment variable a peer command reads its bearer token from (kept out of ``ps``)."""


def _ca_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Check, before any network, that ``--ca-file`` holds certificates TLS can trust."""
    if value is not None:
        from ppsp.tracker.net.client import tls_context

        try:
            tls_context(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check, before any network, that the token (``--token`` or $PPSP_TOKEN) names a PeerID."""
    if value is None:
        return None
    from click.core import ParameterSource

    from ppsp.tracker.net.client import check_token, token_subject

    try:
        token_subject(value)
        return check_token(value)
    except ValueError as exc:
        if ctx.get_parameter_source("token") is ParameterSource.ENVIRONMENT:
            raise click.UsageError(f"the token in ${TOKEN_ENVVAR}: {exc}", ctx) from exc
        raise click.BadParameter(str(exc)) from exc


def _peer_options(func: _F) -> _F:
    """Options every peer command shares, handed to the command as one ``options`` value.

    Tracker URL, trust anchors, token and encoding, the address it serves other peers on, rate
    limits, the report file, and a hidden test switch that makes the peer serve damaged chunks.
    """
    options = [
        click.option(
            "--tracker", "tracker_url", type=TRACKER_URL, required=True, help="Tracker URL."
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            callback=_ca_file,
            help="PEM file of CA certificates to trust for an https:// tracker, beside the "
            "system's.",
        ),
        click.option(
            "--token",
            envvar=TOKEN_ENVVAR,
            show_envvar=True,
            default=None,
            callback=_token,
            help="Bearer token for the tracker (from ppsp token); the peer takes its subject as "
            f"its PeerID. Prefer ${TOKEN_ENVVAR}: options show in process lists.",
        ),
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to serve other peers on (0.0.0.0 or :: for every address).",
        ),
        click.option(
            "--port", type=PORT, default=0, show_default=True, help="Port to serve on (0: any)."
        ),
        click.option(
            "--advertise",
            type=ADVERTISE,
            default=None,
            help="IP[:PORT] other peers reach this one at (a public address, a forwarded "
            "port); default: the --host address, or for a wildcard the local address that "
            "reaches the tracker.",
        ),
        click.option(
            "--upload-rate",
            type=RATE,
            default=None,
            help="Upload limit, e.g. 2MiB or 8Mbit (per second).",
        ),
        click.option(
            "--download-rate",
            type=RATE,
            default=None,
            help="Download limit, e.g. 2MiB or 8Mbit (per second).",
        ),
        click.option(
            "--report",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            callback=_writable_file,
            help="Write this peer's figures as JSON to this file when it stops.",
        ),
        click.option(
            "--tracker-encoding",
            type=click.Choice(["xml", "json"], case_sensitive=False),
            default="xml",
            show_default=True,
            help="Encoding of the tracker protocol.",
        ),
        click.option(
            "--corrupt-uploads", is_flag=True, hidden=True, help="Serve damaged chunks (tests)."
        ),
    ]

    @functools.wraps(func)
    def with_options(
        *args: Any,
        tracker_url: str,
        host: str,
        port: int,
        advertise: tuple[str, int | None] | None,
        upload_rate: float | None,
        download_rate: float | None,
        report: Path | None,
        tracker_encoding: str,
        corrupt_uploads: bool,
        ca_file: Path | None,
        token: str | None,
        **kwargs: Any,
    ) -> Any:
        from ppsp.app.commands import PeerOptions
        from ppsp.tracker.net.client import tls_context
        from ppsp.wire.tracker import Encoding

        if ca_file is not None and not tracker_url.startswith("https://"):
            raise click.BadParameter(
                f"trust anchors are for https:// trackers, and {tracker_url} is not one",
                param_hint="--ca-file",
            )
        peer = PeerOptions(
            tracker_url=tracker_url,
            host=host,
            port=port,
            advertise=advertise,
            encoding=Encoding(tracker_encoding.lower()),
            upload_rate=upload_rate,
            download_rate=download_rate,
            report=report,
            corrupt_uploads=corrupt_uploads,
            tls=tls_context(ca_file) if ca_file is not None else None,
            token=token,
        )
        return func(*args, options=peer, **kwargs)

    command: Any = with_options
    for option in reversed(options):
        command = option(command)
    return cast(_F, command)


def _run(coro: Any) -> int:
    """Run a peer command's coroutine, with the collector and the allocator tuned.

    Peers run on asyncio's own event loop, not uvloop (which the tracker uses): it sends
    stored chunks with ``sendfile``, which uvloop cannot, and moves bulk data no slower
    (docs/BENCHMARKS.md).
    """
    import asyncio

    from ppsp.process.tuning import tune_allocator, tune_garbage_collector

    tune_allocator()
    tune_garbage_collector()
    return int(asyncio.run(coro))


TIMEOUT_HELP = "Give up after this many seconds without progress."

TIMEOUT = click.FloatRange(min=0, min_open=True)
"""Seconds, more than 0."""


@main.command()
@click.argument("path", type=SEED_FILE)
@_peer_options
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, 16 << 20),
    default=None,
    help="Chunk size in bytes, 1024 to 16777216 (16 MiB); default 256 KiB, doubled for "
    "content over 64 MiB up to 1 MiB.",
)
@log_level_option
def seed(path: Path, options: PeerOptions, chunk_size: int | None) -> None:
    """Seed a file: print its swarm ID, then serve it until interrupted."""
    from ppsp.app.commands import seed_main

    sys.exit(_run(seed_main(path, options, chunk_size=chunk_size)))


FORCE_HELP = "Replace the output file if it exists."


def _check_output(output: Path | None, force: bool) -> None:
    from ppsp.app.commands import check_output

    problem = check_output(output, force=force)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="'-o' / '--output'")


@main.command()
@click.argument("swarm_id", type=SWARM_ID)
@_peer_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, allow_dash=True),
    help="Output file ('-': standard output, in order). Written as FILE.part until every "
    "chunk is verified; the same command resumes an interrupted download.",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--timeout", type=TIMEOUT, default=30.0, show_default=True, help=TIMEOUT_HELP)
@click.option("--seed-after", is_flag=True, help="Keep serving the content once complete.")
@log_level_option
def get(
    swarm_id: str,
    options: PeerOptions,
    output: Path,
    force: bool,
    timeout: float,
    seed_after: bool,
) -> None:
    """Download a swarm's content, verified chunk by chunk."""
    _check_output(output, force)
    from ppsp.app.commands import get_main

    sys.exit(
        _run(get_main(swarm_id, options, output=output, timeout=timeout, seed_after=seed_after))
    )


@main.command()
@click.argument("swarm_id", type=SWARM_ID)
@_peer_options
@click.option(
    "--player-port",
    type=PORT,
    default=None,
    help="Local port for the player URL (default 8080, or any free port when it is taken; 0: any).",
)
@click.option(
    "--player-host",
    default="127.0.0.1",
    show_default=True,
    help="Local address for the player URL.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Also keep the content in this file ('-': write it to standard output, in order).",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--timeout", type=TIMEOUT, default=30.0, show_default=True, help=TIMEOUT_HELP)
@log_level_option
def watch(
    swarm_id: str,
    options: PeerOptions,
    player_port: int | None,
    player_host: str,
    output: Path | None,
    force: bool,
    timeout: float,
) -> None:
    """Watch a swarm (stored content or a live stream) at a local URL for mpv, VLC, ffplay or a
    browser; with -o, also keep it in a file (-o - writes it to standard output).
    """
    _check_output(output, force)
    from ppsp.app.commands import watch_main

    sys.exit(
        _run(
            watch_main(
                swarm_id,
                options,
                player_host=player_host,
                player_port=player_port,
                output=output,
                timeout=timeout,
            )
        )
    )


@main.command()
@_peer_options
@click.option(
    "--input",
    "input_path",
    default="-",
    show_default=True,
    help="The live byte stream: '-' for standard input, or a file or named pipe read as it grows.",
)
@click.option(
    "--chunk-ms",
    type=click.IntRange(1, 60_000),
    default=500,
    show_default=True,
    help="Chunk duration in milliseconds.",
)
@click.option(
    "--window",
    "window_s",
    type=click.IntRange(1, 86_400),
    default=30,
    show_default=True,
    help="Seconds of chunks kept.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The source's Ed25519 key (PEM); made and saved when missing (default: per --name in"
    " the user's data directory, $XDG_DATA_HOME/ppsp/live-keys/NAME.key).",
)
@click.option(
    "--name",
    default="live",
    show_default=True,
    help="Name of the stream (it also names the stream's key file).",
)
@log_level_option
def live(
    options: PeerOptions,
    input_path: str,
    chunk_ms: int,
    window_s: int,
    key_path: Path | None,
    name: str,
) -> None:
    """Stream live: cut the input into signed chunks and feed the swarm; prints the swarm ID.

    When the input ends, the last chunk says so, the source serves it briefly and exits.
    """
    from ppsp.app.live_commands import live_main

    sys.exit(
        _run(
            live_main(
                options,
                input_path=input_path,
                chunk_ms=chunk_ms,
                window_s=window_s,
                key_path=key_path,
                name=name,
            )
        )
    )


LAB_MODULES = ("matplotlib", "av")
"""What ``ppsp lab`` needs beyond a plain install: the ``lab`` extra (plots, decoding)."""


def _require_lab_extra() -> None:
    """Fail with one line when the ``lab`` extra is not installed."""
    import importlib.util

    missing = [name for name in LAB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"ppsp lab needs {' and '.join(missing)}: install them with pip install 'ppsp[lab]'"
        )


@main.group()
def lab() -> None:
    """Swarm lab: real processes on loopback, measured against the fluid-model bound."""


@lab.command("vod")
@click.option("--peers", type=click.IntRange(min=1), default=16, show_default=True, help="Peers.")
@click.option(
    "--size-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=32.0,
    show_default=True,
    help="Size of the generated file in MiB.",
)
@click.option("--source-rate", type=RATE, default="4MiB", show_default=True, help="Source upload.")
@click.option("--peer-rate", type=RATE, default="2MiB", show_default=True, help="Peer upload.")
@click.option("--download-rate", type=RATE, default=None, help="Peer download cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Peers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of peers that leave right after completing instead of seeding on.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of content and joins.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-vod"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, 16 << 20),
    default=None,
    help="Chunk size in bytes (seed's default).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Bound in seconds on the swarm's completion (and on the baseline's).",
)
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Run the baseline.")
def lab_vod(
    peers: int,
    size_mb: float,
    source_rate: float,
    peer_rate: float,
    download_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    out: Path,
    chunk_size: int | None,
    timeout: float,
    baseline: bool,
) -> None:
    """Video on demand: a tracker, a capped source and N peers; report.md against the bound.

    A fraction --churn of the peers (chosen with --seed) run without --seed-after: they leave
    the swarm as soon as their copy is complete.  Exit status 1 when a peer did not complete.
    """
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.runner import LabError, VodLabSettings, run_vod_lab

    settings = VodLabSettings(
        out=out,
        peers=peers,
        size_mb=size_mb,
        source_rate=source_rate,
        peer_rate=peer_rate,
        download_rate=download_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_size=chunk_size,
        timeout=timeout,
        baseline=baseline,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
    )
    try:
        document = asyncio.run(run_vod_lab(settings))
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if document["figures"]["all_complete"] else 1)


@lab.command("live")
@click.option("--peers", type=click.IntRange(min=1), default=10, show_default=True, help="Viewers.")
@click.option("--bitrate", type=RATE, default="2Mbit", show_default=True, help="Stream bitrate.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds everything runs after the last viewer joined.",
)
@click.option(
    "--source-rate", type=RATE, default=None, help="Source upload cap (default 3x the bitrate)."
)
@click.option("--peer-rate", type=RATE, default=None, help="Viewer upload cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Viewers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of viewers that leave early (SIGINT after 30-70% of their watching time).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of joins and churn.")
@click.option(
    "--chunk-ms",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Chunk duration of the source in milliseconds.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-live"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
def lab_live(
    peers: int,
    bitrate: float,
    duration: float,
    source_rate: float | None,
    peer_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    chunk_ms: int,
    out: Path,
) -> None:
    """Live streaming: ffmpeg's test pattern into ppsp live, N ppsp watch viewers; report.md
    with continuity, startup delay, delay behind the source and the source's share per target.

    A fraction --churn of the viewers (chosen with --seed) is stopped early.  Exit status 1
    when a viewer wrote no playback report; missed targets are reported, not failed.
    """
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.live import LiveLabSettings, run_live_lab
    from ppsp.lab.runner import LabError

    settings = LiveLabSettings(
        out=out,
        peers=peers,
        bitrate=bitrate,
        duration=duration,
        source_rate=source_rate,
        peer_rate=peer_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_ms=chunk_ms,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
    )
    try:
        document = asyncio.run(run_live_lab(settings))
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if all(v["reported"] for v in document["figures"]["viewers"]) else 1)
