-- Registers the next version of a CloudEvent type's JSON Schema, if the latest version is still the one the
-- new schema was checked against (compare-and-set: a concurrent registration makes the caller check again).
-- KEYS[1] the tenant's latest-version hash ({t:T}:schemas): type -> latest version number
-- KEYS[2] the type's versions hash ({t:T}:schema:<type>): version number -> version JSON
-- ARGV[1] type
-- ARGV[2] the latest version the new schema was checked against ("0" when there was none)
-- ARGV[3] the new version's JSON (its version is ARGV[2] + 1)
-- Returns the new version number; -1 when the latest version changed meanwhile (nothing written).
local latest = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if latest ~= tonumber(ARGV[2]) then return -1 end
local version = latest + 1
redis.call('HSET', KEYS[2], version, ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], version)
return version
