"""A command's process ends as soon as the command is done, without the interpreter's teardown.

When ``python`` exits normally it waits for the threads that are not daemons, runs the
``atexit`` functions, and then takes every module apart and frees every object one by one:
some 15 ms for a peer command's few hundred modules, paid after the work is done (a tenth of
``ppsp get``'s start-up, measured in docs/BENCHMARKS.md).  :func:`end_process` does the first
two as Python does, flushes the standard streams, and leaves at once through ``os._exit``: the
kernel takes the memory back.  Files a command writes are closed by the command itself (every
one in a ``with`` block), and the log's handlers are flushed and closed by ``logging``'s own
``atexit`` function.

Layer: process helpers, standard library only.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

__all__ = ["end_process", "exit_status"]


def exit_status(code: object) -> int:
    """The status ``SystemExit(code)`` ends a process with, as the interpreter reads it: 0 for
    None, an integer as it is (modulo 256, as the system keeps it), 1 for anything else (which
    is then written to standard error, as the interpreter does)."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    if isinstance(code, bool):
        return int(code)
    print(code, file=sys.stderr)
    return 1


def end_process(status: int) -> NoReturn:
    """End the process with ``status`` the way ``python`` would, but for its teardown: wait
    for the threads that are not daemons, run the ``atexit`` functions, flush standard output
    and standard error, then ``os._exit``."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon and thread.is_alive():
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing more to say
            pass
    os._exit(status)
