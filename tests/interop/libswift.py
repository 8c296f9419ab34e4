"""libswift, the reference RFC 7574 (PPSPP) peer, as a counterpart for interop tests.

The shared folder (``$PPSP_SHARED`` if set, else ``<repo>/../shared``, else ``/work/shared``)
holds libswift's source and ``interop/libswift/build.sh``, which builds the ``swift`` binary into a
cache folder once (about 15 s) and reuses it afterwards.  The cache is
``~/.cache/ppsp-interop/libswift`` under the real home: the test suite points ``XDG_CACHE_HOME`` at
a scratch folder per run, which would rebuild it every time.

:class:`Relay` sits between a libswift leecher and a libswift seeder on loopback and records every
datagram with its direction; :func:`exchange` runs one complete download through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from e2e.swarm_helpers import Peer

REPO = Path(__file__).resolve().parents[2]
SEEDER_HOST = "127.0.0.2"
LEECHER_HOST = "127.0.0.3"
RELAY_HOST = "127.0.0.4"
"""The relay's socket facing the leecher (the address the leecher is told to contact)."""
RELAY_OUT_HOST = "127.0.0.5"
"""The relay's socket facing the seeder (the address the seeder sees as its peer)."""
ROOT_HASH = re.compile(r"Root hash: ([0-9a-f]{40})")
BUILD_TIMEOUT = 600.0
"""Bound on building libswift (about 15 s on 2 cores, plus apt-get on a fresh machine)."""
START_TIMEOUT = 10.0
DOWNLOAD_TIMEOUT = 20.0
"""Bound on one download through the relay (the files here take well under a second)."""

TO_SEEDER = "to-seeder"
TO_LEECHER = "to-leecher"


class Unavailable(Exception):
    """libswift cannot be had here: no shared folder, or its build failed (the reason says)."""


def shared_dir() -> Path | None:
    """The shared folder holding ``interop/libswift``, or None where there is none."""
    configured = os.environ.get("PPSP_SHARED")
    if configured:
        candidates = [Path(configured)]
    else:
        candidates = [REPO.parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "interop" / "libswift" / "build.sh").is_file():
            return candidate
    return None


def cache_dir() -> Path:
    """Where the built binary lives: a stable per-user cache, whatever ``XDG_CACHE_HOME`` says."""
    return Path.home() / ".cache" / "ppsp-interop" / "libswift"


