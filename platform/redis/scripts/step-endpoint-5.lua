-- One step of an endpoint's delivery in one call: records the outcome of the attempt at its head and moves on
-- accordingly (when an outcome is given), then reads the endpoint and begins the attempt at its next head (when
-- asked), counted before the event is sent so that one cut short by a crash counts too.
-- KEYS[1] the endpoint hash
-- KEYS[2] the endpoint lease
-- KEYS[3] the recent attempts list
-- KEYS[4] the dead letters stream
-- KEYS[5] the redeliver list (dead letters queued by a replay)
-- ARGV[1] the lease owner (this deliver instance)
-- ARGV[2] now (ms)
-- The outcome (ARGV[3] empty when there is none to record):
-- ARGV[3] the head attempted: "live:<cursor>" or "replay:<cursor>"
-- ARGV[4] outcome: "delivered" (advance), "retry" (wait until ARGV[5]), "dead" (dead-letter, advance, disable),
--         "gone" (disable, keep the head)
-- ARGV[5] next attempt time (ms; for "retry")
-- ARGV[6] the attempt record (JSON), pushed on the attempts list
-- ARGV[7] how many attempt records to keep
-- ARGV[8] why the endpoint is disabled or the event dead-lettered
-- ARGV[9] the event (structured CloudEvent JSON; for "dead", empty otherwise)
-- ARGV[10] the event type (for "dead", empty otherwise)
-- ARGV[11] the webhook-id (for "dead", empty otherwise)
-- ARGV[12] the dead letters cap (approximate MAXLEN)
-- The next attempt (ARGV[13] empty when none is to begin):
-- ARGV[13] "begin"
-- ARGV[14] the cursor the caller read the next live event after ('' when it read nothing)
-- ARGV[15] the cursor of that live event ('' when there is none)
-- ARGV[16] the stored secrets the caller checked: secret, a newline, secret_previous (or nothing)
-- The next head is the first dead letter a replay queued, else the live event ARGV[15] when ARGV[14] is the
-- endpoint's cursor. Nothing is begun while the endpoint is disabled or waits for its next attempt time, when
-- the stored secrets are not those the caller checked (a rotation: it checks that they open first), or when the
-- caller read after another cursor or found nothing: the fields returned tell it which.
-- Returns {recorded, begun, attempt, fields, queued}:
--   recorded: 1 the outcome recorded; 0 none given; -1 the lease is not ours (nothing written, nothing begun);
--             -3 the head moved on meanwhile (nothing written)
--   begun: 1 an attempt begun (attempt: its number, 1 for the head's first; queued: the dead letter's JSON, or
--          false for the live event); 0 nothing begun (or none asked); -1 the lease is not ours; -2 no endpoint
--   fields: the endpoint hash as read before the attempt was counted (HGETALL's flat list)
local recorded = 0
if ARGV[3] ~= '' then
  -- A delivery is a fact, whoever holds the lease now: "delivered" is recorded while the head is still that
  -- event even when the lease was lost meanwhile (Redis failed over, the instance paused), so that the event is
  -- not sent again by the next holder. Every other outcome needs the lease.
  if ARGV[4] ~= 'delivered' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1, -1} end
  if redis.call('HGET', KEYS[1], 'head') ~= ARGV[3] then
    recorded = -3
  else
    recorded = 1
    redis.call('LPUSH', KEYS[3], ARGV[6])
    redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
    local outcome = ARGV[4]
    local function advance()
      local from, cursor = string.match(ARGV[3], '^(%a+):(.+)$')
      if from == 'replay' then redis.call('LPOP', KEYS[5]) else redis.call('HSET', KEYS[1], 'cursor', cursor) end
      redis.call('HDEL', KEYS[1], 'head', 'attempt', 'next_at')
      return cursor
    end
    if outcome == 'delivered' then
      advance()
    elseif outcome == 'retry' then
      redis.call('HSET', KEYS[1], 'next_at', ARGV[5])
    elseif outcome == 'dead' then
      local attempts = redis.call('HGET', KEYS[1], 'attempt') or '0'
      local cursor = advance()
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'cursor', cursor, 'type', ARGV[10], 'event', ARGV[9],
        'reason', ARGV[8], 'attempts', attempts, 'webhook_id', ARGV[11], 'dead_at', ARGV[2])
      redis.call('HSET', KEYS[1], 'state', 'disabled', 'disabled_reason', ARGV[8], 'disabled_at', ARGV[2])
    elseif outcome == 'gone' then
      redis.call('HSET', KEYS[1], 'state', 'disabled', 'disabled_reason', ARGV[8], 'disabled_at', ARGV[2])
      redis.call('HDEL', KEYS[1], 'next_at')
    else
      return redis.error_reply('unknown outcome ' .. outcome)
    end
  end
end

if ARGV[13] ~= 'begin' then return {recorded, 0} end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {recorded, -1} end
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {recorded, -2} end
local ep = {}
for i = 1, #fields, 2 do ep[fields[i]] = fields[i + 1] end
if ep['state'] ~= 'enabled' then return {recorded, 0, 0, fields} end
if ep['next_at'] and tonumber(ep['next_at']) > tonumber(ARGV[2]) then return {recorded, 0, 0, fields} end
if (ep['secret'] or '') .. '\n' .. (ep['secret_previous'] or '') ~= ARGV[16] then return {recorded, 0, 0, fields} end
local queued = redis.call('LINDEX', KEYS[5], 0)
local head
if queued then
  head = 'replay:' .. cjson.decode(queued)['cursor']
elseif ARGV[15] ~= '' and ARGV[14] == (ep['cursor'] or '0-0') then
  head = 'live:' .. ARGV[15]
else
  return {recorded, 0, 0, fields}
end
local attempt = 1
if ep['head'] == head then
  attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
else
  redis.call('HSET', KEYS[1], 'head', head, 'attempt', 1)
end
redis.call('HSET', KEYS[1], 'last_attempt_at', ARGV[2])
return {recorded, 1, attempt, fields, queued or false}
