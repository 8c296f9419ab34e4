"""One ``ppsp`` subprocess of a lab run (:class:`LabProcess`) and the environment every such
process runs in (:data:`ENV`): its output logged to a file, its lines watched for patterns,
its CPU time read from ``/proc``, stopped with SIGTERM and killed after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from ppsp.lab.errors import LabError
from ppsp.process.lifetime import child_setup

__all__ = ["ENV", "START_TIMEOUT", "STOP_GRACE", "LabProcess"]

START_TIMEOUT = 30.0
"""Bound on a tracker or source getting ready."""
STOP_GRACE = 15.0
"""Seconds a process has to exit after SIGTERM before it is killed."""
ENV = {
    **{name: value for name, value in os.environ.items() if not name.startswith("PPSP_")},
    # No per-user configuration file: an absolute directory that holds none.
    "XDG_CONFIG_HOME": "/nonexistent/ppsp-lab",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
}
"""The lab processes' environment: configured by the lab's own arguments alone, never by the
user's ``PPSP_*`` variables or configuration file (a user's token would give every lab peer
one PeerID; a configured port or rate would change what the lab measures)."""


class LabProcess:
    """One ``ppsp`` subprocess: its output logged to a file, its stderr watched for a pattern."""

    def __init__(
        self,
        name: str,
        process: asyncio.subprocess.Process,
        log: Path,
        *,
        watch: re.Pattern[str] | None = None,
    ) -> None:
        self.name = name
        self.process = process
        self.stdout: list[str] = []
        self.tail: deque[str] = deque(maxlen=40)
        self.watch = watch
        self.matched = asyncio.Event()
        self.matched_at: float | None = None
        self._changed = asyncio.Event()
        self._log: IO[str] = log.open("w", encoding="utf-8")
        assert process.stdout is not None and process.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(process.stdout, "stdout")),
            asyncio.ensure_future(self._pump(process.stderr, "stderr")),
        ]

    @classmethod
    async def spawn(
        cls,
        name: str,
        args: Sequence[str],
        log: Path,
        *,
        watch: re.Pattern[str] | None = None,
        module: str = "ppsp",
        prefix: Sequence[str] = (),
        program: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LabProcess:
        """Start ``python -m MODULE ARGS`` (or ``program`` ARGS) in a new session (so signals
        reach it alone), run by ``prefix`` when given (``ip netns exec NAMESPACE``, which
        keeps the process ID: signals still reach the program itself); ``env`` adds to the
        lab's environment."""
        command = [*(program if program is not None else (sys.executable, "-m", module)), *args]
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**ENV, **(env or {})},
            start_new_session=True,
            # Ended by the kernel should the lab itself be killed outright.
            preexec_fn=functools.partial(child_setup, os.getpid()),
        )
        return cls(name, process, log, watch=watch)

    async def _pump(self, stream: asyncio.StreamReader, which: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            self._log.write(f"{which}: {line}\n")
            if which == "stdout":
                self.stdout.append(line)
            else:
                self.tail.append(line)
                if self.watch is not None and not self.matched.is_set() and self.watch.search(line):
                    self.matched_at = time.time()
                    self.matched.set()
            self._changed.set()
        self._changed.set()

    @property
    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None

    def describe(self) -> str:
        """The process's name, exit status and last lines of stderr, for error messages."""
        status = "running" if self.alive else f"exit status {self.process.returncode}"
        return f"{self.name} ({status}):\n  " + "\n  ".join(self.tail)

    async def stdout_line(self, pattern: re.Pattern[str] | None, timeout: float) -> str:
        """The first stdout line matching ``pattern`` (any if None), waited for ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stdout:
                if pattern is None or pattern.search(line):
                    return line
            if not self.alive and all(p.done() for p in self._pumps):
                raise LabError(f"{self.name} exited before it was ready: {self.describe()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"{self.name} not ready after {timeout:.0f} s: {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def stderr_line(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The first line of the stderr kept (:attr:`tail`) matching ``pattern``, waited for
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.tail:
                if pattern.search(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.alive:
                raise LabError(f"{self.name} did not say {pattern.pattern!r}: {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def wait_done(self, timeout: float) -> bool:
        """Wait until the watched pattern appears or the process exits; False on timeout."""
        exited = asyncio.ensure_future(self.process.wait())
        matched = asyncio.ensure_future(self.matched.wait())
        try:
            done, _ = await asyncio.wait(
                {exited, matched}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
            matched.cancel()
        return bool(done)

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time used so far (from /proc; None where unavailable)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
        # Fields after the command name start at field 3 (state): utime is 14, stime 15.
        return (int(fields[11]) + int(fields[12])) / ticks

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process still runs."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), 5.0)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL at once (the last resort when the run is torn down)."""
        self.signal(signal.SIGKILL)
