-- wrk script: HTTP/1.1 pipelining. Every write carries DEPTH GET requests
-- for the same path, back to back; wrk reads DEPTH responses before it
-- writes again, and counts each response as one request.
--
--   wrk -t1 -c64 -d5s -s pipeline.lua http://127.0.0.1:PORT/plaintext -- 16
--
-- DEPTH is the first script argument (default 16). The path is taken from
-- the URL given to wrk.

local depth = 16
local batch

function init(args)
   local n = tonumber(args[1])
   if n ~= nil and n >= 1 then
      depth = math.floor(n)
   end
   local one = wrk.format("GET", wrk.path)
   batch = string.rep(one, depth)
end

function request()
   return batch
end
