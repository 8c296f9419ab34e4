"""Redis storage backend (``redis.asyncio``), for trackers that share state or survive restarts.

Key layout, every key under ``prefix`` (default ``ppsp:``); IDs are used verbatim, and each kind
of key has its own leading word so that no peer or swarm ID can make two kinds collide:

=========================  =========  =====================================================
``peer:{peer}``            hash       ``v`` version, ``s`` state, ``a`` addresses (JSON),
                                      ``d`` deadline, ``g`` grace flag, ``h`` registering
                                      host (absent in records of earlier releases)
``peerswarms:{peer}``      hash       swarm ID -> mode: the swarms the peer joined
``peerstats:{peer}``       hash       swarm ID (``""`` peer-wide) -> statistics (JSON)
``swarm:{swarm}``          hash       peer ID -> mode: the swarm's members
``swarmmaps:{swarm}``      hash       peer ID -> content map (packed bytes)
``deadlines``              zset       peer ID scored by deadline: the timers
``swarms``                 set        IDs of swarms with at least one member
``swarmindex``             zset       the same IDs, every score 0: in byte order, for pages
``memberships``            string     number of memberships
``hosts``                  hash       host -> registered peers it registered (no zeros)
``reports:{swarm} {peer}`` hash       reporter host -> corrupt chunks it reported (a space
                                      cannot be in a token: no collision)
``suspects:{swarm}``       set        members reported by enough distinct hosts
``reported``               string     number of ``reports:`` keys
``suspectcount``           string     number of members in all ``suspects:`` sets
``mapbytes``               hash       host -> weight of the content maps of the peers it
                                      registered (packed lengths; no zeros)
``mapbytestotal``          string     weight of every content map kept
=========================  =========  =====================================================

Operations that touch several keys (join, leave, delete, expire, content map) are Lua scripts, so
each is atomic even with several trackers on one Redis.  Every script that writes a peer record
keeps ``hosts`` right (a new record counts for its host, a deleted one no more), and
:meth:`RedisStorage.update` checks the bounds and makes its change in one script, from the
counts there (``ZCARD deadlines`` peers, ``SCARD swarms``, ``memberships``, ``HLEN`` of the
peer's swarms, its host's count), so the bounds hold for every tracker sharing the server and
cost no extra round trip.  The scripts build key names from the
prefix, so this backend targets a single Redis server; a Redis Cluster has its own layout
(:mod:`ppsp.tracker.net.redis_cluster`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.net import redis_scripts as scripts
from ppsp.tracker.net.redis_link import RedisLink
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import (
    Guard,
    MemberView,
    PeerListRead,
    PeerRecord,
    ReportOutcome,
    Storage,
    StorageCounts,
    SwarmMember,
    SwarmPage,
    SwarmView,
    kept_segments,
    limit_error,
)
from ppsp.tracker.storage.records import (
    address_to_json,
    decode_addresses,
    decode_record,
    decode_stats,
    pack_content_map,
    stats_field_and_data,
    unpack_content_map,
)
from ppsp.wire.builder import keyword_builder
from ppsp.wire.tracker import (
    ContentMap,
    CorruptPeerReport,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    StreamStatistics,
)

__all__ = ["RedisStorage", "pack_content_map", "unpack_content_map"]

_R = TypeVar("_R")

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection to Redis."""

COMMAND_TIMEOUT = 10.0
"""Seconds to wait for Redis to answer one command or script."""

MIN_REDIS_VERSION = (6, 2)
"""The oldest Redis server the scripts run on (``HRANDFIELD``)."""

_build_member = keyword_builder(SwarmMember)
"""SwarmMember(...) from the same keyword arguments, at half the cost (ppsp.wire.builder)."""


