"""A Redis Cluster of a test's own: 3 primaries and 3 replicas on loopback, in a temporary dir.

Started with ``redis-server --cluster-enabled yes`` on free ports and joined by ``redis-cli
--cluster create ... --cluster-replicas 1``; :meth:`RedisCluster.kill_primary_of` takes a
primary away (SIGKILL) and :meth:`RedisCluster.wait_failover` waits for its replica to take
its slots over.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from tracker.storage.redis_server import REDIS_SERVER

REDIS_CLI = shutil.which("redis-cli") or (
    "/usr/bin/redis-cli" if Path("/usr/bin/redis-cli").exists() else None
)

START_TIMEOUT = 30.0
"""Bound on the cluster reaching ``cluster_state:ok`` after its servers were started."""

NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: how long a silent primary takes to be failed over (short: tests)."""


def cluster_port() -> int:
    """A loopback port that is free, with its cluster bus port (10000 higher) free too.

    A cluster node's port must be at most 55535, so the port is drawn from 20000-55535.
    """
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20000, 55536)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


class RedisCluster:
    """Six redis-servers joined as a cluster (3 primaries, each with a replica); see the module."""

    def __init__(self) -> None:
        self.ports = [cluster_port() for _ in range(6)]
        self._dir = Path(tempfile.mkdtemp(prefix="ppsp-cluster-"))
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The cluster as ``--storage`` takes it: every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def cli(self, port: int, *args: str, timeout: float = 10.0) -> str:
        """The output of ``redis-cli -p port args...`` ("" when the node does not answer)."""
        assert REDIS_CLI is not None
        try:
            done = subprocess.run(
                [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout.decode(errors="replace")

    def start(self) -> None:
        """Start the six servers, join them, and wait until every live node says ``ok``."""
        assert REDIS_SERVER is not None and REDIS_CLI is not None
        for port in self.ports:
            self._processes[port] = subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(self._dir / f"nodes-{port}.conf"),
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(self._dir),
                 "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        limit = time.monotonic() + START_TIMEOUT
        for port in self.ports:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > limit:
                        raise RuntimeError(f"redis-server did not start on {port}") from None
                    time.sleep(0.02)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        created = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "1",
             "--cluster-yes"],
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout!r}")
        self.wait_ok(limit)
        # A replica that has not synced with its primary yet cannot take over from it.
        while sum("master_link_status:up" in self.cli(p, "info", "replication")
                  for p in self.ports) < 3:  # fmt: skip
            if time.monotonic() > limit:
                raise RuntimeError("the replicas did not sync with their primaries")
            time.sleep(0.05)

    def wait_ok(self, limit: float | None = None) -> None:
        """Wait (bounded) until every live node reports ``cluster_state:ok`` and sees every
        slot served by a live primary."""
        limit = limit if limit is not None else time.monotonic() + START_TIMEOUT
        while True:
            live = [port for port, proc in self._processes.items() if proc.poll() is None]
            states = [self.cli(port, "cluster", "info") for port in live]
            if all("cluster_state:ok" in state for state in states) and all(
                self._primaries_live(port) for port in live
            ):
                return
            if time.monotonic() > limit:
                raise RuntimeError(f"cluster not ok: {states}")
            time.sleep(0.1)

    def _primaries_live(self, port: int) -> bool:
        """Whether node ``port`` sees every slot served by a primary that is still running."""
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2] or len(fields) == 8:
                continue
            node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            proc = self._processes.get(node_port)
            if proc is None or proc.poll() is not None or "fail" in fields[2]:
                return False
        return True

    def primary_of(self, key: str) -> int:
        """The port of the primary serving the slot of ``key`` (as the cluster says now)."""
        slot = key_slot(key.encode())
        for port, proc in self._processes.items():
            if proc.poll() is not None:
                continue
            for line in self.cli(port, "cluster", "nodes").splitlines():
                fields = line.split()
                if len(fields) < 9 or "master" not in fields[2] or "fail" in fields[2]:
                    continue
                for span in fields[8:]:
                    if span.startswith("["):
                        continue
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no primary serves slot {slot}")

    def kill(self, port: int) -> None:
        """Stop the node on ``port`` with SIGKILL (as a crashed server goes)."""
        proc = self._processes[port]
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()

    def kill_primary_of(self, key: str) -> int:
        """Kill the primary serving ``key``'s slot; its port."""
        port = self.primary_of(key)
        self.kill(port)
        return port

    def wait_failover(self, port: int, timeout: float = 30.0) -> None:
        """Wait (bounded) until a replica took over the slots of the dead node on ``port``."""
        self.wait_ok(time.monotonic() + timeout)

    def stop(self) -> None:
        """Stop every node and remove the directory."""
        for port in list(self._processes):
            self.kill(port)
        self._processes.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    """A started :class:`RedisCluster`, stopped at the end (skips without the binaries)."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server or redis-cli not found (install the redis-server package)")
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
