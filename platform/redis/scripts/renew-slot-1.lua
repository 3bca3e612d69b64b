-- Extends a lease of a counted lease set (platform/redis/leases.ts), only while it is still held: not expired,
-- not pruned, not released.
-- KEYS[1] the set: zset, lease id -> expiry (ms, the Redis server's clock)
-- ARGV[1] the lease id
-- ARGV[2] the new time to live (ms)
-- Returns 1 when renewed; 0 when the lease is no longer held (its slot may be another holder's by now).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
