-- Queues a subscription's dead letters for redelivery, in the order they died, ahead of the live stream, and
-- enables the endpoint so that delivery resumes.
-- KEYS[1] the dead letters stream
-- KEYS[2] the redeliver list (items: JSON {cursor, type, event})
-- KEYS[3] the endpoint hash
-- ARGV[1] at most this many dead letters are queued (the oldest first)
-- Dead letters of kind "transform" (an event the subscription's transform failed on, set aside by the route) stay:
-- delivered as they are, untransformed, they would carry what the transform keeps from the endpoint.
-- Returns the number queued; -1 when the endpoint does not exist.
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
local queued = 0
for _, entry in ipairs(entries) do
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  if f['kind'] ~= 'transform' then
    redis.call('RPUSH', KEYS[2], cjson.encode({ cursor = f['cursor'], type = f['type'], event = f['event'] }))
    redis.call('XDEL', KEYS[1], entry[1])
    queued = queued + 1
  end
end
redis.call('HSET', KEYS[3], 'state', 'enabled')
redis.call('HDEL', KEYS[3], 'disabled_reason', 'disabled_at', 'next_at', 'head', 'attempt')
return queued
