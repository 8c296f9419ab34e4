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
``memberships``            string     number of memberships
``hosts``                  hash       host -> registered peers it registered (no zeros)
=========================  =========  =====================================================

Operations that touch several keys (join, leave, delete, expire, content map) are Lua scripts, so
each is atomic even with several trackers on one Redis.  Every script that writes a peer record
keeps ``hosts`` right (a new record counts for its host, a deleted one no more), and
:meth:`RedisStorage.update` checks the bounds and makes its change in one script, from the
counts there (``ZCARD deadlines`` peers, ``SCARD swarms``, ``memberships``, ``HLEN`` of the
peer's swarms, its host's count), so the bounds hold for every tracker sharing the server and
cost no extra round trip.  The scripts build key names from the
prefix, so this backend targets a single Redis server, not a Redis Cluster.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import (
    PeerRecord,
    Storage,
    StorageCounts,
    SwarmMember,
    limit_error,
)
from ppsp.wire.builder import keyword_builder
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
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

# Lua functions shared by the scripts.  count_host: change the count of host `h` (none for
# '' or false), dropping it at zero.  write_record: create or replace a peer's record and
# deadline, counting a new record (or one of an earlier release, without `h`) for its host.
_RECORD_FN = """
local function count_host(p, h, by)
  if h and h ~= '' then
    if redis.call('HINCRBY', p .. 'hosts', h, by) <= 0 then
      redis.call('HDEL', p .. 'hosts', h)
    end
  end
end
local function write_record(p, id, v, s, a, d, g, h)
  local key = p .. 'peer:' .. id
  local old = redis.call('HGET', key, 'h')
  if old ~= h then
    count_host(p, old, -1)
    count_host(p, h, 1)
  end
  redis.call('HSET', key, 'v', v, 's', s, 'a', a, 'd', d, 'g', g, 'h', h)
  redis.call('ZADD', p .. 'deadlines', d, id)
end
"""

# Remove peer `id` from every swarm and forget it.
_DELETE_FN = (
    _RECORD_FN
    + """
local function delete_peer(p, id)
  count_host(p, redis.call('HGET', p .. 'peer:' .. id, 'h'), -1)
  local swarms = redis.call('HKEYS', p .. 'peerswarms:' .. id)
  for _, s in ipairs(swarms) do
    if redis.call('HDEL', p .. 'swarm:' .. s, id) == 1 then
      redis.call('DECR', p .. 'memberships')
    end
    redis.call('HDEL', p .. 'swarmmaps:' .. s, id)
    if redis.call('HLEN', p .. 'swarm:' .. s) == 0 then
      redis.call('SREM', p .. 'swarms', s)
    end
  end
  local existed = redis.call('DEL', p .. 'peer:' .. id)
  redis.call('DEL', p .. 'peerswarms:' .. id, p .. 'peerstats:' .. id)
  redis.call('ZREM', p .. 'deadlines', id)
  return existed
end
"""
)

_DELETE = _DELETE_FN + "return delete_peer(ARGV[1], ARGV[2])"

_EXPIRE = (
    _DELETE_FN
    + """
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'deadlines', '-inf', ARGV[2])
for _, id in ipairs(ids) do delete_peer(ARGV[1], id) end
return ids
"""
)

_JOIN_FN = """
local function join(p, s, id, mode)
  if redis.call('EXISTS', p .. 'peer:' .. id) == 0 then return 0 end
  if redis.call('HSET', p .. 'swarm:' .. s, id, mode) == 1 then
    redis.call('INCR', p .. 'memberships')
  end
  redis.call('HSET', p .. 'peerswarms:' .. id, s, mode)
  redis.call('SADD', p .. 'swarms', s)
  return 1
end
"""

_LEAVE_FN = """
local function leave(p, s, id)
  if redis.call('HDEL', p .. 'peerswarms:' .. id, s) == 0 then return 0 end
  redis.call('HDEL', p .. 'peerstats:' .. id, s)
  redis.call('HDEL', p .. 'swarmmaps:' .. s, id)
  if redis.call('HDEL', p .. 'swarm:' .. s, id) == 1 then
    redis.call('DECR', p .. 'memberships')
  end
  if redis.call('HLEN', p .. 'swarm:' .. s) == 0 then
    redis.call('SREM', p .. 'swarms', s)
  end
  return 1
end
"""

