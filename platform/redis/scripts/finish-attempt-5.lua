-- Records the outcome of an attempt at the endpoint's head event and moves on accordingly.
-- KEYS[1] the endpoint hash
-- KEYS[2] the endpoint lease
-- KEYS[3] the recent attempts list
-- KEYS[4] the dead letters stream
-- KEYS[5] the redeliver list (dead letters queued by a replay)
-- ARGV[1] the lease owner (this deliver instance)
-- ARGV[2] the head: "live:<cursor>" or "replay:<cursor>"
-- ARGV[3] outcome: "delivered" (advance), "retry" (wait until ARGV[4]), "dead" (dead-letter, advance, disable),
--         "gone" (disable, keep the head)
-- ARGV[4] next attempt time (ms; for "retry")
-- ARGV[5] the attempt record (JSON), pushed on the attempts list
-- ARGV[6] how many attempt records to keep
-- ARGV[7] now (ms)
-- ARGV[8] why the endpoint is disabled or the event dead-lettered
-- ARGV[9] the event (structured CloudEvent JSON; for "dead", empty otherwise)
-- ARGV[10] the event type (for "dead", empty otherwise)
-- ARGV[11] the webhook-id (for "dead", empty otherwise)
-- ARGV[12] the dead letters cap (approximate MAXLEN)
-- Returns 1; -1 when the lease is not ours; -3 when the head moved on meanwhile (nothing is written).
-- A delivery is a fact, whoever holds the lease now: "delivered" is recorded while the head is still that event
-- even when the lease was lost meanwhile (Redis failed over, the instance paused), so that the event is not
-- sent again by the next holder. Every other outcome needs the lease.
if ARGV[3] ~= 'delivered' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'head') ~= ARGV[2] then return -3 end
redis.call('LPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
local outcome = ARGV[3]
local function advance()
  local from, cursor = string.match(ARGV[2], '^(%a+):(.+)$')
  if from == 'replay' then redis.call('LPOP', KEYS[5]) else redis.call('HSET', KEYS[1], 'cursor', cursor) end
  redis.call('HDEL', KEYS[1], 'head', 'attempt', 'next_at')
  return cursor
end
if outcome == 'delivered' then
  advance()
elseif outcome == 'retry' then
  redis.call('HSET', KEYS[1], 'next_at', ARGV[4])
elseif outcome == 'dead' then
  local attempts = redis.call('HGET', KEYS[1], 'attempt') or '0'
  local cursor = advance()
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'cursor', cursor, 'type', ARGV[10], 'event', ARGV[9],
    'reason', ARGV[8], 'attempts', attempts, 'webhook_id', ARGV[11], 'dead_at', ARGV[7])
  redis.call('HSET', KEYS[1], 'state', 'disabled', 'disabled_reason', ARGV[8], 'disabled_at', ARGV[7])
elseif outcome == 'gone' then
  redis.call('HSET', KEYS[1], 'state', 'disabled', 'disabled_reason', ARGV[8], 'disabled_at', ARGV[7])
  redis.call('HDEL', KEYS[1], 'next_at')
else
  return redis.error_reply('unknown outcome ' .. outcome)
end
return 1
