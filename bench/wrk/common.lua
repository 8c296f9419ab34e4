-- Shared by the wrk scripts of bench.tracker_compare (loaded with dofile, path in argument 1).
--
-- Each wrk thread gets its number (tid, from 0) in setup(); done() prints one line
-- "WRKJSON {...}" that the Python side reads: requests, duration, errors, latency percentiles
-- (microseconds, wrk's own histogram) and the non-200 answers counted by the setup scripts.

local M = {}
local threads = {}
local next_tid = 0

function M.setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

-- Replace every plain occurrence of `needle` in `text` (no Lua pattern characters).
function M.put(text, needle, value)
   local out, start = {}, 1
   while true do
      local i, j = string.find(text, needle, start, true)
      if not i then break end
      out[#out + 1] = string.sub(text, start, i - 1)
      out[#out + 1] = value
      start = j + 1
   end
   out[#out + 1] = string.sub(text, start)
   return table.concat(out)
end

-- The thread has every answer it waited for: say so in the file flag .. tid (wrk runs for its
-- whole -d otherwise; the caller interrupts it once every thread's file is there) and stop.
function M.finished(flag)
   local f = io.open(flag .. tid, "w")
   if f then f:write("done\n"); f:close() end
   wrk.thread:stop()
end

-- An exponential draw of mean `mean` (Poisson arrivals for the rate-limited runs).
function M.exponential(mean)
   return -math.log(1 - math.random()) * mean
end

function M.done(summary, latency, requests)
   local bad, sent = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("bad") or 0)
      sent = sent + (thread:get("sent") or 0)
   end
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
                    e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"not_200":%d', bad),
      string.format('"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}',
                    latency:percentile(50), latency:percentile(90), latency:percentile(99),
                    latency:percentile(99.9), latency.mean, latency.max),
   }
   io.write("WRKJSON {" .. table.concat(parts, ",") .. "}\n")
end

return M