_JOIN = _JOIN_FN + "return join(ARGV[1], ARGV[2], ARGV[3], ARGV[4])"

_LEAVE = _LEAVE_FN + "return leave(ARGV[1], ARGV[2], ARGV[3])"

_UPDATE = (
    _RECORD_FN
    + _JOIN_FN
    + _LEAVE_FN
    + """
local p, id, h = ARGV[1], ARGV[2], ARGV[8]
local per_host, per_peer = tonumber(ARGV[9]), tonumber(ARGV[10])
local max_peers, max_swarms = tonumber(ARGV[11]), tonumber(ARGV[12])
local max_members = tonumber(ARGV[13])
local nleave = tonumber(ARGV[14])
local first_join = 15 + nleave
local new = redis.call('EXISTS', p .. 'peer:' .. id) == 0
if max_peers >= 0 then
  -- The bounds, checked against the counts before the change (-1: no bound).
  if new and per_host >= 0 and h ~= '' then
    if tonumber(redis.call('HGET', p .. 'hosts', h) or '0') >= per_host then return 'host' end
  end
  local mine = p .. 'peerswarms:' .. id
  local before = redis.call('HLEN', mine)
  local count, members, swarms = before, 0, 0
  for i = 15, first_join - 1 do
    if redis.call('HEXISTS', mine, ARGV[i]) == 1 then
      count, members = count - 1, members - 1
      if redis.call('HLEN', p .. 'swarm:' .. ARGV[i]) == 1 then swarms = swarms - 1 end
    end
  end
  for i = first_join, #ARGV, 2 do
    if redis.call('HEXISTS', mine, ARGV[i]) == 0 then
      count, members = count + 1, members + 1
      if redis.call('EXISTS', p .. 'swarm:' .. ARGV[i]) == 0 then swarms = swarms + 1 end
    end
  end
  if count > before and count > per_peer then return 'peer' end
  if new and redis.call('ZCARD', p .. 'deadlines') >= max_peers then return 'peers' end
  if swarms > 0 and redis.call('SCARD', p .. 'swarms') + swarms > max_swarms then
    return 'swarms'
  end
  if members > 0 then
    local held = tonumber(redis.call('GET', p .. 'memberships') or '0')
    if held + members > max_members then return 'memberships' end
  end
end
write_record(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], h)
for i = 15, first_join - 1 do leave(p, ARGV[i], id) end
for i = first_join, #ARGV, 2 do join(p, ARGV[i], id, ARGV[i + 1]) end
return 0
"""
)
"""A bounded change in one round trip (:meth:`RedisStorage.update`): ARGV 1-8 as ``_PUT_PEER``,
then the bounds (peers per host, swarms per peer, peers, swarms, memberships; -1 for none, all
-1 for no check), the number of swarms to leave, those swarms, then (swarm, mode) pairs to
join.  Returns 0, or the name of the bound the change would pass (nothing written)."""

_PUT_MAP = """
local p, s, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 0 then return 0 end
redis.call('HSET', p .. 'swarmmaps:' .. s, id, ARGV[4])
return 1
"""

_PUT_STATS = """
local p, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'peer:' .. id) == 0 then return 0 end
redis.call('HSET', p .. 'peerstats:' .. id, ARGV[3], ARGV[4])
return 1
"""


_PUT_PEER = (
    _RECORD_FN
    + """
write_record(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
return 1
"""
)
"""A peer's record and its deadline, written together (one round trip, atomic)."""

_PEER_AND_MEMBERSHIPS = """
local p, id = ARGV[1], ARGV[2]
local record = redis.call('HGETALL', p .. 'peer:' .. id)
if #record == 0 then return {record, {}} end
return {record, redis.call('HGETALL', p .. 'peerswarms:' .. id)}
"""
"""A peer's record and its memberships (none when unregistered) in one round trip."""

