"""The subprocesses of the hostile-peer benchmarks: started, read, drained and stopped alike.

Used by ``bench.tarpit_bench``, ``bench.flood_bench`` and ``bench.live_tarpit_bench``: each runs
a tracker, seeders or a source, attackers and a measured peer as processes of their own (the
``ppsp`` they run is whatever the interpreter imports, so that ``PYTHONPATH=OLD_CHECKOUT/src``
measures an earlier release).  Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "LINE_TIMEOUT",
    "LISTENING",
    "ROOT",
    "SWARM_ID",
    "add_tarpit_arguments",
    "drain",
    "line",
    "spawn",
    "start_tracker",
    "stop",
]

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: the benchmarks' processes run from it."""
LISTENING = re.compile(r"listening on (http://\S+)")
"""The tracker's line naming its URL."""
SWARM_ID = re.compile(r"^[0-9a-f]{64}$")
"""A seeder's first stdout line: the swarm ID."""
LINE_TIMEOUT = 30.0
"""Seconds a process has to print the line waited for."""


async def spawn(
    *args: str, env: dict[str, str] | None = None, stdin: int | None = None, stderr: bool = True
) -> asyncio.subprocess.Process:
    """Start ``python ARGS`` from the checkout, stdout piped (stderr too unless ``stderr`` is
    False: then it is dropped)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if stderr else asyncio.subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


async def line(process: asyncio.subprocess.Process, pattern: re.Pattern[str]) -> str:
    """The first stdout line of ``process`` matching ``pattern`` (within :data:`LINE_TIMEOUT`)."""
    assert process.stdout is not None
    async with asyncio.timeout(LINE_TIMEOUT):
        while text := (await process.stdout.readline()).decode():
            if pattern.search(text.strip()):
                return text.strip()
    raise RuntimeError(f"process exited without printing {pattern.pattern!r}")


def drain(process: asyncio.subprocess.Process, tasks: list[asyncio.Task[None]]) -> None:
    """Read what ``process`` prints from now on, so that a full pipe never blocks it."""

    async def read(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and await stream.read(65536):
            pass

    tasks += [
        asyncio.ensure_future(read(process.stdout)),
        asyncio.ensure_future(read(process.stderr)),
    ]


async def stop(processes: Sequence[asyncio.subprocess.Process]) -> None:
    """Kill every process still running and wait for each."""
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            await process.wait()


async def start_tracker(
    started: list[asyncio.subprocess.Process], drains: list[asyncio.Task[None]]
) -> str:
    """Start ``ppsp tracker`` on 127.0.0.1 (added to ``started``, drained); its URL."""
    tracker = await spawn(
        "-m", "ppsp", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "error"
    )
    started.append(tracker)
    url = LISTENING.search(await line(tracker, LISTENING))
    assert url is not None
    drain(tracker, drains)
    return url.group(1)


def add_tarpit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a benchmark's ``tarpit`` subcommand (one tarpit process)."""
    parser.add_argument("--tracker", required=True)
    parser.add_argument("--swarm", required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--lifetime", type=float, default=300.0)
