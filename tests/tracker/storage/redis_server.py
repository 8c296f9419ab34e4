"""A redis-server of a test's own, which the test may stop and start again on the same port.

The session's server (the ``redis_url`` fixture of ``tests/conftest.py``) is shared by every
test; a test that takes Redis away from a tracker needs one nobody else uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)

START_TIMEOUT = 10.0
"""Bound on redis-server accepting connections after it was started."""


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server on a fixed loopback port, without persistence: :meth:`start`, :meth:`stop`.

    Started again after :meth:`stop`, it listens on the same port (and holds no data).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (bounded) until it accepts connections."""
        assert REDIS_SERVER is not None
        self._process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        limit = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > limit:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (SIGKILL: it goes away at once, as a crashed one would)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
            self._process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped at the end (skips without redis-server)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server binary not found (install the redis-server package)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
