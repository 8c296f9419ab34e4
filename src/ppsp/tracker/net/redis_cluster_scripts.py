"""The Lua scripts of the Redis Cluster storage (:mod:`ppsp.tracker.net.redis_cluster`).

A script may only touch keys of one hash slot, so each runs either in a *peer shard* (keys
under ``{p:K}``: peer records, their swarms, peer-wide statistics, the shard's timers and host
counts) or in a *swarm shard* (keys under ``{s:K}``: members, their address copies, content
maps, statistics, corrupt-peer reports, the shard's swarm index and counts).  ``ARGV[1]`` is
always the shard's key prefix (``ppsp:{p:7}``), so the single-server functions of
:mod:`ppsp.tracker.net.redis_scripts` that touch only peer keys run unchanged in a peer shard.

A swarm shard holds, per member of each of its swarms, a copy of what peer lists and reports
need of the member's record: ``addrs:S`` (its addresses, JSON as in the record) and
``owner:S`` (``version/host``).  It weighs the content maps it keeps per owner host and in
all (``mapbytes``, ``mapbytestotal``: ``redis_scripts.MAPS_FN``), the bounds on them holding
per swarm shard.
"""

from __future__ import annotations

from ppsp.tracker.net.redis_scripts import GUARD_FN, MAPS_FN, RECORD_FN, REPORTS_FN

# -- peer shards ----------------------------------------------------------------------------

# delete_peer: forget peer `id` of this shard; whether it existed and the swarms it was in.
P_DELETE_FN = """
local function delete_peer(p, id)
  count_host(p, redis.call('HGET', p .. 'peer:' .. id, 'h'), -1)
  local swarms = redis.call('HKEYS', p .. 'peerswarms:' .. id)
  local existed = redis.call('DEL', p .. 'peer:' .. id)
  redis.call('DEL', p .. 'peerswarms:' .. id, p .. 'peerstats:' .. id)
  redis.call('ZREM', p .. 'deadlines', id)
  return existed, swarms
end
"""

P_PUT = (
    RECORD_FN
    + """
local p, id = ARGV[1], ARGV[2]
local old = redis.call('HMGET', p .. 'peer:' .. id, 'v', 'a', 'h')
write_record(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
for i = 10, 9 + 2 * tonumber(ARGV[9]), 2 do
  redis.call('HSET', p .. 'peerstats:' .. id, ARGV[i], ARGV[i + 1])
end
if old[1] == ARGV[3] and old[2] == ARGV[5] and (old[3] or '') == ARGV[8] then return {0, {}} end
return {1, redis.call('HKEYS', p .. 'peerswarms:' .. id)}
"""
)
"""A record written (ARGV 2-8 as ``redis_scripts.PUT_PEER``), then ``n`` peer-wide statistics
(field, data).  Returns ``{changed, swarms}``: whether the version, addresses or host changed
(the swarms' copies must follow) and, when they did, the swarms the peer is in."""

P_DELETE = (
    RECORD_FN
    + P_DELETE_FN
    + """
local existed, swarms = delete_peer(ARGV[1], ARGV[2])
return {existed, swarms}
"""
)
"""A peer forgotten in its shard: ``{existed, swarms it was in}`` (their shards follow)."""

P_DELETE_GUARDED = (
    GUARD_FN
    + RECORD_FN
    + P_DELETE_FN
    + """
if not guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], 7, 6) then return 0 end
local _, swarms = delete_peer(ARGV[1], ARGV[2])
return {1, swarms}
"""
)
"""``redis_scripts.DELETE_GUARDED`` in a peer shard: 0 when the guess is wrong, else ``{1,
swarms the peer was in}``."""

P_EXPIRE = (
    RECORD_FN
    + P_DELETE_FN
    + """
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'deadlines', '-inf', ARGV[2])
local swarms = {}
for i, id in ipairs(ids) do
  local _, joined = delete_peer(p, id)
  swarms[i] = joined
end
local head = redis.call('ZRANGE', p .. 'deadlines', 0, 0, 'WITHSCORES')
return {ids, swarms, head[2] or ''}
"""
)
"""Expiry of one peer shard: ``{expired IDs, the swarms of each, next deadline or ''}``."""

