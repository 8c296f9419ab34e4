-- One BitTorrent HTTP announce (BEP 3, BEP 23 compact), as wrk sends it.
local M = {}

function M.announce(peer, swarm, port, seed, event)
   local path = string.format(
      "/announce?info_hash=ih%018d&peer_id=-PP0001-%012d&port=%d&uploaded=0&downloaded=0"
         .. "&left=%d&compact=1&numwant=20",
      swarm, peer, port, seed and 0 or 1048576)
   if event then path = path .. "&event=" .. event end
   return wrk.format("GET", path)
end

return M
