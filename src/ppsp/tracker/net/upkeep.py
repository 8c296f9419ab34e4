"""The storage a tracker serves from: chosen by URL, watched for health, its timers expired.

- :func:`make_storage` / :func:`check_storage_url` / :func:`storage_label`: ``memory``, a
  ``redis://`` URL or a ``redis+cluster://`` one, checked without connecting, shown without
  its password;
  :func:`verify_storage` connects and checks it (before anything listens);
  :func:`clock_for` the clock that suits it.
- :class:`StorageHealth`: whether the storage answered when last used, each change logged
  once.
- :class:`Expirer`: calls :meth:`Tracker.expire` at the core's next deadline, takes the
  dashboard's samples when they are due (:class:`HistorySampler`), and freezes a memory
  storage's state out of the garbage collector's sight as it grows (:class:`FreezeTrigger`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable

from redis.asyncio.connection import parse_url as parse_redis_url

from ppsp.errors import ServiceUnavailable
from ppsp.process.tuning import FreezeTrigger, freeze_state
from ppsp.tracker.core import Tracker
from ppsp.tracker.dashboard import MEMBERS_READ, History, swarm_figures
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.net.redis_cluster_link import SCHEMES as CLUSTER_SCHEMES
from ppsp.tracker.net.redis_cluster_link import parse_cluster_url
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.storage import MemoryStorage

__all__ = [
    "Clock",
    "Expirer",
    "HistorySampler",
    "StorageHealth",
    "check_storage_url",
    "clock_for",
    "make_storage",
    "storage_label",
    "verify_storage",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""A source of the current time in seconds (``time.monotonic`` or a test's fake)."""


class StorageHealth:
    """Whether the storage answered when last used; each change is logged once.

    Requests, the expiry task and ``/status`` report their failures and successes here, so
    that a storage that goes away gives one warning (not one per request or per second) and
    one line when it answers again.
    """

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, exc: Exception, doing: str) -> None:
        """Record that the storage failed while ``doing`` something."""
        if self.error is None:
            log.warning("%s failed: %s", doing, exc)
        else:
            log.debug("%s failed: %s", doing, exc)
        self.error = str(exc)

    def answered(self) -> None:
        """Record that the storage answered."""
        if self.error is not None:
            log.warning("the storage answers again (it failed with: %s)", self.error)
            self.error = None


class HistorySampler:
    """Takes the dashboard's samples (:class:`~ppsp.tracker.dashboard.History`) when due.

    A sample reads the storage's counts, one page of the swarms' index (the next one at each
    sample, round and round, so that every swarm is offered in turn while there is room to
    follow it), and the followed swarms (:data:`~ppsp.tracker.dashboard.MEMBERS_READ` members
    each); the time of the sample is the clock's when it started.  A storage that fails gives
    a gap in the history, never an error.
    """

    def __init__(
        self,
        tracker: Tracker,
        clock: Clock,
        history: History,
        *,
        health: StorageHealth | None = None,
    ) -> None:
        self._tracker = tracker
        self._clock = clock
        self.history = history
        self._health = health if health is not None else StorageHealth()
        self._offset = 0  # where the next page of the swarms' index starts

    async def tick(self) -> float:
        """Take a sample if one is due; the seconds until the next is due (never raises)."""
        now = self._clock()
        history = self.history
        if history.wait(now) > 0:
            return history.wait(now)
        storage = self._tracker.storage
        try:
            counts = await storage.counts()
            offered: tuple[str, ...] = ()
            if len(history.followed) < history.max_swarms:
                page = await storage.swarm_page(self._offset, history.max_swarms)
                offered = page.swarm_ids
                self._offset += len(offered)
                if self._offset >= page.total or not offered:
                    self._offset = 0
            views = await storage.swarm_views(history.to_sample(offered), limit=MEMBERS_READ)
        except ServiceUnavailable as exc:
            self._health.failed(exc, "sampling the dashboard's history")
            history.skip(now)
        except Exception:
            log.exception("sampling the dashboard's history failed")
            history.skip(now)
        else:
            self._health.answered()
            history.record(now, counts, [swarm_figures(view) for view in views])
        return max(history.wait(self._clock()), 0.01)


