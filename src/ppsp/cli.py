"""The ``ppsp`` command line: one click group, one function per subcommand.

``ppsp tracker`` runs a tracker in the foreground; ``ppsp demo`` replays the seed's example
session against an in-process tracker.  A new subcommand is a function decorated with
``@main.command()`` (add ``@log_level_option`` to get ``--log-level``); its heavy imports belong
inside the function so that ``ppsp --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

import ppsp

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ppsp.__version__, prog_name="ppsp")
def main() -> None:
    """PPSP: a tracker (PPSP-TP/1.1, 1.0, RFC 7846) and streaming peers."""


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
) -> None:
    """Run a PPSP tracker until SIGINT or SIGTERM."""
    from ppsp.tracker.core import TrackerConfig
    from ppsp.tracker.messages import ProtocolVersion
    from ppsp.tracker.server import ServerSettings, run_tracker

    if storage != "memory" and not storage.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter("use 'memory' or a redis:// URL", param_hint="--storage")
    config = TrackerConfig(
        max_version=ProtocolVersion(max_version),
        init_timeout=init_timeout,
        track_timeout=track_timeout,
        max_peers=max_peers,
    )

    def ready(url: str) -> None:
        click.echo(f"ppsp tracker (PPSP-TP/{max_version}) listening on {url}")
        sys.stdout.flush()

    try:
        run_tracker(
            host,
            port,
            config,
            None if storage == "memory" else storage,
            settings=ServerSettings(max_body=max_body),
            on_ready=ready,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
    click.echo("ppsp tracker stopped")


@main.command()
@click.option(
    "--encoding",
    "encodings",
    type=click.Choice(["xml", "json"], case_sensitive=False),
    multiple=True,
    help="Encoding(s) to replay the session in (default: XML, then JSON).",
)
@log_level_option
def demo(encodings: tuple[str, ...]) -> None:
    """Replay the seed's PPSP-TP/1.1 example session against an in-process tracker."""
    from ppsp.demo import run_demo
    from ppsp.tracker.messages import Encoding

    chosen = [Encoding(e.lower()) for e in encodings] or [Encoding.XML, Encoding.JSON]
    sys.exit(run_demo(chosen))