class RedisStorage(Storage):
    """Storage in a Redis server at ``url`` (``redis://host:port/db``), keys under ``prefix``.

    The connection pool is opened lazily; call :meth:`close` when done.  Any Redis failure is
    raised as :class:`~ppsp.errors.ServiceUnavailable`.
    """

    def __init__(self, url: str, *, prefix: str = "ppsp:") -> None:
        # Typed as Any: redis-py's own hints and the types-redis stubs disagree (aclose, generics).
        # Bounded waits: a Redis that does not answer (stopped, unroutable) makes requests fail
        # with ServiceUnavailable instead of hanging.  Options in the URL take precedence.
        # A malformed URL raises ValueError here.
        self._redis: Any = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
        )
        self._p = prefix
        # Scripts run over one pipelined connection (ppsp.tracker.net.redis_link); the other
        # commands (counts, checks, the dashboard's few reads) go through redis-py's pool.
        self._link = RedisLink(self._redis.connection_pool, command_timeout=COMMAND_TIMEOUT)
        self._delete = self._redis.register_script(scripts.DELETE)
        self._expire = self._redis.register_script(scripts.EXPIRE)
        self._join = self._redis.register_script(scripts.JOIN)
        self._leave = self._redis.register_script(scripts.LEAVE)
        self._members = self._redis.register_script(scripts.MEMBERS)
        self._put_peer = self._redis.register_script(scripts.PUT_PEER)
        self._put_map = self._redis.register_script(scripts.PUT_MAP)
        self._put_stats = self._redis.register_script(scripts.PUT_STATS)
        self._peer_and_memberships = self._redis.register_script(scripts.PEER_AND_MEMBERSHIPS)
        self._report = self._redis.register_script(scripts.REPORT)
        self._update = self._redis.register_script(scripts.UPDATE)
        self._corrupt_reports = self._redis.register_script(scripts.CORRUPT_REPORTS)
        self._swarm_page = self._redis.register_script(scripts.SWARM_PAGE)
        self._swarm_views = self._redis.register_script(scripts.SWARM_VIEWS)
        self._find_guarded = self._redis.register_script(scripts.FIND_GUARDED)
        self._report_guarded = self._redis.register_script(scripts.REPORT_GUARDED)
        self._delete_guarded = self._redis.register_script(scripts.DELETE_GUARDED)
        self._register_new = self._redis.register_script(scripts.REGISTER_NEW)
        self._join_guarded = self._redis.register_script(scripts.JOIN_GUARDED)
        self._expire_next = self._redis.register_script(scripts.EXPIRE_NEXT)

    guarded = True
    """Requests take one round trip: the ``*_guarded`` scripts check the tracker's guess."""

    async def _script(self, script: Any, args: list[Any]) -> Any:
        """Run a registered script over the pipelined link (one round trip)."""
        try:
            return await self._link.evalsha(script.sha, script.script, args)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"storage unavailable: {exc}") from exc

    async def _call(self, op: Callable[[], Awaitable[_R]]) -> _R:
        try:
            return await op()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"storage unavailable: {exc}") from exc

    async def get_peer(self, peer_id: str) -> PeerRecord | None:
        """The peer's record, or None when it is not registered."""
        raw = await self._call(lambda: _await(self._redis.hgetall(self._p + "peer:" + peer_id)))
        if not raw:
            return None
        return decode_record(peer_id, cast("dict[bytes, bytes]", raw))

    async def put_peer(self, record: PeerRecord) -> None:
        """Create or replace the peer's record (and its deadline)."""
        args = self._record_args(record)
        await self._script(self._put_peer, args)

    def _limit_args(self, limits: Limits | None) -> tuple[str, ...]:
        if limits is None:
            return ("-1", "-1", "-1", "-1", "-1")
        return (
            str(limits.peers_per_host) if limits.per_host else "-1",
            str(limits.swarms_per_peer),
            str(limits.peers_total),
            str(limits.swarms_total),
            str(limits.memberships_total),
        )

    @staticmethod
    def _map_bounds(limits: Limits | None) -> tuple[str, str]:
        """The bounds on the weight of the content maps kept, per host and in all (-1: none;
        obligation 6), as the scripts take them."""
        if limits is None:
            return ("-1", "-1")
        per_host = str(limits.map_bytes_per_host) if limits.per_host else "-1"
        return (per_host, str(limits.map_bytes_total))

    def _record_args(self, record: PeerRecord) -> list[str | bytes]:
        return [
            self._p,
            record.peer_id,
            record.version.value,
            record.state.name,
            orjson.dumps([address_to_json(a) for a in record.addresses]),
            repr(record.deadline),
            "1" if record.grace_used else "0",
            record.host,
        ]

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """The peer's record and memberships, read by one script."""
        raw = await self._script(self._peer_and_memberships, [self._p, peer_id])
        record_flat, swarms_flat = cast("list[list[bytes]]", raw)
        if not record_flat:
            return None, {}
        record = decode_record(peer_id, _pairs(record_flat))
        joined = {
            swarms_flat[i].decode(): PeerMode(swarms_flat[i + 1].decode())
            for i in range(0, len(swarms_flat), 2)
        }
        return record, joined

    async def put_report(
        self,
        record: PeerRecord,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        *,
        limits: Limits | None = None,
    ) -> None:
        """The record, statistics and content maps of a STAT_REPORT (the maps within
        ``limits``), written by one script."""
        args = self._record_args(record)
        args.append(str(len(stats)))
        for item in stats:
            args.extend(stats_field_and_data(item))
        args.extend(self._map_bounds(limits))
        for content_map in content_maps:
            args.extend((content_map.swarm_id, _packed(content_map, limits)))
        await self._script(self._report, args)

    async def update(
        self,
        record: PeerRecord,
        *,
        leave: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
        limits: Limits | None = None,
    ) -> None:
        """Write the record, leave and join swarms, checking ``limits``: one script."""
        args = self._record_args(record)
        args.extend(self._limit_args(limits))
        args.append(str(len(leave)))
        args.extend(leave)
        for swarm_id, mode in join:
            args.extend((swarm_id, mode.value))
        refused = await self._script(self._update, args)
        if refused != 0 and limits is not None:
            raise limit_error(cast(bytes, refused).decode(), limits)

    async def find_guarded(
        self,
        peer_id: str,
        swarm_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, PeerListRead | None] | None:
        """The FIND of a peer as guessed, and its peer list: one script (``FIND_GUARDED``)."""
        args: list[str | bytes] = [self._p, peer_id, swarm_id, *_guard_args(guard)]
        args.extend(
            (state.name, _addresses_arg(addresses), _reflexive_arg(reflexive), repr(deadline))
        )
        args.extend(("-1" if limit is None else str(limit), "1" if with_maps else "0"))
        raw = await self._script(self._find_guarded, args)
        if not raw:
            return None
        reply = cast("list[Any]", raw)
        record = _guarded_record(peer_id, state, deadline, reply)
        return record, (_list_read(reply[3], with_maps) if len(reply) > 3 else None)

    async def report_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        limits: Limits | None = None,
    ) -> PeerRecord | None:
        """The STAT_REPORT of a peer as guessed: one script (``REPORT_GUARDED``)."""
        args: list[str | bytes] = [self._p, peer_id, str(len(guard.swarms)), *_guard_args(guard)]
        args.extend(
            (state.name, _addresses_arg(addresses), _reflexive_arg(reflexive), repr(deadline))
        )
        args.extend(guard.swarms)
        args.append(str(len(stats)))
        for item in stats:
            args.extend(stats_field_and_data(item))
        args.extend(self._map_bounds(limits))
        for content_map in content_maps:
            args.extend((content_map.swarm_id, _packed(content_map, limits)))
        raw = await self._script(self._report_guarded, args)
        if not raw:
            return None
        return _guarded_record(peer_id, state, deadline, cast("list[Any]", raw))

    async def join_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, list[PeerListRead]] | None:
        """The JOIN of a peer as guessed, and its peer lists: one script (``JOIN_GUARDED``)."""
        args: list[Any] = [self._p, peer_id, *_guard_args(guard)]
        args.extend(
            (state.name, _addresses_arg(addresses), _reflexive_arg(reflexive), repr(deadline))
        )
        args.extend(self._limit_args(limits))
        args.extend((str(limit or 0), "1" if with_maps else "0", str(len(lists))))
        args.extend(lists)
        for swarm_id, mode in join:
            args.extend((swarm_id, mode.value))
        raw = cast("list[Any]", await self._script(self._join_guarded, args))
        code = cast(bytes, raw[0]).decode()
        if code == "guess":
            return None
        if code:
            raise limit_error(code, limits)
        record = _guarded_record(peer_id, state, deadline, cast("list[Any]", raw[1]))
        return record, [_list_read(item, with_maps) for item in cast("list[Any]", raw[2])]

    async def delete_guarded(self, peer_id: str, guard: Guard) -> bool | None:
        """The peer deleted as guessed: one script (``DELETE_GUARDED``)."""
        args = [self._p, peer_id, *_guard_args(guard)]
        done = await self._script(self._delete_guarded, args)
        return True if done else None

    async def register_new(
        self,
        record: PeerRecord,
        *,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> list[PeerListRead] | None:
        """A new peer's CONNECT and its peer lists: one script (``REGISTER_NEW``)."""
        args: list[str | bytes] = [str(limit or 0), "1" if with_maps else "0", str(len(lists))]
        args.extend(lists)
        args.extend(self._record_args(record))
        args.extend(self._limit_args(limits))
        args.append("0")  # no swarm to leave
        for swarm_id, mode in join:
            args.extend((swarm_id, mode.value))
        raw = cast("list[Any]", await self._script(self._register_new, args))
        code = cast(bytes, raw[0]).decode()
        if code == "exists":
            return None
        if code:
            raise limit_error(code, limits)
        return [_list_read(item, with_maps) for item in cast("list[Any]", raw[1])]

    async def peers_of_host(self, host: str) -> int:
        """How many stored peers ``host`` registered."""
        if not host:
            return 0
        held = await self._call(lambda: _await(self._redis.hget(self._p + "hosts", host)))
        return int(held) if held is not None else 0

    async def delete_peer(self, peer_id: str) -> bool:
        """Remove the peer from every swarm and forget it."""
        result = await self._script(self._delete, [self._p, peer_id])
        return bool(result)

    async def memberships(self, peer_id: str) -> dict[str, PeerMode]:
        """The swarms the peer has joined, with its mode in each."""
        raw = await self._call(
            lambda: _await(self._redis.hgetall(self._p + "peerswarms:" + peer_id))
        )
        pairs = cast("dict[bytes, bytes]", raw)
        return {k.decode(): PeerMode(v.decode()) for k, v in pairs.items()}

    async def join(self, swarm_id: str, peer_id: str, mode: PeerMode) -> None:
        """Add a registered peer to a swarm (no-op for an unregistered peer)."""
        await self._script(self._join, [self._p, swarm_id, peer_id, mode.value])

    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there."""
        result = await self._script(self._leave, [self._p, swarm_id, peer_id])
        return bool(result)

    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm: all of them, or a random sample of at most ``limit``.

        One script reads the members, their addresses and (``with_maps``) their content maps.
        """
        args = [self._p, swarm_id, str(limit or 0), "1" if with_maps else "0"]
        flat = cast("list[bytes]", await self._script(self._members, args))
        return _members(flat, with_maps)

    async def put_content_map(
        self, peer_id: str, content_map: ContentMap, *, limits: Limits | None = None
    ) -> bool:
        """Store the peer's content map for its swarm within ``limits`` (obligation 6); False
        when not a member or not kept."""
        packed = _packed(content_map, limits)
        args = [self._p, content_map.swarm_id, peer_id, packed, *self._map_bounds(limits)]
        return bool(await self._script(self._put_map, args))

    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        raw = await self._call(
            lambda: _await(self._redis.hget(self._p + "swarmmaps:" + swarm_id, peer_id))
        )
        return unpack_content_map(cast(bytes, raw)) if raw is not None else None

    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer for ``stats.swarm_id``."""
        field, data = stats_field_and_data(stats)
        await self._script(self._put_stats, [self._p, peer_id, field, data])

    async def add_corrupt_reports(
        self,
        reporter_id: str,
        reporter_host: str,
        reports: Sequence[CorruptPeerReport],
        limits: Limits,
    ) -> list[ReportOutcome]:
        """Count corrupt-peer reports (obligation 13) with one script; the outcome of each."""
        if not reports:
            return []
        args: list[str] = [
            self._p,
            reporter_id,
            reporter_host,
            str(limits.suspect_reporters),
            str(limits.reporters_kept),
        ]
        for report in reports:
            args.extend(
                (
                    report.swarm_id,
                    report.peer_id,
                    report.ip,
                    str(report.port),
                    str(report.corrupt_chunks),
                )
            )
        raw = await self._script(self._corrupt_reports, args)
        return [ReportOutcome(item.decode()) for item in cast("list[bytes]", raw)]

    async def suspects(self, swarm_id: str) -> frozenset[str]:
        """Members of the swarm reported by enough distinct hosts."""
        raw = await self._call(
            lambda: _await(self._redis.smembers(self._p + "suspects:" + swarm_id))
        )
        return frozenset(item.decode() for item in cast("set[bytes]", raw))

    async def corrupt_reporters(self, swarm_id: str, peer_id: str) -> dict[str, int]:
        """The reporter hosts counted for ``peer_id`` in the swarm."""
        key = f"{self._p}reports:{swarm_id} {peer_id}"
        raw = await self._call(lambda: _await(self._redis.hgetall(key)))
        return {k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", raw).items()}

    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer, one per swarm."""
        raw = await self._call(
            lambda: _await(self._redis.hgetall(self._p + "peerstats:" + peer_id))
        )
        return tuple(decode_stats(value) for value in cast("dict[bytes, bytes]", raw).values())

    async def swarm_page(self, offset: int, limit: int) -> SwarmPage:
        """At most ``limit`` swarm IDs from rank ``offset``, in order, and how many swarms: one
        script (which indexes the swarms of an earlier release first, when there are any)."""
        args = [self._p, str(max(0, offset)), str(max(0, limit))]
        raw = await self._script(self._swarm_page, args)
        total, ids = cast("list[Any]", raw)
        return SwarmPage(
            total=int(total), swarm_ids=tuple(i.decode() for i in cast("list[bytes]", ids))
        )

    async def swarm_views(
        self, swarm_ids: Sequence[str], *, limit: int, maps: int = 0
    ) -> list[SwarmView]:
        """Each swarm's member count and (a sample of ``limit`` of) its members: one script."""
        if not swarm_ids:
            return []
        args = [self._p, str(max(0, limit)), str(max(0, maps)), *swarm_ids]
        raw = await self._script(self._swarm_views, args)
        views: list[SwarmView] = []
        for swarm_id, (count, flat) in zip(swarm_ids, cast("list[Any]", raw), strict=True):
            rows = cast("list[bytes]", flat)
            sample = tuple(
                MemberView(
                    member=_build_member(
                        peer_id=rows[at].decode(),
                        mode=PeerMode(rows[at + 1].decode()),
                        addresses=decode_addresses(rows[at + 2]),
                        content_map=unpack_content_map(rows[at + 4]) if rows[at + 4] else None,
                    ),
                    stats=decode_stats(rows[at + 3]) if rows[at + 3] else None,
                )
                for at in range(0, len(rows), 5)
            )
            views.append(SwarmView(swarm_id=swarm_id, members=int(count), sample=sample))
        return views

    async def expire(self, now: float) -> list[str]:
        """Delete every peer whose deadline is at or before ``now``; return their IDs."""
        ids = await self._script(self._expire, [self._p, repr(now)])
        return [i.decode() for i in cast("list[bytes]", ids)]

    async def expire_next(self, now: float) -> tuple[list[str], float | None]:
        """Expiry and the next deadline: one script (``EXPIRE_NEXT``)."""
        raw = await self._script(self._expire_next, [self._p, repr(now)])
        ids, head = cast("list[Any]", raw)
        return [i.decode() for i in cast("list[bytes]", ids)], (float(head) if head else None)

    async def next_deadline(self) -> float | None:
        """The earliest deadline of a stored peer."""
        head = await self._call(
            lambda: _await(self._redis.zrange(self._p + "deadlines", 0, 0, withscores=True))
        )
        return float(head[0][1]) if head else None

    async def counts(self) -> StorageCounts:
        """How many peers, non-empty swarms and memberships are stored."""

        async def op() -> StorageCounts:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zcard(self._p + "deadlines")
                pipe.scard(self._p + "swarms")
                pipe.get(self._p + "memberships")
                pipe.hlen(self._p + "hosts")
                pipe.get(self._p + "reported")
                pipe.get(self._p + "suspectcount")
                pipe.get(self._p + "mapbytestotal")
                replies = await pipe.execute()
            peers, swarms, memberships, hosts, reported, suspects, map_bytes = replies
            return StorageCounts(
                peers=int(peers),
                swarms=int(swarms),
                memberships=int(memberships or 0),
                hosts=int(hosts),
                reported=int(reported or 0),
                suspects=int(suspects or 0),
                map_bytes=int(map_bytes or 0),
            )

        return await self._call(op)

    async def check(self) -> None:
        """Raise ServiceUnavailable unless the server answers, accepts us and is recent enough.

        The scripts need Redis 6.2 or later (``HRANDFIELD``); an older server would fail only
        on large swarms, long after start-up.
        """
        info = await self._call(lambda: _await(self._redis.info("server")))
        version = str(cast("dict[str, Any]", info).get("redis_version", ""))
        if _version_tuple(version) < MIN_REDIS_VERSION:
            wanted = ".".join(map(str, MIN_REDIS_VERSION))
            raise ServiceUnavailable(f"Redis {wanted} or later is needed, the server is {version}")

    async def close(self) -> None:
        """Close the connection pool and the pipelined link."""
        await self._link.close()
        await self._redis.aclose()


def _packed(content_map: ContentMap, limits: Limits | None) -> bytes:
    """A content map as the scripts store it: packed, its first ``map_segments_kept``
    segments when there are ``limits`` (obligation 6)."""
    if limits is not None:
        content_map = kept_segments(content_map, limits.map_segments_kept)
    return pack_content_map(content_map)


def _guard_args(guard: Guard) -> list[str]:
    """A guard as the scripts' GUARD_FN takes it: version, states, check, ip."""
    states = "," + ",".join(state.name for state in guard.states) + ","
    version = guard.version.value if guard.version is not None else ""
    if guard.host is None:
        return [version, states, "0", ""]
    return [version, states, "1", guard.host]


_reflexive_json: dict[PeerAddress, bytes] = {}
"""REFLEXIVE address -> its stored JSON, for the most recent ones."""


def _reflexive_arg(reflexive: PeerAddress) -> bytes:
    """A REFLEXIVE address as the record's JSON holds it (``readdress`` puts it last)."""
    found = _reflexive_json.get(reflexive)
    if found is None:
        if len(_reflexive_json) >= 4096:
            _reflexive_json.clear()
        found = _reflexive_json[reflexive] = orjson.dumps(address_to_json(reflexive))
    return found


def _addresses_arg(addresses: tuple[PeerAddress, ...] | None) -> bytes:
    """A record's new addresses for the guarded scripts (empty: kept)."""
    if addresses is None:
        return b""
    return orjson.dumps([address_to_json(a) for a in addresses])


def _guarded_record(
    peer_id: str, state: PeerState, deadline: float, reply: list[Any]
) -> PeerRecord:
    """The record a guarded script wrote, from its ``{version, addresses, host}``."""
    return PeerRecord(
        peer_id=peer_id,
        version=ProtocolVersion(cast(bytes, reply[0]).decode()),
        state=state,
        addresses=decode_addresses(cast(bytes, reply[1])),
        deadline=deadline,
        grace_used=False,
        host=cast(bytes, reply[2]).decode(),
    )


def _members(flat: list[bytes], with_maps: bool) -> list[SwarmMember]:
    """Members from a flat ``id, mode, addresses[, packed map or '']`` script reply."""
    stride = 4 if with_maps else 3
    result: list[SwarmMember] = []
    for at in range(0, len(flat), stride):
        raw_map = flat[at + 3] if with_maps else b""
        result.append(
            _build_member(
                peer_id=flat[at].decode(),
                mode=PeerMode(flat[at + 1].decode()),
                addresses=decode_addresses(flat[at + 2]),
                content_map=unpack_content_map(raw_map) if raw_map else None,
            )
        )
    return result


def _list_read(raw: Any, with_maps: bool) -> PeerListRead:
    """A ``{members, suspects}`` script reply."""
    flat, suspects = cast("list[list[bytes]]", raw)
    return frozenset(item.decode() for item in suspects), _members(flat, with_maps)


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"7.0.15"`` as ``(7, 0, 15)``; the numeric prefix of each part, 0 for none."""
    parts = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A flat ``[key, value, ...]`` reply (HGETALL inside a script) as a dictionary."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def _await(value: Any) -> Any:
    """Await a redis-py result (its type hints mix sync and async returns)."""
    return await value
