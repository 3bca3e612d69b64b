-- Appends a batch of events from one source partition to a subscription stream, each once, then trims the
-- stream by time and by size, remembering the last trimmed id so that a cursor older than the buffer can be
-- told apart from one that is merely quiet. One call per subscription and source batch: the route appends live
-- events (dedup against the subscription's own positions), a replay appends re-derived ones (dedup against the
-- replay's progress, so a retried batch is not appended twice, while the events themselves come again).
-- KEYS[1] the subscription record ({t:T}:sub:<id>); nothing is appended once it is gone (deleted subscription)
-- KEYS[2] the subscription stream
-- KEYS[3] the dedup hash: "<topic>/<partition>" -> last source offset appended (the subscription's positions
--         hash for the route, the replay's progress hash for a replay)
-- KEYS[4] the hash that keeps "~trimmed" -> the greatest entry id ever trimmed (the subscription's positions)
-- KEYS[5] the seen-set of the current hour (only when the source position is unknown)
-- KEYS[6] the seen-set of the previous hour
-- ARGV[1] position field "<topic>/<partition>", or "" when the source position is unknown (dedup by id)
-- ARGV[2] stream size cap (entries)
-- ARGV[3] retention start in ms: entries older than this are trimmed
-- ARGV[4..] per event, in source order, four values: source offset ("" when unknown), dedup id "<source> <id>",
--           event type, structured CloudEvent JSON
-- Returns {appended, skipped}, or -1 when the subscription is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local field = ARGV[1]
local last = nil
if field ~= '' then last = tonumber(redis.call('HGET', KEYS[3], field)) end
local appended, skipped = 0, 0
local lastOffset = nil
for i = 4, #ARGV, 4 do
  local fresh
  if field ~= '' then
    local offset = tonumber(ARGV[i])
    fresh = last == nil or offset > last
    if fresh then last = offset; lastOffset = ARGV[i] end
  else
    fresh = redis.call('SISMEMBER', KEYS[5], ARGV[i + 1]) == 0 and redis.call('SISMEMBER', KEYS[6], ARGV[i + 1]) == 0
    if fresh then redis.call('SADD', KEYS[5], ARGV[i + 1]) end
  end
  if fresh then
    redis.call('XADD', KEYS[2], '*', 'type', ARGV[i + 2], 'event', ARGV[i + 3])
    appended = appended + 1
  else
    skipped = skipped + 1
  end
end
if lastOffset then redis.call('HSET', KEYS[3], field, lastOffset) end
if field == '' and appended > 0 then redis.call('EXPIRE', KEYS[5], 7200) end

if appended > 0 then
  local trimmed = nil
  -- by time: everything before the retention start goes
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if first and tonumber(string.match(first[1], '^(%d+)')) < tonumber(ARGV[3]) then
    local minid = ARGV[3] .. '-0'
    local older = redis.call('XREVRANGE', KEYS[2], '(' .. minid, '-', 'COUNT', 1)[1]
    if older then
      redis.call('XTRIM', KEYS[2], 'MINID', minid)
      trimmed = older[1]
    end
  end
  -- by size: past the cap the oldest entries go
  local over = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[2])
  if over > 0 then
    local gone = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', over)
    redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[2])
    trimmed = gone[#gone][1]
  end
  if trimmed then redis.call('HSET', KEYS[4], '~trimmed', trimmed) end
end
return {appended, skipped}
