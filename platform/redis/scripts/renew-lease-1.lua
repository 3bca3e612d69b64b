-- Extends a single-holder lease, only for its holder (platform/redis/leases.ts).
-- KEYS[1] the lease: string, its holder's owner token
-- ARGV[1] the owner
-- ARGV[2] the new time to live (ms)
-- Returns 1 when renewed; 0 when the lease is not (or no longer) the owner's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
