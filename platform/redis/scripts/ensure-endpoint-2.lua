-- Creates a subscription's webhook endpoint when it has none (idempotent).
-- KEYS[1] the endpoint hash ({t:T}:ep:<sub>)
-- KEYS[2] the subscription stream
-- ARGV[1] endpoint id (ep_...)
-- ARGV[2] signing secret, sealed by the caller (enc:v1:...; platform/crypto/secret-box.ts)
-- ARGV[3] where delivery starts: "start" (the stream's beginning) or "end" (after its last entry)
-- ARGV[4] now (RFC 3339)
-- Returns 1 when created, 0 when the endpoint existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local cursor = '0-0'
if ARGV[3] == 'end' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if last[1] then cursor = last[1][1] end
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'secret', ARGV[2], 'state', 'enabled', 'cursor', cursor, 'created_at', ARGV[4])
return 1
