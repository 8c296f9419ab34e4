"""The ``ppsp`` command line: one click group, its commands in one module per group.

- :mod:`~ppsp.app.cli.base`: the group, its error lines and exit codes, ``--log-level``;
- :mod:`~ppsp.app.cli.params`: option types shared by several commands;
- :mod:`~ppsp.app.cli.tracker`: ``ppsp tracker``;
- :mod:`~ppsp.app.cli.keys`: ``ppsp token`` and ``ppsp keygen``;
- :mod:`~ppsp.app.cli.peer`: ``ppsp seed``, ``get`` and ``watch``, and the peer options;
- :mod:`~ppsp.app.cli.live`: ``ppsp live``;
- :mod:`~ppsp.app.cli.lab`: ``ppsp lab vod`` and ``ppsp lab live``;
- :mod:`~ppsp.app.cli.demos`: ``ppsp demo``.

A new subcommand is a ``@click.command()`` function in the module of its group (add
``@log_level_option`` for ``--log-level``), added to :data:`main` below.  These modules import
click and the standard library only: what a command runs is imported inside its function, so
that ``ppsp --help`` stays fast and each command loads its own layer only
(``tests/app/test_startup.py`` checks it).

Layer: application, as :mod:`ppsp.app`.  May import every other layer, inside the commands.
"""

from __future__ import annotations

from ppsp.app.cli.base import ERROR_PREFIX, LOG_LEVELS, configure_logging, log_level_option, main
from ppsp.app.cli.demos import demo
from ppsp.app.cli.keys import keygen, token
from ppsp.app.cli.lab import lab
from ppsp.app.cli.live import live
from ppsp.app.cli.peer import get, seed, watch
from ppsp.app.cli.tracker import tracker

for _command in (tracker, token, keygen, demo, seed, get, watch, live, lab):
    main.add_command(_command)

__all__ = ["ERROR_PREFIX", "LOG_LEVELS", "configure_logging", "log_level_option", "main"]
