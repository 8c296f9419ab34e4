"""Waiting in tests without sleeping a fixed time: until a condition holds, or while a server
keeps a client waiting (both bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

WAIT = 10.0
"""Bound on any one wait (what a test waits for happens in milliseconds)."""


async def until(check: Callable[[], bool], within: float = WAIT) -> None:
    """Return once ``check()`` holds, looking every 10 ms; AssertionError after ``within`` s."""
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def still_waiting(reader: asyncio.StreamReader, quiet: float = 0.2) -> bool:
    """Whether the server still waits for this client (nothing answered nor closed within
    ``quiet`` seconds)."""
    try:
        await asyncio.wait_for(reader.read(1), quiet)
    except TimeoutError:
        return True
    return False
