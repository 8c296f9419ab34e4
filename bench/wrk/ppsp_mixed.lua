-- PPSP-TP mixed load: 40 % STAT_REPORT, 40 % FIND from registered peers drawn from the whole
-- pool, 20 % churn (a fresh peer's CONNECT, JOIN, DISCONNECT).
--
-- Arguments: templates.lua (bodies encoded by ppsp's codecs, with placeholders for
-- the peer ID, swarm ID and port), registered peers, swarms, churn base, churn ring size per
-- thread, requests/s per thread (0: as fast as possible), connections per thread.
--
-- Churn peers go round a ring of `ring` peers per thread, one step each time the ring comes
-- round: step n + 1 of a peer is sent ring / 0.2 requests of its thread after step n, long
-- after step n was answered, so a JOIN never overtakes its CONNECT.  The churn base differs
-- per run, so that a ring left half-way by the previous run never meets this one.

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local C = dofile(here .. "common.lua")
local T
local peers, swarms, base, ring, mean_ms
local cursor, steps = 1, {}
local verifying
local headers

setup = C.setup
done = C.done

function init(args)
   T = dofile(args[1])
   peers, swarms = tonumber(args[2]), tonumber(args[3])
   base, ring = tonumber(args[4]), tonumber(args[5])
   local rate, conns = tonumber(args[6]), tonumber(args[7])
   math.randomseed(1000 + 7919 * tid + base)
   headers = {["Content-Type"] = T.content_type}
   for i = 1, ring do steps[i] = 0 end
   -- wrk calls thread 0's request() once before the run to check it and never sends that
   -- request: it must not move a churn peer on.
   verifying = (tid == 0)
   if rate > 0 then
      mean_ms = 1000 * conns / rate
      delay = function() return C.exponential(mean_ms) end
   end
end

local function member(template, i)
   local body = C.put(template, T.peer, string.format(T.peer_format, i))
   body = C.put(body, T.swarm, string.format(T.swarm_format, i % swarms))
   return body
end

function request()
   if verifying then
      verifying = false
      return wrk.format("POST", "/", headers, member(T.find, 0))
   end
   local draw = math.random()
   local body
   if draw < 0.4 then
      body = member(T.reports[math.random(#T.reports)], math.random(0, peers - 1))
   elseif draw < 0.8 then
      body = member(T.find, math.random(0, peers - 1))
   else
      local slot = cursor
      cursor = cursor % ring + 1
      local step = steps[slot]
      steps[slot] = (step + 1) % 3
      local n = base + tid * ring + slot
      local template = T.churn[step + 1]
      -- The port first (see ppsp_setup.lua).
      body = C.put(template, T.port, string.format("%05d", 30000 + n % 30000))
      body = C.put(body, T.peer, string.format(T.churn_format, n))
      body = C.put(body, T.swarm, string.format(T.swarm_format, n % swarms))
   end
   return wrk.format("POST", "/", headers, body)
end
