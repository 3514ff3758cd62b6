-- Record an implicit signal on a span of a trace found by another trace's call (a session's
-- regeneration), atomically in that trace's slot.
-- KEYS: 1 trace hash, 2 span feedback hash, 3 the trace's set of index key names.
-- ARGV: 1 span_id, 2 signal name, 3 signal JSON, 4 the signal's index name.
-- Returns {created_ms, 1 when recorded now or 0 when it was already there}, or false when the
-- trace is gone (expired).
local created = redis.call('HGET', KEYS[1], 'created_ms')
if not created then return false end
local new = redis.call('HSETNX', KEYS[2], 'i\31' .. ARGV[1] .. '\31' .. ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return {created, new}
