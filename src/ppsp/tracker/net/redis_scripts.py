"""The Lua scripts of the Redis storage (:mod:`ppsp.tracker.net.redis_storage`).

Each operation that touches several keys is one script, so that it is atomic even with several
trackers on one Redis and costs one round trip.  ``ARGV[1]`` is always the key prefix.
"""

from __future__ import annotations

# The weight of the content maps kept (obligation 6 of the storage): ``mapbytes`` (host ->
# bytes, no zeros) and ``mapbytestotal``, where the maps are (``q``: the prefix of one server,
# or of a swarm shard).  A map weighs its packed length, which HSTRLEN reads.  host_maps: count
# `by` more bytes for host `h` (none for '' or false).  count_maps: the same, and in all (never
# below 0: maps of an earlier release were not counted).  drop_map: forget member `id`'s map
# of swarm `s`.  put_map: keep `packed` as its map when the weights stay within `per_host` and
# `total` (-1: no bound) once it replaces the last one (a map no heavier is always kept); else
# drop the last one.  Returns 1 when kept, 0 when not.
MAPS_FN = """
local function host_maps(q, h, by)
  if h and h ~= '' and by ~= 0 then
    if redis.call('HINCRBY', q .. 'mapbytes', h, by) <= 0 then
      redis.call('HDEL', q .. 'mapbytes', h)
    end
  end
end
local function count_maps(q, h, by)
  if by == 0 then return end
  host_maps(q, h, by)
  if redis.call('INCRBY', q .. 'mapbytestotal', by) < 0 then
    redis.call('SET', q .. 'mapbytestotal', 0)
  end
end
local function drop_map(q, s, id, h)
  local key = q .. 'swarmmaps:' .. s
  local size = redis.call('HSTRLEN', key, id)
  if size > 0 then
    redis.call('HDEL', key, id)
    count_maps(q, h, -size)
  end
end
local function put_map(q, s, id, h, packed, per_host, total)
  local key = q .. 'swarmmaps:' .. s
  local grow = string.len(packed) - redis.call('HSTRLEN', key, id)
  if grow > 0 then
    if per_host >= 0 and h and h ~= '' and
       tonumber(redis.call('HGET', q .. 'mapbytes', h) or '0') + grow > per_host then
      drop_map(q, s, id, h)
      return 0
    end
    if total >= 0 and tonumber(redis.call('GET', q .. 'mapbytestotal') or '0') + grow > total then
      drop_map(q, s, id, h)
      return 0
    end
  end
  redis.call('HSET', key, id, packed)
  count_maps(q, h, grow)
  return 1
end
"""

# Lua functions shared by the scripts.  count_host: change the count of host `h` (none for
# '' or false), dropping it at zero.  write_record: create or replace a peer's record and
# deadline, counting a new record (or one of an earlier release, without `h`) for its host,
# and the weight of its content maps for its new host when its host changes.
RECORD_FN = (
    MAPS_FN
    + """
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
    if old then
      local weight = 0
      for _, m in ipairs(redis.call('HKEYS', p .. 'peerswarms:' .. id)) do
        weight = weight + redis.call('HSTRLEN', p .. 'swarmmaps:' .. m, id)
      end
      host_maps(p, old, -weight)
      host_maps(p, h, weight)
    end
  end
  redis.call('HSET', key, 'v', v, 's', s, 'a', a, 'd', d, 'g', g, 'h', h)
  redis.call('ZADD', p .. 'deadlines', d, id)
end
"""
)

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
  local h = redis.call('HGET', p .. 'peer:' .. id, 'h')
  count_host(p, h, -1)
  local swarms = redis.call('HKEYS', p .. 'peerswarms:' .. id)
  for _, s in ipairs(swarms) do
    if redis.call('HDEL', p .. 'swarm:' .. s, id) == 1 then
      redis.call('DECR', p .. 'memberships')
    end
    drop_map(p, s, id, h)
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
    MAPS_FN
    + REPORTS_FN
    + """
local function leave(p, s, id)
  if redis.call('HDEL', p .. 'peerswarms:' .. id, s) == 0 then return 0 end
  redis.call('HDEL', p .. 'peerstats:' .. id, s)
  drop_map(p, s, id, redis.call('HGET', p .. 'peer:' .. id, 'h'))
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

UPDATE_FN = (
    RECORD_FN
    + JOIN_FN
    + LEAVE_FN
    + """
local function update(ARGV)
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
end
"""
)

UPDATE = UPDATE_FN + "return update(ARGV)"
"""A bounded change in one round trip (:meth:`RedisStorage.update`): ARGV 1-8 as ``PUT_PEER``,
then the bounds (peers per host, swarms per peer, peers, swarms, memberships; -1 for none, all
-1 for no check), the number of swarms to leave, those swarms, then (swarm, mode) pairs to
join.  Returns 0, or the name of the bound the change would pass (nothing written)."""

PUT_MAP = (
    MAPS_FN
    + """