def build() -> Path:
    """Build libswift (or reuse the build) and return the ``swift`` binary's path.

    Concurrent callers (two test runs) serialize on a lock file next to the cache folder.
    Raises :class:`Unavailable` when there is no shared folder or the build fails.
    """
    shared = shared_dir()
    if shared is None:
        where = os.environ.get("PPSP_SHARED") or f"{REPO.parent / 'shared'} or /work/shared"
        raise Unavailable(f"libswift's shared folder not found (no interop/libswift in {where})")
    dest = cache_dir()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = open(dest.parent / "libswift.lock", "w")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise Unavailable(f"no cache folder for libswift: {exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            result = subprocess.run(
                ["bash", str(shared / "interop" / "libswift" / "build.sh"), str(dest)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"building libswift took over {BUILD_TIMEOUT:.0f} s") from None
    binary = dest / "swift"
    if result.returncode != 0 or not os.access(binary, os.X_OK):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise Unavailable(f"building libswift failed (exit {result.returncode}):\n{tail}")
    return binary


def root_hash(swift: Path, path: Path, chunk_size: int = 1024) -> str | None:
    """The root hash libswift computes for the file at ``path`` (None when it refuses the file).

    ``swift -f FILE`` without ``-l`` hashes the file, prints the root hash and exits; it writes
    ``FILE.mhash`` next to the file.
    """
    result = subprocess.run(
        [str(swift), "-f", str(path), "-z", str(chunk_size)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    match = ROOT_HASH.search(result.stdout)
    return match.group(1) if match and result.returncode == 0 else None


def free_udp_port(host: str) -> int:
    """A UDP port free on ``host`` (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Datagram:
    """One datagram the relay passed on: its direction, its bytes, when (seconds from start)."""

    direction: str
    data: bytes
    at: float


class _Endpoint(asyncio.DatagramProtocol):
    """A datagram socket that hands what it receives to a callback."""

    def __init__(self, received: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable once a side has exited: nothing to do, the test watches the
        # processes themselves.
        pass


@dataclass
class Relay:
    """A UDP relay between one leecher and one seeder that records every datagram it passes.

    The leecher talks to the relay's ``listen`` address; the relay forwards from a second socket
    to the seeder, and the seeder's answers back to the last address the leecher spoke from.
    Datagrams reaching the seeder-facing socket from anyone but the seeder are dropped.
    """

    seeder: tuple[str, int]
    datagrams: list[Datagram] = field(default_factory=list)
    _leecher: tuple[str, int] | None = None
    _inbound: asyncio.DatagramTransport | None = None
    _outbound: asyncio.DatagramTransport | None = None
    _start: float = 0.0

    async def start(
        self, host: str = RELAY_HOST, out_host: str = RELAY_OUT_HOST
    ) -> tuple[str, int]:
        """Open both sockets; returns the address the leecher should contact."""
        loop = asyncio.get_running_loop()
        self._start = time.monotonic()
        self._inbound, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._from_leecher), local_addr=(host, 0)
        )
        self._outbound, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._from_seeder), local_addr=(out_host, 0)
        )
        address = self._inbound.get_extra_info("sockname")
        return str(address[0]), int(address[1])

    def _record(self, direction: str, data: bytes) -> None:
        self.datagrams.append(Datagram(direction, data, time.monotonic() - self._start))

    def _from_leecher(self, data: bytes, addr: tuple[str, int]) -> None:
        self._leecher = addr
        self._record(TO_SEEDER, data)
        assert self._outbound is not None
        self._outbound.sendto(data, self.seeder)

    def _from_seeder(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr != self.seeder or self._leecher is None:
            return
        self._record(TO_LEECHER, data)
        assert self._inbound is not None
        self._inbound.sendto(data, self._leecher)

    def close(self) -> None:
        """Close both sockets."""
        for transport in (self._inbound, self._outbound):
            if transport is not None:
                transport.close()


@dataclass(frozen=True)
class Exchange:
    """The outcome of one download through the relay."""

    root_hash: str
    copy: bytes
    datagrams: list[Datagram]
    seeder: Peer
    leecher: Peer


async def _start(name: str, *argv: str) -> Peer:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    return Peer(name, process)


async def exchange(swift: Path, data: bytes, workdir: Path, chunk_size: int = 1024) -> Exchange:
    """Seed ``data`` with one libswift process and download it with another through a Relay.

    Seeder on 127.0.0.2, leecher on 127.0.0.3, relay on 127.0.0.4 (leecher side) and 127.0.0.5
    (seeder side).  Every process is killed on the way out, whatever happened.
    """
    seed_dir, leech_dir = workdir / "seed", workdir / "leech"
    seed_dir.mkdir(parents=True)
    leech_dir.mkdir(parents=True)
    source = seed_dir / "content.bin"
    source.write_bytes(data)
    seeder_address = (SEEDER_HOST, free_udp_port(SEEDER_HOST))
    relay = Relay(seeder_address)
    seeder: Peer | None = None
    leecher: Peer | None = None
    try:
        seeder = await _start(
            "seeder",
            str(swift),
            *("-f", str(source), "-z", str(chunk_size)),
            *("-l", f"{seeder_address[0]}:{seeder_address[1]}"),
        )
        roothash = (await seeder.wait_line(ROOT_HASH, stream="stdout", timeout=START_TIMEOUT))[1]
        # "Mainloop" on stderr: the seeder's socket is bound and its event loop runs.
        await seeder.wait_line("Mainloop", timeout=START_TIMEOUT)
        relay_host, relay_port = await relay.start()
        leecher = await _start(
            "leecher",
            str(swift),
            *("-t", f"{relay_host}:{relay_port}", "-h", roothash, "-z", str(chunk_size)),
            *("-o", str(leech_dir), "-l", f"{LEECHER_HOST}:{free_udp_port(LEECHER_HOST)}"),
            # "-l" alone makes libswift run forever; "-w 0s" after it restores its
            # exit-on-completion mode (a zero wait time with a swarm to download).
            *("-w", "0s"),
        )
        code = await leecher.wait(DOWNLOAD_TIMEOUT)
        assert code == 0, f"libswift's leecher exited with {code}\n{leecher.output()}"
        # The leecher's last datagrams (its closing handshake) may still sit in the relay's
        # socket buffer: let the event loop pass them on before the record is taken.
        await asyncio.sleep(0.1)
        copy = (leech_dir / roothash).read_bytes()
        return Exchange(roothash, copy, list(relay.datagrams), seeder, leecher)
    finally:
        relay.close()
        for peer in (leecher, seeder):
            if peer is not None:
                with contextlib.suppress(Exception):
                    await peer.kill()