# peer_update: the peer shard's part of a bounded change.  A: prefix, id, then the record
# (v, s, a, d, g, h), the bounds (peers per host, swarms per peer, peers in this shard; the
# last -1: none checked), write ('1': write when allowed), new only ('1': 'exists' when the
# peer is registered), the number of swarms to leave, those, then (swarm, mode) pairs to join.
# Returns {code} when refused, else {'', swarms before the change, changed}: whether the
# version, addresses or host changed (the copies of the swarms must follow).
P_UPDATE_FN = (
    RECORD_FN
    + """
local function peer_update(A)
  local p, id, h = A[1], A[2], A[8]
  local per_host, per_peer, max_peers = tonumber(A[9]), tonumber(A[10]), tonumber(A[11])
  local nleave = tonumber(A[14])
  local first_join = 15 + nleave
  local key, mine = p .. 'peer:' .. id, p .. 'peerswarms:' .. id
  local new = redis.call('EXISTS', key) == 0
  if A[13] == '1' and not new then return {'exists'} end
  if max_peers >= 0 then
    if new and per_host >= 0 and h ~= '' then
      if tonumber(redis.call('HGET', p .. 'hosts', h) or '0') >= per_host then
        return {'host'}
      end
    end
    local before = redis.call('HLEN', mine)
    local count = before
    for i = 15, first_join - 1 do
      if redis.call('HEXISTS', mine, A[i]) == 1 then count = count - 1 end
    end
    for i = first_join, #A, 2 do
      if redis.call('HEXISTS', mine, A[i]) == 0 then count = count + 1 end
    end
    if count > before and count > per_peer then return {'peer'} end
    if new and redis.call('ZCARD', p .. 'deadlines') >= max_peers then return {'peers'} end
  end
  local old = redis.call('HMGET', key, 'v', 'a', 'h')
  local swarms = redis.call('HKEYS', mine)
  if A[12] == '1' then
    write_record(p, id, A[3], A[4], A[5], A[6], A[7], h)
    for i = 15, first_join - 1 do redis.call('HDEL', mine, A[i]) end
    for i = first_join, #A, 2 do redis.call('HSET', mine, A[i], A[i + 1]) end
  end
  local changed = 0
  if old[1] ~= A[3] or old[2] ~= A[5] or (old[3] or '') ~= h then changed = 1 end
  return {'', swarms, changed}
end
"""
)

P_UPDATE = P_UPDATE_FN + "return peer_update(ARGV)"
"""The peer shard's part of :meth:`RedisClusterStorage.update` (see ``peer_update``)."""

P_JOIN_GUARDED = (
    GUARD_FN
    + P_UPDATE_FN
    + """
local p, id = ARGV[1], ARGV[2]
local rec = guard(p, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], 1, 0)
if not rec then return {'guess'} end
local mine = p .. 'peerswarms:' .. id
for i = 14, #ARGV, 2 do
  if redis.call('HEXISTS', mine, ARGV[i]) == 1 then return {'guess'} end
end
local a = readdress(rec[3], ARGV[8], ARGV[9])
if not a then return {'guess'} end
local A = {p, id, rec[1], ARGV[7], a, ARGV[10], '0', rec[4] or '',
           ARGV[11], ARGV[12], ARGV[13], '0', '0', '0'}
for i = 14, #ARGV do A[#A + 1] = ARGV[i] end
local out = peer_update(A)
if out[1] ~= '' then return out end
return {'', {rec[1], a, rec[4] or ''}, out[2]}
"""
)
"""The check of a JOIN on a guess, nothing written: ARGV prefix, peer, the guard (version,
states, check, ip), the new state, addresses, REFLEXIVE address and deadline (as
``redis_scripts.FIND_GUARDED``), the bounds (peers per host, swarms per peer, peers in the
shard), then (swarm, mode) pairs to join.  Returns ``{'guess'}``, ``{bound}``, or ``{'',
{version, addresses, host}, swarms}``: the record to write and the swarms the peer is in."""

P_JOIN = """
local p, id = ARGV[1], ARGV[2]
local rec = redis.call('HMGET', p .. 'peer:' .. id, 'v', 'a', 'h')
if not rec[1] then return 0 end
redis.call('HSET', p .. 'peerswarms:' .. id, ARGV[3], ARGV[4])
return {rec[1], rec[2], rec[3] or ''}
"""
"""The peer shard's part of a join: 0 for an unregistered peer, else the record's ``{version,
addresses, host}`` for the swarm's copy."""

