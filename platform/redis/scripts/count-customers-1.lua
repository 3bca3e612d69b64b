-- Counts the distinct customers and the events of each of several covers (a cover: the buckets of one figure).
-- Minute buckets are fields of their hour's hash (g:<metric>:m:<hour>:<campaign>, apply-insights-1.lua); minute
-- buckets of one hash each (b:) are read beside them until they expire.
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

-- the minutes of an hour's minute hash (g:), read once per call: minute -> { customers, outgrown }
local hours = {}
local function minutes_of(g)
  local minutes = hours[g]
  if minutes then return minutes end
  minutes = {}
  for _, f in ipairs(redis.call('HKEYS', g)) do
    local bar = string.find(f, '|', 1, true)
    if bar then
      local m = string.sub(f, 1, bar - 1)
      local entry = minutes[m]
      if not entry then
        entry = { customers = {}, outgrown = false }
        minutes[m] = entry
      end
      if bar == #f then entry.outgrown = true else entry.customers[#entry.customers + 1] = string.sub(f, bar + 1) end
    end
  end
  hours[g] = minutes
  return minutes
end

-- a minute bucket in its hour's hash (g:<metric>:m:<hour>:<campaign>): field "<minute>" its events,
-- "<minute>|<customer>" its customers held exactly, "<minute>|" when they outgrew that (its HyperLogLog u: has
-- them, and any listed beside the mark are counted with it)
local NONE = { customers = {}, outgrown = false }
local function add_minute(cover, suffix, lists, extra)
  local metric, n, campaign = string.match(suffix, '^([^:]+):m:(%d+):(.*)$')
  if not metric then return end
  local g = prefix .. 'g:' .. metric .. ':m:' .. string.format('%d', math.floor(tonumber(n) / 60)) .. ':' .. campaign
  local e = redis.call('HGET', g, n)
  if not e then return end
  cover.events = cover.events + tonumber(e)
  local entry = minutes_of(g)[n] or NONE
  if entry.outgrown then
    cover.estimated = true
    if #entry.customers > 0 then extra[#extra + 1] = entry.customers end
  else
    cover.total = cover.total + #entry.customers
    lists[#lists + 1] = entry.customers
  end
end

local at = 4 + c
local out = {}
for i = 1, c do
  local cover = { sets = {}, hashes = {}, total = 0, events = 0, estimated = false }
  local hlls, lists, extra = {}, {}, {}
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
    add_minute(cover, suffix, lists, extra)
    if cover.estimated then hlls[#hlls + 1] = prefix .. 'u:' .. suffix end
  end
  local sets, hashes, total = cover.sets, cover.hashes, cover.total
  local value, estimate = 0, 0
  if #hlls == 0 and total <= limit then
    if #sets + #hashes + #lists == 1 then value = total
    elseif #hashes + #lists == 0 and #sets > 1 then value = #redis.call('SUNION', unpack(sets))
    elseif #hashes + #lists > 0 then
      redis.call('DEL', tmp)
      for _, h in ipairs(hashes) do each_slice('SADD', tmp, customers_of(h)) end
      for _, list in ipairs(lists) do if #list > 0 then each_slice('SADD', tmp, list) end end
      if #sets > 0 then redis.call('SUNIONSTORE', tmp, tmp, unpack(sets)) end
      value = redis.call('SCARD', tmp)
      redis.call('DEL', tmp)
    end
  elseif #sets + #hashes + #lists + #extra == 0 then
    value, estimate = redis.call('PFCOUNT', unpack(hlls)), 1
  else
    redis.call('DEL', tmp)
    if #hlls > 0 then redis.call('PFMERGE', tmp, unpack(hlls)) end
    for _, x in ipairs(sets) do each_slice('PFADD', tmp, redis.call('SMEMBERS', x)) end
    for _, h in ipairs(hashes) do each_slice('PFADD', tmp, customers_of(h)) end
    for _, list in ipairs(lists) do if #list > 0 then each_slice('PFADD', tmp, list) end end
    for _, list in ipairs(extra) do each_slice('PFADD', tmp, list) end
    value, estimate = redis.call('PFCOUNT', tmp), 1
    redis.call('DEL', tmp)
  end
  out[#out + 1] = value
  out[#out + 1] = cover.events
  out[#out + 1] = estimate
end
return out
