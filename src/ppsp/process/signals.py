"""Signal handling shared by the long-running commands: peers and the lab."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

_T = TypeVar("_T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask a command to stop cleanly."""


@contextlib.contextmanager
def on_signals(
    callback: Callable[[], object], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> Iterator[bool]:
    """Call ``callback`` on any of ``signals`` while the block runs (on the running loop).

    Yields whether handlers could be installed: event-loop signal handlers exist on Unix only,
    and elsewhere the loop raises NotImplementedError, so the default behaviour stays.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, callback)
            installed.append(signum)
    try:
        yield bool(installed)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


INTERRUPTED_EXIT = 130
"""Exit status of a command that a second stop signal ended at once (128 + SIGINT)."""


class Interrupted(Exception):
    """A stop signal arrived while a command was still busy with something (see until_stopped)."""


def stop_event() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets, for the rest of the running loop's life.

    The first signal sets the event and the command winds down (leaving the swarm, writing its
    report). A second one ends the process at once: whoever presses Ctrl-C twice wants out now.
    """
    event = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if event.is_set():
            print("ppsp: stopped", file=sys.stderr, flush=True)
            os._exit(INTERRUPTED_EXIT)
        event.set()

    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal)
    return event


async def until_stopped(stop: asyncio.Event, awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` unless ``stop`` is set first: then cancel it and raise Interrupted.

    For the stages of a command that are not its serving loop (looking up a swarm, hashing a
    file, a tracker that does not answer): a stop signal ends them at once instead of after
    their own timeouts.
    """
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(stop.wait())
    finished_first = False
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finished_first = task.done()
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            # Wait for its clean-up (it may hold a socket or a thread's result), not its error.
            await asyncio.wait({task})
    if finished_first:
        return task.result()
    try:
        return task.result()  # it may have finished all the same
    except asyncio.CancelledError:
        # (A gathering future ends with the error rather than as cancelled: both mean this.)
        raise Interrupted from None
