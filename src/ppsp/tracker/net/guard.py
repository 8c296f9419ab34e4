"""The tracker's guard against floods: connections, request heads and request rates, per host.

A tracker on the internet is reached by anyone: a few thousand connections that send a header
line now and then would hold the tracker's memory and file descriptors forever.  This module
bounds what one host (an IPv4 address, or an IPv6 /64, which one host commonly holds whole) may
take, with the numbers of :class:`~ppsp.tracker.limits.Limits`:

- **Connections.** The HTTP server (:mod:`ppsp.http.server`) asks :class:`ConnectionGuard`
  (its :class:`~ppsp.http.server.ConnectionHooks`) when a connection is made: over
  ``connections_per_host`` for its host or ``connections_total`` in all, it is cut at once,
  before anything is read.  Trusted proxies are exempt from the per-host bound (everyone's
  connections come through them); the total holds for them too.
- **Heads and idle connections.** The server closes a connection whose head took longer than
  ``header_timeout`` from its first byte (a connection's first head: from the connection),
  however slowly its bytes trickle in, and one that stayed idle longer than ``idle_timeout``
  between requests; it tells the guard, which counts (and, for heads, warns).
- **Request rates.** :class:`HostRates` keeps a token bucket per host
  (``requests_per_second_per_host``, ``request_burst_per_host``); a request finding it empty
  is answered 503 with ``Retry-After`` by the server.  Several processes on one Redis (or one
  Redis Cluster) share the buckets through :class:`SharedRates` (below).

``Limits.per_host`` False turns the per-host bounds off; the total, the timeouts stay.  Every
refusal is logged as one warning line per host and minute at most, never a traceback, and
counted (:class:`~ppsp.tracker.net.metrics.RefusalCounts`, exposed on ``/metrics``).

Several processes serving one port (``--workers N``): the kernel hands each connection to one
of them, so each process bounds connections to ``ceil(bound / N)``: the sums over the
processes hold the configured bounds (a host whose connections all land on one process may be
refused a little early).  Request rates are shared through Redis: each process admits from its
own bucket and, every :data:`SYNC_INTERVAL` seconds, adds what it admitted per host to a
bucket in Redis (one script call for every host that sent requests) and takes that bucket's
balance as its own.  Tokens are thus conserved across processes: over any period longer than
an interval, one host gets the configured rate and burst in all; within one interval, N
processes may each admit up to the balance they last saw (at most N times the burst at once).
On a Redis Cluster a script reaches one slot only: the buckets are spread over rate shards
(``{r:K}``, K the CRC-32 of the host modulo the URL's ``shards``), one script call per shard
that has hosts, the calls of one exchange sent together (one wait).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from typing import Any

from ppsp.http.server import ConnectionHooks
from ppsp.tracker.limits import Limits, host_key
from ppsp.tracker.net.metrics import RefusalCounts
from ppsp.tracker.net.proxy import TrustedProxies

__all__ = [
    "SYNC_INTERVAL",
    "ConnectionGuard",
    "HostRates",
    "RateWarnings",
    "SharedRates",
    "host_of",
]

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.2
"""Seconds between two exchanges of a process's request counts with the shared buckets."""

MAX_HOSTS = 65_536
"""Hosts whose request buckets a process keeps (beyond it, full buckets are forgotten first)."""

WARNING_INTERVAL = 60.0
"""Seconds between two warnings about one host."""

WARNINGS_PER_MINUTE = 100
"""Warning lines about refusals a process writes in a minute, over all hosts."""


@functools.lru_cache(maxsize=65_536)
def host_of(ip: str) -> str:
    """The host an address counts as for per-host bounds: an IPv4 address, or an IPv6 /64.

    An IPv4-mapped IPv6 address counts as its IPv4 address; text that is no address at all
    counts as itself.
    """
    if ":" not in ip:
        return ip  # an observed IPv4 address is canonical already: the common case, no parse
    try:
        return host_key(ip.partition("%")[0])  # the one rule, shared with the core
    except ValueError:
        return ip


