-- Takes a single-holder lease when nobody holds it (SET NX PX), or answers who does (platform/redis/leases.ts).
-- KEYS[1] the lease: string, its holder's owner token
-- ARGV[1] the owner taking it
-- ARGV[2] the time to live (ms)
-- Returns {1} when taken; {0, holder} when it is held (by another owner, or already by this one: nothing changes).
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1}
