-- Enables or disables a webhook endpoint. Enabling starts the head event's schedule again, now.
-- KEYS[1] the endpoint hash
-- ARGV[1] "enabled" or "disabled"
-- ARGV[2] why (for "disabled")
-- ARGV[3] now (ms)
-- Returns 1; 0 when the endpoint does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'enabled' then
  redis.call('HSET', KEYS[1], 'state', 'enabled')
  redis.call('HDEL', KEYS[1], 'disabled_reason', 'disabled_at', 'next_at', 'head', 'attempt')
else
  redis.call('HSET', KEYS[1], 'state', 'disabled', 'disabled_reason', ARGV[2], 'disabled_at', ARGV[3])
end
return 1
