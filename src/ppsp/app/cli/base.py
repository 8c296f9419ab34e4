"""The ``ppsp`` group itself: one-line errors and exit codes, ``--config``, ``--version``.

Every command gets ``--config``, ``--log-level``, ``--log-file`` and ``--log-format``, and
reads files and ``PPSP_*`` variables (:mod:`~ppsp.app.cli.config`).  Imports click and the
standard library only: every command module builds on it, and ``ppsp --help`` pays for
nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import ppsp
from ppsp.app.cli.config import (
    CONFIG_ENVVAR,
    ConfigError,
    ConfiguredGroup,
    describe_source,
    remember_group_config,
)
from ppsp.app.cli.logs import LOG_LEVELS, configure_logging

F = TypeVar("F", bound=Callable[..., Any])
"""A click callback, before and after a decorator adds options to it."""

__all__ = ["ERROR_PREFIX", "LOG_LEVELS", "F", "configure_logging", "main"]

ERROR_PREFIX = "ppsp: "
"""How every error line of every command begins (see also :func:`ppsp.app.commands.fail`)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Commands(ConfiguredGroup):
    """The ``ppsp`` group: every failure is one line on stderr, never a traceback.

    Usage errors (a bad option value, a missing argument, a configuration file that cannot be
    used) exit 2, other failures 1, and an interruption before a command could install its own
    signal handling 130.  A bad value from a file or the environment names where it came from.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line as click does, with the errors described above."""
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except ConfigError as exc:
            _error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            sourced = describe_source(exc)
            if sourced is not None:
                _error(sourced)
                sys.exit(exc.exit_code)
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
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    envvar=CONFIG_ENVVAR,
    show_envvar=True,
    expose_value=False,
    is_eager=True,
    callback=remember_group_config,
    help="TOML file of option values for the command (docs/CONFIGURATION.md), over the "
    "per-user ~/.config/ppsp/config.toml.",
)
def main() -> None:
    """PPSP: a tracker (PPSP-TP/1.1, 1.0, RFC 7846) and streaming peers."""
