"""Shared fixtures: a real redis-server for the Redis backend, and a storage per backend.

Also a scratch per-user data directory ($XDG_DATA_HOME) for every process of the run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import settings

from ppsp.app.cli import main
from ppsp.app.cli.config import variables
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.storage import MemoryStorage, Storage
from ppsp.wire import packed

# Every process the tests start keeps its per-user files (live source keys) in a scratch
# directory, never in the real home: set before any test module copies the environment.
_USER_DATA = tempfile.mkdtemp(prefix="ppsp-tests-data-")
os.environ["XDG_DATA_HOME"] = _USER_DATA
# ... and their dataclass code cache (ppsp.process.codecache) in another.
os.environ["XDG_CACHE_HOME"] = os.path.join(_USER_DATA, "cache")
atexit.register(shutil.rmtree, _USER_DATA, True)
# Nor do they read their user's settings: no per-user configuration file, no PPSP_* variable
# a command reads (docs/CONFIGURATION.md).
os.environ["XDG_CONFIG_HOME"] = os.path.join(_USER_DATA, "config")
for _name in variables(main):
    os.environ.pop(_name, None)

# Hypothesis's per-example deadline is a wall-clock assertion: on a loaded machine it fails
# examples that are merely slow.  Properties are about results, never about time.
settings.register_profile("ppsp", deadline=None)
settings.load_profile("ppsp")

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_FRESH_PACKED: dict[str, Callable[[], object]] = {
    "_SHAPES": list,
    "_SHAPE_IDS": dict,
    "_LAYOUTS": list,
    "_LAYOUT_IDS": dict,
    "_octets": dict,
    "_unpacked": lambda: [{}, {}],
    "_pieces": lambda: [{}, {}],
}


@pytest.fixture
def fresh_packed_tables() -> Iterator[None]:
    """The process's tables of packed shapes and layouts (``ppsp.wire.packed``, and what it
    keeps by packed form) as a new process has them (other tests fill them: a full table packs
    nothing new), restored afterwards, so that no packed form of these tables meets the
    process's own."""
    saved = {name: getattr(packed, name) for name in _FRESH_PACKED}
    for name, make in _FRESH_PACKED.items():
        setattr(packed, name, make())
    try:
        yield
    finally:
        for name, table in saved.items():
            setattr(packed, name, table)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a throw-away redis-server on 127.0.0.1 (no persistence), for the whole session."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server binary not found (install the redis-server package)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Start-up wait: poll until the server accepts connections (not a protocol timer).
        limit = time.monotonic() + 10.0
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > limit:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["memory", "redis"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    """A fresh, empty storage of each backend (Redis: a unique key prefix per test)."""
    backend: Storage
    if request.param == "memory":
        backend = MemoryStorage(seed=1)
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStorage(url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield backend
    finally:
        await backend.close()
