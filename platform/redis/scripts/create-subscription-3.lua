-- Creates a subscription unless the tenant already has as many as it may: the count and the take are one step,
-- so concurrent creations cannot pass the limit together.
-- KEYS[1] the tenant's subscription id set ({t:T}:subs)
-- KEYS[2] the new subscription's record ({t:T}:sub:<id>)
-- KEYS[3] the subscription's matching specs ({t:T}:specs:<id>)
-- ARGV[1] the subscription id
-- ARGV[2] the subscription JSON
-- ARGV[3] the most subscriptions the tenant may have
-- ARGV[4] the digest of its matching spec
-- ARGV[5] the matching spec JSON
-- Returns 1 when created, 0 when the tenant is at its limit (nothing is written then).
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return 1
