-- Counts an attempt at the endpoint's head event before it is sent (so one cut short by a crash counts too).
-- KEYS[1] the endpoint hash
-- KEYS[2] the endpoint lease
-- ARGV[1] the lease owner (this deliver instance)
-- ARGV[2] the head: "live:<cursor>" or "replay:<cursor>"
-- ARGV[3] now (ms)
-- Returns the attempt number (1 for the head's first); -1 when the lease is not ours; -2 when the endpoint
-- is disabled or gone.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'state') ~= 'enabled' then return -2 end
local attempt = 1
if redis.call('HGET', KEYS[1], 'head') == ARGV[2] then
  attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
else
  redis.call('HSET', KEYS[1], 'head', ARGV[2], 'attempt', 1)
end
redis.call('HSET', KEYS[1], 'last_attempt_at', ARGV[3])
return attempt
