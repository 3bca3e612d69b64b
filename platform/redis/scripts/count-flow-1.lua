-- Adds counts to one tenant's flow hash of one minute and stage (platform/insights/flow.ts describes the keys).
-- KEYS[1] the hash ({t:T}:ins:routed:<minute> or {t:T}:ins:delivered:<minute>): event type -> count
-- ARGV[1] when it expires (ms since the epoch); ARGV[2] the most types it holds: a type past them counts as
--         "(other)", so that a tenant sending endless types keeps the hash small
-- then pairs: event type, count to add
-- Returns the number of types the hash holds.
local key = KEYS[1]
local cap = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local type = ARGV[i]
  if redis.call('HEXISTS', key, type) == 0 and redis.call('HLEN', key) >= cap then type = '(other)' end
  redis.call('HINCRBY', key, type, ARGV[i + 1])
end
redis.call('PEXPIREAT', key, ARGV[1])
return redis.call('HLEN', key)
