"""The tracker's guard against floods: connections, request heads and request rates, per host.

A tracker on the internet is reached by anyone, and aiohttp alone bounds neither the
connections one host keeps open nor the time a client may take to send a request's head: a
few thousand connections that send a header line now and then hold the tracker's memory and
file descriptors forever.  This module bounds what one host (an IPv4 address, or an IPv6
/64, which one host commonly holds whole) may take, with the numbers of
:class:`~ppsp.tracker.limits.Limits`:

- **Connections.** :class:`GuardedRequestHandler` (aiohttp's protocol, one per connection)
  asks :class:`ConnectionGuard` when the connection is made: over ``connections_per_host``
  for its host or ``connections_total`` in all, it is closed at once, before anything is read.
  Trusted proxies are exempt from the per-host bound (everyone's connections come through
  them); the total holds for them too.
- **Heads and idle connections.** Each connection is in one of three phases: *head* (from the
  connection or the first byte of a new request until a handler starts), *busy* (a handler
  runs; the body's own timeout is the handler's) and *idle* (between requests).  One
  watchdog task looks at every connection a few times a second and closes those whose head
  took longer than ``header_timeout`` or that stayed idle longer than ``idle_timeout``.  The
  per-request cost is two attribute writes; there is no timer per connection.
- **Request rates.** :class:`HostRates` keeps a token bucket per host
  (``requests_per_second_per_host``, ``request_burst_per_host``); a request finding it empty
  is answered 503 with ``Retry-After`` by the server.  Several processes on one Redis share
  the buckets through :class:`SharedRates` (below).

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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ppsp.tracker.limits import Limits, host_key
from ppsp.tracker.net.metrics import RefusalCounts
from ppsp.tracker.net.proxy import TrustedProxies

__all__ = [
    "SYNC_INTERVAL",
    "ConnectionGuard",
    "GuardedRequestHandler",
    "GuardedSite",
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

# Connection phases (see the module's docstring).
HEAD = 0
BUSY = 1
IDLE = 2


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
# counted at.  ARGV: rate, burst, then one count per key.  Returns each key's balance (a string:
# Lua numbers become integers on the way out).  Redis's own clock is used, so that trackers on
# several machines agree.
_SYNC_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local out = {}
for i, key in ipairs(KEYS) do
  local held = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(held[1]) or burst
  local at = tonumber(held[2]) or now
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate)
  end
  tokens = tokens - tonumber(ARGV[i + 2])
  redis.call('HSET', key, 't', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
  out[i] = tostring(tokens)
end
return out
"""

_SYNC_BATCH = 1000
"""Hosts per script call (a flood from many hosts is shared in several calls)."""


class SharedRates:
    """Shares a process's :class:`HostRates` with the other processes on one Redis.

    Every :data:`SYNC_INTERVAL` seconds, the hosts that sent requests since the last exchange
    are sent with their counts; the answer is each host's balance in the shared bucket, which
    becomes the local bucket's (less what was admitted meanwhile).  When Redis does not answer
    the process goes on alone, with its own buckets (one warning; the storage's own failure is
    reported by the requests).
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
        import redis.asyncio as aioredis

        self.rates = rates
        self.prefix = prefix
        self.interval = interval
        self._clock = clock
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=5.0, socket_timeout=5.0
        )
        self._script: Any = self._redis.register_script(_SYNC_SCRIPT)
        self._failing = False
        rates.sharing = True

    async def sync(self) -> None:
        """Exchange the counts admitted since the last exchange for the shared balances."""
        admitted = self.rates.take_admitted()
        if not admitted:
            return
        hosts = list(admitted)
        for start in range(0, len(hosts), _SYNC_BATCH):
            batch = hosts[start : start + _SYNC_BATCH]
            keys = [self.prefix + host for host in batch]
            args = [self.rates.rate, self.rates.burst, *(admitted[h] for h in batch)]
            try:
                balances = await self._script(keys=keys, args=args)
            except Exception as exc:  # any failure of the store: go on with local buckets
                if not self._failing:
                    log.warning("request rates are not shared for now: %s", exc)
                    self._failing = True
                return
            if self._failing:
                log.warning("request rates are shared again")
                self._failing = False
            now = self._clock()
            since = self.rates.admitted  # admitted while the script ran: not in the balance
            for host, balance in zip(batch, balances, strict=True):
                value = float(balance)
                if math.isfinite(value):
                    self.rates.set_balance(host, value - since.get(host, 0), now)

    async def run(self) -> None:
        """Exchange counts every interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def close(self) -> None:
        """Close the connection to Redis."""
        with contextlib.suppress(Exception):
            await self._redis.aclose()


