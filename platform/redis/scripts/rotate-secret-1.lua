-- Rotates a webhook endpoint's signing secret: the old one keeps signing beside the new one until ARGV[2].
-- Secrets arrive sealed (platform/crypto/secret-box.ts); the caller read the current one and sealed it again
-- when it was stored in clear or with an older key, so nothing is written in clear.
-- KEYS[1] the endpoint hash
-- ARGV[1] the new secret, sealed (enc:v1:...)
-- ARGV[2] until when the previous secret still signs (ms)
-- ARGV[3] the current secret as the caller read it
-- ARGV[4] the current secret as it is kept, sealed, as the previous one; '' when it cannot sign (it does not
--         open: no previous secret then)
-- Returns 1; 0 when the endpoint does not exist; -1 when its secret is no longer ARGV[3] (the caller reads again).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'secret') ~= ARGV[3] then return -1 end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], 'secret_previous', 'secret_previous_until')
  redis.call('HSET', KEYS[1], 'secret', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'secret_previous', ARGV[4], 'secret_previous_until', ARGV[2])
end
return 1