# -- swarm shards ---------------------------------------------------------------------------

# owner_host: the host of an `owner:S` value (version/host).  copy_ok: whether a member's
# copy passes the open-mode host check (check '1': its last address is REFLEXIVE at `ip`).
# recopy: the copy's addresses after a request: `a` when given, else readdressed with `r`
# (REFLEXIVE replaced), else unchanged ('' and '').
COPY_FN = (
    REPORTS_FN
    + MAPS_FN
    + """
local function owner_host(o)
  if not o then return '' end
  return string.match(o, '^[^/]*/(.*)$') or ''
end
local function set_owner(q, s, id, o)
  local key = q .. 'owner:' .. s
  local was, now = owner_host(redis.call('HGET', key, id)), owner_host(o)
  redis.call('HSET', key, id, o)
  if was ~= now then
    local weight = redis.call('HSTRLEN', q .. 'swarmmaps:' .. s, id)
    host_maps(q, was, -weight)
    host_maps(q, now, weight)
  end
end
local function copy_ok(stored, check, ip)
  if not stored then return false end
  if check ~= '1' then return true end
  local ok, list = pcall(cjson.decode, stored)
  if not ok or type(list) ~= 'table' then return false end
  local last = list[#list]
  return type(last) == 'table' and last['type'] == 'REFLEXIVE' and last['ip'] == ip
end
local function recopy(q, s, id, stored, a, r)
  if a ~= '' then
    redis.call('HSET', q .. 'addrs:' .. s, id, a)
  elseif r ~= '' then
    local na = readdress(stored, '', r)
    if na then redis.call('HSET', q .. 'addrs:' .. s, id, na) end
  end
end
local function s_join(q, s, id, mode, a, o)
  if redis.call('HSET', q .. 'swarm:' .. s, id, mode) == 1 then
    redis.call('INCR', q .. 'memberships')
  end
  redis.call('HSET', q .. 'addrs:' .. s, id, a)
  set_owner(q, s, id, o)
  if redis.call('SADD', q .. 'swarms', s) == 1 then
    redis.call('ZADD', q .. 'swarmindex', 0, s)
  end
end
local function s_leave(q, s, id)
  if redis.call('HDEL', q .. 'swarm:' .. s, id) == 0 then return 0 end
  redis.call('DECR', q .. 'memberships')
  redis.call('HDEL', q .. 'addrs:' .. s, id)
  drop_map(q, s, id, owner_host(redis.call('HGET', q .. 'owner:' .. s, id)))
  redis.call('HDEL', q .. 'owner:' .. s, id)
  redis.call('HDEL', q .. 'stats:' .. s, id)
  drop_reports(q, s, id)
  if redis.call('HLEN', q .. 'swarm:' .. s) == 0 then
    redis.call('SREM', q .. 'swarms', s)
    redis.call('ZREM', q .. 'swarmindex', s)
  end
  return 1
end
local function members_of(q, s, limit, with_maps)
  local key = q .. 'swarm:' .. s
  local flat
  if limit > 0 and redis.call('HLEN', key) > limit then
    flat = redis.call('HRANDFIELD', key, limit, 'WITHVALUES')
  else
    flat = redis.call('HGETALL', key)
  end
  local out = {}
  for i = 1, #flat, 2 do
    local id = flat[i]
    local addresses = redis.call('HGET', q .. 'addrs:' .. s, id)
    if addresses then
      out[#out + 1] = id
      out[#out + 1] = flat[i + 1]
      out[#out + 1] = addresses
      if with_maps then
        out[#out + 1] = redis.call('HGET', q .. 'swarmmaps:' .. s, id) or ''
      end
    end
  end
  return out
end
local function peer_list(q, s, limit, with_maps)
  return {members_of(q, s, limit, with_maps), redis.call('SMEMBERS', q .. 'suspects:' .. s)}
end
"""
)

_SWARM_FNS = GUARD_FN + COPY_FN

