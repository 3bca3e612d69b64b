-- Counts the distinct customers and the events of each of several covers (a cover: the buckets of one figure).
-- platform/insights/store.ts describes the keys; every key touched starts with the tenant's prefix ({t:T}:ins:),
-- the slot of KEYS[1]. A bucket is a hash (b:): field "" its events, and its customers as fields while they are
-- few, else its HyperLogLog (u:) has them. Buckets written before that layout have a counter (n:) and a set (x:)
-- while small, else a HyperLogLog (u:); they are read beside the hash (a bucket written in both has both).
-- A cover's customers are the exact union of its buckets' customers when every one of them holds its customers
-- exactly; else the estimate of one HyperLogLog holding the buckets' HyperLogLogs and the customers held exactly,
-- built in the scratch key {t:T}:ins:tmp and deleted before the script returns (the estimate Redis gives for
-- those customers). The exact union of several hashes is taken in the same scratch key, as a set.
-- KEYS[1] the tenant's campaigns set ({t:T}:ins:campaigns): only for the slot
-- ARGV[1] the tenant's insights key prefix "{t:T}:ins:"
-- ARGV[2] the most members a cover's exact union may read (past it the cover is estimated)
-- ARGV[3] c, the number of covers, then c bucket counts, then every bucket's suffix "<metric>:<res>:<n>:<campaign>"
-- Returns three numbers per cover, in order: distinct customers, events, 1 when the first is an estimate else 0.
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local c = tonumber(ARGV[3])
local tmp = prefix .. 'tmp'

-- `cmd key list...` in slices (a Lua call takes a bounded number of arguments)
local function each_slice(cmd, key, list)
  for j = 1, #list, 1000 do redis.call(cmd, key, unpack(list, j, math.min(j + 999, #list))) end
end

-- the customers a bucket's hash holds (every field but the count's)
local function customers_of(h)
  local out = {}
  for _, f in ipairs(redis.call('HKEYS', h)) do
    if f ~= '' then out[#out + 1] = f end
  end
  return out
end

-- a bucket's events, and its customers held exactly (`size` of them in `key`, listed in `into`) or not at all
-- (its HyperLogLog has them: the bucket is `estimated`)
local function add(cover, count, size, key, into)
  cover.events = cover.events + tonumber(count)
  if size > 0 then
    cover.total = cover.total + size
    into[#into + 1] = key
  else
    cover.estimated = true
  end
end

local at = 4 + c
local out = {}
for i = 1, c do
  local cover = { sets = {}, hashes = {}, total = 0, events = 0, estimated = false }
  local hlls = {}
  for _ = 1, tonumber(ARGV[3 + i]) do
    local suffix = ARGV[at]
    at = at + 1
    cover.estimated = false
    local h = prefix .. 'b:' .. suffix
    local e = redis.call('HGET', h, '')
    if e then add(cover, e, redis.call('HLEN', h) - 1, h, cover.hashes) end
    local x = prefix .. 'x:' .. suffix
    local n = redis.call('GET', prefix .. 'n:' .. suffix)
    if n then add(cover, n, redis.call('SCARD', x), x, cover.sets) end
    if cover.estimated then hlls[#hlls + 1] = prefix .. 'u:' .. suffix end
  end
  local sets, hashes, total = cover.sets, cover.hashes, cover.total
  local value, estimate = 0, 0
  if #hlls == 0 and total <= limit then
    if #sets + #hashes == 1 then value = total
    elseif #hashes == 0 and #sets > 1 then value = #redis.call('SUNION', unpack(sets))
    elseif #hashes > 0 then
      redis.call('DEL', tmp)
      for _, h in ipairs(hashes) do each_slice('SADD', tmp, customers_of(h)) end
      if #sets > 0 then redis.call('SUNIONSTORE', tmp, tmp, unpack(sets)) end
      value = redis.call('SCARD', tmp)
      redis.call('DEL', tmp)
    end
  elseif #sets + #hashes == 0 then
    value, estimate = redis.call('PFCOUNT', unpack(hlls)), 1
  else
    redis.call('DEL', tmp)
    if #hlls > 0 then redis.call('PFMERGE', tmp, unpack(hlls)) end
    for _, x in ipairs(sets) do each_slice('PFADD', tmp, redis.call('SMEMBERS', x)) end
    for _, h in ipairs(hashes) do each_slice('PFADD', tmp, customers_of(h)) end
    value, estimate = redis.call('PFCOUNT', tmp), 1
    redis.call('DEL', tmp)
  end
  out[#out + 1] = value
  out[#out + 1] = cover.events
  out[#out + 1] = estimate
end
return out
