-- Set a trace's annotation_status (a reviewer filled or reopened its dataset row).
-- KEYS: 1 trace hash, 2 the trace's set of index key names (both in the trace's slot).
-- ARGV: 1 status, 2 the annotation index name for that status.
-- Returns the trace's created_ms (to score the index), or false when the trace is gone
-- (expired): a row outlives its trace, and an expired trace is not brought back.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'annotation_status', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return redis.call('HGET', KEYS[1], 'created_ms')
