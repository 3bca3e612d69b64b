-- Takes tokens from a tenant's ingest token bucket (refilled continuously at a rate, capped at a burst).
-- KEYS[1] the bucket hash ({t:T}:ingest:rate): tokens (fractional), at (ms of the last take)
-- ARGV[1] refill rate (tokens per second)
-- ARGV[2] burst (bucket capacity)
-- ARGV[3] tokens wanted (the number of events in the request)
-- Returns {1, tokens left} when taken; {0, ms until enough tokens} when not (nothing is taken then).
-- The clock is the Redis server's, so every ingest instance shares one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
if tokens < wanted then
  return {0, math.ceil((wanted - tokens) * 1000 / rate)}
end
tokens = tokens - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {1, math.floor(tokens)}
