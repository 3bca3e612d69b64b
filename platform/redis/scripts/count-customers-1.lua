-- Counts distinct customers exactly over each of several covers (a cover: the buckets of one figure), from the
-- buckets' exact sets, where every bucket of the cover still has one; read only. platform/insights/store.ts
-- describes the keys; every key read starts with the tenant's prefix ({t:T}:ins:), the slot of KEYS[1].
-- KEYS[1] the tenant's campaigns set ({t:T}:ins:campaigns): only for the slot
-- ARGV[1] the tenant's insights key prefix "{t:T}:ins:"
-- ARGV[2] the most members a cover's union may read (past it the cover answers -1: estimate it)
-- ARGV[3] c, the number of covers, then c bucket counts, then every bucket's suffix "<metric>:<res>:<n>:<campaign>"
-- Returns per cover the exact count, or -1 when a bucket with events has no exact set (it outgrew it) or the union
-- would read more than ARGV[2] members.
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local c = tonumber(ARGV[3])
local at = 4 + c
local out = {}
for i = 1, c do
  local sets, total, exact = {}, 0, true
  for _ = 1, tonumber(ARGV[3 + i]) do
    local suffix = ARGV[at]
    at = at + 1
    local x = prefix .. 'x:' .. suffix
    local size = redis.call('SCARD', x)
    if size > 0 then
      total = total + size
      sets[#sets + 1] = x
    elseif redis.call('EXISTS', prefix .. 'n:' .. suffix) == 1 then
      exact = false
    end
  end
  if not exact or total > limit then out[i] = -1
  elseif #sets == 0 then out[i] = 0
  elseif #sets == 1 then out[i] = total
  else out[i] = #redis.call('SUNION', unpack(sets)) end
end
return out
