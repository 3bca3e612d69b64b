-- Appends batches of events from one source partition to one or more subscription streams of one tenant, each
-- event once, then trims each stream by time and by size, remembering the last trimmed id so that a cursor
-- older than the buffer can be told apart from one that is merely quiet. One call per tenant and source batch
-- (all its keys share the tenant's hash tag): the route appends live events (dedup against each subscription's
-- own positions), a replay appends re-derived ones (dedup against the replay's progress, so a retried batch is
-- not appended twice, while the events themselves come again).
-- KEYS, six per subscription, in the order of the batches in ARGV:
--   +1 the subscription record ({t:T}:sub:<id>); nothing is appended once it is gone (deleted subscription)
--   +2 the subscription stream
--   +3 the dedup hash: "<topic>/<partition>" -> last source offset appended (the subscription's positions
--      hash for the route, the replay's progress hash for a replay)
--   +4 the hash that keeps "~trimmed" -> the greatest entry id ever trimmed (the subscription's positions)
--   +5 the seen-set of the current hour (only when the source position is unknown)
--   +6 the seen-set of the previous hour
-- ARGV[1] position field "<topic>/<partition>", or "" when the source position is unknown (dedup by id)
-- ARGV[2] stream size cap (entries)
-- ARGV[3] retention start in ms: entries older than this are trimmed
-- then per subscription: the number of events n, and per event, in source order, four values: source offset
--   ("" when unknown), dedup id "<source> <id>", event type, structured CloudEvent JSON
-- Returns {appended, skipped} per subscription, flat; appended is -1 when the subscription is gone.
local field = ARGV[1]
local maxLen = tonumber(ARGV[2])
local retainFrom = tonumber(ARGV[3])
local minid = ARGV[3] .. '-0'
local out = {}
local a = 4
for k = 0, #KEYS / 6 - 1 do
  local sub, stream, dedup, trimmedIn, seenNow, seenPrev =
    KEYS[k * 6 + 1], KEYS[k * 6 + 2], KEYS[k * 6 + 3], KEYS[k * 6 + 4], KEYS[k * 6 + 5], KEYS[k * 6 + 6]
  local n = tonumber(ARGV[a])
  local first, stop = a + 1, a + n * 4
  a = stop + 1
  if redis.call('EXISTS', sub) == 0 then
    out[#out + 1] = -1
    out[#out + 1] = 0
  else
    local last = nil
    if field ~= '' then last = tonumber(redis.call('HGET', dedup, field)) end
    local appended, skipped = 0, 0
    local lastOffset = nil
    for i = first, stop, 4 do
      local fresh
      if field ~= '' then
        local offset = tonumber(ARGV[i])
        fresh = last == nil or offset > last
        if fresh then last = offset; lastOffset = ARGV[i] end
      else
        fresh = redis.call('SISMEMBER', seenNow, ARGV[i + 1]) == 0 and redis.call('SISMEMBER', seenPrev, ARGV[i + 1]) == 0
        if fresh then redis.call('SADD', seenNow, ARGV[i + 1]) end
      end
      if fresh then
        redis.call('XADD', stream, '*', 'type', ARGV[i + 2], 'event', ARGV[i + 3])
        appended = appended + 1
      else
        skipped = skipped + 1
      end
    end
    if lastOffset then redis.call('HSET', dedup, field, lastOffset) end
    if field == '' and appended > 0 then redis.call('EXPIRE', seenNow, 7200) end

    if appended > 0 then
      local trimmed = nil
      -- by time: everything before the retention start goes
      local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
      if oldest and tonumber(string.match(oldest[1], '^(%d+)')) < retainFrom then
        local older = redis.call('XREVRANGE', stream, '(' .. minid, '-', 'COUNT', 1)[1]
        if older then
          redis.call('XTRIM', stream, 'MINID', minid)
          trimmed = older[1]
        end
      end
      -- by size: past the cap the oldest entries go
      local over = redis.call('XLEN', stream) - maxLen
      if over > 0 then
        local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', over)
        redis.call('XTRIM', stream, 'MAXLEN', ARGV[2])
        trimmed = gone[#gone][1]
      end
      if trimmed then redis.call('HSET', trimmedIn, '~trimmed', trimmed) end
    end
    out[#out + 1] = appended
    out[#out + 1] = skipped
  end
end
return out
