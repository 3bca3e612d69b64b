-- Counts the distinct customers and the events of each of several covers (a cover: the buckets of one figure).
-- platform/insights/store.ts describes the keys; every key touched starts with the tenant's prefix ({t:T}:ins:),
-- the slot of KEYS[1]. A bucket with events has its exact set while it is small and its HyperLogLog once it
-- outgrew the set (buckets written before the HyperLogLog was built lazily may have both: the set counts then).
-- A cover's customers are the exact union of its sets when every bucket of it has one; else the estimate of one
-- HyperLogLog holding the buckets' HyperLogLogs and the members of their sets, built in the scratch key
-- {t:T}:ins:tmp and deleted before the script returns (the estimate Redis gives for those customers).
-- KEYS[1] the tenant's campaigns set ({t:T}:ins:campaigns): only for the slot
-- ARGV[1] the tenant's insights key prefix "{t:T}:ins:"
-- ARGV[2] the most members a cover's exact union may read (past it the cover is estimated)
-- ARGV[3] c, the number of covers, then c bucket counts, then every bucket's suffix "<metric>:<res>:<n>:<campaign>"
-- Returns three numbers per cover, in order: distinct customers, events, 1 when the first is an estimate else 0.
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local c = tonumber(ARGV[3])
local tmp = prefix .. 'tmp'
local at = 4 + c
local out = {}
for i = 1, c do
  local sets, hlls, total, events = {}, {}, 0, 0
  for _ = 1, tonumber(ARGV[3 + i]) do
    local suffix = ARGV[at]
    at = at + 1
    local n = redis.call('GET', prefix .. 'n:' .. suffix)
    if n then
      events = events + tonumber(n)
      local x = prefix .. 'x:' .. suffix
      local size = redis.call('SCARD', x)
      if size > 0 then
        total = total + size
        sets[#sets + 1] = x
      else
        hlls[#hlls + 1] = prefix .. 'u:' .. suffix
      end
    end
  end
  local value, estimate = 0, 0
  if #hlls == 0 and total <= limit then
    if #sets == 1 then value = total
    elseif #sets > 1 then value = #redis.call('SUNION', unpack(sets)) end
  elseif #sets == 0 then
    value, estimate = redis.call('PFCOUNT', unpack(hlls)), 1
  else
    redis.call('DEL', tmp)
    if #hlls > 0 then redis.call('PFMERGE', tmp, unpack(hlls)) end
    for _, x in ipairs(sets) do
      local members = redis.call('SMEMBERS', x)
      for j = 1, #members, 1000 do redis.call('PFADD', tmp, unpack(members, j, math.min(j + 999, #members))) end
    end
    value, estimate = redis.call('PFCOUNT', tmp), 1
    redis.call('DEL', tmp)
  end
  out[#out + 1] = value
  out[#out + 1] = events
  out[#out + 1] = estimate
end
return out
