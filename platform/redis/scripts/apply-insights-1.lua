-- Applies one tenant's insights events of one source batch, and moves the tenant's position on the partition past
-- them, in one step: either all of it happens or none (a re-delivered batch finds the position moved and is
-- skipped by the caller). platform/insights/store.ts describes the keys; every key the script touches starts with
-- the tenant's prefix ({t:T}:ins:), so all of them share the tenant's hash tag and Cluster slot with KEYS[1].
-- KEYS[1] the tenant's positions hash ({t:T}:ins:pos): "<topic>/<partition>" -> next offset, "...:wm" -> watermark
-- ARGV[1]  the tenant's insights key prefix "{t:T}:ins:"
-- ARGV[2]  position field "<topic>/<partition>"
-- ARGV[3]  the next offset the caller read before deciding ("" when there was none): the call is refused when
--          the position is another by now (another consumer applied the partition meanwhile: a rebalance)
-- ARGV[4]  the next offset after these events
-- ARGV[5]  the watermark after these events (ms)
-- ARGV[6]  attribution window (ms): a click of campaign C at tc attributes a cart.add at t when tc <= t <= tc + window
-- ARGV[7]  retention of minute buckets (ms), ARGV[8] of hour buckets, ARGV[9] of day buckets (after the bucket ends)
-- ARGV[10] how long a customer's clicks and carts are kept, behind the customer's newest one (ms)
-- ARGV[11] the most clicks kept per customer (the oldest go first)
-- ARGV[12] the most customers a bucket's exact set holds: past it the set is dropped, and the bucket's distinct
--          count is its HyperLogLog's estimate (0: no exact sets)
-- ARGV[13] f, then f flow counts of three values each: minute (ms / 60000), event type, events (at most 1000
--          types a minute: further ones count as "(other)")
-- then the insights events, five values each, in source order: kind (i impression, c click, a cart.add),
--   event time (ms), customer id, campaign id ("" for cart.add), reference (unique per cart.add event)
-- Returns {1, buckets recorded, carts attributed}, or {-1} when refused (ARGV[3] is not the position).
local pos = KEYS[1]
local prefix = ARGV[1]
local field = ARGV[2]
local current = redis.call('HGET', pos, field)
if (current or '') ~= ARGV[3] then return {-1} end

local window = tonumber(ARGV[6])
local retention = { m = tonumber(ARGV[7]), h = tonumber(ARGV[8]), d = tonumber(ARGV[9]) }
local width = { m = 60000, h = 3600000, d = 86400000 }
local keep = tonumber(ARGV[10])
local maxClicks = tonumber(ARGV[11])
local exactMax = tonumber(ARGV[12])
local recorded, attributed = 0, 0

local function int(n) return string.format('%d', n) end

-- counts `customer` in the minute, hour and day buckets of `t` for (metric, campaign)
local function record(metric, campaign, t, customer)
  for _, res in ipairs({ 'm', 'h', 'd' }) do
    local n = math.floor(t / width[res])
    local expires = int((n + 1) * width[res] + retention[res])
    local suffix = metric .. ':' .. res .. ':' .. int(n) .. ':' .. campaign
    local u = prefix .. 'u:' .. suffix
    local c = prefix .. 'n:' .. suffix
    local x = prefix .. 'x:' .. suffix
    redis.call('PFADD', u, customer)
    redis.call('PEXPIREAT', u, expires)
    -- the exact set exists from the bucket's first event until it outgrows exactMax (then the HLL alone counts)
    if redis.call('INCR', c) == 1 then
      if exactMax > 0 then
        redis.call('SADD', x, customer)
        redis.call('PEXPIREAT', x, expires)
      end
    elseif redis.call('SADD', x, customer) == 1 then
      -- a set of one here was dropped before (the bucket has had events): it stays dropped
      local size = redis.call('SCARD', x)
      if size == 1 or size > exactMax then redis.call('DEL', x) end
    end
    redis.call('PEXPIREAT', c, expires)
  end
  recorded = recorded + 1
end

-- attributes cart `ref` at `t` to `campaign` once
local function attribute(att, campaign, ref, t, customer)
  if redis.call('ZADD', att, 'NX', t, campaign .. '\n' .. ref) == 1 then
    record('clickToBasket', campaign, t, customer)
    attributed = attributed + 1
  end
end

-- drops a customer zset's members older than `keep` behind its newest, and refreshes its expiry
local function trim(key, cap)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. int(tonumber(newest[2]) - keep)) end
  if cap then redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1)) end
  redis.call('PEXPIRE', key, keep)
end

local f = tonumber(ARGV[13])
local i = 14
for _ = 1, f do
  local key = prefix .. 'flow:' .. ARGV[i]
  local type = ARGV[i + 1]
  -- a minute holds at most 1000 types: a tenant sending more counts the rest together
  if redis.call('HLEN', key) >= 1000 and redis.call('HEXISTS', key, type) == 0 then type = '(other)' end
  redis.call('HINCRBY', key, type, tonumber(ARGV[i + 2]))
  redis.call('PEXPIREAT', key, int((tonumber(ARGV[i]) + 1) * 60000 + retention.m))
  i = i + 3
end

while i <= #ARGV do
  local kind, t, customer, campaign, ref = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local att = prefix .. 'att:' .. customer
  if kind == 'i' then
    record('impressions', campaign, t, customer)
    redis.call('SADD', prefix .. 'campaigns', campaign)
  elseif kind == 'c' then
    record('clicks', campaign, t, customer)
    redis.call('SADD', prefix .. 'campaigns', campaign)
    local clk = prefix .. 'clk:' .. customer
    redis.call('ZADD', clk, t, int(t) .. '|' .. campaign)
    trim(clk, maxClicks)
    -- carts of the customer already seen within the window after the click (processed before it: out of order)
    local carts = redis.call('ZRANGEBYSCORE', prefix .. 'crt:' .. customer, t, t + window, 'WITHSCORES')
    for j = 1, #carts, 2 do attribute(att, campaign, carts[j], tonumber(carts[j + 1]), customer) end
    if #carts > 0 then trim(att) end
  elseif kind == 'a' then
    local crt = prefix .. 'crt:' .. customer
    redis.call('ZADD', crt, t, ref)
    trim(crt, maxClicks)
    local clicks = redis.call('ZRANGEBYSCORE', prefix .. 'clk:' .. customer, t - window, t)
    local seen = {}
    for _, member in ipairs(clicks) do
      local c = string.match(member, '^%d+|(.*)$')
      if c and not seen[c] then
        seen[c] = true
        attribute(att, c, ref, t, customer)
      end
    end
    if next(seen) then trim(att) end
  end
end

redis.call('HSET', pos, field, ARGV[4], field .. ':wm', ARGV[5])
return {1, recorded, attributed}
