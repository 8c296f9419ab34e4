"""The Lua scripts of the Redis storage (:mod:`ppsp.tracker.net.redis_storage`).

Each operation that touches several keys is one script, so that it is atomic even with several
trackers on one Redis and costs one round trip.  ``ARGV[1]`` is always the key prefix.
"""

from __future__ import annotations

# Lua functions shared by the scripts.  count_host: change the count of host `h` (none for
# '' or false), dropping it at zero.  write_record: create or replace a peer's record and
# deadline, counting a new record (or one of an earlier release, without `h`) for its host.
RECORD_FN = """
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

# Forget the corrupt-peer reports about member `id` of swarm `s` (it leaves the swarm).
REPORTS_FN = """
local function drop_reports(p, s, id)
  if redis.call('DEL', p .. 'reports:' .. s .. ' ' .. id) == 1 then
    redis.call('DECR', p .. 'reported')
  end
  if redis.call('SREM', p .. 'suspects:' .. s, id) == 1 then
    redis.call('DECR', p .. 'suspectcount')
  end
end
"""

# Remove peer `id` from every swarm and forget it.
DELETE_FN = (
    RECORD_FN
    + REPORTS_FN
    + """
local function delete_peer(p, id)
  count_host(p, redis.call('HGET', p .. 'peer:' .. id, 'h'), -1)
  local swarms = redis.call('HKEYS', p .. 'peerswarms:' .. id)
  for _, s in ipairs(swarms) do
    if redis.call('HDEL', p .. 'swarm:' .. s, id) == 1 then
      redis.call('DECR', p .. 'memberships')
    end
    redis.call('HDEL', p .. 'swarmmaps:' .. s, id)
    drop_reports(p, s, id)
    if redis.call('HLEN', p .. 'swarm:' .. s) == 0 then
      redis.call('SREM', p .. 'swarms', s)
      redis.call('ZREM', p .. 'swarmindex', s)
    end
  end
  local existed = redis.call('DEL', p .. 'peer:' .. id)
  redis.call('DEL', p .. 'peerswarms:' .. id, p .. 'peerstats:' .. id)
  redis.call('ZREM', p .. 'deadlines', id)
  return existed
end
"""
)

DELETE = DELETE_FN + "return delete_peer(ARGV[1], ARGV[2])"

EXPIRE = (
    DELETE_FN
    + """
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'deadlines', '-inf', ARGV[2])
for _, id in ipairs(ids) do delete_peer(ARGV[1], id) end
return ids
"""
)

JOIN_FN = """
local function join(p, s, id, mode)
  if redis.call('EXISTS', p .. 'peer:' .. id) == 0 then return 0 end
  if redis.call('HSET', p .. 'swarm:' .. s, id, mode) == 1 then
    redis.call('INCR', p .. 'memberships')
  end
  redis.call('HSET', p .. 'peerswarms:' .. id, s, mode)
  if redis.call('SADD', p .. 'swarms', s) == 1 then
    redis.call('ZADD', p .. 'swarmindex', 0, s)
  end
  return 1
end
"""

LEAVE_FN = (
    REPORTS_FN
    + """
local function leave(p, s, id)
  if redis.call('HDEL', p .. 'peerswarms:' .. id, s) == 0 then return 0 end
  redis.call('HDEL', p .. 'peerstats:' .. id, s)
  redis.call('HDEL', p .. 'swarmmaps:' .. s, id)
  drop_reports(p, s, id)
  if redis.call('HDEL', p .. 'swarm:' .. s, id) == 1 then
    redis.call('DECR', p .. 'memberships')
  end
  if redis.call('HLEN', p .. 'swarm:' .. s) == 0 then
    redis.call('SREM', p .. 'swarms', s)
    redis.call('ZREM', p .. 'swarmindex', s)
  end
  return 1
end
"""
)

JOIN = JOIN_FN + "return join(ARGV[1], ARGV[2], ARGV[3], ARGV[4])"

LEAVE = LEAVE_FN + "return leave(ARGV[1], ARGV[2], ARGV[3])"

UPDATE = (
    RECORD_FN
    + JOIN_FN
    + LEAVE_FN
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
"""A bounded change in one round trip (:meth:`RedisStorage.update`): ARGV 1-8 as ``PUT_PEER``,
then the bounds (peers per host, swarms per peer, peers, swarms, memberships; -1 for none, all
-1 for no check), the number of swarms to leave, those swarms, then (swarm, mode) pairs to
join.  Returns 0, or the name of the bound the change would pass (nothing written)."""

PUT_MAP = """
local p, s, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 0 then return 0 end
redis.call('HSET', p .. 'swarmmaps:' .. s, id, ARGV[4])
return 1
"""

PUT_STATS = """
local p, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'peer:' .. id) == 0 then return 0 end
redis.call('HSET', p .. 'peerstats:' .. id, ARGV[3], ARGV[4])
return 1
"""


PUT_PEER = (
    RECORD_FN
    + """
