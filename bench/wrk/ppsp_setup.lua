-- PPSP-TP registration: each of `peers` peers CONNECTs and JOINs its swarm (peer i in swarm
-- i mod swarms), then the thread stops.
--
-- Arguments: templates.lua, peers, swarms, threads, flag file prefix.
--
-- Thread t registers peers t, t + threads, ...  in blocks of 2,048: the block's CONNECTs, then
-- its JOINs, so that a JOIN is sent 2,048 requests after its CONNECT.  Answers are counted in
-- response(); the thread stops once it has every answer; requests asked for meanwhile are
-- FINDs of the thread's first peer (no change of state).  Non-200 answers are counted.

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local C = dofile(here .. "common.lua")
local T
local peers, swarms, threads
local flag, verifying
local mine, quota, issued, answered = 0, 0, 0, 0
local headers
local BLOCK = 2048

setup = C.setup
done = C.done

function init(args)
   T = dofile(args[1])
   peers, swarms, threads = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
   flag = args[5]
   headers = {["Content-Type"] = T.content_type}
   -- peers of this thread: tid, tid + threads, ... below peers
   mine = math.floor((peers - tid + threads - 1) / threads)
   if mine < 0 then mine = 0 end
   quota = 2 * mine
   bad, sent = 0, 0
   -- wrk calls thread 0's request() once before the run to check it (script_verify_request)
   -- and never sends that request: it must not count.
   verifying = (tid == 0)
end

local function body_of(template, i)
   -- The port first: a peer or swarm ID holding the port's placeholder digits (peer 11111)
   -- would have them replaced too.
   local k = math.floor(i / swarms)
   local body = C.put(template, T.port, string.format("%05d", 10000 + k % 50000))
   body = C.put(body, T.peer, string.format(T.peer_format, i))
   body = C.put(body, T.swarm, string.format(T.swarm_format, i % swarms))
   return body
end

function request()
   if verifying then
      verifying = false
      return wrk.format("POST", "/", headers, body_of(T.find, tid))
   end
   local body
   if issued < quota then
      -- position n of this thread's 2 * mine requests: block b, CONNECT or JOIN half
      local n = issued
      local b = math.floor(n / (2 * BLOCK))
      local in_block = n - b * 2 * BLOCK
      local size = math.min(BLOCK, mine - b * BLOCK)
      local local_index, template
      if in_block < size then
         local_index, template = b * BLOCK + in_block, T.connect
      else
         local j = b * BLOCK + in_block - size
         local_index = j
         local i = tid + j * threads
         template = (i % 5 == 0) and T.join_seed or T.join_leech
      end
      body = body_of(template, tid + local_index * threads)
   else
      body = body_of(T.find, tid)
   end
   issued = issued + 1
   sent = issued
   return wrk.format("POST", "/", headers, body)
end

function response(status, headers_, body_)
   answered = answered + 1
   if status ~= 200 then bad = bad + 1 end
   if answered == quota then C.finished(flag) end
end
