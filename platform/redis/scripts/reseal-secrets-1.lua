-- Replaces a webhook endpoint's stored secrets by the same secrets sealed again (with the sealing key, by the
-- caller: platform/webhooks/endpoints.ts reseal), unless a rotation changed them meanwhile.
-- KEYS[1] the endpoint hash
-- ARGV[1] the secret as the caller read it
-- ARGV[2] its replacement
-- ARGV[3] the previous secret as the caller read it ('' when there was none)
-- ARGV[4] its replacement ('' when there was none)
-- Returns 1 when replaced; 0 when the endpoint does not exist; -1 when a secret changed meanwhile.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'secret') ~= ARGV[1] then return -1 end
if (redis.call('HGET', KEYS[1], 'secret_previous') or '') ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[1], 'secret', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'secret_previous', ARGV[4]) end
return 1