write_record(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
return 1
"""
)
"""A peer's record and its deadline, written together (one round trip, atomic)."""

PEER_AND_MEMBERSHIPS = """
local p, id = ARGV[1], ARGV[2]
local record = redis.call('HGETALL', p .. 'peer:' .. id)
if #record == 0 then return {record, {}} end
return {record, redis.call('HGETALL', p .. 'peerswarms:' .. id)}
"""
"""A peer's record and its memberships (none when unregistered) in one round trip."""

REPORT = (
    RECORD_FN
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
"""A STAT_REPORT in one round trip: the record and deadline (as ``PUT_PEER``), then
``count`` statistics (field, data) and the content maps (swarm, packed) of swarms the peer is
in."""

CORRUPT_REPORTS = """
local p, me, host = ARGV[1], ARGV[2], ARGV[3]
local enough, kept = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV, 5 do
  local s, id, ip = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local port, chunks = tonumber(ARGV[i + 3]), ARGV[i + 4]
  local outcome = 'ignored'
  local key = p .. 'peer:' .. id
  if id ~= me and host ~= ''
    and redis.call('HEXISTS', p .. 'swarm:' .. s, me) == 1
    and redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 1
    and (redis.call('HGET', key, 'h') or '') ~= host then
    local listed = false
    for _, a in ipairs(cjson.decode(redis.call('HGET', key, 'a') or '[]')) do
      if a['ip'] == ip and tonumber(a['port']) == port then listed = true end
    end
    if listed then
      local hosts = p .. 'reports:' .. s .. ' ' .. id
      local held = redis.call('HLEN', hosts)
      if redis.call('HEXISTS', hosts, host) == 1 then
        redis.call('HSET', hosts, host, chunks)
        outcome = 'repeated'
      elseif held >= kept then
        outcome = 'repeated'
      else
        if held == 0 then redis.call('INCR', p .. 'reported') end
        redis.call('HSET', hosts, host, chunks)
        outcome = 'counted'
        if held + 1 >= enough and redis.call('SADD', p .. 'suspects:' .. s, id) == 1 then
          redis.call('INCR', p .. 'suspectcount')
        end
      end
    end
  end
  out[#out + 1] = outcome
end
return out
"""
"""Corrupt-peer reports in one round trip (:meth:`RedisStorage.add_corrupt_reports`, the rule
of :func:`~ppsp.tracker.storage.base.report_outcome`): ARGV prefix, reporter ID, reporter
host, suspect_reporters, reporters_kept, then (swarm, peer, ip, port, chunks) per report.
Returns the outcome of each."""

MEMBERS = """
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

SWARM_PAGE = """
local p, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local index, swarms = p .. 'swarmindex', p .. 'swarms'
local total = redis.call('SCARD', swarms)
if redis.call('ZCARD', index) ~= total then
  -- Swarms written by an earlier release (no index) or removed by one: index them again.
  redis.call('DEL', index)
  local batch = {}
  for _, s in ipairs(redis.call('SMEMBERS', swarms)) do
    batch[#batch + 1] = 0
    batch[#batch + 1] = s
    if #batch >= 1000 then
      redis.call('ZADD', index, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then redis.call('ZADD', index, unpack(batch)) end
end
if limit <= 0 then return {total, {}} end
return {total, redis.call('ZRANGE', index, offset, offset + limit - 1)}
"""
"""A page of swarm IDs (:meth:`RedisStorage.swarm_page`): ARGV prefix, offset, limit.  The IDs
are kept in ``swarmindex``, a sorted set whose scores are all 0 (so it is in byte order),
changed with ``swarms``; an index that does not hold as many IDs as ``swarms`` (swarms of an
earlier release) is made again first.  Returns the number of swarms and the page."""

SWARM_VIEWS = """
local p, limit, maps = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local s = ARGV[i]
  local key = p .. 'swarm:' .. s
  local count = redis.call('HLEN', key)
  local flat
  if count > limit then
    flat = redis.call('HRANDFIELD', key, limit, 'WITHVALUES')
  else
    flat = redis.call('HGETALL', key)
  end
  local rows, read = {}, 0
  for j = 1, #flat, 2 do
    local id = flat[j]
    local addresses = redis.call('HGET', p .. 'peer:' .. id, 'a')
    if addresses then
      read = read + 1
      rows[#rows + 1] = id
      rows[#rows + 1] = flat[j + 1]
      rows[#rows + 1] = addresses
      rows[#rows + 1] = redis.call('HGET', p .. 'peerstats:' .. id, s) or ''
      if read <= maps then
        rows[#rows + 1] = redis.call('HGET', p .. 'swarmmaps:' .. s, id) or ''
      else
        rows[#rows + 1] = ''
      end
    end
  end
  out[#out + 1] = {count, rows}
end
return out
"""
"""Swarms as the dashboard reads them (:meth:`RedisStorage.swarm_views`): ARGV prefix, limit,
maps, then swarm IDs.  Per swarm: its member count and ``id, mode, addresses, statistics or '',
packed map or ''`` per member read (all, or a random sample of ``limit``)."""
