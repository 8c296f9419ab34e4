"""Commands to a Redis Cluster, routed by hash slot (:class:`ClusterLink`), and its URL.

``redis+cluster://[user:password@]host:port[,host:port...][?shards=N]`` (``rediss+cluster://``
for TLS) names the cluster by some of its nodes, the seeds.  The link asks a node for the map
of slots to primaries (``CLUSTER SLOTS``) and keeps one pipelined connection per primary
(:class:`~ppsp.tracker.net.redis_link.RedisLink`), so the commands for one node of one turn of
the event loop are written together, and the commands of one :meth:`ClusterLink.batch` to
several nodes are all written before any answer is awaited: one wait, however many nodes.

A node that is gone, a ``MOVED`` or ``ASK`` redirection, ``CLUSTERDOWN`` or ``TRYAGAIN`` makes
the map stale: it is read again (from any node that answers) before the next command.  A
redirected command is sent again, once the map is read, up to :data:`REDIRECTS` times; the
others fail (the tracker answers 503) and the next request uses the new map, so the link
follows a failover without a restart.
"""

from __future__ import annotations

import asyncio
import bisect
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import ConnectionPool
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ppsp.tracker.net.redis_link import RedisLink

__all__ = [
    "SCHEMES",
    "ClusterLink",
    "ClusterURL",
    "Command",
    "NodeLink",
    "parse_cluster_url",
    "slot_of",
]

SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""The URL schemes that name a Redis Cluster."""

REDIRECTS = 3
"""How many times a redirected command is sent again after the slot map was read again."""

DEFAULT_SHARDS = 16
"""Peer shards and swarm shards of the cluster layout, when the URL does not say."""

MAX_SHARDS = 1024
"""The most shards a URL may ask for."""


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A parsed cluster URL: its seed nodes, the URL a node's connection is made from, and
    the number of shards of the key layout."""

    seeds: tuple[tuple[str, int], ...]
    scheme: str
    userinfo: str
    query: str
    shards: int

    def node_url(self, host: str, port: int) -> str:
        """The ``redis://`` (or ``rediss://``) URL of one node, with the cluster's options."""
        name = f"[{host}]" if ":" in host else host
        at = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{at}{name}:{port}/0" + (f"?{self.query}" if self.query else "")


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse a ``redis+cluster://`` URL; ValueError with a one-line reason when malformed."""
    for prefix in SCHEMES:
        if url.startswith(prefix):
            scheme = prefix.split("+", 1)[0]
            rest = url[len(prefix) :]
            break
    else:
        raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has one database (0)")
    userinfo, _, hosts = netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for item in hosts.split(","):
        parsed = urllib.parse.urlsplit(f"//{item}")
        try:
            port = parsed.port
        except ValueError:
            raise ValueError(f"bad port in {item!r}") from None
        if not parsed.hostname or port is None:
            raise ValueError(f"each node is host:port, not {item!r}")
        seeds.append((parsed.hostname, port))
    options = urllib.parse.parse_qs(query, keep_blank_values=True)
    shards = DEFAULT_SHARDS
    if "shards" in options:
        text = options.pop("shards")[-1]
        if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
            raise ValueError(f"shards is a number from 1 to {MAX_SHARDS}")
        shards = int(text)
    kept = urllib.parse.urlencode(options, doseq=True)
    return ClusterURL(tuple(seeds), scheme, userinfo, kept, shards)