S_CHECK = """
local q, id = ARGV[1], ARGV[2]
local max_swarms, max_members = tonumber(ARGV[3]), tonumber(ARGV[4])
local nleave = tonumber(ARGV[5])
local swarms, members = 0, 0
for i = 6, 5 + nleave do
  local key = q .. 'swarm:' .. ARGV[i]
  if redis.call('HEXISTS', key, id) == 1 then
    members = members - 1
    if redis.call('HLEN', key) == 1 then swarms = swarms - 1 end
  end
end
for i = 6 + nleave, #ARGV do
  local key = q .. 'swarm:' .. ARGV[i]
  if redis.call('HEXISTS', key, id) == 0 then
    members = members + 1
    if redis.call('EXISTS', key) == 0 then swarms = swarms + 1 end
  end
end
if swarms > 0 and redis.call('SCARD', q .. 'swarms') + swarms > max_swarms then
  return 'swarms'
end
if members > 0 then
  if tonumber(redis.call('GET', q .. 'memberships') or '0') + members > max_members then
    return 'memberships'
  end
end
return ''
"""
"""The swarm shard's check of a bounded change, nothing written: ARGV prefix, peer, this
shard's share of the swarms and memberships bounds, the number of its swarms the peer
leaves, those, then those it joins.  Returns '' or the bound the change would pass."""

S_WRITE = (
    _SWARM_FNS
    + """
local q, id, a, o = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, with_maps = tonumber(ARGV[5]), ARGV[6] == '1'
local nleave, nrefresh, nlists = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local i = 10
for _ = 1, nleave do s_leave(q, ARGV[i], id); i = i + 1 end
for _ = 1, nrefresh do
  local s = ARGV[i]
  if redis.call('HEXISTS', q .. 'swarm:' .. s, id) == 1 then
    redis.call('HSET', q .. 'addrs:' .. s, id, a)
    set_owner(q, s, id, o)
  end
  i = i + 1
end
local lists = {}
local first_list = i
i = i + nlists
while i <= #ARGV do s_join(q, ARGV[i], id, ARGV[i + 1], a, o); i = i + 2 end
for j = first_list, first_list + nlists - 1 do
  lists[#lists + 1] = peer_list(q, ARGV[j], limit, with_maps)
end
return lists
"""
)
"""The swarm shard's part of a change: ARGV prefix, peer, its addresses and owner
(``version/host``), the lists' limit (0: all) and with-maps flag, the numbers of swarms to
leave, to refresh (the copy of a member rewritten) and to list, those swarms, then (swarm,
mode) pairs to join.  Returns ``{members, suspects}`` per swarm listed, read after the
change."""

S_LIST = (
    _SWARM_FNS
    + """
local q, s, limit, with_maps = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local id = ARGV[5]
if id ~= '' then
  local stored = redis.call('HGET', q .. 'addrs:' .. s, id)
  if copy_ok(stored, ARGV[6], ARGV[7]) then recopy(q, s, id, stored, ARGV[8], ARGV[9]) end
end
if limit < 0 then return {} end
return peer_list(q, s, limit, with_maps)
"""
)
"""A swarm's list (FIND, :meth:`members`): ARGV prefix, swarm, limit (-1: no list, 0: all),
with-maps flag, then the requester ('' none), check, ip, new addresses ('' kept) and
REFLEXIVE address (''), whose copy is rewritten as its record is when it is a member and
passes the host check.  Returns ``{members, suspects}`` (``{}`` without a list)."""

S_REPORT = (
    _SWARM_FNS
    + """
local q, id, check, ip, a, r = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local allowed = {}
local function may(s)
  if allowed[s] == nil then
    local stored = redis.call('HGET', q .. 'addrs:' .. s, id)
    allowed[s] = copy_ok(stored, check, ip)
    if allowed[s] then recopy(q, s, id, stored, a, r) end
  end
  return allowed[s]
end
local i = 7
for _ = 1, tonumber(ARGV[i]) do may(ARGV[i + 1]); i = i + 1 end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  if may(ARGV[i + 1]) then redis.call('HSET', q .. 'stats:' .. ARGV[i + 1], id, ARGV[i + 2]) end
  i = i + 2
end
i = i + 1
local per_host, total = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
local written = 0
while i <= #ARGV do
  local s = ARGV[i]
  if may(s) then
    local h = owner_host(redis.call('HGET', q .. 'owner:' .. s, id))
    written = written + put_map(q, s, id, h, ARGV[i + 1], per_host, total)
  end
  i = i + 2
end
return written
"""
)
"""A report's part in a swarm shard, written only for swarms the peer is a member of (and,
check '1', whose copy passes the host check): ARGV prefix, peer, check, ip, new addresses
and REFLEXIVE address (as ``S_LIST``), the number of swarms named and those, the number of
statistics and those (swarm, data), this shard's bounds on the maps' weight (per owner
host, in all; -1: none), then content maps (swarm, packed).  Returns the number of content
maps kept."""