_REPORT = (
    _RECORD_FN
    + """
local p, id = ARGV[1], ARGV[2]
write_record(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  redis.call('HSET', p .. 'peerstats:' .. id, ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  local s = ARGV[i]
  if redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 1 then
    redis.call('HSET', p .. 'swarmmaps:' .. s, id, ARGV[i + 1])
  end
  i = i + 2
end
return 1
"""
)
"""A STAT_REPORT in one round trip: the record and deadline (as ``_PUT_PEER``), then
``count`` statistics (field, data) and the content maps (swarm, packed) of swarms the peer is
in."""

_MEMBERS = """
local p, s, limit, with_maps = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local key = p .. 'swarm:' .. s
local flat
if limit > 0 and redis.call('HLEN', key) > limit then
  flat = redis.call('HRANDFIELD', key, limit, 'WITHVALUES')
else
  flat = redis.call('HGETALL', key)
end
local out = {}
for i = 1, #flat, 2 do
  local id = flat[i]
  local addresses = redis.call('HGET', p .. 'peer:' .. id, 'a')
  if addresses then
    out[#out + 1] = id
    out[#out + 1] = flat[i + 1]
    out[#out + 1] = addresses
    if with_maps then
      out[#out + 1] = redis.call('HGET', p .. 'swarmmaps:' .. s, id) or ''
    end
  end
end
return out
"""
"""Members of a swarm in one round trip: ``id, mode, addresses[, packed map or '']`` each
(all, or a random sample of ``limit`` when the swarm is larger; 0: no limit)."""


_build_member = keyword_builder(SwarmMember)
"""SwarmMember(...) from the same keyword arguments, at half the cost (ppsp.wire.builder)."""

_ADDRESS_CACHE_SIZE = 65_536
"""Most stored address lists kept decoded (the same peers are listed again and again)."""

