-- Rotates a webhook endpoint's signing secret: the old one keeps signing beside the new one until ARGV[2].
-- KEYS[1] the endpoint hash
-- ARGV[1] the new secret (whsec_...)
-- ARGV[2] until when the previous secret still signs (ms)
-- Returns 1; 0 when the endpoint does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], 'secret')
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'secret_previous', current, 'secret_previous_until', ARGV[2])
return 1