local p, s, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 0 then return 0 end
local h = redis.call('HGET', p .. 'peer:' .. id, 'h')
return put_map(p, s, id, h, ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
"""
)
"""A content map (:meth:`RedisStorage.put_content_map`): ARGV prefix, swarm, peer, the packed
map, the bounds on the maps' weight (per host, in all; -1: none).  Returns 1 when it is kept,
0 when the peer is not a member or the map is not kept."""

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
local per_host, total = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
while i <= #ARGV do
  local s = ARGV[i]
  if redis.call('HEXISTS', p .. 'swarm:' .. s, id) == 1 then
    put_map(p, s, id, ARGV[8], ARGV[i + 1], per_host, total)
  end
  i = i + 2
end
return 1
"""
)
"""A STAT_REPORT in one round trip: the record and deadline (as ``PUT_PEER``), then
``count`` statistics (field, data), the bounds on the maps' weight (per host, in all; -1:
none) and the content maps (swarm, packed) of swarms the peer is in."""

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

# -- One round trip per request -------------------------------------------------------------
#
# The tracker decides a request from the peer's stored record, which it would have to read
# first (a second round trip).  On the paths below it decides on a guess instead (a FIND or a
# STAT_REPORT comes from a peer in TRACKING that is a member of the swarms it names, from the
# address it registered from; a CONNECT comes from a peer not registered yet) and the script
# checks the guess before it writes anything: when the guess is wrong the script writes
# nothing and says so, and the tracker takes its ordinary path (read, decide, write).

# guard: the peer's record when it is of version `v` ('' any), in one of the states of
# `states` (',NAME,NAME,'), a member of every swarm of ARGV[from..to], and (check '1') its last
# address is REFLEXIVE at `ip` (the host check of open mode); nil otherwise.
# readdress: the record's new addresses, `a` when given, else the stored ones `stored` with
# the last, REFLEXIVE, one replaced by `r`, as the tracker does (nil when the last is not
# REFLEXIVE: the ordinary path decides).  The stored JSON is written by the tracker (orjson,
# every address an object whose first key is "ip"), so the last address starts at the last
# '{"ip":', which is checked by decoding it.
# rewrite: the record's new state, addresses and deadline; grace cleared.
GUARD_FN = """
local function guard(p, id, v, states, check, ip, from, to)
  local rec = redis.call('HMGET', p .. 'peer:' .. id, 'v', 's', 'a', 'h')
  if not rec[1] then return nil end
  if v ~= '' and rec[1] ~= v then return nil end
  if not string.find(states, ',' .. rec[2] .. ',', 1, true) then return nil end
  if check == '1' then
    local list = cjson.decode(rec[3])
    local last = list[#list]
    if type(last) ~= 'table' or last['type'] ~= 'REFLEXIVE' or last['ip'] ~= ip then
      return nil
    end
  end
  local mine = p .. 'peerswarms:' .. id
  for i = from, to do
    if redis.call('HEXISTS', mine, ARGV[i]) == 0 then return nil end
  end
  return rec
end
local function readdress(stored, a, r)
  if a ~= '' then return a end
  local at, from = nil, 1
  while true do
    local found = string.find(stored, '{"ip":', from, true)
    if not found then break end
    at, from = found, found + 1
  end
  if not at or string.sub(stored, -1) ~= ']' then return nil end
  local ok, last = pcall(cjson.decode, string.sub(stored, at, -2))
  if not ok or type(last) ~= 'table' or last['type'] ~= 'REFLEXIVE' then return nil end
  return string.sub(stored, 1, at - 1) .. r .. ']'
end
local function rewrite(p, id, rec, s, a, d)
  redis.call('HSET', p .. 'peer:' .. id, 's', s, 'a', a, 'd', d, 'g', '0')
  redis.call('ZADD', p .. 'deadlines', d, id)
  return {rec[1], a, rec[4] or ''}
end
"""

# members_of: the members of swarm `s` as MEMBERS returns them (limit 0: all).
MEMBERS_FN = """
local function members_of(p, s, limit, with_maps)
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
end
local function peer_list(p, s, limit, with_maps)
  return {members_of(p, s, limit, with_maps), redis.call('SMEMBERS', p .. 'suspects:' .. s)}
end
"""

FIND_GUARDED = (
    GUARD_FN
    + MEMBERS_FN
    + """
local p, id, s = ARGV[1], ARGV[2], ARGV[3]
local rec = guard(p, id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 3, 3)
if not rec then return 0 end
local a = readdress(rec[3], ARGV[9], ARGV[10])
if not a then return 0 end
local out = rewrite(p, id, rec, ARGV[8], a, ARGV[11])
local limit = tonumber(ARGV[12])
if limit >= 0 then out[4] = peer_list(p, s, limit, ARGV[13] == '1') end
return out
"""
)
"""A FIND on a guess (:meth:`RedisStorage.find_guarded`): ARGV prefix, peer, swarm, then the
guard (version, states, check, ip; the swarm must be joined), the new state, addresses ('':
the stored ones), REFLEXIVE address (replacing the stored last one) and deadline, the list's
limit (-1: no list, 0: all) and with-maps flag.  Returns 0 when the guess is wrong (nothing
written), else ``{version, addresses, host[, {members, suspects}]}``."""