class Expirer:
    """Calls :meth:`Tracker.expire` when the core's next deadline has passed.

    :meth:`tick` does one step without sleeping and returns how long to sleep before the next;
    :meth:`run` loops over it, and with a ``sampler`` also takes the dashboard's samples when
    they are due.  Tests drive :meth:`tick` with a fake clock.

    On memory storage (or with a ``freeze`` trigger given) a tick also reads the peer count
    once per :attr:`FreezeTrigger.interval` and calls ``freezer`` (:func:`freeze_state`) when
    the state has grown by the trigger's step: the long-lived peers leave the garbage
    collector's sight, so that its collections stay short at a million peers.
    """

    def __init__(
        self,
        tracker: Tracker,
        clock: Clock,
        *,
        poll: float = 1.0,
        on_expired: Callable[[int], None] | None = None,
        health: StorageHealth | None = None,
        sampler: HistorySampler | None = None,
        freeze: FreezeTrigger | None = None,
        freezer: Callable[[], None] = freeze_state,
    ) -> None:
        self._tracker = tracker
        self._clock = clock
        self._poll = poll
        # Only a state held in this process is worth freezing (Redis holds its own); getattr
        # because stand-ins of the core (tests) may have no storage.
        if freeze is None and isinstance(getattr(tracker, "storage", None), MemoryStorage):
            freeze = FreezeTrigger()
        self._freeze = freeze
        self._freezer = freezer
        self._on_expired = on_expired
        self._health = health if health is not None else StorageHealth()
        self._sampler = sampler
        # Whether an expire() has succeeded: until then every tick tries one, since with a
        # shared storage (Redis) that is how the core learns the timers already stored.
        self._primed = False

    async def tick(self) -> float:
        """Expire what is due now; return the delay until the next look (0 < delay <= poll).

        While the storage is failing (or has never answered) every tick tries again, so that
        its return is noticed within ``poll`` seconds.
        """
        now = self._clock()
        deadline = self._tracker.next_deadline()
        due = deadline is not None and deadline <= now
        if due or not self._primed or self._health.error is not None:
            await self._expire(now)
            deadline = self._tracker.next_deadline()
            now = self._clock()
        if self._freeze is not None and self._freeze.should_look(now):
            await self._maybe_freeze()
        if deadline is None:
            return self._poll
        # A floor keeps a core whose deadline does not move from turning this into a busy loop.
        return min(self._poll, max(deadline - now, 0.01))

    async def _maybe_freeze(self) -> None:
        assert self._freeze is not None
        try:
            peers = (await self._tracker.storage.counts()).peers
        except Exception:  # the expiry above reports a failing storage
            return
        if self._freeze.due(peers):
            started = time.perf_counter()
            self._freezer()
            log.info(
                "froze the state of %d peers out of the garbage collector's sight (%.0f ms)",
                peers,
                (time.perf_counter() - started) * 1000,
            )

    async def _expire(self, now: float) -> None:
        try:
            count = await self._tracker.expire(now)
        except ServiceUnavailable as exc:
            self._health.failed(exc, "expiring peers")
        except Exception:
            log.exception("expiring peers failed")
        else:
            self._primed = True
            self._health.answered()
            if count:
                log.debug("expired %d peer(s)", count)
                if self._on_expired is not None:
                    self._on_expired(count)

    async def run(self) -> None:
        """Expire peers at their deadlines until cancelled (the first tick always looks), and
        take the dashboard's samples when due."""
        task = asyncio.current_task()
        while True:
            delay = await self.tick()
            if self._sampler is not None:
                delay = min(delay, await self._sampler.tick())
            if task is not None and task.cancelling():
                # The storage client swallowed the cancellation (redis-py can, when it comes
                # while a connection is being set up): stop anyway, or shutdown would wait
                # for this task forever.
                raise asyncio.CancelledError
            await asyncio.sleep(delay)


def check_storage_url(url: str | None) -> None:
    """Raise ValueError, with a one-line message, unless ``url`` names a storage.

    ``memory`` (or nothing), a well-formed ``redis://``, ``rediss://`` or ``unix://`` URL, or a
    ``redis+cluster://`` (``rediss+cluster://``) one.  Nothing is connected to.
    """
    if url is None or url == "memory":
        return
    if url.startswith(CLUSTER_SCHEMES):
        try:
            parse_cluster_url(url)
        except ValueError as exc:
            raise ValueError(f"invalid storage URL {storage_label(url)}: {exc}") from None
        return
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unknown storage {storage_label(url)}: use 'memory' or a redis:// URL")
    try:
        parse_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"invalid storage URL {storage_label(url)}: {exc}") from None


def make_storage(url: str | None) -> MemoryStorage | RedisStorage | RedisClusterStorage:
    """The storage a ``--storage`` value names: ``memory`` (or nothing), a ``redis://`` URL or
    a ``redis+cluster://`` one.

    Raises ValueError as :func:`check_storage_url` does.
    """
    check_storage_url(url)
    if url is None or url == "memory":
        return MemoryStorage()
    if url.startswith(CLUSTER_SCHEMES):
        return RedisClusterStorage(url)
    return RedisStorage(url)


def storage_label(url: str | None) -> str:
    """A storage URL fit for messages and logs: any password replaced by ``***``."""
    if url is None:
        return "memory"
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "the storage URL"


async def verify_storage(url: str | None) -> None:
    """Raise :class:`~ppsp.errors.ServiceUnavailable` (or ValueError) unless ``url`` is usable.

    The check a tracker makes before it listens (:meth:`Storage.check`), for a caller that
    starts its servers later (the parent of several worker processes).
    """
    storage = make_storage(url)
    try:
        await storage.check()
    finally:
        await storage.close()


def clock_for(storage_url: str | None) -> Clock:
    """The clock that suits a storage.

    In memory the monotonic clock is immune to wall-clock steps.  Redis may be shared by several
    tracker processes, whose monotonic clocks do not agree, so there the wall clock is used.
    """
    if storage_url is None or storage_url == "memory":
        return time.monotonic
    return time.time
