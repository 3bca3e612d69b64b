-- Gives up a single-holder lease, only for its holder, so that another owner can take it at once
-- (platform/redis/leases.ts).
-- KEYS[1] the lease: string, its holder's owner token
-- ARGV[1] the owner
-- Returns 1 when released; 0 when the lease was not (or no longer) the owner's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