S_REMOVE = (
    _SWARM_FNS
    + """
local left = 0
for i = 2, #ARGV, 2 do left = left + s_leave(ARGV[1], ARGV[i + 1], ARGV[i]) end
return left
"""
)
"""Memberships ended in a swarm shard (leave, delete, expiry): ARGV prefix, then (peer,
swarm) pairs.  Returns how many there were."""

S_CORRUPT = (
    _SWARM_FNS
    + """
local q, me, host = ARGV[1], ARGV[2], ARGV[3]
local enough, kept = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV, 5 do
  local s, id, ip = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local port, chunks = tonumber(ARGV[i + 3]), ARGV[i + 4]
  local outcome = 'ignored'
  if id ~= me and host ~= ''
    and redis.call('HEXISTS', q .. 'swarm:' .. s, me) == 1
    and redis.call('HEXISTS', q .. 'swarm:' .. s, id) == 1
    and owner_host(redis.call('HGET', q .. 'owner:' .. s, id)) ~= host then
    local listed = false
    local stored = redis.call('HGET', q .. 'addrs:' .. s, id) or '[]'
    for _, a in ipairs(cjson.decode(stored)) do
      if a['ip'] == ip and tonumber(a['port']) == port then listed = true end
    end
    if listed then
      local hosts = q .. 'reports:' .. s .. ' ' .. id
      local held = redis.call('HLEN', hosts)
      if redis.call('HEXISTS', hosts, host) == 1 then
        redis.call('HSET', hosts, host, chunks)
        outcome = 'repeated'
      elseif held >= kept then
        outcome = 'repeated'
      else
        if held == 0 then redis.call('INCR', q .. 'reported') end
        redis.call('HSET', hosts, host, chunks)
        outcome = 'counted'
        if held + 1 >= enough and redis.call('SADD', q .. 'suspects:' .. s, id) == 1 then
          redis.call('INCR', q .. 'suspectcount')
        end
      end
    end
  end
  out[#out + 1] = outcome
end
return out
"""
)
"""``redis_scripts.CORRUPT_REPORTS`` in a swarm shard, for the reports about its swarms, the
reported peer's host and addresses read from its copy."""

S_VIEWS = """
local q, limit, maps = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local s = ARGV[i]
  local key = q .. 'swarm:' .. s
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
    local addresses = redis.call('HGET', q .. 'addrs:' .. s, id)
    if addresses then
      read = read + 1
      rows[#rows + 1] = id
      rows[#rows + 1] = flat[j + 1]
      rows[#rows + 1] = addresses
      rows[#rows + 1] = redis.call('HGET', q .. 'stats:' .. s, id) or ''
      if read <= maps then
        rows[#rows + 1] = redis.call('HGET', q .. 'swarmmaps:' .. s, id) or ''
      else
        rows[#rows + 1] = ''
      end
    end
  end
  out[#out + 1] = {count, rows}
end
return out
"""
"""``redis_scripts.SWARM_VIEWS`` in a swarm shard, from the members' copies."""

S_COUNTS = """
local q = ARGV[1]
return {redis.call('SCARD', q .. 'swarms'), redis.call('GET', q .. 'memberships') or '0',
        redis.call('GET', q .. 'reported') or '0', redis.call('GET', q .. 'suspectcount') or '0',
        redis.call('GET', q .. 'mapbytestotal') or '0'}
"""
"""A swarm shard's counts: ``{swarms, memberships, reported, suspects, map bytes}``."""