def slot_of(key: str | bytes) -> int:
    """The hash slot of a key (of its first ``{tag}``, as Redis Cluster hashes it)."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


@dataclass(slots=True)
class Command:
    """One command of a batch: the slot it goes to and its arguments; ``script`` (the Lua
    source) when it is an ``EVALSHA``, so that a node without it can load it."""

    slot: int
    args: tuple[Any, ...]
    script: str | None = None
    result: Any = field(default=None)


class NodeLink(RedisLink):
    """The pipelined connection to one primary of the cluster."""

    async def evalsha_in_slot(self, sha: str, script: str, args: list[Any]) -> Any:
        """Run a Lua script whose ``args[0]`` is a key of its shard's slot (the shard's key
        prefix), declared as its one key: a node that does not serve the slot redirects the
        script (``MOVED``) instead of running it.  Loaded first when the node lacks it."""
        try:
            return await self.call("EVALSHA", sha, 1, args[0], *args)
        except NoScriptError:
            await self.call("SCRIPT", "LOAD", script)
            return await self.call("EVALSHA", sha, 1, args[0], *args)


class ClusterLink:
    """Commands routed to the primaries of a Redis Cluster (see the module docstring)."""

    def __init__(self, url: ClusterURL, *, connect_timeout: float, command_timeout: float) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._known: list[tuple[str, int]] = list(url.seeds)
        self._starts: list[int] = []
        self._ranges: list[tuple[int, int, tuple[str, int]]] = []
        self._links: dict[tuple[str, int], NodeLink] = {}
        self._pools: dict[tuple[str, int], ConnectionPool] = {}
        self._stale = True
        self._refreshing: asyncio.Future[None] | None = None
        self._closed = False

    async def batch(self, commands: Sequence[Command]) -> list[Any]:
        """Send every command, then wait for every answer (one wait); their results in order.

        The first error (a Redis error reply, a lost node) is raised once every command has
        had its answer or its error.
        """
        if self._stale:
            await self.refresh()
        results = await asyncio.gather(
            *(self._send(command) for command in commands), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    async def _send(self, command: Command) -> Any:
        """One command, sent again after a redirection (the map read again first)."""
        for attempt in range(REDIRECTS + 1):
            link = self._link_for(command.slot)
            try:
                if command.script is None:
                    return await link.call(*command.args)
                return await link.evalsha_in_slot(
                    command.args[0], command.script, list(command.args[1:])
                )
            except ResponseError as exc:
                if isinstance(exc, NoScriptError):
                    raise
                reason = str(exc).split(" ", 1)[0]
                if reason in ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"):
                    self._stale = True
                    if reason == "CLUSTERDOWN" or attempt == REDIRECTS:
                        raise
                    await self.refresh()
                    continue
                raise
            except (RedisError, OSError, ConnectionError, TimeoutError):
                # A node gone: read the map again before the next command (a failover).
                self._stale = True
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _link_for(self, slot: int) -> NodeLink:
        """The link to the primary serving ``slot``; ConnectionError when none does."""
        at = bisect.bisect_right(self._starts, slot) - 1
        if at < 0 or not self._ranges[at][0] <= slot <= self._ranges[at][1]:
            self._stale = True
            raise ConnectionError(f"no node of the cluster serves slot {slot}")
        node = self._ranges[at][2]
        link = self._links.get(node)
        if link is None:
            link = self._links[node] = NodeLink(
                self._pool(node), command_timeout=self._command_timeout
            )
        return link

    def _pool(self, node: tuple[str, int]) -> ConnectionPool:
        pool = self._pools.get(node)
        if pool is None:
            pool = self._pools[node] = ConnectionPool.from_url(
                self._url.node_url(*node),
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._command_timeout,
            )
        return pool

    async def refresh(self) -> None:
        """Read the map of slots to primaries from the first node that answers.

        Raises ConnectionError (the last node's reason) when no known node answers.
        """
        if self._closed:
            raise ConnectionError("Redis Cluster connection closed")
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            if self._stale:
                raise ConnectionError("the cluster's map of slots could not be read")
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self._read_map()
        finally:
            self._refreshing.set_result(None)
            self._refreshing = None

    async def _read_map(self) -> None:
        error: Exception = ConnectionError("no cluster node known")
        failed: list[tuple[str, int]] = []
        for node in list(dict.fromkeys(self._known)):
            client: Any = aioredis.Redis(connection_pool=self._pool(node))
            try:
                slots = await client.execute_command("CLUSTER SLOTS")
            except (RedisError, OSError) as exc:
                # Asked last next time: a node that is gone may take a connect timeout.
                error = exc
                failed.append(node)
                self._known = [n for n in self._known if n != node] + [node]
                continue
            ranges = _slot_rows(slots, node[0])
            if not ranges:
                error = ConnectionError(f"node {node[0]}:{node[1]} serves no slot")
                continue
            ranges.sort()
            self._ranges = ranges
            self._starts = [start for start, _, _ in ranges]
            primaries = [node for _, _, node in ranges]
            alive = [n for n in primaries if n not in failed]
            self._known = list(dict.fromkeys([*alive, *self._known]))
            for gone in set(self._links) - set(primaries):
                await self._links.pop(gone).close()
            self._stale = False
            return
        raise ConnectionError(f"no node of the cluster answers: {error}")

    async def any_node(self, *args: Any) -> list[Any]:
        """The answer of every primary to one command (``INFO``, ``CLUSTER INFO``)."""
        if self._stale:
            await self.refresh()
        primaries = list(dict.fromkeys(node for _, _, node in self._ranges))
        slots = [next(start for start, _, n in self._ranges if n == node) for node in primaries]
        return await self.batch([Command(slot, args) for slot in slots])

    async def close(self) -> None:
        """Close every connection."""
        self._closed = True
        for link in self._links.values():
            await link.close()
        self._links.clear()
        for pool in self._pools.values():
            await pool.disconnect()
        self._pools.clear()


def _slot_rows(slots: Any, asked: str) -> list[tuple[int, int, tuple[str, int]]]:
    """``CLUSTER SLOTS`` (as redis-py parses it, or raw) as (first, last, primary) rows; a
    primary without an address (a node that does not know its own) is at ``asked``."""
    rows: list[tuple[int, int, tuple[str, int]]] = []
    if isinstance(slots, dict):  # redis-py's parsed form: {(first, last): {"primary": ...}}
        for (first, last), nodes in slots.items():
            host, port = nodes["primary"][:2]
            rows.append((int(first), int(last), (_text(host) or asked, int(port))))
        return rows
    for row in slots:
        host, port = row[2][0], row[2][1]
        rows.append((int(row[0]), int(row[1]), (_text(host) or asked, int(port))))
    return rows


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