_decoded_addresses: dict[bytes, tuple[PeerAddress, ...]] = {}


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
        self._delete = self._redis.register_script(_DELETE)
        self._expire = self._redis.register_script(_EXPIRE)
        self._join = self._redis.register_script(_JOIN)
        self._leave = self._redis.register_script(_LEAVE)
        self._members = self._redis.register_script(_MEMBERS)
        self._put_peer = self._redis.register_script(_PUT_PEER)
        self._put_map = self._redis.register_script(_PUT_MAP)
        self._put_stats = self._redis.register_script(_PUT_STATS)
        self._peer_and_memberships = self._redis.register_script(_PEER_AND_MEMBERSHIPS)
        self._report = self._redis.register_script(_REPORT)
        self._update = self._redis.register_script(_UPDATE)

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
        return _decode_record(peer_id, cast("dict[bytes, bytes]", raw))

    async def put_peer(self, record: PeerRecord) -> None:
        """Create or replace the peer's record (and its deadline)."""
        args = self._record_args(record)
        await self._call(lambda: _await(self._put_peer(args=args)))

    def _record_args(self, record: PeerRecord) -> list[str | bytes]:
        return [
            self._p,
            record.peer_id,
            record.version.value,
            record.state.name,
            orjson.dumps([_address_to_json(a) for a in record.addresses]),
            repr(record.deadline),
            "1" if record.grace_used else "0",
            record.host,
        ]

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """The peer's record and memberships, read by one script."""
        raw = await self._call(lambda: _await(self._peer_and_memberships(args=[self._p, peer_id])))
        record_flat, swarms_flat = cast("list[list[bytes]]", raw)
        if not record_flat:
            return None, {}
        record = _decode_record(peer_id, _pairs(record_flat))
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
    ) -> None:
        """The record, statistics and content maps of a STAT_REPORT, written by one script."""
        args = self._record_args(record)
        args.append(str(len(stats)))
        for item in stats:
            args.extend(_stats_field_and_data(item))
        for content_map in content_maps:
            args.extend((content_map.swarm_id, pack_content_map(content_map)))
        await self._call(lambda: _await(self._report(args=args)))

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
        if limits is None:
            args.extend(("-1", "-1", "-1", "-1", "-1"))
        else:
            args.extend(
                (
                    str(limits.peers_per_host) if limits.per_host else "-1",
                    str(limits.swarms_per_peer),
                    str(limits.peers_total),
                    str(limits.swarms_total),
                    str(limits.memberships_total),
                )
            )
        args.append(str(len(leave)))
        args.extend(leave)
        for swarm_id, mode in join:
            args.extend((swarm_id, mode.value))
        refused = await self._call(lambda: _await(self._update(args=args)))
        if refused != 0 and limits is not None:
            raise limit_error(cast(bytes, refused).decode(), limits)

    async def peers_of_host(self, host: str) -> int:
        """How many stored peers ``host`` registered."""
        if not host:
            return 0
        held = await self._call(lambda: _await(self._redis.hget(self._p + "hosts", host)))
        return int(held) if held is not None else 0

    async def delete_peer(self, peer_id: str) -> bool:
        """Remove the peer from every swarm and forget it."""
        result = await self._call(lambda: _await(self._delete(args=[self._p, peer_id])))
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
        await self._call(lambda: _await(self._join(args=[self._p, swarm_id, peer_id, mode.value])))

    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there."""
        result = await self._call(lambda: _await(self._leave(args=[self._p, swarm_id, peer_id])))
        return bool(result)

    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm: all of them, or a random sample of at most ``limit``.

        One script reads the members, their addresses and (``with_maps``) their content maps.
        """
        args = [self._p, swarm_id, str(limit or 0), "1" if with_maps else "0"]
        flat = cast("list[bytes]", await self._call(lambda: _await(self._members(args=args))))
        stride = 4 if with_maps else 3
        result: list[SwarmMember] = []
        for at in range(0, len(flat), stride):
            raw_map = flat[at + 3] if with_maps else b""
            result.append(
                _build_member(
                    peer_id=flat[at].decode(),
                    mode=PeerMode(flat[at + 1].decode()),
                    addresses=_decode_addresses(flat[at + 2]),
                    content_map=unpack_content_map(raw_map) if raw_map else None,
                )
            )
        return result

    async def put_content_map(self, peer_id: str, content_map: ContentMap) -> bool:
        """Store the peer's content map for its swarm; False when not a member."""
        packed = pack_content_map(content_map)
        result = await self._call(
            lambda: _await(self._put_map(args=[self._p, content_map.swarm_id, peer_id, packed]))
        )
        return bool(result)

    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        raw = await self._call(
            lambda: _await(self._redis.hget(self._p + "swarmmaps:" + swarm_id, peer_id))
        )
        return unpack_content_map(cast(bytes, raw)) if raw is not None else None

    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer for ``stats.swarm_id``."""
        field, data = _stats_field_and_data(stats)
        await self._call(lambda: _await(self._put_stats(args=[self._p, peer_id, field, data])))

    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer, one per swarm."""
        raw = await self._call(
            lambda: _await(self._redis.hgetall(self._p + "peerstats:" + peer_id))
        )
        result = []
        for value in cast("dict[bytes, bytes]", raw).values():
            obj = orjson.loads(value)
            result.append(
                StreamStatistics(
                    swarm_id=obj["swarm_id"],
                    uploaded_bytes=obj["uploaded_bytes"],
                    downloaded_bytes=obj["downloaded_bytes"],
                    available_bandwidth=obj["available_bandwidth"],
                    concurrent_links=obj["concurrent_links"],
                    extra=tuple((str(k), str(v)) for k, v in obj["extra"]),
                )
            )
        return tuple(result)

    async def expire(self, now: float) -> list[str]:
        """Delete every peer whose deadline is at or before ``now``; return their IDs."""
        ids = await self._call(lambda: _await(self._expire(args=[self._p, repr(now)])))
        return [i.decode() for i in cast("list[bytes]", ids)]

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
                peers, swarms, memberships, hosts = await pipe.execute()
            return StorageCounts(
                peers=int(peers),
                swarms=int(swarms),
                memberships=int(memberships or 0),
                hosts=int(hosts),
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
        """Close the connection pool."""
        await self._redis.aclose()


def _stats_field_and_data(stats: StreamStatistics) -> tuple[str, bytes]:
    """The hash field (the swarm, or '' peer-wide) and stored form of a peer's statistics."""
    field = stats.swarm_id if stats.swarm_id is not None else ""
    data = orjson.dumps(
        {
            "swarm_id": stats.swarm_id,
            "uploaded_bytes": stats.uploaded_bytes,
            "downloaded_bytes": stats.downloaded_bytes,
            "available_bandwidth": stats.available_bandwidth,
            "concurrent_links": stats.concurrent_links,
            "extra": [list(pair) for pair in stats.extra],
        }
    )
    return field, data


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


def _address_to_json(a: PeerAddress) -> dict[str, object]:
    return {
        "ip": a.ip,
        "port": a.port,
        "family": a.family.value,
        "priority": a.priority,
        "type": a.type.value if a.type is not None else None,
        "connection": a.connection,
        "asn": a.asn,
        "peer_protocol": a.peer_protocol,
    }


def _decode_addresses(raw: bytes) -> tuple[PeerAddress, ...]:
    """The addresses of a stored record, decoded once per distinct stored form."""
    found = _decoded_addresses.get(raw)
    if found is None:
        if len(_decoded_addresses) >= _ADDRESS_CACHE_SIZE:
            _decoded_addresses.clear()
        found = _decoded_addresses[raw] = _parse_addresses(raw)
    return found


def _parse_addresses(raw: bytes) -> tuple[PeerAddress, ...]:
    return tuple(
        PeerAddress(
            ip=o["ip"],
            port=o["port"],
            family=AddressFamily(o["family"]),
            priority=o["priority"],
            type=AddressType(o["type"]) if o["type"] is not None else None,
            connection=o["connection"],
            asn=o["asn"],
            peer_protocol=o["peer_protocol"],
        )
        for o in orjson.loads(raw)
    )


def _decode_record(peer_id: str, raw: dict[bytes, bytes]) -> PeerRecord:
    return PeerRecord(
        peer_id=peer_id,
        version=ProtocolVersion(raw[b"v"].decode()),
        state=PeerState[raw[b"s"].decode()],
        addresses=_decode_addresses(raw[b"a"]),
        deadline=float(raw[b"d"]),
        grace_used=raw.get(b"g") == b"1",
        host=raw[b"h"].decode() if b"h" in raw else "",
    )


# Content maps are stored as bytes: the raw bitmaps, not their Base64 text.
#   map     := u16 len, swarm id utf-8, u16 n, representation * n
#   repr    := u16 len, id utf-8, u32 n, segment * n
#   segment := q start, q end, q chunkmap size, u32 len, bitmap bytes
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SEG = struct.Struct(">qqqI")


def pack_content_map(content_map: ContentMap) -> bytes:
    """Serialize a content map to the compact binary form stored in Redis."""
    out = bytearray()

    def text(value: str) -> None:
        data = value.encode()
        out.extend(_U16.pack(len(data)))
        out.extend(data)

    text(content_map.swarm_id)
    out.extend(_U16.pack(len(content_map.representations)))
    for rep in content_map.representations:
        text(rep.representation_id)
        out.extend(_U32.pack(len(rep.segments)))
        for seg in rep.segments:
            out.extend(
                _SEG.pack(seg.start_index, seg.end_index, seg.chunkmap_size, len(seg.bitmap))
            )
            out.extend(seg.bitmap)
    return bytes(out)


def unpack_content_map(data: bytes) -> ContentMap:
    """Inverse of :func:`pack_content_map`."""
    pos = 0

    def text() -> str:
        nonlocal pos
        (size,) = _U16.unpack_from(data, pos)
        pos += 2
        value = data[pos : pos + size].decode()
        pos += size
        return value

    swarm_id = text()
    (nreps,) = _U16.unpack_from(data, pos)
    pos += 2
    reps = []
    for _ in range(nreps):
        rep_id = text()
        (nsegs,) = _U32.unpack_from(data, pos)
        pos += 4
        segs = []
        for _ in range(nsegs):
            start, end, size, blen = _SEG.unpack_from(data, pos)
            pos += _SEG.size
            segs.append(
                SegmentMap(
                    start_index=start,
                    end_index=end,
                    chunkmap_size=size,
                    bitmap=data[pos : pos + blen],
                )
            )
            pos += blen
        reps.append(RepresentationMap(representation_id=rep_id, segments=tuple(segs)))
    return ContentMap(swarm_id=swarm_id, representations=tuple(reps))