P_COUNTS = """
local p = ARGV[1]
local head = redis.call('ZRANGE', p .. 'deadlines', 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', p .. 'deadlines'), redis.call('HLEN', p .. 'hosts'), head[2] or ''}
"""
"""A peer shard's counts: ``{peers, hosts, next deadline or ''}``."""

S_JOIN_NEW = (
    _SWARM_FNS
    + """
local q, id, a, o = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_swarms, max_members = tonumber(ARGV[5]), tonumber(ARGV[6])
local limit, with_maps, nlists = tonumber(ARGV[7]), ARGV[8] == '1', tonumber(ARGV[9])
local first_join = 10 + nlists
local swarms, members = 0, 0
for i = first_join, #ARGV, 2 do
  local key = q .. 'swarm:' .. ARGV[i]
  if redis.call('HEXISTS', key, id) == 0 then
    members = members + 1
    if redis.call('EXISTS', key) == 0 then swarms = swarms + 1 end
  end
end
if swarms > 0 and redis.call('SCARD', q .. 'swarms') + swarms > max_swarms then
  return {'swarms'}
end
if members > 0 then
  if tonumber(redis.call('GET', q .. 'memberships') or '0') + members > max_members then
    return {'memberships'}
  end
end
local joined = {}
for i = first_join, #ARGV, 2 do
  if redis.call('HEXISTS', q .. 'swarm:' .. ARGV[i], id) == 0 then
    s_join(q, ARGV[i], id, ARGV[i + 1], a, o)
    joined[#joined + 1] = ARGV[i]
  end
end
local lists = {}
for i = 10, first_join - 1 do lists[#lists + 1] = peer_list(q, ARGV[i], limit, with_maps) end
return {'', joined, lists}
"""
)
"""A new peer's joins in a swarm shard, in the same step as its record (``register_new``):
ARGV prefix, peer, its addresses and owner, this shard's share of the swarms and memberships
bounds, the lists' limit (0: all) and with-maps flag, the number of swarms to list, those,
then (swarm, mode) pairs to join.  A swarm the peer is a member of already is left as it is
(the peer is registered: the tracker takes its ordinary path).  Returns ``{bound}`` (nothing
written), or ``{'', swarms joined, lists}``; the caller undoes the joins when the peer's shard
refuses the change."""

# moved: after a guarded rewrite, the swarms whose copies must follow (none when the
# addresses are unchanged, the usual case: a peer keeps its connection and its port).
MOVED_FN = """
local function moved(p, id, rec, a)
  if a == rec[3] then return {} end
  return redis.call('HKEYS', p .. 'peerswarms:' .. id)
end
"""

P_FIND = (
    GUARD_FN
    + MOVED_FN
    + """
local p, id = ARGV[1], ARGV[2]
local rec = guard(p, id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 3, 3)
if not rec then return 0 end
local a = readdress(rec[3], ARGV[9], ARGV[10])
if not a then return 0 end
local out = rewrite(p, id, rec, ARGV[8], a, ARGV[11])
out[4] = moved(p, id, rec, a)
return out
"""
)
"""The peer shard's part of a FIND on a guess: ARGV as ``redis_scripts.FIND_GUARDED`` up to
the deadline (the list is the swarm shard's).  Returns 0 when the guess is wrong, else
``{version, addresses, host, swarms}``: the swarms whose copies must follow when the
addresses changed (none otherwise)."""

P_REPORT = (
    GUARD_FN
    + MOVED_FN
    + """
local p, id = ARGV[1], ARGV[2]
local nswarms = tonumber(ARGV[3])
local rec = guard(p, id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 12, 11 + nswarms)
if not rec then return 0 end
local a = readdress(rec[3], ARGV[9], ARGV[10])
if not a then return 0 end
local out = rewrite(p, id, rec, ARGV[8], a, ARGV[11])
local i = 12 + nswarms
for _ = 1, tonumber(ARGV[i]) do
  redis.call('HSET', p .. 'peerstats:' .. id, ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
out[4] = moved(p, id, rec, a)
return out
"""
)
"""The peer shard's part of a STAT_REPORT on a guess: ARGV as ``redis_scripts.REPORT_GUARDED``
with peer-wide statistics only (those of swarms and the content maps are the swarm shards').
Returns 0 when the guess is wrong, else ``{version, addresses, host, swarms}`` as
``P_FIND``."""
