"""Signal handling shared by the long-running commands: peers and the lab."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence

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


def stop_event() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets, for the rest of the running loop's life."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, event.set)
    return event