class RateWarnings:
    """Warnings about refusals, at most one per subject (a host, or ``*``) and minute.

    Refusals between two warnings are counted and named in the next one.  Over all subjects,
    at most :data:`WARNINGS_PER_MINUTE` lines a minute are written (a flood from many hosts
    does not flood the log): beyond, one line says that warnings are held back.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, list[float]] = {}  # subject -> [time of last warning, refusals]
        self._minute = -math.inf
        self._written = 0

    def warn(self, subject: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``subject`` had a warning in the last minute."""
        now = self._clock()
        entry = self._last.get(subject)
        if entry is not None and now - entry[0] < WARNING_INTERVAL:
            entry[1] += 1
            return
        if now - self._minute >= WARNING_INTERVAL:
            self._minute, self._written = now, 0
        if self._written >= WARNINGS_PER_MINUTE:
            if self._written == WARNINGS_PER_MINUTE:
                log.warning("refusing many hosts: further warnings held back for a minute")
                self._written += 1
            return
        self._written += 1
        if len(self._last) >= 4096:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < WARNING_INTERVAL}
            if len(self._last) >= 4096:  # all recent: forget the older half
                self._last = dict(list(self._last.items())[2048:])
        more = f" ({int(entry[1])} more refusals in the last minute)" if entry and entry[1] else ""
        log.warning(message + "%s", *args, more)
        self._last[subject] = [now, 0]


class _Bucket:
    """One host's token bucket (admission: a request takes a token or is refused)."""

    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens = tokens
        self.last = last


