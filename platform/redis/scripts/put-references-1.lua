-- Writes and deletes records of one tenant's reference table, in source order, within the table's bound: a record
-- whose key the table does not hold yet is refused while the table holds ARGV[1] records. platform/reference/store.ts
-- describes the key.
-- KEYS[1] the table's hash {t:T}:ref:<table>: lookup key -> the record's data (JSON)
-- ARGV[1] the most records the table may hold
-- then the operations, three values each, in source order: "p" (put) or "d" (delete), the lookup key, the data
--   JSON ("" for a delete)
-- Returns {records written, records deleted, then the 1-based numbers of the operations refused}.
local table_key = KEYS[1]
local max = tonumber(ARGV[1])
local written, deleted = 0, 0
local out = {0, 0}
local n = 0
for i = 2, #ARGV, 3 do
  n = n + 1
  local key = ARGV[i + 1]
  if ARGV[i] == 'd' then
    deleted = deleted + redis.call('HDEL', table_key, key)
  elseif redis.call('HEXISTS', table_key, key) == 1 or redis.call('HLEN', table_key) < max then
    redis.call('HSET', table_key, key, ARGV[i + 2])
    written = written + 1
  else
    out[#out + 1] = n
  end
end
out[1] = written
out[2] = deleted
return out