class ConnectionGuard:
    """Open connections per host and in all, and the watchdog of heads and idle connections.

    ``processes`` is the number of processes sharing the port (and these bounds); ``proxies``
    the trusted proxies, exempt from the per-host connection bound.  Refused and closed
    connections are counted in ``counts`` (the application's metrics; counts of its own when
    None).
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
        self.open: set[GuardedRequestHandler] = set()
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

    def tick(self) -> float:
        """Close the connections past their deadline; return the delay until the next look."""
        now = self.clock()
        header_deadline = now - self.header_timeout
        idle_deadline = now - self.idle_timeout
        late: list[tuple[GuardedRequestHandler, str]] = []
        for conn in self.open:
            phase = conn.phase
            if phase == HEAD:
                if conn.since <= header_deadline:
                    late.append((conn, "header_timeout"))
            elif phase == IDLE and conn.since <= idle_deadline:
                late.append((conn, "idle_timeout"))
        for conn, reason in late:
            if reason == "header_timeout":
                # (Idle connections are counted when lost: see GuardedRequestHandler.)
                self._closed[reason] += 1
                self.warnings.warn(
                    conn.host,
                    "closing connections from %s that sent no request head within %g s",
                    conn.host,
                    self.header_timeout,
                )
            conn.force_close()
        return max(0.05, min(1.0, self.header_timeout / 4, self.idle_timeout / 4))

    async def watch(self) -> None:
        """Look at the connections a few times a second until cancelled."""
        while True:
            await asyncio.sleep(self.tick())


IDLE_SLACK = 0.05
"""Seconds short of the idle timeout after which a lost idle connection counts as timed out."""

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


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol, counted and watched by a :class:`ConnectionGuard`.

    The server's handlers call :meth:`busy` when a request starts and :meth:`idle` when its
    answer is ready; the first byte received while idle starts a new head.
    """

    __slots__ = ("_counted", "guard", "host", "phase", "proxy", "since")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.host = ""
        self.proxy = False
        self.phase = HEAD
        self.since = 0.0
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, or close it at once when over a bound."""
        guard = self.guard
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.host = host_of(ip)
        self.proxy = bool(guard.proxies) and guard.proxies is not None and guard.proxies.trusts(ip)
        if not guard.accept(self.host, self.proxy):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        self._counted = True
        self.phase = HEAD
        self.since = guard.clock()
        guard.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection (when it was counted) and let aiohttp finish it."""
        if not self._counted:
            return
        self._counted = False
        guard = self.guard
        guard.open.discard(self)
        guard.release(self.host, self.proxy)
        # An idle connection lost after the idle timeout was closed for it: by the watchdog, or
        # (usually first, on the same timeout) by aiohttp's keep-alive timer.  Counted here, so
        # that both count once.  (The timer runs on the event loop's clock, which uvloop reads
        # once per iteration to the millisecond: hence a little slack.)
        if self.phase == IDLE and guard.clock() - self.since >= guard.idle_timeout - IDLE_SLACK:
            guard.counts.connections_closed["idle_timeout"] += 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Bytes after an answer start the next request's head (and its deadline)."""
        if self.phase == IDLE:
            self.phase = HEAD
            self.since = self.guard.clock()
        RequestHandler.data_received(self, data)  # not super(): this runs for every read

    def busy(self) -> None:
        """A request's head is in and a handler works on it: no head deadline now."""
        self.phase = BUSY

    def idle(self) -> None:
        """The request's answer is ready: the connection waits for the next one."""
        self.phase = IDLE
        self.since = self.guard.clock()


class GuardedSite(web.BaseSite):
    """An aiohttp site whose connections are :class:`GuardedRequestHandler` protocols.

    It listens on ``sock`` (a listening socket, e.g. shared by worker processes) or on
    ``host:port``, over TLS when ``ssl_context`` is given (handshakes then must finish within
    the header timeout too).
    """

    __slots__ = ("_bind", "_guard", "_handler_args", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,
        **handler_args: Any,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._guard = guard
        self._sock = sock
        self._bind = (host, port)
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        """The site's base URL."""
        scheme = "https" if self._ssl_context is not None else "http"
        host, port = self._bind
        sockets = getattr(self._server, "sockets", None)
        if sockets:
            host, port = sockets[0].getsockname()[:2]
        elif self._sock is not None:
            host, port = self._sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"{scheme}://{shown}:{port}"

    async def start(self) -> None:
        """Listen, making a guarded protocol for each connection."""
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        guard = self._guard
        args = {"loop": loop, **self._handler_args}

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, guard, **args)

        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": guard.header_timeout}
        if self._sock is not None:
            self._server = await loop.create_server(
                protocol, sock=self._sock, backlog=self._backlog, **tls
            )
        else:
            host, port = self._bind
            self._server = await loop.create_server(
                protocol, host, port, backlog=self._backlog, **tls
            )