class HostRates:
    """Token buckets of request admission, one per host (see the module's docstring).

    ``admit`` refuses rather than queues: a request that finds no token is answered at once
    (503, ``Retry-After``), and costs the bucket nothing.
    """

    def __init__(self, rate: float, burst: float, *, max_hosts: int = MAX_HOSTS) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError("a request rate needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_hosts = max_hosts
        self.buckets: dict[str, _Bucket] = {}
        self.admitted: dict[str, int] = {}
        """Requests admitted per host since the last :meth:`take_admitted` (for sharing)."""
        self.sharing = False
        """Whether admitted requests are counted in :attr:`admitted` (a shared store reads them)."""

    def admit(self, host: str, now: float) -> float:
        """Take a token of ``host``'s bucket: 0.0, or the seconds until one is there (refused)."""
        bucket = self.buckets.get(host)
        if bucket is None:
            if len(self.buckets) >= self.max_hosts:
                self._forget(now)
            bucket = self.buckets[host] = _Bucket(self.burst, now)
        tokens = bucket.tokens
        if now > bucket.last:
            tokens += (now - bucket.last) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            bucket.last = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            if self.sharing:
                self.admitted[host] = self.admitted.get(host, 0) + 1
            return 0.0
        bucket.tokens = tokens
        return (1.0 - tokens) / self.rate

    def set_balance(self, host: str, tokens: float, now: float) -> None:
        """Make ``host``'s bucket hold ``tokens`` at ``now`` (a shared balance, see SharedRates)."""
        bucket = self.buckets.get(host)
        if bucket is None:
            if len(self.buckets) >= self.max_hosts:
                self._forget(now)
            bucket = self.buckets[host] = _Bucket(tokens, now)
        bucket.tokens = min(tokens, self.burst)
        bucket.last = now

    def take_admitted(self) -> dict[str, int]:
        """The admitted counts since the last call, and a fresh count from now on."""
        admitted, self.admitted = self.admitted, {}
        return admitted

    def prune(self, now: float) -> None:
        """Forget the buckets that are full again: a fresh bucket is the same."""
        rate, burst = self.rate, self.burst
        full = [h for h, b in self.buckets.items() if b.tokens + (now - b.last) * rate >= burst]
        for host in full:
            del self.buckets[host]

    def _forget(self, now: float) -> None:
        """Make room: forget full buckets, and if that is not enough the oldest quarter."""
        self.prune(now)
        if len(self.buckets) >= self.max_hosts:
            for host in list(self.buckets)[: max(1, len(self.buckets) // 4)]:
                del self.buckets[host]


# The shared buckets: one hash per host, ``t`` tokens and ``at`` the Redis time they were
# counted at.  ``take`` refills a bucket, subtracts what a process admitted, and returns the
# balance (a string: Lua numbers become integers on the way out).  Redis's own clock is used,
# so that trackers on several machines agree (on a cluster, the clock of the node holding the
# bucket: one bucket is on one node).
_TAKE = """
local function take(key, rate, burst, now, count)
  local held = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(held[1]) or burst
  local at = tonumber(held[2]) or now
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate)
  end
  tokens = tokens - count
  redis.call('HSET', key, 't', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
  return tostring(tokens)
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# One Redis: KEYS, one per host; ARGV: rate, burst, then one count per key.
_SYNC_SCRIPT = (
    _TAKE
    + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = take(key, rate, burst, now, tonumber(ARGV[i + 2]))
end
return out
"""
)

# A Redis Cluster shard: KEYS[1] and ARGV[1] the shard's key prefix (``...{r:K}``, one slot),
# then rate, burst, and host, count pairs; a host's key is the prefix and the host, in the
# shard's slot (the hash tag is the prefix's, the first one).
_CLUSTER_SYNC_SCRIPT = (
    _TAKE
    + """
local prefix = ARGV[1]
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  out[#out + 1] = take(prefix .. ARGV[i], rate, burst, now, tonumber(ARGV[i + 1]))
end
return out
"""
)

_SYNC_BATCH = 1000
"""Hosts per script call (a flood from many hosts is shared in several calls)."""


class _RateStore(abc.ABC):
    """Where the shared buckets are: :meth:`exchange` sends counts, answers balances."""

    @abc.abstractmethod
    async def exchange(
        self, admitted: dict[str, int], rate: float, burst: float
    ) -> tuple[dict[str, str], Exception | None]:
        """Each host's count subtracted from its shared bucket: the balances that came back,
        and the first failure (the hosts of a failed call have no balance)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connections."""


class _OneRedis(_RateStore):
    """The buckets on one Redis (``redis://``): one script call per :data:`_SYNC_BATCH` hosts,
    every key declared."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=5.0, socket_timeout=5.0
        )
        self._script: Any = self._redis.register_script(_SYNC_SCRIPT)

    async def exchange(
        self, admitted: dict[str, int], rate: float, burst: float
    ) -> tuple[dict[str, str], Exception | None]:
        """See :meth:`_RateStore.exchange` (the calls one after the other; the first failure
        ends the exchange)."""
        balances: dict[str, str] = {}
        hosts = list(admitted)
        for start in range(0, len(hosts), _SYNC_BATCH):
            batch = hosts[start : start + _SYNC_BATCH]
            keys = [self.prefix + host for host in batch]
            try:
                answer = await self._script(
                    keys=keys, args=[rate, burst, *(admitted[h] for h in batch)]
                )
            except Exception as exc:  # any failure of the store
                return balances, exc
            balances.update(zip(batch, (_text(b) for b in answer), strict=True))
        return balances, None

    async def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(Exception):
            await self._redis.aclose()


class _Cluster(_RateStore):
    """The buckets on a Redis Cluster (``redis+cluster://``): a host's bucket is in rate shard
    ``{r:K}``, K the CRC-32 of the host modulo the URL's ``shards`` (as the storage's peers and
    swarms), so the buckets spread over the primaries and one script call per shard (and
    :data:`_SYNC_BATCH` hosts) updates every host of the shard.  The calls of one exchange
    are sent together, one pipelined connection per primary
    (:class:`~ppsp.tracker.net.redis_cluster_link.ClusterLink`), and awaited together."""

    def __init__(self, url: str, prefix: str) -> None:
        from ppsp.tracker.net.redis_cluster_link import ClusterLink, parse_cluster_url, slot_of

        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix may not hold { or }")
        parsed = parse_cluster_url(url)
        self.shards = parsed.shards
        self.prefixes = [f"{prefix}{{r:{k}}}" for k in range(self.shards)]
        self.slots = [slot_of(p) for p in self.prefixes]
        self._sha = hashlib.sha1(_CLUSTER_SYNC_SCRIPT.encode()).hexdigest()
        self._link = ClusterLink(parsed, connect_timeout=5.0, command_timeout=5.0)

    def shard(self, host: str) -> int:
        """The rate shard of ``host``."""
        return zlib.crc32(host.encode()) % self.shards

    async def exchange(
        self, admitted: dict[str, int], rate: float, burst: float
    ) -> tuple[dict[str, str], Exception | None]:
        """See :meth:`_RateStore.exchange` (every call sent at once; a failed call, a node
        lost, leaves the other shards' balances)."""
        from ppsp.tracker.net.redis_cluster_link import Command

        by_shard: dict[int, list[str]] = {}
        for host in admitted:
            by_shard.setdefault(self.shard(host), []).append(host)
        calls: list[tuple[list[str], Command]] = []
        for k, hosts in by_shard.items():
            for start in range(0, len(hosts), _SYNC_BATCH):
                batch = hosts[start : start + _SYNC_BATCH]
                args = [self._sha, self.prefixes[k], repr(rate), repr(burst)]
                args += [x for h in batch for x in (h, str(admitted[h]))]
                calls.append((batch, Command(self.slots[k], tuple(args), _CLUSTER_SYNC_SCRIPT)))
        # One batch per call, gathered: written together all the same (one pipelined
        # connection per primary), and a failed call does not lose the others' answers.
        answers = await asyncio.gather(
            *(self._link.batch([command]) for _, command in calls), return_exceptions=True
        )
        balances: dict[str, str] = {}
        failure: Exception | None = None
        for (batch, _), answer in zip(calls, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                failure = failure or answer
                continue
            balances.update(zip(batch, (_text(b) for b in answer[0]), strict=True))
        return balances, failure

    async def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):
            await self._link.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SharedRates:
    """Shares a process's :class:`HostRates` with the other processes on one Redis or one
    Redis Cluster (``url``: a ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``
    URL, the storage's).

    Every :data:`SYNC_INTERVAL` seconds, the hosts that sent requests since the last exchange
    are sent with their counts; the answer is each host's balance in the shared bucket, which
    becomes the local bucket's (less what was admitted meanwhile).  When Redis does not answer
    the process goes on alone, with its own buckets (one warning; the storage's own failure is
    reported by the requests).  A malformed URL raises ValueError.
    """

    def __init__(
        self,
        rates: HostRates,
        url: str,
        *,
        prefix: str = "ppsp:rate:",
        clock: Callable[[], float] = time.monotonic,
        interval: float = SYNC_INTERVAL,
    ) -> None:
        from ppsp.tracker.net.redis_cluster_link import SCHEMES

        self.rates = rates
        self.prefix = prefix
        self.interval = interval
        self._clock = clock
        self._store: _RateStore = (
            _Cluster(url, prefix) if url.startswith(SCHEMES) else _OneRedis(url, prefix)
        )
        self._failing = False
        rates.sharing = True

    async def sync(self) -> None:
        """Exchange the counts admitted since the last exchange for the shared balances."""
        admitted = self.rates.take_admitted()
        if not admitted:
            return
        rates = self.rates
        balances, failure = await self._store.exchange(admitted, rates.rate, rates.burst)
        if failure is not None:  # any failure of the store: go on with local buckets
            if not self._failing:
                log.warning("request rates are not shared for now: %s", failure)
                self._failing = True
        elif self._failing:
            log.warning("request rates are shared again")
            self._failing = False
        now = self._clock()
        since = rates.admitted  # admitted while the scripts ran: not in the balances
        for host, balance in balances.items():
            value = float(balance)
            if math.isfinite(value):
                rates.set_balance(host, value - since.get(host, 0), now)

    async def run(self) -> None:
        """Exchange counts every interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def close(self) -> None:
        """Close the connection to Redis."""
        await self._store.close()


class _Counted:
    """One counted connection: its host and whether it comes from a trusted proxy."""

    __slots__ = ("host", "proxy")

    def __init__(self, host: str, proxy: bool) -> None:
        self.host = host
        self.proxy = proxy


class ConnectionGuard(ConnectionHooks):
    """Open connections per host and in all; the count of connections closed for timeouts.

    The HTTP server (:mod:`ppsp.http.server`) asks :meth:`opened` for each new connection
    before it reads anything, tells :meth:`closed` when it ends and :meth:`timed_out` when it
    closes one for its head or for idling (the timeouts themselves are the server's, set from
    the same limits).  ``processes`` is the number of processes sharing the port (and these
    bounds); ``proxies`` the trusted proxies, exempt from the per-host connection bound.
    Refused and closed connections are counted in ``counts`` (the application's metrics;
    counts of its own when None).
    """

    def __init__(
        self,
        limits: Limits,
        *,
        processes: int = 1,
        proxies: TrustedProxies | None = None,
        warnings: RateWarnings | None = None,
        counts: RefusalCounts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        share = max(1, processes)
        self.limits = limits
        self.per_host = limits.per_host
        self.host_bound = math.ceil(limits.connections_per_host / share)
        self.total_bound = min(math.ceil(limits.connections_total / share), _descriptor_bound())
        self.header_timeout = limits.header_timeout
        self.idle_timeout = limits.idle_timeout
        self.proxies = proxies
        self.warnings = warnings if warnings is not None else RateWarnings(clock)
        self.clock = clock
        self.open: set[object] = set()
        """The counted connections' tokens."""
        self.per_host_open: dict[str, int] = {}
        self.counts = counts if counts is not None else RefusalCounts()
        # The two tables counted in, looked up once (only refusals touch them).
        self._refused = self.counts.connections_refused
        self._closed = self.counts.connections_closed

    def accept(self, host: str, proxy: bool) -> bool:
        """Count a new connection of ``host`` if the bounds allow it (False: close it)."""
        if len(self.open) >= self.total_bound:
            self._refused["total"] += 1
            self.warnings.warn(
                "*", "refusing connections: %d open, the bound in all", len(self.open)
            )
            return False
        if self.per_host and not proxy:
            count = self.per_host_open.get(host, 0)
            if count >= self.host_bound:
                self._refused["per_host"] += 1
                self.warnings.warn(
                    host, "refusing connections from %s: %d open, the bound per host", host, count
                )
                return False
            self.per_host_open[host] = count + 1
        return True

    def release(self, host: str, proxy: bool) -> None:
        """Forget a connection of ``host`` that was counted."""
        if self.per_host and not proxy:
            count = self.per_host_open.get(host, 0) - 1
            if count > 0:
                self.per_host_open[host] = count
            else:
                self.per_host_open.pop(host, None)

    # -- the server's hooks ------------------------------------------------------------------

    def host(self, remote: tuple[str, int]) -> str:
        """The host ``remote`` counts for (:func:`host_of` its IP)."""
        return host_of(remote[0])

    def full(self, remote: tuple[str, int]) -> bool:
        """Whether ``remote``'s host holds its bound of connections (never for a trusted
        proxy, which has none): the server then closes the host's longest-idle one first."""
        if not self.per_host:
            return False
        ip = remote[0]
        proxies = self.proxies
        if proxies is not None and proxies and proxies.trusts(ip):
            return False
        return self.per_host_open.get(host_of(ip), 0) >= self.host_bound

    def opened(self, remote: tuple[str, int]) -> object | None:
        """Count a connection from ``remote``: its token, or None (over a bound: cut it)."""
        ip = remote[0]
        host = host_of(ip)
        proxies = self.proxies
        proxy = proxies is not None and bool(proxies) and proxies.trusts(ip)
        if not self.accept(host, proxy):
            return None
        token = _Counted(host, proxy)
        self.open.add(token)
        return token

    def closed(self, token: object) -> None:
        """Forget a counted connection."""
        if token in self.open:
            self.open.discard(token)
            assert isinstance(token, _Counted)
            self.release(token.host, token.proxy)

    def timed_out(self, token: object, what: str) -> None:
        """Count (and warn about, for heads) a connection the server closes for a timeout."""
        if what == "idle":
            self._closed["idle_timeout"] += 1
            return
        if what == "evicted":
            self._closed["idle_evicted"] += 1
            return
        self._closed["header_timeout"] += 1
        host = token.host if isinstance(token, _Counted) else "*"
        self.warnings.warn(
            host,
            "closing connections from %s that sent no request head within %g s",
            host,
            self.header_timeout,
        )


FD_RESERVE = 128
"""File descriptors kept for everything but connections (storage, listening socket, files)."""


def _descriptor_bound() -> int:
    """Connections this process can hold without running out of file descriptors.

    Beyond it, accepting would fail (``EMFILE``) before the guard could refuse politely.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1 << 62
    if soft == resource.RLIM_INFINITY or soft < 0:
        return 1 << 62
    return max(16, soft - FD_RESERVE)
