-- Replaces a subscription's record only if it is still the one the caller read (compare and set): a change
-- cannot bring back a subscription deleted in the meantime, nor silently undo a concurrent change. Every
-- matching spec the subscription had is kept, so that events matched with an older one can be derived again.
-- KEYS[1] the subscription's record ({t:T}:sub:<id>)
-- KEYS[2] the subscription's matching specs ({t:T}:specs:<id>)
-- ARGV[1] the record JSON as the caller read it
-- ARGV[2] the new record JSON
-- ARGV[3] the digest of its matching spec
-- ARGV[4] the matching spec JSON
-- Returns 1 when replaced, 0 when the subscription is gone, -1 when it changed since it was read.
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