REPORT_GUARDED = (
    GUARD_FN
    + MAPS_FN
    + """
local p, id = ARGV[1], ARGV[2]
local nswarms = tonumber(ARGV[3])
local rec = guard(p, id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 12, 11 + nswarms)
if not rec then return 0 end
local a = readdress(rec[3], ARGV[9], ARGV[10])
if not a then return 0 end
local out = rewrite(p, id, rec, ARGV[8], a, ARGV[11])
local i = 12 + nswarms
local nstats = tonumber(ARGV[i])
i = i + 1
for _ = 1, nstats do
  redis.call('HSET', p .. 'peerstats:' .. id, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local per_host, total = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
while i <= #ARGV do
  put_map(p, ARGV[i], id, rec[4], ARGV[i + 1], per_host, total)
  i = i + 2
end
return out
"""
)
"""A STAT_REPORT on a guess (:meth:`RedisStorage.report_guarded`): ARGV prefix, peer, the
number of swarms the report names, the guard (version, states, check, ip), the new state,
addresses and REFLEXIVE address (as ``FIND_GUARDED``) and deadline, the swarms named, the
number of statistics, the statistics (field, data), the bounds on the maps' weight (as
``REPORT``) and the content maps (swarm, packed).
Returns 0 when the guess is wrong (nothing written), else ``{version, addresses, host}``."""

DELETE_GUARDED = (
    GUARD_FN
    + DELETE_FN
    + """
local p, id = ARGV[1], ARGV[2]
if not guard(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], 7, 6) then return 0 end
delete_peer(p, id)
return 1
"""
)
"""A DISCONNECT on a guess (:meth:`RedisStorage.delete_guarded`): ARGV prefix, peer, the guard
(version, states, check, ip).  Returns 0 when the guess is wrong (nothing written), 1
when the peer was deleted."""

EXPIRE_NEXT = (
    DELETE_FN
    + """
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'deadlines', '-inf', ARGV[2])
for _, id in ipairs(ids) do delete_peer(ARGV[1], id) end
local head = redis.call('ZRANGE', ARGV[1] .. 'deadlines', 0, 0, 'WITHSCORES')
return {ids, head[2] or ''}
"""
)
"""Expiry and the next deadline in one round trip: ``{expired IDs, next deadline or ''}``."""

REGISTER_NEW = (
    UPDATE_FN
    + MEMBERS_FN
    + """
local limit, with_maps, nlists = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local A = {}
for i = 4 + nlists, #ARGV do A[#A + 1] = ARGV[i] end
if redis.call('EXISTS', A[1] .. 'peer:' .. A[2]) == 1 then return {'exists'} end
local refused = update(A)
if refused ~= 0 then return {refused} end
local lists = {}
for i = 4, 3 + nlists do lists[#lists + 1] = peer_list(A[1], ARGV[i], limit, with_maps) end
return {'', lists}
"""
)
"""A CONNECT of a peer not registered yet (:meth:`RedisStorage.register_new`): ARGV the peer
lists' limit (0: all) and with-maps flag, the number of swarms to list, those swarms, then the
arguments of ``UPDATE``.  Returns ``{'exists'}`` when the peer is registered (nothing written),
``{bound}`` when a bound refuses the change, else ``{'', lists}``: ``{members, suspects}`` per
swarm listed, read after the change."""

JOIN_GUARDED = (
    GUARD_FN
    + UPDATE_FN
    + MEMBERS_FN
    + """
local p, id = ARGV[1], ARGV[2]
local rec = guard(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], 1, 0)
if not rec then return {'guess'} end
local nlists = tonumber(ARGV[18])
local first = 19 + nlists
local mine = p .. 'peerswarms:' .. id
for i = first, #ARGV, 2 do
  if redis.call('HEXISTS', mine, ARGV[i]) == 1 then return {'guess'} end
end
local a = readdress(rec[3], ARGV[8], ARGV[9])
if not a then return {'guess'} end
local A = {p, id, rec[1], ARGV[7], a, ARGV[10], '0', rec[4] or '',
           ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], '0'}
for i = first, #ARGV do A[#A + 1] = ARGV[i] end
local refused = update(A)
if refused ~= 0 then return {refused} end
local lists = {}
for i = 19, 18 + nlists do
  lists[#lists + 1] = peer_list(p, ARGV[i], tonumber(ARGV[16]), ARGV[17] == '1')
end
return {'', {rec[1], a, rec[4] or ''}, lists}
"""
)
"""A JOIN on a guess (:meth:`RedisStorage.join_guarded`): ARGV prefix, peer, the guard
(version, states, check, ip; the peer must be a member of none of the swarms it joins), the
new state, addresses and REFLEXIVE address (as ``FIND_GUARDED``) and deadline, the bounds (as
``UPDATE``), the peer lists' limit and with-maps flag, the number of swarms to list, those
swarms, then (swarm, mode) pairs to join.  Returns ``{'guess'}`` when the guess is wrong,
``{bound}`` when a bound refuses the change (nothing written either way), else ``{'',
{version, addresses, host}, lists}``."""
