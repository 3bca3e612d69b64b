-- Takes a slot of a counted lease set (platform/redis/leases.ts): prunes expired leases, counts the rest and adds
-- the new lease in one step, so that concurrent takers on any number of instances never hold more than the limit.
-- KEYS[1] the set: zset, lease id -> expiry (ms, the Redis server's clock)
-- ARGV[1] the new lease id (random, one per holder: its owner's token)
-- ARGV[2] the limit (leases the set holds at most)
-- ARGV[3] the lease's time to live (ms)
-- Returns {1, leases held with this one} when taken; {0, leases held} when the limit is reached (nothing added).
-- The key expires with its last lease, so a set without holders leaves nothing behind.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then return {0, held} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, held + 1}
