"""Waiting for a regular file to grow (``tail -f``) without a polling loop.

A live source may read a recording that another program is still writing.  A read at the end
of such a file returns nothing at once, so something must wait for the next write: on Linux,
inotify tells (the wait blocks in the kernel until the file is written, closed, moved or
removed); elsewhere the wait falls back to a short sleep (:data:`FALLBACK_WAIT_S`), the one place
a poll remains, for want of a portable way to wait on file growth.

The watch is set up before the first read, so a write that lands between a read that found
nothing and the wait is never missed: its event is already queued.  Extra wake-ups (events for
bytes already read) only cost one empty read.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import sys
import time

__all__ = ["FALLBACK_WAIT_S", "FileGrowth"]

FALLBACK_WAIT_S = 0.05
"""How long a wait sleeps where inotify is not available."""

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVE_SELF = 0x00000800
_IN_DELETE_SELF = 0x00000400
_IN_CLOEXEC = 0o2000000
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVE_SELF | _IN_DELETE_SELF
_EVENTS_BYTES = 64 * 1024


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 - present on every Linux libc since 2.9
    except (OSError, AttributeError):
        return None
    return libc


class FileGrowth:
    """Waits until a file may have grown: :meth:`wait` returns after a write to it.

    Open it before the first read of the file; :meth:`close` it when done.  ``inotify`` tells
    whether the kernel watch is in use (False: the fallback sleep).
    """

    def __init__(self, path: str) -> None:
        self._fd: int | None = None
        libc = _libc()
        if libc is None:
            return
        fd = int(libc.inotify_init1(_IN_CLOEXEC))
        if fd < 0:
            return
        if int(libc.inotify_add_watch(fd, os.fsencode(path), _MASK)) < 0:
            os.close(fd)
            return
        self._fd = fd

    @property
    def inotify(self) -> bool:
        """Whether the wait blocks in the kernel (True) or sleeps (False)."""
        return self._fd is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the file is written to (or ``timeout`` seconds pass: then False)."""
        if self._fd is None:
            time.sleep(FALLBACK_WAIT_S if timeout is None else min(timeout, FALLBACK_WAIT_S))
            return True
        readable, _, _ = select.select([self._fd], [], [], timeout)
        if not readable:
            return False
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self._fd, _EVENTS_BYTES)  # every event queued so far: one wake-up
        return True

    def close(self) -> None:
        """Stop watching the file."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
