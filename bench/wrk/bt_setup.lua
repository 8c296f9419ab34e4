-- BitTorrent registration: each of `peers` peers announces event=started once (peer i in
-- swarm i mod swarms, one in five a seed), then the thread stops once it has every answer;
-- requests asked for meanwhile re-announce the thread's first peer (no new peer).
--
-- Arguments: peers, swarms, threads, flag file prefix.

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local C = dofile(here .. "common.lua")
local B = dofile(here .. "bt.lua")
local peers, swarms, threads
local flag, verifying
local quota, issued, answered = 0, 0, 0

setup = C.setup
done = C.done

function init(args)
   peers, swarms, threads = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
   flag = args[4]
   quota = math.floor((peers - tid + threads - 1) / threads)
   if quota < 0 then quota = 0 end
   bad, sent = 0, 0
   -- wrk calls thread 0's request() once before the run to check it (script_verify_request)
   -- and never sends that request: it must not count.
   verifying = (tid == 0)
end

local function peer(i, event)
   return B.announce(i, i % swarms, 10000 + math.floor(i / swarms) % 50000, i % 5 == 0, event)
end

function request()
   if verifying then
      verifying = false
      return peer(tid, nil)
   end
   local i = (issued < quota) and (tid + issued * threads) or tid
   local event = (issued < quota) and "started" or nil
   issued = issued + 1
   sent = issued
   return peer(i, event)
end

function response(status, headers_, body_)
   answered = answered + 1
   if status ~= 200 then bad = bad + 1 end
   if answered == quota then C.finished(flag) end
end
