-- Reserves one (source, id) of a tenant for ingest, once within the dedup window.
-- KEYS[1] the event id's record hash ({t:T}:ingest:evt:<id>), field = the event's source
-- ARGV[1] source
-- ARGV[2] lease (ms): how long the reservation holds while the event is produced; an older one is taken over
-- ARGV[3] dedup window (s): the hash expires this long after the last reservation
-- Returns nil when reserved for the caller (it then writes its record, or deletes the field if producing failed);
-- otherwise the value already there: an ingest record (JSON) or "pending:<deadline ms>" while another request
-- is producing it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  if string.sub(current, 1, 8) ~= 'pending:' or tonumber(string.sub(current, 9)) > now then return current end
end
redis.call('HSET', KEYS[1], ARGV[1], 'pending:' .. (now + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return false
