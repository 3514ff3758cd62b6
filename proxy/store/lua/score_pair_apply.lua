-- Keep one trace's latest score of one name beside its creation hour's stats.
-- KEYS: 1 the pairs hash of (hour, score name): trace_id -> {"v": version, "score": score JSON
--       or false (the trace has no score of that name any more)}.
-- ARGV: 1 trace_id, 2 state JSON, 3 version, 4 expire_at (unix seconds).
-- Returns 1 when stored, 0 when a state as new or newer is there already (replays and
-- out-of-order applies never go back in time).
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and cjson.decode(stored).v >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return 1
