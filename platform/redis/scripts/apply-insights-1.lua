-- Applies one tenant's insights events of one source batch, and moves the tenant's position on the partition past
-- them, in one step: either all of it happens or none (a re-delivered batch finds the position moved and is
-- skipped by the caller). platform/insights/store.ts describes the keys; every key the script touches starts with
-- the tenant's prefix ({t:T}:ins:), so all of them share the tenant's hash tag and Cluster slot with KEYS[1].
-- Hour and day buckets are a hash each (flush); the minute buckets of an hour share one (write_minutes).
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
-- ARGV[12] the most customers a bucket holds exactly: past it they go to the bucket's HyperLogLog, built then, and
--          its distinct count is the HyperLogLog's estimate (0: none are held exactly)
-- ARGV[13] f, then f flow counts of three values each: minute (ms / 60000), event type, events (at most 1000
--          types a minute: further ones count as "(other)")
-- then the insights events, four values each, in source order: kind (i impression, c click, a cart.add), event
--   time (ms), customer id, and the campaign id (impressions and clicks) or the reference (cart.add: unique per event)
-- Returns {1, events recorded, carts attributed}, or {-1} when refused (ARGV[3] is not the position).
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

-- The batch's counts are gathered per bucket first and written once per bucket at the end (flush): a batch's
-- events mostly share their minute, hour and day, so a bucket costs a few commands per batch, not per event.
local pending, order = {}, {}
-- minute buckets, per metric, campaign and hour: each hour's minutes are one hash (write_minutes)
local groups, groupOrder = {}, {}
local RES = { 'h', 'd' }
-- one more event in a gathered bucket, and its customer once
local function tally(b, customer)
  b.events = b.events + 1
  if not b.seen[customer] then
    b.seen[customer] = true
    b.customers[#b.customers + 1] = customer
  end
end
local function record(metric, campaign, t, customer)
  local m = math.floor(t / width.m)
  local h = math.floor(m / 60)
  local gsuffix = metric .. ':m:' .. int(h) .. ':' .. campaign
  local g = groups[gsuffix]
  if not g then
    g = { minutes = {}, order = {}, metric = metric, campaign = campaign, expires = int((h + 1) * width.h + retention.m) }
    groups[gsuffix] = g
    groupOrder[#groupOrder + 1] = gsuffix
  end
  local mb = g.minutes[m]
  if not mb then
    mb = { events = 0, customers = {}, seen = {} }
    g.minutes[m] = mb
    g.order[#g.order + 1] = m
  end
  tally(mb, customer)
  for r = 1, 2 do
    local res = RES[r]
    local n = math.floor(t / width[res])
    local suffix = metric .. ':' .. res .. ':' .. int(n) .. ':' .. campaign
    local b = pending[suffix]
    if not b then
      b = { events = 0, customers = {}, seen = {}, expires = int((n + 1) * width[res] + retention[res]) }
      pending[suffix] = b
      order[#order + 1] = suffix
    end
    tally(b, customer)
  end
  recorded = recorded + 1
end

-- calls `cmd key members...` in slices (a Lua call takes a bounded number of arguments); the sum of the replies
local function each_slice(cmd, key, members)
  local sum = 0
  for j = 1, #members, 1000 do sum = sum + redis.call(cmd, key, unpack(members, j, math.min(j + 999, #members))) end
  return sum
end

-- HSET `key` member "" for each of `members`, in slices; the number of fields added
local function hset_members(key, members)
  local sum, args = 0, {}
  for j = 1, #members do
    args[#args + 1] = members[j]
    args[#args + 1] = ''
    if #args == 1000 or j == #members then
      sum = sum + redis.call('HSET', key, unpack(args))
      args = {}
    end
  end
  return sum
end

-- Each bucket is one hash: field "" counts its events, and while it has at most exactMax customers, each of them
-- is a field (value ""), its exact set. When the customers outgrow that, the bucket's HyperLogLog is built from
-- them and they are dropped from the hash, which keeps the count alone: a bucket has its customers in one of the
-- two, and a small one costs no PFADD. (Buckets written before this layout have a counter, a set and a
-- HyperLogLog of their own keys: they are no longer written, and are read beside the hash.)
local function flush()
  for _, suffix in ipairs(order) do
    local b = pending[suffix]
    local members = b.customers
    local h, u = prefix .. 'b:' .. suffix, prefix .. 'u:' .. suffix
    -- the count says whether the bucket is new: its keys get their expiry (fixed by the bucket's end) then only
    local events = redis.call('HINCRBY', h, '', b.events)
    if events == b.events then
      if #members <= exactMax then
        hset_members(h, members)
      else
        each_slice('PFADD', u, members)
        redis.call('PEXPIREAT', u, b.expires)
      end
      redis.call('PEXPIREAT', h, b.expires)
    else
      local size = redis.call('HLEN', h) - 1
      if size == 0 then
        -- the count alone: the customers were outgrown (or sets are off), and the HyperLogLog counts them
        each_slice('PFADD', u, members)
      elseif size + hset_members(h, members) > exactMax then
        -- outgrown: every customer goes to the HyperLogLog, and the hash keeps the count alone
        local fields = redis.call('HKEYS', h)
        local customers = {}
        for _, f in ipairs(fields) do if f ~= '' then customers[#customers + 1] = f end end
        each_slice('PFADD', u, customers)
        redis.call('PEXPIREAT', u, b.expires)
        for j = 1, #customers, 1000 do redis.call('HDEL', h, unpack(customers, j, math.min(j + 999, #customers))) end
      end
    end
  end
end

local touched = {}
-- drops a customer zset's members older than `keep` behind the newest entry the batch added to it (its newest, or
-- one a little older when another partition's batch added a newer one: then fewer go, never one still needed),
-- keeps at most `cap` (false: no cap on the count), and refreshes its expiry: once per key and batch, after it
local function trim(key, t)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. int(t.newest - keep))
  if t.cap then redis.call('ZREMRANGEBYRANK', key, 0, -(t.cap + 1)) end
  redis.call('PEXPIRE', key, keep)
end

-- notes that the batch added an entry scored `score` to the customer zset `key`
local function touch(key, score, cap)
  local t = touched[key]
  if not t then touched[key] = { newest = score, cap = cap }
  elseif score > t.newest then t.newest = score end
end

-- The minute buckets of one hour (of a campaign and metric) are one hash, {t:T}:ins:g:<metric>:m:<hour>:<campaign>:
-- field "<minute>" the minute's events, "<minute>|<customer>" each of its customers while it has at most exactMax,
-- and "<minute>|" once it had more: then the minute's HyperLogLog (u:<metric>:m:<minute>:<campaign>) has them. A
-- call reads the counts of its minutes and writes counts and customers back in one command per hour, rather than
-- three commands per minute bucket. A minute's customers are at most its events, so a minute of at most exactMax
-- events needs no look at its customers; one of more reads the hour's fields once (rare: a busy minute).
local function write_minutes()
  for _, gsuffix in ipairs(groupOrder) do
    local g = groups[gsuffix]
    local key = prefix .. 'g:' .. gsuffix
    local fields = {}
    for j, m in ipairs(g.order) do fields[j] = int(m) end
    local counts = {}
    for j = 1, #fields, 1000 do
      local part = redis.call('HMGET', key, unpack(fields, j, math.min(j + 999, #fields)))
      for k = 1, #part do counts[j + k - 1] = part[k] end
    end
    local set = {}
    local hourFields
    for j, m in ipairs(g.order) do
      local mb = g.minutes[m]
      local mf = fields[j]
      local total = tonumber(counts[j] or 0) + mb.events
      set[#set + 1] = mf
      set[#set + 1] = total
      local exact = total <= exactMax
      if not exact then
        if redis.call('HEXISTS', key, mf .. '|') == 1 then
          -- outgrown before: the HyperLogLog counts the new customers
          each_slice('PFADD', prefix .. 'u:' .. g.metric .. ':m:' .. mf .. ':' .. g.campaign, mb.customers)
        else
          hourFields = hourFields or redis.call('HKEYS', key)
          local held, heldSeen = {}, {}
          local lead = mf .. '|'
          for _, f in ipairs(hourFields) do
            if string.sub(f, 1, #lead) == lead then
              local c = string.sub(f, #lead + 1)
              held[#held + 1] = c
              heldSeen[c] = true
            end
          end
          local size = #held
          for _, c in ipairs(mb.customers) do if not heldSeen[c] then size = size + 1 end end
          if size > exactMax then
            -- outgrown now: the minute's customers go to its HyperLogLog, the hash keeps its count and the mark
            local u = prefix .. 'u:' .. g.metric .. ':m:' .. mf .. ':' .. g.campaign
            each_slice('PFADD', u, mb.customers)
            if #held > 0 then
              each_slice('PFADD', u, held)
              local drop = {}
              for k, c in ipairs(held) do drop[k] = lead .. c end
              each_slice('HDEL', key, drop)
            end
            redis.call('PEXPIREAT', u, int((m + 1) * width.m + retention.m))
            set[#set + 1] = lead
            set[#set + 1] = ''
          else
            exact = true
          end
        end
      end
      if exact then
        for _, c in ipairs(mb.customers) do
          set[#set + 1] = mf .. '|' .. c
          set[#set + 1] = ''
        end
      end
    end
    for j = 1, #set, 1000 do redis.call('HSET', key, unpack(set, j, math.min(j + 999, #set))) end
    redis.call('PEXPIREAT', key, g.expires)
  end
end

-- attributes cart `ref` at `t` to `campaign` once
local function attribute(att, campaign, ref, t, customer)
  if redis.call('ZADD', att, 'NX', t, campaign .. '\n' .. ref) == 1 then
    record('clickToBasket', campaign, t, customer)
    attributed = attributed + 1
    touch(att, t, false)
  end
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

local campaigns = {}
while i <= #ARGV do
  -- the fourth value is the campaign of an impression or click, the reference of a cart.add
  local kind, t, customer, campaign = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local ref = campaign
  i = i + 4
  if kind == 'i' then
    record('impressions', campaign, t, customer)
    campaigns[campaign] = true
  elseif kind == 'c' then
    record('clicks', campaign, t, customer)
    campaigns[campaign] = true
    local clk = prefix .. 'clk:' .. customer
    redis.call('ZADD', clk, t, int(t) .. '|' .. campaign)
    touch(clk, t, maxClicks)
    -- carts of the customer already seen within the window after the click (processed before it: out of order)
    local carts = redis.call('ZRANGEBYSCORE', prefix .. 'crt:' .. customer, t, t + window, 'WITHSCORES')
    for j = 1, #carts, 2 do attribute(prefix .. 'att:' .. customer, campaign, carts[j], tonumber(carts[j + 1]), customer) end
  elseif kind == 'a' then
    local crt = prefix .. 'crt:' .. customer
    redis.call('ZADD', crt, t, ref)
    touch(crt, t, maxClicks)
    local clicks = redis.call('ZRANGEBYSCORE', prefix .. 'clk:' .. customer, t - window, t)
    local seen = {}
    for _, member in ipairs(clicks) do
      local c = string.match(member, '^%d+|(.*)$')
      if c and not seen[c] then
        seen[c] = true
        attribute(prefix .. 'att:' .. customer, c, ref, t, customer)
      end
    end
  end
end

flush()
write_minutes()
local named = {}
for c in pairs(campaigns) do named[#named + 1] = c end
each_slice('SADD', prefix .. 'campaigns', named)
for key, t in pairs(touched) do trim(key, t) end

redis.call('HSET', pos, field, ARGV[4], field .. ':wm', ARGV[5])
return {1, recorded, attributed}
