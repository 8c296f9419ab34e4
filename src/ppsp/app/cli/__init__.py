"""The ``ppsp`` command line: one click group, its commands in one module per group.

- :mod:`~ppsp.app.cli.base`: the group, its error lines and exit codes;
- :mod:`~ppsp.app.cli.config`: options from TOML files and ``PPSP_*`` environment variables,
  ``--config`` and the logging options of every command;
- :mod:`~ppsp.app.cli.logs`: ``--log-level``, ``--log-file`` and ``--log-format`` at work;
- :mod:`~ppsp.app.cli.reference`: docs/CONFIGURATION.md's example file and table of keys;
- :mod:`~ppsp.app.cli.params`: option types shared by several commands;
- :mod:`~ppsp.app.cli.tracker`: ``ppsp tracker``;
- :mod:`~ppsp.app.cli.keys`: ``ppsp token`` and ``ppsp keygen``;
- :mod:`~ppsp.app.cli.peer`: ``ppsp seed``, ``get`` and ``watch``, and the peer options;
- :mod:`~ppsp.app.cli.live`: ``ppsp live``;
- :mod:`~ppsp.app.cli.lab`: ``ppsp lab vod`` and ``ppsp lab live``;
- :mod:`~ppsp.app.cli.demos`: ``ppsp demo``.

A new subcommand is a ``@click.command()`` function in the module of its group, added to
:data:`main` below (a new group is a ``ConfiguredGroup``): it gets ``--config``, the logging
options and its ``PPSP_*`` variables by itself, and docs/CONFIGURATION.md must be regenerated
(``python -m ppsp.app.cli.reference docs/CONFIGURATION.md``; a test says so).  These modules
import click and the standard library only: what a command runs is imported inside its
function, so that ``ppsp --help`` stays fast and each command loads its own layer only
(``tests/app/test_startup.py`` checks it).

Layer: application, as :mod:`ppsp.app`.  May import every other layer, inside the commands.
"""

from __future__ import annotations

from ppsp.app.cli.base import ERROR_PREFIX, LOG_LEVELS, configure_logging, main
from ppsp.app.cli.demos import demo
from ppsp.app.cli.keys import keygen, token
from ppsp.app.cli.lab import lab
from ppsp.app.cli.live import live
from ppsp.app.cli.nat import stun
from ppsp.app.cli.peer import get, seed, watch
from ppsp.app.cli.tracker import tracker
from ppsp.process.codecache import install as _install_code_cache

# Before any command imports the wire model (these modules import click and the standard
# library only): dataclasses' methods are compiled once per machine, not once per run
# (a fifth of a peer command's start-up otherwise; ppsp.process.codecache).
_install_code_cache()

for _command in (tracker, token, keygen, demo, seed, get, watch, live, lab, stun):
    main.add_command(_command)

__all__ = ["ERROR_PREFIX", "LOG_LEVELS", "configure_logging", "main"]
