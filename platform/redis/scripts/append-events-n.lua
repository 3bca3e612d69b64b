-- Appends batches of events from one source partition to one or more subscription streams of one tenant, each
-- event once, records each run of appended entries in the subscription's marks (what the cold tier re-derives
-- them from once they leave Redis), then trims each stream to its hot window and size cap and each marks stream
-- to the resumable retention, remembering the last trimmed ids. One call per tenant and source batch (all its
-- keys share the tenant's hash tag): the route appends live events (dedup against each subscription's own
-- positions), a replay appends re-derived ones (dedup against the replay's progress, so a retried batch is not
-- appended twice, while the events themselves come again). platform/redis/streams.ts describes the keys.
-- KEYS, eight per subscription, in the order of the batches in ARGV:
--   +1 the subscription record ({t:T}:sub:<id>); nothing is appended once it is gone (deleted subscription)
--   +2 the subscription stream
--   +3 the dedup hash: "<topic>/<partition>" -> last source offset appended (the subscription's positions
--      hash for the route, the replay's progress hash for a replay)
--   +4 the subscription's positions hash, which keeps "~trimmed" (the greatest entry id ever trimmed from the
--      stream), "~cold" (entries after this id can be re-derived: the marks cover them) and "~check" (ms: when
--      the stream and marks are next looked at for entries older than their windows; the hot window is hours,
--      so once a second, or every twentieth of a shorter window, is soon enough, and a call that appends one
--      event, as most do, is spared three reads)
--   +5 the seen-set of the current hour (only when the source position is unknown)
--   +6 the seen-set of the previous hour
--   +7 the marks stream
--   +8 the subscription's dead letters (an event its transform failed on goes there, not to the stream)
-- ARGV[1] position field "<topic>/<partition>", or "" when the source position is unknown (dedup by id)
-- ARGV[2] stream size cap (entries)
-- ARGV[3] hot window start in ms: stream entries older than this are trimmed
-- ARGV[4] resumable retention start in ms: marks of runs older than this are trimmed
-- ARGV[5] now in ms (a dead letter's time)
-- ARGV[6] the dead letters' cap (entries, approximate)
-- ARGV[7] the number of events in the call's table, E
-- then the table: E events, four values each: source offset ("" when unknown), dedup id "<source> <id>" (used
--   only when the offset is unknown, "" otherwise), event type, structured CloudEvent JSON; an event that several
--   of the subscriptions get as it is comes once
-- then per subscription: the number of its events n, the digest of the subscription's matching spec, the replay
--   id ("" for live events), and per event, in source order, two values: its place in the table (1 to E), and why
--   it is set aside ("" when it is not: a set-aside event is deduplicated like the others, goes to the dead letters
--   and takes no id of the run)
-- Returns {appended, skipped} per subscription, flat; appended is -1 when the subscription is gone.
local field = ARGV[1]
local maxLen = tonumber(ARGV[2])
local hotFrom = tonumber(ARGV[3])
local minid = ARGV[3] .. '-0'
local marksMinid = ARGV[4] .. '-0'
local now, deadCap = ARGV[5], ARGV[6]
-- how often the windows are checked (ms): once a second, or every twentieth of a shorter hot window
local checkEvery = math.max(0, math.min(1000, math.floor((tonumber(now) - hotFrom) / 20)))

-- the greatest id among `a` and `b` ("ms-seq" strings)
local function maxId(a, b)
  if not a then return b end
  if not b then return a end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return (#am > #bm) and a or b end
  if am ~= bm then return (am > bm) and a or b end
  if #as ~= #bs then return (#as > #bs) and a or b end
  return (as >= bs) and a or b
end

-- the table's event e has its values at ARGV[eventsAt + 4e - 3 .. eventsAt + 4e]
local eventsAt = 7
local out = {}
local a = 8 + tonumber(ARGV[7]) * 4
for k = 0, #KEYS / 8 - 1 do
  local sub, stream, dedup, positions, seenNow, seenPrev, marks, dead =
    KEYS[k * 8 + 1], KEYS[k * 8 + 2], KEYS[k * 8 + 3], KEYS[k * 8 + 4], KEYS[k * 8 + 5], KEYS[k * 8 + 6], KEYS[k * 8 + 7], KEYS[k * 8 + 8]
  local n = tonumber(ARGV[a])
  local spec, replay = ARGV[a + 1], ARGV[a + 2]
  local first, stop = a + 3, a + 2 + n * 2
  a = stop + 1
  if redis.call('EXISTS', sub) == 0 then
    out[#out + 1] = -1
    out[#out + 1] = 0
  else
    -- the dedup position, whether the marks began, and when the windows are next checked, in one read when the
    -- dedup hash is the positions hash (the route's appends)
    local last, cold, check
    if dedup == positions and field ~= '' then
      local got = redis.call('HMGET', positions, field, '~cold', '~check')
      last, cold, check = tonumber(got[1]), got[2], tonumber(got[3])
    else
      if field ~= '' then last = tonumber(redis.call('HGET', dedup, field)) end
      local got = redis.call('HMGET', positions, '~cold', '~check')
      cold, check = got[1], tonumber(got[2])
    end
    local checkNow = check == nil or check <= tonumber(now)
    local appended, skipped = 0, 0
    local firstOffset, lastOffset = nil, nil
    local runMs, runSeq, runFirst = nil, nil, nil
    for i = first, stop, 2 do
      -- the event's offset, dedup id, type and JSON at ARGV[e], ARGV[e + 1], ARGV[e + 2], ARGV[e + 3]
      local e = eventsAt + tonumber(ARGV[i]) * 4 - 3
      local setAside = ARGV[i + 1]
      local fresh
      if field ~= '' then
        local offset = tonumber(ARGV[e])
        fresh = last == nil or offset > last
        if fresh then last = offset; lastOffset = ARGV[e]; firstOffset = firstOffset or ARGV[e] end
      else
        fresh = redis.call('SISMEMBER', seenNow, ARGV[e + 1]) == 0 and redis.call('SISMEMBER', seenPrev, ARGV[e + 1]) == 0
        if fresh then redis.call('SADD', seenNow, ARGV[e + 1]) end
      end
      if fresh and setAside ~= '' then
        -- set aside: in the dead letters with the reason, kind "transform" (a replay of dead letters leaves them:
        -- delivered untransformed, they would carry what the transform keeps from the endpoint)
        redis.call('XADD', dead, 'MAXLEN', '~', deadCap, '*', 'cursor', '', 'type', ARGV[e + 2], 'event', ARGV[e + 3],
          'reason', setAside, 'attempts', '0', 'webhook_id', '', 'dead_at', now, 'kind', 'transform')
      elseif fresh then
        -- one run of consecutive ids per call: the first id is the stream's next, the others follow it, so the
        -- mark's first id and count give every id of the run
        if not runMs then
          runFirst = redis.call('XADD', stream, '*', 'type', ARGV[e + 2], 'event', ARGV[e + 3])
          local ms, seq = string.match(runFirst, '^(%d+)-(%d+)$')
          runMs, runSeq = ms, tonumber(seq)
        else
          redis.call('XADD', stream, runMs .. '-' .. string.format('%d', runSeq + appended), 'type', ARGV[e + 2], 'event', ARGV[e + 3])
        end
        appended = appended + 1
      else
        skipped = skipped + 1
      end
    end
    if lastOffset and dedup == positions and appended > 0 and checkNow then
      redis.call('HSET', dedup, field, lastOffset, '~check', string.format('%d', tonumber(now) + checkEvery))
      checkNow = 'set'
    elseif lastOffset then
      redis.call('HSET', dedup, field, lastOffset)
    end
    if field == '' and appended > 0 then redis.call('EXPIRE', seenNow, 7200) end

    if appended > 0 then
      -- the first marked run: what the stream held before it has no marks and is never re-derived
      if not cold then
        local before = redis.call('XREVRANGE', stream, '(' .. runFirst, '-', 'COUNT', 1)[1]
        redis.call('HSET', positions, '~cold', maxId(before and before[1], redis.call('HGET', positions, '~trimmed')) or '0-0')
      end
      -- the run: where its events come from (a source partition and offsets; none when unknown) and how to
      -- derive them again (the matching spec, the replay that marked them)
      if field ~= '' then
        redis.call('XADD', marks, runFirst, 'n', appended, 'p', field, 'f', firstOffset, 't', lastOffset, 'v', spec, 'r', replay)
      else
        redis.call('XADD', marks, runFirst, 'n', appended, 'p', '')
      end

      if checkNow == true then redis.call('HSET', positions, '~check', string.format('%d', tonumber(now) + checkEvery)) end
      local trimmed = nil
      -- by time: everything before the hot window goes
      local oldest = checkNow and redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
      if oldest and tonumber(string.match(oldest[1], '^(%d+)')) < hotFrom then
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
      if trimmed then redis.call('HSET', positions, '~trimmed', trimmed) end
      -- marks older than the retention go; cursors before the last entry of the newest of them cannot resume
      local oldestMark = checkNow and redis.call('XRANGE', marks, '-', '+', 'COUNT', 1)[1]
      if oldestMark and tonumber(string.match(oldestMark[1], '^(%d+)')) < tonumber(ARGV[4]) then
        local newestOld = redis.call('XREVRANGE', marks, '(' .. marksMinid, '-', 'COUNT', 1)[1]
        if newestOld then
          redis.call('XTRIM', marks, 'MINID', marksMinid)
          local ms, seq = string.match(newestOld[1], '^(%d+)-(%d+)$')
          local count = tonumber(newestOld[2][2])
          redis.call('HSET', positions, '~cold', maxId(redis.call('HGET', positions, '~cold'), ms .. '-' .. string.format('%d', tonumber(seq) + count - 1)))
        end
      end
    end
    out[#out + 1] = appended
    out[#out + 1] = skipped
  end
end
return out
