"""The ``ppsp`` group itself: one-line errors and exit codes, ``--log-level``, ``--version``.

Imports click and the standard library only: every command module builds on it, and
``ppsp --help`` pays for nothing else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

import ppsp

F = TypeVar("F", bound=Callable[..., Any])
"""A click callback, before and after a decorator adds options to it."""

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


def log_level_option(func: F) -> F:
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
