-- BitTorrent announce load for the anchors (opentracker, bittorrent-tracker): 80 % periodic
-- announces of registered peers drawn from the whole pool, 20 % churn (a fresh peer's
-- event=started, a periodic announce, event=stopped), every answer compact with 20 peers.
--
-- Arguments: peers, swarms, churn base, churn ring size per thread, requests/s per thread
-- (0: as fast as possible), connections per thread.  Churn goes round a ring as in
-- ppsp_mixed.lua.  Peer i announces info_hash "ih" .. %018d of i mod swarms with peer_id
-- "-PP0001-" .. %012d of i: 20 URL-safe bytes each.

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local C = dofile(here .. "common.lua")
local B = dofile(here .. "bt.lua")
local peers, swarms, base, ring, mean_ms
local cursor, steps = 1, {}
local verifying

setup = C.setup
done = C.done

function init(args)
   peers, swarms = tonumber(args[1]), tonumber(args[2])
   base, ring = tonumber(args[3]), tonumber(args[4])
   local rate, conns = tonumber(args[5]), tonumber(args[6])
   math.randomseed(1000 + 7919 * tid + base)
   for i = 1, ring do steps[i] = 0 end
   -- wrk calls thread 0's request() once before the run to check it and never sends that
   -- request: it must not move a churn peer on.
   verifying = (tid == 0)
   if rate > 0 then
      mean_ms = 1000 * conns / rate
      delay = function() return C.exponential(mean_ms) end
   end
end

function request()
   if verifying then
      verifying = false
      return B.announce(0, 0, 10000, true, nil)
   end
   if math.random() < 0.8 then
      local i = math.random(0, peers - 1)
      return B.announce(i, i % swarms, 10000 + math.floor(i / swarms) % 50000, i % 5 == 0, nil)
   end
   local slot = cursor
   cursor = cursor % ring + 1
   local step = steps[slot]
   steps[slot] = (step + 1) % 3
   local n = base + tid * ring + slot
   local event = (step == 0 and "started") or (step == 2 and "stopped") or nil
   return B.announce(1000000000 + n, n % swarms, 30000 + n % 30000, false, event)
end
