"""The ``ppsp`` process: ``python -m ppsp`` and the ``ppsp`` script start and end here.

Before the command line's modules load, the collector is set to collect as every command runs
(:func:`~ppsp.process.tuning.collect_rarely`): with CPython's default (a collection every 700
allocations), loading a peer command's modules ran some 70 collections, a few milliseconds of
its start-up.  When the command is done, the process ends without the interpreter's teardown
(:func:`~ppsp.process.ending.end_process`: about 15 ms).  The commands themselves are
:data:`ppsp.app.cli.main`, which tests and other programs call in their own process: nothing
here runs there.

Layer: application, as :mod:`ppsp.app`.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["run"]


def run() -> NoReturn:
    """Run the ``ppsp`` command line of this process's arguments, then end the process with
    the command's exit status."""
    from ppsp.process.tuning import collect_rarely

    collect_rarely()

    from ppsp.app.cli import main
    from ppsp.process.ending import end_process, exit_status

    try:
        main()
    except SystemExit as exc:
        status = exit_status(exc.code)
    else:  # pragma: no cover - the group always ends with sys.exit
        status = 0
    end_process(status)
