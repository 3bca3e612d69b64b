-- Gives up a lease its owner holds, so another instance can take the endpoint at once.
-- KEYS[1] the lease
-- ARGV[1] the owner
-- Returns 1 when released; 0 when the lease was not the owner's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
