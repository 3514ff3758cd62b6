-- Keep one trace's latest score of one name beside its creation hour's stats.
-- KEYS: 1 the pairs hash of (hour, score name): trace_id -> "<v>\31<created_ms>\31s\31<label>
--       \31<value>" (label or value may be empty), or "<v>\31<created_ms>\31x" when the trace
--       has no score of that name any more.
-- ARGV: 1 trace_id, 2 the entry, 3 its version v, 4 expire_at (unix seconds).
-- Returns 1 when stored, 0 when an entry as new or newer is there already (replays and
-- out-of-order applies never go back in time).
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and tonumber(string.match(stored, '^(%d+)')) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return 1
